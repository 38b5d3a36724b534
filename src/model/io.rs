//! Networks on disk: weights as safetensors with torchvision names plus a JSON sidecar
//! (`<file>.json`: architecture, normalisation, classes, content hash), and imports of
//! torchvision / robustness-library checkpoints given as safetensors. Checkpoints are never
//! unpickled: convert a `.pt` file once in Python with `safetensors.torch.save_file`.

use super::{Network, NetworkSpec, Normalization};
use crate::error::{Error, Result};
use crate::fsio;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const FORMAT: &str = "doublewin-network/1";

/// Writes named tensors as one safetensors file, atomically. Each tensor is written as a
/// contiguous CPU copy: some networks keep their convolution weights channels-last
/// ([`super::Arch::channels_last`]) and safetensors stores the standard (row-major) layout, so
/// files read the same in PyTorch.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let plain: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| Ok((n.clone(), t.f_to_device(Device::Cpu)?.f_contiguous()?))).collect::<Result<_>>()?;
    fsio::write_atomic_with(path, |tmp| Ok(Tensor::write_safetensors(&plain, tmp)?))
}

/// The JSON sidecar written next to a network's safetensors file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: String,
    pub spec: NetworkSpec,
    /// [`Network::content_hash`] of the weights.
    pub content_hash: String,
    pub doublewin_version: String,
}

/// The sidecar path of a weights file: `net.safetensors` -> `net.safetensors.json`.
pub fn sidecar_path(weights: &Path) -> PathBuf {
    PathBuf::from(format!("{}.json", weights.display()))
}

impl Network {
    /// Saves weights (safetensors) and sidecar, each atomically. The path should end in
    /// `.safetensors`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            return Err(Error::invalid(format!("{} does not end in .safetensors", path.display()), "name the file e.g. net.safetensors"));
        }
        write_tensors(path, &self.named_tensors())?;
        let sidecar = Sidecar {
            format: FORMAT.into(),
            spec: self.spec.clone(),
            content_hash: self.content_hash()?,
            doublewin_version: crate::runtime::VERSION.into(),
        };
        fsio::write_json(&sidecar_path(path), &sidecar)
    }

    /// Loads a network saved with [`Network::save`] onto `device`, checking the content hash.
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Network> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::not_found(
                format!("network file {}", path.display()),
                "check the path; doublewin saves networks as NAME.safetensors with a NAME.safetensors.json sidecar",
            ));
        }
        let side = sidecar_path(path);
        if !side.exists() {
            return Err(Error::not_found(
                format!("sidecar {}", side.display()),
                "a network file needs its .json sidecar; for foreign checkpoints use Network::import",
            ));
        }
        let sidecar: Sidecar = fsio::read_json(&side)?;
        if sidecar.format != FORMAT {
            return Err(Error::bad_file_fix(
                &side,
                format!("format '{}' is not {FORMAT}", sidecar.format),
                "save the network again with this doublewin, or import foreign checkpoints with Network::import",
            ));
        }
        let mut net = Network::new(sidecar.spec, Device::Cpu, 0)?;
        let tensors = read_safetensors(path)?;
        place(&mut net, path, tensors.into_iter().collect())?;
        if net.content_hash()? != sidecar.content_hash {
            return Err(Error::bad_file_fix(
                path,
                "weights do not match the content hash in the sidecar (file changed or damaged)",
                "restore the file, or train / save the network again",
            ));
        }
        net.to_device(device)?;
        Ok(net)
    }

    /// Imports a torchvision or robustness-library checkpoint given as safetensors into a network
    /// of `spec`. Keys may carry the prefixes `module.`, `model.`, `module.model.`,
    /// `module.attacker.model.`; BN `num_batches_tracked` counters are ignored; robustness-library
    /// normaliser buffers (`normalizer.new_mean/new_std`) set the network's normalisation.
    /// Every key must find its place and every parameter must be filled, or the import fails
    /// with the lists of unplaced and missing keys.
    pub fn import(path: impl AsRef<Path>, spec: NetworkSpec, device: Device) -> Result<Network> {
        let path = path.as_ref();
        let mut net = Network::new(spec, Device::Cpu, 0)?;
        let mut params: HashMap<String, Tensor> = HashMap::new();
        let mut norm: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        let mut unplaced = Vec::new();
        let wanted: std::collections::HashSet<String> = net.named_tensors().into_iter().map(|(n, _)| n).collect();
        for (key, t) in read_safetensors(path)? {
            if key.ends_with("num_batches_tracked") {
                continue;
            }
            if let Some(stat) = ["new_mean", "new_std"]
                .into_iter()
                .find(|s| key.ends_with(&format!("normalizer.{s}")) || key.ends_with(&format!("normalize.{s}")))
            {
                norm.insert(stat, Vec::<f64>::try_from(t.f_to_kind(Kind::Double)?.f_flatten(0, -1)?)?);
                continue;
            }
            let canonical = strip_prefix(&key);
            if !wanted.contains(canonical) {
                unplaced.push(key);
            } else if key.starts_with("module.attacker.model.") && params.contains_key(canonical) {
                // The robustness library stores the model twice (model and attacker.model); the
                // first copy placed wins and the duplicate must agree with it.
                if !params[canonical].f_equal(&t).unwrap_or(false) {
                    unplaced.push(format!("{key} (differs from the module.model copy)"));
                }
            } else {
                params.insert(canonical.to_string(), t);
            }
        }
        if !unplaced.is_empty() {
            let missing = wanted.iter().filter(|n| !params.contains_key(*n)).cloned().collect::<Vec<_>>();
            unplaced.sort();
            return Err(Error::KeyMismatch { path: path.to_path_buf(), unplaced, missing: sorted(missing), shape_mismatch: vec![] });
        }
        place(&mut net, path, params)?;
        if let (Some(mean), Some(std)) = (norm.get("new_mean"), norm.get("new_std")) {
            net.set_normalization(Normalization { mean: mean.clone(), std: std.clone() })?;
        }
        net.to_device(device)?;
        Ok(net)
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strip_prefix(key: &str) -> &str {
    for p in ["module.attacker.model.", "module.model.", "attacker.model.", "module.", "model."] {
        if let Some(rest) = key.strip_prefix(p) {
            return rest;
        }
    }
    key
}

fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        return Err(Error::not_found(format!("weights file {}", path.display()), "check the path"));
    }
    Tensor::read_safetensors(path).map_err(|e| {
        Error::bad_file_fix(
            path,
            format!("cannot read safetensors ({e})"),
            "check that the path names a .safetensors file and that it is complete",
        )
    })
}

/// Copies `tensors` into the network by exact name; fails listing every missing, unplaced and
/// mis-shaped key.
fn place(net: &mut Network, path: &Path, mut tensors: HashMap<String, Tensor>) -> Result<()> {
    let (mut missing, mut shape_mismatch) = (Vec::new(), Vec::new());
    let _guard = tch::no_grad_guard();
    let mut copies = Vec::new();
    for (name, dst) in net.named_tensors() {
        match tensors.remove(&name) {
            None => missing.push(name),
            Some(src) if src.size() != dst.size() => {
                shape_mismatch.push(format!("{name}: file {:?}, network {:?}", src.size(), dst.size()))
            }
            Some(src) => copies.push((dst, src)),
        }
    }
    let unplaced = sorted(tensors.into_keys().collect());
    if !missing.is_empty() || !unplaced.is_empty() || !shape_mismatch.is_empty() {
        return Err(Error::KeyMismatch { path: path.to_path_buf(), unplaced, missing, shape_mismatch });
    }
    for (mut dst, src) in copies {
        dst.f_copy_(&src.f_to_kind(dst.kind())?)?;
    }
    Ok(())
}
