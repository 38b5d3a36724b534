//! Size profiles as [`Study`] values: [`Study::for_profile`] builds the `tiny` study in full and
//! every larger profile from it with struct update (`..tiny`), changing only what differs. The
//! walkthroughs read their sizes from the same values; nothing else sets a size.

use super::grid::SubnetworkKind;
use super::grid::{ControlPlan, LandscapePlan, Study, TransferRecipe};
use super::ladder::WIDTH_FACTORS;
use crate::attack::{TestAttack, ThreatModel};
use crate::data::download::Remote;
use crate::data::{DataSource, Embedded};
use crate::error::{Error, Result};
use crate::landscape::Directions;
use crate::model::Arch;
use crate::prune::ImpRecipe;
use crate::train::{FineTuning, ImpFamily, Pretraining, Recipe};
use serde::{Deserialize, Serialize};

/// How big a study (and a walkthrough) is. Serde and command-line names: `tiny`, `small`,
/// `full`, `paper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Profile {
    /// Seconds to a few minutes: for CI and quick checks of the pipeline.
    Tiny,
    /// The main job: minutes on a 2-core laptop.
    Small,
    /// All embedded data: hours on a CPU, a GPU job.
    Full,
    /// CIFAR scale, for CUDA machines: ResNet-18 pre-trained on CIFAR-100, tickets transferred
    /// to CIFAR-10 and SVHN (downloaded on first use) with the paper's attacks.
    Paper,
}

/// A training recipe of a profile: epochs, learning rate, batch size (everything else default;
/// the regime and seed come from the study).
fn recipe(epochs: usize, lr: f64, batch: usize) -> Recipe {
    Recipe::default().epochs(epochs).lr(lr).batch_size(batch)
}

/// `n` fine-tuning seeds, and `n` more, disjoint, for the stability check when `stability`.
fn seed_sets(n: u64, stability: bool) -> (Vec<u64>, Vec<u64>) {
    ((0..n).collect(), if stability { (n..2 * n).collect() } else { Vec::new() })
}

/// The random-ticket and one-shot controls of the m^ST tickets at these rounds and fractions.
fn controls(rounds: Vec<usize>, fractions: Vec<f64>) -> Option<ControlPlan> {
    Some(ControlPlan { family: ImpFamily::Standard, kinds: SubnetworkKind::CONTROLS.to_vec(), rounds, fractions })
}

/// Fig. 6 as every profile draws it: the m^ST ticket of `round`, adversarially fine-tuned on
/// `dataset`, in the PCA plane of its trajectory (41 checkpoints), with the landscapes of one data
/// fraction on one scale. The tiny profile's sizes: 100% data, a 5 x 5 grid over 64 test images,
/// the clean loss.
fn fig6(round: usize, dataset: DataSource) -> LandscapePlan {
    LandscapePlan {
        family: ImpFamily::Standard,
        round,
        dataset,
        fine_tuning: FineTuning::Adversarial,
        fractions: vec![1.0],
        directions: Directions::Pca,
        resolution: 5,
        margin: 1.3,
        shared_scale: true,
        examples: 64,
        attack_steps: 0,
        checkpoints: 41,
    }
}

impl Study {
    /// The study of a size profile: every pre-training, both IMP families, both fine-tunings,
    /// the profile's rounds, datasets, fractions and seeds, the controls, the scratch control
    /// and the landscapes.
    pub fn for_profile(profile: Profile) -> Study {
        match profile {
            Profile::Tiny => Study::tiny(),
            Profile::Small => Study::small(),
            Profile::Full => Study::full(),
            Profile::Paper => Study::paper(),
        }
    }

    /// Seconds to a few minutes: 5% of Fashion-MNIST-8x8, two IMP rounds, digits at 100% and
    /// 10%, one seed. Every other profile starts from this one.
    fn tiny() -> Study {
        let (seeds, stability_seeds) = seed_sets(1, false);
        let digits: DataSource = Embedded::Digits.into();
        Study {
            source: Embedded::FashionMnist8.into(),
            arch: Arch::convnet(),
            source_fraction: 0.05,
            imp_fraction: 1.0,
            source_seed: 0,
            threat: ThreatModel::linf(0.1).train_steps(3).val_steps(3).test(TestAttack::Pgd20),
            pretrainings: Pretraining::ALL.to_vec(),
            pretrain: recipe(2, 0.05, 128),
            families: vec![ImpFamily::Standard, ImpFamily::Adversarial],
            imp: ImpRecipe::default().retrain(recipe(1, 0.01, 128).weight_decay(5e-4)),
            rounds: vec![1, 2],
            downstream: vec![digits],
            fine_tunings: vec![FineTuning::Standard, FineTuning::Adversarial],
            fractions: vec![1.0, 0.1],
            seeds,
            stability_seeds,
            transfer: TransferRecipe { recipe: recipe(2, 0.02, 64), min_steps: 0 },
            tolerance: 0.01,
            controls: controls(vec![2], vec![1.0]),
            scratch: true,
            attack_check_examples: 32,
            landscapes: Some(LandscapePlan { fractions: vec![1.0, 0.1], ..fig6(2, digits) }),
        }
    }

    /// The main job. From the gate pilot (scripts/pilot.py gate-*, numbers in
    /// crates/bench/studies.md): with 28x28 Fashion-MNIST sources, 8x8 digits gain nothing from
    /// any pre-training (scratch matches or beats every dense network, at 100% and 10%), so
    /// nothing can be inherited there. At one scale (source and downstream both 8x8) AT
    /// pre-training measurably raises RA with 1% of MNIST (72 images), and MNIST's 2,004 test
    /// images keep the intervals narrow. Sources: all of Fashion-MNIST at 8x8, 8 epochs; IMP
    /// re-trains 1 epoch on a tenth of it per round; tickets at rounds 4 and 8 (59.0%, 83.2%);
    /// fine-tuning 20 epochs, at least 300 SGD steps, validated 10 times; 12 seeds and 12 more for
    /// the stability check (with 3 + 3 the two sets disagreed on the AT gate and on claims 1 and
    /// 2; with 5 + 5 on claim 1 only, whose deciding gap sat at the tolerance; with 6 + 6 on the
    /// STD gate and claims 2 and 3, each gap within an interval's width of its threshold).
    fn small() -> Study {
        let tiny = Study::tiny();
        let (seeds, stability_seeds) = seed_sets(12, true);
        let mnist8: DataSource = Embedded::Mnist8.into();
        Study {
            source_fraction: 1.0,
            imp_fraction: 0.1,
            pretrain: recipe(8, 0.05, 128),
            imp: ImpRecipe::default().retrain(recipe(1, 0.02, 128).weight_decay(5e-4)),
            rounds: vec![4, 8],
            downstream: vec![mnist8],
            fractions: vec![0.01],
            seeds,
            stability_seeds,
            transfer: TransferRecipe { recipe: recipe(20, 0.02, 64).validations(10), min_steps: 300 },
            controls: controls(vec![8], vec![0.01]),
            attack_check_examples: 300,
            landscapes: Some(LandscapePlan { fractions: vec![0.01], resolution: 13, examples: 200, attack_steps: 3, ..fig6(4, mnist8) }),
            ..tiny
        }
    }

    /// The questions with resolution, at the small profile's one scale (8x8), as far up the
    /// ladder toward the paper as it was measured (crates/bench/studies.md, "Does the answer
    /// hold?"): IMP re-training 5 epochs per round on all of the source (3 bring every round
    /// back within a point of the dense network), the ConvNet at the ladder's widest widths
    /// ([`WIDTH_FACTORS`]: x4, the closest it comes to the paper's over-parameterised ResNets), fine-tuning
    /// 30 epochs and at least 2,000 steps; MNIST (2,004 test images) and digits at 100 / 10 / 1%,
    /// stronger sources and training attacks, AutoAttack-grade RA (fast), controls at every
    /// round, the gate and the stability check. Hours on a CPU; a GPU or cluster job.
    fn full() -> Study {
        let tiny = Study::tiny();
        let (seeds, stability_seeds) = seed_sets(3, true);
        let mnist8: DataSource = Embedded::Mnist8.into();
        let rounds = vec![2, 4, 6, 8, 10];
        Study {
            arch: Arch::convnet().widened(WIDTH_FACTORS[WIDTH_FACTORS.len() - 1]).expect("a ConvNet widens"),
            source_fraction: 1.0,
            threat: ThreatModel::linf(0.1).train_steps(10).val_steps(10).test(TestAttack::AutoattackFast),
            pretrain: recipe(15, 0.05, 128),
            imp: ImpRecipe::default().retrain(recipe(5, 0.02, 128).weight_decay(5e-4)),
            rounds: rounds.clone(),
            downstream: vec![mnist8, Embedded::Digits.into()],
            fractions: vec![1.0, 0.1, 0.01],
            seeds,
            stability_seeds,
            transfer: TransferRecipe { recipe: recipe(30, 0.02, 64).validations(20), min_steps: 2000 },
            controls: controls(rounds, vec![1.0, 0.1]),
            attack_check_examples: 0,
            landscapes: Some(LandscapePlan {
                fractions: vec![1.0, 0.1, 0.01],
                resolution: 21,
                examples: 500,
                attack_steps: 10,
                ..fig6(6, Embedded::Digits.into())
            }),
            ..tiny
        }
    }

    /// The paper's protocol at CIFAR scale, for a CUDA machine ([`Profile::Paper`]). ImageNet
    /// cannot be downloaded here: CIFAR-100 stands in as the source domain. IMP re-trains 10
    /// epochs per round at lr 5e-4 (the official code's rate); one fine-tuning recipe serves both
    /// regimes (the paper uses lr 0.001 / 150 epochs for standard and lr 0.1 / 100 epochs for
    /// adversarial fine-tuning: edit the study JSON to match either exactly).
    pub fn paper() -> Study {
        let tiny = Study::tiny();
        let (seeds, stability_seeds) = seed_sets(3, false);
        Study {
            source: Remote::Cifar100.into(),
            arch: Arch::resnet18_cifar(),
            source_fraction: 1.0,
            threat: ThreatModel::linf(8.0 / 255.0).train_steps(10).val_steps(10).test(TestAttack::Pgd20),
            pretrain: recipe(100, 0.1, 128),
            imp: ImpRecipe::default().retrain(recipe(10, 5e-4, 128).weight_decay(1e-4)),
            rounds: vec![2, 4, 6, 8, 10],
            downstream: vec![Remote::Cifar10.into(), Remote::Svhn.into()],
            fractions: vec![1.0, 0.1, 0.01],
            seeds,
            stability_seeds,
            transfer: TransferRecipe { recipe: recipe(100, 0.01, 128), min_steps: 4000 },
            controls: controls(vec![4, 8], vec![1.0]),
            attack_check_examples: 500,
            landscapes: Some(LandscapePlan {
                fractions: vec![1.0, 0.1, 0.01],
                resolution: 21,
                examples: 500,
                attack_steps: 10,
                ..fig6(6, Remote::Svhn.into())
            }),
            ..tiny
        }
    }
}

impl Profile {
    pub const ALL: [Profile; 4] = [Profile::Tiny, Profile::Small, Profile::Full, Profile::Paper];

    /// `DOUBLEWIN_PROFILE` (tiny | small | full | paper), default `small`.
    pub fn from_env() -> Result<Profile> {
        match std::env::var("DOUBLEWIN_PROFILE") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Profile::Small),
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

    /// The profile's study ([`Study::for_profile`]).
    pub fn study(self) -> Study {
        Study::for_profile(self)
    }
    /// Fraction of the source training split a walkthrough trains on (the study's).
    pub fn train_fraction(self) -> f64 {
        self.study().source_fraction
    }
    /// Epochs of a walkthrough's training run (the quickstart, source models): the study's
    /// pre-training epochs.
    pub fn epochs(self) -> usize {
        self.study().pretrain.epochs
    }
    /// Fraction of the source test split on which a walkthrough measures source models' RA (a
    /// walkthrough's size only: studies measure RA on the downstream test splits).
    pub fn robust_eval_fraction(self) -> f64 {
        match self {
            Profile::Tiny => 0.05,
            Profile::Small => 0.2,
            Profile::Full | Profile::Paper => 1.0,
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = Error;
    /// The serde names (the same as the command line's).
    fn from_str(s: &str) -> Result<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == s.trim()).ok_or_else(|| {
            Error::invalid(format!("unknown profile '{s}'"), "use tiny, small, full or paper (e.g. DOUBLEWIN_PROFILE=small)")
        })
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
