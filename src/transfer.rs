//! Transfer: a pre-trained network (dense, or a ticket = pre-trained weights + mask) gets a new
//! head and the downstream data's normalisation, is fine-tuned standardly or adversarially on a
//! fraction of the downstream training split (pruned weights stay zero), and is judged on the
//! test split at two checkpoints picked on the validation split: best validation SA and best
//! validation RA, as in the paper. [`Verdict`] compares tickets with the dense baseline.

use crate::attack::{robust_evaluate, Fgsm, Pgd};
use crate::data::Splits;
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::model::{Network, Normalization};
use crate::prune::Mask;
use crate::train::{train_with, Callback, Callbacks, EpochCheckpoints, EpochRecord, History, Regime, TrainConfig};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Standard or adversarial fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FineTuning {
    Standard,
    Adversarial,
}

impl FineTuning {
    pub const BOTH: [FineTuning; 2] = [FineTuning::Standard, FineTuning::Adversarial];
    pub fn name(self) -> &'static str {
        match self {
            FineTuning::Standard => "standard",
            FineTuning::Adversarial => "adversarial",
        }
    }
}

/// A transfer run's settings. `recipe` is the fine-tuning schedule; its regime is set from
/// `fine_tuning` and `eps` (adversarial: PGD-`train_steps`, step 2.5 eps / steps, train mode; the
/// paper's PGD-10, 2/255 at 8/255).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferConfig {
    pub fine_tuning: FineTuning,
    /// Fraction of the downstream training split (stratified, seeded): 1.0, 0.1, 0.01.
    pub fraction: f64,
    pub eps: f64,
    pub train_steps: usize,
    pub recipe: TrainConfig,
    /// At least this many SGD steps: with 10% or 1% of the data the recipe's epochs are raised
    /// to reach it (0 keeps the recipe's epochs, as the paper's code does).
    #[serde(default)]
    pub min_steps: usize,
    /// Attack for selecting the best-RA checkpoint on the validation split.
    pub val_steps: usize,
    /// Attack for the reported RA on the test split (the paper: PGD-20).
    pub test_steps: usize,
    pub seed: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            fine_tuning: FineTuning::Standard,
            fraction: 1.0,
            eps: 8.0 / 255.0,
            train_steps: 10,
            recipe: TrainConfig::default(),
            min_steps: 0,
            val_steps: 10,
            test_steps: 20,
            seed: 0,
        }
    }
}

impl TransferConfig {
    pub fn hash(&self) -> String {
        crate::store::stable_hash(self)
    }
    fn regime(&self) -> Regime {
        match self.fine_tuning {
            FineTuning::Standard => Regime::Standard,
            FineTuning::Adversarial => {
                Regime::Adversarial(Pgd::linf(self.eps, 2.5 * self.eps / self.train_steps as f64, self.train_steps).train_mode(true))
            }
        }
    }
    fn attacks(&self, steps: usize) -> Vec<crate::attack::AttackSpec> {
        vec![Fgsm::new(self.eps).into(), Pgd::linf(self.eps, 2.5 * self.eps / steps.max(1) as f64, steps).into()]
    }
}

/// Test-split SA and RA of one selected checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: usize,
    pub val_sa: f64,
    pub val_ra: f64,
    pub test_sa: f64,
    pub test_ra: f64,
}

/// The outcome of one transfer run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    pub dataset: String,
    pub fine_tuning: FineTuning,
    pub fraction: f64,
    pub train_examples: usize,
    /// Sparsity of the ticket (0 for the dense baseline).
    pub sparsity: f64,
    pub seed: u64,
    /// The checkpoint with the best validation SA.
    pub best_sa: Checkpoint,
    /// The checkpoint with the best validation RA.
    pub best_ra: Checkpoint,
    pub history: History,
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
        for (name, c) in [("best val SA", &self.best_sa), ("best val RA", &self.best_ra)] {
            t.push(vec![
                name.into(),
                c.epoch.to_string(),
                format!("{:.2}", 100.0 * c.val_sa),
                format!("{:.2}", 100.0 * c.val_ra),
                format!("{:.2}", 100.0 * c.test_sa),
                format!("{:.2}", 100.0 * c.test_ra),
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.table().to_html());
    }
}

impl std::fmt::Display for TransferReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
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

/// Measures validation RA after every epoch and keeps the best-SA and best-RA weights.
struct Selector {
    val: crate::data::Dataset,
    attacks: Vec<crate::attack::AttackSpec>,
    state: Arc<Mutex<Selection>>,
}

impl Callback for Selector {
    fn on_epoch_end(&mut self, r: &EpochRecord, net: &Network) -> Result<()> {
        let e = robust_evaluate(net, &self.val, &self.attacks, 500)?;
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

/// [`transfer`], also saving the weights before fine-tuning (`epoch-000`) and after every epoch
/// into `checkpoints`: the trajectory a [`crate::landscape`] draws.
pub fn transfer_recorded(
    pretrained: &Network,
    mask: Option<&Mask>,
    downstream: &Splits,
    cfg: &TransferConfig,
    checkpoints: Option<&std::path::Path>,
) -> Result<TransferReport> {
    let start = std::time::Instant::now();
    if pretrained.spec().in_channels != downstream.image_shape()[0] {
        return Err(Error::invalid(
            format!(
                "the network takes {} channels, {} has {}",
                pretrained.spec().in_channels,
                downstream.train.name(),
                downstream.image_shape()[0]
            ),
            "transfer between datasets with the same number of channels",
        ));
    }
    let data = downstream.with_train_fraction(cfg.fraction, cfg.seed)?;
    let mut net = pretrained.with_new_head(downstream.classes().to_vec(), cfg.seed)?;
    net.set_normalization(Normalization::of(&data.train)?)?;
    if let Some(m) = mask {
        m.attach(&mut net)?;
    }
    let batches = data.train.len().div_ceil(cfg.recipe.batch_size.max(1));
    let epochs = cfg.recipe.epochs.max(cfg.min_steps.div_ceil(batches.max(1)));
    let recipe = TrainConfig { regime: cfg.regime(), select_best: false, seed: cfg.seed, epochs, ..cfg.recipe.clone() };
    let state = Arc::new(Mutex::new(Selection::default()));
    let selector = Selector { val: data.val.clone(), attacks: cfg.attacks(cfg.val_steps), state: state.clone() };
    let label = format!("{} {}%", cfg.fine_tuning.name(), 100.0 * cfg.fraction);
    let mut callbacks = Callbacks::progress(&label).with(selector);
    if let Some(dir) = checkpoints {
        let saver = EpochCheckpoints::new(dir);
        net.save(saver.path(0))?;
        callbacks = callbacks.with(saver);
    }
    let history = train_with(&mut net, &data, &recipe, &mut callbacks, None)?;
    let selection = std::mem::take(&mut *state.lock().unwrap_or_else(|p| p.into_inner()));
    let test_attacks = cfg.attacks(cfg.test_steps);
    let mut judge = |best: Option<Candidate>| -> Result<Checkpoint> {
        let c = best.ok_or_else(|| Error::invalid("no epoch was trained", "use at least one epoch"))?;
        net.restore(&c.weights)?;
        let e = robust_evaluate(&net, &data.test, &test_attacks, 500)?;
        Ok(Checkpoint { epoch: c.epoch, val_sa: c.sa, val_ra: c.ra, test_sa: e.sa, test_ra: e.ra })
    };
    let best_sa = judge(selection.best_sa)?;
    let best_ra = judge(selection.best_ra)?;
    if let Some(m) = mask {
        if !m.holds_in(&net)? {
            return Err(Error::invalid("pruned weights moved during fine-tuning", "report this as a bug"));
        }
    }
    Ok(TransferReport {
        dataset: downstream.train.name().trim_end_matches("/train").to_string(),
        fine_tuning: cfg.fine_tuning,
        fraction: cfg.fraction,
        train_examples: data.train.len(),
        sparsity: mask.map(|m| m.sparsity()).unwrap_or(0.0),
        seed: cfg.seed,
        best_sa,
        best_ra,
        history,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// The three numbers a double-win ticket must match, for a ticket or the dense baseline, each
/// over seeds: SA after standard fine-tuning; SA and RA after adversarial fine-tuning (at their
/// best-validation checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub std_sa: Vec<f64>,
    pub adv_sa: Vec<f64>,
    pub adv_ra: Vec<f64>,
}

impl Scores {
    /// Collects the scores from transfer reports of one subnetwork (any order, any seeds).
    pub fn from_reports(reports: &[&TransferReport]) -> Scores {
        let pick =
            |ft: FineTuning, f: &dyn Fn(&TransferReport) -> f64| reports.iter().filter(|r| r.fine_tuning == ft).map(|r| f(r)).collect();
        Scores {
            std_sa: pick(FineTuning::Standard, &|r| r.best_sa.test_sa),
            adv_sa: pick(FineTuning::Adversarial, &|r| r.best_sa.test_sa),
            adv_ra: pick(FineTuning::Adversarial, &|r| r.best_ra.test_ra),
        }
    }
}

/// One ticket against the dense baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    pub label: String,
    pub sparsity: f64,
    /// (ticket mean - dense mean) for standard SA, adversarial SA, adversarial RA.
    pub gaps: [f64; 3],
    /// Tolerance applied to each of the three comparisons.
    pub tolerance: [f64; 3],
    pub ticket: [(f64, f64); 3],
    pub dense: [(f64, f64); 3],
    pub double_win: bool,
}

/// Double-win verdicts for a list of tickets against one dense baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub rows: Vec<VerdictRow>,
    pub base_tolerance: f64,
}

impl Verdict {
    /// A ticket is double-win when, for standard SA, adversarial SA and adversarial RA, its mean
    /// is at least the dense mean minus the tolerance. The tolerance is `base_tolerance`
    /// (fraction, e.g. 0.005 = 0.5 points) with one seed; with several seeds it is the larger of
    /// that and the combined standard deviation of ticket and dense, so seed noise alone does
    /// not decide the verdict.
    pub fn judge(dense: &Scores, tickets: &[(String, f64, Scores)], base_tolerance: f64) -> Verdict {
        let rows = tickets
            .iter()
            .map(|(label, sparsity, t)| {
                let pairs = [(&t.std_sa, &dense.std_sa), (&t.adv_sa, &dense.adv_sa), (&t.adv_ra, &dense.adv_ra)];
                let ticket = pairs.map(|(a, _)| mean_std(a));
                let base = pairs.map(|(_, b)| mean_std(b));
                let tolerance = [0, 1, 2].map(|i| base_tolerance.max((ticket[i].1.powi(2) + base[i].1.powi(2)).sqrt()));
                let gaps = [0, 1, 2].map(|i| ticket[i].0 - base[i].0);
                let complete = pairs.iter().all(|(a, b)| !a.is_empty() && !b.is_empty());
                let double_win = complete && (0..3).all(|i| gaps[i] >= -tolerance[i]);
                VerdictRow { label: label.clone(), sparsity: *sparsity, gaps, tolerance, ticket, dense: base, double_win }
            })
            .collect();
        Verdict { rows, base_tolerance }
    }

    /// The highest sparsity whose ticket is double-win.
    pub fn highest_double_win(&self) -> Option<f64> {
        self.rows.iter().filter(|r| r.double_win).map(|r| r.sparsity).fold(None, |m, s| Some(m.map_or(s, |m: f64| m.max(s))))
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(
            "Double-win verdict (ticket vs dense, points; mean ± sd over seeds)",
            &["ticket", "sparsity %", "std-FT SA", "adv-FT SA", "adv-FT RA", "double-win"],
        );
        let cell =
            |r: &VerdictRow, i: usize| format!("{:.2}±{:.2} ({:+.2})", 100.0 * r.ticket[i].0, 100.0 * r.ticket[i].1, 100.0 * r.gaps[i]);
        for r in &self.rows {
            t.push(vec![
                r.label.clone(),
                format!("{:.2}", 100.0 * r.sparsity),
                cell(r, 0),
                cell(r, 1),
                cell(r, 2),
                if r.double_win { "yes".into() } else { "no".into() },
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.table().to_html());
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
    }
}
