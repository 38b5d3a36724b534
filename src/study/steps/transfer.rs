//! Fine-tuning a subnetwork on a downstream dataset: the dense pre-trained network, a ticket, a
//! control of a ticket, or the scratch control, under each fine-tuning, data fraction and seed of
//! the study. The study's results keep every transfer's report.

use super::{arch_scale, passes, Executor, HoldOut, ImpDesc, PretrainDesc, Step, TrajectoryDesc};
use crate::data::{DataSource, Splits};
use crate::error::{Error, Result};
use crate::model::{Arch, Network, NetworkSpec};
use crate::store::{Attempt, Input, StepDescription, Store};
use crate::study::results::TransferRecord;
use crate::study::{Study, StudyResults, SubnetworkKind};
use crate::train::{FineTuning, ImpFamily, Pretraining};
use crate::transfer::{transfer_recorded, CheckpointPlan, TransferConfig, TransferReport, JUDGING};
use serde::{Deserialize, Serialize};

/// The network that is transferred: the dense pre-trained network, a ticket of an IMP round, one
/// of the two controls of a ticket (open_lth's and the LTH literature's baselines: without them
/// "IMP found a ticket" cannot be told from "any sparse network would do"), or the control of
/// pre-training itself: the same architecture from a random initialisation (without it, "the
/// ticket keeps what pre-training gave" cannot be told from "pre-training gave nothing").
// Descriptions are small plain data, built a few hundred times per study: no boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Subnetwork {
    Dense(PretrainDesc),
    Ticket {
        imp: ImpDesc,
        round: usize,
    },
    /// A random mask with the ticket's per-layer kept counts, drawn with `seed`.
    RandomTicket {
        imp: ImpDesc,
        round: usize,
        seed: u64,
    },
    /// One-shot global magnitude pruning of the pre-trained weights to the ticket's kept count.
    OneShot {
        imp: ImpDesc,
        round: usize,
    },
    /// No pre-training: the architecture initialised at random with `seed` (a new draw per
    /// fine-tuning seed), then transferred exactly like the dense network (same new head,
    /// recipe, attacks and checkpoint selection).
    Scratch {
        arch: Arch,
        seed: u64,
    },
}

impl Subnetwork {
    /// The pre-training it starts from (`None` for the scratch control).
    pub fn pretrain(&self) -> Option<&PretrainDesc> {
        match self {
            Subnetwork::Dense(p) => Some(p),
            Subnetwork::Ticket { imp, .. } | Subnetwork::RandomTicket { imp, .. } | Subnetwork::OneShot { imp, .. } => Some(&imp.pretrain),
            Subnetwork::Scratch { .. } => None,
        }
    }
    /// The architecture it transfers (the pre-trained one's, or the scratch control's).
    pub fn arch(&self) -> &Arch {
        match self {
            Subnetwork::Scratch { arch, .. } => arch,
            Subnetwork::Dense(p) => &p.arch,
            Subnetwork::Ticket { imp, .. } | Subnetwork::RandomTicket { imp, .. } | Subnetwork::OneShot { imp, .. } => &imp.pretrain.arch,
        }
    }
    /// STD / FAT / AT, or `None` for the scratch control.
    pub fn pretraining(&self) -> Option<Pretraining> {
        self.pretrain().map(|p| p.pretraining())
    }
    /// "STD", "FAT", "AT", or "none" (scratch).
    pub fn pretraining_name(&self) -> &'static str {
        self.pretraining().map_or("none", |p| p.short())
    }
    /// The IMP run whose ticket this is or imitates (`None` for the dense network and scratch).
    pub fn imp(&self) -> Option<&ImpDesc> {
        match self {
            Subnetwork::Dense(_) | Subnetwork::Scratch { .. } => None,
            Subnetwork::Ticket { imp, .. } | Subnetwork::RandomTicket { imp, .. } | Subnetwork::OneShot { imp, .. } => Some(imp),
        }
    }
    pub fn kind(&self) -> SubnetworkKind {
        match self {
            Subnetwork::Dense(_) => SubnetworkKind::Dense,
            Subnetwork::Ticket { .. } => SubnetworkKind::Ticket,
            Subnetwork::RandomTicket { .. } => SubnetworkKind::RandomTicket,
            Subnetwork::OneShot { .. } => SubnetworkKind::OneShot,
            Subnetwork::Scratch { .. } => SubnetworkKind::Scratch,
        }
    }
    /// The IMP family of the ticket (or of the ticket a control imitates; `None` for dense).
    pub fn family(&self) -> Option<ImpFamily> {
        self.imp().map(|i| i.family())
    }
    /// The IMP round (0 for the dense network and scratch).
    pub fn round(&self) -> usize {
        match self {
            Subnetwork::Dense(_) | Subnetwork::Scratch { .. } => 0,
            Subnetwork::Ticket { round, .. } | Subnetwork::RandomTicket { round, .. } | Subnetwork::OneShot { round, .. } => *round,
        }
    }
    /// "dense", "m^ST r6", "random m^ST r6", "one-shot m^ST r6".
    pub fn name(&self) -> String {
        subnetwork_name(self.kind(), self.family(), self.round())
    }
}

/// "dense", "m^ST r6", "random m^ST r6", "one-shot m^ST r6".
pub fn subnetwork_name(kind: SubnetworkKind, family: Option<ImpFamily>, round: usize) -> String {
    let ticket = family.map(|f| format!("{} r{round}", f.name())).unwrap_or_default();
    match kind {
        SubnetworkKind::Dense => "dense".into(),
        SubnetworkKind::Ticket => ticket,
        SubnetworkKind::RandomTicket => format!("random {ticket}"),
        SubnetworkKind::OneShot => format!("one-shot {ticket}"),
        SubnetworkKind::Scratch => "scratch".into(),
    }
}

/// Fine-tuning a subnetwork on a downstream dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferDesc {
    pub subnetwork: Subnetwork,
    pub dataset: DataSource,
    pub holdout: HoldOut,
    pub transfer: TransferConfig,
    /// How the test numbers are measured ([`JUDGING`], part of the key); 0 (absent) in the
    /// transfers stored before it was recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub judging: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Subnetwork {
    /// The upstream files a transfer of this subnetwork reads.
    fn reads(&self) -> Result<Vec<Input>> {
        let mut inputs = Vec::new();
        if let Some(p) = self.pretrain() {
            inputs.push(p.weights_input()?);
        }
        if let Some(imp) = self.imp() {
            inputs.push(imp.mask_input(self.round())?);
        }
        Ok(inputs)
    }
}

impl TransferDesc {
    pub const KIND: &'static str = "transfer";

    pub fn splits(&self) -> Result<Splits> {
        self.holdout.splits(self.dataset)
    }
    fn describe(&self) -> String {
        format!(
            "{} {} -> {} ({}, {}%, seed {})",
            self.subnetwork.pretraining_name(),
            self.subnetwork.name(),
            self.dataset.name(),
            self.transfer.fine_tuning().name(),
            100.0 * self.transfer.fraction,
            self.transfer.seed
        )
    }
    pub(super) fn reads(&self) -> Result<Vec<Input>> {
        self.subnetwork.reads()
    }

    /// Fine-tunes the subnetwork under the store's lock of `step` (this transfer, or a trajectory
    /// that keeps `checkpoints` of it).
    pub(super) fn fine_tune<S: StepDescription>(
        &self,
        ex: &mut Executor,
        step: &S,
        checkpoints: Option<&TrajectoryDesc>,
    ) -> Result<Attempt<TransferReport>> {
        if self.judging != JUDGING {
            return Err(Error::invalid(
                format!("{} asks for judging revision {}; this version measures revision {JUDGING}", step.label(), self.judging),
                "declare transfers with Study::transfer_desc (a study's plan does)",
            ));
        }
        let splits = ex.splits(self.dataset, self.holdout)?;
        let pretrained = ex.start(&self.subnetwork, &splits)?;
        let mask = ex.mask(&self.subnetwork)?;
        let announce = ex.announce(step.kind(), step.label());
        ex.store.run(step, ex.wait, |dir| {
            announce();
            let plan = checkpoints.map(|t| CheckpointPlan { dir: dir.join(TrajectoryDesc::CHECKPOINTS), max: t.checkpoints });
            transfer_recorded(&pretrained, mask.as_ref(), &splits, &self.transfer, plan.as_ref())
        })
    }
}

step_description!(TransferDesc);

impl Step for TransferDesc {
    type Output = TransferReport;
    /// Per pre-training: the dense network and the tickets at the study's rounds, then the
    /// controls; the scratch control last. Each on every downstream dataset, fine-tuning, data
    /// fraction and seed (the controls with the study's seeds only: they support the control
    /// table, not the headline or the claims).
    fn grid(study: &Study) -> Result<Vec<TransferDesc>> {
        let mut out = Vec::new();
        for &pre in &study.pretrainings {
            let mut subnetworks = vec![study.subnetwork(pre, None, 0)?];
            for &family in &study.families {
                for &r in &study.rounds {
                    subnetworks.push(study.subnetwork(pre, Some(family), r)?);
                }
            }
            for &d in &study.downstream {
                for subnetwork in &subnetworks {
                    for &ft in &study.fine_tunings {
                        for &fraction in &study.fractions {
                            for seed in study.all_seeds() {
                                out.push(study.transfer_desc(subnetwork.clone(), d, ft, fraction, seed)?);
                            }
                        }
                    }
                }
            }
            if let Some(c) = &study.controls {
                for &d in &study.downstream {
                    for &control in &c.kinds {
                        for &r in &c.rounds {
                            for &ft in &study.fine_tunings {
                                for &fraction in &c.fractions {
                                    for &seed in &study.seeds {
                                        let subnetwork = study.control(pre, control, c.family, r, seed)?;
                                        out.push(study.transfer_desc(subnetwork, d, ft, fraction, seed)?);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if study.scratch {
            for &d in &study.downstream {
                for &ft in &study.fine_tunings {
                    for &fraction in &study.fractions {
                        for seed in study.all_seeds() {
                            out.push(study.transfer_desc(study.scratch(seed), d, ft, fraction, seed)?);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
    fn cost(&self) -> f64 {
        let r = &self.transfer.recipe;
        // A fine-tuning's epochs are raised to its minimum steps with little data.
        (r.recipe.epochs as f64 * self.transfer.fraction.max(0.1) / 20.0).max(self.transfer.min_steps as f64 / 300.0)
            * 3.0
            * passes(&r.regime)
            * arch_scale(self.subnetwork.arch())
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<TransferReport>> {
        self.fine_tune(ex, self, None)
    }
    fn collect(&self, store: &Store, results: &mut StudyResults) -> Result<()> {
        results.transfers.push(TransferRecord {
            pretraining: self.subnetwork.pretraining(),
            kind: self.subnetwork.kind(),
            family: self.subnetwork.family(),
            round: self.subnetwork.round(),
            dataset: self.dataset,
            key: self.key()?,
            report: self.load(store)?,
        });
        Ok(())
    }
}

impl Executor<'_> {
    /// The network a transfer starts from: the pre-trained one, or for the scratch control the
    /// architecture freshly initialised with its seed (built for the downstream data; the
    /// transfer gives it a new head and the downstream normalisation like any other).
    fn start(&mut self, s: &Subnetwork, downstream: &Splits) -> Result<Network> {
        match (s, s.pretrain()) {
            (_, Some(p)) => self.pretrained(p),
            (Subnetwork::Scratch { arch, seed }, None) => {
                Network::new(NetworkSpec::for_data(arch.clone(), &downstream.train)?, self.rt.device, *seed)
            }
            _ => Err(Error::invalid(format!("{} has no pre-training", s.name()), "report this as a bug")),
        }
    }
}

impl Study {
    /// The dense network (`family` `None`) or the ticket of `round` of an IMP family.
    pub fn subnetwork(&self, kind: Pretraining, family: Option<ImpFamily>, round: usize) -> Result<Subnetwork> {
        Ok(match family {
            None => Subnetwork::Dense(self.pretrain_desc(kind)?),
            Some(f) => Subnetwork::Ticket { imp: self.imp_desc(kind, f)?, round },
        })
    }

    /// A control of the ticket of `round` of an IMP family (the random ticket drawn with `seed`).
    pub fn control(&self, kind: Pretraining, control: SubnetworkKind, family: ImpFamily, round: usize, seed: u64) -> Result<Subnetwork> {
        let imp = self.imp_desc(kind, family)?;
        match control {
            SubnetworkKind::RandomTicket => Ok(Subnetwork::RandomTicket { imp, round, seed }),
            SubnetworkKind::OneShot => Ok(Subnetwork::OneShot { imp, round }),
            other => Err(Error::invalid(format!("{} is not a control", other.name()), "use random-ticket or one-shot")),
        }
    }

    /// The scratch control drawn with `seed` (the study's architecture, untrained).
    pub fn scratch(&self, seed: u64) -> Subnetwork {
        Subnetwork::Scratch { arch: self.arch.clone(), seed }
    }

    /// One transfer of the grid.
    pub fn transfer_desc(
        &self,
        subnetwork: Subnetwork,
        dataset: DataSource,
        fine_tuning: FineTuning,
        fraction: f64,
        seed: u64,
    ) -> Result<TransferDesc> {
        let transfer = TransferConfig::new(fine_tuning, &self.threat)?
            .seed(seed)
            .recipe(self.transfer.recipe.clone())
            .min_steps(self.transfer.min_steps)
            .fraction(fraction);
        Ok(TransferDesc { subnetwork, dataset, holdout: HoldOut::STUDY, transfer, judging: JUDGING })
    }
}
