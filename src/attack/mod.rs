//! Attacks: one trait, one call shape. `attack.perturb(&net, &x, &y)` takes a batch of images
//! in [0, 1] and their labels and returns the adversarial batch, also in [0, 1] and inside the
//! eps-ball around `x`. Attacks compute gradients with respect to the input only: parameter
//! gradients are left exactly as they were. One file per attack ([`Fgsm`], [`Pgd`], [`Apgd`],
//! [`ApgdT`], [`Square`], [`FabT`]), [`AutoAttack`] (the ensemble of Croce & Hein 2020), plus
//! robust evaluation and gradient-masking checks in [`eval`], and the [`ThreatModel`] every
//! training and evaluation attack of a study derives from.
//!
//! This file holds what the attacks share, once: the losses (cross-entropy, the margin, DLR and
//! targeted DLR), projections onto the eps-balls, random starts, input gradients, and the
//! bookkeeping of worst cases over restarts and target classes (`WorstCase`).

mod apgd;
mod apgdt;
mod autoattack;
pub mod eval;
mod fab;
mod fgsm;
mod pgd;
mod square;
mod threat;

pub use apgd::{Apgd, ApgdLoss};
pub use apgdt::ApgdT;
pub use autoattack::{AutoAttack, AutoAttackVersion};
pub use eval::{compare_pgd_autoattack, pgd_gap_warning, robust_evaluate, AttackOutcome, MaskingCheck, PgdGapCheck, RobustEvaluation};
pub use fab::FabT;
pub use fgsm::Fgsm;
pub use pgd::{spanning_step, Pgd};
pub use square::Square;
pub use threat::{TestAttack, ThreatModel};

use crate::error::{Error, Result};
use crate::model::{deep_copy, Network};
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

impl Norm {
    /// "Linf" or "L2", as attack names print it.
    pub fn label(self) -> &'static str {
        match self {
            Norm::Linf => "Linf",
            Norm::L2 => "L2",
        }
    }
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

/// Perturbs a batch. Implemented by every attack (and [`AttackSpec`], which holds any of them).
pub trait Attack {
    /// Adversarial versions of `x` (N x C x H x W in [0, 1]) for labels `y`.
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor>;
    /// A short description, e.g. "PGD-10 Linf eps=8/255".
    fn name(&self) -> String;
}

/// An attack that can aim at given labels (FGSM, PGD, APGD, Square). APGD-T, FAB-T and
/// AutoAttack choose their own targets, so they do not implement it.
pub trait Targeted: Attack {
    /// Minimises the loss of `target` instead of maximising the loss of the true label.
    fn perturb_targeted(&self, net: &Network, x: &Tensor, target: &Tensor) -> Result<Tensor>;
}

/// Any attack, as a serialisable value (used in training regimes and evaluation lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackSpec {
    Fgsm(Fgsm),
    Pgd(Pgd),
    Apgd(Apgd),
    ApgdT(ApgdT),
    Square(Square),
    FabT(FabT),
    AutoAttack(AutoAttack),
}

/// `$body` with `$a` bound to the attack inside an [`AttackSpec`], whatever its kind.
macro_rules! each_attack {
    ($spec:expr, $a:ident => $body:expr) => {
        match $spec {
            AttackSpec::Fgsm($a) => $body,
            AttackSpec::Pgd($a) => $body,
            AttackSpec::Apgd($a) => $body,
            AttackSpec::ApgdT($a) => $body,
            AttackSpec::Square($a) => $body,
            AttackSpec::FabT($a) => $body,
            AttackSpec::AutoAttack($a) => $body,
        }
    };
}

impl Attack for AttackSpec {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        each_attack!(self, a => a.perturb(net, x, y))
    }
    fn name(&self) -> String {
        each_attack!(self, a => a.name())
    }
}

impl AttackSpec {
    /// The same attack with its random starts seeded by `seed` and its call count reset: two
    /// evaluations with the same seed on the same data draw the same starts.
    pub fn seeded(&self, seed: u64) -> AttackSpec {
        each_attack!(self, a => AttackSpec::from(a.clone().seed(seed)))
    }
    pub fn eps(&self) -> f64 {
        each_attack!(self, a => a.eps)
    }
    /// The same attack at another radius (FGSM and PGD steps scale with it; the other attacks
    /// derive their steps from eps).
    pub fn with_eps(&self, eps: f64) -> AttackSpec {
        let mut spec = self.clone();
        match &mut spec {
            AttackSpec::Fgsm(b) => b.step *= eps / b.eps.max(1e-12),
            AttackSpec::Pgd(b) => b.step *= eps / b.eps.max(1e-12),
            _ => {}
        }
        each_attack!(&mut spec, b => b.eps = eps);
        spec
    }
    /// Whether the attack follows input gradients (everything but the black-box [`Square`]);
    /// used by the gradient-masking checks of [`robust_evaluate`].
    pub fn uses_gradients(&self) -> bool {
        !matches!(self, AttackSpec::Square(_))
    }
}

macro_rules! into_spec {
    ($($t:ident),*) => {$(
        impl From<$t> for AttackSpec {
            fn from(a: $t) -> Self {
                AttackSpec::$t(a)
            }
        }
    )*};
}
into_spec!(Fgsm, Pgd, Apgd, ApgdT, Square, FabT, AutoAttack);

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
    /// A counter whose first call is number `n`.
    pub(crate) fn starting_at(n: u64) -> CallCounter {
        CallCounter(AtomicU64::new(n))
    }
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
    /// The seed of this call's random numbers: `seed` mixed with the call's number.
    fn call_seed(&self, seed: u64) -> u64 {
        seed.wrapping_mul(0x9E37_79B9).wrapping_add(self.next())
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
    if x.dim() != 4 {
        return Err(Error::invalid(format!("images of shape {:?}", x.size()), "pass a batch of N x C x H x W images in [0, 1]"));
    }
    let n = x.size()[0];
    if y.size() != [n] || y.kind() != Kind::Int64 {
        return Err(Error::invalid(
            format!("labels of shape {:?} ({:?}) for {n} images", y.size(), y.kind()),
            "pass one i64 label per image",
        ));
    }
    if x.device() != net.device() || y.device() != net.device() {
        return Err(Error::invalid("images, labels and network are on different devices", "move the batch to net.device()"));
    }
    if n > 0 {
        let (lo, hi) = (y.f_min()?.f_int64_value(&[])?, y.f_max()?.f_int64_value(&[])?);
        let classes = net.num_classes() as i64;
        if lo < 0 || hi >= classes {
            return Err(Error::invalid(
                format!("labels from {lo} to {hi} for a network with {classes} classes"),
                format!("pass labels in 0..{classes}"),
            ));
        }
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
    let (_, losses, grad) = loss_and_gradient(forward, x_adv, &|z: &Tensor| cross_entropy(z, labels))?;
    Ok((losses, grad))
}

/// A forward function: logits for a batch (the network in eval mode, usually folded).
pub(crate) type Forward<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;

/// Logits, per-example `loss` (a function of the logits) and the gradient of the summed loss
/// with respect to `x_adv` only (parameter gradients are not touched), all detached.
pub(crate) fn loss_and_gradient(
    forward: Forward,
    x_adv: &Tensor,
    loss: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let x_adv = x_adv.f_detach()?.f_set_requires_grad(true)?;
    let logits = forward(&x_adv)?;
    let losses = loss(&logits)?;
    let total = losses.f_sum(Kind::Float)?;
    let grad = Tensor::f_run_backward(&[&total], &[&x_adv], false, false)?
        .pop()
        .ok_or_else(|| Error::invalid("no input gradient", "report this as a bug"))?;
    Ok((logits.f_detach()?, losses.f_detach()?, grad))
}

/// Per-example cross-entropy of `logits` against `labels`.
pub(crate) fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(logits.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::None, -100, 0.0)?)
}

/// Per-example margin z_y - max_{j != y} z_j: positive while `y` wins, the loss Square minimises.
pub(crate) fn margin(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let y = y.f_unsqueeze(1)?;
    let z_y = logits.f_gather(1, &y, false)?.f_squeeze_dim(1)?;
    let others = logits.f_scatter_value(1, &y, f64::NEG_INFINITY)?.f_amax([1i64].as_slice(), false)?;
    Ok(z_y.f_sub(&others)?)
}

/// The `k` largest logits per example, largest first (N x k).
fn top_logits(logits: &Tensor, k: i64) -> Result<Tensor> {
    Ok(logits.f_topk(k, 1, true, true)?.0)
}

/// The difference of logits ratio (Croce & Hein 2020, Eq. 6): -(z_y - max_{j != y} z_j) /
/// (z_pi1 - z_pi3), invariant to shifts and scales of the logits. Needs 3 classes.
pub(crate) fn dlr_loss(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let top = top_logits(logits, 3)?;
    let scale = top.f_select(1, 0)?.f_sub(&top.f_select(1, 2)?)?.f_add_scalar(1e-12)?;
    Ok(margin(logits, y)?.f_neg()?.f_div(&scale)?)
}

/// The targeted DLR loss (Croce & Hein 2020, Eq. 7): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2).
/// Needs 4 classes.
pub(crate) fn targeted_dlr_loss(logits: &Tensor, y: &Tensor, target: &Tensor) -> Result<Tensor> {
    let top = top_logits(logits, 4)?;
    let low = top.f_select(1, 2)?.f_add(&top.f_select(1, 3)?)?.f_mul_scalar(0.5)?;
    let scale = top.f_select(1, 0)?.f_sub(&low)?.f_add_scalar(1e-12)?;
    let z_y = logits.f_gather(1, &y.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?;
    let z_t = logits.f_gather(1, &target.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?;
    Ok(z_t.f_sub(&z_y)?.f_div(&scale)?)
}

/// Fails unless the network has at least `needed` classes (`what` needs them).
pub(crate) fn require_classes(net: &Network, needed: usize, what: &str, fix: &str) -> Result<()> {
    if net.num_classes() < needed {
        return Err(Error::invalid(format!("{what} needs at least {needed} classes, the network has {}", net.num_classes()), fix));
    }
    Ok(())
}

/// The class whose logit is the `rank`-th largest (rank 1 = the prediction), per example.
pub(crate) fn ranked_class(logits: &Tensor, rank: i64) -> Result<Tensor> {
    Ok(logits.f_topk(rank, 1, true, true)?.1.f_select(1, rank - 1)?)
}

/// Predicted classes of `forward` on `x`, without gradients.
pub(crate) fn predict(forward: Forward, x: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    Ok(forward(x)?.f_argmax(-1, false)?)
}

/// Labels the network finds least likely on `x` (for least-likely targeted attacks).
pub(crate) fn least_likely(net: &Network, x: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    Ok(net.forward(x, false)?.f_argmin(-1, false)?)
}

/// Per-example L2 norm over all but the batch dimension, shaped N x 1 x 1 x 1 for broadcasting.
pub(crate) fn l2_norm(t: &Tensor) -> Result<Tensor> {
    lp_norm(t, Norm::L2)
}

/// Per-example norm over all but the batch dimension, shaped N x 1 x 1 x 1 for broadcasting.
pub(crate) fn lp_norm(t: &Tensor, norm: Norm) -> Result<Tensor> {
    let flat = t.f_flatten(1, -1)?;
    let per = match norm {
        Norm::Linf => flat.f_abs()?.f_amax([1i64].as_slice(), false)?,
        Norm::L2 => flat.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), false)?,
    };
    Ok(per.f_view(per_example_shape(t).as_slice())?)
}

/// N x 1 x ... x 1: the shape that broadcasts one value per example over a batch like `t`.
pub(crate) fn per_example_shape(t: &Tensor) -> Vec<i64> {
    let mut shape = vec![t.size().first().copied().unwrap_or(0)];
    shape.extend(std::iter::repeat_n(1, t.dim().saturating_sub(1)));
    shape
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

/// A random point at distance `radius` from `x` (before clipping to [0, 1]): `x + radius * t /
/// |t|` with t uniform in [-1, 1]^d (L-inf) or standard normal (L2), as APGD and FAB start.
pub(crate) fn surface_start(x: &Tensor, radius: f64, norm: Norm, rng: &mut Rng) -> Result<Tensor> {
    let t = match norm {
        Norm::Linf => rng.uniform_tensor(&x.size(), -1.0, 1.0, x.device())?,
        Norm::L2 => rng.normal_tensor(&x.size(), x.device())?,
    };
    let scale = lp_norm(&t, norm)?.f_add_scalar(1e-12)?.f_reciprocal()?.f_mul_scalar(radius)?;
    Ok(x.f_add(&t.f_mul(&scale)?)?.f_clamp(0.0, 1.0)?)
}

/// One ascent step (descent for targeted attacks) along the gradient's sign (L-inf) or its
/// per-example normalised direction (L2).
pub(crate) fn ascend(x_adv: &Tensor, grad: &Tensor, step: f64, norm: Norm, targeted: bool) -> Result<Tensor> {
    let step = if targeted { -step } else { step };
    Ok(x_adv.f_add(&direction(grad, norm)?.f_mul_scalar(step)?)?)
}

/// The steepest-ascent direction of unit size for a gradient: its sign (L-inf) or its
/// per-example normalised value (L2).
pub(crate) fn direction(grad: &Tensor, norm: Norm) -> Result<Tensor> {
    Ok(match norm {
        Norm::Linf => grad.f_sign()?,
        Norm::L2 => grad.f_div(&l2_norm(grad)?.f_clamp_min(1e-12)?)?,
    })
}

/// What one pass of an attack (a restart, a target class) found for the examples it ran on.
pub(crate) struct PassOutcome {
    /// An adversarial example where the pass succeeded, else its most damaging point.
    pub adv: Tensor,
    /// Where the pass succeeded (bool).
    pub fooled: Tensor,
    /// How damaging `adv` is where the pass failed (the attack's loss: higher is worse for the
    /// model); -inf where the pass keeps no point.
    pub score: Tensor,
}

/// The worst cases an attack has found for a batch so far and which examples are still robust:
/// the bookkeeping of attacks that make several passes (restarts, target classes), each on the
/// examples no pass has broken yet (AutoAttack's convention). Per example it keeps the first
/// adversarial example found, else the most damaging point of any pass (the clean image to
/// begin with).
pub(crate) struct WorstCase {
    adv: Tensor,
    robust: Tensor,
    score: Tensor,
}

impl WorstCase {
    /// Starts from the clean batch `x`; `robust` (bool) marks the examples to attack.
    pub fn new(x: &Tensor, robust: Tensor) -> Result<WorstCase> {
        let score = Tensor::f_full([x.size()[0]], f64::NEG_INFINITY, (Kind::Float, x.device()))?;
        Ok(WorstCase { adv: deep_copy(x)?, robust, score })
    }

    /// Runs `pass` on the examples still robust (given their indices and images) and merges what
    /// it found. Returns false, without calling `pass`, when no example is left.
    pub fn pass(&mut self, x: &Tensor, pass: impl FnOnce(&Tensor, &Tensor) -> Result<PassOutcome>) -> Result<bool> {
        let idx = self.robust.f_nonzero()?.f_flatten(0, -1)?;
        if idx.size()[0] == 0 {
            return Ok(false);
        }
        let out = pass(&idx, &x.f_index_select(0, &idx)?)?;
        let _guard = tch::no_grad_guard();
        let take = out.score.f_gt_tensor(&self.score.f_index_select(0, &idx)?)?.f_logical_or(&out.fooled)?;
        let rows = take.f_nonzero()?.f_flatten(0, -1)?;
        let dst = idx.f_index_select(0, &rows)?;
        self.adv = self.adv.f_index_copy(0, &dst, &out.adv.f_index_select(0, &rows)?)?;
        self.score = self.score.f_index_copy(0, &dst, &out.score.f_index_select(0, &rows)?.f_to_kind(Kind::Float)?)?;
        let broken = idx.f_masked_select(&out.fooled)?;
        self.robust = self.robust.f_index_fill(0, &broken, 0)?;
        Ok(true)
    }

    /// The adversarial batch.
    pub fn into_adv(self) -> Tensor {
        self.adv
    }
}

/// The rows of `t` at `rows` (compacting an attack's state to the examples still running).
pub(crate) fn keep_rows(tensors: &mut [&mut Tensor], rows: &Tensor) -> Result<()> {
    for t in tensors.iter_mut() {
        **t = t.f_index_select(0, rows)?;
    }
    Ok(())
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
