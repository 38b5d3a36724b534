//! Data: the [`Dataset`] type (u8 images N x C x H x W with i64 labels), train / validation /
//! test [`Splits`], seeded stratified fractions, shuffled and augmented [`Batches`] on the
//! device, and the loaders for the file formats and datasets the toolkit knows.

mod batches;
pub mod cifar;
pub mod download;
pub mod embedded;
pub mod folder;
pub mod idx;
mod source;
pub mod svhn;

pub use batches::{Augment, Batch, Batches};
pub use embedded::Embedded;
pub use source::DataSource;

use crate::error::{Error, Result};
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Where a dataset came from and how it may be augmented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// Short name, e.g. "fashion-mnist/train".
    pub name: String,
    /// Files, package versions or transformations that produced it.
    pub provenance: String,
    /// Whether a horizontal flip yields a plausible image of the same class (not for digits).
    pub hflip: bool,
}

/// An image classification dataset held as u8 pixels.
///
/// Images stay u8 until a batch is drawn (4x less memory than float); pixel values become
/// floats in [0, 1] in [`Batches`]. Normalisation happens inside the network, so attacks work
/// in pixel space.
#[derive(Debug)]
pub struct Dataset {
    images: Tensor,
    labels: Tensor,
    classes: Vec<String>,
    meta: DatasetMeta,
}

impl Clone for Dataset {
    fn clone(&self) -> Self {
        Dataset {
            images: self.images.shallow_clone(),
            labels: self.labels.shallow_clone(),
            classes: self.classes.clone(),
            meta: self.meta.clone(),
        }
    }
}

impl Dataset {
    /// Checks and wraps tensors: `images` u8 of shape N x C x H x W, `labels` i64 of shape N with
    /// values in `0..classes.len()`.
    pub fn new(images: Tensor, labels: Tensor, classes: Vec<String>, meta: DatasetMeta) -> Result<Dataset> {
        let name = &meta.name;
        if images.kind() != Kind::Uint8 || images.dim() != 4 {
            return Err(Error::invalid(
                format!("dataset {name}: images must be u8 N x C x H x W, got {:?} {:?}", images.kind(), images.size()),
                "convert pixels to u8 (0..255) and add a channel dimension",
            ));
        }
        if labels.kind() != Kind::Int64 || labels.size() != [images.size()[0]] {
            return Err(Error::invalid(
                format!("dataset {name}: labels must be i64 of shape [{}], got {:?} {:?}", images.size()[0], labels.kind(), labels.size()),
                "give one i64 label per image",
            ));
        }
        if classes.is_empty() {
            return Err(Error::invalid(format!("dataset {name}: no class names"), "give one name per class"));
        }
        if labels.numel() > 0 {
            let lo = labels.f_min()?.int64_value(&[]);
            let hi = labels.f_max()?.int64_value(&[]);
            if lo < 0 || hi >= classes.len() as i64 {
                return Err(Error::invalid(
                    format!("dataset {name}: labels range over {lo}..={hi} but there are {} classes", classes.len()),
                    "labels must be 0-based class indices",
                ));
            }
        }
        Ok(Dataset { images, labels, classes, meta })
    }

    /// Builds a dataset from raw pixels in N x C x H x W order.
    pub fn from_raw(pixels: Vec<u8>, shape: [i64; 4], labels: Vec<i64>, classes: Vec<String>, meta: DatasetMeta) -> Result<Dataset> {
        let expected: i64 = shape.iter().product();
        if pixels.len() as i64 != expected || labels.len() as i64 != shape[0] {
            return Err(Error::invalid(
                format!("dataset {}: {} pixels and {} labels do not fit shape {shape:?}", meta.name, pixels.len(), labels.len()),
                "check the loader's dimensions",
            ));
        }
        let images = Tensor::from_slice(&pixels).f_reshape(shape)?;
        Dataset::new(images, Tensor::from_slice(&labels), classes, meta)
    }

    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (channels, height, width)
    pub fn image_shape(&self) -> [i64; 3] {
        let s = self.images.size();
        [s[1], s[2], s[3]]
    }
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
    pub fn meta(&self) -> &DatasetMeta {
        &self.meta
    }
    pub fn name(&self) -> &str {
        &self.meta.name
    }
    /// u8 images, N x C x H x W.
    pub fn images(&self) -> &Tensor {
        &self.images
    }
    /// i64 labels, N.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }
    pub fn device(&self) -> Device {
        self.images.device()
    }

    /// The labels as a vector (on the CPU).
    pub fn label_vec(&self) -> Result<Vec<i64>> {
        Ok(Vec::<i64>::try_from(self.labels.f_to_device(Device::Cpu)?)?)
    }

    /// Number of examples of each class.
    pub fn class_counts(&self) -> Result<Vec<usize>> {
        let mut counts = vec![0; self.num_classes()];
        for l in self.label_vec()? {
            counts[l as usize] += 1;
        }
        Ok(counts)
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[i64], name: &str) -> Result<Dataset> {
        let n = self.len() as i64;
        if let Some(bad) = indices.iter().find(|&&i| i < 0 || i >= n) {
            return Err(Error::invalid(
                format!("index {bad} out of range for {} ({n} examples)", self.meta.name),
                "use indices in 0..len()",
            ));
        }
        let idx = Tensor::from_slice(indices).f_to_device(self.device())?;
        let meta = DatasetMeta { name: name.to_string(), ..self.meta.clone() };
        Ok(Dataset {
            images: self.images.f_index_select(0, &idx)?,
            labels: self.labels.f_index_select(0, &idx)?,
            classes: self.classes.clone(),
            meta,
        })
    }

    /// Per class, the indices of its examples in a seeded random order. The order depends only
    /// on (seed, class), so prefixes of different lengths nest: the 1% subset lies inside the
    /// 10% subset drawn with the same seed.
    fn shuffled_by_class(&self, seed: u64, purpose: &str) -> Result<Vec<Vec<i64>>> {
        let mut by_class = vec![Vec::new(); self.num_classes()];
        for (i, l) in self.label_vec()?.into_iter().enumerate() {
            by_class[l as usize].push(i as i64);
        }
        for (c, idx) in by_class.iter_mut().enumerate() {
            Rng::derive(seed, &format!("{purpose}/class{c}")).shuffle(idx);
        }
        Ok(by_class)
    }

    /// How many examples of a class of `n` a fraction keeps: round(f * n), at least one when
    /// the class is not empty, so even 1% of a small dataset keeps every class.
    pub fn fraction_count(fraction: f64, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((fraction * n as f64).round() as usize).clamp(1, n)
        }
    }

    /// A seeded, stratified subset with `round(fraction * n_c)` examples of each class c
    /// (see [`Dataset::fraction_count`]). Reproducible by seed; nested across fractions.
    pub fn fraction(&self, fraction: f64, seed: u64) -> Result<Dataset> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::invalid(format!("data fraction {fraction} is not in (0, 1]"), "use e.g. 1.0, 0.1 or 0.01"));
        }
        if fraction == 1.0 {
            return Ok(self.clone());
        }
        let mut keep: Vec<i64> = Vec::new();
        for idx in self.shuffled_by_class(seed, "fraction")? {
            keep.extend_from_slice(&idx[..Self::fraction_count(fraction, idx.len())]);
        }
        keep.sort_unstable();
        self.subset(&keep, &format!("{}[{}%, seed {seed}]", self.meta.name, fraction * 100.0))
    }

    /// Splits off a stratified, seeded held-out part with `round(fraction * n_c)` examples of each
    /// class; returns (rest, held_out).
    pub fn holdout(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::invalid(format!("held-out fraction {fraction} is not in (0, 1)"), "use e.g. 0.1"));
        }
        let (mut rest, mut held) = (Vec::new(), Vec::new());
        for idx in self.shuffled_by_class(seed, "holdout")? {
            let k = Self::fraction_count(fraction, idx.len()).min(idx.len().saturating_sub(1));
            held.extend_from_slice(&idx[..k]);
            rest.extend_from_slice(&idx[k..]);
        }
        rest.sort_unstable();
        held.sort_unstable();
        let base = self.meta.name.trim_end_matches("/train");
        Ok((self.subset(&rest, &format!("{base}/train"))?, self.subset(&held, &format!("{base}/val"))?))
    }

    /// SHA-256 (hex) of the pixels, labels and class names: two datasets with the same hash
    /// hold the same examples in the same order.
    pub fn content_hash(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let images = self.images.f_to_device(Device::Cpu)?.f_contiguous()?;
        let pixels = Vec::<u8>::try_from(images.f_flatten(0, -1)?)?;
        h.update(&pixels);
        for l in self.label_vec()? {
            h.update(l.to_le_bytes());
        }
        h.update(self.classes.join("\n").as_bytes());
        h.update(format!("{:?}", self.images.size()).as_bytes());
        Ok(crate::fsio::hex(&h.finalize()))
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
    pub fn channel_stats(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let x = self.images.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?.f_transpose(0, 1)?.f_flatten(1, -1)?;
        let mean = Vec::<f64>::try_from(x.f_mean_dim(Some([1i64].as_slice()), false, Kind::Double)?)?;
        let std = Vec::<f64>::try_from(x.f_to_kind(Kind::Double)?.f_std_dim(Some([1i64].as_slice()), false, false)?)?;
        Ok((mean, std))
    }

    /// The same dataset with its tensors on `device` (done once before training, so batches
    /// are cut and augmented where the model runs).
    pub fn to_device(&self, device: Device) -> Result<Dataset> {
        Ok(Dataset {
            images: self.images.f_to_device(device)?,
            labels: self.labels.f_to_device(device)?,
            classes: self.classes.clone(),
            meta: self.meta.clone(),
        })
    }

    /// Images `start..start+n` as floats in [0, 1] (for displays and quick checks).
    pub fn float_images(&self, start: i64, n: i64) -> Result<Tensor> {
        Ok(self.images.f_narrow(0, start, n.min(self.len() as i64 - start))?.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?)
    }

    /// Iterates over batches; see [`Batches`].
    pub fn batches(&self, batch_size: usize, shuffle_seed: Option<u64>, augment: Augment, device: Device) -> Result<Batches> {
        Batches::new(self, batch_size, shuffle_seed, augment, device)
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [c, h, w] = self.image_shape();
        write!(f, "{}: {} images {c}x{h}x{w}, {} classes", self.meta.name, self.len(), self.num_classes())
    }
}

/// Train, validation (held out from the train split, for model selection) and test splits.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Dataset,
    pub val: Dataset,
    pub test: Dataset,
}

/// The share of a training split held out (stratified) for validation: by every study
/// ([`crate::study::steps::HoldOut::STUDY`]) and every CLI command.
pub const VALIDATION_FRACTION: f64 = 0.1;

impl Splits {
    /// Holds out a stratified `val_fraction` of `train` (seeded) as the validation split.
    pub fn new(train: Dataset, test: Dataset, val_fraction: f64, seed: u64) -> Result<Splits> {
        if train.image_shape() != test.image_shape() || train.classes() != test.classes() {
            return Err(Error::invalid(
                format!("train ({train}) and test ({test}) differ in image shape or classes"),
                "use the train and test split of the same dataset",
            ));
        }
        let (train, val) = train.holdout(val_fraction, seed)?;
        Ok(Splits { train, val, test })
    }

    /// The same splits with only a stratified `fraction` of the training split (validation and
    /// test untouched), as in data-limited transfer.
    pub fn with_train_fraction(&self, fraction: f64, seed: u64) -> Result<Splits> {
        Ok(Splits { train: self.train.fraction(fraction, seed)?, val: self.val.clone(), test: self.test.clone() })
    }

    pub fn num_classes(&self) -> usize {
        self.train.num_classes()
    }
    pub fn classes(&self) -> &[String] {
        self.train.classes()
    }
    pub fn image_shape(&self) -> [i64; 3] {
        self.train.image_shape()
    }
}

impl std::fmt::Display for Splits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "train {} / val {} / test {}", self.train.len(), self.val.len(), self.test.len())
    }
}
