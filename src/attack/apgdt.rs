//! APGD-T (Croce & Hein, ICML 2020): APGD (see `apgd.rs`) on the targeted DLR loss
//! -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), once toward each of the `n_target_classes`
//! classes the network ranks highest after the prediction on the clean input (2nd, 3rd, ...),
//! each run on the examples still robust. Success means any misclassification, as in AutoAttack.

use super::apgd::{self, Objective, Settings};
use super::{check_batch, format_eps, predict, ranked_class, require_classes, Attack, CallCounter, Forward, Norm, PassOutcome, WorstCase};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Targeted APGD over the top classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[setters(generate = false)]
pub struct ApgdT {
    pub norm: Norm,
    pub eps: f64,
    /// Iterations per run (AutoAttack: 100).
    #[setters(generate)]
    pub n_iter: usize,
    /// Runs per target class (AutoAttack: 1).
    #[setters(generate)]
    pub n_restarts: usize,
    /// How many target classes, taken in the order of the clean logits (AutoAttack: 9; at most
    /// the number of classes - 1).
    #[setters(generate)]
    pub n_target_classes: usize,
    /// See [`super::Apgd::rho`].
    #[setters(generate)]
    pub rho: f64,
    #[setters(generate)]
    pub seed: u64,
    #[serde(skip)]
    pub(crate) calls: CallCounter,
}

impl ApgdT {
    /// APGD-T as in AutoAttack's standard version: 100 iterations, 9 target classes, one run each.
    pub fn new(norm: Norm, eps: f64) -> ApgdT {
        ApgdT { norm, eps, n_iter: 100, n_restarts: 1, n_target_classes: 9, rho: 0.75, seed: 0, calls: CallCounter::default() }
    }
}

/// Checks a target-class count for an attack over the top classes (APGD-T, FAB-T).
pub(crate) fn check_targets(net: &Network, n_target_classes: usize, restarts: usize, what: &str) -> Result<()> {
    let classes = net.num_classes();
    if n_target_classes == 0 || n_target_classes >= classes {
        return Err(Error::invalid(
            format!("{what} with {n_target_classes} target classes on a network with {classes} classes"),
            format!("use n_target_classes between 1 and {} (the classes other than the prediction)", classes.saturating_sub(1)),
        ));
    }
    if restarts == 0 {
        return Err(Error::invalid(format!("{what} with 0 restarts"), "use n_restarts >= 1 (AutoAttack uses 1)"));
    }
    Ok(())
}

/// The passes of an attack over the top classes (APGD-T, FAB-T): for each target rank (the
/// 2nd, 3rd, ... largest clean logit) and each restart, `run(images, labels, targets, restart)`
/// on the examples still robust. Returns the adversarial batch.
pub(crate) fn over_targets(
    forward: Forward,
    x: &Tensor,
    y: &Tensor,
    n_target_classes: usize,
    n_restarts: usize,
    mut run: impl FnMut(&Tensor, &Tensor, &Tensor, usize) -> Result<PassOutcome>,
) -> Result<Tensor> {
    let mut worst = WorstCase::new(x, predict(forward, x)?.f_eq_tensor(y)?)?;
    for rank in 2..=n_target_classes as i64 + 1 {
        for restart in 0..n_restarts {
            let more = worst.pass(x, |idx, xs| {
                let ys = y.f_index_select(0, idx)?;
                let targets = {
                    let _guard = tch::no_grad_guard();
                    ranked_class(&forward(xs)?, rank)?
                };
                run(xs, &ys, &targets, restart)
            })?;
            if !more {
                return Ok(worst.into_adv());
            }
        }
    }
    Ok(worst.into_adv())
}

impl Attack for ApgdT {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        check_batch(net, x, y, self.eps)?;
        let settings = Settings { norm: self.norm, eps: self.eps, n_iter: self.n_iter, rho: self.rho };
        settings.check("APGD-T")?;
        require_classes(net, 4, "APGD-T (targeted DLR loss)", "use Apgd (APGD-CE) on networks with fewer classes")?;
        check_targets(net, self.n_target_classes, self.n_restarts, "APGD-T")?;
        let folded = net.folded_eval()?;
        let forward = |x: &Tensor| folded.forward(x);
        let mut rng = Rng::new(self.calls.call_seed(self.seed));
        over_targets(&forward, x, y, self.n_target_classes, self.n_restarts, |xs, ys, targets, _| {
            apgd::run(&forward, xs, ys, targets, Objective::TargetedDlr, &settings, &mut rng)
        })
    }
    fn name(&self) -> String {
        let restarts = if self.n_restarts > 1 { format!(" x{} restarts", self.n_restarts) } else { String::new() };
        format!("APGD-T-{} {} eps={} ({} targets){restarts}", self.n_iter, self.norm.label(), format_eps(self.eps), self.n_target_classes)
    }
}
