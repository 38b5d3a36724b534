//! A [`Study`] declares the grid of the paper's experiments (pre-trainings x IMP families x
//! ticket rounds x downstream datasets x fine-tunings x data fractions x seeds) and runs what
//! the [`Store`] does not have yet, with progress and an ETA. Re-running a finished study loads
//! everything from disk; a killed one resumes at the step it was in.

mod report;

pub use report::{StudyReport, VerdictCell};

use crate::attack::Pgd;
use crate::data::{DataSource, Embedded};
use crate::error::{Error, Result};
use crate::landscape::{landscape, load_trajectory, Landscape, LandscapeConfig, LandscapeLoss};
use crate::model::{Arch, Network, NetworkSpec};
use crate::prune::{imp, ImpConfig, Mask};
use crate::runtime::Runtime;
use crate::store::Store;
use crate::train::{train_with, Callbacks, History, Regime, TrainConfig};
use crate::transfer::{transfer, transfer_recorded, FineTuning, TransferConfig, TransferReport};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How much data and how many epochs a walkthrough uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Profile {
    /// Seconds: for CI and headless notebook runs.
    Tiny,
    /// Minutes on a 2-core laptop.
    Small,
    /// All embedded data.
    Full,
    /// CIFAR-scale, for CUDA machines: ResNet-18 pre-trained on CIFAR-100, tickets transferred
    /// to CIFAR-10 and SVHN (downloaded on first use) with the paper's attacks.
    Paper,
}

impl Profile {
    /// `DOUBLEWIN_PROFILE` (tiny | small | full | paper), default `small`.
    pub fn from_env() -> Result<Profile> {
        std::env::var("DOUBLEWIN_PROFILE").unwrap_or_else(|_| "small".into()).parse()
    }
    /// Fraction of the source training split used.
    pub fn train_fraction(self) -> f64 {
        match self {
            Profile::Tiny => 0.05,
            Profile::Small => 0.1,
            Profile::Full | Profile::Paper => 1.0,
        }
    }
    pub fn epochs(self) -> usize {
        match self {
            Profile::Tiny => 2,
            Profile::Small => 4,
            Profile::Full => 15,
            Profile::Paper => 100,
        }
    }
    /// PGD steps of adversarial training (the paper's 10 in `full`; fewer keep the CPU profiles
    /// short, with the step size scaled so the steps still span the eps-ball).
    pub fn adversarial_steps(self) -> usize {
        match self {
            Profile::Tiny => 3,
            Profile::Small => 5,
            Profile::Full | Profile::Paper => 10,
        }
    }
    /// Fraction of the test split (stratified) on which robust accuracy is measured.
    pub fn robust_eval_fraction(self) -> f64 {
        match self {
            Profile::Tiny => 0.05,
            Profile::Small => 0.2,
            Profile::Full | Profile::Paper => 1.0,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Profile::Tiny => "tiny",
            Profile::Small => "small",
            Profile::Full => "full",
            Profile::Paper => "paper",
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
            "paper" => Ok(Profile::Paper),
            other => Err(Error::invalid(format!("unknown profile '{other}'"), "use tiny, small, full or paper")),
        }
    }
}

/// The three ways the paper pre-trains source models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pretraining {
    /// Standard training (STD).
    Standard,
    /// Fast adversarial training, FGSM-RS (FAT).
    Fast,
    /// PGD adversarial training (AT).
    Adversarial,
}

impl Pretraining {
    pub const ALL: [Pretraining; 3] = [Pretraining::Standard, Pretraining::Fast, Pretraining::Adversarial];

    pub fn short(self) -> &'static str {
        match self {
            Pretraining::Standard => "STD",
            Pretraining::Fast => "FAT",
            Pretraining::Adversarial => "AT",
        }
    }

    /// The training regime at radius `eps`; adversarial training uses `pgd_steps` steps of
    /// size 2.5 eps / steps (eps/4 at the paper's 10 steps).
    pub fn regime(self, eps: f64, pgd_steps: usize) -> Regime {
        match self {
            Pretraining::Standard => Regime::Standard,
            Pretraining::Fast => Regime::fast(eps),
            Pretraining::Adversarial => Regime::Adversarial(Pgd::linf(eps, 2.5 * eps / pgd_steps as f64, pgd_steps).train_mode(true)),
        }
    }
}

impl std::str::FromStr for Pretraining {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pretraining> {
        match s.trim().to_ascii_lowercase().as_str() {
            "std" | "standard" => Ok(Pretraining::Standard),
            "fat" | "fast" => Ok(Pretraining::Fast),
            "at" | "adversarial" | "pgd" => Ok(Pretraining::Adversarial),
            other => Err(Error::invalid(format!("unknown pre-training '{other}'"), "use standard (std), fast (fat) or adversarial (at)")),
        }
    }
}

/// Re-training inside IMP: standard (masks m^ST) or adversarial (m^AT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    ST,
    AT,
}

/// The declared grid and every recipe in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub source: DataSource,
    pub arch: Arch,
    /// Fraction of the source training split used for pre-training and IMP.
    pub source_fraction: f64,
    /// Fraction of that pre-training subset IMP re-trains on between rounds (stratified; 1.0 =
    /// all of it). Below 1 it makes m^AT affordable on a laptop: each round's PGD re-training
    /// costs several times a standard epoch.
    #[serde(default = "one")]
    pub imp_fraction: f64,
    /// L-inf radius for adversarial pre-training, m^AT re-training and transfer.
    pub eps: f64,
    pub pretrainings: Vec<Pretraining>,
    pub pretrain: TrainConfig,
    /// PGD steps of adversarial pre-training / re-training.
    pub adversarial_steps: usize,
    pub families: Vec<Family>,
    pub imp: ImpConfig,
    /// IMP rounds whose tickets are transferred (the dense baseline always is).
    pub rounds: Vec<usize>,
    pub downstream: Vec<DataSource>,
    pub fine_tunings: Vec<FineTuning>,
    pub fractions: Vec<f64>,
    pub seeds: Vec<u64>,
    pub transfer: TransferConfig,
    /// Verdict tolerance with one seed (fraction: 0.005 = 0.5 points).
    pub tolerance: f64,
    /// The loss landscapes of the paper's Fig. 6 (none when `None`).
    #[serde(default)]
    pub landscapes: Option<LandscapePlan>,
}

fn one() -> f64 {
    1.0
}

/// Which transfers get a loss landscape: one ticket (IMP family and round), fine-tuned on one
/// downstream dataset at several data fractions, from every pre-training of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandscapePlan {
    pub family: Family,
    pub round: usize,
    pub dataset: DataSource,
    pub fine_tuning: FineTuning,
    pub fractions: Vec<f64>,
    pub config: LandscapeConfig,
}

/// One landscape of a study, with the fine-tuning run it was drawn from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LandscapeRecord {
    pub pretraining: Pretraining,
    pub fraction: f64,
    pub report: TransferReport,
    pub landscape: Landscape,
}

impl Study {
    /// The walkthrough's study at a profile: every pre-training and both IMP families. `full`:
    /// tickets at rounds 2..10 (36% to 89% sparsity), transfer to MNIST, Animal-MNIST and digits
    /// at 100 / 10 / 1% of their data, PGD-10; `small` (a laptop, minutes): rounds 2, 4, 6
    /// (36%, 59%, 74%), digits at 100 / 10%, PGD-3; `tiny` (tests): rounds 1, 2, digits at
    /// 100 / 10%; `paper`: see [`Study::paper`].
    pub fn for_profile(profile: Profile) -> Study {
        if profile == Profile::Paper {
            return Study::paper();
        }
        let eps = 0.1;
        // (source fraction, pre-training epochs, IMP re-training epochs, ticket rounds, fine-tuning
        //  epochs and minimum steps, downstream datasets, data fractions, adversarial PGD steps)
        let (src_frac, pre_epochs, imp_epochs, rounds, ft_epochs, min_steps, downstream, fractions, steps) = match profile {
            Profile::Tiny => (0.05, 2, 1, vec![1, 2], 2, 0, vec![Embedded::Digits.into()], vec![1.0, 0.1], 3),
            Profile::Small => (0.1, 4, 1, vec![2, 4, 6], 4, 120, vec![Embedded::Digits.into()], vec![1.0, 0.1], 3),
            Profile::Full | Profile::Paper => (
                1.0,
                15,
                5,
                vec![2, 4, 6, 8, 10],
                15,
                2000,
                vec![Embedded::Mnist.into(), Embedded::AnimalMnist.into(), Embedded::Digits.into()],
                vec![1.0, 0.1, 0.01],
                10,
            ),
        };
        // Fig. 6: the round-6 m^ST ticket (73.79% sparse), adversarially fine-tuned on digits at
        // 100 / 10 / 1% of the data; `tiny` draws the round-2 ticket on a 5 x 5 grid.
        let (ls_round, ls_fractions, ls_config) = match profile {
            Profile::Tiny => (2, vec![1.0, 0.1], LandscapeConfig::default().resolution(5).examples(64)),
            Profile::Small => (
                6,
                vec![1.0, 0.1, 0.01],
                LandscapeConfig::default().resolution(13).examples(200).loss(LandscapeLoss::Adversarial { eps, steps: 3 }),
            ),
            Profile::Full | Profile::Paper => (
                6,
                vec![1.0, 0.1, 0.01],
                LandscapeConfig::default().resolution(21).examples(500).loss(LandscapeLoss::Adversarial { eps, steps: 10 }),
            ),
        };
        let rounds_needed = rounds.iter().copied().max().unwrap_or(1).max(ls_round);
        Study {
            source: Embedded::FashionMnist.into(),
            arch: Arch::convnet(),
            source_fraction: src_frac,
            imp_fraction: if profile == Profile::Small { 0.34 } else { 1.0 },
            eps,
            pretrainings: Pretraining::ALL.to_vec(),
            pretrain: TrainConfig::default().epochs(pre_epochs),
            adversarial_steps: steps,
            families: vec![Family::ST, Family::AT],
            imp: ImpConfig::default().rounds(rounds_needed).retrain(TrainConfig::default().epochs(imp_epochs).lr(0.01)),
            rounds,
            downstream,
            fine_tunings: FineTuning::BOTH.to_vec(),
            fractions,
            // Two fine-tuning seeds in `small` draw seed bands and set the verdict's tolerance to
            // the seed spread; `full` adds a third.
            seeds: match profile {
                Profile::Tiny => vec![0],
                Profile::Small => vec![0, 1],
                Profile::Full | Profile::Paper => vec![0, 1, 2],
            },
            transfer: TransferConfig {
                eps,
                train_steps: steps,
                val_steps: steps,
                test_steps: 20,
                recipe: TrainConfig::default().epochs(ft_epochs).lr(0.02).batch_size(64),
                min_steps,
                ..TransferConfig::default()
            },
            tolerance: 0.005,
            landscapes: Some(LandscapePlan {
                family: Family::ST,
                round: ls_round,
                dataset: Embedded::Digits.into(),
                fine_tuning: FineTuning::Adversarial,
                fractions: ls_fractions,
                config: ls_config,
            }),
        }
    }

    /// The paper's protocol at CIFAR scale, for a CUDA machine (days of GPU time; never run on
    /// the 2-core development machine). ImageNet is not downloadable, so CIFAR-100 stands in as
    /// the source domain: ResNet-18 (3x3 stem) pre-trained STD / FAT / AT at eps 8/255 (PGD-10,
    /// step 2/255), IMP to round 10 (89.26%) re-training 10 epochs per round (lr 5e-4, as the
    /// official code), tickets at 36 / 59 / 74 / 83 / 89% transferred to CIFAR-10 and SVHN at
    /// 100 / 10 / 1% with 3 seeds, PGD-20 evaluation, and the Fig. 6 landscapes on CIFAR-10.
    /// One fine-tuning recipe serves both regimes (the paper uses lr 0.001 / 150 epochs for
    /// standard and lr 0.1 / 100 epochs for adversarial fine-tuning): edit `transfer.recipe`
    /// through `study show` / `--config` to match either exactly.
    pub fn paper() -> Study {
        use crate::data::download::Remote;
        let eps = 8.0 / 255.0;
        let rounds = vec![2, 4, 6, 8, 10];
        Study {
            source: Remote::Cifar100.into(),
            arch: Arch::resnet18_cifar(),
            source_fraction: 1.0,
            imp_fraction: 1.0,
            eps,
            pretrainings: Pretraining::ALL.to_vec(),
            pretrain: TrainConfig::default().epochs(100).lr(0.1).batch_size(128),
            adversarial_steps: 10,
            families: vec![Family::ST, Family::AT],
            imp: ImpConfig::default().rounds(10).retrain(TrainConfig::default().epochs(10).lr(5e-4).weight_decay(1e-4).batch_size(128)),
            rounds,
            downstream: vec![Remote::Cifar10.into(), Remote::Svhn.into()],
            fine_tunings: FineTuning::BOTH.to_vec(),
            fractions: vec![1.0, 0.1, 0.01],
            seeds: vec![0, 1, 2],
            transfer: TransferConfig {
                eps,
                train_steps: 10,
                val_steps: 10,
                test_steps: 20,
                recipe: TrainConfig::default().epochs(100).lr(0.01).batch_size(128),
                min_steps: 4000,
                ..TransferConfig::default()
            },
            tolerance: 0.005,
            landscapes: Some(LandscapePlan {
                family: Family::ST,
                round: 6,
                dataset: Remote::Cifar10.into(),
                fine_tuning: FineTuning::Adversarial,
                fractions: vec![1.0, 0.1, 0.01],
                config: LandscapeConfig::default().resolution(21).examples(500).loss(LandscapeLoss::Adversarial { eps, steps: 10 }),
            }),
        }
    }

    /// Number of steps (pre-trainings, IMP runs, transfers) in the grid.
    pub fn size(&self) -> usize {
        let p = self.pretrainings.len();
        let subnets = 1 + self.families.len() * self.rounds.len();
        let landscapes = self.landscapes.as_ref().map_or(0, |l| 2 * p * l.fractions.len());
        p + p * self.families.len()
            + p * subnets * self.downstream.len() * self.fine_tunings.len() * self.fractions.len() * self.seeds.len()
            + landscapes
    }

    /// Runs every missing step; returns all results.
    pub fn run(&self, rt: &Runtime, store: &Store) -> Result<StudyResults> {
        if let Some(plan) = &self.landscapes {
            if plan.config.directions == crate::landscape::Directions::Pca
                && self.transfer.recipe.epochs < 2
                && self.transfer.min_steps == 0
            {
                return Err(Error::invalid(
                    format!(
                        "PCA landscapes need at least 3 checkpoints, the fine-tuning recipe has {} epoch(s)",
                        self.transfer.recipe.epochs
                    ),
                    "raise transfer.recipe.epochs to 2 or more, use random directions, or set landscapes to null",
                ));
            }
            if !self.families.contains(&plan.family) || self.seeds.is_empty() {
                return Err(Error::invalid(
                    format!(
                        "landscapes use {:?} tickets, the study runs IMP for {:?} (seeds {:?})",
                        plan.family, self.families, self.seeds
                    ),
                    "add the landscape's family to study.families and at least one seed",
                ));
            }
        }
        let landscape_round = self.landscapes.as_ref().map(|l| l.round);
        if self.rounds.iter().chain(landscape_round.as_ref()).any(|&r| r == 0 || r > self.imp.rounds) {
            return Err(Error::invalid(
                format!("ticket rounds {:?} outside 1..={}", self.rounds, self.imp.rounds),
                "raise imp.rounds or pick lower rounds",
            ));
        }
        let start = Instant::now();
        let mut progress = StudyProgress { total: self.size(), done: 0, computed: 0, compute_seconds: 0.0 };
        let source = self.source.splits(0.1, 0)?.with_train_fraction(self.source_fraction, 0)?;
        let imp_source = if self.imp_fraction < 1.0 { source.with_train_fraction(self.imp_fraction, 0)? } else { source.clone() };
        let mut transfers = Vec::new();
        let mut landscapes = Vec::new();
        let mut downstream_splits = Vec::new();
        for d in &self.downstream {
            downstream_splits.push((*d, d.splits(0.1, 0)?));
        }
        for &pre in &self.pretrainings {
            let pre_key = self.pretrain_key(pre, rt.seed).0;
            let (pretrained, _) = progress
                .step(&format!("pre-train {}", pre.short()), store.has("pretrain", &pre_key), || self.pretrained(rt, store, pre))?;
            let mut subnets: Vec<(Option<Family>, usize, Option<Mask>)> = vec![(None, 0, None)];
            for &family in &self.families {
                let (imp_key, imp_cfg) = self.imp_key(&pre_key, family, rt.seed);
                let _sparsities: Vec<f64> =
                    progress.step(&format!("IMP {} from {}", family_name(family), pre.short()), store.has("imp", &imp_key), || {
                        store.get_or_run("imp", &imp_key, serde_json::json!({"pretraining": pre, "family": family}), |dir| {
                            Ok(imp(&pretrained, &imp_source, &imp_cfg, dir)?.0.iter().map(|t| t.sparsity()).collect::<Vec<f64>>())
                        })
                    })?;
                for &r in &self.rounds {
                    let mask = Mask::load(store.dir("imp", &imp_key).join(format!("round-{r:02}.mask.safetensors")))?;
                    subnets.push((Some(family), r, Some(mask)));
                }
            }
            for (d, splits) in &downstream_splits {
                for (family, round, mask) in &subnets {
                    for &ft in &self.fine_tunings {
                        for &fraction in &self.fractions {
                            for &seed in &self.seeds {
                                let cfg = TransferConfig { fine_tuning: ft, fraction, seed, ..self.transfer.clone() };
                                let mask_id =
                                    mask.as_ref().map(|m| format!("{:?}/{round}/{}", family, m.kept())).unwrap_or_else(|| "dense".into());
                                let key = Store::key("transfer", &[&pre_key, &mask_id, d.name(), &cfg.hash()]);
                                let label = format!(
                                    "transfer {} {} -> {} ({}, {}%, seed {seed})",
                                    pre.short(),
                                    subnet_name(*family, *round),
                                    d.name(),
                                    ft.name(),
                                    100.0 * fraction
                                );
                                let report: TransferReport = progress.step(&label, store.has("transfer", &key), || {
                                    store.get_or_run("transfer", &key, serde_json::json!({"label": label}), |_| {
                                        transfer(&pretrained, mask.as_ref(), splits, &cfg)
                                    })
                                })?;
                                transfers.push(TransferRecord { pretraining: pre, family: *family, round: *round, dataset: *d, report });
                            }
                        }
                    }
                }
            }
            if let Some(plan) = &self.landscapes {
                landscapes.extend(self.run_landscapes(rt, store, &mut progress, plan, pre, &pretrained)?);
            }
        }
        Ok(StudyResults {
            study: self.clone(),
            transfers,
            landscapes,
            seconds: start.elapsed().as_secs_f64(),
            computed_steps: progress.computed,
        })
    }

    /// The fine-tuning runs with per-epoch checkpoints and the landscapes drawn from them.
    fn run_landscapes(
        &self,
        rt: &Runtime,
        store: &Store,
        progress: &mut StudyProgress,
        plan: &LandscapePlan,
        pre: Pretraining,
        pretrained: &Network,
    ) -> Result<Vec<LandscapeRecord>> {
        let pre_key = self.pretrain_key(pre, rt.seed).0;
        let imp_key = self.imp_key(&pre_key, plan.family, rt.seed).0;
        let mask = Mask::load(store.dir("imp", &imp_key).join(format!("round-{:02}.mask.safetensors", plan.round)))?;
        let splits = plan.dataset.splits(0.1, 0)?;
        let name = subnet_name(Some(plan.family), plan.round);
        let mut out = Vec::new();
        for &fraction in &plan.fractions {
            let (run_key, cfg) = self.trajectory_key(plan, &pre_key, &imp_key, fraction);
            let label = format!(
                "{} {name} -> {} ({}, {}%) with checkpoints",
                pre.short(),
                plan.dataset.name(),
                plan.fine_tuning.name(),
                100.0 * fraction
            );
            let report: TransferReport = progress.step(&format!("fine-tune {label}"), store.has("trajectory", &run_key), || {
                store.get_or_run("trajectory", &run_key, serde_json::json!({"label": label}), |dir| {
                    transfer_recorded(pretrained, Some(&mask), &splits, &cfg, Some(&dir.join("checkpoints")))
                })
            })?;
            let config = serde_json::to_string(&plan.config).unwrap_or_default();
            let key = Store::key("landscape", &[&run_key, &config]);
            let title = format!("{} {}, {}% data", pre.short(), name, 100.0 * fraction);
            let checkpoints = store.dir("trajectory", &run_key).join("checkpoints");
            let landscape: Landscape = progress.step(&format!("landscape {title}"), store.has("landscape", &key), || {
                store.get_or_run("landscape", &key, serde_json::json!({"title": title}), |_| {
                    let trajectory = load_trajectory(&checkpoints, rt.device)?;
                    landscape(&title, &trajectory, Some(&mask), &splits.test, &plan.config)
                })
            })?;
            out.push(LandscapeRecord { pretraining: pre, fraction, report, landscape });
        }
        Ok(out)
    }

    /// Store key and fine-tuning config of a landscape's fine-tuning run.
    fn trajectory_key(&self, plan: &LandscapePlan, pre_key: &str, imp_key: &str, fraction: f64) -> (String, TransferConfig) {
        let cfg = TransferConfig { fine_tuning: plan.fine_tuning, fraction, seed: self.seeds[0], ..self.transfer.clone() };
        (Store::key("trajectory", &[pre_key, imp_key, &plan.round.to_string(), plan.dataset.name(), &cfg.hash()]), cfg)
    }

    /// The per-epoch checkpoints of a landscape's fine-tuning run (run the study first).
    pub fn trajectory_dir(&self, rt: &Runtime, store: &Store, pre: Pretraining, fraction: f64) -> Result<std::path::PathBuf> {
        let plan = self.landscapes.as_ref().ok_or_else(|| Error::invalid("this study draws no landscapes", "set study.landscapes"))?;
        let pre_key = self.pretrain_key(pre, rt.seed).0;
        let imp_key = self.imp_key(&pre_key, plan.family, rt.seed).0;
        let key = self.trajectory_key(plan, &pre_key, &imp_key, fraction).0;
        if !store.has("trajectory", &key) {
            return Err(Error::not_found(
                format!("the {} fine-tuning run at {}% data", pre.short(), 100.0 * fraction),
                "run the study first",
            ));
        }
        Ok(store.dir("trajectory", &key).join("checkpoints"))
    }

    /// Store key and training config of a pre-training.
    fn pretrain_key(&self, pre: Pretraining, seed: u64) -> (String, TrainConfig) {
        let cfg = TrainConfig { regime: pre.regime(self.eps, self.adversarial_steps), seed, ..self.pretrain.clone() };
        let arch = serde_json::to_string(&self.arch).unwrap_or_default();
        let key = Store::key("pretrain", &[self.source.name(), &arch, &cfg.hash(), &self.source_fraction.to_string(), &seed.to_string()]);
        (key, cfg)
    }

    /// Store key and config of an IMP run from a pre-trained network.
    fn imp_key(&self, pre_key: &str, family: Family, seed: u64) -> (String, ImpConfig) {
        let cfg =
            ImpConfig { retrain: TrainConfig { regime: self.family_regime(family), seed, ..self.imp.retrain.clone() }, ..self.imp.clone() };
        // The fraction joins the key only below 1, so stores written before it existed still match.
        let (hash, fraction) = (cfg.hash(), self.imp_fraction.to_string());
        let mut parts = vec![pre_key, hash.as_str()];
        if self.imp_fraction < 1.0 {
            parts.push(&fraction);
        }
        (Store::key("imp", &parts), cfg)
    }

    /// The ticket (mask) of an IMP round of a finished study.
    pub fn ticket(&self, rt: &Runtime, store: &Store, pre: Pretraining, family: Family, round: usize) -> Result<Mask> {
        let (pre_key, _) = self.pretrain_key(pre, rt.seed);
        let (imp_key, _) = self.imp_key(&pre_key, family, rt.seed);
        Mask::load(store.dir("imp", &imp_key).join(format!("round-{round:02}.mask.safetensors")))
    }

    /// The pre-trained source network of a pre-training and its training history: from the
    /// store, or trained (and stored) now. The weights file is
    /// `store.dir("pretrain", key)/net.safetensors`.
    pub fn pretrained(&self, rt: &Runtime, store: &Store, pre: Pretraining) -> Result<(Network, History)> {
        let (key, cfg) = self.pretrain_key(pre, rt.seed);
        let history: History =
            store.get_or_run("pretrain", &key, serde_json::json!({"pretraining": pre, "source": self.source}), |dir| {
                let source = self.source.splits(0.1, 0)?.with_train_fraction(self.source_fraction, 0)?;
                let mut net = Network::new(NetworkSpec::for_data(self.arch.clone(), &source.train)?, rt.device, rt.seed)?;
                let history = train_with(&mut net, &source, &cfg, &mut Callbacks::progress(pre.short()), Some(&dir.join("train")))?;
                net.save(dir.join("net.safetensors"))?;
                Ok(history)
            })?;
        Ok((Network::load(self.pretrained_path(rt, store, pre), rt.device)?, history))
    }

    /// Where the weights of a pre-training live in the store.
    pub fn pretrained_path(&self, rt: &Runtime, store: &Store, pre: Pretraining) -> std::path::PathBuf {
        store.dir("pretrain", &self.pretrain_key(pre, rt.seed).0).join("net.safetensors")
    }

    fn family_regime(&self, f: Family) -> Regime {
        match f {
            Family::ST => Regime::Standard,
            Family::AT => Pretraining::Adversarial.regime(self.eps, self.adversarial_steps),
        }
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::ST => "m^ST",
        Family::AT => "m^AT",
    }
}

fn subnet_name(family: Option<Family>, round: usize) -> String {
    match family {
        None => "dense".into(),
        Some(f) => format!("{} r{round}", family_name(f)),
    }
}

struct StudyProgress {
    total: usize,
    done: usize,
    computed: usize,
    compute_seconds: f64,
}

impl StudyProgress {
    fn step<T>(&mut self, label: &str, cached: bool, run: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let value = run()?;
        self.done += 1;
        if cached {
            println!("[study {}/{}] {label}: from the store", self.done, self.total);
        } else {
            self.computed += 1;
            self.compute_seconds += t.elapsed().as_secs_f64();
            let eta = self.compute_seconds / self.computed as f64 * (self.total - self.done) as f64;
            println!("[study {}/{}] {label}: done in {:.1}s (ETA at most {:.0}s)", self.done, self.total, t.elapsed().as_secs_f64(), eta);
        }
        Ok(value)
    }
}

/// One transfer run of a study.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferRecord {
    pub pretraining: Pretraining,
    pub family: Option<Family>,
    /// IMP round (0 = the dense baseline).
    pub round: usize,
    pub dataset: DataSource,
    pub report: TransferReport,
}

/// Everything a study produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudyResults {
    pub study: Study,
    pub transfers: Vec<TransferRecord>,
    #[serde(default)]
    pub landscapes: Vec<LandscapeRecord>,
    pub seconds: f64,
    /// Steps computed in this call (the rest came from the store).
    pub computed_steps: usize,
}
