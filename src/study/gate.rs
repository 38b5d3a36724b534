//! The pre-training gate: before a ticket verdict can say anything about what a ticket keeps from
//! pre-training, pre-training must give something. Per pre-training, downstream dataset and data
//! fraction, the dense pre-trained network is compared with the scratch control (the same
//! architecture from a random initialisation, transferred with the same recipe) on the three
//! numbers of the verdict, seed-paired with 95% intervals. At tolerance `tol`, pre-training
//! - **helps** when some number's lower bound is above 0 (measurably better than scratch; robust
//!   pre-training may cost SA while it gives RA: that is the trade the paper is about, so a
//!   number measurably worse does not disqualify the setting),
//! - **does not help** when every number's upper bound is at most `tol` (resolved: at most the
//!   tolerance better, or worse),
//! - is **unresolved** otherwise, and **not checked** when the study has no scratch control.
//!
//! Only settings where pre-training helps are a test of the paper's hypothesis: elsewhere the
//! ticket verdicts are shown but marked, and the claims ([`super::claims`]) leave them out.

use super::query::TransferGroup;
use super::StudyResults;
use crate::data::DataSource;
use crate::display::{escape_html, Table};
use crate::stats::PairedDifference;
use crate::train::Pretraining;
use crate::transfer::TransferReport;
use crate::verdict::Metric;
use serde::{Deserialize, Serialize};

/// Does pre-training give something in one setting?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateOutcome {
    Helps,
    DoesNotHelp,
    Unresolved,
    /// No scratch runs to compare with (the study's `scratch` is off, or a fine-tuning is
    /// missing).
    NotChecked,
}

impl GateOutcome {
    pub fn name(self) -> &'static str {
        match self {
            GateOutcome::Helps => "helps",
            GateOutcome::DoesNotHelp => "does not help",
            GateOutcome::Unresolved => "unresolved",
            GateOutcome::NotChecked => "not checked",
        }
    }

    /// The outcome of the three paired differences pre-trained minus scratch (`Metric::ALL`
    /// order; `None` where the grid lacks the metric) at tolerance `tol`.
    pub fn of(gaps: &[Option<PairedDifference>; 3], tol: f64) -> GateOutcome {
        let measured: Vec<&PairedDifference> = gaps.iter().flatten().collect();
        if measured.is_empty() {
            GateOutcome::NotChecked
        } else if measured.iter().any(|g| g.better(tol) == Some(true)) {
            GateOutcome::Helps
        } else if measured.len() == gaps.len() && measured.iter().all(|g| g.better(tol) == Some(false)) {
            GateOutcome::DoesNotHelp
        } else {
            GateOutcome::Unresolved
        }
    }

    /// Whether ticket verdicts of this setting test the paper's hypothesis.
    pub fn tests_hypothesis(self) -> bool {
        self == GateOutcome::Helps
    }

    /// What a ticket verdict of this setting is worth, for the tables ("" when it is a test).
    pub fn caveat(self) -> &'static str {
        match self {
            GateOutcome::Helps => "",
            GateOutcome::DoesNotHelp => "not a test of the hypothesis: pre-training does not help here",
            GateOutcome::Unresolved => "not a test of the hypothesis: whether pre-training helps here is unresolved",
            GateOutcome::NotChecked => "not a test of the hypothesis: no scratch control to show that pre-training helps",
        }
    }
}

/// One setting of the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainingGate {
    pub pretraining: Pretraining,
    pub dataset: DataSource,
    pub fraction: f64,
    /// Means over seeds of the three metrics, pre-trained dense and scratch.
    pub dense: [Option<f64>; 3],
    pub scratch: [Option<f64>; 3],
    /// Pre-trained dense minus scratch, seed-paired, with 95% intervals.
    pub gaps: [Option<PairedDifference>; 3],
    pub outcome: GateOutcome,
}

impl PretrainingGate {
    /// The gate of one setting from the runs of the pre-trained dense network and of scratch
    /// (paired by seed) at tolerance `tol`.
    pub fn judge(
        pretraining: Pretraining,
        dataset: DataSource,
        fraction: f64,
        dense: &[&TransferReport],
        scratch: &[&TransferReport],
        tol: f64,
    ) -> PretrainingGate {
        let gaps = Metric::ALL.map(|m| crate::verdict::paired(m, dense, scratch));
        PretrainingGate {
            pretraining,
            dataset,
            fraction,
            dense: Metric::ALL.map(|m| m.mean(dense)),
            scratch: Metric::ALL.map(|m| m.mean(scratch)),
            outcome: GateOutcome::of(&gaps, tol),
            gaps,
        }
    }

    /// The largest measured benefit of pre-training: (metric, difference) with the highest lower
    /// bound.
    fn strongest(&self) -> Option<(Metric, PairedDifference)> {
        Metric::ALL.into_iter().zip(self.gaps).filter_map(|(m, g)| g.map(|g| (m, g))).max_by(|a, b| a.1.lower.total_cmp(&b.1.lower))
    }

    /// One sentence computed from the numbers: does pre-training help here, and what follows.
    pub fn sentence(&self) -> String {
        let setting =
            format!("{} pre-training on {} with {}% of the data", self.pretraining.short(), self.dataset.name(), 100.0 * self.fraction);
        match (self.outcome, self.strongest()) {
            (GateOutcome::Helps, Some((m, g))) => format!(
                "{setting} helps: {} {} points over scratch, so its tickets' verdicts test what they keep from pre-training.",
                m.name(),
                g.points()
            ),
            (GateOutcome::DoesNotHelp, _) => format!(
                "{setting} does not help: no number is more than the tolerance above scratch, so a ticket has nothing to inherit \
                 here and its verdict is not a test of the hypothesis."
            ),
            (GateOutcome::Unresolved, Some((m, g))) => format!(
                "whether {setting} helps is unresolved (closest: {} {} points over scratch): its tickets' verdicts are not yet a \
                 test of the hypothesis.",
                m.name(),
                g.points()
            ),
            _ => format!("{setting}: no scratch runs to compare with (the study's `scratch` is off)."),
        }
    }

    /// The setting as a one-row table.
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Pre-trained dense minus scratch (points, seed-paired mean [95% interval]): {}", self.outcome.name()),
            &["pre-training", "downstream", "data %", "std-FT SA", "adv-FT SA", "adv-FT RA", "pre-training"],
        );
        t.push(self.row());
        t
    }

    fn row(&self) -> Vec<String> {
        let cell = |i: usize| match (&self.gaps[i], self.dense[i], self.scratch[i]) {
            (Some(g), Some(d), Some(s)) => format!("{:.1} vs {:.1}: {}", 100.0 * d, 100.0 * s, g.points()),
            _ => "-".into(),
        };
        vec![
            self.pretraining.short().into(),
            self.dataset.name().into(),
            format!("{}", 100.0 * self.fraction),
            cell(0),
            cell(1),
            cell(2),
            self.outcome.name().into(),
        ]
    }

    pub fn evcxr_display(&self) {
        crate::display::evcxr_emit("text/html", &format!("{}<p>{}</p>", self.table().to_html(), escape_html(&self.sentence())));
    }
}

impl std::fmt::Display for PretrainingGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}{}", self.table(), self.sentence())
    }
}

impl StudyResults {
    /// The gate of one setting.
    pub fn pretraining_gate(&self, pretraining: Pretraining, dataset: DataSource, fraction: f64) -> PretrainingGate {
        let dense = self.runs(TransferGroup::dense(pretraining, dataset, fraction));
        let scratch = self.runs(TransferGroup::scratch(dataset, fraction));
        PretrainingGate::judge(pretraining, dataset, fraction, &dense, &scratch, self.study.tolerance)
    }

    /// The gate's outcome in one setting.
    pub fn gate_outcome(&self, pretraining: Pretraining, dataset: DataSource, fraction: f64) -> GateOutcome {
        self.pretraining_gate(pretraining, dataset, fraction).outcome
    }

    /// Every setting of the grid: pre-trainings x downstream datasets x data fractions.
    pub fn pretraining_gates(&self) -> Vec<PretrainingGate> {
        let s = &self.study;
        let mut out = Vec::new();
        for &pre in &s.pretrainings {
            for &d in &s.downstream {
                for &f in &s.fractions {
                    out.push(self.pretraining_gate(pre, d, f));
                }
            }
        }
        out
    }

    /// The gate as a table: per setting, dense and scratch means and their paired difference.
    pub fn gate_table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Does pre-training help? Pre-trained dense minus scratch (points, seed-paired mean [95% interval], {} seeds); \
                 helps: a lower bound above 0; does not help: every upper bound at most {:.1}",
                self.study.seeds.len(),
                100.0 * self.study.tolerance
            ),
            &["pre-training", "downstream", "data %", "std-FT SA", "adv-FT SA", "adv-FT RA", "pre-training"],
        );
        for c in self.pretraining_gates() {
            t.push(c.row());
        }
        t
    }

    /// One sentence per setting (see [`PretrainingGate::sentence`]).
    pub fn gate_sentences(&self) -> Vec<String> {
        self.pretraining_gates().iter().map(PretrainingGate::sentence).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(lower: f64, upper: f64) -> Option<PairedDifference> {
        Some(PairedDifference { mean: (lower + upper) / 2.0, lower, upper, seeds: 3, examples: 100, se_seed: 0.0, se_test: 0.0 })
    }

    #[test]
    fn the_gate_passes_fails_or_cannot_decide() {
        let tol = 0.01;
        // RA measurably better after adversarial fine-tuning: pre-training helps, even if SA is not.
        assert_eq!(GateOutcome::of(&[gap(-0.02, 0.01), gap(-0.03, 0.0), gap(0.02, 0.08)], tol), GateOutcome::Helps);
        // Every number at most the tolerance better: resolved as no help.
        assert_eq!(GateOutcome::of(&[gap(-0.02, 0.01), gap(-0.03, 0.005), gap(-0.04, 0.0)], tol), GateOutcome::DoesNotHelp);
        // One interval reaches above the tolerance and none is clear of 0: the data cannot decide.
        assert_eq!(GateOutcome::of(&[gap(-0.02, 0.01), gap(-0.03, 0.0), gap(-0.01, 0.05)], tol), GateOutcome::Unresolved);
        // A missing fine-tuning cannot resolve "does not help", but a measured help still counts.
        assert_eq!(GateOutcome::of(&[gap(-0.02, 0.0), None, None], tol), GateOutcome::Unresolved);
        assert_eq!(GateOutcome::of(&[gap(0.01, 0.03), None, None], tol), GateOutcome::Helps);
        assert_eq!(GateOutcome::of(&[None, None, None], tol), GateOutcome::NotChecked);
        // Robust pre-training's trade: measurably better RA, measurably worse SA: it helps.
        assert_eq!(GateOutcome::of(&[gap(-0.02, 0.01), gap(-0.05, -0.02), gap(0.02, 0.05)], tol), GateOutcome::Helps);
        assert!(GateOutcome::Helps.tests_hypothesis() && GateOutcome::Helps.caveat().is_empty());
        for o in [GateOutcome::DoesNotHelp, GateOutcome::Unresolved, GateOutcome::NotChecked] {
            assert!(!o.tests_hypothesis() && o.caveat().starts_with("not a test"));
        }
    }
}
