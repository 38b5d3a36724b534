//! The paper's grid, run lazily through the experiment store. Split by concern:
//! - [`profile`]: the size profiles, each a [`Study`] value built from the `tiny` one;
//! - [`grid`]: the [`Study`] declaration and its validation;
//! - [`desc`]: typed step descriptions whose hashes are the store keys;
//! - [`step`]: what a step kind is ([`step::Step`]) and what it computes in; [`plan`]: the
//!   registry of step kinds and the steps of a study in dependency order;
//! - [`runner`]: computing what the store lacks, with progress through [`crate::progress`];
//! - [`results`]: what a study produced; [`query`]: looking its transfers up (a leaf the
//!   gate, claims, report and runner share);
//! - [`report`] and [`claims`]: its tables, figures, reports, and the paper's three claims
//!   tested on it;
//! - [`stability`]: do two disjoint seed sets reach the same conclusions?
//! - [`gate`]: does pre-training help at all (pre-trained dense vs the scratch control)? Claims
//!   count only the settings where it does;
//! - [`roles`]: the typed roles of a way of training (pre-training, IMP family, fine-tuning);
//! - [`ladder`]: rungs that each change one thing toward the paper's protocol, and the table
//!   "Does the answer hold?".

pub mod claims;
pub mod desc;
pub mod gate;
pub mod grid;
pub mod ladder;
pub mod plan;
pub mod profile;
pub mod query;
pub mod report;
pub mod results;
pub mod roles;
pub mod runner;
pub mod stability;
pub mod step;
#[cfg(test)]
mod toy;

pub use claims::{Claim, ClaimVerdict};
pub use desc::{subnetwork_name, Subnetwork, SubnetworkKind};
pub use gate::{GateCell, GateOutcome};
pub use grid::{ControlPlan, LandscapePlan, Study, TransferRecipe};
pub use ladder::{Ladder, LadderReport, LadderRow, LadderRung, Rung};
pub use plan::{Estimate, Plan, PlannedStep, StepDesc};
pub use profile::Profile;
pub use query::Pick;
pub use report::{ImpRow, StudyReport, VerdictCell};
pub use results::{LandscapeRecord, RunSummary, StudyResults, TransferRecord, TransferRow};
pub use roles::{FineTuning, ImpFamily, Pretraining};
pub use runner::{compute, run_plan, run_plan_with, RunOptions, EXIT_STOPPED};
pub use stability::{Conclusions, Stability};
pub use step::{AttackCheck, ImpSummary};
