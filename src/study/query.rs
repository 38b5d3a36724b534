//! Looking transfers up in a study's results: a [`Pick`] names one subnetwork (a pre-training's
//! dense network, a ticket of an IMP round, one of its controls, or the scratch control) on one
//! downstream dataset and data fraction, and [`StudyResults::runs`] hands back its runs. A
//! leaf of the study's modules: the gate, the claims, the report and the runner ask through it.

use super::desc::{subnetwork_name, SubnetworkKind, TransferDesc};
use super::grid::Study;
use super::results::StudyResults;
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::store::StepDescription;
use crate::train::RegimeKind;
use crate::transfer::TransferReport;
use std::collections::HashSet;

/// Which transfers to pick out of a study's results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    pub pretraining: RegimeKind,
    pub kind: SubnetworkKind,
    pub family: Option<RegimeKind>,
    pub round: usize,
    pub dataset: DataSource,
    pub fraction: f64,
}

impl Pick {
    /// The dense network of a pre-training.
    pub fn dense(pretraining: RegimeKind, dataset: DataSource, fraction: f64) -> Pick {
        Pick { pretraining, kind: SubnetworkKind::Dense, family: None, round: 0, dataset, fraction }
    }
    /// The scratch control (no pre-training; `pretraining` is ignored when picking its runs).
    pub fn scratch(dataset: DataSource, fraction: f64) -> Pick {
        Pick { pretraining: RegimeKind::Standard, kind: SubnetworkKind::Scratch, family: None, round: 0, dataset, fraction }
    }
    /// The ticket of `round` of an IMP family (or, with `kind`, one of its controls).
    pub fn ticket(pretraining: RegimeKind, family: RegimeKind, round: usize, dataset: DataSource, fraction: f64) -> Pick {
        Pick { pretraining, kind: SubnetworkKind::Ticket, family: Some(family), round, dataset, fraction }
    }
    pub fn kind(self, kind: SubnetworkKind) -> Pick {
        Pick { kind, ..self }
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
    pub fn pick_transfer(&self, p: Pick, fine_tuning: RegimeKind, seed: u64) -> Result<TransferDesc> {
        let subnetwork = match (p.kind, p.family) {
            (SubnetworkKind::Dense, _) => self.subnetwork(p.pretraining, None, 0)?,
            (SubnetworkKind::Scratch, _) => self.scratch(seed),
            (SubnetworkKind::Ticket, family) => self.subnetwork(p.pretraining, family, p.round)?,
            (control, Some(family)) => self.control(p.pretraining, control, family, p.round, seed)?,
            (control, None) => {
                return Err(Error::invalid(format!("a {} pick without an IMP family", control.name()), "use Pick::ticket(..).kind(..)"))
            }
        };
        self.transfer_desc(subnetwork, p.dataset, fine_tuning, p.fraction, seed)
    }
}

impl StudyResults {
    /// The transfer reports of one subnetwork (all fine-tunings and seeds), found by store key:
    /// the keys of the pick's transfers under every fine-tuning and seed of the study.
    pub fn runs(&self, p: Pick) -> Vec<&TransferReport> {
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
    fn keys(&self, p: Pick) -> Result<HashSet<String>> {
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
    pub fn sparsity(&self, p: Pick) -> Option<f64> {
        self.runs(p).first().map(|r| r.sparsity)
    }
}
