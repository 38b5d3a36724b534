//! Looking transfers up in a study's results: a [`Pick`] names one subnetwork (a pre-training's
//! dense network, a ticket of an IMP round, one of its controls, or the scratch control) on one
//! downstream dataset and data fraction, and [`StudyResults::runs`] hands back its runs. A
//! leaf of the study's modules: the gate, the claims, the report and the runner ask through it.

use super::desc::{subnetwork_name, SubnetworkKind};
use super::results::StudyResults;
use crate::data::DataSource;
use crate::train::RegimeKind;
use crate::transfer::TransferReport;

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

impl StudyResults {
    /// The transfer reports of one subnetwork (all fine-tunings and seeds).
    pub fn runs(&self, p: Pick) -> Vec<&TransferReport> {
        self.transfers
            .iter()
            .filter(|t| {
                (p.kind == SubnetworkKind::Scratch || t.pretraining == Some(p.pretraining))
                    && t.kind == p.kind
                    && t.family == p.family
                    && t.round == p.round
                    && t.dataset == p.dataset
                    && t.report.fraction == p.fraction
            })
            .map(|t| &t.report)
            .collect()
    }

    /// The sparsity of a subnetwork's runs (`None` without runs).
    pub fn sparsity(&self, p: Pick) -> Option<f64> {
        self.runs(p).first().map(|r| r.sparsity)
    }
}
