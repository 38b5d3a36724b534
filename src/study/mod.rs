//! The paper's grid, run lazily through the experiment store. Split by concern:
//! - [`profile`]: the size profiles, each a [`Study`] value built from the `tiny` one;
//! - [`grid`]: the [`Study`] declaration and its validation;
//! - [`steps`]: the step kinds, one file each (description, whose hash is the store key; what
//!   it reads; the study's steps of that kind; how one is computed; what the results keep), and
//!   their registry; [`plan`]: the steps of a study in dependency order;
//! - [`runner`]: computing what the store lacks, with progress through [`crate::progress`];
//! - [`results`]: what a study produced; [`query`]: looking its transfers up (a leaf the
//!   gate, claims, report and runner share);
//! - [`report`] and [`claims`]: its tables, figures, reports, and the paper's three claims
//!   tested on it;
//! - [`stability`]: do two disjoint seed sets reach the same conclusions?
//! - [`gate`]: does pre-training help at all (pre-trained dense vs the scratch control)? Claims
//!   count only the settings where it does;
//! - [`ladder`]: rungs that each change one thing toward the paper's protocol, and the table
//!   "Does the answer hold?".

pub mod claims;
pub mod gate;
pub mod grid;
pub mod ladder;
pub mod plan;
pub mod profile;
pub mod query;
pub mod report;
pub mod results;
pub mod runner;
pub mod stability;
pub mod steps;

/// The typed roles of a way of training ([`crate::train`] owns them and their regimes): the study's
/// own types for pre-trainings, IMP families and fine-tunings.
pub use crate::train::{FineTuning, ImpFamily, Pretraining};
pub use claims::{Claim, ClaimId, ClaimVerdict};
pub use gate::{GateOutcome, PretrainingGate};
pub use grid::{ControlPlan, LandscapePlan, Study, SubnetworkKind, TransferRecipe};
pub use ladder::{Ladder, LadderReport, LadderRow, LadderRung, Rung};
pub use plan::{Estimate, Plan, PlannedStep};
pub use profile::Profile;
pub use query::TransferGroup;
pub use report::{ImpRow, StudyReport, VerdictCell};
pub use results::{AttackCheck, LandscapeRecord, RunSummary, StudyResults, TransferRecord, TransferRow};
pub use runner::{compute, run_plan, run_plan_with, RunOptions, EXIT_STOPPED};
pub use stability::{Conclusions, Stability};
pub use steps::{subnetwork_name, ImpSummary, StepDesc, Subnetwork};
