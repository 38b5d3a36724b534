//! The end-to-end runs behind the CLI's main job and the notebooks, sized by the study's
//! profiles: the quickstart, attack comparisons ([`attacks`]) and ablations ([`ablation`]).
//! Every step of the method itself is asked through the one facade, [`crate::session::Session`].

pub mod ablation;
pub mod attacks;

pub use ablation::{Ablation, AblationReport, Knob};
pub use attacks::{adversarial_examples, compare_attacks, robustness_curves, AttackComparison, EpsSweep, RobustnessCurves};

use crate::attack::ThreatModel;
use crate::data::Splits;
use crate::display::{evcxr_emit, Table};
use crate::error::Result;
use crate::model::{Arch, Network, NetworkSpec};
use crate::plot::Figure;
use crate::runtime::Runtime;
pub use crate::study::{FineTuning, ImpFamily, Pretraining, Profile};
use crate::train::{evaluate, train_with, Callbacks, Evaluation, History, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The splits a profile trains on: the embedded dataset with 10% of train held out for
/// validation, and the profile's fraction of the rest.
pub fn profile_splits(dataset: impl Into<crate::data::DataSource>, profile: Profile, seed: u64) -> Result<Splits> {
    let holdout = crate::study::steps::HoldOut { seed, ..crate::study::steps::HoldOut::STUDY };
    holdout.splits(dataset.into())?.with_train_fraction(profile.train_fraction(), seed)
}

/// What the quickstart produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuickstartReport {
    pub profile: Profile,
    pub dataset: String,
    pub arch: String,
    pub runtime: String,
    pub splits: String,
    pub history: History,
    pub test: Evaluation,
    pub seconds: f64,
    /// Files written (report, figure, weights).
    pub files: Vec<PathBuf>,
}

impl QuickstartReport {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Quickstart ({} profile)", self.profile.name()),
            &["dataset", "network", "splits", "epochs", "best val acc %", "test acc %", "test loss", "time s"],
        );
        t.push(vec![
            self.dataset.clone(),
            self.arch.clone(),
            self.splits.clone(),
            self.history.epochs.len().to_string(),
            format!("{:.2}", 100.0 * self.history.best().and_then(|r| r.val).map_or(0.0, |v| v.accuracy)),
            format!("{:.2}", 100.0 * self.test.accuracy),
            format!("{:.4}", self.test.loss),
            format!("{:.1}", self.seconds),
        ]);
        t
    }

    /// Markdown summary.
    pub fn markdown(&self) -> String {
        format!(
            "# Quickstart\n\n{}\n\n{}## Training history\n\n```\n{}```\n\n![accuracy](accuracy.svg)\n",
            self.runtime,
            self.table().to_markdown(),
            self.history
        )
    }

    pub fn evcxr_display(&self) {
        let mut html = self.table().to_html();
        if let Ok(fig) = self.history.accuracy_figure() {
            html += &fig.svg();
        }
        evcxr_emit("text/html", &html);
    }
}

impl std::fmt::Display for QuickstartReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.table(), self.history)
    }
}

/// Trains the small ConvNet on the profile study's source domain (Fashion-MNIST, at 8x8 in the
/// CPU profiles), evaluates it on
/// the test split and writes `report.md`, `report.json`, `accuracy.svg`, `loss.svg` and the
/// weights into `out`.
pub fn quickstart(rt: &Runtime, profile: Profile, out: &Path) -> Result<QuickstartReport> {
    let start = std::time::Instant::now();
    let dataset = crate::study::Study::for_profile(profile).source;
    let splits = profile_splits(dataset, profile, rt.seed)?;
    crate::progress::note(&format!("{dataset}: {splits} ({} profile); {}", profile.name(), rt.describe()));
    let spec = NetworkSpec::for_data(Arch::convnet(), &splits.train)?;
    let mut net = Network::new(spec, rt.device, rt.seed)?;
    crate::progress::note(&net.to_string());
    let cfg = TrainConfig::default().epochs(profile.epochs()).seed(rt.seed);
    let history = train_with(&mut net, &splits, &cfg, &mut Callbacks::progress("quickstart"), None)?;
    let test = evaluate(&net, &splits.test, cfg.recipe.eval_batch_size)?;
    crate::progress::note(&format!("test: {test}"));
    let accuracy: Figure = history.accuracy_figure()?;
    let loss = history.loss_figure()?;
    let files = vec![
        out.join("report.md"),
        out.join("report.json"),
        out.join("accuracy.svg"),
        out.join("loss.svg"),
        out.join("convnet.safetensors"),
    ];
    let report = QuickstartReport {
        profile,
        dataset: dataset.name().into(),
        arch: net.arch().name(),
        runtime: rt.describe(),
        splits: splits.to_string(),
        history,
        test,
        seconds: start.elapsed().as_secs_f64(),
        files: files.clone(),
    };
    crate::fsio::write_atomic(&files[0], report.markdown().as_bytes())?;
    crate::fsio::write_json(&files[1], &report)?;
    accuracy.save_svg(&files[2])?;
    loss.save_svg(&files[3])?;
    net.save(&files[4])?;
    Ok(report)
}

/// The evaluation attacks for SA / RA at L-inf radius `eps`: FGSM, then PGD-20 (step eps/4).
pub fn evaluation_attacks(eps: f64) -> Vec<crate::attack::AttackSpec> {
    ThreatModel::linf(eps).test_attacks()
}
