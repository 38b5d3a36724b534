//! A study's plan: every step of the grid with its description, key and dependencies, in an
//! order where each step comes after the steps it needs. Each step kind declares its steps
//! ([`super::steps`]); a step depends on the steps whose files it reads. The runner walks the
//! plan; `doublewin study plan` prints it; [`StudyResults::collect`] reads a finished plan's
//! results back, each kind adding what it keeps.

use super::grid::Study;
use super::results::{RunSummary, StudyResults};
pub use super::steps::StepDesc;
use crate::display::Table;
use crate::error::Result;
use crate::store::{Check, Status, Store};
use serde::Serialize;
use std::collections::HashMap;

/// A step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedStep {
    pub kind: &'static str,
    pub key: String,
    pub label: String,
    /// Positions (in the plan) of the steps this one needs.
    pub deps: Vec<usize>,
    pub desc: StepDesc,
}

/// What [`Plan::estimate`] expects a run to cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub missing: usize,
    /// Seconds of one worker, summed over the missing steps.
    pub core_seconds: f64,
    pub wall_seconds: f64,
    pub workers: usize,
    /// The step kinds whose times come from recorded steps (the others from the cost model alone).
    pub calibrated: Vec<String>,
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.missing == 0 {
            return write!(f, "every step is done");
        }
        write!(
            f,
            "{} steps to compute: about {:.0} min with {} worker(s) ({:.0} worker-minutes; {})",
            self.missing,
            self.wall_seconds / 60.0,
            self.workers,
            self.core_seconds / 60.0,
            if self.calibrated.is_empty() {
                "no step of this study is done yet, so every kind is timed by the cost model alone".to_string()
            } else {
                format!("timed from the recorded steps of kind {}", self.calibrated.join(", "))
            }
        )
    }
}

/// Every step of a study, dependencies first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    fn push(&mut self, index: &mut HashMap<String, usize>, desc: StepDesc, deps: Vec<usize>) -> Result<usize> {
        let key = desc.key()?;
        if let Some(&i) = index.get(&key) {
            return Ok(i);
        }
        self.steps.push(PlannedStep { kind: desc.kind(), key: key.clone(), label: desc.label(), deps, desc });
        index.insert(key, self.steps.len() - 1);
        Ok(self.steps.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Critical-path priorities: each step's estimated cost plus the longest chain of estimated
    /// work that depends on it. Workers take the ready step of highest priority first, so every
    /// pre-training and IMP run (long chains below them) starts before the transfers that can
    /// wait, and the longest chain (e.g. AT pre-training, then its m^AT IMP) starts at once.
    pub fn priorities(&self) -> Vec<f64> {
        let mut below = vec![0.0f64; self.steps.len()];
        // Dependencies come first in the plan: walk it backwards, pushing each step's chain up.
        for i in (0..self.steps.len()).rev() {
            let chain = self.steps[i].desc.cost() + below[i];
            below[i] = chain;
            for &d in &self.steps[i].deps {
                below[d] = below[d].max(chain);
            }
        }
        below
    }

    /// How long computing what `store` lacks should take with `workers` workers, from the compute
    /// times the store recorded ([`Store::worker_seconds`]: a step slowed by other work on the
    /// machine counts its CPU seconds): each kind's seconds per unit of estimated cost ([`Step::cost`])
    /// over the plan's own finished steps of that kind, else over every finished step of that
    /// kind in the store (another study's), else one second per unit; the total spread over the
    /// workers but never below the longest chain of missing steps.
    pub fn estimate(&self, store: &Store, workers: usize) -> Estimate {
        let status = self.status(store);
        let add = |m: &mut HashMap<String, (f64, f64)>, kind: &str, sec: f64, cost: f64| {
            let e = m.entry(kind.to_string()).or_insert((0.0, 0.0));
            *e = (e.0 + sec, e.1 + cost);
        };
        let mut own: HashMap<String, (f64, f64)> = HashMap::new();
        for (s, st) in self.steps.iter().zip(&status) {
            if let (Status::Done, Some(sec)) = (st, store.worker_seconds(s.kind, &s.key)) {
                add(&mut own, s.kind, sec, s.desc.cost());
            }
        }
        let mut stored: HashMap<String, (f64, f64)> = HashMap::new();
        let missing_kinds = self.steps.iter().zip(&status).any(|(s, st)| *st != Status::Done && !own.contains_key(s.kind));
        if missing_kinds {
            for e in store.entries().unwrap_or_default() {
                if let (Some(sec), Some(d)) = (store.worker_seconds(&e.kind, &e.key), StepDesc::from_describe(&e.kind, &e.describe)) {
                    add(&mut stored, &e.kind, sec, d.cost());
                }
            }
        }
        let per_kind = |kind: &str| own.get(kind).or_else(|| stored.get(kind)).filter(|(_, c)| *c > 0.0).copied();
        let rate = |kind: &str| per_kind(kind).map_or(1.0, |(sec, c)| sec / c);
        let seconds: Vec<f64> =
            self.steps.iter().zip(&status).map(|(s, st)| if *st == Status::Done { 0.0 } else { s.desc.cost() * rate(s.kind) }).collect();
        let mut chain = seconds.clone();
        for i in (0..self.steps.len()).rev() {
            for &d in &self.steps[i].deps {
                chain[d] = chain[d].max(seconds[d] + chain[i]);
            }
        }
        let core_seconds: f64 = seconds.iter().sum();
        let longest = chain.iter().copied().fold(0.0, f64::max);
        let mut calibrated: Vec<String> = StepDesc::kinds().into_iter().filter(|k| per_kind(k).is_some()).map(String::from).collect();
        calibrated.sort();
        Estimate {
            missing: status.iter().filter(|s| **s != Status::Done).count(),
            core_seconds,
            wall_seconds: (core_seconds / workers.max(1) as f64).max(longest),
            workers: workers.max(1),
            calibrated,
        }
    }

    /// Step positions in the order workers try them: highest priority first, plan order
    /// between equals.
    pub fn schedule(&self) -> Vec<usize> {
        let p = self.priorities();
        let mut order: Vec<usize> = (0..self.steps.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        order
    }
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Each step's status in `store` (sizes checked; the runner checks hashes before use).
    pub fn status(&self, store: &Store) -> Vec<Status> {
        self.steps.iter().map(|s| store.status(s.kind, &s.key, Check::Sizes)).collect()
    }

    /// How many steps are not done in `store` (sizes checked).
    pub fn missing(&self, store: &Store) -> usize {
        self.status(store).iter().filter(|s| **s != Status::Done).count()
    }

    /// One row per step: position, kind, key, what it is, dependencies, status.
    pub fn table(&self, store: &Store) -> Table {
        let status = self.status(store);
        let done = status.iter().filter(|s| **s == Status::Done).count();
        let mut t = Table::new(
            format!("Study plan: {} steps, {done} done ({})", self.len(), store.root().display()),
            &["#", "kind", "key", "step", "needs", "status"],
        );
        for (i, (s, st)) in self.steps.iter().zip(&status).enumerate() {
            t.push(vec![
                i.to_string(),
                s.kind.into(),
                s.key.clone(),
                s.label.clone(),
                s.deps.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
                match st {
                    Status::Done => "done".into(),
                    Status::Missing => "to do".into(),
                    Status::Broken(why) => format!("broken ({why})"),
                    Status::Unreadable(why) => format!("unreadable ({why})"),
                },
            ]);
        }
        t
    }

    /// The plan as JSON: every step with its description and status.
    pub fn to_json(&self, store: &Store) -> serde_json::Value {
        let status = self.status(store);
        serde_json::Value::Array(
            self.steps
                .iter()
                .zip(status)
                .enumerate()
                .map(|(i, (s, st))| {
                    serde_json::json!({
                        "index": i, "kind": s.kind, "key": s.key, "label": s.label, "needs": s.deps,
                        "done": st == Status::Done, "description": s.desc,
                    })
                })
                .collect(),
        )
    }
}

impl Study {
    /// Every step of the grid in dependency order (checks the study first).
    pub fn plan(&self) -> Result<Plan> {
        self.check()?;
        let mut plan = Plan { steps: Vec::new() };
        let mut index = HashMap::new();
        // Kind by kind, upstream first: every step's dependencies are the planned steps whose
        // files it reads (one source of truth: what the store pins by hash).
        for desc in StepDesc::grid(self)? {
            let mut deps: Vec<usize> = desc.inputs()?.iter().filter_map(|i| index.get(&i.key).copied()).collect();
            deps.sort_unstable();
            deps.dedup();
            plan.push(&mut index, desc, deps)?;
        }
        Ok(plan)
    }
}

impl StudyResults {
    /// Reads the results of every transfer and landscape of `plan` from `store` (all must be
    /// done).
    pub fn collect(study: &Study, plan: &Plan, store: &Store, run: RunSummary) -> Result<StudyResults> {
        let mut results = StudyResults {
            study: study.clone(),
            transfers: Vec::new(),
            landscapes: Vec::new(),
            attack_checks: Vec::new(),
            seconds: run.seconds,
            computed_steps: run.computed,
        };
        // Each kind adds what the results keep of it (see `Step::collect`).
        for step in &plan.steps {
            step.desc.collect(store, &mut results)?;
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::steps::{ImpDesc, PretrainDesc, TransferDesc};
    use crate::study::Profile;

    /// Every `eps` in a JSON value (attacks, regimes, guards, landscape losses), with its path.
    fn eps_fields(v: &serde_json::Value, path: &str, out: &mut Vec<(String, f64)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x.as_f64()) {
                        ("eps", Some(e)) => out.push((format!("{path}.eps"), e)),
                        _ => eps_fields(x, &format!("{path}.{k}"), out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| eps_fields(x, &format!("{path}[{i}]"), out)),
            _ => {}
        }
    }

    #[test]
    fn eps_is_set_in_the_threat_model_only_and_reaches_every_attack() {
        for profile in [Profile::Tiny, Profile::Small, Profile::Full] {
            let mut study = Study::for_profile(profile);
            study.threat.eps = 0.0625;
            let plan = study.plan().unwrap();
            let mut seen = HashMap::new();
            for step in &plan.steps {
                let mut found = Vec::new();
                eps_fields(&serde_json::to_value(&step.desc).unwrap(), step.kind, &mut found);
                for (path, e) in &found {
                    assert_eq!(*e, 0.0625, "{profile}: {} has {path} = {e}, not the threat model's eps", step.label);
                }
                *seen.entry(step.kind).or_insert(0) += found.len();
            }
            // Every kind that attacks carries the one eps: adversarial pre-training, m^AT re-training,
            // adversarial fine-tuning and every validation / test attack, landscapes, attack checks.
            for kind in [PretrainDesc::KIND, ImpDesc::KIND, TransferDesc::KIND] {
                assert!(seen.get(kind).copied().unwrap_or(0) > 0, "{profile}: no eps in any {kind} step");
            }
        }
    }

    #[test]
    fn the_schedule_starts_every_pretraining_and_imp_run_before_any_transfer() {
        for profile in [Profile::Tiny, Profile::Small] {
            let plan = Study::for_profile(profile).plan().unwrap();
            let order = plan.schedule();
            let rank = |kind: &str, first: bool| {
                let mut at = order.iter().enumerate().filter(|(_, &i)| plan.steps[i].kind == kind).map(|(r, _)| r);
                if first {
                    at.next().unwrap()
                } else {
                    at.next_back().unwrap()
                }
            };
            let first_transfer = rank(TransferDesc::KIND, true);
            assert!(rank(PretrainDesc::KIND, false) < first_transfer, "{profile}: a transfer is scheduled before a pre-training");
            assert!(rank(ImpDesc::KIND, false) < first_transfer, "{profile}: a transfer is scheduled before an IMP run");
            // The longest chain first: AT pre-training (PGD in every step, then its IMP runs).
            assert!(plan.steps[order[0]].label.starts_with("AT pre-training"), "{profile}: {}", plan.steps[order[0]].label);
            // Every step comes after the steps it needs.
            let position: HashMap<usize, usize> = order.iter().enumerate().map(|(r, &i)| (i, r)).collect();
            for (i, s) in plan.steps.iter().enumerate() {
                assert!(s.deps.iter().all(|d| position[d] < position[&i]), "{}", s.label);
            }
        }
    }
}
