//! A dataset by name, wherever it comes from: [`Embedded`] (offline, prepared from the package
//! registries) or [`Remote`] (downloaded from its canonical host into the data cache on first
//! use, MD5-checked, then read from disk). Studies and the CLI name datasets through this.

use super::download::{fetch, Remote};
use super::{embedded::data_dir, Dataset, Embedded, Splits};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Serialised as `{"embedded": "digits"}` or `{"remote": "cifar10"}`: the two kinds share
/// names (`mnist`, `fashion-mnist`), so the JSON says which is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    Embedded(Embedded),
    Remote(Remote),
}

impl DataSource {
    /// `fashion-mnist`, `mnist`, `animal-mnist`, `digits` (embedded) or `cifar10`, `cifar100`, `svhn`.
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Embedded(e) => e.name(),
            DataSource::Remote(r) => r.name(),
        }
    }

    /// Colour channels of the images (known without loading them: studies check transfers
    /// between datasets before anything runs).
    pub fn channels(self) -> i64 {
        match self {
            DataSource::Embedded(_) => 1,
            DataSource::Remote(Remote::Mnist | Remote::FashionMnist) => 1,
            DataSource::Remote(Remote::Cifar10 | Remote::Cifar100 | Remote::Svhn) => 3,
        }
    }

    /// Embedded datasets first (so `mnist` is the offline one), then the downloadable ones.
    pub fn from_name(name: &str) -> Result<DataSource> {
        Embedded::from_name(name).map(DataSource::Embedded).or_else(|_| {
            Remote::from_name(name).map(DataSource::Remote).map_err(|_| {
                Error::not_found(
                    format!("dataset '{name}'"),
                    "choose fashion-mnist, mnist, animal-mnist, digits (embedded) or cifar10, cifar100, svhn (downloaded on first use)",
                )
            })
        })
    }

    /// (train, test); a remote dataset is downloaded into `<data cache>/downloads` first if needed.
    pub fn load(self) -> Result<(Dataset, Dataset)> {
        match self {
            DataSource::Embedded(e) => e.load(),
            DataSource::Remote(r) => fetch(r, &data_dir().join("downloads"), None),
        }
    }

    /// Train / validation / test splits with a stratified, seeded validation hold-out.
    pub fn splits(self, val_fraction: f64, seed: u64) -> Result<Splits> {
        let (train, test) = self.load()?;
        Splits::new(train, test, val_fraction, seed)
    }
}

impl From<Embedded> for DataSource {
    fn from(e: Embedded) -> Self {
        DataSource::Embedded(e)
    }
}

impl From<Remote> for DataSource {
    fn from(r: Remote) -> Self {
        DataSource::Remote(r)
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_json_says_which_kind() {
        for n in ["fashion-mnist", "mnist", "animal-mnist", "digits", "cifar10", "cifar100", "svhn"] {
            assert_eq!(DataSource::from_name(n).unwrap().name(), n);
        }
        assert_eq!(DataSource::from_name("mnist").unwrap(), DataSource::Embedded(Embedded::Mnist));
        let d: DataSource = serde_json::from_str(r#"{"embedded": "digits"}"#).unwrap();
        assert_eq!(d, DataSource::Embedded(Embedded::Digits));
        let c = DataSource::Remote(Remote::Cifar10);
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"remote":"cifar10"}"#);
        let m = DataSource::Remote(Remote::Mnist);
        assert_eq!(serde_json::from_str::<DataSource>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        assert!(DataSource::from_name("imagenet").unwrap_err().to_string().contains("cifar10"));
    }
}
