//! What a study produced: one [`TransferRecord`] per transfer and one [`LandscapeRecord`] per
//! landscape, read from the store in plan order ([`StudyResults::collect`]).

use super::grid::Study;
use super::grid::SubnetworkKind;
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::landscape::Landscape;
use crate::train::{FineTuning, ImpFamily, Pretraining};
use crate::transfer::TransferReport;
use serde::{Deserialize, Serialize};

/// How a run went: steps this process computed, steps it found done (in the store before, or
/// computed meanwhile by another process), and whether it was asked to stop before the end. A
/// worker prints it as JSON for the process that started it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RunSummary {
    pub computed: usize,
    pub stored: usize,
    pub seconds: f64,
    pub stopped: bool,
    /// Seconds spent computing steps, and waiting with nothing ready (steps held by other
    /// workers or waiting for their inputs).
    pub busy: f64,
    pub idle: f64,
}

impl RunSummary {
    /// The share of the workers' time spent waiting: idle / (busy + idle), summed over workers.
    pub fn idle_fraction(&self) -> f64 {
        if self.busy + self.idle > 0.0 {
            self.idle / (self.busy + self.idle)
        } else {
            0.0
        }
    }
}

/// What an attack check found: RA under the study's own test attacks and, on the points they
/// leave robust, under AutoAttack-fast as well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackCheck {
    pub title: String,
    pub examples: usize,
    pub sa: f64,
    /// RA under the study's test attacks (FGSM, PGD-20).
    pub ra_test: f64,
    /// RA under those and AutoAttack-fast.
    pub ra_strong: f64,
    pub per_attack: Vec<crate::attack::AttackOutcome>,
}

impl AttackCheck {
    /// How many points the study's test attack overstates RA.
    pub fn gap(&self) -> f64 {
        self.ra_test - self.ra_strong
    }
}

/// One transfer run of a study.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferRecord {
    /// STD / FAT / AT (`None` for the scratch control, which has no pre-training).
    pub pretraining: Option<Pretraining>,
    /// Dense, ticket, or a control of a ticket.
    pub kind: SubnetworkKind,
    /// IMP family of the ticket (or of the ticket a control imitates; `None` for dense).
    pub family: Option<ImpFamily>,
    /// IMP round (0 = the dense network).
    pub round: usize,
    pub dataset: DataSource,
    /// The transfer's store key: [`StudyResults::runs`] finds records by it.
    #[serde(default)]
    pub key: String,
    pub report: TransferReport,
}

/// One landscape of a study, with the fine-tuning run it was drawn from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LandscapeRecord {
    pub pretraining: Pretraining,
    pub fraction: f64,
    pub report: TransferReport,
    pub landscape: Landscape,
}

/// Everything a study produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudyResults {
    pub study: Study,
    pub transfers: Vec<TransferRecord>,
    pub landscapes: Vec<LandscapeRecord>,
    /// The attack checks: how much the study's test attack overstates RA.
    #[serde(default)]
    pub attack_checks: Vec<AttackCheck>,
    pub seconds: f64,
    /// Steps computed in this call (the rest came from the store).
    pub computed_steps: usize,
}

/// One transfer as a flat record (for tables, ndarray or a data frame of one's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRow {
    /// `None` for the scratch control.
    pub pretraining: Option<Pretraining>,
    pub kind: SubnetworkKind,
    pub family: Option<ImpFamily>,
    pub round: usize,
    pub sparsity: f64,
    pub dataset: String,
    pub fine_tuning: FineTuning,
    pub fraction: f64,
    pub seed: u64,
    /// Test SA at the best-validation-SA checkpoint.
    pub sa: f64,
    /// Test RA at the best-validation-RA checkpoint.
    pub ra: f64,
}

impl StudyResults {
    /// The numeric columns of [`StudyResults::records_array`].
    pub const RECORD_COLUMNS: [&'static str; 8] = ["round", "sparsity", "fraction", "seed", "adversarial_ft", "pretraining", "sa", "ra"];

    /// One column of [`StudyResults::records_array`] by its name (one of
    /// [`StudyResults::RECORD_COLUMNS`]): no positional indices in a notebook.
    ///
    /// ```no_run
    /// use doublewin::prelude::*;
    /// # fn main() -> Result<()> {
    /// let results = Session::from_env()?.results()?;
    /// let (adversarial, ra) = (results.records_column("adversarial_ft")?, results.records_column("ra")?);
    /// println!("mean RA after adversarial fine-tuning: {}", (&adversarial * &ra).sum() / adversarial.sum());
    /// # Ok(())
    /// # }
    /// ```
    pub fn records_column(&self, name: &str) -> Result<ndarray::Array1<f64>> {
        let i = Self::RECORD_COLUMNS.iter().position(|c| *c == name).ok_or_else(|| {
            Error::invalid(format!("no record column named '{name}'"), format!("use one of {}", Self::RECORD_COLUMNS.join(", ")))
        })?;
        Ok(self.records_array().column(i).to_owned())
    }

    /// One flat record per transfer.
    pub fn records(&self) -> Vec<TransferRow> {
        self.transfers
            .iter()
            .map(|t| TransferRow {
                pretraining: t.pretraining,
                kind: t.kind,
                family: t.family,
                round: t.round,
                sparsity: t.report.sparsity,
                dataset: t.dataset.name().into(),
                fine_tuning: t.report.fine_tuning.into(),
                fraction: t.report.fraction,
                seed: t.report.seed,
                sa: t.report.best_sa.test_sa,
                ra: t.report.best_ra.test_ra,
            })
            .collect()
    }

    /// The records' numbers as an ndarray, one row per transfer, columns
    /// [`StudyResults::RECORD_COLUMNS`] (`adversarial_ft` 1 for adversarial fine-tuning;
    /// `pretraining` 0 STD, 1 FAT, 2 AT, -1 none: the scratch control).
    pub fn records_array(&self) -> ndarray::Array2<f64> {
        let rows = self.records();
        ndarray::Array2::from_shape_fn((rows.len(), Self::RECORD_COLUMNS.len()), |(r, c)| {
            let t = &rows[r];
            let pre = t.pretraining.and_then(|p| Pretraining::ALL.iter().position(|k| *k == p)).map_or(-1.0, |i| i as f64);
            [
                t.round as f64,
                t.sparsity,
                t.fraction,
                t.seed as f64,
                f64::from(u8::from(t.fine_tuning == FineTuning::Adversarial)),
                pre,
                t.sa,
                t.ra,
            ][c]
        })
    }
}
