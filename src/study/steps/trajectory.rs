//! A fine-tuning whose checkpoints are kept: the trajectory a landscape is drawn around, one per
//! pre-training and landscape data fraction of the study.

use super::{Executor, Step, TransferDesc};
use crate::error::Result;
use crate::store::{Attempt, Input, StepDescription, Store};
use crate::study::Study;
use crate::train::Pretraining;
use crate::transfer::TransferReport;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A fine-tuning whose checkpoints are kept: the trajectory of a landscape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajectoryDesc {
    pub transfer: TransferDesc,
    /// At most this many checkpoints, evenly spaced, the first and last always.
    pub checkpoints: usize,
}

impl TrajectoryDesc {
    pub const KIND: &'static str = "trajectory";
    /// The checkpoint folder in the step's folder.
    pub const CHECKPOINTS: &'static str = "checkpoints";

    /// The checkpoints of the fine-tuning in `store`.
    pub fn checkpoints_in(&self, store: &Store) -> Result<PathBuf> {
        Ok(store.step(self)?.file(Self::CHECKPOINTS))
    }
    /// The checkpoints, as an input of a step below.
    pub(crate) fn checkpoints_input(&self) -> Result<Input> {
        Input::of(self, format!("{}/", Self::CHECKPOINTS))
    }
    fn describe(&self) -> String {
        format!("{} with checkpoints", self.transfer.label())
    }
    fn reads(&self) -> Result<Vec<Input>> {
        self.transfer.reads()
    }
}

step_description!(TrajectoryDesc);

impl Step for TrajectoryDesc {
    type Output = TransferReport;
    fn grid(study: &Study) -> Result<Vec<TrajectoryDesc>> {
        let Some(l) = &study.landscapes else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for &pre in &study.pretrainings {
            for &fraction in &l.fractions {
                out.push(study.trajectory_desc(pre, fraction)?);
            }
        }
        Ok(out)
    }
    fn cost(&self) -> f64 {
        1.2 * self.transfer.cost()
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<TransferReport>> {
        self.transfer.fine_tune(ex, self, Some(self))
    }
}

impl Study {
    /// The fine-tuning with checkpoints behind the landscape of pre-training `kind` at `fraction`.
    pub fn trajectory_desc(&self, kind: Pretraining, fraction: f64) -> Result<TrajectoryDesc> {
        let plan = self.landscape_plan()?;
        let seed = self.seeds.first().copied().unwrap_or(0);
        let ticket = self.subnetwork(kind, Some(plan.family), plan.round)?;
        Ok(TrajectoryDesc {
            transfer: self.transfer_desc(ticket, plan.dataset, plan.fine_tuning, fraction, seed)?,
            checkpoints: plan.checkpoints,
        })
    }
}
