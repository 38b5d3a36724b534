//! Step descriptions (open_lth's `Desc`, done with serde): one type per kind of step, each
//! nesting the descriptions of everything upstream of it, so that its hash ([`crate::store::key_of`])
//! names exactly the experiment that produced it. A change anywhere upstream (a pre-training
//! epoch, an IMP learning rate, eps) changes the key of every step below it and of nothing else.
//! The store writes each description as the step's `describe.json`.

use crate::data::{DataSource, Splits};
use crate::error::Result;
use crate::landscape::LandscapeConfig;
use crate::model::Arch;
use crate::prune::ImpConfig;
use crate::store::{Input, StepDescription, Store};
use crate::train::{RegimeKind, TrainConfig};
use crate::transfer::TransferConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a dataset's validation split is held out of its training split (stratified, seeded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldOut {
    pub val_fraction: f64,
    pub seed: u64,
}

impl HoldOut {
    /// Every study holds out [`crate::data::VALIDATION_FRACTION`] of the training split with seed 0, for every pre-training and
    /// fine-tuning seed: validation sets do not change with the seed.
    pub const STUDY: HoldOut = HoldOut { val_fraction: crate::data::VALIDATION_FRACTION, seed: 0 };

    pub fn splits(&self, data: DataSource) -> Result<Splits> {
        data.splits(self.val_fraction, self.seed)
    }
}

/// Pre-training a source network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainDesc {
    pub source: DataSource,
    pub holdout: HoldOut,
    pub source_fraction: f64,
    pub arch: Arch,
    /// The recipe with its regime (STD / FAT / AT) and seed filled in.
    pub train: TrainConfig,
    /// Initialisation and data-subset seed.
    pub seed: u64,
}

impl PretrainDesc {
    pub const KIND: &'static str = "pretrain";
    /// The weights file in the step's folder.
    pub const WEIGHTS: &'static str = "net.safetensors";

    pub fn pretraining(&self) -> RegimeKind {
        self.train.regime.kind()
    }
    /// The pre-trained weights in `store`.
    pub fn weights_in(&self, store: &Store) -> Result<PathBuf> {
        Ok(store.step(self)?.file(Self::WEIGHTS))
    }
    /// The source splits it trains on.
    pub fn splits(&self) -> Result<Splits> {
        self.holdout.splits(self.source)?.with_train_fraction(self.source_fraction, self.seed)
    }
    fn describe(&self) -> String {
        format!("{} pre-training on {} ({}%)", self.pretraining().short(), self.source.name(), 100.0 * self.source_fraction)
    }
}

/// IMP from a pre-trained network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpDesc {
    pub pretrain: PretrainDesc,
    /// IMP with its re-training regime (m^ST / m^AT) and seed filled in.
    pub imp: ImpConfig,
    /// Fraction of the pre-training subset IMP re-trains on.
    pub data_fraction: f64,
}

impl ImpDesc {
    pub const KIND: &'static str = "imp";

    /// The mask family, by its re-training regime.
    pub fn family(&self) -> RegimeKind {
        self.imp.retrain.regime.kind()
    }
    /// The splits IMP re-trains on.
    pub fn splits(&self) -> Result<Splits> {
        let source = self.pretrain.splits()?;
        if self.data_fraction < 1.0 {
            source.with_train_fraction(self.data_fraction, self.pretrain.seed)
        } else {
            Ok(source)
        }
    }
    /// The mask of a round in `store`.
    pub fn mask_in(&self, store: &Store, round: usize) -> Result<PathBuf> {
        Ok(crate::prune::round_path(store.step(self)?.dir(), round))
    }
    fn describe(&self) -> String {
        format!("{} IMP from {} ({} rounds)", self.family().family(), self.pretrain.pretraining().short(), self.imp.rounds)
    }
}

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

/// What kind of subnetwork a transfer starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubnetworkKind {
    Dense,
    Ticket,
    RandomTicket,
    OneShot,
    Scratch,
}

impl SubnetworkKind {
    /// The controls, in report order.
    pub const CONTROLS: [SubnetworkKind; 2] = [SubnetworkKind::RandomTicket, SubnetworkKind::OneShot];

    pub fn name(self) -> &'static str {
        match self {
            SubnetworkKind::Dense => "dense",
            SubnetworkKind::Ticket => "ticket",
            SubnetworkKind::RandomTicket => "random ticket",
            SubnetworkKind::OneShot => "one-shot",
            SubnetworkKind::Scratch => "scratch",
        }
    }
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
    pub fn pretraining(&self) -> Option<RegimeKind> {
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
    pub fn family(&self) -> Option<RegimeKind> {
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
pub fn subnetwork_name(kind: SubnetworkKind, family: Option<RegimeKind>, round: usize) -> String {
    let ticket = family.map(|f| format!("{} r{round}", f.family())).unwrap_or_default();
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
}

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

    fn describe(&self) -> String {
        format!("{} with checkpoints", self.transfer.label())
    }
}

/// A loss landscape around the end of a trajectory, on the downstream test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandscapeDesc {
    pub trajectory: TrajectoryDesc,
    pub landscape: LandscapeConfig,
    /// Trajectories whose landscapes share this one's scale: the grid spans `margin` times the
    /// longest of their start-to-end distances in weight space (empty: its own trajectory).
    pub scale_with: Vec<TrajectoryDesc>,
}

impl LandscapeDesc {
    pub const KIND: &'static str = "landscape";

    /// "AT m^ST r6, 10% data".
    pub fn title(&self) -> String {
        let t = &self.trajectory.transfer;
        format!("{} {}, {}% data", t.subnetwork.pretraining_name(), t.subnetwork.name(), 100.0 * t.transfer.fraction)
    }
    fn describe(&self) -> String {
        format!("landscape {}", self.title())
    }
}

/// The network an attack check evaluates: a pre-trained source model, or the final weights of a
/// landscape's fine-tuning (an adversarially fine-tuned ticket).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Checked {
    Source(PretrainDesc),
    FineTuned(TrajectoryDesc),
}

/// How much the study's test attack overstates RA: a handful of the study's own networks
/// evaluated by its test attacks and then by AutoAttack (fast: APGD-CE, APGD-T) on the points
/// still robust, on a seeded stratified subset of their test split. The report's threat line
/// quotes the gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackCheckDesc {
    pub network: Checked,
    /// The study's threat model with its test attack raised to AutoAttack-fast.
    pub threat: crate::attack::ThreatModel,
    /// Test examples attacked (at most the test split).
    pub examples: usize,
}

impl AttackCheckDesc {
    pub const KIND: &'static str = "attack-check";

    /// "AT source" or "AT m^ST r6, 10% data, adversarial FT".
    pub fn title(&self) -> String {
        match &self.network {
            Checked::Source(p) => format!("{} source", p.pretraining().short()),
            Checked::FineTuned(t) => {
                let d = &t.transfer;
                format!(
                    "{} {}, {}% data, {} FT",
                    d.subnetwork.pretraining_name(),
                    d.subnetwork.name(),
                    100.0 * d.transfer.fraction,
                    d.transfer.fine_tuning().name()
                )
            }
        }
    }
    fn describe(&self) -> String {
        format!("attack check of the {} on {} test images", self.title(), self.examples)
    }
}

/// The upstream files each step kind reads (recorded by hash when it runs: see
/// [`crate::store::Input`]).
impl PretrainDesc {
    fn reads(&self) -> Result<Vec<Input>> {
        Ok(Vec::new())
    }
}

impl ImpDesc {
    fn reads(&self) -> Result<Vec<Input>> {
        Ok(vec![Input::of(&self.pretrain, Self::pretrained_weights())?])
    }
    /// The pre-trained weights and their sidecar, as files of the pre-training step.
    fn pretrained_weights() -> &'static str {
        PretrainDesc::WEIGHTS
    }
    /// The mask of `round`, as a file of this step.
    fn round_file(round: usize) -> String {
        crate::prune::round_path(Path::new(""), round).display().to_string()
    }
}

impl Subnetwork {
    /// The upstream files a transfer of this subnetwork reads.
    fn reads(&self) -> Result<Vec<Input>> {
        let mut inputs = Vec::new();
        if let Some(p) = self.pretrain() {
            inputs.push(Input::of(p, ImpDesc::pretrained_weights())?);
        }
        if let Some(imp) = self.imp() {
            inputs.push(Input::of(imp, ImpDesc::round_file(self.round()))?);
        }
        Ok(inputs)
    }
}

impl TransferDesc {
    fn reads(&self) -> Result<Vec<Input>> {
        self.subnetwork.reads()
    }
}

impl TrajectoryDesc {
    fn reads(&self) -> Result<Vec<Input>> {
        self.transfer.reads()
    }
    fn checkpoint_files(&self) -> Result<Input> {
        Input::of(self, format!("{}/", Self::CHECKPOINTS))
    }
}

impl LandscapeDesc {
    fn reads(&self) -> Result<Vec<Input>> {
        std::iter::once(&self.trajectory).chain(&self.scale_with).map(TrajectoryDesc::checkpoint_files).collect()
    }
}

impl AttackCheckDesc {
    fn reads(&self) -> Result<Vec<Input>> {
        Ok(vec![match &self.network {
            Checked::Source(p) => Input::of(p, ImpDesc::pretrained_weights())?,
            Checked::FineTuned(t) => t.checkpoint_files()?,
        }])
    }
}

macro_rules! step_description {
    ($($t:ty),*) => {$(
        impl StepDescription for $t {
            fn kind(&self) -> &'static str {
                <$t>::KIND
            }
            fn label(&self) -> String {
                self.describe()
            }
            fn inputs(&self) -> Result<Vec<Input>> {
                self.reads()
            }
        }
    )*};
}
step_description!(PretrainDesc, ImpDesc, TransferDesc, TrajectoryDesc, LandscapeDesc, AttackCheckDesc);
