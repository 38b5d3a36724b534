//! What a study produced: one [`TransferRecord`] per transfer and one [`LandscapeRecord`] per
//! landscape, read from the store in plan order ([`StudyResults::collect`]).

use super::desc::SubnetworkKind;
use super::grid::Study;
use super::plan::{Plan, StepDesc};
use super::runner::RunSummary;
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::landscape::Landscape;
use crate::store::{StepDescription, Store};
use crate::train::RegimeKind;
use crate::transfer::TransferReport;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One transfer run of a study.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferRecord {
    pub pretraining: RegimeKind,
    /// Dense, ticket, or a control of a ticket.
    pub kind: SubnetworkKind,
    /// IMP family of the ticket (or of the ticket a control imitates; `None` for dense).
    pub family: Option<RegimeKind>,
    /// IMP round (0 = the dense network).
    pub round: usize,
    pub dataset: DataSource,
    pub report: TransferReport,
}

/// One landscape of a study, with the fine-tuning run it was drawn from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LandscapeRecord {
    pub pretraining: RegimeKind,
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
    pub seconds: f64,
    /// Steps computed in this call (the rest came from the store).
    pub computed_steps: usize,
}

fn load<T: DeserializeOwned>(store: &Store, kind: &str, key: &str, label: &str) -> Result<T> {
    store.load(kind, key)?.ok_or_else(|| Error::not_found(format!("the result of '{label}' ({kind}/{key})"), "run the study first"))
}

impl StudyResults {
    /// Reads the results of every transfer and landscape of `plan` from `store` (all must be
    /// done).
    pub fn collect(study: &Study, plan: &Plan, store: &Store, run: RunSummary) -> Result<StudyResults> {
        let mut transfers = Vec::new();
        let mut landscapes = Vec::new();
        for step in &plan.steps {
            match &step.desc {
                StepDesc::Transfer(d) => transfers.push(TransferRecord {
                    pretraining: d.subnetwork.pretrain().pretraining(),
                    kind: d.subnetwork.kind(),
                    family: d.subnetwork.family(),
                    round: d.subnetwork.round(),
                    dataset: d.dataset,
                    report: load(store, step.kind, &step.key, &step.label)?,
                }),
                StepDesc::Landscape(d) => {
                    let t = &d.trajectory;
                    landscapes.push(LandscapeRecord {
                        pretraining: t.transfer.subnetwork.pretrain().pretraining(),
                        fraction: t.transfer.transfer.fraction,
                        report: load(store, super::desc::TrajectoryDesc::KIND, &t.key()?, &t.label())?,
                        landscape: load(store, step.kind, &step.key, &step.label)?,
                    })
                }
                _ => {}
            }
        }
        Ok(StudyResults { study: study.clone(), transfers, landscapes, seconds: run.seconds, computed_steps: run.computed })
    }
}
