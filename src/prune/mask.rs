//! [`Mask`]: one bool tensor per prunable tensor of a network, with its sparsity, application
//! to weights, persistence (safetensors + JSON metadata) and PyTorch's pruning layout.

use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::fsio;
use crate::model::Network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const FORMAT: &str = "doublewin-mask/1";

/// Where a mask came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MaskMeta {
    /// IMP round that produced it (0 = dense).
    pub round: usize,
    /// How it was made, e.g. "IMP ST", "IMP AT", "random".
    pub regime: String,
    /// [`Network::content_hash`] of the weights the mask belongs to (the pre-trained weights).
    pub weights_hash: String,
}

/// Density of one masked tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerDensity {
    pub name: String,
    pub total: i64,
    pub kept: i64,
}

impl LayerDensity {
    pub fn density(&self) -> f64 {
        self.kept as f64 / self.total.max(1) as f64
    }
    /// The fraction of the tensor's weights pruned.
    pub fn pruned(&self) -> f64 {
        1.0 - self.density()
    }
}

/// A pruning mask: `true` keeps a weight, `false` prunes it. Masks live on the CPU (they are
/// small); [`Mask::apply`] moves what it needs to the network's device.
#[derive(Debug)]
pub struct Mask {
    masks: BTreeMap<String, Tensor>,
    pub meta: MaskMeta,
}

impl Clone for Mask {
    fn clone(&self) -> Self {
        Mask { masks: self.masks.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect(), meta: self.meta.clone() }
    }
}

impl PartialEq for Mask {
    fn eq(&self, other: &Self) -> bool {
        self.masks.len() == other.masks.len() && self.masks.iter().all(|(k, v)| other.masks.get(k).is_some_and(|o| o.equal(v)))
    }
}

impl Mask {
    /// Builds a mask from named bool tensors.
    pub fn new(masks: BTreeMap<String, Tensor>, meta: MaskMeta) -> Result<Mask> {
        if masks.is_empty() {
            return Err(Error::invalid("a mask needs at least one tensor", "prune a network with prunable tensors"));
        }
        let masks = masks
            .into_iter()
            .map(|(k, v)| Ok((k, v.f_to_device(Device::Cpu)?.f_to_kind(Kind::Bool)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Mask { masks, meta })
    }

    /// The all-`true` mask over `names` of `net` (the paper's default: every conv weight).
    pub fn dense(net: &Network, names: &[String]) -> Result<Mask> {
        let tensors: BTreeMap<String, Tensor> = net.named_tensors().into_iter().collect();
        let mut masks = BTreeMap::new();
        for n in names {
            let t = tensors
                .get(n)
                .ok_or_else(|| Error::not_found(format!("tensor '{n}' in {}", net.arch().name()), "use names from net.prunable_names()"))?;
            masks.insert(n.clone(), Tensor::f_ones(t.size(), (Kind::Bool, Device::Cpu))?);
        }
        Mask::new(masks, MaskMeta { round: 0, regime: "dense".into(), weights_hash: String::new() })
    }

    /// The dense mask over the network's default prunable set (all convolution weights).
    pub fn dense_for(net: &Network) -> Result<Mask> {
        Mask::dense(net, &net.prunable_names())
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.masks.keys()
    }
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.masks.get(name)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.masks.iter()
    }

    /// One tensor of the mask as an ndarray (true = kept), for analysis in a notebook.
    pub fn layer_array(&self, name: &str) -> Result<ndarray::ArrayD<bool>> {
        let m = self.masks.get(name).ok_or_else(|| {
            Error::not_found(
                format!("tensor '{name}' in the mask"),
                format!("use one of {}", self.names().cloned().collect::<Vec<_>>().join(", ")),
            )
        })?;
        let shape: Vec<usize> = m.size().iter().map(|&d| d as usize).collect();
        let values = Vec::<bool>::try_from(m.f_flatten(0, -1)?)?;
        ndarray::ArrayD::from_shape_vec(shape, values).map_err(|e| Error::invalid(format!("mask to ndarray: {e}"), "report this as a bug"))
    }

    /// Kept and total weights per tensor.
    pub fn per_layer(&self) -> Vec<LayerDensity> {
        self.masks
            .iter()
            .map(|(n, m)| LayerDensity { name: n.clone(), total: m.numel() as i64, kept: m.sum(Kind::Int64).int64_value(&[]) })
            .collect()
    }

    /// The tensors pruned most and least (by the fraction of their weights pruned; the first in
    /// name order on a tie).
    pub fn most_and_least_pruned(&self) -> Result<(LayerDensity, LayerDensity)> {
        let layers = self.per_layer();
        let by_pruned = |a: &&LayerDensity, b: &&LayerDensity| a.pruned().total_cmp(&b.pruned());
        let most = layers.iter().rev().max_by(by_pruned);
        let least = layers.iter().min_by(by_pruned);
        match (most, least) {
            (Some(m), Some(l)) => Ok((m.clone(), l.clone())),
            _ => Err(Error::invalid("an empty mask", "prune a network first (prune::one_shot, prune::imp)")),
        }
    }

    /// Overlap of the kept weights of two masks over the same tensors: |A and B| / |A or B|.
    pub fn overlap(&self, other: &Mask) -> Result<f64> {
        let (mut both, mut either) = (0i64, 0i64);
        for (name, a) in self.iter() {
            let b = other
                .get(name)
                .ok_or_else(|| Error::invalid(format!("the other mask has no '{name}'"), "compare masks of the same architecture"))?;
            if a.size() != b.size() {
                return Err(Error::invalid(
                    format!("'{name}' has shapes {:?} and {:?}", a.size(), b.size()),
                    "compare masks of the same architecture",
                ));
            }
            both += a.f_logical_and(b)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
            either += a.f_logical_or(b)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        }
        Ok(both as f64 / either.max(1) as f64)
    }

    /// Per-layer density bars (in %), top to bottom in layer order.
    pub fn density_panel(&self, title: impl Into<String>) -> crate::plot::Panel {
        let layers = self.per_layer();
        crate::plot::Panel::new(title, "weights kept (%)", "").x_range(0.0, 110.0).with(crate::plot::Layer::Bars {
            name: "density %".into(),
            color: crate::plot::palette(0),
            labels: layers.iter().map(|l| l.name.trim_end_matches(".weight").to_string()).collect(),
            values: layers.iter().map(|l| 100.0 * l.density()).collect(),
        })
    }

    /// [`Mask::density_panel`] as a figure.
    pub fn density_figure(&self) -> Result<crate::plot::Figure> {
        crate::plot::Figure::grid(
            format!("Density per layer ({:.2}% sparse overall)", 100.0 * self.sparsity()),
            vec![self.density_panel("")],
            1,
        )
    }

    /// Fraction of masked-out weights over all tensors of the mask.
    pub fn sparsity(&self) -> f64 {
        let (kept, total) = self.per_layer().iter().fold((0i64, 0i64), |(k, t), l| (k + l.kept, t + l.total));
        1.0 - kept as f64 / total.max(1) as f64
    }

    /// Number of weights the mask keeps.
    pub fn kept(&self) -> i64 {
        self.per_layer().iter().map(|l| l.kept).sum()
    }

    /// Checks that every tensor of the mask exists in `net` with the same shape; the error lists
    /// every difference.
    pub fn check_fits(&self, net: &Network) -> Result<()> {
        let tensors: BTreeMap<String, Tensor> = net.named_tensors().into_iter().collect();
        let mut problems = Vec::new();
        for (n, m) in &self.masks {
            match tensors.get(n) {
                None => problems.push(format!("'{n}' is not a tensor of the network")),
                Some(t) if t.size() != m.size() => problems.push(format!("'{n}': mask {:?}, network {:?}", m.size(), t.size())),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                format!("the mask does not fit {}: {}", net.arch().name(), problems.join("; ")),
                "use a mask made for this architecture (same tensor names and shapes)",
            ))
        }
    }

    /// Sets every pruned weight of `net` to exactly zero.
    pub fn apply(&self, net: &Network) -> Result<()> {
        self.check_fits(net)?;
        let tensors: BTreeMap<String, Tensor> = net.named_tensors().into_iter().collect();
        let _guard = tch::no_grad_guard();
        for (n, m) in &self.masks {
            let mut t = tensors[n].shallow_clone();
            let m = m.f_to_device(t.device())?.f_to_kind(t.kind())?;
            let _ = t.f_mul_(&m)?;
        }
        Ok(())
    }

    /// Zeroes the pruned weights of `net` and attaches the mask, so that training keeps them
    /// exactly zero (gradients, momentum and weight decay included).
    pub fn attach(&self, net: &mut Network) -> Result<()> {
        self.apply(net)?;
        net.set_weight_mask(Some(self.masks.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect()))
    }

    /// Whether every pruned weight of `net` is exactly zero.
    pub fn holds_in(&self, net: &Network) -> Result<bool> {
        let tensors: BTreeMap<String, Tensor> = net.named_tensors().into_iter().collect();
        for (n, m) in &self.masks {
            let t = tensors.get(n).ok_or_else(|| Error::not_found(format!("tensor '{n}'"), "check the mask fits"))?;
            let pruned = m.f_logical_not()?.f_to_device(t.device())?;
            if t.f_masked_select(&pruned)?.f_abs()?.f_sum(Kind::Double)?.f_double_value(&[])? != 0.0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Saves as `path` (safetensors of u8 tensors) + `path.json` (metadata), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tensors: Vec<(String, Tensor)> =
            self.masks.iter().map(|(n, m)| Ok((n.clone(), m.f_to_kind(Kind::Uint8)?))).collect::<Result<_>>()?;
        crate::model::io::write_tensors(path, &tensors)?;
        let json = MaskFile {
            format: FORMAT.into(),
            meta: self.meta.clone(),
            sparsity: self.sparsity(),
            per_layer: self.per_layer(),
            sha256: Some(fsio::sha256_file(path)?),
        };
        fsio::write_json(&sidecar(path), &json)
    }

    /// Loads a mask saved with [`Mask::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Mask> {
        let path = path.as_ref();
        let file: MaskFile = fsio::read_json(&sidecar(path))?;
        if file.format != FORMAT {
            return Err(Error::bad_file_fix(
                sidecar(path),
                format!("format '{}' is not {FORMAT}", file.format),
                "save the mask again with this doublewin",
            ));
        }
        if let Some(want) = &file.sha256 {
            if fsio::sha256_file(path)? != *want {
                return Err(Error::bad_file_fix(
                    path,
                    "does not match the SHA-256 recorded beside it (file damaged)",
                    "restore the file or compute the mask again",
                ));
            }
        }
        let tensors = Tensor::read_safetensors(path).map_err(|e| {
            Error::bad_file_fix(
                path,
                format!("cannot read safetensors ({e})"),
                "check that the path names a mask .safetensors file and that it is complete",
            )
        })?;
        let mask = Mask::new(tensors.into_iter().collect(), file.meta)?;
        if (mask.sparsity() - file.sparsity).abs() > 1e-12 {
            return Err(Error::bad_file_fix(
                path,
                "sparsity differs from the one recorded in the metadata (file damaged?)",
                "restore the file or compute the mask again",
            ));
        }
        Ok(mask)
    }

    /// Writes the masked network in PyTorch's pruning layout (as `torch.nn.utils.prune` leaves
    /// it): `<module>.weight_orig` and `<module>.weight_mask` for every masked tensor, all other
    /// tensors under their own names.
    pub fn export_pytorch(&self, net: &Network, path: impl AsRef<Path>) -> Result<()> {
        self.check_fits(net)?;
        let mut out = Vec::new();
        for (n, t) in net.named_tensors() {
            let t = t.f_to_device(Device::Cpu)?;
            match self.masks.get(&n) {
                Some(m) => {
                    out.push((format!("{n}_orig"), t));
                    out.push((format!("{n}_mask"), m.f_to_kind(Kind::Float)?));
                }
                None => out.push((n, t)),
            }
        }
        crate::model::io::write_tensors(path.as_ref(), &out)
    }

    /// Reads PyTorch's pruning layout: the mask from every `*_mask` tensor, and the weights
    /// (with `_orig` stripped and the mask applied, as PyTorch computes them).
    pub fn import_pytorch(path: impl AsRef<Path>) -> Result<(Mask, Vec<(String, Tensor)>)> {
        let path = path.as_ref();
        let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| {
                Error::bad_file_fix(
                    path,
                    format!("cannot read safetensors ({e})"),
                    "check that the path names a mask .safetensors file and that it is complete",
                )
            })?
            .into_iter()
            .collect();
        let mut masks = BTreeMap::new();
        let mut weights = Vec::new();
        for (k, t) in &tensors {
            if let Some(base) = k.strip_suffix("_mask") {
                masks.insert(base.to_string(), t.f_ne(0.0)?);
            } else if let Some(base) = k.strip_suffix("_orig") {
                let m = tensors.get(&format!("{base}_mask")).ok_or_else(|| {
                    Error::bad_file_fix(
                        path,
                        format!("'{k}' has no '{base}_mask'"),
                        "export the PyTorch pruning state with both weight_orig and weight_mask",
                    )
                })?;
                weights.push((base.to_string(), t.f_mul(m)?));
            } else {
                weights.push((k.clone(), t.shallow_clone()));
            }
        }
        let meta = MaskMeta { round: 0, regime: "imported (PyTorch pruning layout)".into(), weights_hash: String::new() };
        Ok((Mask::new(masks, meta)?, weights))
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Mask: {:.2}% sparse ({} round {})", 100.0 * self.sparsity(), self.meta.regime, self.meta.round),
            &["tensor", "kept", "total", "density %"],
        );
        for l in self.per_layer() {
            t.push(vec![l.name.clone(), l.kept.to_string(), l.total.to_string(), format!("{:.2}", 100.0 * l.density())]);
        }
        t
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.table().to_html());
    }
}

impl std::fmt::Display for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
    }
}

#[derive(Serialize, Deserialize)]
struct MaskFile {
    format: String,
    meta: MaskMeta,
    sparsity: f64,
    per_layer: Vec<LayerDensity>,
    /// SHA-256 of the .safetensors file: a flipped bit that keeps the sparsity is caught too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

/// The metadata file beside a mask: `m.safetensors` -> `m.safetensors.json`.
pub(crate) fn sidecar(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.json", path.display()))
}
