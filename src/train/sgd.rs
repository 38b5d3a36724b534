//! SGD with momentum, dampening, weight decay and Nesterov, with exactly PyTorch's update rule
//! (torch.optim.SGD). Owning the optimizer keeps its state inspectable and saveable (for resume)
//! and lets later code (masks) act on every buffer.

use crate::error::{Error, Result};
use crate::model::Network;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// SGD hyper-parameters. The learning rate here is the base rate the schedule scales. Its
/// setters (`lr`, `momentum`, `weight_decay`, `nesterov`) are also a [`super::Recipe`]'s and a
/// [`super::TrainConfig`]'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate_delegates(ty = "super::Recipe", field = "sgd"))]
#[setters(generate_delegates(ty = "super::TrainConfig", method = "sgd_mut"))]
pub struct SgdConfig {
    /// The base learning rate.
    pub lr: f64,
    pub momentum: f64,
    #[setters(skip)]
    pub dampening: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 5e-4, nesterov: false }
    }
}

impl SgdConfig {
    pub fn check(&self) -> Result<()> {
        // Every value becomes an f32 scalar in the update: beyond f32's range libtorch cannot
        // convert it (and tch 0.26 panics on that failure instead of returning it).
        for (name, v) in [("lr", self.lr), ("weight_decay", self.weight_decay)] {
            if v.is_finite() && v.abs() > f32::MAX as f64 {
                return Err(Error::invalid(
                    format!("SGD {name} = {v:e} is beyond what a 32-bit float holds ({:e})", f32::MAX),
                    format!("use a usual {name}, e.g. {}", if name == "lr" { "0.01" } else { "5e-4" }),
                ));
            }
        }
        let ok = self.lr > 0.0
            && self.lr.is_finite()
            && (0.0..1.0).contains(&self.momentum)
            && self.weight_decay >= 0.0
            && (0.0..=1.0).contains(&self.dampening);
        if !ok {
            return Err(Error::invalid(
                format!("SGD settings out of range: {self:?}"),
                "use lr > 0, 0 <= momentum < 1, weight_decay >= 0, 0 <= dampening <= 1",
            ));
        }
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid("Nesterov momentum needs momentum > 0 and dampening 0", "set momentum or turn nesterov off"));
        }
        Ok(())
    }
}

/// The optimizer: parameters (shallow clones sharing storage with the network) and their
/// momentum buffers.
#[derive(Debug)]
pub struct Sgd {
    pub config: SgdConfig,
    params: Vec<(String, Tensor)>,
    momentum: Vec<Option<Tensor>>,
    /// 0/1 masks of pruned parameters: their gradients are zeroed before the update, so weight
    /// decay and momentum never move a pruned weight off zero.
    masks: Vec<Option<Tensor>>,
}

impl Sgd {
    pub fn new(net: &Network, config: SgdConfig) -> Result<Sgd> {
        config.check()?;
        let params = net.parameters();
        let momentum = params.iter().map(|_| None).collect();
        let masks = params.iter().map(|(n, _)| net.weight_mask(n).map(|m| m.shallow_clone())).collect();
        Ok(Sgd { config, params, momentum, masks })
    }

    /// Zeroes the gradients of all parameters.
    pub fn zero_grad(&mut self) -> Result<()> {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.f_detach_()?;
                let _ = g.f_zero_()?;
            }
        }
        Ok(())
    }

    /// One update with learning rate `lr` from the gradients accumulated in the parameters'
    /// `.grad` (after `zero_grad` and `backward`); the `.grad` tensors are left as they were.
    /// d = g + wd p; b = m b + (1 - dampening) d (b = d at the first step);
    /// d = d + m b (Nesterov) or b; p -= lr d.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let grads = {
            let _guard = tch::no_grad_guard();
            self.params
                .iter()
                .map(|(_, p)| p.grad())
                .map(|g| if g.defined() { crate::model::deep_copy(&g) } else { Ok(g) })
                .collect::<Result<Vec<_>>>()?
        };
        self.step_with_grads(grads, lr)
    }

    /// Backward pass of `loss` to the parameters and one update, without touching their `.grad`:
    /// the gradients come back as fresh tensors (no zeroing pass, no accumulation pass) and the
    /// update runs in place on them.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) -> Result<()> {
        let params: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[loss], &params, false, false)?;
        self.step_with_grads(grads, lr)
    }

    /// One update from `grads` (one per parameter, in [`Network::parameters`] order; undefined
    /// tensors skip their parameter). The gradients are consumed: the update works in place on
    /// them and on the momentum buffers, with no temporary tensors.
    pub fn step_with_grads(&mut self, grads: Vec<Tensor>, lr: f64) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(Error::invalid(
                format!("{} gradients for {} parameters", grads.len(), self.params.len()),
                "pass one per parameter",
            ));
        }
        let c = &self.config;
        let _guard = tch::no_grad_guard();
        let scalar = |v: f64| {
            if v.is_nan() || v.abs() > f32::MAX as f64 {
                return Err(Error::invalid(
                    format!("an SGD update with the value {v:e}"),
                    "use a learning rate and weight decay an f32 holds",
                ));
            }
            Ok(Tensor::f_full([], v, (tch::Kind::Float, tch::Device::Cpu))?)
        };
        let (wd, momentum, keep, neg_lr) = (scalar(c.weight_decay)?, scalar(c.momentum)?, scalar(1.0 - c.dampening)?, scalar(-lr)?);
        for ((((_, p), buf), mask), mut g) in self.params.iter().zip(self.momentum.iter_mut()).zip(&self.masks).zip(grads) {
            if !g.defined() {
                continue;
            }
            if g.kind() != p.kind() {
                g = g.f_to_kind(p.kind())?;
            }
            if let Some(m) = mask {
                let _ = g.f_mul_(m)?;
            }
            if c.weight_decay != 0.0 {
                let _ = g.f_addcmul_(p, &wd)?;
            }
            let d = if c.momentum != 0.0 {
                let b = match buf.take() {
                    None => crate::model::deep_copy(&g)?,
                    Some(mut b) => {
                        let _ = b.f_mul_(&momentum)?;
                        let _ = if c.dampening != 0.0 { b.f_addcmul_(&g, &keep)? } else { b.f_add_(&g)? };
                        b
                    }
                };
                let d = if c.nesterov {
                    let _ = g.f_addcmul_(&b, &momentum)?;
                    g
                } else {
                    b.shallow_clone()
                };
                *buf = Some(b);
                d
            } else {
                g
            };
            let mut p = p.shallow_clone();
            let _ = p.f_addcmul_(&d, &neg_lr)?;
        }
        Ok(())
    }

    /// Momentum buffers by parameter name (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params.iter().zip(&self.momentum).filter_map(|((n, _), b)| b.as_ref().map(|b| (n.clone(), b.shallow_clone()))).collect()
    }

    /// Restores momentum buffers saved with [`Sgd::state`].
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        let mut by_name: std::collections::HashMap<String, Tensor> = state.into_iter().collect();
        for ((n, p), buf) in self.params.iter().zip(self.momentum.iter_mut()) {
            *buf = match by_name.remove(n) {
                Some(b) if b.size() == p.size() => Some(b.f_to_device(p.device())?),
                Some(b) => {
                    return Err(Error::invalid(
                        format!("momentum for '{n}' has shape {:?}, parameter {:?}", b.size(), p.size()),
                        "resume with the same architecture",
                    ))
                }
                None => None,
            };
        }
        Ok(())
    }
}
