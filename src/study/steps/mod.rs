//! Step kinds, one file each: a kind's description (open_lth's `Desc`, done with serde: it
//! nests the descriptions of everything upstream, so its hash, [`crate::store::key_of`], names
//! exactly the experiment that produced it), what it reads from the store, how a study declares
//! its steps of that kind ([`Step::grid`]), how one is computed, and what a study's results keep
//! of it ([`Step::collect`]). A new kind is one file here and one line in the registry below
//! (`steps!`): the plan, the workers, the CLI and the results reach every kind through
//! [`StepDesc`]. This module also holds what every kind shares: the held-out validation split
//! ([`HoldOut`]), the cost model's units and the [`Executor`] a step computes in (runtime, store,
//! caches of datasets and networks).

/// `impl StepDescription` for a kind: its store name (`KIND`), its label (`describe`) and the
/// upstream files it reads (`reads`).
macro_rules! step_description {
    ($t:ty) => {
        impl $crate::store::StepDescription for $t {
            fn kind(&self) -> &'static str {
                <$t>::KIND
            }
            fn label(&self) -> String {
                self.describe()
            }
            fn inputs(&self) -> $crate::error::Result<Vec<$crate::store::Input>> {
                self.reads()
            }
        }
    };
}

mod attack_check;
mod imp;
mod landscape;
mod pretrain;
#[cfg(test)]
mod toy;
mod trajectory;
mod transfer;

pub use attack_check::{AttackCheckDesc, CheckedNetwork};
pub use imp::{ImpDesc, ImpSummary};
pub use landscape::LandscapeDesc;
pub use pretrain::PretrainDesc;
pub use trajectory::TrajectoryDesc;
pub use transfer::{subnetwork_name, Subnetwork, TransferDesc};

use super::grid::Study;
use super::results::StudyResults;
use crate::data::{DataSource, Splits};
use crate::error::{Error, Result};
use crate::model::{Arch, Network};
use crate::progress::{self, Event};
use crate::prune::{one_shot_like, random_like, Mask};
use crate::runtime::Runtime;
use crate::store::{Attempt, Check, Input, Status, StepDescription, Store};
use crate::train::Regime;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The registry of step kinds, one line each, upstream kinds first: the variant of [`StepDesc`]
/// and the description type, which implements [`Step`]. Everything the plan, the workers and the
/// CLI do with a step of any kind goes through the methods generated here.
macro_rules! steps {
    ($($(#[$attr:meta])* $variant:ident($desc:ty)),* $(,)?) => {
        /// One step's description, whatever its kind.
        // Descriptions are small plain data, a few hundred per study: no boxing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum StepDesc {
            $($(#[$attr])* $variant($desc),)*
        }

        impl StepDesc {
            /// Every step kind, as named in the store (its folders) and in `study clean --kind`.
            #[allow(clippy::vec_init_then_push)] // a kind behind #[cfg] cannot sit in vec![]
            pub fn kinds() -> Vec<&'static str> {
                let mut kinds = Vec::new();
                $($(#[$attr])* kinds.push(<$desc>::KIND);)*
                kinds
            }
            /// Every step `study` declares, kind by kind in registry order (upstream first).
            pub fn grid(study: &Study) -> Result<Vec<StepDesc>> {
                let mut steps = Vec::new();
                $($(#[$attr])* steps.extend(<$desc as Step>::grid(study)?.into_iter().map(StepDesc::$variant));)*
                Ok(steps)
            }
            pub fn kind(&self) -> &'static str {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.kind(),)* }
            }
            pub fn key(&self) -> Result<String> {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.key(),)* }
            }
            pub fn label(&self) -> String {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.label(),)* }
            }
            /// The upstream files the step reads (its dependencies in a plan).
            pub fn inputs(&self) -> Result<Vec<Input>> {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.inputs(),)* }
            }
            /// A rough estimate of the step's work (see [`Step::cost`]).
            pub fn cost(&self) -> f64 {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.cost(),)* }
            }
            /// The description of a stored step of `kind` (its `describe.json`), if it reads as one.
            pub fn from_describe(kind: &str, describe: &serde_json::Value) -> Option<StepDesc> {
                $($(#[$attr])* if kind == <$desc>::KIND {
                    return serde_json::from_value::<$desc>(describe.clone()).ok().map(StepDesc::$variant);
                })*
                None
            }
            /// Computes the step (or finds it in the store, or finds another process on it).
            pub(crate) fn run(&self, ex: &mut Executor) -> Result<Attempt<()>> {
                Ok(match self { $($(#[$attr])* StepDesc::$variant(d) => unit(d.compute(ex)?),)* })
            }
            /// Adds what the study's results keep of this finished step to `results`.
            pub(crate) fn collect(&self, store: &Store, results: &mut StudyResults) -> Result<()> {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.collect(store, results),)* }
            }
        }

        $($(#[$attr])* impl From<$desc> for StepDesc {
            fn from(d: $desc) -> StepDesc {
                StepDesc::$variant(d)
            }
        })*
    };
}

steps! {
    Pretrain(PretrainDesc),
    Imp(ImpDesc),
    Transfer(TransferDesc),
    Trajectory(TrajectoryDesc),
    Landscape(LandscapeDesc),
    AttackCheck(AttackCheckDesc),
    #[cfg(test)]
    Toy(toy::ToyDesc),
}

fn unit<T>(a: Attempt<T>) -> Attempt<()> {
    match a {
        Attempt::Stored(_) => Attempt::Stored(()),
        Attempt::Computed(_) => Attempt::Computed(()),
        Attempt::Busy => Attempt::Busy,
    }
}

/// A kind of step: its description (hashed into its store key, [`StepDescription`]) knows
/// what it stores, about how long it takes, how to compute it, which of its kind a study
/// declares and what the study's results keep of it.
pub(crate) trait Step: StepDescription + Sized {
    /// The value stored in the step's `result.json`.
    type Output: Serialize + DeserializeOwned;
    /// The steps of this kind `study` declares (in the order the plan lists them).
    fn grid(study: &Study) -> Result<Vec<Self>>;
    /// A rough estimate of the work (about seconds on one core at the `small` sizes): the
    /// scheduler only compares estimates, so the ratios matter more than the units.
    fn cost(&self) -> f64;
    /// Computes the step through the store (under its lock; [`Attempt::Stored`] if it is done),
    /// taking its inputs from `ex`.
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<Self::Output>>;
    /// Adds what a study's results keep of this finished step (nothing, by default: an input
    /// of other steps).
    fn collect(&self, _store: &Store, _results: &mut StudyResults) -> Result<()> {
        Ok(())
    }
    /// The stored value of this finished step.
    fn load(&self, store: &Store) -> Result<Self::Output> {
        let key = self.key()?;
        store
            .load(self.kind(), &key)?
            .ok_or_else(|| Error::not_found(format!("the result of '{}' ({}/{key})", self.label(), self.kind()), "run the study first"))
    }
}

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

/// Forward-backward passes per training example of a regime: 1 standard, 2 FAT (one FGSM
/// step), PGD-k k + 1.
fn passes(regime: &Regime) -> f64 {
    match regime {
        Regime::Standard => 1.0,
        Regime::Fast { .. } => 2.0,
        Regime::Adversarial(pgd) => 1.0 + pgd.steps as f64,
    }
}

/// How much more a step of `arch` costs than one of `Arch::convnet()` at the same sizes: a fixed
/// share that does not grow with the widths (per-operation work, data, attacks' bookkeeping) plus
/// the convolutions' multiply-adds relative to the base ConvNet's (on 8x8 grey inputs; the ratio
/// hardly depends on the input). The share is measured: the 180 transfers of the ladder's x2 and
/// x4 rungs took 3.0x and 9.5x the base rung's core-seconds on the 2-core machine, where their
/// multiply-adds are 3.9x and 15.6x (crates/bench/studies.md); this gives 2.6x and 9.1x. Other
/// architectures count 1 (their steps calibrate their own kind's rate from the store).
fn arch_scale(arch: &Arch) -> f64 {
    /// The fixed share, in units of the base ConvNet's convolution work.
    const FIXED: f64 = 0.8;
    fn macs(widths: &[i64]) -> f64 {
        let (mut c_in, mut side, mut total) = (1.0, 8.0f64, 0.0);
        for (i, &w) in widths.iter().enumerate() {
            total += c_in * w as f64 * side * side;
            // Pooling as the ConvNet pools: after every block but the last, while at least 4 wide.
            if i + 1 < widths.len() && side >= 4.0 {
                side /= 2.0;
            }
            c_in = w as f64;
        }
        total
    }
    match (arch, Arch::convnet()) {
        (Arch::ConvNet { widths }, Arch::ConvNet { widths: base }) => (FIXED + macs(widths) / macs(&base)) / (FIXED + 1.0),
        _ => 1.0,
    }
}

/// Computes steps and reads their inputs from the store, caching datasets and networks. Steps
/// run under their store lock: waiting for another process that holds it (`wait`), or handing
/// back [`Attempt::Busy`] at once.
pub(crate) struct Executor<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) store: &'a Store,
    /// Wait for a step another process holds, and compute missing inputs first (a single
    /// step asked for by a notebook); a plan's worker neither waits nor computes out of order.
    pub(crate) wait: bool,
    /// (steps done, steps in all) of the run, for the line announcing a step that starts.
    pub(crate) position: Option<(usize, usize)>,
    splits: HashMap<String, Splits>,
    nets: HashMap<String, Network>,
}

impl<'a> Executor<'a> {
    pub(crate) fn new(rt: &'a Runtime, store: &'a Store, wait: bool) -> Executor<'a> {
        Executor { rt, store, wait, position: None, splits: HashMap::new(), nets: HashMap::new() }
    }

    /// What to call when a step really starts computing (its lock taken): the progress line.
    pub(crate) fn announce(&self, kind: &'static str, label: String) -> impl Fn() + 'static {
        let position = self.position;
        move || match position {
            Some((done, total)) => progress::emit(&Event::StepStarted { done, total, kind, label: &label }),
            None => progress::note(&format!("computing {kind}: {label}")),
        }
    }

    pub(crate) fn splits(&mut self, data: DataSource, holdout: HoldOut) -> Result<Splits> {
        let id = format!("{}/{}/{}", data.name(), holdout.val_fraction, holdout.seed);
        if !self.splits.contains_key(&id) {
            self.splits.insert(id.clone(), holdout.splits(data)?);
        }
        Ok(self.splits[&id].clone())
    }

    /// The pre-trained network of a finished pre-training step.
    pub(crate) fn pretrained(&mut self, d: &PretrainDesc) -> Result<Network> {
        let key = d.key()?;
        if !self.nets.contains_key(&key) {
            self.ensure(d)?;
            let net = Network::load(d.weights_in(self.store)?, self.rt.device)?;
            self.nets.insert(key.clone(), net);
        }
        self.nets[&key].try_clone()
    }

    /// The mask of a subnetwork (`None` for the dense network): a ticket from its IMP run, a
    /// control computed from the ticket (deterministically: a random draw with its seed, or one
    /// magnitude pruning step of the pre-trained weights).
    pub(crate) fn mask(&mut self, s: &Subnetwork) -> Result<Option<Mask>> {
        let Some(imp) = s.imp() else { return Ok(None) };
        self.ensure(imp)?;
        let ticket = Mask::load(imp.mask_in(self.store, s.round())?)?;
        Ok(Some(match s {
            Subnetwork::RandomTicket { seed, .. } => random_like(&ticket, *seed)?,
            Subnetwork::OneShot { .. } => one_shot_like(&self.pretrained(&imp.pretrain)?, &ticket)?,
            _ => ticket,
        }))
    }

    /// Makes sure step `d` is done: computed now (with what it needs, recursively) by an
    /// executor that computes on demand, an error otherwise (a plan's worker runs steps in
    /// dependency order, so a missing input means the plan or the store is broken).
    pub(crate) fn ensure<S: Step>(&mut self, d: &S) -> Result<()> {
        let key = d.key()?;
        match self.store.status(d.kind(), &key, Check::Sizes) {
            Status::Done => Ok(()),
            _ if self.wait => d.compute(self).map(|_| ()),
            _ => Err(Error::not_found(
                format!("the finished step '{}' ({}/{key})", d.label(), d.kind()),
                "run the study (its steps run in order)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_convnets_cost_what_the_ladder_measured() {
        let base = Arch::convnet();
        assert_eq!(arch_scale(&base), 1.0);
        // Measured on the 2-core machine (crates/bench/studies.md): the x2 and x4 ConvNets' 180
        // transfers of a ladder rung took 3.0x and 9.5x the base's core-seconds.
        let x2 = arch_scale(&base.widened(2).unwrap());
        let x4 = arch_scale(&base.widened(4).unwrap());
        assert!((2.4..3.3).contains(&x2) && (8.0..10.5).contains(&x4), "x2 {x2}, x4 {x4}");
        assert_eq!(arch_scale(&Arch::resnet20()), 1.0, "other architectures calibrate their own rate");
    }
}
