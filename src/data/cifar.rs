//! CIFAR-10 and CIFAR-100 in their "binary version" layout: fixed-size records of label
//! byte(s) followed by 3072 pixel bytes (the R, G and B planes of a 32x32 image, row-major).

use super::{Dataset, DatasetMeta};
use crate::error::{Error, Result};
use std::path::Path;

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR variant a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    Ten,
    /// CIFAR-100 with its 100 fine labels.
    Hundred,
}

impl Cifar {
    fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }
    fn train_files(self) -> Vec<String> {
        match self {
            Cifar::Ten => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Cifar::Hundred => vec!["train.bin".into()],
        }
    }
    fn test_file(self) -> &'static str {
        match self {
            Cifar::Ten => "test_batch.bin",
            Cifar::Hundred => "test.bin",
        }
    }
    fn names_file(self) -> &'static str {
        match self {
            Cifar::Ten => "batches.meta.txt",
            Cifar::Hundred => "fine_label_names.txt",
        }
    }
    fn num_classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar10",
            Cifar::Hundred => "cifar100",
        }
    }
}

/// Parses records from `files` (paths inside `dir`).
pub fn load_records(kind: Cifar, files: &[&Path], classes: Vec<String>, meta: DatasetMeta) -> Result<Dataset> {
    let record = kind.label_bytes() + PIXELS;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for path in files {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::bad_data_file(
                path,
                format!("{} bytes is not a whole number of {}-byte {} records", bytes.len(), record, kind.name()),
            ));
        }
        for rec in bytes.chunks_exact(record) {
            // CIFAR-100 records are <coarse label><fine label><pixels>: the fine label is last.
            let label = rec[kind.label_bytes() - 1] as usize;
            if label >= kind.num_classes() {
                return Err(Error::bad_data_file(path, format!("label {label} out of range for {}", kind.name())));
            }
            labels.push(label as i64);
            pixels.extend_from_slice(&rec[kind.label_bytes()..]);
        }
    }
    let n = labels.len() as i64;
    Dataset::from_raw(pixels, [n, 3, 32, 32], labels, classes, meta)
}

/// Loads train and test splits from an extracted `cifar-10-batches-bin` or `cifar-100-binary` folder.
pub fn load_cifar(kind: Cifar, dir: &Path) -> Result<(Dataset, Dataset)> {
    let names_path = dir.join(kind.names_file());
    let classes: Vec<String> = std::fs::read_to_string(&names_path)
        .map_err(|e| Error::io(&names_path, e))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if classes.len() != kind.num_classes() {
        return Err(Error::bad_data_file(
            &names_path,
            format!("lists {} class names, {} has {}", classes.len(), kind.name(), kind.num_classes()),
        ));
    }
    let meta = |split: &str| DatasetMeta {
        name: format!("{}/{split}", kind.name()),
        provenance: format!("CIFAR binary files in {}", dir.display()),
        hflip: true,
    };
    let train_paths: Vec<_> = kind.train_files().iter().map(|f| dir.join(f)).collect();
    let train_refs: Vec<&Path> = train_paths.iter().map(|p| p.as_path()).collect();
    let train = load_records(kind, &train_refs, classes.clone(), meta("train"))?;
    let test = load_records(kind, &[dir.join(kind.test_file()).as_path()], classes, meta("test"))?;
    Ok((train, test))
}
