//! Training regimes: what a network is trained on. [`RegimeKind`] names the three of the paper
//! (standard, fast adversarial = FGSM-RS, PGD adversarial) and is the one enum behind
//! pre-trainings (STD / FAT / AT), IMP mask families (m^ST / m^AT) and fine-tunings; a
//! [`Regime`] is a kind with its attack, derived from a [`ThreatModel`].

use crate::attack::{Attack, Fgsm, Pgd, ThreatModel};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The three ways of training in the paper, by name (serde and command-line names:
/// `standard`, `fast`, `adversarial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum RegimeKind {
    /// Clean inputs (STD pre-training, m^ST re-training, standard fine-tuning).
    Standard,
    /// FGSM from a random start, step 1.25 eps: "fast" adversarial training (Wong et al. 2020).
    Fast,
    /// PGD adversarial training (Madry et al. 2018).
    Adversarial,
}

impl RegimeKind {
    pub const ALL: [RegimeKind; 3] = [RegimeKind::Standard, RegimeKind::Fast, RegimeKind::Adversarial];

    /// `standard`, `fast`, `adversarial`.
    pub fn name(self) -> &'static str {
        match self {
            RegimeKind::Standard => "standard",
            RegimeKind::Fast => "fast",
            RegimeKind::Adversarial => "adversarial",
        }
    }
    /// The paper's names of pre-trainings: STD, FAT, AT.
    pub fn short(self) -> &'static str {
        match self {
            RegimeKind::Standard => "STD",
            RegimeKind::Fast => "FAT",
            RegimeKind::Adversarial => "AT",
        }
    }
    /// The paper's names of IMP mask families by their re-training: m^ST, m^FAT, m^AT.
    pub fn family(self) -> &'static str {
        match self {
            RegimeKind::Standard => "m^ST",
            RegimeKind::Fast => "m^FAT",
            RegimeKind::Adversarial => "m^AT",
        }
    }
}

impl std::fmt::Display for RegimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the network is trained on: clean inputs, FGSM-RS examples ("fast" adversarial
/// training, Wong et al. 2020) or PGD examples (Madry et al. 2018).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Regime {
    #[default]
    Standard,
    Fast {
        attack: Fgsm,
        guard: Option<OverfitGuard>,
    },
    Adversarial(Pgd),
}

impl Regime {
    /// The regime of `kind` under `threat`: PGD-`train_steps` for adversarial training,
    /// FGSM-RS with the catastrophic-overfitting guard for fast training, both in train mode.
    pub fn of(kind: impl Into<RegimeKind>, threat: &ThreatModel) -> Result<Regime> {
        threat.check()?;
        Ok(match kind.into() {
            RegimeKind::Standard => Regime::Standard,
            RegimeKind::Fast => Regime::Fast { attack: threat.fast_attack()?, guard: Some(OverfitGuard::for_threat(threat)) },
            RegimeKind::Adversarial => Regime::Adversarial(threat.train_attack()),
        })
    }
    /// Fast adversarial training at L-inf radius `eps` ([`Regime::of`] with the paper's steps).
    pub fn fast(eps: f64) -> Result<Regime> {
        Regime::of(RegimeKind::Fast, &ThreatModel::linf(eps))
    }
    /// PGD-10 adversarial training at L-inf radius `eps` (step eps/4: the paper's 2/255 at 8/255).
    pub fn adversarial(eps: f64) -> Result<Regime> {
        Regime::of(RegimeKind::Adversarial, &ThreatModel::linf(eps))
    }
    pub fn kind(&self) -> RegimeKind {
        match self {
            Regime::Standard => RegimeKind::Standard,
            Regime::Fast { .. } => RegimeKind::Fast,
            Regime::Adversarial(_) => RegimeKind::Adversarial,
        }
    }
    pub fn name(&self) -> String {
        match self {
            Regime::Standard => "standard".into(),
            Regime::Fast { attack, .. } => format!("fast ({})", attack.name()),
            Regime::Adversarial(p) => format!("adversarial ({})", p.name()),
        }
    }
    /// Checks the attack's values (radius, steps) before any training starts.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::invalid(format!("training regime: {what}"), "use a finite eps > 0 and at least one step"));
        match self {
            Regime::Standard => Ok(()),
            Regime::Fast { attack, .. } if !(attack.eps.is_finite() && attack.eps > 0.0) => bad(format!("FGSM eps = {}", attack.eps)),
            Regime::Adversarial(p) if !(p.eps.is_finite() && p.eps > 0.0) => bad(format!("PGD eps = {}", p.eps)),
            Regime::Adversarial(p) if p.steps == 0 || p.step.is_nan() || p.step <= 0.0 => {
                bad(format!("PGD with {} steps of {}", p.steps, p.step))
            }
            _ => Ok(()),
        }
    }
}

/// Guard against catastrophic overfitting in fast adversarial training: after every epoch,
/// PGD accuracy on a fixed set of training examples; a drop of more than `max_drop` below the
/// best seen so far means FGSM training has collapsed (Wong et al. 2020, Sec. 5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverfitGuard {
    pub check: Pgd,
    pub examples: usize,
    pub max_drop: f64,
    /// Stop training and restore the weights of the epoch before the collapse.
    pub stop: bool,
}

impl OverfitGuard {
    /// PGD-10 at the threat's radius on 256 training examples; a 20-point drop stops training.
    pub fn for_threat(threat: &ThreatModel) -> OverfitGuard {
        OverfitGuard { check: Pgd::spanning(threat.norm, threat.eps, 10), examples: 256, max_drop: 0.2, stop: true }
    }
}
