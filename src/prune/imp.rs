//! Iterative magnitude pruning with rewinding, as in the double-win paper: the first mask
//! comes from the pre-trained weights; then, round after round, train the masked network on
//! the source data, prune `rate` of the remaining weights by trained magnitude, and rewind
//! every tensor (BN statistics included) to the rewind point. Each round's ticket is written to
//! disk as soon as it exists; a killed run resumes after its last finished round and ends with
//! the same masks as an uninterrupted one.

use super::mask::{Mask, MaskMeta};
use super::strategy::{global_magnitude, layerwise_magnitude};
use crate::data::Splits;
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::train::{train_with, Callbacks, Recipe, Regime, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which weights the pruned network restarts from after each pruning step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Rewind {
    /// The pre-trained weights (the paper's choice).
    #[default]
    Pretrained,
    /// The weights after this many epochs of training the dense pre-trained network with the
    /// re-training config ("late rewinding").
    Epoch(usize),
}

/// How each round prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Over all prunable tensors together (the paper's).
    #[default]
    GlobalMagnitude,
    LayerwiseMagnitude,
}

/// IMP settings. Defaults: 20% of the remaining weights per round, rewinding to the
/// pre-trained weights, global magnitude over every convolution weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpConfig {
    pub rounds: usize,
    pub rate: f64,
    /// Training between pruning steps; its regime decides the mask family (standard -> m^ST,
    /// adversarial -> m^AT).
    pub retrain: TrainConfig,
    pub rewind: Rewind,
    pub strategy: Strategy,
    /// Tensors to prune (default: every convolution weight, `Network::prunable_names`).
    pub prunable: Option<Vec<String>>,
}

impl Default for ImpConfig {
    fn default() -> Self {
        ImpConfig {
            rounds: 6,
            rate: 0.2,
            retrain: TrainConfig::default(),
            rewind: Rewind::Pretrained,
            strategy: Strategy::GlobalMagnitude,
            prunable: None,
        }
    }
}

impl ImpConfig {
    pub fn rounds(mut self, n: usize) -> Self {
        self.rounds = n;
        self
    }
    pub fn rate(mut self, r: f64) -> Self {
        self.rate = r;
        self
    }
    pub fn retrain(mut self, cfg: TrainConfig) -> Self {
        self.retrain = cfg;
        self
    }
    pub fn rewind(mut self, r: Rewind) -> Self {
        self.rewind = r;
        self
    }
    /// "ST" for standard re-training, "AT" for adversarial (PGD or FGSM-RS).
    pub fn family(&self) -> &'static str {
        match self.retrain.regime {
            Regime::Standard => "ST",
            _ => "AT",
        }
    }
    /// Sparsity after `round` rounds: 1 - (1 - rate)^round.
    pub fn sparsity_after(&self, round: usize) -> f64 {
        sparsity_after(self.rate, round)
    }
    /// Checks every value before any work starts.
    pub fn check(&self) -> Result<()> {
        if self.rounds == 0 || !(self.rate > 0.0 && self.rate < 1.0) {
            return Err(Error::invalid(
                format!("IMP with {} rounds at rate {}", self.rounds, self.rate),
                "use rounds >= 1 and 0 < rate < 1 (the paper: 0.2)",
            ));
        }
        if let Rewind::Epoch(0) = self.rewind {
            return Err(Error::invalid("rewind to epoch 0", "use Rewind::Pretrained for the pre-trained weights"));
        }
        self.retrain.check()
    }
}

/// Sparsity after `round` rounds at `rate` per round: 1 - (1 - rate)^round.
fn sparsity_after(rate: f64, round: usize) -> f64 {
    1.0 - (1.0 - rate).powi(round as i32)
}

/// IMP as a study sets it: everything but the rounds (the study derives them from the tickets
/// it transfers), the re-training regime (its IMP family) and the seed (its source seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpRecipe {
    pub rate: f64,
    /// Training between pruning steps.
    pub retrain: Recipe,
    pub rewind: Rewind,
    pub strategy: Strategy,
    /// Tensors to prune (default: every convolution weight, `Network::prunable_names`).
    pub prunable: Option<Vec<String>>,
}

impl Default for ImpRecipe {
    fn default() -> Self {
        let d = ImpConfig::default();
        ImpRecipe { rate: d.rate, retrain: d.retrain.recipe(), rewind: d.rewind, strategy: d.strategy, prunable: d.prunable }
    }
}

impl ImpRecipe {
    pub fn rate(mut self, r: f64) -> Self {
        self.rate = r;
        self
    }
    pub fn retrain(mut self, recipe: Recipe) -> Self {
        self.retrain = recipe;
        self
    }
    pub fn rewind(mut self, r: Rewind) -> Self {
        self.rewind = r;
        self
    }
    /// IMP for `rounds` rounds, re-training with `regime` (its family) and `seed`.
    pub fn resolve(&self, rounds: usize, regime: Regime, seed: u64) -> ImpConfig {
        let r = self.clone();
        ImpConfig {
            rounds,
            rate: r.rate,
            retrain: r.retrain.resolve(regime, seed),
            rewind: r.rewind,
            strategy: r.strategy,
            prunable: r.prunable,
        }
    }
    /// Sparsity after `round` rounds: 1 - (1 - rate)^round.
    pub fn sparsity_after(&self, round: usize) -> f64 {
        sparsity_after(self.rate, round)
    }
    pub fn check(&self) -> Result<()> {
        self.resolve(1, Regime::Standard, 0).check()
    }
}

/// A lottery ticket: a mask for the pre-trained weights.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub round: usize,
    pub mask: Mask,
    pub path: PathBuf,
}

impl Ticket {
    pub fn sparsity(&self) -> f64 {
        self.mask.sparsity()
    }
}

/// The tickets of an IMP run.
#[derive(Debug, Clone)]
pub struct Tickets(pub Vec<Ticket>);

impl Tickets {
    /// The ticket of a round (1-based).
    pub fn round(&self, round: usize) -> Option<&Ticket> {
        self.0.iter().find(|t| t.round == round)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn table(&self) -> Table {
        let mut t = Table::new("IMP tickets", &["round", "family", "sparsity %", "kept weights"]);
        for k in &self.0 {
            t.push(vec![
                k.round.to_string(),
                k.mask.meta.regime.clone(),
                format!("{:.2}", 100.0 * k.sparsity()),
                k.mask.kept().to_string(),
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.table().to_html());
    }
}

/// Where [`imp`] writes the mask of `round` in its folder.
pub fn round_path(dir: &Path, round: usize) -> PathBuf {
    dir.join(format!("round-{round:02}.mask.safetensors"))
}

fn prune_step(net: &Network, mask: &Mask, cfg: &ImpConfig) -> Result<Mask> {
    match cfg.strategy {
        Strategy::GlobalMagnitude => global_magnitude(net, mask, cfg.rate),
        Strategy::LayerwiseMagnitude => layerwise_magnitude(net, mask, cfg.rate),
    }
}

/// What an IMP folder was made from (`imp.json`): a run resumed in the folder must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ImpRun {
    config: ImpConfig,
    weights_hash: String,
    data_hash: String,
}

impl ImpRun {
    /// Whether a run of `other` may continue this one (more rounds are fine).
    fn continues(&self, other: &ImpRun) -> bool {
        let same = |c: &ImpConfig| ImpConfig { rounds: 0, ..c.clone() };
        same(&self.config) == same(&other.config) && self.weights_hash == other.weights_hash && self.data_hash == other.data_hash
    }
}

/// Runs (or resumes) IMP from `pretrained` on the `source` splits, writing every round's ticket
/// to `dir` (`round-NN.mask.safetensors` + JSON) and returning all of them in order. A folder
/// holding a run of other settings, weights or data is refused (more rounds are fine).
pub fn imp(pretrained: &Network, source: &Splits, cfg: &ImpConfig, dir: &Path) -> Result<Tickets> {
    cfg.check()?;
    let weights_hash = pretrained.content_hash()?;
    let run = ImpRun { config: cfg.clone(), weights_hash: weights_hash.clone(), data_hash: source.train.content_hash()? };
    let record = dir.join("imp.json");
    if record.exists() {
        let before: ImpRun = crate::fsio::read_json(&record)?;
        if !before.continues(&run) {
            return Err(Error::invalid(
                format!(
                    "{} holds an IMP run of other settings, pre-trained weights or data ({})",
                    dir.display(),
                    diff_fields(&before, &run).join(", ")
                ),
                "use a new --out folder for these settings, or delete the old one",
            ));
        }
    } else if round_path(dir, 1).exists() {
        return Err(Error::invalid(
            format!("{} holds tickets but no imp.json saying how they were made", dir.display()),
            "use a new --out folder, or delete the old one",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    crate::fsio::write_json(&record, &run)?;
    let names = cfg.prunable.clone().unwrap_or_else(|| pretrained.prunable_names());
    let meta = |round| MaskMeta { round, regime: format!("IMP {}", cfg.family()), weights_hash: weights_hash.clone() };
    let rewind_point = rewind_weights(pretrained, source, cfg, dir)?;

    let mut tickets: Vec<Ticket> = Vec::new();
    for round in 1..=cfg.rounds {
        let path = round_path(dir, round);
        if path.exists() {
            match Mask::load(&path) {
                Ok(mask) if mask.meta.weights_hash != weights_hash => {
                    return Err(Error::invalid(
                        format!("{} was made from other pre-trained weights", path.display()),
                        "use a separate folder per pre-trained network, or delete the old tickets",
                    ));
                }
                Ok(mask) => {
                    tickets.push(Ticket { round, mask, path });
                    continue;
                }
                // A damaged or unreadable round is never resumed from: it and every round after
                // it (made from it) are computed again.
                Err(e) => {
                    crate::progress::warn(&format!("{e}: computing round {round} and the rounds after it again"));
                    remove_rounds_from(dir, round)?;
                }
            }
        }
        let mask = match tickets.last() {
            // Round 1: prune the pre-trained weights themselves, before any training.
            None => prune_step(pretrained, &Mask::dense(pretrained, &names)?, cfg)?,
            Some(prev) => {
                let mut net = pretrained.try_clone()?;
                net.restore(&rewind_point)?;
                prev.mask.attach(&mut net)?;
                crate::progress::note(&format!(
                    "IMP round {round}/{}: re-training at {:.2}% sparsity ({})",
                    cfg.rounds,
                    100.0 * prev.sparsity(),
                    cfg.retrain.regime.name()
                ));
                let resume = dir.join(format!("round-{round:02}-train"));
                train_with(&mut net, source, &cfg.retrain, &mut Callbacks::progress(&format!("IMP r{round}")), Some(&resume))?;
                let next = prune_step(&net, &prev.mask, cfg)?;
                let _ = std::fs::remove_dir_all(&resume);
                next
            }
        };
        let mut mask = mask;
        mask.meta = meta(round);
        mask.save(&path)?;
        crate::progress::note(&format!("IMP round {round}: ticket at {:.2}% sparsity -> {}", 100.0 * mask.sparsity(), path.display()));
        tickets.push(Ticket { round, mask, path });
    }
    Ok(Tickets(tickets))
}

/// Deletes the ticket of `round` and of every later round in `dir` (with their sidecars).
fn remove_rounds_from(dir: &Path, round: usize) -> Result<()> {
    let mut r = round;
    while round_path(dir, r).exists() {
        let p = round_path(dir, r);
        std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        let side = super::mask::sidecar(&p);
        if side.exists() {
            std::fs::remove_file(&side).map_err(|e| Error::io(&side, e))?;
        }
        r += 1;
    }
    Ok(())
}

/// The top-level fields in which two JSON values differ (for error messages).
fn diff_fields<T: Serialize>(a: &T, b: &T) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a).unwrap_or_default(), serde_json::to_value(b).unwrap_or_default());
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, v) in a {
            match (v.as_object(), b.get(k).and_then(|w| w.as_object())) {
                (Some(x), Some(y)) => out.extend(x.iter().filter(|(kk, vv)| y.get(*kk) != Some(*vv)).map(|(kk, _)| format!("{k}.{kk}"))),
                _ if b.get(k) != Some(v) => out.push(k.clone()),
                _ => {}
            }
        }
    }
    out.retain(|f| f != "config.rounds");
    out
}

/// The weights every round restarts from.
fn rewind_weights(pretrained: &Network, source: &Splits, cfg: &ImpConfig, dir: &Path) -> Result<Vec<(String, tch::Tensor)>> {
    match cfg.rewind {
        Rewind::Pretrained => pretrained.snapshot(),
        Rewind::Epoch(k) => {
            let path = dir.join(format!("rewind-epoch-{k}.safetensors"));
            if path.exists() {
                return Network::load(&path, pretrained.device())?.snapshot();
            }
            let mut net = pretrained.try_clone()?;
            let early = TrainConfig { epochs: k, select_best: false, ..cfg.retrain.clone() };
            train_with(&mut net, source, &early, &mut Callbacks::progress("rewind point"), None)?;
            net.save(&path)?;
            net.snapshot()
        }
    }
}
