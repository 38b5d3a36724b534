//! The end-to-end runs behind the CLI's main job and the notebooks, sized by the study's
//! profiles: the quickstart, the source models, the notebooks' [`Session`] (every step of the
//! method through the experiment store, one call each), attack comparisons ([`attacks`]) and
//! ablations ([`ablation`]).

pub mod ablation;
pub mod attacks;

pub use ablation::{Ablation, AblationReport, Knob};
pub use attacks::{adversarial_examples, compare_attacks, robustness_curves, AttackComparison, EpsSweep};

use crate::attack::{robust_evaluate, ThreatModel};
use crate::data::Splits;
use crate::display::{evcxr_emit, Table};
use crate::error::Result;
use crate::model::{Arch, Network, NetworkSpec};
use crate::plot::Figure;
use crate::runtime::Runtime;
use crate::study::Pick;
pub use crate::study::{FineTuning, ImpFamily, Pretraining, Profile};
use crate::train::{evaluate, train_with, Callbacks, Evaluation, History, RegimeKind, TrainConfig};
use crate::transfer::TransferReport;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The splits a profile trains on: the embedded dataset with 10% of train held out for
/// validation, and the profile's fraction of the rest.
pub fn profile_splits(dataset: impl Into<crate::data::DataSource>, profile: Profile, seed: u64) -> Result<Splits> {
    let holdout = crate::study::desc::HoldOut { seed, ..crate::study::desc::HoldOut::STUDY };
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
    let test = evaluate(&net, &splits.test, cfg.eval_batch_size)?;
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

/// A pre-trained source model and its SA / RA on the source test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceModel {
    pub pretraining: Pretraining,
    pub eps: f64,
    pub history: History,
    /// Standard accuracy on the test split.
    pub sa: f64,
    /// Robust accuracy under the study's test attacks (FGSM then PGD-20, step eps/4, random
    /// start) on the test split (the profile's stratified fraction of it, `eval_examples` images).
    pub ra: f64,
    pub eval_examples: usize,
    pub seconds: f64,
    pub weights: PathBuf,
}

/// The three source models side by side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceModels {
    pub dataset: String,
    pub profile: Profile,
    pub models: Vec<SourceModel>,
}

impl SourceModels {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Source models on {} ({} profile)", self.dataset, self.profile.name()),
            &["pre-training", "eps", "epochs", "SA %", "RA % (PGD-20)", "training s"],
        );
        for m in &self.models {
            t.push(vec![
                m.pretraining.to_string(),
                crate::attack::format_eps(m.eps),
                m.history.epochs.len().to_string(),
                format!("{:.2}", 100.0 * m.sa),
                format!("{:.2}", 100.0 * m.ra),
                format!("{:.0}", m.history.total_seconds()),
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        self.table().evcxr_display();
    }
}

impl std::fmt::Display for SourceModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
    }
}

/// The evaluation attacks for SA / RA at L-inf radius `eps`: FGSM, then PGD-20 (step eps/4).
pub fn evaluation_attacks(eps: f64) -> Vec<crate::attack::AttackSpec> {
    ThreatModel::linf(eps).test_attacks()
}

/// One transfer to run with [`Session::transfer`]: what transfers (from [`Session::dense`] or
/// [`Session::ticket`]), how it is fine-tuned (default standard), on which fraction of the
/// downstream data (default the study's first) and with which seed (default 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferSpec {
    pub pretraining: Pretraining,
    /// `None`: the dense network; `Some((family, round))`: that IMP round's ticket.
    pub ticket: Option<(ImpFamily, usize)>,
    pub fine_tuning: FineTuning,
    /// `None`: the study's first fraction.
    pub fraction: Option<f64>,
    pub seed: u64,
}

impl TransferSpec {
    pub fn fine_tune(self, fine_tuning: FineTuning) -> Self {
        TransferSpec { fine_tuning, ..self }
    }
    pub fn fraction(self, fraction: f64) -> Self {
        TransferSpec { fraction: Some(fraction), ..self }
    }
    pub fn seed(self, seed: u64) -> Self {
        TransferSpec { seed, ..self }
    }
}

/// What every notebook starts with: the runtime and profile from the environment
/// (`DOUBLEWIN_DEVICE`, `DOUBLEWIN_PROFILE`, ...), the default experiment store and the profile's
/// study. `Session::from_env()?` in a cell replaces the same five lines in every notebook.
#[derive(Debug)]
pub struct Session {
    pub rt: Runtime,
    pub profile: Profile,
    pub store: crate::store::Store,
    pub study: crate::study::Study,
}

impl Session {
    /// The runtime, profile, default store and study from the environment (see environment.md).
    pub fn from_env() -> Result<Session> {
        let store = crate::store::Store::open(crate::store::Store::default_root())?;
        Ok(Session::new(Runtime::from_env()?, Profile::from_env()?, store))
    }

    /// A session on a given runtime, profile and store (the profile's study).
    pub fn new(rt: Runtime, profile: Profile, store: crate::store::Store) -> Session {
        Session { rt, profile, store, study: crate::study::Study::for_profile(profile) }
    }

    /// The study's results: run what is missing, load the rest from the store.
    pub fn results(&self) -> Result<crate::study::StudyResults> {
        self.study.run(&self.rt, &self.store)
    }

    /// The study's report (results and figures).
    pub fn report(&self) -> Result<crate::study::StudyReport> {
        self.study.report(&self.rt, &self.store)
    }

    /// A pre-trained source network of the study (from the store, or trained now).
    pub fn source(&self, pretraining: Pretraining) -> Result<Network> {
        Ok(self.study.pretrained(&self.rt, &self.store, pretraining.regime())?.0)
    }

    /// The source model of a pre-training: from the store, or trained now; with SA and RA on
    /// the profile's test subset.
    pub fn source_model(&self, pretraining: Pretraining) -> Result<SourceModel> {
        let start = std::time::Instant::now();
        let (net, history) = self.study.pretrained(&self.rt, &self.store, pretraining.regime())?;
        let (_, test) = self.study.source.load()?;
        let test = test.fraction(self.profile.robust_eval_fraction(), self.rt.seed)?;
        let eval = robust_evaluate(&net, &test, &self.study.threat.test_attacks(), 500)?;
        crate::progress::note(&format!(
            "{pretraining}: SA {:.2}%  RA {:.2}% on {} test images",
            100.0 * eval.sa,
            100.0 * eval.ra,
            eval.examples
        ));
        Ok(SourceModel {
            pretraining,
            eps: self.study.threat.eps,
            history,
            sa: eval.sa,
            ra: eval.ra,
            eval_examples: eval.examples,
            seconds: start.elapsed().as_secs_f64(),
            weights: self.study.pretrained_path(&self.store, pretraining.regime())?,
        })
    }

    /// The three source models (STD, FAT, AT) with their SA and RA on the profile's test subset.
    pub fn sources(&self) -> Result<SourceModels> {
        let models = Pretraining::ALL.iter().map(|&p| self.source_model(p)).collect::<Result<Vec<_>>>()?;
        Ok(SourceModels { dataset: self.study.source.name().into(), profile: self.profile, models })
    }

    /// The source splits the study pre-trains on (validation held out, the profile's fraction).
    pub fn source_splits(&self) -> Result<Splits> {
        self.study.pretrain_desc(RegimeKind::Standard)?.splits()
    }

    /// The splits of the study's first downstream dataset.
    pub fn downstream_splits(&self) -> Result<Splits> {
        crate::study::desc::HoldOut::STUDY.splits(self.downstream()?)
    }

    fn downstream(&self) -> Result<crate::data::DataSource> {
        self.study.downstream.first().copied().ok_or_else(|| crate::error::Error::invalid("the study has no downstream dataset", "add one"))
    }

    /// The study's first downstream data fraction (what a transfer uses unless told otherwise).
    pub fn fraction(&self) -> f64 {
        self.study.fractions.first().copied().unwrap_or(1.0)
    }

    /// The study's middle ticket round (of its verdict rounds; the lower middle of an even
    /// count: 4 of [4, 8], 6 of [2, 4, 6, 8, 10]).
    pub fn middle_round(&self) -> usize {
        self.study.rounds.get(self.study.rounds.len().saturating_sub(1) / 2).copied().unwrap_or(1)
    }

    /// The IMP run of `family` from the source of `pretraining`: its tickets, round by round
    /// (from the store, or computed now).
    pub fn imp(&self, pretraining: Pretraining, family: ImpFamily) -> Result<crate::prune::Tickets> {
        self.study.imp_run(&self.rt, &self.store, pretraining.regime(), family.regime())
    }

    /// The mask of an IMP round (its IMP run computed now if the store lacks it).
    pub fn mask(&self, pretraining: Pretraining, family: ImpFamily, round: usize) -> Result<crate::prune::Mask> {
        self.mask_of(pretraining.regime(), family.regime(), round)
    }

    fn mask_of(&self, pretraining: RegimeKind, family: RegimeKind, round: usize) -> Result<crate::prune::Mask> {
        Ok(self
            .study
            .imp_run(&self.rt, &self.store, pretraining, family)?
            .round(round)
            .ok_or_else(|| {
                crate::error::Error::invalid(format!("IMP has no round {round}"), format!("use 1..={}", self.study.imp_rounds()))
            })?
            .mask
            .clone())
    }

    /// The dense network of the source of `pretraining`, as a transfer to describe further
    /// (`.fine_tune(..)`, `.fraction(..)`, `.seed(..)`) and run with [`Session::transfer`].
    pub fn dense(&self, pretraining: Pretraining) -> TransferSpec {
        TransferSpec { pretraining, ticket: None, fine_tuning: FineTuning::Standard, fraction: None, seed: 0 }
    }

    /// The ticket of `round` of the IMP `family` from the source of `pretraining`, as a transfer
    /// like [`Session::dense`].
    pub fn ticket(&self, pretraining: Pretraining, family: ImpFamily, round: usize) -> TransferSpec {
        TransferSpec { ticket: Some((family, round)), ..self.dense(pretraining) }
    }

    /// Runs a transfer on the study's first downstream dataset, through the store (computed now
    /// if the store lacks it).
    pub fn transfer(&self, spec: &TransferSpec) -> Result<TransferReport> {
        let (dataset, fraction) = (self.downstream()?, spec.fraction.unwrap_or_else(|| self.fraction()));
        let pick = match spec.ticket {
            None => Pick::dense(spec.pretraining.regime(), dataset, fraction),
            Some((family, round)) => Pick::ticket(spec.pretraining.regime(), family.regime(), round, dataset, fraction),
        };
        self.study.transfer_run(&self.rt, &self.store, pick, spec.fine_tuning.regime(), spec.seed)
    }

    /// Does pre-training help at `fraction` of the downstream data? The dense pre-trained
    /// network against the same architecture trained from scratch (every seed, both
    /// fine-tunings): ask this before any ticket verdict.
    pub fn gate(&self, pretraining: Pretraining, fraction: f64) -> Result<crate::study::GateCell> {
        self.study.gate_run(&self.rt, &self.store, pretraining.regime(), fraction)
    }

    /// The double-win verdict on the tickets of `family` at the study's rounds, from the source
    /// of `pretraining`, over the study's seeds and fine-tunings at `fraction` of the data
    /// (computing what the store lacks).
    pub fn verdict(&self, pretraining: Pretraining, family: ImpFamily, fraction: f64) -> Result<Verdict> {
        self.study.verdict_run(&self.rt, &self.store, pretraining.regime(), family.regime(), &self.study.rounds, fraction)
    }

    /// The loss landscape of the study's Fig. 6 fine-tuning of the source of `pretraining` at
    /// `fraction`.
    pub fn landscape(&self, pretraining: Pretraining, fraction: f64) -> Result<crate::landscape::Landscape> {
        self.study.landscape_run(&self.rt, &self.store, pretraining.regime(), fraction)
    }

    /// The per-epoch checkpoints of that fine-tuning, read one at a time.
    pub fn trajectory(&self, pretraining: Pretraining, fraction: f64) -> Result<crate::landscape::Trajectory> {
        self.landscape(pretraining, fraction)?;
        crate::landscape::Trajectory::open(self.study.trajectory_dir(&self.store, pretraining.regime(), fraction)?, self.rt.device)
    }

    /// The mask of the ticket the Fig. 6 landscapes fine-tune (the study's landscape family
    /// and round) from the source of `pretraining`.
    pub fn landscape_mask(&self, pretraining: Pretraining) -> Result<crate::prune::Mask> {
        let plan = self.study.landscapes.as_ref().ok_or_else(|| {
            crate::error::Error::invalid("this study has no landscapes", "use a profile with landscapes (tiny, small, full)")
        })?;
        self.mask_of(pretraining.regime(), plan.family, plan.round)
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &format!("<pre>{}</pre>", crate::display::escape_html(&self.to_string())));
    }
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} | profile {} | study of {} steps | store {}",
            self.rt.describe(),
            self.profile.name(),
            self.study.plan().map(|p| p.len()).unwrap_or(0),
            self.store.root().display()
        )
    }
}
