//! Looking transfers up in a study's results: a [`TransferGroup`] names one subnetwork (a pre-training's
//! dense network, a ticket of an IMP round, one of its controls, or the scratch control) on one
//! downstream dataset and data fraction, and [`StudyResults::runs`] hands back its runs. A
//! leaf of the study's modules: the gate, the claims, the report and the runner ask through it.

use super::grid::Study;
use super::grid::SubnetworkKind;
use super::results::StudyResults;
use super::steps::{subnetwork_name, TransferDesc};
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::store::StepDescription;
use crate::train::{FineTuning, ImpFamily, Pretraining};
use crate::transfer::TransferReport;
use std::collections::HashSet;

/// The transfers of one subnetwork on one downstream dataset and data fraction: every
/// fine-tuning and seed of it in a study's results ([`StudyResults::runs`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferGroup {
    pub pretraining: Pretraining,
    pub kind: SubnetworkKind,
    pub family: Option<ImpFamily>,
    pub round: usize,
    pub dataset: DataSource,
    pub fraction: f64,
}

impl TransferGroup {
    /// The dense network of a pre-training.
    pub fn dense(pretraining: Pretraining, dataset: DataSource, fraction: f64) -> TransferGroup {
        TransferGroup { pretraining, kind: SubnetworkKind::Dense, family: None, round: 0, dataset, fraction }
    }
    /// The scratch control (no pre-training; `pretraining` is ignored when picking its runs).
    pub fn scratch(dataset: DataSource, fraction: f64) -> TransferGroup {
        TransferGroup { pretraining: Pretraining::Standard, kind: SubnetworkKind::Scratch, family: None, round: 0, dataset, fraction }
    }
    /// The ticket of `round` of an IMP family (or, with `kind`, one of its controls).
    pub fn ticket(pretraining: Pretraining, family: ImpFamily, round: usize, dataset: DataSource, fraction: f64) -> TransferGroup {
        TransferGroup { pretraining, kind: SubnetworkKind::Ticket, family: Some(family), round, dataset, fraction }
    }
    pub fn kind(self, kind: SubnetworkKind) -> TransferGroup {
        TransferGroup { kind, ..self }
    }
    pub fn name(&self) -> String {
        match self.kind {
            SubnetworkKind::Scratch => "scratch".into(),
            _ => format!("{} {}", self.pretraining.short(), subnetwork_name(self.kind, self.family, self.round)),
        }
    }
}

impl Study {
    /// The transfer of a pick's subnetwork under one fine-tuning and seed.
    pub fn pick_transfer(&self, p: TransferGroup, fine_tuning: FineTuning, seed: u64) -> Result<TransferDesc> {
        let subnetwork = match (p.kind, p.family) {
            (SubnetworkKind::Dense, _) => self.subnetwork(p.pretraining, None, 0)?,
            (SubnetworkKind::Scratch, _) => self.scratch(seed),
            (SubnetworkKind::Ticket, Some(family)) => self.subnetwork(p.pretraining, Some(family), p.round)?,
            (control, Some(family)) => self.control(p.pretraining, control, family, p.round, seed)?,
            // A ticket or control without its IMP family is refused, never read as the dense network.
            (kind, None) => {
                return Err(Error::invalid(
                    format!("a {} pick without an IMP family", kind.name()),
                    "use TransferGroup::ticket(..) (and .kind(..) for a control)",
                ))
            }
        };
        self.transfer_desc(subnetwork, p.dataset, fine_tuning, p.fraction, seed)
    }
}

impl StudyResults {
    /// The transfer reports of one subnetwork (all fine-tunings and seeds), found by store key:
    /// the keys of the pick's transfers under every fine-tuning and seed of the study.
    pub fn runs(&self, p: TransferGroup) -> Vec<&TransferReport> {
        let keys = match self.keys(p) {
            Ok(k) => k,
            // The study was checked before it ran: its descriptions always build.
            Err(e) => {
                crate::progress::note(&format!("cannot look up {}: {e}", p.name()));
                return Vec::new();
            }
        };
        self.transfers.iter().filter(|t| keys.contains(&t.key)).map(|t| &t.report).collect()
    }

    /// The store keys of a pick's transfers.
    fn keys(&self, p: TransferGroup) -> Result<HashSet<String>> {
        let s = &self.study;
        let mut keys = HashSet::new();
        for seed in s.all_seeds() {
            for &ft in &s.fine_tunings {
                keys.insert(s.pick_transfer(p, ft, seed)?.key()?);
            }
        }
        Ok(keys)
    }

    /// The sparsity of a subnetwork's runs (`None` without runs).
    pub fn sparsity(&self, p: TransferGroup) -> Option<f64> {
        self.runs(p).first().map(|r| r.sparsity)
    }
}
