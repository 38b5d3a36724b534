//! Shuffled, augmented mini-batches cut on the device.

use super::Dataset;
use crate::error::{Error, Result};
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Training-time augmentation: random crop after zero padding, and random horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Pixels of zero padding on each side before a random crop back to the original size
    /// (0 = no crop).
    pub crop_padding: i64,
    /// Flip half of the images horizontally.
    pub hflip: bool,
}

impl Augment {
    pub fn none() -> Augment {
        Augment::default()
    }

    /// The usual choice for a dataset: padding 4 for 32x32 images (CIFAR), 1/8 of the side for
    /// others (2 for 28x28, 1 for 8x8), flips only where the dataset says they make sense.
    pub fn standard(data: &Dataset) -> Augment {
        let side = data.image_shape()[1];
        Augment { crop_padding: (side / 8).max(1), hflip: data.meta().hflip }
    }

    pub fn is_none(&self) -> bool {
        self.crop_padding == 0 && !self.hflip
    }
}

/// One mini-batch: images as floats in [0, 1] and labels, on the device.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
}

/// Iterator over the mini-batches of one pass through a dataset. Shuffling and augmentation
/// draw from a seeded [`Rng`], so the same seed gives the same batches on any device.
#[derive(Debug)]
pub struct Batches {
    images: Tensor,
    labels: Tensor,
    order: Vec<i64>,
    position: usize,
    batch_size: usize,
    augment: Augment,
    rng: Rng,
    device: Device,
}

impl Batches {
    pub fn new(data: &Dataset, batch_size: usize, shuffle_seed: Option<u64>, augment: Augment, device: Device) -> Result<Batches> {
        if batch_size == 0 {
            return Err(Error::invalid("batch size 0", "use a batch size of at least 1"));
        }
        let n = data.len();
        let seed = shuffle_seed.unwrap_or(0);
        let order = match shuffle_seed {
            Some(s) => Rng::derive(s, "batches/order").permutation(n),
            None => (0..n as i64).collect(),
        };
        Ok(Batches {
            images: data.images().f_to_device(device)?,
            labels: data.labels().f_to_device(device)?,
            order,
            position: 0,
            batch_size,
            augment,
            rng: Rng::derive(seed, "batches/augment"),
            device,
        })
    }

    /// Number of batches in the pass (the last one may be smaller).
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    fn next_batch(&mut self) -> Result<Batch> {
        let end = (self.position + self.batch_size).min(self.order.len());
        let idx = Tensor::from_slice(&self.order[self.position..end]).f_to_device(self.device)?;
        self.position = end;
        let images = self.images.f_index_select(0, &idx)?;
        let labels = self.labels.f_index_select(0, &idx)?;
        let mut images = images.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?;
        if !self.augment.is_none() {
            images = augment(&images, self.augment, &mut self.rng)?;
        }
        Ok(Batch { images, labels })
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        (self.position < self.order.len()).then(|| self.next_batch())
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.position).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

/// Random crop with zero padding and random horizontal flip of a float batch, done with two
/// gathers (no per-image loop), so it runs on the GPU as a handful of kernels.
pub fn augment(x: &Tensor, aug: Augment, rng: &mut Rng) -> Result<Tensor> {
    let [b, c, h, w]: [i64; 4] = x.size().try_into().map_err(|_| Error::invalid("augment needs N x C x H x W", "pass a 4-d batch"))?;
    let dev = x.device();
    let mut out = x.shallow_clone();
    let p = aug.crop_padding;
    if p > 0 {
        let padded = x.f_constant_pad_nd([p, p, p, p])?;
        let span = (2 * p + 1) as usize;
        let dy: Vec<i64> = (0..b).map(|_| rng.below(span) as i64).collect();
        let dx: Vec<i64> = (0..b).map(|_| rng.below(span) as i64).collect();
        let rows = Tensor::from_slice(&dy).f_to_device(dev)?.f_view([b, 1])?.f_add(&Tensor::f_arange(h, (Kind::Int64, dev))?)?;
        let cols = Tensor::from_slice(&dx).f_to_device(dev)?.f_view([b, 1])?.f_add(&Tensor::f_arange(w, (Kind::Int64, dev))?)?;
        let rows = rows.f_view([b, 1, h, 1])?.f_expand([b, c, h, w + 2 * p], false)?;
        let cols = cols.f_view([b, 1, 1, w])?.f_expand([b, c, h, w], false)?;
        out = padded.f_gather(2, &rows, false)?.f_gather(3, &cols, false)?;
    }
    if aug.hflip {
        let flips: Vec<bool> = (0..b).map(|_| rng.next_u64() & 1 == 1).collect();
        let flip = Tensor::from_slice(&flips).f_to_device(dev)?.f_view([b, 1, 1, 1])?;
        out = out.f_flip([3])?.f_where_self(&flip, &out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_shifts_whole_images_and_flip_mirrors() {
        let x = Tensor::f_arange(2 * 16, (Kind::Float, Device::Cpu)).unwrap().view([2, 1, 4, 4]);
        let mut rng = Rng::new(3);
        let y = augment(&x, Augment { crop_padding: 1, hflip: false }, &mut rng).unwrap();
        assert_eq!(y.size(), vec![2, 1, 4, 4]);
        // Every non-zero output pixel is an input pixel of the same image, and rows stay rows.
        for i in 0..2 {
            let yi = Vec::<f32>::try_from(y.get(i).flatten(0, -1)).unwrap();
            let lo = (i * 16) as f32;
            assert!(yi.iter().all(|&v| v == 0.0 || (lo..lo + 16.0).contains(&v)), "{yi:?}");
        }
        let f = augment(&x, Augment { crop_padding: 0, hflip: true }, &mut Rng::new(1)).unwrap();
        for i in 0..2 {
            let same = f.get(i).equal(&x.get(i));
            let mirrored = f.get(i).equal(&x.get(i).flip([2]));
            assert!(same || mirrored);
        }
    }
}
