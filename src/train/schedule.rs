//! Learning-rate schedules, evaluated at fractional epochs so warm-up is smooth within an epoch.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the learning rate changes over training (after the optional linear warm-up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    #[default]
    Constant,
    /// Multiply by `gamma` at each milestone epoch (e.g. 50 and 100 with gamma 0.1).
    MultiStep { milestones: Vec<usize>, gamma: f64 },
    /// Cosine annealing from the base rate to `min_lr` at the last epoch.
    Cosine { min_lr: f64 },
}

impl Schedule {
    pub fn check(&self) -> Result<()> {
        match self {
            Schedule::MultiStep { gamma, .. } if gamma.is_nan() || *gamma <= 0.0 => {
                Err(Error::invalid(format!("multistep gamma {gamma} must be positive"), "use e.g. 0.1"))
            }
            Schedule::Cosine { min_lr } if !(*min_lr >= 0.0 && *min_lr <= f32::MAX as f64) => {
                Err(Error::invalid(format!("cosine min_lr = {min_lr:e} must be >= 0 and within a 32-bit float's range"), "use e.g. 0.0"))
            }
            _ => Ok(()),
        }
    }

    /// The learning rate at fractional epoch `t` (0 <= t <= epochs) given the base rate, the
    /// total number of epochs and the warm-up length in epochs (linear from 0).
    pub fn lr(&self, base: f64, t: f64, epochs: usize, warmup: f64) -> f64 {
        let scheduled = match self {
            Schedule::Constant => base,
            Schedule::MultiStep { milestones, gamma } => base * gamma.powi(milestones.iter().filter(|&&m| t >= m as f64).count() as i32),
            Schedule::Cosine { min_lr } => {
                let span = (epochs as f64 - warmup).max(1e-9);
                let progress = ((t - warmup) / span).clamp(0.0, 1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        if warmup > 0.0 && t < warmup {
            scheduled * (t / warmup).max(1e-3)
        } else {
            scheduled
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_definitions() {
        let m = Schedule::MultiStep { milestones: vec![50, 100], gamma: 0.1 };
        assert_eq!(m.lr(1.0, 49.9, 150, 0.0), 1.0);
        assert!((m.lr(1.0, 50.0, 150, 0.0) - 0.1).abs() < 1e-12);
        assert!((m.lr(1.0, 120.0, 150, 0.0) - 0.01).abs() < 1e-12);
        let c = Schedule::Cosine { min_lr: 0.0 };
        assert!((c.lr(1.0, 0.0, 10, 0.0) - 1.0).abs() < 1e-12);
        assert!((c.lr(1.0, 5.0, 10, 0.0) - 0.5).abs() < 1e-12);
        assert!(c.lr(1.0, 10.0, 10, 0.0).abs() < 1e-12);
        assert!((Schedule::Constant.lr(1.0, 0.5, 10, 2.0) - 0.25).abs() < 1e-12);
    }
}
