//! The end-to-end runs behind the CLI's main job and the notebooks (quickstart, source models,
//! attack figures), sized by the study's profiles: `tiny` for CI and headless notebook checks,
//! `small` for a laptop, `full` for the whole embedded data.

use crate::attack::{robust_evaluate, Pgd, ThreatModel};
use crate::data::{Embedded, Splits};
use crate::display::{evcxr_emit, Table};
use crate::error::Result;
use crate::model::{Arch, Network, NetworkSpec};
use crate::plot::Figure;
use crate::runtime::Runtime;
pub use crate::study::Profile;
use crate::train::{evaluate, train_with, Callbacks, Evaluation, History, RegimeKind, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The splits a profile trains on: the embedded dataset with 10% of train held out for
/// validation, and the profile's fraction of the rest.
pub fn profile_splits(dataset: Embedded, profile: Profile, seed: u64) -> Result<Splits> {
    dataset.splits(0.1, seed)?.with_train_fraction(profile.train_fraction(), seed)
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
            format!("{:.2}", 100.0 * self.history.best().map(|r| r.val.accuracy).unwrap_or(0.0)),
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

/// Trains the small ConvNet on the embedded Fashion-MNIST (the source domain), evaluates it on
/// the test split and writes `report.md`, `report.json`, `accuracy.svg`, `loss.svg` and the
/// weights into `out`.
pub fn quickstart(rt: &Runtime, profile: Profile, out: &Path) -> Result<QuickstartReport> {
    let start = std::time::Instant::now();
    let dataset = Embedded::FashionMnist;
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
    pub pretraining: RegimeKind,
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
                m.pretraining.short().into(),
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

/// The source model of a pre-training in the profile's study (see [`crate::study::Study`]):
/// from the store, or trained now; with SA and RA on the profile's test subset.
pub fn pretrain(rt: &Runtime, pretraining: RegimeKind, profile: Profile, store: &crate::store::Store) -> Result<SourceModel> {
    let start = std::time::Instant::now();
    let study = crate::study::Study::for_profile(profile);
    let (net, history) = study.pretrained(rt, store, pretraining)?;
    let (_, test) = study.source.load()?;
    let test = test.fraction(profile.robust_eval_fraction(), rt.seed)?;
    let eval = robust_evaluate(&net, &test, &study.threat.test_attacks(), 500)?;
    crate::progress::note(&format!(
        "{}: SA {:.2}%  RA {:.2}% on {} test images",
        pretraining.short(),
        100.0 * eval.sa,
        100.0 * eval.ra,
        eval.examples
    ));
    Ok(SourceModel {
        pretraining,
        eps: study.threat.eps,
        history,
        sa: eval.sa,
        ra: eval.ra,
        eval_examples: eval.examples,
        seconds: start.elapsed().as_secs_f64(),
        weights: study.pretrained_path(store, pretraining)?,
    })
}

/// The standard, fast-adversarial and adversarial source models of the profile's study.
pub fn pretrain_sources(rt: &Runtime, profile: Profile, store: &crate::store::Store) -> Result<SourceModels> {
    let models = RegimeKind::ALL.iter().map(|&p| pretrain(rt, p, profile, store)).collect::<Result<Vec<_>>>()?;
    Ok(SourceModels { dataset: Embedded::FashionMnist.name().into(), profile, models })
}

/// Clean test images and their adversarial versions under `attack`, each captioned with the
/// network's prediction.
pub fn adversarial_examples(net: &Network, data: &crate::data::Dataset, attack: &crate::attack::AttackSpec, n: i64) -> Result<Figure> {
    use crate::attack::Attack;
    let x = data.float_images(0, n)?.f_to_device(net.device())?;
    let y = data.labels().f_narrow(0, 0, x.size()[0])?.f_to_device(net.device())?;
    let adv = attack.perturb(net, &x, &y)?;
    let names = |preds: Vec<i64>| preds.into_iter().map(|p| data.classes()[p as usize].clone()).collect::<Vec<_>>();
    let truth = names(Vec::<i64>::try_from(y.f_to_device(tch::Device::Cpu)?)?);
    let amplified = adv.f_sub(&x)?.f_mul_scalar(0.5 / attack.eps().max(1e-12))?.f_add_scalar(0.5)?;
    Figure::image_grid(
        &format!("{} on {}", attack.name(), net.arch().name()),
        &[("clean".into(), x.shallow_clone()), ("adversarial".into(), adv.shallow_clone()), ("perturbation".into(), amplified)],
        &[names(net.predict(&x)?), names(net.predict(&adv)?), truth.iter().map(|t| format!("true: {t}")).collect()],
    )
}

/// Accuracy under PGD as eps grows, one curve per network, with each network's masking check.
pub fn robustness_curves(
    nets: &[(String, &Network)],
    data: &crate::data::Dataset,
    pgd: &Pgd,
    eps: &[f64],
) -> Result<(Figure, Vec<crate::attack::MaskingCheck>)> {
    let mut series = Vec::new();
    let mut checks = Vec::new();
    for (name, net) in nets {
        let check = crate::attack::MaskingCheck::run(net, data, pgd, eps, 250)?;
        series.push(crate::plot::Series::new(
            name.clone(),
            check.eps.iter().zip(&check.pgd_accuracy).map(|(e, a)| (*e, 100.0 * a)).collect(),
        ));
        checks.push(check);
    }
    Ok((Figure::lines("Accuracy under PGD vs eps", "eps (L-inf)", "accuracy (%)", &series)?, checks))
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
    pub fn from_env() -> Result<Session> {
        let profile = Profile::from_env()?;
        Ok(Session {
            rt: Runtime::from_env()?,
            profile,
            store: crate::store::Store::open(crate::store::Store::default_root())?,
            study: crate::study::Study::for_profile(profile),
        })
    }

    /// The study's results: run what is missing, load the rest from the store.
    pub fn results(&self) -> Result<crate::study::StudyResults> {
        self.study.run(&self.rt, &self.store)
    }

    /// The study's report (results and figures).
    pub fn report(&self) -> Result<crate::study::StudyReport> {
        self.study.report(&self.rt, &self.store)
    }

    /// A ticket of the study (run the study first).
    pub fn ticket(&self, pre: RegimeKind, family: RegimeKind, round: usize) -> Result<crate::prune::Mask> {
        self.study.ticket(&self.store, pre, family, round)
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
