//! What a step kind is and what it computes in. [`Step`]: a step description's stored value,
//! its cost estimate and how it is computed; [`Executor`]: the context (runtime, store, caches of
//! datasets and networks) every step computes in, handing each its inputs from the store (or,
//! for a notebook's single step, computing a missing input first). A new step kind is one file
//! (its description, `impl StepDescription` and `impl Step`) and one line in the registry
//! ([`super::plan`]'s `steps!`).

use super::desc::{AttackCheckDesc, Checked, HoldOut, ImpDesc, LandscapeDesc, PretrainDesc, Subnetwork, TrajectoryDesc, TransferDesc};
use crate::data::{DataSource, Splits};
use crate::error::{Error, Result};
use crate::landscape::{landscape, Landscape, Trajectory};
use crate::model::{Arch, Network, NetworkSpec};
use crate::progress::{self, Event};
use crate::prune::{imp, one_shot_like, random_like, Mask};
use crate::runtime::Runtime;
use crate::store::{Attempt, Check, Status, StepDescription, Store};
use crate::train::{train_with, Callbacks, History, Regime};
use crate::transfer::{transfer_recorded, CheckpointPlan, TransferReport};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A kind of step: its description (hashed into its store key, [`StepDescription`]) knows
/// what it stores, about how long it takes, and how to compute it.
pub(crate) trait Step: StepDescription {
    /// The value stored in the step's `result.json`.
    type Output: Serialize + DeserializeOwned;
    /// A rough estimate of the work (about seconds on one core at the `small` sizes): the
    /// scheduler only compares estimates, so the ratios matter more than the units.
    fn cost(&self) -> f64;
    /// Computes the step through the store (under its lock; [`Attempt::Stored`] if it is done),
    /// taking its inputs from `ex`.
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<Self::Output>>;
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
/// multiply-adds are 3.9x and 15.6x (crates/bench/studies.md); this gives 2.6x and 9.1x. Other architectures count 1 (their steps calibrate their own
/// kind's rate from the store).
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

impl Step for PretrainDesc {
    type Output = History;
    fn cost(&self) -> f64 {
        75.0 * self.train.epochs as f64 * self.source_fraction * passes(&self.train.regime) * arch_scale(&self.arch)
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<History>> {
        ex.pretrain(self)
    }
}

impl Step for ImpDesc {
    type Output = ImpSummary;
    fn cost(&self) -> f64 {
        let r = &self.imp.retrain;
        75.0 * (self.imp.rounds * r.epochs) as f64
            * self.pretrain.source_fraction
            * self.data_fraction
            * passes(&r.regime)
            * arch_scale(&self.pretrain.arch)
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<ImpSummary>> {
        ex.imp(self)
    }
}

impl Step for TransferDesc {
    type Output = TransferReport;
    fn cost(&self) -> f64 {
        let r = &self.transfer.recipe;
        // A fine-tuning's epochs are raised to its minimum steps with little data.
        (r.epochs as f64 * self.transfer.fraction.max(0.1) / 20.0).max(self.transfer.min_steps as f64 / 300.0)
            * 3.0
            * passes(&r.regime)
            * arch_scale(self.subnetwork.arch())
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<TransferReport>> {
        ex.transfer(self, None)
    }
}

impl Step for TrajectoryDesc {
    type Output = TransferReport;
    fn cost(&self) -> f64 {
        1.2 * self.transfer.cost()
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<TransferReport>> {
        ex.transfer(&self.transfer, Some(self))
    }
}

impl Step for LandscapeDesc {
    type Output = Landscape;
    fn cost(&self) -> f64 {
        let l = &self.landscape;
        let steps = match l.loss {
            crate::landscape::LandscapeLoss::Clean => 0,
            crate::landscape::LandscapeLoss::Adversarial { steps, .. } => steps,
        };
        (l.resolution * l.resolution * l.examples) as f64 * (1 + steps) as f64 / 20_000.0
            * arch_scale(self.trajectory.transfer.subnetwork.arch())
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<Landscape>> {
        ex.landscape(self)
    }
}

impl Step for AttackCheckDesc {
    type Output = AttackCheck;
    /// APGD-CE (100 iterations) and APGD-T (9 targets x 100) on the points still robust.
    fn cost(&self) -> f64 {
        let arch = match &self.network {
            Checked::Source(p) => &p.arch,
            Checked::FineTuned(t) => t.transfer.subnetwork.arch(),
        };
        self.examples as f64 / 25.0 * arch_scale(arch)
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<AttackCheck>> {
        ex.attack_check(self)
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

/// What an IMP step stores besides its masks: the sparsity of each round's ticket and how far
/// each re-training brought the masked network back on the source validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpSummary {
    pub sparsity: Vec<f64>,
    /// One per re-training (rounds 2 and later), in round order.
    #[serde(default)]
    pub recovery: Vec<crate::prune::Recovery>,
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

    pub(crate) fn pretrain(&mut self, d: &PretrainDesc) -> Result<Attempt<History>> {
        let (rt, announce) = (self.rt, self.announce(d.kind(), d.label()));
        self.store.run(d, self.wait, |dir| {
            announce();
            let splits = d.splits()?;
            let mut net = Network::new(NetworkSpec::for_data(d.arch.clone(), &splits.train)?, rt.device, d.seed)?;
            let resume = dir.join("train");
            let history = train_with(&mut net, &splits, &d.train, &mut Callbacks::progress(d.pretraining().short()), Some(&resume))?;
            net.save(dir.join(PretrainDesc::WEIGHTS))?;
            std::fs::remove_dir_all(&resume).map_err(|e| Error::io(&resume, e))?;
            Ok(history)
        })
    }

    pub(crate) fn imp(&mut self, d: &ImpDesc) -> Result<Attempt<ImpSummary>> {
        let pretrained = self.pretrained(&d.pretrain)?;
        let announce = self.announce(d.kind(), d.label());
        self.store.run(d, self.wait, |dir| {
            announce();
            let tickets = imp(&pretrained, &d.splits()?, &d.imp, dir)?;
            Ok(ImpSummary { sparsity: tickets.0.iter().map(|t| t.sparsity()).collect(), recovery: tickets.recovery() })
        })
    }

    /// The network a transfer starts from: the pre-trained one, or for the scratch control the
    /// architecture freshly initialised with its seed (built for the downstream data; the
    /// transfer gives it a new head and the downstream normalisation like any other).
    pub(crate) fn start(&mut self, s: &Subnetwork, downstream: &Splits) -> Result<Network> {
        match (s, s.pretrain()) {
            (_, Some(p)) => self.pretrained(p),
            (Subnetwork::Scratch { arch, seed }, None) => {
                Network::new(NetworkSpec::for_data(arch.clone(), &downstream.train)?, self.rt.device, *seed)
            }
            _ => Err(Error::invalid(format!("{} has no pre-training", s.name()), "report this as a bug")),
        }
    }

    pub(crate) fn transfer(&mut self, d: &TransferDesc, checkpoints: Option<&TrajectoryDesc>) -> Result<Attempt<TransferReport>> {
        let splits = self.splits(d.dataset, d.holdout)?;
        let pretrained = self.start(&d.subnetwork, &splits)?;
        let mask = self.mask(&d.subnetwork)?;
        match checkpoints {
            None => {
                let announce = self.announce(d.kind(), d.label());
                self.store.run(d, self.wait, |_| {
                    announce();
                    transfer_recorded(&pretrained, mask.as_ref(), &splits, &d.transfer, None)
                })
            }
            Some(t) => self.store.run(t, self.wait, |dir| {
                self.announce(t.kind(), t.label())();
                let plan = CheckpointPlan { dir: dir.join(TrajectoryDesc::CHECKPOINTS), max: t.checkpoints };
                transfer_recorded(&pretrained, mask.as_ref(), &splits, &d.transfer, Some(&plan))
            }),
        }
    }

    pub(crate) fn landscape(&mut self, d: &LandscapeDesc) -> Result<Attempt<Landscape>> {
        let t = &d.trajectory;
        self.ensure(t)?;
        let checkpoints = t.checkpoints_in(self.store)?;
        let mask = self.mask(&t.transfer.subnetwork)?;
        let splits = self.splits(t.transfer.dataset, t.transfer.holdout)?;
        let mut siblings = Vec::new();
        for s in &d.scale_with {
            self.ensure(s)?;
            siblings.push(s.checkpoints_in(self.store)?);
        }
        let (device, announce) = (self.rt.device, self.announce(d.kind(), d.label()));
        self.store.run(d, self.wait, |_| {
            announce();
            let trajectory = Trajectory::open(&checkpoints, device)?;
            let mut cfg = d.landscape.clone();
            if !siblings.is_empty() {
                let mut longest = 0f64;
                for dir in &siblings {
                    longest = longest.max(Trajectory::open(dir, device)?.span()?);
                }
                cfg.radius = Some(cfg.margin * longest);
            }
            landscape(&d.title(), &trajectory, mask.as_ref(), &splits.test, &cfg)
        })
    }
}

impl Executor<'_> {
    pub(crate) fn attack_check(&mut self, d: &AttackCheckDesc) -> Result<Attempt<AttackCheck>> {
        let (net, test) = match &d.network {
            Checked::Source(p) => (self.pretrained(p)?, self.splits(p.source, p.holdout)?.test),
            Checked::FineTuned(t) => {
                self.ensure(t)?;
                let dir = t.checkpoints_in(self.store)?;
                (Trajectory::open(&dir, self.rt.device)?.last()?, self.splits(t.transfer.dataset, t.transfer.holdout)?.test)
            }
        };
        let announce = self.announce(d.kind(), d.label());
        self.store.run(d, self.wait, |_| {
            announce();
            let test = test.fraction((d.examples as f64 / test.len().max(1) as f64).min(1.0), 0)?;
            let attacks: Vec<_> = d.threat.test_attacks().iter().map(|a| a.seeded(0)).collect();
            let e = crate::attack::robust_evaluate(&net, &test, &attacks, 500)?;
            // The study's own test attacks end with PGD-20; AutoAttack-fast runs after it.
            let ra_test = e.accuracy_after("PGD-20").unwrap_or(e.ra);
            Ok(AttackCheck { title: d.title(), examples: e.examples, sa: e.sa, ra_test, ra_strong: e.ra, per_attack: e.per_attack })
        })
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
