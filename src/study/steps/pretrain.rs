//! Pre-training a source network (STD / FAT / AT): one step per pre-training of the study.

use super::{arch_scale, passes, Executor, HoldOut, Step};
use crate::data::{DataSource, Splits};
use crate::error::{Error, Result};
use crate::model::{Arch, Network, NetworkSpec};
use crate::store::{Attempt, Input, StepDescription, Store};
use crate::study::Study;
use crate::train::{train_with, Callbacks, History, Pretraining, Regime, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Pre-training a source network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainDesc {
    pub source: DataSource,
    pub holdout: HoldOut,
    pub source_fraction: f64,
    pub arch: Arch,
    /// The recipe with its regime (STD / FAT / AT) and seed filled in.
    pub train: TrainConfig,
    /// Initialisation and data-subset seed.
    pub seed: u64,
}

impl PretrainDesc {
    pub const KIND: &'static str = "pretrain";
    /// The weights file in the step's folder.
    pub const WEIGHTS: &'static str = "net.safetensors";

    pub fn pretraining(&self) -> Pretraining {
        self.train.regime.kind().into()
    }
    /// The pre-trained weights in `store`.
    pub fn weights_in(&self, store: &Store) -> Result<PathBuf> {
        Ok(store.step(self)?.file(Self::WEIGHTS))
    }
    /// The pre-trained weights, as an input of a step below.
    pub(crate) fn weights_input(&self) -> Result<Input> {
        Input::of(self, Self::WEIGHTS)
    }
    /// The source splits it trains on.
    pub fn splits(&self) -> Result<Splits> {
        self.holdout.splits(self.source)?.with_train_fraction(self.source_fraction, self.seed)
    }
    fn describe(&self) -> String {
        format!("{} pre-training on {} ({}%)", self.pretraining().short(), self.source.name(), 100.0 * self.source_fraction)
    }
    /// A pre-training reads nothing from the store.
    fn reads(&self) -> Result<Vec<Input>> {
        Ok(Vec::new())
    }
}

step_description!(PretrainDesc);

impl Step for PretrainDesc {
    type Output = History;
    fn grid(study: &Study) -> Result<Vec<PretrainDesc>> {
        study.pretrainings.iter().map(|&p| study.pretrain_desc(p)).collect()
    }
    fn cost(&self) -> f64 {
        75.0 * self.train.recipe.epochs as f64 * self.source_fraction * passes(&self.train.regime) * arch_scale(&self.arch)
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<History>> {
        let (rt, announce) = (ex.rt, ex.announce(self.kind(), self.label()));
        ex.store.run(self, ex.wait, |dir| {
            announce();
            let splits = self.splits()?;
            let mut net = Network::new(NetworkSpec::for_data(self.arch.clone(), &splits.train)?, rt.device, self.seed)?;
            let resume = dir.join("train");
            let history = train_with(&mut net, &splits, &self.train, &mut Callbacks::progress(self.pretraining().short()), Some(&resume))?;
            net.save(dir.join(Self::WEIGHTS))?;
            std::fs::remove_dir_all(&resume).map_err(|e| Error::io(&resume, e))?;
            Ok(history)
        })
    }
}

impl Study {
    /// The pre-training of `kind`.
    pub fn pretrain_desc(&self, kind: Pretraining) -> Result<PretrainDesc> {
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
}
