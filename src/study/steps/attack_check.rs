//! How much the study's test attack overstates RA: every source model, and the final weights of
//! every landscape fine-tuning, evaluated by the study's test attacks and then by AutoAttack-fast
//! on the points still robust. The study's results keep each check; the report quotes the gap.

use super::{arch_scale, Executor, PretrainDesc, Step, TrajectoryDesc};
use crate::attack::{TestAttack, ThreatModel};
use crate::error::Result;
use crate::landscape::Trajectory;
use crate::store::{Attempt, Input, StepDescription, Store};
use crate::study::results::AttackCheck;
use crate::study::{Study, StudyResults};
use serde::{Deserialize, Serialize};

/// The network an attack check evaluates: a pre-trained source model, or the final weights of a
/// landscape's fine-tuning (an adversarially fine-tuned ticket).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum CheckedNetwork {
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
    pub network: CheckedNetwork,
    /// The study's threat model with its test attack raised to AutoAttack-fast.
    pub threat: ThreatModel,
    /// Test examples attacked (at most the test split).
    pub examples: usize,
}

impl AttackCheckDesc {
    pub const KIND: &'static str = "attack-check";

    /// "AT source" or "AT m^ST r6, 10% data, adversarial FT".
    pub fn title(&self) -> String {
        match &self.network {
            CheckedNetwork::Source(p) => format!("{} source", p.pretraining().short()),
            CheckedNetwork::FineTuned(t) => {
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
    fn reads(&self) -> Result<Vec<Input>> {
        Ok(vec![match &self.network {
            CheckedNetwork::Source(p) => p.weights_input()?,
            CheckedNetwork::FineTuned(t) => t.checkpoints_input()?,
        }])
    }
}

step_description!(AttackCheckDesc);

impl Step for AttackCheckDesc {
    type Output = AttackCheck;
    /// None when the study's test attack is already AutoAttack-grade, or `attack_check_examples`
    /// is 0; else every source model, and the final weights of every landscape fine-tuning.
    fn grid(study: &Study) -> Result<Vec<AttackCheckDesc>> {
        if study.attack_check_examples == 0 || study.threat.test != TestAttack::Pgd20 {
            return Ok(Vec::new());
        }
        let threat = ThreatModel { test: TestAttack::AutoattackFast, ..study.threat.clone() };
        let mut networks: Vec<CheckedNetwork> =
            study.pretrainings.iter().map(|&p| Ok(CheckedNetwork::Source(study.pretrain_desc(p)?))).collect::<Result<_>>()?;
        if let Some(l) = &study.landscapes {
            for &p in &study.pretrainings {
                for &f in &l.fractions {
                    networks.push(CheckedNetwork::FineTuned(study.trajectory_desc(p, f)?));
                }
            }
        }
        Ok(networks
            .into_iter()
            .map(|network| AttackCheckDesc { network, threat: threat.clone(), examples: study.attack_check_examples })
            .collect())
    }
    /// APGD-CE (100 iterations) and APGD-T (9 targets x 100) on the points still robust.
    fn cost(&self) -> f64 {
        let arch = match &self.network {
            CheckedNetwork::Source(p) => &p.arch,
            CheckedNetwork::FineTuned(t) => t.transfer.subnetwork.arch(),
        };
        self.examples as f64 / 25.0 * arch_scale(arch)
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<AttackCheck>> {
        let (net, test) = match &self.network {
            CheckedNetwork::Source(p) => (ex.pretrained(p)?, ex.splits(p.source, p.holdout)?.test),
            CheckedNetwork::FineTuned(t) => {
                ex.ensure(t)?;
                let dir = t.checkpoints_in(ex.store)?;
                (Trajectory::open(&dir, ex.rt.device)?.last()?, ex.splits(t.transfer.dataset, t.transfer.holdout)?.test)
            }
        };
        let announce = ex.announce(self.kind(), self.label());
        ex.store.run(self, ex.wait, |_| {
            announce();
            let test = test.fraction((self.examples as f64 / test.len().max(1) as f64).min(1.0), 0)?;
            let attacks: Vec<_> = self.threat.test_attacks().iter().map(|a| a.seeded(0)).collect();
            let e = crate::attack::robust_evaluate(&net, &test, &attacks, crate::train::EVAL_BATCH_SIZE)?;
            // The study's own test attacks end with PGD-20; AutoAttack-fast runs after it.
            let ra_test = e.accuracy_after("PGD-20").unwrap_or(e.ra);
            Ok(AttackCheck { title: self.title(), examples: e.examples, sa: e.sa, ra_test, ra_strong: e.ra, per_attack: e.per_attack })
        })
    }
    fn collect(&self, store: &Store, results: &mut StudyResults) -> Result<()> {
        results.attack_checks.push(self.load(store)?);
        Ok(())
    }
}
