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
//! - [`transfer`]: fine-tuning a ticket or the dense network downstream; the double-win verdict
//! - [`landscape`]: loss landscapes on a 2-D plane with the fine-tuning trajectory (Fig. 6)
//! - [`store`]: the content-addressed experiment store (and stable config hashes)
//! - [`study`]: the paper's grid run lazily through the store; size profiles; pre-trainings
//! - [`walkthrough`]: the end-to-end runs behind the CLI's main job and the notebooks
//! - beside them: [`display`] (tables, notebook rendering), [`plot`] (figures),
//!   [`fsio`] (atomic writes, hashes)
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
pub mod prune;
pub mod runtime;
pub mod store;
pub mod study;
pub mod train;
pub mod transfer;
pub mod walkthrough;

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The libtorch version tch 0.26 is built against.
pub const LIBTORCH_VERSION: &str = "2.13.0";

/// The names a notebook or script usually needs.
pub mod prelude {
    pub use crate::attack::{
        robust_evaluate, Apgd, ApgdLoss, ApgdT, Attack, AttackSpec, AutoAttack, AutoAttackVersion, FabT, Fgsm, MaskingCheck, Norm, Pgd,
        RobustEvaluation, Square, Targeting,
    };
    pub use crate::data::{Augment, Dataset, Embedded, Splits};
    pub use crate::display::Table;
    pub use crate::error::{Error, Result};
    pub use crate::model::{Arch, Network, NetworkSpec, Normalization};
    pub use crate::plot::{Figure, Series};
    pub use crate::runtime::{DeviceChoice, Runtime};
    pub use crate::train::{evaluate, train, train_with, Callbacks, EpochCheckpoints, Evaluation, History, Regime, Schedule, TrainConfig};
    pub use crate::walkthrough::{Pretraining, Profile, QuickstartReport, SourceModels};
    pub use tch::{Device, Kind, Tensor};
}
