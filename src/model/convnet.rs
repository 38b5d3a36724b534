//! A small ConvNet for CPU work: blocks of conv3x3 - BN - ReLU (- 2x2 max-pool), then global
//! average pooling and a linear head `fc`. Parameters: `features.{i}.conv.weight`,
//! `features.{i}.bn.*`, `fc.*`.

use super::layers::{BatchNorm2d, Conv2d, FoldedConv, Linear};
use crate::error::Result;
use tch::{nn, Tensor};

#[derive(Debug)]
pub struct ConvNet {
    blocks: Vec<(Conv2d, BatchNorm2d)>,
    /// Spatial size after which pooling stops (tiny inputs such as 8x8 digits keep 2x2).
    pool: Vec<bool>,
    fc: Linear,
}

impl ConvNet {
    pub fn new(p: &nn::Path, in_channels: i64, widths: &[i64], input_side: i64, classes: i64) -> Result<ConvNet> {
        let mut blocks = Vec::new();
        let mut pool = Vec::new();
        let (mut c_in, mut side) = (in_channels, input_side);
        for (i, &w) in widths.iter().enumerate() {
            let f = p / "features" / i;
            blocks.push((Conv2d::new(&f / "conv", c_in, w, 3, 1, 1)?, BatchNorm2d::new(&f / "bn", w)?));
            // Pool after every block but the last, while the map is at least 4 pixels wide.
            let pools = i + 1 < widths.len() && side >= 4;
            if pools {
                side /= 2;
            }
            pool.push(pools);
            c_in = w;
        }
        Ok(ConvNet { blocks, pool, fc: Linear::new(p / "fc", c_in, classes)? })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for ((conv, bn), &pool) in self.blocks.iter().zip(&self.pool) {
            h = bn.forward(&conv.forward(&h)?, train)?.f_relu()?;
            if pool {
                h = h.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
            }
        }
        let h = h.f_adaptive_avg_pool2d([1, 1])?.f_flatten(1, -1)?;
        self.fc.forward(&h)
    }
}

/// The ConvNet in eval mode with every batch norm folded into its convolution.
#[derive(Debug)]
pub struct FoldedConvNet {
    blocks: Vec<FoldedConv>,
    pool: Vec<bool>,
    fc: Linear,
}

impl ConvNet {
    pub fn folded(&self) -> Result<FoldedConvNet> {
        Ok(FoldedConvNet {
            blocks: self.blocks.iter().map(|(c, b)| FoldedConv::new(c, b)).collect::<Result<_>>()?,
            pool: self.pool.clone(),
            fc: self.fc.detached()?,
        })
    }
}

impl FoldedConvNet {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for (conv, &pool) in self.blocks.iter().zip(&self.pool) {
            h = conv.forward(&h)?.f_relu()?;
            if pool {
                h = h.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
            }
        }
        let h = h.f_adaptive_avg_pool2d([1, 1])?.f_flatten(1, -1)?;
        self.fc.forward(&h)
    }
}
