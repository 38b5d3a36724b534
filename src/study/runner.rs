//! Runs a study's plan through the store: each step missing from the store is computed in
//! dependency order under its lock (see [`crate::store`]); progress goes to the process's
//! observer (one line for the steps already stored, a line per computed step with an estimate of
//! the time left). A killed run resumes at the step it was in.

use super::desc::{HoldOut, ImpDesc, LandscapeDesc, PretrainDesc, Subnetwork, TrajectoryDesc, TransferDesc};
use super::grid::Study;
use super::plan::{Plan, StepDesc};
use super::results::StudyResults;
use crate::data::{DataSource, Splits};
use crate::error::{Error, Result};
use crate::landscape::{landscape, Landscape, Trajectory};
use crate::model::{Network, NetworkSpec};
use crate::progress::{self, Event};
use crate::prune::{imp, one_shot_like, random_like, Mask};
use crate::runtime::Runtime;
use crate::store::{Check, Status, StepDescription, Store};
use crate::train::{train_with, Callbacks, History, RegimeKind};
use crate::transfer::{transfer_recorded, CheckpointPlan, TransferReport};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;

/// What an IMP step stores besides its masks: the sparsity of each round's ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpSummary {
    pub sparsity: Vec<f64>,
}

/// How a run went: steps computed now and steps found in the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    pub computed: usize,
    pub stored: usize,
    pub seconds: f64,
}

/// Computes steps and reads their inputs from the store, caching datasets and networks.
pub(crate) struct Executor<'a> {
    rt: &'a Runtime,
    store: &'a Store,
    splits: HashMap<String, Splits>,
    nets: HashMap<String, Network>,
}

impl<'a> Executor<'a> {
    pub(crate) fn new(rt: &'a Runtime, store: &'a Store) -> Executor<'a> {
        Executor { rt, store, splits: HashMap::new(), nets: HashMap::new() }
    }

    fn splits(&mut self, data: DataSource, holdout: HoldOut) -> Result<Splits> {
        let id = format!("{}/{}/{}", data.name(), holdout.val_fraction, holdout.seed);
        if !self.splits.contains_key(&id) {
            self.splits.insert(id.clone(), holdout.splits(data)?);
        }
        Ok(self.splits[&id].clone())
    }

    /// The pre-trained network of a finished pre-training step.
    fn pretrained(&mut self, d: &PretrainDesc) -> Result<Network> {
        let key = d.key()?;
        if !self.nets.contains_key(&key) {
            self.require(PretrainDesc::KIND, &key, &d.label())?;
            let net = Network::load(self.store.dir(PretrainDesc::KIND, &key).join(PretrainDesc::WEIGHTS), self.rt.device)?;
            self.nets.insert(key.clone(), net);
        }
        self.nets[&key].try_clone()
    }

    /// The mask of a subnetwork (`None` for the dense network): a ticket from its IMP run, a
    /// control computed from the ticket (deterministically: a random draw with its seed, or one
    /// magnitude pruning step of the pre-trained weights).
    fn mask(&mut self, s: &Subnetwork) -> Result<Option<Mask>> {
        let Some(imp) = s.imp() else { return Ok(None) };
        let key = imp.key()?;
        self.require(ImpDesc::KIND, &key, &imp.label())?;
        let ticket = Mask::load(self.store.dir(ImpDesc::KIND, &key).join(ImpDesc::mask_file(s.round())))?;
        Ok(Some(match s {
            Subnetwork::RandomTicket { seed, .. } => random_like(&ticket, *seed)?,
            Subnetwork::OneShot { .. } => one_shot_like(&self.pretrained(&imp.pretrain)?, &ticket)?,
            _ => ticket,
        }))
    }

    fn require(&self, kind: &str, key: &str, label: &str) -> Result<()> {
        match self.store.status(kind, key, Check::Sizes) {
            Status::Done => Ok(()),
            _ => Err(Error::not_found(format!("the finished step '{label}' ({kind}/{key})"), "run the study (its steps run in order)")),
        }
    }

    /// Computes (or loads) one step; returns whether it was computed now.
    pub(crate) fn run(&mut self, step: &StepDesc) -> Result<bool> {
        match step {
            StepDesc::Pretrain(d) => self.pretrain(d).map(|(_, computed)| computed),
            StepDesc::Imp(d) => self.imp(d).map(|(_, computed)| computed),
            StepDesc::Transfer(d) => self.transfer(d, None).map(|(_, computed)| computed),
            StepDesc::Trajectory(d) => self.trajectory(d).map(|(_, computed)| computed),
            StepDesc::Landscape(d) => self.landscape(d).map(|(_, computed)| computed),
        }
    }

    pub(crate) fn pretrain(&mut self, d: &PretrainDesc) -> Result<(History, bool)> {
        let rt = self.rt;
        self.store.get_or_run(d, |dir| {
            let splits = d.splits()?;
            let mut net = Network::new(NetworkSpec::for_data(d.arch.clone(), &splits.train)?, rt.device, d.seed)?;
            let resume = dir.join("train");
            let history = train_with(&mut net, &splits, &d.train, &mut Callbacks::progress(d.pretraining().short()), Some(&resume))?;
            net.save(dir.join(PretrainDesc::WEIGHTS))?;
            std::fs::remove_dir_all(&resume).map_err(|e| Error::io(&resume, e))?;
            Ok(history)
        })
    }

    fn imp(&mut self, d: &ImpDesc) -> Result<(ImpSummary, bool)> {
        let pretrained = self.pretrained(&d.pretrain)?;
        self.store.get_or_run(d, |dir| {
            let tickets = imp(&pretrained, &d.splits()?, &d.imp, dir)?;
            Ok(ImpSummary { sparsity: tickets.0.iter().map(|t| t.sparsity()).collect() })
        })
    }

    fn transfer(&mut self, d: &TransferDesc, checkpoints: Option<&TrajectoryDesc>) -> Result<(TransferReport, bool)> {
        let pretrained = self.pretrained(d.subnetwork.pretrain())?;
        let mask = self.mask(&d.subnetwork)?;
        let splits = self.splits(d.dataset, d.holdout)?;
        match checkpoints {
            None => self.store.get_or_run(d, |_| transfer_recorded(&pretrained, mask.as_ref(), &splits, &d.transfer, None)),
            Some(t) => self.store.get_or_run(t, |dir| {
                let plan = CheckpointPlan { dir: dir.join(TrajectoryDesc::CHECKPOINTS), max: t.checkpoints };
                transfer_recorded(&pretrained, mask.as_ref(), &splits, &d.transfer, Some(&plan))
            }),
        }
    }

    fn trajectory(&mut self, d: &TrajectoryDesc) -> Result<(TransferReport, bool)> {
        self.transfer(&d.transfer, Some(d))
    }

    fn landscape(&mut self, d: &LandscapeDesc) -> Result<(Landscape, bool)> {
        let t = &d.trajectory;
        let key = t.key()?;
        self.require(TrajectoryDesc::KIND, &key, &t.label())?;
        let checkpoints = self.store.dir(TrajectoryDesc::KIND, &key).join(TrajectoryDesc::CHECKPOINTS);
        let mask = self.mask(&t.transfer.subnetwork)?;
        let splits = self.splits(t.transfer.dataset, t.transfer.holdout)?;
        let device = self.rt.device;
        self.store.get_or_run(d, |_| {
            let trajectory = Trajectory::open(&checkpoints, device)?;
            landscape(&d.title(), &trajectory, mask.as_ref(), &splits.test, &d.landscape)
        })
    }
}

/// Computes every step of `plan` that `store` lacks, in order (waiting for a step another
/// process is computing), reporting progress to the process's observer.
pub fn run_plan(plan: &Plan, rt: &Runtime, store: &Store) -> Result<RunSummary> {
    let start = Instant::now();
    let status: Vec<Status> = plan.steps.iter().map(|s| store.status(s.kind, &s.key, Check::Hashes)).collect();
    let stored = status.iter().filter(|s| **s == Status::Done).count();
    let to_compute = plan.len() - stored;
    progress::emit(&Event::StudyPlanned { total: plan.len(), stored });
    let mut ex = Executor::new(rt, store);
    let mut seconds_by_kind: HashMap<&str, (f64, usize)> = HashMap::new();
    let mut index = 0;
    let mut computed = 0;
    for (i, step) in plan.steps.iter().enumerate() {
        if status[i] == Status::Done {
            continue;
        }
        index += 1;
        progress::emit(&Event::StepStarted { index, to_compute, kind: step.kind, label: &step.label });
        let t = Instant::now();
        let now = ex.run(&step.desc)?;
        let seconds = t.elapsed().as_secs_f64();
        if now {
            computed += 1;
            let e = seconds_by_kind.entry(step.kind).or_insert((0.0, 0));
            *e = (e.0 + seconds, e.1 + 1);
        }
        // Time left: each remaining step at the mean time of its kind so far (the overall mean
        // for kinds not seen yet).
        let (all, n) = seconds_by_kind.values().fold((0.0, 0), |(s, n), (a, b)| (s + a, n + b));
        let mean_all = if n > 0 { all / n as f64 } else { 0.0 };
        let eta: f64 = plan.steps[i + 1..]
            .iter()
            .zip(&status[i + 1..])
            .filter(|(_, st)| **st != Status::Done)
            .map(|(s, _)| seconds_by_kind.get(s.kind).map_or(mean_all, |(a, b)| a / *b as f64))
            .sum();
        progress::emit(&Event::StepFinished { index, to_compute, label: &step.label, seconds, eta });
    }
    let summary = RunSummary { computed, stored: plan.len() - computed, seconds: start.elapsed().as_secs_f64() };
    progress::emit(&Event::StudyFinished { computed, stored: summary.stored, seconds: summary.seconds });
    Ok(summary)
}

impl Study {
    /// Runs every missing step; returns all results.
    pub fn run(&self, rt: &Runtime, store: &Store) -> Result<StudyResults> {
        let plan = self.plan()?;
        let summary = run_plan(&plan, rt, store)?;
        StudyResults::collect(self, &plan, store, summary)
    }

    /// The pre-trained source network of `kind` and its training history: from the store, or
    /// trained (and stored) now.
    pub fn pretrained(&self, rt: &Runtime, store: &Store, kind: RegimeKind) -> Result<(Network, History)> {
        let d = self.pretrain_desc(kind)?;
        let mut ex = Executor::new(rt, store);
        let (history, _) = ex.pretrain(&d)?;
        Ok((ex.pretrained(&d)?, history))
    }

    /// Where the weights of the pre-training of `kind` live in the store.
    pub fn pretrained_path(&self, store: &Store, kind: RegimeKind) -> Result<std::path::PathBuf> {
        Ok(store.dir(PretrainDesc::KIND, &self.pretrain_desc(kind)?.key()?).join(PretrainDesc::WEIGHTS))
    }

    /// The ticket (mask) of an IMP round of a finished study.
    pub fn ticket(&self, store: &Store, kind: RegimeKind, family: RegimeKind, round: usize) -> Result<Mask> {
        let d = self.imp_desc(kind, family)?;
        let key = d.key()?;
        if store.status(ImpDesc::KIND, &key, Check::Sizes) != Status::Done {
            return Err(Error::not_found(
                format!("the {} tickets of the {} network", family.family(), kind.short()),
                "run the study first",
            ));
        }
        Mask::load(store.dir(ImpDesc::KIND, &key).join(ImpDesc::mask_file(round)))
    }

    /// The per-epoch checkpoints of a landscape's fine-tuning (run the study first).
    pub fn trajectory_dir(&self, store: &Store, kind: RegimeKind, fraction: f64) -> Result<std::path::PathBuf> {
        let d = self.trajectory_desc(kind, fraction)?;
        let key = d.key()?;
        if store.status(TrajectoryDesc::KIND, &key, Check::Sizes) != Status::Done {
            return Err(Error::not_found(
                format!("the {} fine-tuning run at {}% data", kind.short(), 100.0 * fraction),
                "run the study first",
            ));
        }
        Ok(store.dir(TrajectoryDesc::KIND, &key).join(TrajectoryDesc::CHECKPOINTS))
    }
}
