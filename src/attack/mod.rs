//! Attacks: one trait, one call shape. `attack.perturb(&net, &x, &y)` takes a batch of images
//! in [0, 1] and their labels and returns the adversarial batch, also in [0, 1] and inside the
//! eps-ball around `x`. Attacks compute gradients with respect to the input only: parameter
//! gradients are left exactly as they were. One file per attack ([`Fgsm`], [`Pgd`]), plus
//! robust evaluation and gradient-masking checks in [`eval`], and the [`ThreatModel`] every
//! training and evaluation attack of a study derives from.

pub mod eval;
mod fgsm;
mod pgd;
mod threat;

pub use eval::{robust_evaluate, AttackOutcome, MaskingCheck, RobustEvaluation};
pub use fgsm::Fgsm;
pub use pgd::{spanning_step, Pgd};
pub use threat::{TestAttack, ThreatModel};

use crate::error::{Error, Result};
use crate::model::Network;
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use tch::{Kind, Reduction, Tensor};

/// The threat model's norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Norm {
    #[default]
    Linf,
    L2,
}

/// Whom the attack aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Targeting {
    /// Maximise the loss of the true label.
    #[default]
    Untargeted,
    /// Minimise the loss of the label the model finds least likely on the clean input.
    LeastLikely,
}

/// Perturbs a batch. Implemented by [`Fgsm`] and [`Pgd`] (and [`AttackSpec`], which holds either).
pub trait Attack {
    /// Adversarial versions of `x` (N x C x H x W in [0, 1]) for labels `y`.
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor>;
    /// A targeted attack toward given labels: minimises the loss of `target` instead of
    /// maximising the loss of the true label.
    fn perturb_targeted(&self, net: &Network, x: &Tensor, target: &Tensor) -> Result<Tensor>;
    /// A short description, e.g. "PGD-10 Linf eps=8/255".
    fn name(&self) -> String;
}

/// Any attack, as a serialisable value (used in training regimes and evaluation lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackSpec {
    Fgsm(Fgsm),
    Pgd(Pgd),
}

impl Attack for AttackSpec {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        match self {
            AttackSpec::Fgsm(a) => a.perturb(net, x, y),
            AttackSpec::Pgd(a) => a.perturb(net, x, y),
        }
    }
    fn perturb_targeted(&self, net: &Network, x: &Tensor, target: &Tensor) -> Result<Tensor> {
        match self {
            AttackSpec::Fgsm(a) => a.perturb_targeted(net, x, target),
            AttackSpec::Pgd(a) => a.perturb_targeted(net, x, target),
        }
    }
    fn name(&self) -> String {
        match self {
            AttackSpec::Fgsm(a) => a.name(),
            AttackSpec::Pgd(a) => a.name(),
        }
    }
}

impl AttackSpec {
    /// The same attack with its random starts seeded by `seed` and its call count reset: two
    /// evaluations with the same seed on the same data draw the same starts.
    pub fn seeded(&self, seed: u64) -> AttackSpec {
        match self {
            AttackSpec::Fgsm(a) => AttackSpec::Fgsm(a.clone().seed(seed)),
            AttackSpec::Pgd(a) => AttackSpec::Pgd(a.clone().seed(seed)),
        }
    }
    pub fn eps(&self) -> f64 {
        match self {
            AttackSpec::Fgsm(a) => a.eps,
            AttackSpec::Pgd(a) => a.eps,
        }
    }
    /// The same attack at another radius (steps scale with it).
    pub fn with_eps(&self, eps: f64) -> AttackSpec {
        match self {
            AttackSpec::Fgsm(a) => {
                let mut b = a.clone();
                (b.eps, b.step) = (eps, a.step * eps / a.eps.max(1e-12));
                AttackSpec::Fgsm(b)
            }
            AttackSpec::Pgd(a) => {
                let mut b = a.clone();
                (b.eps, b.step) = (eps, a.step * eps / a.eps.max(1e-12));
                AttackSpec::Pgd(b)
            }
        }
    }
}

impl From<Fgsm> for AttackSpec {
    fn from(a: Fgsm) -> Self {
        AttackSpec::Fgsm(a)
    }
}
impl From<Pgd> for AttackSpec {
    fn from(a: Pgd) -> Self {
        AttackSpec::Pgd(a)
    }
}

/// The default L-inf radius for a kind of input: 8/255 for colour images (CIFAR-like, the
/// paper's setting), 0.1 for grey-scale digit / clothing images (Fashion-MNIST, MNIST, 8x8 digits),
/// where 8/255 is too weak to separate robust from standard training.
pub fn default_eps(image_shape: [i64; 3]) -> f64 {
    if image_shape[0] == 3 {
        8.0 / 255.0
    } else {
        0.1
    }
}

/// Formats a radius as a fraction of 255 when it is one (8/255), else as a number.
pub fn format_eps(eps: f64) -> String {
    let k = eps * 255.0;
    if eps > 0.0 && (k - k.round()).abs() < 1e-6 {
        format!("{}/255", k.round())
    } else {
        format!("{eps}")
    }
}

/// Counts calls so each call of an attack draws a different, reproducible random start.
/// Cloning starts a fresh count; equality ignores it.
#[derive(Debug, Default)]
pub struct CallCounter(AtomicU64);

impl CallCounter {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}
impl Clone for CallCounter {
    fn clone(&self) -> Self {
        CallCounter::default()
    }
}
impl PartialEq for CallCounter {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

pub(crate) fn check_batch(net: &Network, x: &Tensor, y: &Tensor, eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::invalid(format!("attack radius eps = {eps}"), "use a finite eps >= 0, e.g. 8/255"));
    }
    let n = x.size().first().copied().unwrap_or(0);
    if y.size() != [n] || y.kind() != Kind::Int64 {
        return Err(Error::invalid(
            format!("labels of shape {:?} ({:?}) for {n} images", y.size(), y.kind()),
            "pass one i64 label per image",
        ));
    }
    if x.device() != net.device() || y.device() != net.device() {
        return Err(Error::invalid("images, labels and network are on different devices", "move the batch to net.device()"));
    }
    Ok(())
}

/// Per-example cross-entropy of the network's prediction for `x_adv` against `labels`, and its
/// gradient with respect to `x_adv` only (parameter gradients are not touched: the backward pass
/// is asked for the input's gradient alone).
pub(crate) fn input_gradient(net: &Network, x_adv: &Tensor, labels: &Tensor, train_mode: bool) -> Result<(Tensor, Tensor)> {
    input_gradient_of(&|x: &Tensor| net.forward(x, train_mode), x_adv, labels)
}

/// [`input_gradient`] through any forward function (the network, or its folded eval form).
pub(crate) fn input_gradient_of(forward: &dyn Fn(&Tensor) -> Result<Tensor>, x_adv: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let x_adv = x_adv.f_detach()?.f_set_requires_grad(true)?;
    let logits = forward(&x_adv)?;
    let losses = logits.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::None, -100, 0.0)?;
    let total = losses.f_sum(Kind::Float)?;
    let grad = Tensor::f_run_backward(&[&total], &[&x_adv], false, false)?
        .pop()
        .ok_or_else(|| Error::invalid("no input gradient", "report this as a bug"))?;
    Ok((losses.f_detach()?, grad))
}

/// Labels the network finds least likely on `x` (for least-likely targeted attacks).
pub(crate) fn least_likely(net: &Network, x: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    Ok(net.forward(x, false)?.f_argmin(-1, false)?)
}

/// Per-example L2 norm over all but the batch dimension, shaped N x 1 x 1 x 1 for broadcasting.
pub(crate) fn l2_norm(t: &Tensor) -> Result<Tensor> {
    let n = t.size()[0];
    let mut shape = vec![n];
    shape.extend(std::iter::repeat_n(1, t.dim() - 1));
    Ok(t.f_flatten(1, -1)?.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?.f_view(shape.as_slice())?)
}

/// Projects `x_adv` onto the eps-ball around `x` (in `norm`) and into [0, 1].
pub(crate) fn project(x_adv: &Tensor, x: &Tensor, eps: f64, norm: Norm) -> Result<Tensor> {
    let delta = x_adv.f_sub(x)?;
    let delta = match norm {
        Norm::Linf => delta.f_clamp(-eps, eps)?,
        Norm::L2 => {
            let factor = l2_norm(&delta)?.f_clamp_min(1e-12)?.f_reciprocal()?.f_mul_scalar(eps)?.f_clamp_max(1.0)?;
            delta.f_mul(&factor)?
        }
    };
    Ok(x.f_add(&delta)?.f_clamp(0.0, 1.0)?)
}

/// A random start inside the eps-ball (uniform in the L-inf ball; for L2 a uniform direction
/// with a radius uniform in [0, eps]), drawn from a seeded generator.
pub(crate) fn random_start(x: &Tensor, eps: f64, norm: Norm, seed: u64) -> Result<Tensor> {
    let mut rng = Rng::new(seed);
    let shape = x.size();
    let delta = match norm {
        Norm::Linf => rng.uniform_tensor(&shape, -eps, eps, x.device())?,
        Norm::L2 => {
            let d = rng.normal_tensor(&shape, x.device())?;
            let radii: Vec<f32> = (0..shape[0]).map(|_| (rng.uniform() * eps) as f32).collect();
            let mut rshape = vec![shape[0]];
            rshape.extend(std::iter::repeat_n(1, shape.len() - 1));
            let r = Tensor::from_slice(&radii).f_view(rshape.as_slice())?.f_to_device(x.device())?;
            d.f_div(&l2_norm(&d)?.f_clamp_min(1e-12)?)?.f_mul(&r)?
        }
    };
    Ok(x.f_add(&delta)?.f_clamp(0.0, 1.0)?)
}

/// One ascent step (descent for targeted attacks) along the gradient's sign (L-inf) or its
/// per-example normalised direction (L2).
pub(crate) fn ascend(x_adv: &Tensor, grad: &Tensor, step: f64, norm: Norm, targeted: bool) -> Result<Tensor> {
    let dir = match norm {
        Norm::Linf => grad.f_sign()?,
        Norm::L2 => grad.f_div(&l2_norm(grad)?.f_clamp_min(1e-12)?)?,
    };
    let step = if targeted { -step } else { step };
    Ok(x_adv.f_add(&dir.f_mul_scalar(step)?)?)
}

/// The shape of a projected-gradient run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ascent {
    pub norm: Norm,
    pub eps: f64,
    pub step: f64,
    pub steps: usize,
    pub train_mode: bool,
}

/// `a.steps` projected gradient steps from `start`, toward `labels` when `targeted`. In eval
/// mode the weights cannot change during the attack, so the network is folded once
/// ([`Network::folded_eval`]) and every step runs without batch-norm passes.
pub(crate) fn iterate(net: &Network, x: &Tensor, labels: &Tensor, start: Tensor, a: Ascent, targeted: bool) -> Result<Tensor> {
    let folded = if a.train_mode { None } else { Some(net.folded_eval()?) };
    let forward = |x: &Tensor| match &folded {
        Some(f) => f.forward(x),
        None => net.forward(x, a.train_mode),
    };
    let mut x_adv = start;
    for _ in 0..a.steps {
        let (_, grad) = input_gradient_of(&forward, &x_adv, labels)?;
        let _guard = tch::no_grad_guard();
        x_adv = project(&ascend(&x_adv, &grad, a.step, a.norm, targeted)?, x, a.eps, a.norm)?;
    }
    Ok(x_adv.f_detach()?)
}

/// The labels an attack uses, and whether it is targeted.
pub(crate) fn attack_labels(targeting: Targeting, net: &Network, x: &Tensor, y: &Tensor) -> Result<(Tensor, bool)> {
    Ok(match targeting {
        Targeting::Untargeted => (y.shallow_clone(), false),
        Targeting::LeastLikely => (least_likely(net, x)?, true),
    })
}
