//! A loss landscape around the end of a trajectory (the paper's Fig. 6), on the downstream test
//! split: one per pre-training and landscape data fraction. The study's results keep each
//! landscape with the fine-tuning it was drawn from.

use super::{arch_scale, Executor, Step, TrajectoryDesc};
use crate::error::{Error, Result};
use crate::landscape::{landscape, Landscape, LandscapeConfig, LandscapeLoss, Trajectory};
use crate::store::{Attempt, Input, StepDescription, Store};
use crate::study::results::LandscapeRecord;
use crate::study::{Study, StudyResults};
use crate::train::Pretraining;
use serde::{Deserialize, Serialize};

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
    fn reads(&self) -> Result<Vec<Input>> {
        std::iter::once(&self.trajectory).chain(&self.scale_with).map(TrajectoryDesc::checkpoints_input).collect()
    }
}

step_description!(LandscapeDesc);

impl Step for LandscapeDesc {
    type Output = Landscape;
    fn grid(study: &Study) -> Result<Vec<LandscapeDesc>> {
        let Some(l) = &study.landscapes else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for &pre in &study.pretrainings {
            for &fraction in &l.fractions {
                out.push(study.landscape_desc(pre, fraction)?);
            }
        }
        Ok(out)
    }
    fn cost(&self) -> f64 {
        let l = &self.landscape;
        let steps = match l.loss {
            LandscapeLoss::Clean => 0,
            LandscapeLoss::Adversarial { steps, .. } => steps,
        };
        (l.resolution * l.resolution * l.examples) as f64 * (1 + steps) as f64 / 20_000.0
            * arch_scale(self.trajectory.transfer.subnetwork.arch())
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<Landscape>> {
        let t = &self.trajectory;
        ex.ensure(t)?;
        let checkpoints = t.checkpoints_in(ex.store)?;
        let mask = ex.mask(&t.transfer.subnetwork)?;
        let splits = ex.splits(t.transfer.dataset, t.transfer.holdout)?;
        let mut siblings = Vec::new();
        for s in &self.scale_with {
            ex.ensure(s)?;
            siblings.push(s.checkpoints_in(ex.store)?);
        }
        let (device, announce) = (ex.rt.device, ex.announce(self.kind(), self.label()));
        ex.store.run(self, ex.wait, |_| {
            announce();
            let trajectory = Trajectory::open(&checkpoints, device)?;
            let mut cfg = self.landscape.clone();
            if !siblings.is_empty() {
                let mut longest = 0f64;
                for dir in &siblings {
                    longest = longest.max(Trajectory::open(dir, device)?.span()?);
                }
                cfg.radius = Some(cfg.margin * longest);
            }
            landscape(&self.title(), &trajectory, mask.as_ref(), &splits.test, &cfg)
        })
    }
    fn collect(&self, store: &Store, results: &mut StudyResults) -> Result<()> {
        let t = &self.trajectory;
        let pretraining =
            t.transfer.subnetwork.pretraining().ok_or_else(|| {
                Error::invalid(format!("the landscape '{}' has no pre-training", self.label()), "draw landscapes of tickets")
            })?;
        results.landscapes.push(LandscapeRecord {
            pretraining,
            fraction: t.transfer.transfer.fraction,
            report: t.load(store)?,
            landscape: self.load(store)?,
        });
        Ok(())
    }
}

impl Study {
    /// The study's landscapes (an error for a study that draws none).
    pub(crate) fn landscape_plan(&self) -> Result<&crate::study::LandscapePlan> {
        self.landscapes.as_ref().ok_or_else(|| Error::invalid("this study draws no landscapes", "set study.landscapes"))
    }

    /// The landscape of pre-training `kind` at `fraction`.
    pub fn landscape_desc(&self, kind: Pretraining, fraction: f64) -> Result<LandscapeDesc> {
        let plan = self.landscape_plan()?;
        let scale_with = if plan.shared_scale {
            self.pretrainings.iter().map(|&p| self.trajectory_desc(p, fraction)).collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(LandscapeDesc { trajectory: self.trajectory_desc(kind, fraction)?, landscape: plan.config(&self.threat), scale_with })
    }
}
