//! Transfer: a pre-trained network (dense, or a ticket = pre-trained weights + mask) gets a new
//! head and the downstream data's normalisation, is fine-tuned standardly or adversarially on a
//! fraction of the downstream training split (pruned weights stay zero), and is judged on the
//! test split at two checkpoints picked on the validation split: best validation SA and best
//! validation RA, as in the paper ([`crate::verdict`] compares tickets with the dense network).

use crate::attack::{robust_evaluate, AttackOutcome, AttackSpec, ThreatModel};
use crate::data::{Dataset, Splits};
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::model::{Network, Normalization};
use crate::prune::Mask;
use crate::stats::Hits;
use crate::train::{
    train_with, Callback, Callbacks, EpochCheckpoints, EpochRecord, History, Recipe, Regime, RegimeKind, TrainConfig, EVAL_BATCH_SIZE,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The revision of how [`transfer`] measures its test numbers, recorded in a study's transfer
/// descriptions so that results measured otherwise never match: raised when the same settings
/// would give other numbers (like [`crate::store::NUMERICS`], for transfers alone). 1: the
/// best-SA checkpoint is scored on SA only, and the best-RA checkpoint's attack starts no longer
/// depend on the best-SA checkpoint's evaluation (they continued its draws before).
pub const JUDGING: u32 = 1;

/// A transfer run's settings, all explicit: the fine-tuning recipe with its regime (standard or
/// adversarial fine-tuning), the data fraction, and the attacks that select the best-RA
/// checkpoint and measure the reported RA. [`TransferConfig::new`] derives the regime and the
/// attacks from a [`ThreatModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate = false)]
pub struct TransferConfig {
    /// Fraction of the downstream training split (stratified, seeded): 1.0, 0.1, 0.01.
    #[setters(generate)]
    pub fraction: f64,
    /// The fine-tuning run: its regime is the fine-tuning's (`Regime::of(kind, threat)`), its
    /// seed is `seed`, it keeps its last weights (`select_best` false: the transfer picks its two
    /// checkpoints itself) and it validates at most `recipe.validations` times (0: every epoch;
    /// with little data a fine-tuning runs many short epochs, see `min_steps`, and attacking the
    /// validation split after each one costs more than training). Resolved when the config is
    /// built, so its description says what runs.
    pub recipe: TrainConfig,
    /// At least this many SGD steps: with 10% or 1% of the data the recipe's epochs are raised
    /// to reach it (0 keeps the recipe's epochs, as the paper's code does).
    #[setters(generate)]
    pub min_steps: usize,
    /// Attacks on the validation split that pick the best-RA checkpoint.
    pub val_attacks: Vec<AttackSpec>,
    /// Attacks of the reported test RA, run in sequence on the points still correct.
    pub test_attacks: Vec<AttackSpec>,
    /// Seeds the data subset, the batch order, the new head and every attack's random starts:
    /// the same seed gives a ticket and the dense network the same draws (paired comparisons).
    pub seed: u64,
}

impl Default for TransferConfig {
    /// Standard fine-tuning on all the data, with the paper's validation and test attacks.
    fn default() -> Self {
        let threat = ThreatModel::paper();
        TransferConfig {
            fraction: 1.0,
            recipe: TrainConfig::default().select_best(false),
            min_steps: 0,
            val_attacks: threat.val_attacks(),
            test_attacks: threat.test_attacks(),
            seed: 0,
        }
    }
}

impl TransferConfig {
    /// `kind` fine-tuning (standard, fast or adversarial) under `threat`, the default recipe.
    pub fn new(kind: impl Into<RegimeKind>, threat: &ThreatModel) -> Result<TransferConfig> {
        let kind = kind.into();
        Ok(TransferConfig {
            recipe: TrainConfig::default().select_best(false).regime(Regime::of(kind, threat)?),
            // A standard fine-tuning is judged on SA (its best-validation-SA checkpoint): attacking
            // its validation split would only pick a best-RA checkpoint nobody reads.
            val_attacks: if kind == RegimeKind::Standard { Vec::new() } else { threat.val_attacks() },
            test_attacks: threat.test_attacks(),
            ..TransferConfig::default()
        })
    }
    /// Another recipe (epochs, SGD, schedule, validations, ...), run with this config's regime
    /// and seed, keeping its last weights (the transfer selects its checkpoints).
    pub fn recipe(mut self, recipe: Recipe) -> Self {
        self.recipe = recipe.select_best(false).resolve(self.recipe.regime.clone(), self.seed);
        self
    }
    /// At most `n` validations per fine-tuning (0: every epoch).
    pub fn validations(mut self, n: usize) -> Self {
        self.recipe.recipe.validations = n;
        self
    }
    /// Whether epoch `epoch` (1-based) of an `epochs`-epoch fine-tuning is validated: every
    /// epoch, or `validations` evenly spaced ones ending at the last.
    pub fn validates(&self, epoch: usize, epochs: usize) -> bool {
        crate::train::validates(epoch, epochs, self.recipe.recipe.validations)
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.recipe.seed = seed;
        self
    }
    /// Standard, fast or adversarial fine-tuning.
    pub fn fine_tuning(&self) -> RegimeKind {
        self.recipe.regime.kind()
    }
    /// Checks every value before any work starts.
    pub fn check(&self) -> Result<()> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(Error::invalid(format!("transfer data fraction {}", self.fraction), "use a fraction in (0, 1], e.g. 0.1"));
        }
        for a in self.val_attacks.iter().chain(&self.test_attacks) {
            if !(a.eps().is_finite() && a.eps() > 0.0) {
                return Err(Error::invalid(format!("evaluation attack {a:?} has eps {}", a.eps()), "use eps > 0"));
            }
        }
        if self.recipe.seed != self.seed {
            return Err(Error::invalid(
                format!("the fine-tuning recipe has seed {}, the transfer seed {}", self.recipe.seed, self.seed),
                "set the seed with TransferConfig::seed, which seeds both",
            ));
        }
        if self.recipe.recipe.select_best {
            return Err(Error::invalid(
                "the fine-tuning recipe sets select_best",
                "leave it false (TransferConfig::recipe does): a transfer picks its best-SA and best-RA checkpoints itself",
            ));
        }
        self.recipe.check()
    }
}

/// Test-split SA and RA of the checkpoint with the best validation RA: a transfer's RA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: usize,
    pub val_sa: f64,
    pub val_ra: f64,
    pub test_sa: f64,
    /// Accuracy under every test attack in sequence (the worst case over them).
    pub test_ra: f64,
    /// Accuracy after each test attack (and those before it), in order.
    pub test_per_attack: Vec<AttackOutcome>,
    /// Warnings of the test evaluation (gradient masking signs).
    pub warnings: Vec<String>,
    /// Which test examples it classified correctly, and correctly under every test attack
    /// (for paired comparisons, see [`crate::stats`]).
    pub test_clean_hits: Hits,
    pub test_robust_hits: Hits,
}

impl Checkpoint {
    /// Test RA under the attacks up to the first whose name starts with `prefix` ("PGD-20": the
    /// PGD-20 RA when the test attacks go on to AutoAttack).
    pub fn test_ra_after(&self, prefix: &str) -> Option<f64> {
        crate::attack::eval::accuracy_after(&self.test_per_attack, prefix)
    }
}

/// Test-split SA of the checkpoint with the best validation SA: a transfer's SA. Its RA is not
/// measured, because nothing reads it: as in the paper, a transfer reports SA at this checkpoint
/// and RA at the best-RA one ([`Checkpoint`]). (Attacking it cost about a fifth of an adversarial
/// fine-tuning at 1% of the data; a result stored before it was left out still carries its RA,
/// which reads as this type and is ignored.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaCheckpoint {
    pub epoch: usize,
    pub val_sa: f64,
    pub val_ra: f64,
    pub test_sa: f64,
    /// Which test examples it classified correctly (for paired comparisons).
    pub test_clean_hits: Hits,
}

impl From<&Checkpoint> for SaCheckpoint {
    fn from(c: &Checkpoint) -> SaCheckpoint {
        SaCheckpoint { epoch: c.epoch, val_sa: c.val_sa, val_ra: c.val_ra, test_sa: c.test_sa, test_clean_hits: c.test_clean_hits.clone() }
    }
}

/// The outcome of one transfer run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    pub dataset: String,
    pub fine_tuning: RegimeKind,
    pub fraction: f64,
    pub train_examples: usize,
    /// Sparsity of the ticket (0 for the dense baseline).
    pub sparsity: f64,
    pub seed: u64,
    /// The checkpoint with the best validation SA: the transfer's SA.
    pub best_sa: SaCheckpoint,
    /// The checkpoint with the best validation RA: the transfer's RA.
    pub best_ra: Checkpoint,
    pub history: History,
    /// What the user should know about the run (e.g. the source network's input size differs).
    pub notes: Vec<String>,
    pub seconds: f64,
}

impl TransferReport {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Transfer to {} ({} fine-tuning, {}% data, {:.2}% sparse)",
                self.dataset,
                self.fine_tuning.name(),
                100.0 * self.fraction,
                100.0 * self.sparsity
            ),
            &["checkpoint", "epoch", "val SA %", "val RA %", "test SA %", "test RA %"],
        );
        let (sa, ra) = (&self.best_sa, &self.best_ra);
        let rows = [
            ("best val SA", sa.epoch, sa.val_sa, sa.val_ra, sa.test_sa, (sa.epoch == ra.epoch).then_some(ra.test_ra)),
            ("best val RA", ra.epoch, ra.val_sa, ra.val_ra, ra.test_sa, Some(ra.test_ra)),
        ];
        for (name, epoch, val_sa, val_ra, test_sa, test_ra) in rows {
            t.push(vec![
                name.into(),
                epoch.to_string(),
                format!("{:.2}", 100.0 * val_sa),
                format!("{:.2}", 100.0 * val_ra),
                format!("{:.2}", 100.0 * test_sa),
                // The best-SA checkpoint is attacked only when it is the best-RA one.
                test_ra.map_or("-".into(), |r| format!("{:.2}", 100.0 * r)),
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        let notes: String = self.notes.iter().map(|n| format!("<p>note: {}</p>", crate::display::escape_html(n))).collect();
        evcxr_emit("text/html", &(self.table().to_html() + &notes));
    }
}

impl std::fmt::Display for TransferReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())?;
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// A candidate checkpoint: validation SA and RA, epoch, weights.
struct Candidate {
    sa: f64,
    ra: f64,
    epoch: usize,
    weights: Vec<(String, tch::Tensor)>,
}

#[derive(Default)]
struct Selection {
    best_sa: Option<Candidate>,
    best_ra: Option<Candidate>,
}

/// Measures validation RA after every validated epoch (the same attack starts every time) and
/// keeps the best-SA and best-RA weights.
struct Selector {
    val: Dataset,
    attacks: Vec<AttackSpec>,
    seed: u64,
    state: Arc<Mutex<Selection>>,
}

impl Callback for Selector {
    fn on_epoch_end(&mut self, r: &EpochRecord, net: &Network) -> Result<()> {
        if r.val.is_none() {
            return Ok(());
        }
        let attacks: Vec<AttackSpec> = self.attacks.iter().map(|a| a.seeded(self.seed)).collect();
        let e = robust_evaluate(net, &self.val, &attacks, EVAL_BATCH_SIZE)?;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.best_sa.as_ref().is_none_or(|b| e.sa > b.sa) {
            s.best_sa = Some(Candidate { sa: e.sa, ra: e.ra, epoch: r.epoch, weights: net.snapshot()? });
        }
        if s.best_ra.as_ref().is_none_or(|b| e.ra > b.ra) {
            s.best_ra = Some(Candidate { sa: e.sa, ra: e.ra, epoch: r.epoch, weights: net.snapshot()? });
        }
        Ok(())
    }
}

/// Fine-tunes `pretrained` (masked by `mask`, if any) on `downstream` and reports SA / RA on the
/// test split at the best-validation-SA and best-validation-RA checkpoints.
pub fn transfer(pretrained: &Network, mask: Option<&Mask>, downstream: &Splits, cfg: &TransferConfig) -> Result<TransferReport> {
    transfer_recorded(pretrained, mask, downstream, cfg, None)
}

/// [`transfer`], also saving the weights before fine-tuning (`epoch-000000`) and after the epochs
/// `checkpoints` keeps: the trajectory a [`crate::landscape`] draws.
pub fn transfer_recorded(
    pretrained: &Network,
    mask: Option<&Mask>,
    downstream: &Splits,
    cfg: &TransferConfig,
    checkpoints: Option<&CheckpointPlan>,
) -> Result<TransferReport> {
    let start = std::time::Instant::now();
    cfg.check()?;
    let notes = source_notes(pretrained, downstream)?;
    let (data, mut net) = downstream_network(pretrained, mask, downstream, cfg)?;
    let (history, selection) = fine_tune(&mut net, &data, cfg, checkpoints)?;
    let (best_sa, best_ra) = judge(&mut net, &data.test, cfg, selection)?;
    if let Some(m) = mask {
        if !m.holds_in(&net)? {
            return Err(Error::invalid("pruned weights moved during fine-tuning", "report this as a bug"));
        }
    }
    Ok(TransferReport {
        dataset: downstream.train.name().trim_end_matches("/train").to_string(),
        fine_tuning: cfg.fine_tuning(),
        fraction: cfg.fraction,
        train_examples: data.train.len(),
        sparsity: mask.map(|m| m.sparsity()).unwrap_or(0.0),
        seed: cfg.seed,
        best_sa,
        best_ra,
        history,
        notes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Refuses a source network of another channel count than `downstream`'s images, and notes one
/// built for another image size.
fn source_notes(pretrained: &Network, downstream: &Splits) -> Result<Vec<String>> {
    let [c, h, w] = downstream.image_shape();
    let spec = pretrained.spec();
    if spec.in_channels != c {
        return Err(Error::invalid(
            format!("the network takes {} channels, {} has {c}", spec.in_channels, downstream.train.name()),
            "transfer between datasets with the same number of channels",
        ));
    }
    let mut notes = Vec::new();
    if spec.input_size != h || spec.input_size != w {
        notes.push(format!(
            "the source network was built for {0}x{0} images, {1} has {h}x{w}: the convolutions and global pooling adapt, \
             but features learnt at one scale may transfer less well",
            spec.input_size,
            downstream.train.name()
        ));
    }
    Ok(notes)
}

/// The fine-tuning's data (the config's fraction of the training split) and network: the
/// pre-trained one with a new head, the data's normalisation and image size, and the mask.
fn downstream_network(pretrained: &Network, mask: Option<&Mask>, downstream: &Splits, cfg: &TransferConfig) -> Result<(Splits, Network)> {
    let [_, h, w] = downstream.image_shape();
    let data = downstream.with_train_fraction(cfg.fraction, cfg.seed)?;
    let mut net = pretrained.with_new_head(downstream.classes().to_vec(), cfg.seed)?;
    net.set_normalization(Normalization::of(&data.train)?)?;
    if h != w {
        return Err(Error::invalid(format!("{} has {h}x{w} images", downstream.train.name()), "use square images"));
    }
    net.set_input_size(h)?;
    if let Some(m) = mask {
        m.attach(&mut net)?;
    }
    Ok((data, net))
}

/// Fine-tunes `net` on `data` (saving the trajectory `checkpoints` asks for), returning its
/// history and the best-SA and best-RA checkpoints the validation split picked.
fn fine_tune(net: &mut Network, data: &Splits, cfg: &TransferConfig, checkpoints: Option<&CheckpointPlan>) -> Result<(History, Selection)> {
    let batches = data.train.len().div_ceil(cfg.recipe.recipe.batch_size.max(1));
    let epochs = cfg.recipe.recipe.epochs.max(cfg.min_steps.div_ceil(batches.max(1)));
    // `min_steps` raises the epochs of a data-limited run (a rule of the description, applied
    // here because it needs the subset's size). The training loop validates (SA) only the
    // epochs the selector attacks: the epochs between them pick nothing.
    let recipe = cfg.recipe.clone().epochs(epochs);
    let state = Arc::new(Mutex::new(Selection::default()));
    let selector = Selector { val: data.val.clone(), attacks: cfg.val_attacks.clone(), seed: cfg.seed, state: state.clone() };
    let label = format!("{} {}%", cfg.fine_tuning().name(), 100.0 * cfg.fraction);
    let mut callbacks = Callbacks::progress(&label).with(selector);
    if let Some(plan) = checkpoints {
        let saver = EpochCheckpoints::at_most(&plan.dir, epochs, plan.max);
        net.save(saver.path(0))?;
        callbacks = callbacks.with(saver);
    }
    let history = train_with(net, data, &recipe, &mut callbacks, None)?;
    let selection = std::mem::take(&mut *state.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((history, selection))
}

/// The test SA of the best-SA checkpoint and the test SA and RA of the best-RA one (`net` ends
/// with the weights of the last one judged). The best-RA checkpoint's attack starts are seeded by
/// the run's seed, so its numbers are a function of the checkpoint; when both are one epoch, the
/// best-SA numbers are the best-RA checkpoint's.
fn judge(net: &mut Network, test: &Dataset, cfg: &TransferConfig, selection: Selection) -> Result<(SaCheckpoint, Checkpoint)> {
    let none = || Error::invalid("no epoch was trained", "use at least one epoch");
    let (best_sa, best_ra) = (selection.best_sa.ok_or_else(none)?, selection.best_ra.ok_or_else(none)?);
    let test_attacks: Vec<AttackSpec> = cfg.test_attacks.iter().map(|a| a.seeded(cfg.seed)).collect();
    net.restore(&best_ra.weights)?;
    let e = robust_evaluate(net, test, &test_attacks, EVAL_BATCH_SIZE)?;
    let ra = Checkpoint {
        epoch: best_ra.epoch,
        val_sa: best_ra.sa,
        val_ra: best_ra.ra,
        test_sa: e.sa,
        test_ra: e.ra,
        test_per_attack: e.per_attack,
        warnings: e.warnings,
        test_clean_hits: e.clean_hits,
        test_robust_hits: e.robust_hits,
    };
    if best_sa.epoch == best_ra.epoch {
        return Ok((SaCheckpoint::from(&ra), ra));
    }
    net.restore(&best_sa.weights)?;
    let e = robust_evaluate(net, test, &[], EVAL_BATCH_SIZE)?;
    let sa = SaCheckpoint { epoch: best_sa.epoch, val_sa: best_sa.sa, val_ra: best_sa.ra, test_sa: e.sa, test_clean_hits: e.clean_hits };
    Ok((sa, ra))
}

/// Where [`transfer_recorded`] saves its trajectory, and at most how many checkpoints (epoch 0
/// and the last always among them; see [`EpochCheckpoints::spaced`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointPlan {
    pub dir: std::path::PathBuf,
    pub max: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result stored before the best-SA checkpoint lost its RA (a full [`Checkpoint`] there)
    /// still reads: as its SA part.
    #[test]
    fn a_stored_best_sa_checkpoint_with_its_ra_reads_as_its_sa_part() {
        let full = Checkpoint {
            epoch: 3,
            val_sa: 0.9,
            val_ra: 0.4,
            test_sa: 0.8,
            test_ra: 0.3,
            test_per_attack: Vec::new(),
            warnings: vec!["w".into()],
            test_clean_hits: Hits(vec![true, false]),
            test_robust_hits: Hits(vec![false, false]),
        };
        let back: SaCheckpoint = serde_json::from_value(serde_json::to_value(&full).unwrap()).unwrap();
        assert_eq!(back, SaCheckpoint::from(&full));
        assert_eq!((back.epoch, back.test_sa, back.test_clean_hits), (3, 0.8, Hits(vec![true, false])));
    }

    #[test]
    fn validations_are_evenly_spaced_and_end_at_the_last_epoch() {
        let every = TransferConfig::default();
        assert!((1..=7).all(|e| every.validates(e, 7)));
        let capped = TransferConfig::default().validations(20);
        let at: Vec<usize> = (1..=100).filter(|&e| capped.validates(e, 100)).collect();
        assert_eq!(at, (1..=20).map(|k| 5 * k).collect::<Vec<_>>());
        let odd: Vec<usize> = (1..=47).filter(|&e| capped.validates(e, 47)).collect();
        assert_eq!((odd.len(), odd.last().copied()), (20, Some(47)), "{odd:?}");
        // Fewer epochs than validations: every epoch.
        assert!((1..=12).all(|e| capped.validates(e, 12)));
    }
}
