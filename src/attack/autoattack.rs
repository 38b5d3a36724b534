//! AutoAttack (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
//! diverse parameter-free attacks", ICML 2020): an ensemble of complementary attacks run in
//! sequence, each on the examples the ones before it did not break. The standard version is
//! APGD-CE, APGD-T, FAB-T and Square (5000 queries); the fast version here keeps the two APGD
//! attacks, which find nearly all of what the ensemble finds at a fraction of the cost (for
//! grids and quick checks; report the standard version).
//!
//! [`AutoAttack::attacks`] lists the components for [`super::robust_evaluate`], which runs them
//! in the same sequence and reports what each one added (and warns where the black-box Square
//! finds what the gradient attacks missed); [`AutoAttack`] is also an [`Attack`] on its own.

use super::{check_batch, format_eps, predict, Apgd, ApgdT, Attack, AttackSpec, CallCounter, FabT, Norm, Square, WorstCase};
use crate::error::Result;
use crate::model::Network;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Which ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AutoAttackVersion {
    /// APGD-CE, APGD-T, FAB-T, Square (AutoAttack's `version='standard'`).
    #[default]
    Standard,
    /// APGD-CE, APGD-T.
    Fast,
}

/// The AutoAttack ensemble. One `seed` seeds every component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[setters(generate = false)]
pub struct AutoAttack {
    pub version: AutoAttackVersion,
    pub norm: Norm,
    pub eps: f64,
    /// Iterations of APGD-CE, APGD-T and FAB-T (AutoAttack: 100).
    #[setters(generate)]
    pub n_iter: usize,
    /// Target classes of APGD-T and FAB-T (AutoAttack: 9; at most the number of classes - 1).
    #[setters(generate)]
    pub n_target_classes: usize,
    /// Queries of Square (AutoAttack: 5000).
    #[setters(generate)]
    pub n_queries: usize,
    #[setters(generate)]
    pub seed: u64,
    #[serde(skip)]
    pub(crate) calls: CallCounter,
}

impl AutoAttack {
    /// AutoAttack's standard version: APGD-CE, APGD-T, FAB-T, Square with the paper's settings.
    pub fn standard(norm: Norm, eps: f64) -> AutoAttack {
        AutoAttack {
            version: AutoAttackVersion::Standard,
            norm,
            eps,
            n_iter: 100,
            n_target_classes: 9,
            n_queries: 5000,
            seed: 0,
            calls: CallCounter::default(),
        }
    }
    /// APGD-CE and APGD-T only, with the standard version's settings.
    pub fn fast(norm: Norm, eps: f64) -> AutoAttack {
        AutoAttack { version: AutoAttackVersion::Fast, ..AutoAttack::standard(norm, eps) }
    }

    /// The components in the order they run, each seeded with `seed`: give them to
    /// [`super::robust_evaluate`] for per-attack outcomes. The results are the same as those of
    /// [`AutoAttack`] used as one attack on the same batches.
    pub fn attacks(&self) -> Vec<AttackSpec> {
        self.components(0)
    }

    /// The components, their random numbers drawn as for their call number `call`.
    fn components(&self, call: u64) -> Vec<AttackSpec> {
        let (norm, eps, seed) = (self.norm, self.eps, self.seed);
        let calls = || CallCounter::starting_at(call);
        let mut list: Vec<AttackSpec> = vec![
            Apgd { calls: calls(), ..Apgd::ce(norm, eps).n_iter(self.n_iter).seed(seed) }.into(),
            ApgdT { calls: calls(), ..ApgdT::new(norm, eps).n_iter(self.n_iter).n_target_classes(self.n_target_classes).seed(seed) }.into(),
        ];
        if self.version == AutoAttackVersion::Standard {
            let fab = FabT::new(norm, eps).n_iter(self.n_iter).n_target_classes(self.n_target_classes).seed(seed);
            list.push(FabT { calls: calls(), ..fab }.into());
            list.push(Square { calls: calls(), ..Square::new(norm, eps).n_queries(self.n_queries).seed(seed) }.into());
        }
        list
    }
}

impl Attack for AutoAttack {
    /// The components in sequence, each on the examples still robust; per example the first
    /// adversarial example found (the clean image where none is).
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        check_batch(net, x, y, self.eps)?;
        let folded = net.folded_eval()?;
        let forward = |x: &Tensor| folded.forward(x);
        let mut worst = WorstCase::new(x, predict(&forward, x)?.f_eq_tensor(y)?)?;
        for attack in self.components(self.calls.next()) {
            let more = worst.pass(x, |idx, xs| {
                let ys = y.f_index_select(0, idx)?;
                let adv = attack.perturb(net, xs, &ys)?;
                let fooled = predict(&forward, &adv)?.f_ne_tensor(&ys)?;
                let score = Tensor::f_full([ys.size()[0]], f64::NEG_INFINITY, (tch::Kind::Float, x.device()))?;
                Ok(super::PassOutcome { adv, fooled, score })
            })?;
            if !more {
                break;
            }
        }
        Ok(worst.into_adv())
    }
    fn name(&self) -> String {
        let version = match self.version {
            AutoAttackVersion::Standard => "standard",
            AutoAttackVersion::Fast => "fast",
        };
        format!("AutoAttack-{version} {} eps={}", self.norm.label(), format_eps(self.eps))
    }
}
