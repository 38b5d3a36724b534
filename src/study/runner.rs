//! Runs a study's plan through the store as a worker: each step missing from the store is
//! computed in dependency order under its lock (see [`crate::store`]), and any number of workers
//! (processes, on one machine or a cluster) can share one store: a worker skips the steps another
//! holds and never computes a step twice. Progress goes to the process's observer (one line for
//! the steps already stored, a line per computed step with an estimate of the time left). A
//! killed run resumes at the step it was in. [`crate::session::Session`] asks a study its
//! questions through [`run_plan`] and [`compute`].

use super::plan::Plan;
use super::results::RunSummary;
use super::steps::Executor;
use super::steps::StepDesc;
use crate::error::{Error, Result};
use crate::progress::{self, Event};
use crate::runtime::Runtime;
use crate::store::{Attempt, Check, Status, Store};
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
    let mut walk = Walk::new(plan, store);
    progress::emit(&Event::StudyPlanned { total: plan.len(), stored: walk.finished() });
    let mut ex = Executor::new(rt, store, false);
    let order = plan.schedule();
    'walk: while walk.done.iter().any(|d| !d) {
        for &i in &order {
            if !walk.ready(i) {
                continue;
            }
            if options.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                walk.stopped = true;
                break 'walk;
            }
            match walk.step(i, &mut ex, options.workers)? {
                Flow::Stopped => break 'walk,
                Flow::Busy => continue,
                // Start again from the top: finishing this step may have readied one of higher
                // priority (an IMP run after its pre-training).
                Flow::Done => continue 'walk,
            }
        }
        walk.wait_for_others(store);
    }
    Ok(walk.finish(start))
}

/// What [`Walk::step`] did.
enum Flow {
    /// The step is done (computed here, or found done).
    Done,
    /// Another worker holds it.
    Busy,
    /// A stop was asked for inside a resumable step.
    Stopped,
}

/// One worker's walk through a plan: which steps are done, and what it has spent.
struct Walk<'a> {
    plan: &'a Plan,
    done: Vec<bool>,
    /// Who reads whom: a step computed anew may leave the steps below it stale (they recorded
    /// the hashes of what it wrote before), so they are looked at again.
    dependents: Vec<Vec<usize>>,
    seconds_by_kind: HashMap<&'static str, (f64, usize)>,
    computed: usize,
    stopped: bool,
    busy: f64,
    idle: f64,
}

impl<'a> Walk<'a> {
    fn new(plan: &'a Plan, store: &Store) -> Walk<'a> {
        let done = plan.steps.iter().map(|s| store.status(s.kind, &s.key, Check::Hashes) == Status::Done).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); plan.len()];
        for (i, s) in plan.steps.iter().enumerate() {
            for &d in &s.deps {
                dependents[d].push(i);
            }
        }
        Walk { plan, done, dependents, seconds_by_kind: HashMap::new(), computed: 0, stopped: false, busy: 0.0, idle: 0.0 }
    }

    fn finished(&self) -> usize {
        self.done.iter().filter(|d| **d).count()
    }

    /// Not done, and every input done.
    fn ready(&self, i: usize) -> bool {
        !self.done[i] && self.plan.steps[i].deps.iter().all(|&d| self.done[d])
    }

    /// Runs step `i` (computes it, finds it done, or finds another worker on it).
    fn step(&mut self, i: usize, ex: &mut Executor, workers: usize) -> Result<Flow> {
        let step = &self.plan.steps[i];
        ex.position = Some((self.finished(), self.plan.len()));
        let t = Instant::now();
        let attempt = match step.desc.run(ex) {
            // Stopped inside a resumable step (a pre-training or IMP run, after a saved
            // epoch): the step stays unfinished and the next run resumes it.
            Err(Error::Stopped) => {
                self.stopped = true;
                return Ok(Flow::Stopped);
            }
            other => other?,
        };
        match attempt {
            Attempt::Busy => return Ok(Flow::Busy),
            Attempt::Stored(()) => {}
            Attempt::Computed(()) => self.computed_now(i, t.elapsed().as_secs_f64(), workers),
        }
        self.done[i] = true;
        Ok(Flow::Done)
    }

    /// Books a step computed in `seconds`, looks again at every step below it, and reports.
    fn computed_now(&mut self, i: usize, seconds: f64, workers: usize) {
        let step = &self.plan.steps[i];
        self.computed += 1;
        self.busy += seconds;
        let e = self.seconds_by_kind.entry(step.kind).or_insert((0.0, 0));
        *e = (e.0 + seconds, e.1 + 1);
        self.done[i] = true;
        let (mut below, mut seen) = (self.dependents[i].clone(), vec![false; self.plan.len()]);
        while let Some(j) = below.pop() {
            if !std::mem::replace(&mut seen[j], true) {
                self.done[j] = false;
                below.extend(&self.dependents[j]);
            }
        }
        let eta = time_left(self.plan, &self.done, &self.seconds_by_kind) / workers.max(1) as f64;
        let finished = self.finished();
        progress::emit(&Event::StepFinished { done: finished, total: self.plan.len(), label: &step.label, seconds, eta });
    }

    /// Nothing ready that another worker does not hold: look again shortly.
    fn wait_for_others(&mut self, store: &Store) {
        let t = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(500));
        self.idle += t.elapsed().as_secs_f64();
        for (i, s) in self.plan.steps.iter().enumerate() {
            self.done[i] = self.done[i] || store.status(s.kind, &s.key, Check::Sizes) == Status::Done;
        }
    }

    fn finish(self, start: Instant) -> RunSummary {
        let (computed, busy, idle, stopped) = (self.computed, self.busy, self.idle, self.stopped);
        let summary =
            RunSummary { computed, stored: self.plan.len() - computed, seconds: start.elapsed().as_secs_f64(), stopped, busy, idle };
        if computed > 0 {
            progress::note(&format!(
                "this worker: busy {:.0} s computing, idle {:.0} s waiting ({:.1}% idle)",
                busy,
                idle,
                100.0 * summary.idle_fraction()
            ));
        }
        progress::emit(&Event::StudyFinished { computed, stored: summary.stored, seconds: summary.seconds });
        summary
    }
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
