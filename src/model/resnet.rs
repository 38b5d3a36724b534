//! ResNets with torchvision's parameter names (`conv1`, `bn1`, `layer{1..}.{j}.conv1`, ...,
//! `downsample.0/1`, `fc`), so torchvision and robustness-library checkpoints map one to one.
//! One implementation covers the CIFAR ResNet-20 family (3 stages, 3x3 stem), ResNet-18 with
//! a 3x3 stem for 32x32 inputs, and ImageNet ResNet-18/50 (7x7 stem + max-pool).
//! Shortcuts that change shape are 1x1 projections ("option B").

use super::layers::{BatchNorm2d, Conv2d, FoldedConv, Linear};
use super::Stem;
use crate::error::Result;
use tch::{nn, Tensor};

#[derive(Debug)]
struct Block {
    convs: Vec<(Conv2d, BatchNorm2d)>,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Block {
    fn new(p: &nn::Path, c_in: i64, width: i64, stride: i64, bottleneck: bool) -> Result<Block> {
        let c_out = if bottleneck { width * 4 } else { width };
        let convs = if bottleneck {
            vec![
                (Conv2d::new(p / "conv1", c_in, width, 1, 1, 0)?, BatchNorm2d::new(p / "bn1", width)?),
                (Conv2d::new(p / "conv2", width, width, 3, stride, 1)?, BatchNorm2d::new(p / "bn2", width)?),
                (Conv2d::new(p / "conv3", width, c_out, 1, 1, 0)?, BatchNorm2d::new(p / "bn3", c_out)?),
            ]
        } else {
            vec![
                (Conv2d::new(p / "conv1", c_in, width, 3, stride, 1)?, BatchNorm2d::new(p / "bn1", width)?),
                (Conv2d::new(p / "conv2", width, width, 3, 1, 1)?, BatchNorm2d::new(p / "bn2", width)?),
            ]
        };
        let downsample = if stride != 1 || c_in != c_out {
            let d = p / "downsample";
            Some((Conv2d::new(&d / "0", c_in, c_out, 1, stride, 0)?, BatchNorm2d::new(&d / "1", c_out)?))
        } else {
            None
        };
        Ok(Block { convs, downsample })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            h = bn.forward(&conv.forward(&h)?, train)?;
            if i < last {
                h = h.f_relu()?;
            }
        }
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward(&conv.forward(x)?, train)?,
            None => x.shallow_clone(),
        };
        Ok(h.f_add(&shortcut)?.f_relu()?)
    }
}

#[derive(Debug)]
pub struct ResNet {
    stem: Stem,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<Block>,
    fc: Linear,
}

impl ResNet {
    pub fn new(p: &nn::Path, in_channels: i64, stages: &[usize], width: i64, bottleneck: bool, stem: Stem, classes: i64) -> Result<ResNet> {
        let (conv1, c0) = match stem {
            Stem::Cifar => (Conv2d::new(p / "conv1", in_channels, width, 3, 1, 1)?, width),
            Stem::ImageNet => (Conv2d::new(p / "conv1", in_channels, width, 7, 2, 3)?, width),
        };
        let bn1 = BatchNorm2d::new(p / "bn1", c0)?;
        let mut blocks = Vec::new();
        let mut c_in = c0;
        for (s, &n) in stages.iter().enumerate() {
            let w = width << s;
            for j in 0..n {
                let stride = if s > 0 && j == 0 { 2 } else { 1 };
                blocks.push(Block::new(&(p / format!("layer{}", s + 1) / j), c_in, w, stride, bottleneck)?);
                c_in = if bottleneck { w * 4 } else { w };
            }
        }
        Ok(ResNet { stem, conv1, bn1, blocks, fc: Linear::new(p / "fc", c_in, classes)? })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.bn1.forward(&self.conv1.forward(x)?, train)?.f_relu()?;
        if self.stem == Stem::ImageNet {
            h = h.f_max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)?;
        }
        for b in &self.blocks {
            h = b.forward(&h, train)?;
        }
        self.fc.forward(&h.f_adaptive_avg_pool2d([1, 1])?.f_flatten(1, -1)?)
    }
}

/// A ResNet in eval mode with every batch norm folded into its convolution.
#[derive(Debug)]
pub struct FoldedResNet {
    stem: Stem,
    conv1: FoldedConv,
    blocks: Vec<(Vec<FoldedConv>, Option<FoldedConv>)>,
    fc: Linear,
}

impl ResNet {
    pub fn folded(&self) -> Result<FoldedResNet> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                let convs = b.convs.iter().map(|(c, n)| FoldedConv::new(c, n)).collect::<Result<Vec<_>>>()?;
                let down = b.downsample.as_ref().map(|(c, n)| FoldedConv::new(c, n)).transpose()?;
                Ok((convs, down))
            })
            .collect::<Result<_>>()?;
        Ok(FoldedResNet { stem: self.stem, conv1: FoldedConv::new(&self.conv1, &self.bn1)?, blocks, fc: self.fc.detached()? })
    }
}

impl FoldedResNet {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv1.forward(x)?.f_relu()?;
        if self.stem == Stem::ImageNet {
            h = h.f_max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)?;
        }
        for (convs, down) in &self.blocks {
            let mut y = h.shallow_clone();
            let last = convs.len() - 1;
            for (i, conv) in convs.iter().enumerate() {
                y = conv.forward(&y)?;
                if i < last {
                    y = y.f_relu()?;
                }
            }
            let shortcut = match down {
                Some(conv) => conv.forward(&h)?,
                None => h.shallow_clone(),
            };
            h = y.f_add(&shortcut)?.f_relu()?;
        }
        self.fc.forward(&h.f_adaptive_avg_pool2d([1, 1])?.f_flatten(1, -1)?)
    }
}
