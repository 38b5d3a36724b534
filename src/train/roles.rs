//! The three roles a way of training plays in the method, one type each: the pre-training of a
//! source ([`Pretraining`]: STD / FAT / AT), the re-training that names an IMP mask family
//! ([`ImpFamily`]: m^ST / m^AT) and the fine-tuning of a transfer ([`FineTuning`]: standard /
//! adversarial). Each role runs a training regime ([`RegimeKind`], what the trainer uses and
//! what stays inside this module); the study speaks only in roles, so a fine-tuning cannot be
//! passed where a pre-training is meant, and each role offers only the choices the paper makes.
//! A role serialises as its regime does (`standard`, `fast`, `adversarial`): descriptions, and
//! so store keys, are the same whichever type names them.

use super::RegimeKind;
use serde::{Deserialize, Serialize};

/// How a source network was pre-trained: standard (STD), fast adversarial (FAT, FGSM-RS) or
/// PGD adversarial (AT). Roles print in the paper's words and serialise as their regimes:
///
/// ```
/// use doublewin::prelude::*;
/// assert_eq!(Pretraining::Adversarial.to_string(), "AT");
/// assert_eq!(ImpFamily::Standard.to_string(), "m^ST");
/// assert_eq!(serde_json::to_string(&FineTuning::Adversarial).unwrap(), "\"adversarial\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pretraining {
    Standard,
    Fast,
    Adversarial,
}

/// An IMP mask family, named by its re-training between pruning rounds: standard (m^ST) or
/// adversarial (m^AT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImpFamily {
    Standard,
    Adversarial,
}

/// How a transfer fine-tunes on the downstream data: on clean inputs or on PGD examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FineTuning {
    Standard,
    Adversarial,
}

impl Pretraining {
    pub const ALL: [Pretraining; 3] = [Pretraining::Standard, Pretraining::Fast, Pretraining::Adversarial];
    /// The paper's name: STD, FAT, AT.
    pub fn short(self) -> &'static str {
        self.regime().short()
    }
    /// The training regime this pre-training runs.
    pub fn regime(self) -> RegimeKind {
        match self {
            Pretraining::Standard => RegimeKind::Standard,
            Pretraining::Fast => RegimeKind::Fast,
            Pretraining::Adversarial => RegimeKind::Adversarial,
        }
    }
}

/// Every regime can pre-train a source.
impl From<RegimeKind> for Pretraining {
    fn from(k: RegimeKind) -> Pretraining {
        match k {
            RegimeKind::Standard => Pretraining::Standard,
            RegimeKind::Fast => Pretraining::Fast,
            RegimeKind::Adversarial => Pretraining::Adversarial,
        }
    }
}

/// The family of a re-training regime: fast adversarial re-training (FGSM-RS, which no study
/// builds) counts as adversarial.
impl From<RegimeKind> for ImpFamily {
    fn from(k: RegimeKind) -> ImpFamily {
        match k {
            RegimeKind::Standard => ImpFamily::Standard,
            RegimeKind::Fast | RegimeKind::Adversarial => ImpFamily::Adversarial,
        }
    }
}

impl ImpFamily {
    pub const ALL: [ImpFamily; 2] = [ImpFamily::Standard, ImpFamily::Adversarial];
    /// The paper's name: m^ST, m^AT.
    pub fn name(self) -> &'static str {
        self.regime().family()
    }
    /// The training regime of the re-training between rounds.
    pub fn regime(self) -> RegimeKind {
        match self {
            ImpFamily::Standard => RegimeKind::Standard,
            ImpFamily::Adversarial => RegimeKind::Adversarial,
        }
    }
}

/// The fine-tuning of a regime: fast adversarial fine-tuning (which no study builds) counts as
/// adversarial.
impl From<RegimeKind> for FineTuning {
    fn from(k: RegimeKind) -> FineTuning {
        match k {
            RegimeKind::Standard => FineTuning::Standard,
            RegimeKind::Fast | RegimeKind::Adversarial => FineTuning::Adversarial,
        }
    }
}

impl FineTuning {
    pub const ALL: [FineTuning; 2] = [FineTuning::Standard, FineTuning::Adversarial];
    /// `standard`, `adversarial`.
    pub fn name(self) -> &'static str {
        self.regime().name()
    }
    /// The training regime of the fine-tuning.
    pub fn regime(self) -> RegimeKind {
        match self {
            FineTuning::Standard => RegimeKind::Standard,
            FineTuning::Adversarial => RegimeKind::Adversarial,
        }
    }
}

/// Each role converts to its regime, and a regime compares equal to the role that runs it
/// (`record.fine_tuning == FineTuning::Adversarial`).
macro_rules! role_of_regime {
    ($($role:ident => $name:ident),*) => {$(
        impl From<$role> for RegimeKind {
            fn from(r: $role) -> RegimeKind {
                r.regime()
            }
        }
        impl PartialEq<$role> for RegimeKind {
            fn eq(&self, r: &$role) -> bool {
                *self == r.regime()
            }
        }
        impl std::fmt::Display for $role {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.regime().$name())
            }
        }
    )*};
}
role_of_regime!(Pretraining => short, ImpFamily => family, FineTuning => name);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_name_their_regimes_in_the_papers_words() {
        assert_eq!(Pretraining::ALL.map(|p| p.to_string()), ["STD", "FAT", "AT"]);
        assert_eq!(ImpFamily::ALL.map(|f| f.to_string()), ["m^ST", "m^AT"]);
        assert_eq!(FineTuning::ALL.map(|f| f.to_string()), ["standard", "adversarial"]);
        assert_eq!(RegimeKind::from(ImpFamily::Adversarial), RegimeKind::Adversarial);
        assert!(RegimeKind::Fast == Pretraining::Fast && RegimeKind::Fast != Pretraining::Adversarial);
    }
}
