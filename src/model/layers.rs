//! The few layers the architectures need, with fallible forward passes (every op is a tch
//! `f_` call, so a bad input returns an error instead of panicking a notebook kernel) and
//! PyTorch's parameter names and initialisation.

use crate::error::Result;
use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init};
use tch::Tensor;

/// torchvision's ResNet init for convolutions: kaiming_normal_(mode="fan_out", nonlinearity="relu").
const CONV_INIT: Init = Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanOut, non_linearity: NonLinearity::ReLU };

#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    /// A bias-free convolution (a batch norm always follows in these networks).
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64) -> Result<Conv2d> {
        Ok(Conv2d { weight: p.f_var("weight", &[c_out, c_in, kernel, kernel], CONV_INIT)?, stride, padding })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_conv2d(&self.weight, None::<Tensor>, [self.stride; 2], [self.padding; 2], [1, 1], 1)?)
    }
}

#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm2d {
    pub fn new(p: nn::Path, channels: i64) -> Result<BatchNorm2d> {
        Ok(BatchNorm2d {
            weight: p.f_var("weight", &[channels], Init::Const(1.0))?,
            bias: p.f_var("bias", &[channels], Init::Const(0.0))?,
            running_mean: p.f_zeros_no_train("running_mean", &[channels])?,
            running_var: p.f_ones_no_train("running_var", &[channels])?,
        })
    }
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(x.f_batch_norm(Some(&self.weight), Some(&self.bias), Some(&self.running_mean), Some(&self.running_var), train, 0.1, 1e-5, true)?)
    }
}

#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// PyTorch's nn.Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    pub fn new(p: nn::Path, c_in: i64, c_out: i64) -> Result<Linear> {
        let bound = 1.0 / (c_in as f64).sqrt();
        Ok(Linear {
            weight: p.f_var("weight", &[c_out, c_in], Init::Uniform { lo: -bound, up: bound })?,
            bias: p.f_var("bias", &[c_out], Init::Uniform { lo: -bound, up: bound })?,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, Some(&self.bias))?)
    }
}

/// A convolution followed by a batch norm in eval mode, folded into one convolution with a bias:
/// conv(x, w * s) + (beta - mean * s), s = gamma / sqrt(var + eps). The folded tensors are
/// constants (no gradient reaches the parameters): for attacks and evaluation, where the weights
/// do not change, it saves the batch norm's forward and backward pass over every activation.
#[derive(Debug)]
pub struct FoldedConv {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    padding: i64,
}

impl FoldedConv {
    pub fn new(conv: &Conv2d, bn: &BatchNorm2d) -> Result<FoldedConv> {
        let _guard = tch::no_grad_guard();
        let scale = bn.weight.f_div(&bn.running_var.f_add_scalar(1e-5)?.f_sqrt()?)?;
        let weight = super::layout_like(&conv.weight.f_mul(&scale.f_view([-1, 1, 1, 1])?)?, &conv.weight)?;
        let bias = bn.bias.f_sub(&bn.running_mean.f_mul(&scale)?)?;
        Ok(FoldedConv { weight, bias, stride: conv.stride, padding: conv.padding })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_conv2d(&self.weight, Some(&self.bias), [self.stride; 2], [self.padding; 2], [1, 1], 1)?)
    }
}

impl Linear {
    /// The same layer on detached tensors (shared storage, no gradient to the parameters).
    pub fn detached(&self) -> Result<Linear> {
        Ok(Linear { weight: self.weight.f_detach()?, bias: self.bias.f_detach()? })
    }
}
