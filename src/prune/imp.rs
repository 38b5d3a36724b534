//! Iterative magnitude pruning with rewinding, as in the double-win paper: the first mask
//! comes from the pre-trained weights; then, round after round, train the masked network on
//! the source data, prune `rate` of the remaining weights by trained magnitude, and rewind
//! every tensor (BN statistics included) to the rewind point. Each round's ticket is written to
//! disk as soon as it exists; a killed run resumes after its last finished round and ends with
//! the same masks as an uninterrupted one. Every re-training records how far it brought the
//! masked network back on the source validation split ([`Recovery`]): IMP's premise is that each
//! round's network is re-trained until it works again, and a mask cut from a network that did not
//! recover is little more than one-shot pruning.

use super::mask::{Mask, MaskMeta};
use super::strategy::{global_magnitude, layerwise_magnitude};
use crate::data::Splits;
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::train::{evaluate, train_with, Callbacks, Recipe, Regime, TrainConfig};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate = false)]
pub struct ImpConfig {
    #[setters(generate)]
    pub rounds: usize,
    #[setters(generate)]
    pub rate: f64,
    /// Training between pruning steps; its regime decides the mask family (standard -> m^ST,
    /// adversarial -> m^AT).
    #[setters(generate)]
    pub retrain: TrainConfig,
    #[setters(generate)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate = false)]
pub struct ImpRecipe {
    #[setters(generate)]
    pub rate: f64,
    /// Training between pruning steps.
    #[setters(generate)]
    pub retrain: Recipe,
    #[setters(generate)]
    pub rewind: Rewind,
    pub strategy: Strategy,
    /// Tensors to prune (default: every convolution weight, `Network::prunable_names`).
    pub prunable: Option<Vec<String>>,
}

impl Default for ImpRecipe {
    fn default() -> Self {
        let d = ImpConfig::default();
        ImpRecipe { rate: d.rate, retrain: d.retrain.recipe, rewind: d.rewind, strategy: d.strategy, prunable: d.prunable }
    }
}

impl ImpRecipe {
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

/// How far a round's re-training brought the masked network back: its accuracy on the source
/// validation split next to the dense network's, measured the same way. SA always; RA (PGD of
/// the re-training attack, network in eval mode) when the re-training is adversarial (m^AT),
/// where the mask must keep robustness as well.
///
/// The reference is the dense network re-trained with the same recipe: what the re-training
/// reaches without pruning, so the gap is what pruning costs. Against the pre-trained network
/// itself (kept beside it) a change of regime would count as a failure to recover: adversarial
/// re-training of an STD source lowers SA by many points at any sparsity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// The round whose mask was cut from this re-trained network.
    pub round: usize,
    /// Sparsity of the network re-trained (the previous round's ticket).
    pub sparsity: f64,
    pub val_sa: f64,
    pub val_ra: Option<f64>,
    /// The dense network re-trained with the same recipe.
    pub dense_sa: f64,
    pub dense_ra: Option<f64>,
    /// The dense pre-trained network, not re-trained.
    pub pretrained_sa: f64,
    pub pretrained_ra: Option<f64>,
}

impl Recovery {
    /// Re-trained minus the dense network re-trained alike, in points: (SA, RA when measured).
    pub fn gap_points(&self) -> (f64, Option<f64>) {
        (100.0 * (self.val_sa - self.dense_sa), self.val_ra.zip(self.dense_ra).map(|(r, d)| 100.0 * (r - d)))
    }
    /// Re-trained minus the pre-trained network, in points: (SA, RA when measured).
    pub fn vs_pretrained_points(&self) -> (f64, Option<f64>) {
        (100.0 * (self.val_sa - self.pretrained_sa), self.val_ra.zip(self.pretrained_ra).map(|(r, d)| 100.0 * (r - d)))
    }
    /// Whether every measured number is back within `points` of the dense network's.
    pub fn within(&self, points: f64) -> bool {
        let (sa, ra) = self.gap_points();
        sa >= -points && ra.is_none_or(|r| r >= -points)
    }
}

/// How close to the dense network's source validation accuracy (points) a re-training must come
/// back for its mask to count as cut from a network that works again.
pub const RECOVERED_POINTS: f64 = 1.0;

/// How far the re-trainings `rec` came back, in one sentence: the largest shortfall against the
/// dense network on the source validation split, and whether every one is within `points`
/// (`None` without re-trainings).
pub fn recovery_sentence(rec: &[Recovery], points: f64) -> Option<String> {
    if rec.is_empty() {
        return None;
    }
    let sa = rec.iter().map(|r| r.gap_points().0).fold(f64::INFINITY, f64::min);
    let ra = rec.iter().filter_map(|r| r.gap_points().1).reduce(f64::min);
    let short = rec.iter().filter(|r| !r.within(points)).count();
    Some(format!(
        "{} re-training(s) come back to {sa:+.1} points of the source validation SA of the dense network re-trained alike at worst{}; {}.",
        rec.len(),
        ra.map(|x| format!(" and to {x:+.1} points of its RA (adversarial re-training)")).unwrap_or_default(),
        if short == 0 {
            format!("every one is within {points:.0} point, so each mask is cut from a network that works again")
        } else {
            format!(
                "{short} of them {} short by more than {points:.0} point: {} cut from networks that did not recover, closer to \
                 one-shot pruning than to the paper's IMP",
                if short == 1 { "falls" } else { "fall" },
                if short == 1 { "its mask is" } else { "their masks are" }
            )
        }
    ))
}

/// A lottery ticket: a mask for the pre-trained weights.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub round: usize,
    pub mask: Mask,
    pub path: PathBuf,
    /// The re-training this mask was cut from (`None` for round 1, cut from the pre-trained
    /// weights themselves, and for runs recorded before re-trainings were measured).
    pub retrained: Option<Recovery>,
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
    /// The ticket of the last round (the sparsest).
    pub fn last(&self) -> Result<&Ticket> {
        self.0.iter().max_by_key(|t| t.round).ok_or_else(|| Error::invalid("an IMP run without rounds", "run IMP with at least one round"))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The re-trainings of the run, round by round.
    pub fn recovery(&self) -> Vec<Recovery> {
        self.0.iter().filter_map(|t| t.retrained).collect()
    }
    /// How far the run's re-trainings came back to the dense network ([`recovery_sentence`]
    /// within [`RECOVERED_POINTS`]).
    pub fn recovery_sentence(&self) -> Option<String> {
        recovery_sentence(&self.recovery(), RECOVERED_POINTS)
    }
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            "IMP tickets; each cut from the previous ticket re-trained on the source (validation accuracy, re-trained vs the dense \
             network re-trained alike)",
            &["round", "family", "sparsity %", "kept weights", "re-trained at %", "val SA % (dense alike)", "val RA % (dense alike)"],
        );
        for k in &self.0 {
            let (at, sa, ra) = match k.retrained {
                Some(r) => (
                    format!("{:.2}", 100.0 * r.sparsity),
                    format!("{:.1} ({:.1})", 100.0 * r.val_sa, 100.0 * r.dense_sa),
                    r.val_ra.zip(r.dense_ra).map(|(v, d)| format!("{:.1} ({:.1})", 100.0 * v, 100.0 * d)).unwrap_or_else(|| "-".into()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            t.push(vec![
                k.round.to_string(),
                k.mask.meta.regime.clone(),
                format!("{:.2}", 100.0 * k.sparsity()),
                k.mask.kept().to_string(),
                at,
                sa,
                ra,
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

/// Where [`imp`] records the re-training that `round`'s mask was cut from.
fn recovery_path(dir: &Path, round: usize) -> PathBuf {
    dir.join(format!("round-{round:02}.retrained.json"))
}

/// The dense network's validation accuracy, re-trained with the run's recipe and as pre-trained
/// (`dense-retrained.json` in the run's folder).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct DenseReference {
    sa: f64,
    ra: Option<f64>,
    pretrained_sa: f64,
    pretrained_ra: Option<f64>,
}

/// The [`DenseReference`] of a run: read from its folder, or computed (the dense pre-trained
/// network re-trained like every round, resumable) and recorded there.
fn dense_reference(pretrained: &Network, source: &Splits, cfg: &ImpConfig, dir: &Path) -> Result<DenseReference> {
    let path = dir.join("dense-retrained.json");
    if let Ok(d) = crate::fsio::read_json::<DenseReference>(&path) {
        return Ok(d);
    }
    let (pretrained_sa, pretrained_ra) = validation_accuracy(pretrained, source, cfg)?;
    let mut net = pretrained.try_clone()?;
    crate::progress::note(&format!(
        "IMP: re-training the dense network alike, the reference each round must come back to ({})",
        cfg.retrain.regime.name()
    ));
    let resume = dir.join("dense-train");
    train_with(&mut net, source, &cfg.retrain, &mut Callbacks::progress("IMP dense"), Some(&resume))?;
    let (sa, ra) = validation_accuracy(&net, source, cfg)?;
    let d = DenseReference { sa, ra, pretrained_sa, pretrained_ra };
    crate::fsio::write_json(&path, &d)?;
    let _ = std::fs::remove_dir_all(&resume);
    Ok(d)
}

/// SA and (for adversarial re-training) RA of `net` on the source validation split, as the
/// re-training of `cfg` would be judged: RA under its PGD, network in eval mode.
fn validation_accuracy(net: &Network, source: &Splits, cfg: &ImpConfig) -> Result<(f64, Option<f64>)> {
    let batch = cfg.retrain.recipe.eval_batch_size;
    let ra = match &cfg.retrain.regime {
        Regime::Standard => None,
        Regime::Adversarial(pgd) => {
            Some(crate::attack::robust_evaluate(net, &source.val, &[pgd.clone().train_mode(false).into()], batch)?.ra)
        }
        Regime::Fast { attack, .. } => {
            // FGSM-RS re-training is judged by the PGD of the same radius.
            let pgd = crate::attack::Pgd::spanning(crate::attack::Norm::Linf, attack.eps, 10);
            Some(crate::attack::robust_evaluate(net, &source.val, &[pgd.into()], batch)?.ra)
        }
    };
    Ok((evaluate(net, &source.val, batch)?.accuracy, ra))
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
    open_run_folder(dir, &run)?;
    let names = cfg.prunable.clone().unwrap_or_else(|| pretrained.prunable_names());
    let meta = |round| MaskMeta { round, regime: format!("IMP {}", cfg.family()), weights_hash: weights_hash.clone() };
    let retraining = Retraining {
        pretrained,
        source,
        cfg,
        dir,
        rewind_point: rewind_weights(pretrained, source, cfg, dir)?,
        // What every re-training should come back to: computed (or read back) before the
        // rounds, so that a run resumed after its first rounds still records it.
        dense: if cfg.rounds >= 2 { Some(dense_reference(pretrained, source, cfg, dir)?) } else { None },
    };

    let mut tickets: Vec<Ticket> = Vec::new();
    for round in 1..=cfg.rounds {
        let path = round_path(dir, round);
        if let Some(done) = finished_round(dir, round, &path, &weights_hash)? {
            tickets.push(done);
            continue;
        }
        let (mut mask, retrained) = match tickets.last() {
            // Round 1: prune the pre-trained weights themselves, before any training.
            None => (prune_step(pretrained, &Mask::dense(pretrained, &names)?, cfg)?, None),
            Some(prev) => {
                let (next, r) = retraining.retrain_and_prune(prev, round)?;
                (next, Some(r))
            }
        };
        mask.meta = meta(round);
        mask.save(&path)?;
        let back = match retrained {
            Some(r) => {
                let (sa, ra) = r.gap_points();
                format!("; re-trained val SA {:+.1} points vs dense{}", sa, ra.map(|x| format!(", RA {x:+.1}")).unwrap_or_default())
            }
            None => String::new(),
        };
        crate::progress::note(&format!(
            "IMP round {round}: ticket at {:.2}% sparsity{back} -> {}",
            100.0 * mask.sparsity(),
            path.display()
        ));
        tickets.push(Ticket { round, mask, path, retrained });
    }
    Ok(Tickets(tickets))
}

/// Records in `dir` what the IMP run `run` is made from (`imp.json`), refusing a folder that
/// holds a run it cannot continue, or tickets without a record.
fn open_run_folder(dir: &Path, run: &ImpRun) -> Result<()> {
    let record = dir.join("imp.json");
    if record.exists() {
        let before: ImpRun = crate::fsio::read_json(&record)?;
        if !before.continues(run) {
            return Err(Error::invalid(
                format!(
                    "{} holds an IMP run of other settings, pre-trained weights or data ({})",
                    dir.display(),
                    diff_fields(&before, run).join(", ")
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
    crate::fsio::write_json(&record, run)
}

/// The ticket of `round` saved at `path` by an earlier run, if any: one of other pre-trained
/// weights is an error; a damaged or unreadable one is never resumed from (it and every round
/// after it, made from it, are deleted to be computed again).
fn finished_round(dir: &Path, round: usize, path: &Path, weights_hash: &str) -> Result<Option<Ticket>> {
    if !path.exists() {
        return Ok(None);
    }
    match Mask::load(path) {
        Ok(mask) if mask.meta.weights_hash != weights_hash => Err(Error::invalid(
            format!("{} was made from other pre-trained weights", path.display()),
            "use a separate folder per pre-trained network, or delete the old tickets",
        )),
        Ok(mask) => {
            let retrained = read_recovery(dir, round);
            Ok(Some(Ticket { round, mask, path: path.to_path_buf(), retrained }))
        }
        Err(e) => {
            crate::progress::warn(&format!("{e}: computing round {round} and the rounds after it again"));
            remove_rounds_from(dir, round)?;
            Ok(None)
        }
    }
}

/// What the re-training of every IMP round after the first starts from and is compared with.
struct Retraining<'a> {
    pretrained: &'a Network,
    source: &'a Splits,
    cfg: &'a ImpConfig,
    dir: &'a Path,
    /// The weights each round rewinds to before re-training.
    rewind_point: Vec<(String, tch::Tensor)>,
    /// The dense reference (runs of at least two rounds).
    dense: Option<DenseReference>,
}

impl Retraining<'_> {
    /// Round `round`: the rewound weights masked by the previous round's ticket, re-trained
    /// (resumable), measured against the dense reference (recorded), then pruned further.
    fn retrain_and_prune(&self, prev: &Ticket, round: usize) -> Result<(Mask, Recovery)> {
        let (cfg, dir) = (self.cfg, self.dir);
        let mut net = self.pretrained.try_clone()?;
        net.restore(&self.rewind_point)?;
        prev.mask.attach(&mut net)?;
        crate::progress::note(&format!(
            "IMP round {round}/{}: re-training at {:.2}% sparsity ({})",
            cfg.rounds,
            100.0 * prev.sparsity(),
            cfg.retrain.regime.name()
        ));
        let resume = dir.join(format!("round-{round:02}-train"));
        train_with(&mut net, self.source, &cfg.retrain, &mut Callbacks::progress(&format!("IMP r{round}")), Some(&resume))?;
        let d = self.dense.ok_or_else(|| Error::invalid("IMP re-trained without its dense reference", "report this as a bug"))?;
        let (val_sa, val_ra) = validation_accuracy(&net, self.source, cfg)?;
        let r = Recovery {
            round,
            sparsity: prev.sparsity(),
            val_sa,
            val_ra,
            dense_sa: d.sa,
            dense_ra: d.ra,
            pretrained_sa: d.pretrained_sa,
            pretrained_ra: d.pretrained_ra,
        };
        // Recorded before the mask: a mask on disk always has its re-training beside it.
        crate::fsio::write_json(&recovery_path(dir, round), &r)?;
        let next = prune_step(&net, &prev.mask, cfg)?;
        let _ = std::fs::remove_dir_all(&resume);
        Ok((next, r))
    }
}

/// The recorded re-training of `round` (`None` for round 1 or a run recorded before
/// re-trainings were measured).
pub fn read_recovery(dir: &Path, round: usize) -> Option<Recovery> {
    let p = recovery_path(dir, round);
    p.exists().then(|| crate::fsio::read_json(&p).ok()).flatten()
}

/// Deletes the ticket of `round` and of every later round in `dir` (with their sidecars).
fn remove_rounds_from(dir: &Path, round: usize) -> Result<()> {
    let mut r = round;
    while round_path(dir, r).exists() {
        let p = round_path(dir, r);
        std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        for side in [super::mask::sidecar(&p), recovery_path(dir, r)] {
            if side.exists() {
                std::fs::remove_file(&side).map_err(|e| Error::io(&side, e))?;
            }
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
            let early = cfg.retrain.clone().epochs(k).select_best(false);
            train_with(&mut net, source, &early, &mut Callbacks::progress("rewind point"), None)?;
            net.save(&path)?;
            net.snapshot()
        }
    }
}
