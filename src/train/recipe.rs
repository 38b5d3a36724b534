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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate_delegates(ty = "TrainConfig", field = "recipe"))]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// (Its setters are the recipe's: `lr`, `momentum`, `weight_decay`, `nesterov`.)
    #[setters(skip)]
    pub sgd: SgdConfig,
    pub schedule: Schedule,
    /// Linear warm-up length in epochs (may be fractional).
    #[setters(rename = "warmup")]
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

/// Everything that defines a training run: a [`Recipe`], the regime and the seed. It
/// serialises flat, the recipe's fields beside `regime` and `seed` (what step descriptions, and
/// so store keys, have always held); a flattened struct cannot refuse unknown fields, so it is
/// the [`Recipe`] a person writes (in a study) that does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
pub struct TrainConfig {
    /// (Its setters are the train config's: `epochs`, `lr`, ...)
    #[serde(flatten)]
    #[setters(skip)]
    pub recipe: Recipe,
    #[serde(default)]
    pub regime: Regime,
    /// Seeds the batch order and augmentation.
    pub seed: u64,
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

impl Recipe {
    /// The run of this recipe with `regime`, seeded with `seed`.
    pub fn resolve(&self, regime: Regime, seed: u64) -> TrainConfig {
        TrainConfig { recipe: self.clone(), regime, seed }
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
    /// Where the recipe's SGD settings live (for their setters).
    pub(super) fn sgd_mut(&mut self) -> &mut SgdConfig {
        &mut self.recipe.sgd
    }

    /// A stable name for this configuration (hash of all of it).
    pub fn hash(&self) -> Result<String> {
        crate::store::key_of("train-config", self)
    }

    pub fn check(&self) -> Result<()> {
        self.recipe.check()?;
        self.regime.check()
    }

    pub(super) fn augmentation(&self, data: &Dataset) -> Augment {
        match self.recipe.augment {
            AugmentChoice::Standard => Augment::standard(data),
            AugmentChoice::None => Augment::none(),
            AugmentChoice::Custom(a) => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_train_config_serialises_flat_as_its_recipe_beside_regime_and_seed() {
        let recipe = Recipe::default().epochs(3).lr(0.05).validations(2);
        let cfg = recipe.resolve(Regime::Standard, 7);
        let v = serde_json::to_value(&cfg).unwrap();
        let mut want = serde_json::to_value(&recipe).unwrap();
        want["regime"] = serde_json::json!("standard");
        want["seed"] = serde_json::json!(7);
        // The store keys of every description hold this flat form: it must not change.
        assert_eq!(v, want);
        let back: TrainConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, cfg);
        // The recipe a person writes still refuses an unknown field.
        let mut bad = serde_json::to_value(&recipe).unwrap();
        bad["regime"] = serde_json::json!("standard");
        assert!(serde_json::from_value::<Recipe>(bad).unwrap_err().to_string().contains("unknown field `regime`"));
    }
}
