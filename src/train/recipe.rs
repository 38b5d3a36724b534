//! What a training run is: a [`Recipe`] (what a person sets: epochs, batch sizes, SGD, schedule,
//! warm-up, augmentation, selection, validations) and the [`TrainConfig`] that runs, a recipe
//! resolved with its regime and seed. A study stores recipes only: its regimes come from its
//! roles and threat model and its seeds from its seed fields, so a recipe cannot contradict them.

use super::{AugmentChoice, Regime, Schedule, SgdConfig};
use crate::data::{Augment, Dataset};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A training recipe without its regime and seed. `Default` is a sensible CPU recipe for the
/// small ConvNet; the setters return the changed recipe for chaining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub sgd: SgdConfig,
    pub schedule: Schedule,
    /// Linear warm-up length in epochs (may be fractional).
    pub warmup_epochs: f64,
    pub augment: AugmentChoice,
    /// Keep the weights of the validated epoch with the best validation accuracy (else the last
    /// epoch's).
    pub select_best: bool,
    /// Validate after at most this many epochs, evenly spaced, the last always among them
    /// (0: after every epoch). See [`super::validates`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validations: usize,
}

/// Everything that defines a training run: a [`Recipe`]'s fields, the regime and the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub sgd: SgdConfig,
    pub schedule: Schedule,
    /// Linear warm-up length in epochs (may be fractional).
    pub warmup_epochs: f64,
    #[serde(default)]
    pub regime: Regime,
    pub augment: AugmentChoice,
    /// Keep the weights of the validated epoch with the best validation accuracy (else the last
    /// epoch's).
    pub select_best: bool,
    /// Seeds the batch order and augmentation.
    pub seed: u64,
    /// Validate after at most this many epochs, evenly spaced, the last always among them
    /// (0: after every epoch). See [`super::validates`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validations: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            epochs: 10,
            batch_size: 128,
            eval_batch_size: super::EVAL_BATCH_SIZE,
            sgd: SgdConfig::default(),
            schedule: Schedule::Cosine { min_lr: 0.0 },
            warmup_epochs: 0.0,
            augment: AugmentChoice::Standard,
            select_best: true,
            validations: 0,
        }
    }
}

impl Default for TrainConfig {
    /// The default recipe, standard training, seed 0.
    fn default() -> Self {
        Recipe::default().resolve(Regime::Standard, 0)
    }
}

/// The setters of a recipe's fields, one list for [`Recipe`] and [`TrainConfig`].
macro_rules! recipe_setters {
    () => {
        pub fn epochs(mut self, n: usize) -> Self {
            self.epochs = n;
            self
        }
        pub fn batch_size(mut self, n: usize) -> Self {
            self.batch_size = n;
            self
        }
        pub fn lr(mut self, lr: f64) -> Self {
            self.sgd.lr = lr;
            self
        }
        pub fn momentum(mut self, m: f64) -> Self {
            self.sgd.momentum = m;
            self
        }
        pub fn weight_decay(mut self, wd: f64) -> Self {
            self.sgd.weight_decay = wd;
            self
        }
        pub fn nesterov(mut self, on: bool) -> Self {
            self.sgd.nesterov = on;
            self
        }
        pub fn schedule(mut self, s: Schedule) -> Self {
            self.schedule = s;
            self
        }
        pub fn warmup(mut self, epochs: f64) -> Self {
            self.warmup_epochs = epochs;
            self
        }
        pub fn augment(mut self, a: AugmentChoice) -> Self {
            self.augment = a;
            self
        }
        pub fn select_best(mut self, on: bool) -> Self {
            self.select_best = on;
            self
        }
        /// At most `n` validations, evenly spaced (0: every epoch).
        pub fn validations(mut self, n: usize) -> Self {
            self.validations = n;
            self
        }
    };
}

impl Recipe {
    recipe_setters!();

    /// The run of this recipe with `regime`, seeded with `seed`.
    pub fn resolve(&self, regime: Regime, seed: u64) -> TrainConfig {
        let r = self.clone();
        TrainConfig {
            epochs: r.epochs,
            batch_size: r.batch_size,
            eval_batch_size: r.eval_batch_size,
            sgd: r.sgd,
            schedule: r.schedule,
            warmup_epochs: r.warmup_epochs,
            regime,
            augment: r.augment,
            select_best: r.select_best,
            seed,
            validations: r.validations,
        }
    }

    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(Error::invalid(
                format!("epochs {}, batch size {}, eval batch size {}", self.epochs, self.batch_size, self.eval_batch_size),
                "all must be at least 1",
            ));
        }
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs <= self.epochs as f64) {
            return Err(Error::invalid(
                format!("warm-up of {} epochs in a {}-epoch run", self.warmup_epochs, self.epochs),
                "use 0 <= warmup <= epochs",
            ));
        }
        self.sgd.check()?;
        self.schedule.check()
    }
}

impl TrainConfig {
    recipe_setters!();

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn regime(mut self, r: Regime) -> Self {
        self.regime = r;
        self
    }

    /// The recipe of this run (everything but the regime and the seed).
    pub fn recipe(&self) -> Recipe {
        let c = self.clone();
        Recipe {
            epochs: c.epochs,
            batch_size: c.batch_size,
            eval_batch_size: c.eval_batch_size,
            sgd: c.sgd,
            schedule: c.schedule,
            warmup_epochs: c.warmup_epochs,
            augment: c.augment,
            select_best: c.select_best,
            validations: c.validations,
        }
    }

    /// A stable name for this configuration (hash of all of it).
    pub fn hash(&self) -> Result<String> {
        crate::store::key_of("train-config", self)
    }

    pub fn check(&self) -> Result<()> {
        self.recipe().check()?;
        self.regime.check()
    }

    pub(super) fn augmentation(&self, data: &Dataset) -> Augment {
        match self.augment {
            AugmentChoice::Standard => Augment::standard(data),
            AugmentChoice::None => Augment::none(),
            AugmentChoice::Custom(a) => a,
        }
    }
}
