//! # doublewin
//!
//! Find and validate *double-win lottery tickets* (Chen et al., "Data-Efficient Double-Win
//! Lottery Tickets from Robust Pre-training", ICML 2022): sparse subnetworks of a pre-trained
//! network that transfer as well as the dense network in standard and robust accuracy.
//!
//! Modules, from the bottom up (nothing lower imports anything higher):
//! - [`runtime`]: device choice, thread count, seeding; [`error`]: the one error type
//! - [`data`]: datasets, splits, stratified fractions, batches, loaders, embedded data, downloads
//! - [`model`]: networks with normalisation inside, torchvision names, save / load / import
//! - [`attack`]: FGSM, PGD (L-inf, L2, restarts, targeted), APGD, APGD-T, FAB-T, Square, AutoAttack,
//!   robust evaluation, masking checks
//! - [`train`]: the training loop, SGD, schedules, history, callbacks, evaluation
//! - [`prune`]: masks, pruning strategies, IMP with rewinding (tickets)
//! - [`transfer`]: fine-tuning a ticket or the dense network downstream
//! - [`verdict`]: the double-win verdict from seed-paired differences with intervals
//! - [`landscape`]: loss landscapes on a 2-D plane with the fine-tuning trajectory (Fig. 6)
//! - [`store`]: the content-addressed experiment store: steps named by the hash of their
//!   descriptions, verified manifests, per-step locks
//! - [`study`]: the paper's grid run lazily through the store: profiles, the grid, step
//!   descriptions, the plan, the runner, results and reports
//! - [`walkthrough`]: the end-to-end runs behind the CLI's main job and the notebooks
//! - beside them: [`display`] (tables, notebook rendering), [`plot`] (figures),
//!   [`progress`] (events and their renderers: library code never prints), [`stats`] (per-example
//!   hits, paired differences with intervals), [`fsio`] (atomic writes, hashes)
//!
//! Beside this crate in the workspace: `crates/cli` (the `doublewin` command line) and
//! `crates/bench` (the benchmarks side by side with a PyTorch peer, `doublewin bench`).
//!
//! In a notebook: `use doublewin::prelude::*;`.

pub mod attack;
pub mod data;
pub mod display;
pub mod error;
pub mod fsio;
pub mod landscape;
pub mod model;
pub mod plot;
pub mod progress;
pub mod prune;
pub mod runtime;
pub mod session;
pub mod stats;
pub mod store;
pub mod study;
pub mod train;
pub mod transfer;
pub mod verdict;
pub mod walkthrough;

pub use runtime::{LIBTORCH_VERSION, VERSION};

/// The versions of these crates that doublewin uses, for notebook cells and programs (a
/// notebook `:dep ndarray` without a pin would pick another version than tch converts to).
pub use {ndarray, plotters, tch};

/// The names a notebook or script usually needs.
pub mod prelude {
    pub use crate::attack::{
        robust_evaluate, Apgd, ApgdLoss, ApgdT, Attack, AttackSpec, AutoAttack, AutoAttackVersion, FabT, Fgsm, MaskingCheck, Norm, Pgd,
        RobustEvaluation, Square, Targeted, Targeting, TestAttack, ThreatModel,
    };
    pub use crate::data::{Augment, Dataset, Embedded, Splits};
    pub use crate::display::{Prose, Table};
    pub use crate::error::{Error, Result};
    pub use crate::model::{Arch, Network, NetworkSpec, Normalization};
    pub use crate::plot::{Figure, Series};
    pub use crate::runtime::{DeviceChoice, Runtime};
    pub use crate::session::{Session, SourceModels, TransferSpec};
    pub use crate::store::Store;
    pub use crate::study::{ClaimId, FineTuning, ImpFamily, Pretraining, Profile, Study};
    pub use crate::train::{
        evaluate, train, train_with, Callbacks, EpochCheckpoints, Evaluation, History, Recipe, Regime, RegimeKind, Schedule, TrainConfig,
    };
    pub use crate::walkthrough::QuickstartReport;
    pub use tch::{Device, Kind, Tensor};
}
