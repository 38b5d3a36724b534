//! Projected gradient descent (Madry et al. 2018) in L-inf or L2: `steps` gradient steps, each
//! projected back onto the eps-ball and into [0, 1], from an optional random start, with
//! restarts that keep each example's worst case.

use super::{attack_labels, check_batch, format_eps, iterate, random_start, Ascent, Attack, CallCounter, Norm, Targeted, Targeting};
use crate::error::{Error, Result};
use crate::model::Network;
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// The step size of a `steps`-step PGD at radius `eps`: the one place the project derives it
/// (see [`Pgd::spanning`]).
pub fn spanning_step(eps: f64, steps: usize) -> f64 {
    eps * (2.5 / steps.max(1) as f64).max(0.25)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate = false)]
pub struct Pgd {
    pub norm: Norm,
    pub eps: f64,
    pub step: f64,
    pub steps: usize,
    #[setters(generate)]
    pub random_start: bool,
    /// Total runs (>= 1); per example the most damaging result is kept.
    #[setters(generate)]
    pub restarts: usize,
    /// Network in train mode during the attack (adversarial training) or eval mode (evaluation).
    #[setters(generate)]
    pub train_mode: bool,
    #[setters(generate)]
    pub targeting: Targeting,
    #[setters(generate)]
    pub seed: u64,
    #[serde(skip)]
    calls: CallCounter,
}

impl Pgd {
    /// L-inf PGD with a random start, eval mode, one run.
    pub fn linf(eps: f64, step: f64, steps: usize) -> Pgd {
        Pgd {
            norm: Norm::Linf,
            eps,
            step,
            steps,
            random_start: true,
            restarts: 1,
            train_mode: false,
            targeting: Targeting::Untargeted,
            seed: 0,
            calls: CallCounter::default(),
        }
    }
    /// PGD-`steps` in `norm` with the project's one step rule, [`spanning_step`]: eps/4 per
    /// step (the paper's 2/255 at 8/255 for PGD-10 training and PGD-20 evaluation), but at least
    /// 2.5 eps / steps so that short attacks can still cross the ball (Madry et al. 2018).
    /// Random start, eval mode, one run.
    pub fn spanning(norm: Norm, eps: f64, steps: usize) -> Pgd {
        Pgd { norm, ..Pgd::linf(eps, spanning_step(eps, steps), steps) }
    }
    /// L2 PGD with a random start, eval mode, one run.
    pub fn l2(eps: f64, step: f64, steps: usize) -> Pgd {
        Pgd { norm: Norm::L2, ..Pgd::linf(eps, step, steps) }
    }
    /// The paper's evaluation attack: PGD-20, eps 8/255, step 2/255, random start.
    pub fn paper_eval() -> Pgd {
        Pgd::spanning(Norm::Linf, 8.0 / 255.0, 20)
    }
    /// The paper's adversarial fine-tuning attack: PGD-10, eps 8/255, step 2/255, train mode.
    pub fn paper_train() -> Pgd {
        Pgd::spanning(Norm::Linf, 8.0 / 255.0, 10).train_mode(true)
    }

    fn ascent(&self) -> Ascent {
        Ascent { norm: self.norm, eps: self.eps, step: self.step, steps: self.steps, train_mode: self.train_mode }
    }

    /// PGD from a given starting point (for exact comparisons with other implementations).
    pub fn perturb_from(&self, net: &Network, x: &Tensor, labels: &Tensor, start: &Tensor, targeted: bool) -> Result<Tensor> {
        check_batch(net, x, labels, self.eps)?;
        iterate(net, x, labels, start.shallow_clone(), self.ascent(), targeted)
    }

    fn run(&self, net: &Network, x: &Tensor, labels: &Tensor, targeted: bool) -> Result<Tensor> {
        check_batch(net, x, labels, self.eps)?;
        if self.restarts == 0 || self.steps == 0 || self.step.is_nan() || self.step <= 0.0 {
            return Err(Error::invalid(
                format!("PGD with {} steps of {} and {} restarts", self.steps, self.step, self.restarts),
                "use steps >= 1, step > 0, restarts >= 1",
            ));
        }
        let mut best: Option<(Tensor, Tensor)> = None;
        for _ in 0..self.restarts {
            let start =
                if self.random_start { random_start(x, self.eps, self.norm, self.calls.call_seed(self.seed))? } else { x.shallow_clone() };
            let adv = iterate(net, x, labels, start, self.ascent(), targeted)?;
            if self.restarts == 1 {
                return Ok(adv);
            }
            let score = damage(net, &adv, labels, targeted)?;
            best = Some(match best {
                None => (adv, score),
                Some((b, s)) => {
                    let better = score.f_gt_tensor(&s)?;
                    let keep = better.f_view([-1, 1, 1, 1])?;
                    (adv.f_where_self(&keep, &b)?, score.f_maximum(&s)?)
                }
            });
        }
        Ok(best.map(|(b, _)| b).unwrap_or_else(|| x.shallow_clone()))
    }
}

/// How much an adversarial example hurts, per example: success first, then the loss
/// (untargeted: the true label's loss; targeted: minus the target's loss).
fn damage(net: &Network, adv: &Tensor, labels: &Tensor, targeted: bool) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let logits = net.forward(adv, false)?;
    let loss = logits.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::None, -100, 0.0)?;
    let hit = logits.f_argmax(-1, false)?.f_eq_tensor(labels)?;
    let (success, loss) = if targeted { (hit, loss.f_neg()?) } else { (hit.f_logical_not()?, loss) };
    Ok(success.f_to_kind(Kind::Float)?.f_mul_scalar(1e6)?.f_add(&loss)?)
}

impl Attack for Pgd {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        check_batch(net, x, y, self.eps)?;
        let (labels, targeted) = attack_labels(self.targeting, net, x, y)?;
        self.run(net, x, &labels, targeted)
    }
    fn name(&self) -> String {
        let norm = self.norm.label();
        let restarts = if self.restarts > 1 { format!(" x{} restarts", self.restarts) } else { String::new() };
        format!("PGD-{} {norm} eps={}{restarts}", self.steps, format_eps(self.eps))
    }
}

impl Targeted for Pgd {
    fn perturb_targeted(&self, net: &Network, x: &Tensor, target: &Tensor) -> Result<Tensor> {
        self.run(net, x, target, true)
    }
}
