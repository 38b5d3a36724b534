//! The end-to-end runs behind the CLI's main job and the notebooks, with size profiles: `tiny`
//! for CI and headless notebook checks, `small` for a laptop, `full` for the whole embedded data.

use crate::data::{Embedded, Splits};
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::model::{Arch, Network, NetworkSpec};
use crate::plot::Figure;
use crate::runtime::Runtime;
use crate::train::{evaluate, train_with, Callbacks, Evaluation, History, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How much data and how many epochs a walkthrough uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Profile {
    /// Seconds: for CI and headless notebook runs.
    Tiny,
    /// Minutes on a 2-core laptop.
    Small,
    /// All embedded data.
    Full,
}

impl Profile {
    /// `DOUBLEWIN_PROFILE` (tiny | small | full), default `small`.
    pub fn from_env() -> Result<Profile> {
        std::env::var("DOUBLEWIN_PROFILE")
            .unwrap_or_else(|_| "small".into())
            .parse()
    }
    /// Fraction of the source training split used.
    pub fn train_fraction(self) -> f64 {
        match self {
            Profile::Tiny => 0.05,
            Profile::Small => 0.25,
            Profile::Full => 1.0,
        }
    }
    pub fn epochs(self) -> usize {
        match self {
            Profile::Tiny => 2,
            Profile::Small => 6,
            Profile::Full => 15,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Profile::Tiny => "tiny",
            Profile::Small => "small",
            Profile::Full => "full",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Profile> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tiny" => Ok(Profile::Tiny),
            "small" | "" => Ok(Profile::Small),
            "full" => Ok(Profile::Full),
            other => Err(Error::invalid(
                format!("unknown profile '{other}'"),
                "use tiny, small or full",
            )),
        }
    }
}

/// The splits a profile trains on: the embedded dataset with 10% of train held out for
/// validation, and the profile's fraction of the rest.
pub fn profile_splits(dataset: Embedded, profile: Profile, seed: u64) -> Result<Splits> {
    dataset
        .splits(0.1, seed)?
        .with_train_fraction(profile.train_fraction(), seed)
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
            &[
                "dataset",
                "network",
                "splits",
                "epochs",
                "best val acc %",
                "test acc %",
                "test loss",
                "time s",
            ],
        );
        t.push(vec![
            self.dataset.clone(),
            self.arch.clone(),
            self.splits.clone(),
            self.history.epochs.len().to_string(),
            format!(
                "{:.2}",
                100.0 * self.history.best().map(|r| r.val.accuracy).unwrap_or(0.0)
            ),
            format!("{:.2}", 100.0 * self.test.accuracy),
            format!("{:.4}", self.test.loss),
            format!("{:.1}", self.seconds),
        ]);
        t
    }

    /// Markdown summary.
    pub fn markdown(&self) -> String {
        let t = self.table();
        let mut s = format!(
            "# {}\n\n{}\n\n| {} |\n|{}|\n",
            t.title,
            self.runtime,
            t.headers.join(" | "),
            " --- |".repeat(t.headers.len())
        );
        for r in &t.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s + &format!(
            "\n## Training history\n\n```\n{}```\n\n![accuracy](accuracy.svg)\n",
            self.history
        )
    }

    pub fn evcxr_display(&self) {
        let mut html = self.table().to_html();
        if let Ok(fig) = self.history.accuracy_figure() {
            html += &fig.svg;
        }
        evcxr_emit("text/html", &html);
    }
}

impl std::fmt::Display for QuickstartReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.table(), self.history)
    }
}

/// Trains the small ConvNet on the embedded Fashion-MNIST (the source domain), evaluates it on
/// the test split and writes `report.md`, `report.json`, `accuracy.svg`, `loss.svg` and the
/// weights into `out`.
pub fn quickstart(rt: &Runtime, profile: Profile, out: &Path) -> Result<QuickstartReport> {
    let start = std::time::Instant::now();
    let dataset = Embedded::FashionMnist;
    let splits = profile_splits(dataset, profile, rt.seed)?;
    println!(
        "{dataset}: {splits} ({} profile); {}",
        profile.name(),
        rt.describe()
    );
    let spec = NetworkSpec::for_data(Arch::convnet(), &splits.train)?;
    let mut net = Network::new(spec, rt.device, rt.seed)?;
    println!("{net}");
    let cfg = TrainConfig::default()
        .epochs(profile.epochs())
        .seed(rt.seed);
    let history = train_with(
        &mut net,
        &splits,
        &cfg,
        &mut Callbacks::progress("quickstart"),
        None,
    )?;
    let test = evaluate(&net, &splits.test, cfg.eval_batch_size)?;
    println!("test: {test}");
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
