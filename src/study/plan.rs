//! A study's plan: every step of the grid with its description, key and dependencies, in an
//! order where each step comes after the steps it needs. The runner walks it; `doublewin study
//! plan` prints it. The `Study::*_desc` methods here are the only place a study turns its
//! declaration into step descriptions.

use super::desc::{
    AttackCheckDesc, Checked, HoldOut, ImpDesc, LandscapeDesc, PretrainDesc, Subnetwork, SubnetworkKind, TrajectoryDesc, TransferDesc,
};
use super::grid::Study;
use super::step::{Executor, Step};
use crate::data::DataSource;
use crate::display::Table;
use crate::error::{Error, Result};
use crate::store::{Attempt, Check, Status, StepDescription, Store};
use crate::train::{Regime, RegimeKind};
use crate::transfer::TransferConfig;
use serde::Serialize;
use std::collections::HashMap;

/// The registry of step kinds, one line each: the variant of [`StepDesc`] and the description
/// type, which implements [`Step`]. Everything the plan, the workers and the CLI do with a step
/// of any kind goes through the methods generated here.
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
            pub fn kind(&self) -> &'static str {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.kind(),)* }
            }
            pub fn key(&self) -> Result<String> {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.key(),)* }
            }
            pub fn label(&self) -> String {
                match self { $($(#[$attr])* StepDesc::$variant(d) => d.label(),)* }
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
    Toy(super::toy::ToyDesc),
}

fn unit<T>(a: Attempt<T>) -> Attempt<()> {
    match a {
        Attempt::Stored(_) => Attempt::Stored(()),
        Attempt::Computed(_) => Attempt::Computed(()),
        Attempt::Busy => Attempt::Busy,
    }
}

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
    /// times the store recorded: each kind's seconds per unit of estimated cost ([`Step::cost`])
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
            if let (Status::Done, Some(sec)) = (st, store.seconds(s.kind, &s.key)) {
                add(&mut own, s.kind, sec, s.desc.cost());
            }
        }
        let mut stored: HashMap<String, (f64, f64)> = HashMap::new();
        let missing_kinds = self.steps.iter().zip(&status).any(|(s, st)| *st != Status::Done && !own.contains_key(s.kind));
        if missing_kinds {
            for e in store.entries().unwrap_or_default() {
                if let (Some(sec), Some(d)) = (store.seconds(&e.kind, &e.key), StepDesc::from_describe(&e.kind, &e.describe)) {
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
    /// The pre-training of `kind`.
    pub fn pretrain_desc(&self, kind: RegimeKind) -> Result<PretrainDesc> {
        let train = self.pretrain.resolve(Regime::of(kind, &self.threat)?, self.source_seed);
        Ok(PretrainDesc {
            source: self.source,
            holdout: HoldOut::STUDY,
            source_fraction: self.source_fraction,
            arch: self.arch.clone(),
            train,
            seed: self.source_seed,
        })
    }

    /// IMP of `family` from the pre-training of `kind`.
    pub fn imp_desc(&self, kind: RegimeKind, family: RegimeKind) -> Result<ImpDesc> {
        Ok(ImpDesc {
            pretrain: self.pretrain_desc(kind)?,
            imp: self.imp.resolve(self.imp_rounds(), Regime::of(family, &self.threat)?, self.source_seed),
            data_fraction: self.imp_fraction,
        })
    }

    /// The dense network (`family` `None`) or the ticket of `round` of an IMP family.
    pub fn subnetwork(&self, kind: RegimeKind, family: Option<RegimeKind>, round: usize) -> Result<Subnetwork> {
        Ok(match family {
            None => Subnetwork::Dense(self.pretrain_desc(kind)?),
            Some(f) => Subnetwork::Ticket { imp: self.imp_desc(kind, f)?, round },
        })
    }

    /// A control of the ticket of `round` of an IMP family (the random ticket drawn with `seed`).
    pub fn control(&self, kind: RegimeKind, control: SubnetworkKind, family: RegimeKind, round: usize, seed: u64) -> Result<Subnetwork> {
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
        fine_tuning: RegimeKind,
        fraction: f64,
        seed: u64,
    ) -> Result<TransferDesc> {
        let transfer = TransferConfig::new(fine_tuning, &self.threat)?
            .seed(seed)
            .recipe(self.transfer.recipe.clone())
            .min_steps(self.transfer.min_steps)
            .fraction(fraction);
        Ok(TransferDesc { subnetwork, dataset, holdout: HoldOut::STUDY, transfer })
    }

    fn landscape_plan(&self) -> Result<&super::grid::LandscapePlan> {
        self.landscapes.as_ref().ok_or_else(|| Error::invalid("this study draws no landscapes", "set study.landscapes"))
    }

    /// The fine-tuning with checkpoints behind the landscape of pre-training `kind` at `fraction`.
    pub fn trajectory_desc(&self, kind: RegimeKind, fraction: f64) -> Result<TrajectoryDesc> {
        let plan = self.landscape_plan()?;
        let seed = self.seeds.first().copied().unwrap_or(0);
        let ticket = self.subnetwork(kind, Some(plan.family), plan.round)?;
        Ok(TrajectoryDesc {
            transfer: self.transfer_desc(ticket, plan.dataset, plan.fine_tuning, fraction, seed)?,
            checkpoints: plan.checkpoints,
        })
    }

    /// The landscape of pre-training `kind` at `fraction`.
    pub fn landscape_desc(&self, kind: RegimeKind, fraction: f64) -> Result<LandscapeDesc> {
        let plan = self.landscape_plan()?;
        let scale_with = if plan.shared_scale {
            self.pretrainings.iter().map(|&p| self.trajectory_desc(p, fraction)).collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(LandscapeDesc { trajectory: self.trajectory_desc(kind, fraction)?, landscape: plan.config(&self.threat), scale_with })
    }

    /// The attack checks of the study (none when its test attack is already AutoAttack-grade, or
    /// `attack_check_examples` is 0): every source model, and the final weights of every
    /// landscape fine-tuning (adversarially fine-tuned tickets).
    pub fn attack_checks(&self) -> Result<Vec<AttackCheckDesc>> {
        if self.attack_check_examples == 0 || self.threat.test != crate::attack::TestAttack::Pgd20 {
            return Ok(Vec::new());
        }
        let threat = crate::attack::ThreatModel { test: crate::attack::TestAttack::AutoattackFast, ..self.threat.clone() };
        let mut networks: Vec<Checked> =
            self.pretrainings.iter().map(|&p| Ok(Checked::Source(self.pretrain_desc(p)?))).collect::<Result<_>>()?;
        if let Some(l) = &self.landscapes {
            for &p in &self.pretrainings {
                for &f in &l.fractions {
                    networks.push(Checked::FineTuned(self.trajectory_desc(p, f)?));
                }
            }
        }
        Ok(networks
            .into_iter()
            .map(|network| AttackCheckDesc { network, threat: threat.clone(), examples: self.attack_check_examples })
            .collect())
    }

    /// Every step of the grid in dependency order (checks the study first).
    pub fn plan(&self) -> Result<Plan> {
        self.check()?;
        let mut plan = Plan { steps: Vec::new() };
        let mut index = HashMap::new();
        let mut landscapes = Vec::new();
        for &pre in &self.pretrainings {
            let p = plan.push(&mut index, StepDesc::Pretrain(self.pretrain_desc(pre)?), vec![])?;
            let mut subnetworks = vec![(self.subnetwork(pre, None, 0)?, p)];
            let mut imps = HashMap::new();
            for &family in &self.families {
                let i = plan.push(&mut index, StepDesc::Imp(self.imp_desc(pre, family)?), vec![p])?;
                imps.insert(family, i);
                for &r in &self.rounds {
                    subnetworks.push((self.subnetwork(pre, Some(family), r)?, i));
                }
            }
            for &d in &self.downstream {
                for (subnetwork, dep) in &subnetworks {
                    for &ft in &self.fine_tunings {
                        for &fraction in &self.fractions {
                            for seed in self.all_seeds() {
                                let desc = self.transfer_desc(subnetwork.clone(), d, ft, fraction, seed)?;
                                plan.push(&mut index, StepDesc::Transfer(desc), vec![*dep])?;
                            }
                        }
                    }
                }
            }
            if let Some(c) = &self.controls {
                for &d in &self.downstream {
                    for &control in &c.kinds {
                        for &r in &c.rounds {
                            for &ft in &self.fine_tunings {
                                for &fraction in &c.fractions {
                                    // Controls support the report's control table, not the headline
                                    // or the claims: the study's seeds, no second set.
                                    for &seed in &self.seeds {
                                        let subnetwork = self.control(pre, control, c.family, r, seed)?;
                                        let desc = self.transfer_desc(subnetwork, d, ft, fraction, seed)?;
                                        plan.push(&mut index, StepDesc::Transfer(desc), vec![imps[&c.family]])?;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if let Some(l) = &self.landscapes {
                for &fraction in &l.fractions {
                    let t = plan.push(&mut index, StepDesc::Trajectory(self.trajectory_desc(pre, fraction)?), vec![imps[&l.family]])?;
                    landscapes.push((self.landscape_desc(pre, fraction)?, t, imps[&l.family]));
                }
            }
        }
        if self.scratch {
            for &d in &self.downstream {
                for &ft in &self.fine_tunings {
                    for &fraction in &self.fractions {
                        for seed in self.all_seeds() {
                            let desc = self.transfer_desc(self.scratch(seed), d, ft, fraction, seed)?;
                            plan.push(&mut index, StepDesc::Transfer(desc), vec![])?;
                        }
                    }
                }
            }
        }
        // Landscapes last: one drawn on a shared scale needs every trajectory of its fraction.
        for (desc, trajectory, imp) in landscapes {
            let mut deps = vec![trajectory, imp];
            deps.extend(desc.scale_with.iter().filter_map(|t| t.key().ok().and_then(|k| index.get(&k).copied())));
            deps.sort_unstable();
            deps.dedup();
            plan.push(&mut index, StepDesc::Landscape(desc), deps)?;
        }
        for desc in self.attack_checks()? {
            let upstream = match &desc.network {
                Checked::Source(p) => p.key()?,
                Checked::FineTuned(t) => t.key()?,
            };
            let deps = index.get(&upstream).copied().into_iter().collect();
            plan.push(&mut index, StepDesc::AttackCheck(desc), deps)?;
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
