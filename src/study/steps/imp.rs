//! IMP from a pre-trained network: one step per pre-training and mask family (m^ST / m^AT); it
//! stores every round's mask and how far each re-training came back to the dense network.

use super::{arch_scale, passes, Executor, PretrainDesc, Step};
use crate::data::Splits;
use crate::error::Result;
use crate::prune::{imp, ImpConfig};
use crate::store::{Attempt, Input, StepDescription, Store};
use crate::study::Study;
use crate::train::{ImpFamily, Pretraining, Regime};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

/// What an IMP step stores besides its masks: the sparsity of each round's ticket and how far
/// each re-training brought the masked network back on the source validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpSummary {
    pub sparsity: Vec<f64>,
    /// One per re-training (rounds 2 and later), in round order.
    #[serde(default)]
    pub recovery: Vec<crate::prune::Recovery>,
}

impl ImpDesc {
    pub const KIND: &'static str = "imp";

    /// The mask family, by its re-training regime.
    pub fn family(&self) -> ImpFamily {
        self.imp.retrain.regime.kind().into()
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
    /// The mask of `round`, as an input of a step below.
    pub(crate) fn mask_input(&self, round: usize) -> Result<Input> {
        Input::of(self, crate::prune::round_path(Path::new(""), round).display().to_string())
    }
    fn describe(&self) -> String {
        format!("{} IMP from {} ({} rounds)", self.family().name(), self.pretrain.pretraining().short(), self.imp.rounds)
    }
    fn reads(&self) -> Result<Vec<Input>> {
        Ok(vec![self.pretrain.weights_input()?])
    }
}

step_description!(ImpDesc);

impl Step for ImpDesc {
    type Output = ImpSummary;
    fn grid(study: &Study) -> Result<Vec<ImpDesc>> {
        let mut out = Vec::new();
        for &pre in &study.pretrainings {
            for &family in &study.families {
                out.push(study.imp_desc(pre, family)?);
            }
        }
        Ok(out)
    }
    fn cost(&self) -> f64 {
        let r = &self.imp.retrain;
        75.0 * (self.imp.rounds * r.recipe.epochs) as f64
            * self.pretrain.source_fraction
            * self.data_fraction
            * passes(&r.regime)
            * arch_scale(&self.pretrain.arch)
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<ImpSummary>> {
        let pretrained = ex.pretrained(&self.pretrain)?;
        let announce = ex.announce(self.kind(), self.label());
        ex.store.run(self, ex.wait, |dir| {
            announce();
            let tickets = imp(&pretrained, &self.splits()?, &self.imp, dir)?;
            Ok(ImpSummary { sparsity: tickets.0.iter().map(|t| t.sparsity()).collect(), recovery: tickets.recovery() })
        })
    }
}

impl Study {
    /// IMP of `family` from the pre-training of `kind`.
    pub fn imp_desc(&self, kind: Pretraining, family: ImpFamily) -> Result<ImpDesc> {
        Ok(ImpDesc {
            pretrain: self.pretrain_desc(kind)?,
            imp: self.imp.resolve(self.imp_rounds(), Regime::of(family, &self.threat)?, self.source_seed),
            data_fraction: self.imp_fraction,
        })
    }
}
