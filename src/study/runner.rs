//! Runs a study's plan through the store as a worker: each step missing from the store is
//! computed in dependency order under its lock (see [`crate::store`]), and any number of workers
//! (processes, on one machine or a cluster) can share one store: a worker skips the steps another
//! holds and never computes a step twice. Progress goes to the process's observer (one line for
//! the steps already stored, a line per computed step with an estimate of the time left). A
//! killed run resumes at the step it was in. [`Study::report`] runs a study and gathers what its
//! report shows (rendered by [`super::report`]).

use super::desc::{subnetwork_name, SubnetworkKind};
use super::grid::Study;
use super::plan::{Plan, StepDesc};
use super::query::Pick;
use super::report::{ImpRow, StudyReport};
use super::results::{RunSummary, StudyResults};
use super::step::{Executor, ImpSummary};
use crate::error::{Error, Result};
use crate::landscape::Landscape;
use crate::model::Network;
use crate::progress::{self, Event};
use crate::prune::Mask;
use crate::runtime::Runtime;
use crate::store::{Attempt, Check, Status, StepDescription, Store};
use crate::train::{History, RegimeKind};
use crate::transfer::TransferReport;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The exit status of a `study run` (worker, parent of workers, or Slurm task) that a signal
/// stopped after its step in flight: "stopped, run the same command again to resume". The CLI
/// exits with it and the Slurm worker script requeues on it.
pub const EXIT_STOPPED: i32 = 3;

/// How [`run_plan_with`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions<'a> {
    /// Processes working on the same store (for the estimate of the time left); 0 or 1: this one.
    pub workers: usize,
    /// Checked between steps: when set, the run stops after the step in flight (a signal
    /// handler sets it, e.g. before a cluster job's time runs out).
    pub stop: Option<&'a AtomicBool>,
}

/// [`run_plan_with`] with the default options.
pub fn run_plan(plan: &Plan, rt: &Runtime, store: &Store) -> Result<RunSummary> {
    run_plan_with(plan, rt, store, &RunOptions::default())
}

/// Computes every step of `plan` that `store` lacks, as one worker among any number of
/// processes on the same store: it walks the steps in dependency order, takes a step whose
/// inputs are done with a non-blocking lock, skips steps another worker holds, waits (polling
/// the store) only when nothing is ready, and returns when every step is done. Progress goes to
/// the process's observer.
pub fn run_plan_with(plan: &Plan, rt: &Runtime, store: &Store, options: &RunOptions) -> Result<RunSummary> {
    let start = Instant::now();
    let mut done: Vec<bool> = plan.steps.iter().map(|s| store.status(s.kind, &s.key, Check::Hashes) == Status::Done).collect();
    let stored_before = done.iter().filter(|d| **d).count();
    progress::emit(&Event::StudyPlanned { total: plan.len(), stored: stored_before });
    let mut ex = Executor::new(rt, store, false);
    let mut seconds_by_kind: HashMap<&str, (f64, usize)> = HashMap::new();
    let mut computed = 0;
    let mut stopped = false;
    let (mut busy, mut idle) = (0.0, 0.0);
    let order = plan.schedule();
    // Who reads whom: a step computed anew may leave the steps below it stale (they recorded
    // the hashes of what it wrote before), so they are looked at again.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); plan.len()];
    for (i, s) in plan.steps.iter().enumerate() {
        for &d in &s.deps {
            dependents[d].push(i);
        }
    }
    'walk: while done.iter().any(|d| !d) {
        for &i in &order {
            let step = &plan.steps[i];
            if done[i] || !step.deps.iter().all(|&d| done[d]) {
                continue;
            }
            if options.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                stopped = true;
                break 'walk;
            }
            ex.position = Some((done.iter().filter(|d| **d).count(), plan.len()));
            let t = Instant::now();
            let attempt = match step.desc.run(&mut ex) {
                // Stopped inside a resumable step (a pre-training or IMP run, after a saved
                // epoch): the step stays unfinished and the next run resumes it.
                Err(Error::Stopped) => {
                    stopped = true;
                    break 'walk;
                }
                other => other?,
            };
            match attempt {
                Attempt::Busy => continue,
                Attempt::Stored(()) => {}
                Attempt::Computed(()) => {
                    computed += 1;
                    let seconds = t.elapsed().as_secs_f64();
                    busy += seconds;
                    let e = seconds_by_kind.entry(step.kind).or_insert((0.0, 0));
                    *e = (e.0 + seconds, e.1 + 1);
                    done[i] = true;
                    let (mut below, mut seen) = (dependents[i].clone(), vec![false; plan.len()]);
                    while let Some(j) = below.pop() {
                        if !std::mem::replace(&mut seen[j], true) {
                            done[j] = false;
                            below.extend(&dependents[j]);
                        }
                    }
                    let eta = time_left(plan, &done, &seconds_by_kind) / options.workers.max(1) as f64;
                    let finished = done.iter().filter(|d| **d).count();
                    progress::emit(&Event::StepFinished { done: finished, total: plan.len(), label: &step.label, seconds, eta });
                }
            }
            done[i] = true;
            // Start again from the top: finishing this step may have readied one of higher
            // priority (an IMP run after its pre-training).
            continue 'walk;
        }
        // Nothing ready that another worker does not hold: look again shortly.
        let t = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(500));
        idle += t.elapsed().as_secs_f64();
        for (i, s) in plan.steps.iter().enumerate() {
            done[i] = done[i] || store.status(s.kind, &s.key, Check::Sizes) == Status::Done;
        }
    }
    let summary = RunSummary { computed, stored: plan.len() - computed, seconds: start.elapsed().as_secs_f64(), stopped, busy, idle };
    if computed > 0 {
        progress::note(&format!(
            "this worker: busy {:.0} s computing, idle {:.0} s waiting ({:.1}% idle)",
            busy,
            idle,
            100.0 * summary.idle_fraction()
        ));
    }
    progress::emit(&Event::StudyFinished { computed, stored: summary.stored, seconds: summary.seconds });
    Ok(summary)
}

/// Seconds left: each step not done at the mean time of its kind so far; NaN while a kind still
/// to run has not been timed (a pre-training says nothing about a transfer).
fn time_left(plan: &Plan, done: &[bool], seconds_by_kind: &HashMap<&str, (f64, usize)>) -> f64 {
    plan.steps
        .iter()
        .zip(done)
        .filter(|(_, d)| !**d)
        .map(|(s, _)| seconds_by_kind.get(s.kind).map_or(f64::NAN, |(a, b)| a / *b as f64))
        .sum()
}

/// Computes one step and what it needs (whatever the store lacks, waiting for steps another
/// process is computing), and returns its stored value: the way notebooks and programs run a
/// single step of a study (a pre-training, an IMP run, one transfer) through the store.
pub fn compute<T: serde::de::DeserializeOwned>(rt: &Runtime, store: &Store, step: &StepDesc) -> Result<T> {
    if store.status(step.kind(), &step.key()?, Check::Sizes) != Status::Done {
        // An executor that computes on demand: each input missing from the store first.
        step.run(&mut Executor::new(rt, store, true))?;
    }
    store.load(step.kind(), &step.key()?)?.ok_or_else(|| Error::invalid(format!("{} did not finish", step.label()), "run it again"))
}

impl Study {
    /// Runs every missing step; returns the results of the study's `seeds` (see
    /// [`Study::run_all`] for the stability seeds' runs too).
    pub fn run(&self, rt: &Runtime, store: &Store) -> Result<StudyResults> {
        Ok(self.run_all(rt, store)?.for_seeds(&self.seeds))
    }

    /// Runs every missing step; returns every result, those of `stability_seeds` included.
    pub fn run_all(&self, rt: &Runtime, store: &Store) -> Result<StudyResults> {
        let plan = self.plan()?;
        let summary = run_plan(&plan, rt, store)?;
        StudyResults::collect(self, &plan, store, summary)
    }

    /// The pre-trained source network of `kind` and its training history: from the store, or
    /// trained (and stored) now.
    pub fn pretrained(&self, rt: &Runtime, store: &Store, kind: RegimeKind) -> Result<(Network, History)> {
        let d = self.pretrain_desc(kind)?;
        let mut ex = Executor::new(rt, store, true);
        let history = match ex.pretrain(&d)? {
            Attempt::Stored(h) | Attempt::Computed(h) => h,
            Attempt::Busy => return Err(Error::invalid("a blocking lock returned busy", "report this as a bug")),
        };
        Ok((ex.pretrained(&d)?, history))
    }

    /// Where the weights of the pre-training of `kind` live in the store.
    pub fn pretrained_path(&self, store: &Store, kind: RegimeKind) -> Result<std::path::PathBuf> {
        self.pretrain_desc(kind)?.weights_in(store)
    }

    /// The ticket (mask) of an IMP round of a finished study.
    pub fn ticket(&self, store: &Store, kind: RegimeKind, family: RegimeKind, round: usize) -> Result<Mask> {
        let d = self.imp_desc(kind, family)?;
        if !store.step(&d)?.is_done() {
            return Err(Error::not_found(
                format!("the {} tickets of the {} network", family.family(), kind.short()),
                "run the study first (or Study::imp_run, which computes them)",
            ));
        }
        Mask::load(d.mask_in(store, round)?)
    }

    /// The IMP run of `family` from the pre-training of `kind` (computed now if the store lacks
    /// it): its tickets, round by round.
    pub fn imp_run(&self, rt: &Runtime, store: &Store, kind: RegimeKind, family: RegimeKind) -> Result<crate::prune::Tickets> {
        let d = self.imp_desc(kind, family)?;
        let summary: ImpSummary = compute(rt, store, &StepDesc::Imp(d.clone()))?;
        let tickets = (1..=d.imp.rounds)
            .map(|round| {
                let path = d.mask_in(store, round)?;
                let retrained = summary.recovery.iter().find(|r| r.round == round).copied();
                Ok(crate::prune::Ticket { round, mask: Mask::load(&path)?, path, retrained })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::prune::Tickets(tickets))
    }

    /// One transfer (computed now if the store lacks it): the subnetwork `pick` names (dense,
    /// ticket or control), fine-tuned `fine_tuning` on `pick.dataset` with `pick.fraction` of
    /// its data and `seed`.
    pub fn transfer_run(&self, rt: &Runtime, store: &Store, pick: Pick, fine_tuning: RegimeKind, seed: u64) -> Result<TransferReport> {
        let subnetwork = match (pick.kind, pick.family) {
            (SubnetworkKind::Dense, _) => self.subnetwork(pick.pretraining, None, 0)?,
            (SubnetworkKind::Scratch, _) => self.scratch(seed),
            (SubnetworkKind::Ticket, Some(f)) => self.subnetwork(pick.pretraining, Some(f), pick.round)?,
            (control, Some(f)) => self.control(pick.pretraining, control, f, pick.round, seed)?,
            (_, None) => return Err(Error::invalid(format!("{} names no IMP family", pick.name()), "give the ticket's family")),
        };
        let d = self.transfer_desc(subnetwork, pick.dataset, fine_tuning, pick.fraction, seed)?;
        compute(rt, store, &StepDesc::Transfer(d))
    }

    /// Every seed's standard and adversarial transfer of `pick` (computed now where missing).
    pub fn transfer_runs(&self, rt: &Runtime, store: &Store, pick: Pick) -> Result<Vec<TransferReport>> {
        let mut out = Vec::new();
        for &ft in &self.fine_tunings {
            for &seed in &self.seeds {
                out.push(self.transfer_run(rt, store, pick, ft, seed)?);
            }
        }
        Ok(out)
    }

    /// The double-win verdict on the tickets of `family` at `rounds` against the dense network of
    /// the pre-training `kind` on `dataset` with `fraction` of its data, over every seed and
    /// fine-tuning of the study (computing what the store lacks).
    pub fn verdict_run(
        &self,
        rt: &Runtime,
        store: &Store,
        kind: RegimeKind,
        family: RegimeKind,
        rounds: &[usize],
        fraction: f64,
    ) -> Result<crate::verdict::Verdict> {
        let dataset = *self.downstream.first().ok_or_else(|| Error::invalid("the study has no downstream dataset", "add one"))?;
        let dense = self.transfer_runs(rt, store, Pick::dense(kind, dataset, fraction))?;
        let mut tickets = Vec::new();
        for &r in rounds {
            let runs = self.transfer_runs(rt, store, Pick::ticket(kind, family, r, dataset, fraction))?;
            let sparsity = runs.first().map(|t| t.sparsity).unwrap_or(0.0);
            tickets.push((subnetwork_name(SubnetworkKind::Ticket, Some(family), r), sparsity, runs));
        }
        let tickets: Vec<(String, f64, Vec<&TransferReport>)> =
            tickets.iter().map(|(l, s, r)| (l.clone(), *s, r.iter().collect())).collect();
        Ok(crate::verdict::Verdict::judge(&dense.iter().collect::<Vec<_>>(), &tickets, self.tolerance))
    }

    /// The pre-training gate of `kind` on the first downstream dataset at `fraction`: the dense
    /// pre-trained network against the scratch control over every seed and fine-tuning of the
    /// study (computing what the store lacks).
    pub fn gate_run(&self, rt: &Runtime, store: &Store, kind: RegimeKind, fraction: f64) -> Result<super::GateCell> {
        let dataset = *self.downstream.first().ok_or_else(|| Error::invalid("the study has no downstream dataset", "add one"))?;
        let dense = self.transfer_runs(rt, store, Pick::dense(kind, dataset, fraction))?;
        let scratch = self.transfer_runs(rt, store, Pick::scratch(dataset, fraction))?;
        let (dense, scratch): (Vec<&TransferReport>, Vec<&TransferReport>) = (dense.iter().collect(), scratch.iter().collect());
        Ok(super::GateCell::judge(kind, dataset, fraction, &dense, &scratch, self.tolerance))
    }

    /// The landscape of pre-training `kind` at `fraction` (computed now if the store lacks it).
    pub fn landscape_run(&self, rt: &Runtime, store: &Store, kind: RegimeKind, fraction: f64) -> Result<Landscape> {
        compute(rt, store, &StepDesc::Landscape(self.landscape_desc(kind, fraction)?))
    }

    /// The per-epoch checkpoints of a landscape's fine-tuning (run the study first).
    pub fn trajectory_dir(&self, store: &Store, kind: RegimeKind, fraction: f64) -> Result<std::path::PathBuf> {
        let d = self.trajectory_desc(kind, fraction)?;
        if !store.step(&d)?.is_done() {
            return Err(Error::not_found(
                format!("the {} fine-tuning run at {}% data", kind.short(), 100.0 * fraction),
                "run the study first",
            ));
        }
        d.checkpoints_in(store)
    }

    /// Runs (or loads) the study and builds its report, with IMP diagnostics and the per-layer
    /// density of the landscape tickets (masks read from the store).
    pub fn report(&self, rt: &Runtime, store: &Store) -> Result<StudyReport> {
        let all = self.run_all(rt, store)?;
        let stability = super::Stability::of(&all);
        let results = all.for_seeds(&self.seeds);
        let mut imp = Vec::new();
        for &pre in &self.pretrainings {
            let (net, _) = self.pretrained(rt, store, pre)?;
            for &family in &self.families {
                let d = self.imp_desc(pre, family)?;
                let summary: Option<ImpSummary> = store.load(d.kind(), &d.key()?)?;
                for round in 1..=self.imp_rounds() {
                    let ticket = self.ticket(store, pre, family, round)?;
                    let one_shot = crate::prune::one_shot_like(&net, &ticket)?;
                    let other = self.families.iter().find(|f| **f != family).map(|&f| self.ticket(store, pre, f, round)).transpose()?;
                    imp.push(ImpRow {
                        pretraining: pre,
                        family,
                        round,
                        sparsity: ticket.sparsity(),
                        overlap_one_shot: ticket.overlap(&one_shot)?,
                        overlap_other_family: other.map(|o| ticket.overlap(&o)).transpose()?,
                        retrained: summary.as_ref().and_then(|s| s.recovery.iter().find(|r| r.round == round).copied()),
                    });
                }
            }
        }
        let mut masks = Vec::new();
        if let Some(plan) = &self.landscapes {
            for &pre in &self.pretrainings {
                masks.push((
                    format!("{} {}", pre.short(), subnetwork_name(SubnetworkKind::Ticket, Some(plan.family), plan.round)),
                    self.ticket(store, pre, plan.family, plan.round)?,
                ));
            }
        }
        let ladder = super::LadderReport::load(store, self)?;
        Ok(StudyReport { stability, ladder, ..StudyReport::new(results, imp, &masks)? })
    }
}
