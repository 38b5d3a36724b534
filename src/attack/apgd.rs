//! APGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
//! parameter-free attacks", ICML 2020): projected gradient ascent with momentum 0.75 whose step
//! starts at 2 eps and is halved at checkpoints where the loss stopped improving, each halving
//! restarting from the best point found so far. This file owns that algorithm (APGD-T in
//! `apgdt.rs` runs it with its own loss), the checkpoint schedule, and the untargeted attack with
//! the cross-entropy (APGD-CE) or the DLR loss (APGD-DLR).
//!
//! It follows AutoAttack / torchattacks 3.5.1 step for step: a random start on the eps-sphere,
//! checkpoints after 22%, 41%, 57%, ... of the iterations (p_{j+1} = p_j + max(p_j - p_{j-1} -
//! 0.03, 0.06)), and a halving where at most rho = 0.75 of the steps since the last checkpoint
//! increased the loss, or where the step was not halved at the last checkpoint and the best
//! loss has not improved since. Restarts run on the examples still robust, as AutoAttack's do.
//! One liberty: an example stops being iterated once it is misclassified (its outcome is
//! settled, and every example's run is independent of the others), which saves time and
//! changes no outcome.

use super::{
    check_batch, cross_entropy, direction, dlr_loss, format_eps, keep_rows, loss_and_gradient, per_example_shape, predict, project,
    require_classes, surface_start, targeted_dlr_loss, Attack, CallCounter, Forward, Norm, PassOutcome, Targeted, WorstCase,
};
use crate::error::{Error, Result};
use crate::model::{deep_copy, Network};
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The loss APGD maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ApgdLoss {
    /// Cross-entropy (APGD-CE).
    #[default]
    Ce,
    /// The difference of logits ratio (APGD-DLR), invariant to the scale of the logits.
    Dlr,
}

/// APGD with the cross-entropy or the DLR loss, untargeted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[setters(generate = false)]
pub struct Apgd {
    pub norm: Norm,
    pub eps: f64,
    #[setters(generate)]
    pub loss: ApgdLoss,
    /// Iterations per run (AutoAttack: 100).
    #[setters(generate)]
    pub n_iter: usize,
    /// Runs (>= 1), each from a new random start on the examples still robust.
    #[setters(generate)]
    pub n_restarts: usize,
    /// Halve the step where at most this fraction of the steps since the last checkpoint
    /// increased the loss (AutoAttack: 0.75).
    #[setters(generate)]
    pub rho: f64,
    #[setters(generate)]
    pub seed: u64,
    #[serde(skip)]
    pub(crate) calls: CallCounter,
}

/// Momentum of the APGD update (AutoAttack's alpha).
const MOMENTUM: f64 = 0.75;

impl Apgd {
    /// APGD-CE as in AutoAttack: 100 iterations, one run, rho 0.75.
    pub fn ce(norm: Norm, eps: f64) -> Apgd {
        Apgd { norm, eps, loss: ApgdLoss::Ce, n_iter: 100, n_restarts: 1, rho: 0.75, seed: 0, calls: CallCounter::default() }
    }
    /// APGD-DLR: as [`Apgd::ce`] with the DLR loss (needs 3 classes).
    pub fn dlr(norm: Norm, eps: f64) -> Apgd {
        Apgd { loss: ApgdLoss::Dlr, ..Apgd::ce(norm, eps) }
    }

    fn check(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<()> {
        check_batch(net, x, y, self.eps)?;
        Settings { norm: self.norm, eps: self.eps, n_iter: self.n_iter, rho: self.rho }.check("APGD")?;
        if self.n_restarts == 0 {
            return Err(Error::invalid("APGD with 0 restarts", "use n_restarts >= 1 (AutoAttack uses 1)"));
        }
        if self.loss == ApgdLoss::Dlr {
            require_classes(net, 3, "APGD-DLR", "use ApgdLoss::Ce on two-class networks")?;
        }
        Ok(())
    }

    fn run(&self, net: &Network, x: &Tensor, y: &Tensor, t: &Tensor, objective: Objective) -> Result<Tensor> {
        let folded = net.folded_eval()?;
        let forward = |x: &Tensor| folded.forward(x);
        let settings = Settings { norm: self.norm, eps: self.eps, n_iter: self.n_iter, rho: self.rho };
        let logits = {
            let _guard = tch::no_grad_guard();
            forward(x)?
        };
        let mut worst = WorstCase::new(x, objective.success(&logits, y, t)?.f_logical_not()?)?;
        let mut rng = Rng::new(self.calls.call_seed(self.seed));
        for _ in 0..self.n_restarts {
            let more = worst.pass(x, |idx, xs| {
                let (ys, ts) = (y.f_index_select(0, idx)?, t.f_index_select(0, idx)?);
                run(&forward, xs, &ys, &ts, objective, &settings, &mut rng)
            })?;
            if !more {
                break;
            }
        }
        Ok(worst.into_adv())
    }
}

impl Attack for Apgd {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.check(net, x, y)?;
        self.run(net, x, y, y, Objective::Untargeted(self.loss))
    }
    /// Toward `target`: maximises -CE(target), or the targeted DLR loss with the clean prediction
    /// as the label to leave (needs 4 classes); succeeds where the prediction is the target.
    fn name(&self) -> String {
        let loss = match self.loss {
            ApgdLoss::Ce => "CE",
            ApgdLoss::Dlr => "DLR",
        };
        let restarts = if self.n_restarts > 1 { format!(" x{} restarts", self.n_restarts) } else { String::new() };
        format!("APGD-{loss}-{} {} eps={}{restarts}", self.n_iter, self.norm.label(), format_eps(self.eps))
    }
}

impl Targeted for Apgd {
    fn perturb_targeted(&self, net: &Network, x: &Tensor, target: &Tensor) -> Result<Tensor> {
        self.check(net, x, target)?;
        if self.loss == ApgdLoss::Dlr {
            require_classes(net, 4, "targeted APGD-DLR", "use ApgdLoss::Ce")?;
        }
        let clean = predict(&|x: &Tensor| net.forward(x, false), x)?;
        self.run(net, x, &clean, target, Objective::Toward(self.loss))
    }
}

/// What an APGD run maximises, and when it has succeeded. `y` is the label to leave, `t` the
/// target (equal to `y` for untargeted objectives).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Objective {
    /// Maximise the loss of `y`; success once the prediction is not `y`.
    Untargeted(ApgdLoss),
    /// APGD-T: maximise the targeted DLR loss toward `t`; success once the prediction is not `y`.
    TargetedDlr,
    /// Toward a given class: maximise -CE(t) or the targeted DLR loss; success once the
    /// prediction is `t`.
    Toward(ApgdLoss),
}

impl Objective {
    fn loss(self, logits: &Tensor, y: &Tensor, t: &Tensor) -> Result<Tensor> {
        match self {
            Objective::Untargeted(ApgdLoss::Ce) => cross_entropy(logits, y),
            Objective::Untargeted(ApgdLoss::Dlr) => dlr_loss(logits, y),
            Objective::TargetedDlr | Objective::Toward(ApgdLoss::Dlr) => targeted_dlr_loss(logits, y, t),
            Objective::Toward(ApgdLoss::Ce) => Ok(cross_entropy(logits, t)?.f_neg()?),
        }
    }
    fn success(self, logits: &Tensor, y: &Tensor, t: &Tensor) -> Result<Tensor> {
        let pred = logits.f_argmax(-1, false)?;
        Ok(match self {
            Objective::Toward(_) => pred.f_eq_tensor(t)?,
            _ => pred.f_ne_tensor(y)?,
        })
    }
}

/// The shape of one APGD run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub norm: Norm,
    pub eps: f64,
    pub n_iter: usize,
    pub rho: f64,
}

impl Settings {
    pub fn check(&self, what: &str) -> Result<()> {
        if self.n_iter == 0 {
            return Err(Error::invalid(format!("{what} with 0 iterations"), "use n_iter >= 1 (AutoAttack uses 100)"));
        }
        if !(self.rho > 0.0 && self.rho <= 1.0) {
            return Err(Error::invalid(format!("{what} with rho = {}", self.rho), "use rho in (0, 1] (AutoAttack uses 0.75)"));
        }
        Ok(())
    }
}

/// The step-size checkpoints of an `n_iter`-iteration run: how many iterations are done at each
/// check. The windows between checks shrink from 22% of the run by 3% per check down to 6%
/// (Croce & Hein 2020, Sec. 3.2), in whole iterations as AutoAttack counts them: for 100
/// iterations 22, 41, 57, 70, 80, 87, 93, 99.
pub fn checkpoints(n_iter: usize) -> Vec<usize> {
    let frac = |f: f64| ((f * n_iter as f64) as usize).max(1);
    let (mut window, shrink, min_window) = (frac(0.22), frac(0.03), frac(0.06));
    let mut done = window;
    let mut checks = Vec::new();
    while done <= n_iter {
        checks.push(done);
        window = window.saturating_sub(shrink).max(min_window);
        done += window;
    }
    checks
}

/// The examples of a run still being iterated, and their state.
struct Active {
    /// Positions in the run's batch.
    idx: Tensor,
    x: Tensor,
    y: Tensor,
    t: Tensor,
    x_adv: Tensor,
    x_old: Tensor,
    grad: Tensor,
    x_best: Tensor,
    grad_best: Tensor,
    loss_best: Tensor,
    /// The best loss at the last checkpoint.
    loss_checked: Tensor,
    /// Whether the step was halved at the last checkpoint (true before the first).
    halved: Tensor,
    /// Step size per example (N x 1 x 1 x 1).
    step: Tensor,
    /// How many steps since the last checkpoint increased the loss.
    increases: Tensor,
    prev_loss: Tensor,
    /// Misclassified at some iterate (the run's outcome for this example is settled).
    fooled: Tensor,
}

impl Active {
    fn keep(&mut self, rows: &Tensor) -> Result<()> {
        keep_rows(
            &mut [
                &mut self.idx,
                &mut self.x,
                &mut self.y,
                &mut self.t,
                &mut self.x_adv,
                &mut self.x_old,
                &mut self.grad,
                &mut self.x_best,
                &mut self.grad_best,
                &mut self.loss_best,
                &mut self.loss_checked,
                &mut self.halved,
                &mut self.step,
                &mut self.increases,
                &mut self.prev_loss,
                &mut self.fooled,
            ],
            rows,
        )
    }
    fn len(&self) -> i64 {
        self.idx.size()[0]
    }

    /// Stops iterating the settled (misclassified) examples once they are an eighth of the set.
    fn drop_settled(&mut self) -> Result<()> {
        let settled = self.fooled.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        if settled > 0 && settled * 8 >= self.len() {
            self.keep(&self.fooled.f_logical_not()?.f_nonzero()?.f_flatten(0, -1)?)?;
        }
        Ok(())
    }

    /// One ascent step with `momentum`: along the gradient's direction by the step size,
    /// projected, mixed with the previous step, projected again.
    fn ascend(&mut self, momentum: f64, s: &Settings) -> Result<()> {
        let grad2 = self.x_adv.f_sub(&self.x_old)?;
        self.x_old = self.x_adv.shallow_clone();
        let z = project(&self.x_adv.f_add(&direction(&self.grad, s.norm)?.f_mul(&self.step)?)?, &self.x, s.eps, s.norm)?;
        let mixed = self.x_adv.f_add(&z.f_sub(&self.x_adv)?.f_mul_scalar(momentum)?)?.f_add(&grad2.f_mul_scalar(1.0 - momentum)?)?;
        self.x_adv = project(&mixed, &self.x, s.eps, s.norm)?;
        Ok(())
    }

    /// Records the examples `success` newly fooled at the current iterate in `out`.
    fn settle(&mut self, success: &Tensor, out: &mut PassOutcome) -> Result<()> {
        let new = success.f_logical_and(&self.fooled.f_logical_not()?)?;
        if new.f_any()?.f_int64_value(&[])? != 0 {
            let rows = new.f_nonzero()?.f_flatten(0, -1)?;
            let dst = self.idx.f_index_select(0, &rows)?;
            out.adv = out.adv.f_index_copy(0, &dst, &self.x_adv.f_index_select(0, &rows)?)?;
            out.fooled = out.fooled.f_index_fill(0, &dst, 1)?;
            self.fooled = self.fooled.f_logical_or(success)?;
        }
        Ok(())
    }

    /// Keeps the current iterate where its `loss` beats the best, and counts the increases.
    fn track_best(&mut self, loss: Tensor, shape4: &[i64]) -> Result<()> {
        let improved = loss.f_gt_tensor(&self.loss_best)?;
        let improved4 = improved.f_view(shape4)?;
        self.x_best = self.x_adv.f_where_self(&improved4, &self.x_best)?;
        self.grad_best = self.grad.f_where_self(&improved4, &self.grad_best)?;
        self.loss_best = loss.f_where_self(&improved, &self.loss_best)?;
        self.increases = self.increases.f_add(&loss.f_gt_tensor(&self.prev_loss)?.f_to_kind(Kind::Float)?)?;
        self.prev_loss = loss;
        Ok(())
    }

    /// A checkpoint: halves the step (and goes back to the best point) where at most
    /// `max_increases` steps since the last one increased the loss, or where the step was not
    /// halved last time and the best loss has not improved since.
    fn check_step(&mut self, max_increases: f64, shape4: &[i64]) -> Result<()> {
        let oscillating = self.increases.f_le(max_increases)?;
        let stalled = self.halved.f_logical_not()?.f_logical_and(&self.loss_checked.f_ge_tensor(&self.loss_best)?)?;
        let halve = oscillating.f_logical_or(&stalled)?;
        let halve4 = halve.f_view(shape4)?;
        self.step = self.step.f_mul_scalar(0.5)?.f_where_self(&halve4, &self.step)?;
        self.x_adv = self.x_best.f_where_self(&halve4, &self.x_adv)?;
        self.grad = self.grad_best.f_where_self(&halve4, &self.grad)?;
        self.halved = halve;
        self.loss_checked = self.loss_best.shallow_clone();
        self.increases = self.increases.f_zero_()?;
        Ok(())
    }

    /// The run's outcome: `out`, with the examples never misclassified at their best point.
    fn finish(self, mut out: PassOutcome) -> Result<PassOutcome> {
        let robust = self.fooled.f_logical_not()?.f_nonzero()?.f_flatten(0, -1)?;
        let dst = self.idx.f_index_select(0, &robust)?;
        out.adv = out.adv.f_index_copy(0, &dst, &self.x_best.f_index_select(0, &robust)?)?;
        out.score = out.score.f_index_copy(0, &dst, &self.loss_best.f_index_select(0, &robust)?)?;
        Ok(out)
    }
}

/// One APGD run from a random start on the batch `x` (labels `y`, targets `t`).
pub(crate) fn run(
    forward: Forward,
    x: &Tensor,
    y: &Tensor,
    t: &Tensor,
    objective: Objective,
    s: &Settings,
    rng: &mut Rng,
) -> Result<PassOutcome> {
    let n = x.size()[0];
    let loss_of = |x_adv: &Tensor, y: &Tensor, t: &Tensor| loss_and_gradient(forward, x_adv, &|z: &Tensor| objective.loss(z, y, t));
    let start = surface_start(x, s.eps, s.norm, rng)?;
    let (logits, loss, grad) = loss_of(&start, y, t)?;
    let _guard = tch::no_grad_guard();
    let fooled = objective.success(&logits, y, t)?;
    // N x 1 x 1 x 1 for any N (the active set shrinks).
    let mut shape4 = per_example_shape(x);
    shape4[0] = -1;
    let mut a = Active {
        idx: Tensor::f_arange(n, (Kind::Int64, x.device()))?,
        x: x.shallow_clone(),
        y: y.shallow_clone(),
        t: t.shallow_clone(),
        x_old: start.shallow_clone(),
        x_best: start.shallow_clone(),
        grad_best: grad.shallow_clone(),
        x_adv: start.shallow_clone(),
        grad,
        loss_checked: loss.shallow_clone(),
        loss_best: loss.shallow_clone(),
        halved: Tensor::f_ones([n], (Kind::Bool, x.device()))?,
        step: Tensor::f_full([n], 2.0 * s.eps, (Kind::Float, x.device()))?.f_view(shape4.as_slice())?,
        increases: Tensor::f_zeros([n], (Kind::Float, x.device()))?,
        prev_loss: Tensor::f_zeros([n], (Kind::Float, x.device()))?,
        fooled: fooled.shallow_clone(),
    };
    // The run's outcome per example: the first misclassified iterate, else the best point.
    let mut out = PassOutcome { adv: deep_copy(&start)?, fooled, score: loss };
    let checks = checkpoints(s.n_iter);
    let (mut next_check, mut last_check) = (0usize, 0usize);
    for i in 0..s.n_iter {
        a.drop_settled()?;
        if a.len() == 0 {
            break;
        }
        a.ascend(if i > 0 { MOMENTUM } else { 1.0 }, s)?;
        let (logits, loss, grad) = tch::with_grad(|| loss_of(&a.x_adv, &a.y, &a.t))?;
        a.grad = grad;
        a.settle(&objective.success(&logits, &a.y, &a.t)?, &mut out)?;
        a.track_best(loss, &shape4)?;
        if checks.get(next_check) == Some(&(i + 1)) {
            let window = (checks[next_check] - last_check) as f64;
            (last_check, next_check) = (checks[next_check], next_check + 1);
            a.check_step(window * s.rho, &shape4)?;
        }
    }
    a.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_follow_the_paper() {
        // p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of 100 iterations.
        assert_eq!(checkpoints(100), [22, 41, 57, 70, 80, 87, 93, 99]);
        // Short runs check every iteration once the window is down to one.
        assert_eq!(checkpoints(10), [2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(checkpoints(1), [1]);
    }

    #[test]
    fn dlr_losses_match_their_formulas() {
        let z = Tensor::from_slice(&[3.0f32, 1.0, 2.0, -1.0, 0.5, 4.0, 0.0, 1.0]).view([2, 4]);
        let y = Tensor::from_slice(&[0i64, 1]);
        let dlr = Vec::<f32>::try_from(dlr_loss(&z, &y).unwrap()).unwrap();
        // Row 0: -(3 - 2) / (3 - 1); row 1: -(4 - 1) / (4 - 0.5).
        assert!((dlr[0] + 0.5).abs() < 1e-6 && (dlr[1] + 3.0 / 3.5).abs() < 1e-6, "{dlr:?}");
        let t = Tensor::from_slice(&[2i64, 0]);
        let tdlr = Vec::<f32>::try_from(targeted_dlr_loss(&z, &y, &t).unwrap()).unwrap();
        // Row 0: -(3 - 2) / (3 - (1 - 1) / 2); row 1: -(4 - 0.5) / (4 - (0.5 + 0) / 2).
        assert!((tdlr[0] + 1.0 / 3.0).abs() < 1e-6 && (tdlr[1] + 3.5 / 3.75).abs() < 1e-6, "{tdlr:?}");
    }
}
