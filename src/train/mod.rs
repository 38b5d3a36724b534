//! Training: one loop for every regime, SGD with learning-rate schedules, model selection on
//! the validation split, a [`History`] of per-epoch metrics, callbacks, evaluation, and resume
//! from the last finished epoch.

mod callback;
mod history;
mod recipe;
mod regime;
mod roles;
mod schedule;
mod sgd;

pub use callback::{BatchInfo, Callback, Callbacks, EpochCheckpoints, Progress};
pub use history::{EpochRecord, Evaluation, History};
pub use recipe::{Recipe, TrainConfig};
pub use regime::{OverfitGuard, Regime, RegimeKind};
pub use roles::{FineTuning, ImpFamily, Pretraining};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

use crate::attack::Attack;
use crate::data::{Augment, Dataset, Splits};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Reduction, Tensor};

/// Examples per batch of an evaluation (clean or under attack): a recipe's default
/// `eval_batch_size`, and the batch size of the evaluations that have no recipe to take it from.
pub const EVAL_BATCH_SIZE: usize = 500;

/// Which augmentation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentChoice {
    /// [`Augment::standard`] for the dataset (crop with padding, flips where they make sense).
    #[default]
    Standard,
    None,
    Custom(Augment),
}

/// Whether epoch `epoch` (1-based) of an `epochs`-epoch run is validated when a run validates at
/// most `validations` times: every epoch (0, or at least `epochs`), else `validations` evenly
/// spaced epochs ending at the last.
pub fn validates(epoch: usize, epochs: usize, validations: usize) -> bool {
    let v = validations;
    v == 0 || v >= epochs || (1..=v).any(|k| (k * epochs).div_ceil(v) == epoch)
}

/// Cross-entropy loss and number of correct predictions of a batch.
fn loss_and_correct(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let loss = logits.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0)?;
    let correct = logits.f_argmax(-1, false)?.f_eq_tensor(labels)?.f_sum(Kind::Int64)?;
    Ok((loss, correct))
}

/// Loss and accuracy of `net` on `data` (eval mode, no gradients).
pub fn evaluate(net: &Network, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    net.check_fits(data)?;
    let _guard = tch::no_grad_guard();
    let device = net.device();
    let mut loss_sum = Tensor::f_zeros([], (Kind::Float, device))?;
    let mut correct = Tensor::f_zeros([], (Kind::Int64, device))?;
    for batch in data.batches(batch_size, None, Augment::none(), device)? {
        let b = batch?;
        let (loss, c) = loss_and_correct(&net.forward(&b.images, false)?, &b.labels)?;
        loss_sum = loss_sum.f_add(&loss.f_mul_scalar(b.labels.size()[0] as f64)?)?;
        correct = correct.f_add(&c)?;
    }
    let n = data.len().max(1) as f64;
    Ok(Evaluation { loss: loss_sum.f_double_value(&[])? / n, accuracy: correct.f_int64_value(&[])? as f64 / n, examples: data.len() })
}

/// One SGD step of `regime` on a batch: the regime's attack (seeded with `attack_seed`, network
/// in the attack's mode), then forward in train mode, backward and the update with rate `lr`.
/// Returns the batch's mean loss (detached) and its number of correct predictions.
pub fn train_step(
    net: &Network,
    sgd: &mut Sgd,
    regime: &Regime,
    images: &Tensor,
    labels: &Tensor,
    attack_seed: u64,
    lr: f64,
) -> Result<(Tensor, Tensor)> {
    let inputs = match regime {
        Regime::Standard => images.shallow_clone(),
        Regime::Fast { attack, .. } => attack.clone().seed(attack_seed).perturb(net, images, labels)?,
        Regime::Adversarial(pgd) => pgd.clone().seed(attack_seed).perturb(net, images, labels)?,
    };
    let logits = net.forward(&inputs, true)?;
    let (loss, c) = loss_and_correct(&logits, labels)?;
    sgd.backward_step(&loss, lr)?;
    Ok((loss.f_detach()?, c))
}

/// Trains with progress output. See [`train_with`].
pub fn train(net: &mut Network, data: &Splits, cfg: &TrainConfig) -> Result<History> {
    train_with(net, data, cfg, &mut Callbacks::progress("train"), None)
}

/// Files of a resumable run.
struct ResumeFiles {
    dir: PathBuf,
}

impl ResumeFiles {
    fn state(&self) -> PathBuf {
        self.dir.join("state.safetensors")
    }
    fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    fn history(&self) -> PathBuf {
        self.dir.join("history.json")
    }
}

/// The resume record, written after the state it describes: the SHA-256 of `state.safetensors`
/// (and of `best.safetensors`, when the run has a best epoch) as they were written, so that a
/// damaged state, or one newer than this record (a copy taken mid-run), is never resumed from.
#[derive(Serialize, Deserialize)]
struct SavedHistory {
    config_hash: String,
    history: History,
    #[serde(default)]
    state_sha256: Option<String>,
    #[serde(default)]
    best_sha256: Option<String>,
}

/// Trains `net` on `data.train`, evaluating on `data.val` after every epoch.
///
/// With `resume_dir`, the run saves its state (weights, momentum, history, best weights) after
/// every epoch and, when started again with the same config, continues after the last finished
/// epoch, ending with the same weights as an uninterrupted run.
pub fn train_with(
    net: &mut Network,
    data: &Splits,
    cfg: &TrainConfig,
    callbacks: &mut Callbacks,
    resume_dir: Option<&Path>,
) -> Result<History> {
    check_inputs(net, data, cfg)?;
    let device = net.device();
    let train_set = data.train.to_device(device)?;
    let val_set = data.val.to_device(device)?;
    let mut sgd = Sgd::new(net, cfg.recipe.sgd.clone())?;
    let mut history = History::default();
    let files = resume_dir.map(|d| ResumeFiles { dir: d.to_path_buf() });
    let mut best = BestWeights { best: None, file: files.as_ref().map(ResumeFiles::best) };
    if let Some(f) = &files {
        resume(f, cfg, net, &mut sgd, &mut history, &mut best.best)?;
    }
    let mut guard = Guard::of(&cfg.regime, &train_set)?;
    for epoch in history.epochs.len() + 1..=cfg.recipe.epochs {
        let start = Instant::now();
        let trained = train_epoch(net, &mut sgd, &train_set, cfg, epoch, callbacks)?;
        let val = if validates(epoch, cfg.recipe.epochs, cfg.recipe.validations) {
            Some(evaluate(net, &val_set, cfg.recipe.eval_batch_size)?)
        } else {
            None
        };
        let robust_check = match &guard {
            Some(g) => Some(g.robust_check(net, cfg.recipe.eval_batch_size)?),
            None => None,
        };
        let record = EpochRecord {
            epoch,
            lr: trained.lr,
            train_loss: trained.loss,
            train_accuracy: trained.accuracy(train_set.len())?,
            val,
            robust_check,
            seconds: start.elapsed().as_secs_f64(),
        };
        if let Some(stop) = guard.as_mut().map(|g| g.after_epoch(&history, &record, net)).transpose()?.flatten() {
            history.epochs.push(record.clone());
            history.stopped_early = Some(stop);
            callbacks.epoch_end(&record, net)?;
            break;
        }
        best.on_epoch_end(&record, net)?;
        history.epochs.push(record.clone());
        if let Some(f) = &files {
            save_state(f, cfg, net, &sgd, &history)?;
        }
        callbacks.epoch_end(&record, net)?;
        // A resumable run stops at an epoch it saved; the same call continues after it.
        if files.is_some() && epoch < cfg.recipe.epochs && crate::runtime::stop_requested() {
            return Err(Error::Stopped);
        }
    }
    history.selected_epoch = best.select(cfg, &history, net)?;
    Ok(history)
}

/// The checks of [`train_with`] before any work: the config, and data the network fits.
fn check_inputs(net: &Network, data: &Splits, cfg: &TrainConfig) -> Result<()> {
    cfg.check()?;
    net.check_fits(&data.train)?;
    net.check_fits(&data.val)?;
    if data.train.is_empty() {
        return Err(Error::invalid("the training split is empty", "use a larger data fraction"));
    }
    Ok(())
}

/// What one epoch of SGD left: the last learning rate, the mean loss and the correct count.
struct EpochTrained {
    lr: f64,
    loss: f64,
    correct: Tensor,
}

impl EpochTrained {
    /// Training accuracy over the `n` examples of the epoch.
    fn accuracy(&self, n: usize) -> Result<f64> {
        Ok(self.correct.f_int64_value(&[])? as f64 / n as f64)
    }
}

/// One epoch of SGD on `train_set` (1-based `epoch`), batch order and attack starts seeded by
/// the run's seed and the epoch: a diverged (non-finite) loss is an error.
fn train_epoch(
    net: &Network,
    sgd: &mut Sgd,
    train_set: &Dataset,
    cfg: &TrainConfig,
    epoch: usize,
    callbacks: &mut Callbacks,
) -> Result<EpochTrained> {
    let device = net.device();
    let augment = cfg.augmentation(train_set);
    let batches_per_epoch = train_set.len().div_ceil(cfg.recipe.batch_size);
    let seed = Rng::derive(cfg.seed, &format!("epoch{epoch}")).next_u64();
    let mut loss_sum = Tensor::f_zeros([], (Kind::Float, device))?;
    let mut correct = Tensor::f_zeros([], (Kind::Int64, device))?;
    let mut lr = cfg.recipe.sgd.lr;
    for (i, batch) in train_set.batches(cfg.recipe.batch_size, Some(seed), augment, device)?.enumerate() {
        let b = batch?;
        let t = (epoch - 1) as f64 + i as f64 / batches_per_epoch as f64;
        lr = cfg.recipe.schedule.lr(cfg.recipe.sgd.lr, t, cfg.recipe.epochs, cfg.recipe.warmup_epochs);
        // Each batch's attack gets its own seed, so a resumed run draws the same starts.
        let attack_seed = Rng::derive(seed, &format!("attack{i}")).next_u64();
        let (loss, c) = train_step(net, sgd, &cfg.regime, &b.images, &b.labels, attack_seed, lr)?;
        let _guard = tch::no_grad_guard();
        loss_sum = loss_sum.f_add(&loss.f_mul_scalar(b.labels.size()[0] as f64)?)?;
        correct = correct.f_add(&c)?;
        callbacks.batch_end(&BatchInfo { epoch, epochs: cfg.recipe.epochs, batch: i + 1, batches: batches_per_epoch })?;
    }
    let loss = loss_sum.f_double_value(&[])? / train_set.len() as f64;
    if !loss.is_finite() {
        return Err(Error::invalid(format!("training diverged at epoch {epoch} (loss {loss})"), "lower the learning rate"));
    }
    Ok(EpochTrained { lr, loss, correct })
}

/// The catastrophic-overfitting guard of a fast run ([`OverfitGuard`]): PGD accuracy on fixed
/// training examples after every epoch, a warning when it collapses, and (if the guard stops)
/// the weights of the epoch before to go back to.
struct Guard {
    guard: OverfitGuard,
    /// The first `guard.examples` training examples.
    set: Dataset,
    /// The weights after the last epoch that passed the check (a stopping guard only).
    previous: Option<Vec<(String, Tensor)>>,
}

impl Guard {
    /// The guard of `regime` (fast regimes with a guard only), checking on `train_set`.
    fn of(regime: &Regime, train_set: &Dataset) -> Result<Option<Guard>> {
        let Regime::Fast { guard: Some(g), .. } = regime else { return Ok(None) };
        let set = train_set.subset(&(0..g.examples.min(train_set.len()) as i64).collect::<Vec<_>>(), "guard")?;
        Ok(Some(Guard { guard: g.clone(), set, previous: None }))
    }

    /// The guard's PGD accuracy of `net` on its examples.
    fn robust_check(&self, net: &Network, batch_size: usize) -> Result<f64> {
        Ok(crate::attack::robust_evaluate(net, &self.set, &[self.guard.check.clone().into()], batch_size)?.ra)
    }

    /// Warns when `record`'s check fell more than the guard allows below the best of `history`;
    /// a stopping guard then restores the weights of the epoch before and returns why it stopped.
    fn after_epoch(&mut self, history: &History, record: &EpochRecord, net: &mut Network) -> Result<Option<String>> {
        let best_check = history.epochs.iter().filter_map(|r| r.robust_check).fold(f64::NAN, f64::max);
        if let Some(now) = record.robust_check {
            if best_check - now > self.guard.max_drop {
                let msg = format!(
                    "catastrophic overfitting at epoch {}: PGD accuracy on training examples fell from {:.1}% to {:.1}%",
                    record.epoch,
                    100.0 * best_check,
                    100.0 * now
                );
                crate::progress::warn(&msg);
                if self.guard.stop {
                    if let Some(prev) = &self.previous {
                        net.restore(prev)?;
                    }
                    return Ok(Some(msg));
                }
            }
        }
        if self.guard.stop {
            self.previous = Some(net.snapshot()?);
        }
        Ok(None)
    }
}

/// Model selection: the weights of the validated epoch with the best validation accuracy (also
/// written to `file`, a resumable run's `best.safetensors`).
struct BestWeights {
    best: Option<(f64, Vec<(String, Tensor)>)>,
    file: Option<PathBuf>,
}

impl Callback for BestWeights {
    fn on_epoch_end(&mut self, r: &EpochRecord, net: &Network) -> Result<()> {
        if let Some(val) = r.val.filter(|v| self.best.as_ref().is_none_or(|(acc, _)| v.accuracy > *acc)) {
            self.best = Some((val.accuracy, net.snapshot()?));
            if let Some(f) = &self.file {
                net.save(f)?;
            }
        }
        Ok(())
    }
}

impl BestWeights {
    /// The epoch whose weights `net` ends with: the best one (restored) when `cfg` selects it,
    /// else the last epoch kept (the one before a guard's stop).
    fn select(&self, cfg: &TrainConfig, history: &History, net: &mut Network) -> Result<Option<usize>> {
        Ok(if cfg.recipe.select_best {
            let epoch = self
                .best
                .as_ref()
                .and_then(|(acc, _)| history.epochs.iter().find(|r| r.val.is_some_and(|v| v.accuracy == *acc)))
                .map(|r| r.epoch);
            if let Some((_, weights)) = &self.best {
                net.restore(weights)?;
            }
            epoch
        } else if history.stopped_early.is_some() {
            history.epochs.len().checked_sub(1).filter(|&e| e > 0)
        } else {
            history.last().map(|r| r.epoch)
        })
    }
}

fn save_state(f: &ResumeFiles, cfg: &TrainConfig, net: &Network, sgd: &Sgd, history: &History) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = net.named_tensors();
    tensors.extend(sgd.state().into_iter().map(|(n, t)| (format!("momentum/{n}"), t)));
    // Weights first, history last: a history on disk always has its state written, and names
    // it by hash.
    crate::model::io::write_tensors(&f.state(), &tensors)?;
    let state_sha256 = Some(crate::fsio::sha256_file(&f.state())?);
    let best_sha256 = if history.best().is_some() { Some(crate::fsio::sha256_file(&f.best())?) } else { None };
    crate::fsio::write_json(&f.history(), &SavedHistory { config_hash: cfg.hash()?, history: history.clone(), state_sha256, best_sha256 })
}

/// Why the saved state of `f` is not the one `saved` describes (`None`: it is).
/// A file that exists but cannot be read is an error (nothing is deleted over it).
fn unverified_state(f: &ResumeFiles, saved: &SavedHistory) -> Result<Option<String>> {
    let check = |path: PathBuf, want: &Option<String>| -> Result<Option<String>> {
        let Some(want) = want else { return Ok(Some(format!("{} has no recorded hash (an older run)", path.display()))) };
        match crate::fsio::sha256_file(&path) {
            Ok(h) if h == *want => Ok(None),
            Ok(_) => Ok(Some(format!("{} is not the state its history recorded (damaged, or copied mid-run)", path.display()))),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(Some(format!("{} is missing", path.display())))
            }
            Err(e) => Err(e),
        }
    };
    if let Some(why) = check(f.state(), &saved.state_sha256)? {
        return Ok(Some(why));
    }
    if saved.history.best().is_some() {
        return check(f.best(), &saved.best_sha256);
    }
    Ok(None)
}

fn resume(
    f: &ResumeFiles,
    cfg: &TrainConfig,
    net: &mut Network,
    sgd: &mut Sgd,
    history: &mut History,
    best: &mut Option<(f64, Vec<(String, Tensor)>)>,
) -> Result<()> {
    if !f.history().exists() {
        return Ok(());
    }
    let saved: SavedHistory = crate::fsio::read_json(&f.history())?;
    let hash = cfg.hash()?;
    if saved.config_hash != hash {
        return Err(Error::invalid(
            format!("{} holds a run of another configuration ({} vs {hash})", f.dir.display(), saved.config_hash),
            "use a separate resume folder per configuration, or delete the old one",
        ));
    }
    if let Some(why) = unverified_state(f, &saved)? {
        crate::progress::warn(&format!("not resuming from {}: {why}; training from the start", f.dir.display()));
        for path in [f.history(), f.state(), f.best()] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path, e)),
                _ => {}
            }
        }
        return Ok(());
    }
    let tensors = Tensor::read_safetensors(f.state()).map_err(|e| {
        Error::bad_file_fix(f.state(), format!("cannot read ({e})"), format!("delete {} to train from the start", f.dir.display()))
    })?;
    let (momentum, weights): (Vec<_>, Vec<_>) = tensors.into_iter().partition(|(n, _)| n.starts_with("momentum/"));
    net.restore(&weights)?;
    sgd.load_state(momentum.into_iter().map(|(n, t)| (n["momentum/".len()..].to_string(), t)).collect())?;
    if let Some(b) = saved.history.best() {
        let best_net = Network::load(f.best(), net.device())?;
        let acc = b.val.map_or(f64::NAN, |v| v.accuracy);
        *best = Some((acc, best_net.snapshot()?));
    }
    crate::progress::note(&format!("resuming after epoch {} from {}", saved.history.epochs.len(), f.dir.display()));
    *history = saved.history;
    Ok(())
}
