//! The threat model: the norm and radius of the adversary, and the attacks derived from it for
//! adversarial training, validation (picking the best-RA checkpoint) and the reported test RA.
//! A study holds one; every attack it runs comes from here, with the one PGD step rule of
//! [`Pgd::spanning`].

use super::{AttackSpec, AutoAttack, Fgsm, Norm, Pgd};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The attacks behind the reported robust accuracy, run in sequence on the points still correct
/// (so the RA is the worst case over them). The AutoAttack choices run FGSM and PGD-20 first,
/// so a report shows PGD-20 RA (the accuracy after PGD-20) and AutoAttack-grade RA (after
/// everything) side by side, from one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TestAttack {
    /// FGSM, then PGD-20 (the paper's evaluation).
    #[default]
    Pgd20,
    /// FGSM, PGD-20, then APGD-CE and APGD-T (9 target classes, 100 iterations each).
    AutoattackFast,
    /// FGSM, PGD-20, then AutoAttack's standard ensemble: APGD-CE, APGD-T, FAB-T, Square-5000.
    Autoattack,
}

impl TestAttack {
    pub fn name(self) -> &'static str {
        match self {
            TestAttack::Pgd20 => "FGSM + PGD-20",
            TestAttack::AutoattackFast => "FGSM + PGD-20 + AutoAttack (fast: APGD-CE, APGD-T)",
            TestAttack::Autoattack => "FGSM + PGD-20 + AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square)",
        }
    }
}

/// The adversary of a study: norm, radius, and the attack strengths of training, validation
/// and test. `ThreatModel::paper()` is the paper's L-inf 8/255 with PGD-10 training and PGD-20
/// evaluation, both with step 2/255.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate = false)]
pub struct ThreatModel {
    pub norm: Norm,
    pub eps: f64,
    /// PGD steps of adversarial training: AT pre-training, m^AT re-training inside IMP,
    /// adversarial fine-tuning (the paper: 10).
    #[setters(generate)]
    pub train_steps: usize,
    /// PGD steps of the validation attack that picks the best-RA checkpoint.
    #[setters(generate)]
    pub val_steps: usize,
    /// The reported robust accuracy.
    #[setters(generate)]
    pub test: TestAttack,
}

impl Default for ThreatModel {
    fn default() -> Self {
        ThreatModel::paper()
    }
}

impl ThreatModel {
    /// L-inf, eps 8/255, PGD-10 training and validation, PGD-20 test (the paper).
    pub fn paper() -> ThreatModel {
        ThreatModel::linf(8.0 / 255.0)
    }
    /// L-inf at `eps` with the paper's attack strengths.
    pub fn linf(eps: f64) -> ThreatModel {
        ThreatModel { norm: Norm::Linf, eps, train_steps: 10, val_steps: 10, test: TestAttack::Pgd20 }
    }

    /// Checks the values; the error names every bad one.
    pub fn check(&self) -> Result<()> {
        let mut problems = Vec::new();
        if !(self.eps.is_finite() && self.eps > 0.0) {
            problems.push(format!("eps = {} (must be finite and > 0, e.g. 8/255 = 0.0314 or 0.1 for grey-scale digits)", self.eps));
        }
        if self.norm == Norm::Linf && self.eps >= 1.0 {
            problems.push(format!("L-inf eps = {} covers the whole [0, 1] pixel range", self.eps));
        }
        if self.train_steps == 0 {
            problems.push("train_steps = 0 (use at least 1; the paper uses 10)".into());
        }
        if self.val_steps == 0 {
            problems.push("val_steps = 0 (use at least 1)".into());
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(format!("threat model: {}", problems.join("; ")), "fix these fields of the threat model"))
    }

    /// PGD-`train_steps`, network in train mode: the attack of adversarial training.
    pub fn train_attack(&self) -> Pgd {
        Pgd::spanning(self.norm, self.eps, self.train_steps).train_mode(true)
    }

    /// FGSM from a random start, step 1.25 eps, train mode: the attack of fast adversarial
    /// training (Wong et al. 2020). L-inf only.
    pub fn fast_attack(&self) -> Result<Fgsm> {
        if self.norm != Norm::Linf {
            return Err(Error::invalid("fast adversarial training (FGSM-RS) under an L2 threat model", "use L-inf, or PGD training"));
        }
        Ok(Fgsm::random_start(self.eps).train_mode(true))
    }

    /// FGSM (L-inf only) then PGD-`val_steps`: the validation attacks.
    pub fn val_attacks(&self) -> Vec<AttackSpec> {
        self.with_fgsm(Pgd::spanning(self.norm, self.eps, self.val_steps))
    }

    /// The attacks of the reported RA ([`TestAttack`]).
    pub fn test_attacks(&self) -> Vec<AttackSpec> {
        let mut v = self.with_fgsm(Pgd::spanning(self.norm, self.eps, 20));
        match self.test {
            TestAttack::Pgd20 => {}
            TestAttack::AutoattackFast => v.extend(AutoAttack::fast(self.norm, self.eps).attacks()),
            TestAttack::Autoattack => v.extend(AutoAttack::standard(self.norm, self.eps).attacks()),
        }
        v
    }

    fn with_fgsm(&self, pgd: Pgd) -> Vec<AttackSpec> {
        let mut v: Vec<AttackSpec> = Vec::new();
        if self.norm == Norm::Linf {
            v.push(Fgsm::new(self.eps).into());
        }
        v.push(pgd.into());
        v
    }

    /// "L-inf eps 8/255".
    pub fn describe(&self) -> String {
        let norm = match self.norm {
            Norm::Linf => "L-inf",
            Norm::L2 => "L2",
        };
        format!("{norm} eps {}", super::format_eps(self.eps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_papers_attack_settings_are_reproduced_exactly() {
        use crate::attack::Attack;
        let t = ThreatModel::paper();
        let train = t.train_attack();
        assert_eq!((train.steps, train.train_mode), (10, true));
        assert!((train.step - 2.0 / 255.0).abs() < 1e-15);
        match t.test_attacks().last() {
            Some(AttackSpec::Pgd(p)) => {
                assert_eq!((p.steps, p.train_mode, p.random_start), (20, false, true));
                assert!((p.step - 2.0 / 255.0).abs() < 1e-15 && (p.eps - 8.0 / 255.0).abs() < 1e-15);
            }
            other => panic!("test attack {other:?}"),
        }
        // Short attacks still span the ball: PGD-3 steps 2.5 eps / 3.
        assert!((Pgd::spanning(Norm::Linf, 0.3, 3).step - 0.25).abs() < 1e-12);
        assert!(ThreatModel::linf(-0.1).check().unwrap_err().to_string().contains("eps = -0.1"));
        // AutoAttack-grade evaluation keeps PGD-20 in front, so both RAs come from one run.
        let names: Vec<String> = t.clone().test(TestAttack::Autoattack).test_attacks().iter().map(|a| a.name()).collect();
        assert_eq!(names.len(), 6);
        assert!(names[1].starts_with("PGD-20") && names[2].starts_with("APGD-CE") && names[5].starts_with("Square"), "{names:?}");
        assert!(ThreatModel::linf(0.1).train_steps(0).check().unwrap_err().to_string().contains("train_steps"));
    }
}
