//! The double-win verdict. A ticket is double-win when, transferred like the dense network, it
//! matches it in the three numbers of the paper: SA after standard fine-tuning, and SA and RA
//! after adversarial fine-tuning (each at its best-validation checkpoint). Each comparison is a
//! seed-paired difference, ticket minus dense, with a 95% interval ([`crate::stats`]); with a
//! tolerance `tol` the ticket is
//! - **double-win** when all three lower bounds are at least `-tol`,
//! - **not double-win** when some upper bound is below `-tol`,
//! - **unresolved** otherwise (the data cannot decide), and **incomplete** when the grid lacks a
//!   fine-tuning.

use crate::display::{evcxr_emit, Table};
use crate::stats::{Hits, PairedDifference};
use crate::train::RegimeKind;
use crate::transfer::TransferReport;
use serde::{Deserialize, Serialize};

/// One of the three numbers a double-win ticket must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// SA after standard fine-tuning (best-val-SA checkpoint).
    StdSa,
    /// SA after adversarial fine-tuning (best-val-SA checkpoint).
    AdvSa,
    /// RA after adversarial fine-tuning (best-val-RA checkpoint).
    AdvRa,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::StdSa, Metric::AdvSa, Metric::AdvRa];

    pub fn name(self) -> &'static str {
        match self {
            Metric::StdSa => "SA after standard FT",
            Metric::AdvSa => "SA after adversarial FT",
            Metric::AdvRa => "RA after adversarial FT",
        }
    }
    pub fn short(self) -> &'static str {
        match self {
            Metric::StdSa => "std-FT SA",
            Metric::AdvSa => "adv-FT SA",
            Metric::AdvRa => "adv-FT RA",
        }
    }
    /// The fine-tuning whose runs measure it.
    pub fn fine_tuning(self) -> RegimeKind {
        match self {
            Metric::StdSa => RegimeKind::Standard,
            Metric::AdvSa | Metric::AdvRa => RegimeKind::Adversarial,
        }
    }
    /// The per-example test hits of a run that the metric counts.
    pub fn hits(self, r: &TransferReport) -> &Hits {
        match self {
            Metric::StdSa | Metric::AdvSa => &r.best_sa.test_clean_hits,
            Metric::AdvRa => &r.best_ra.test_robust_hits,
        }
    }
    /// The metric of a run (a fraction).
    pub fn value(self, r: &TransferReport) -> f64 {
        match self {
            Metric::StdSa | Metric::AdvSa => r.best_sa.test_sa,
            Metric::AdvRa => r.best_ra.test_ra,
        }
    }
    /// Mean of the metric over the runs of its fine-tuning (`None` without such runs).
    pub fn mean(self, runs: &[&TransferReport]) -> Option<f64> {
        let v: Vec<f64> = runs.iter().filter(|r| r.fine_tuning == self.fine_tuning()).map(|r| self.value(r)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// The run of fine-tuning `ft` with `seed` among `runs`.
fn run_of<'a>(runs: &[&'a TransferReport], ft: RegimeKind, seed: u64) -> Option<&'a TransferReport> {
    runs.iter().find(|r| r.fine_tuning == ft && r.seed == seed).copied()
}

/// The seed-paired difference `a - b` of `metric` over the seeds both have run (`None` when
/// they share no seed of the metric's fine-tuning).
pub fn paired(metric: Metric, a: &[&TransferReport], b: &[&TransferReport]) -> Option<PairedDifference> {
    let of = |runs: &[&TransferReport], seed: u64| run_of(runs, metric.fine_tuning(), seed).map(|r| metric.hits(r).clone());
    let mut seeds: Vec<u64> = a.iter().filter(|r| r.fine_tuning == metric.fine_tuning()).map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let (x, y): (Vec<Hits>, Vec<Hits>) = seeds.iter().filter_map(|&s| Some((of(a, s)?, of(b, s)?))).unzip();
    PairedDifference::of(&x, &y).ok()
}

/// The seed-paired difference `a - b` of `metric` pooled over several conditions (pairs of
/// subnetworks' runs, e.g. every round and data fraction of two sparsity curves): per seed and
/// test example, the hits averaged over the conditions (see [`PairedDifference::of_scores`]).
/// Uses the seeds every condition has run; `None` without one.
pub fn pooled(metric: Metric, pairs: &[(Vec<&TransferReport>, Vec<&TransferReport>)]) -> Option<PairedDifference> {
    let ft = metric.fine_tuning();
    let seeds_of = |runs: &[&TransferReport]| runs.iter().filter(|r| r.fine_tuning == ft).map(|r| r.seed).collect::<Vec<u64>>();
    let mut seeds: Vec<u64> = pairs.first().map(|(a, _)| seeds_of(a))?;
    seeds.retain(|s| pairs.iter().all(|(a, b)| seeds_of(a).contains(s) && seeds_of(b).contains(s)));
    seeds.sort_unstable();
    seeds.dedup();
    let scores = |side: usize, seed: u64| -> Option<Vec<f64>> {
        let mut sum: Vec<f64> = Vec::new();
        for (a, b) in pairs {
            let hits = metric.hits(run_of(if side == 0 { a } else { b }, ft, seed)?);
            if sum.is_empty() {
                sum = vec![0.0; hits.len()];
            }
            if hits.len() != sum.len() {
                return None;
            }
            for (s, h) in sum.iter_mut().zip(&hits.0) {
                *s += f64::from(u8::from(*h)) / pairs.len() as f64;
            }
        }
        Some(sum)
    };
    let (a, b): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
        seeds.iter().map(|&s| Some((scores(0, s)?, scores(1, s)?))).collect::<Option<Vec<_>>>()?.into_iter().unzip();
    PairedDifference::of_scores(&a, &b).ok()
}

/// The verdict on one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    DoubleWin,
    NotDoubleWin,
    Unresolved,
    Incomplete,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::DoubleWin => "yes",
            Outcome::NotDoubleWin => "no",
            Outcome::Unresolved => "unresolved",
            Outcome::Incomplete => "incomplete",
        }
    }
    /// The outcome of three paired differences (ticket - dense) at tolerance `tol`.
    pub fn of(gaps: &[Option<PairedDifference>; 3], tol: f64) -> Outcome {
        if gaps.iter().any(|g| g.is_none()) {
            return Outcome::Incomplete;
        }
        let gaps: Vec<&PairedDifference> = gaps.iter().flatten().collect();
        if gaps.iter().all(|g| g.lower >= -tol) {
            Outcome::DoubleWin
        } else if gaps.iter().any(|g| g.upper < -tol) {
            Outcome::NotDoubleWin
        } else {
            Outcome::Unresolved
        }
    }
}

/// One ticket against the dense network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    pub label: String,
    pub sparsity: f64,
    /// Means over seeds of the three metrics (`Metric::ALL` order), ticket and dense.
    pub ticket: [Option<f64>; 3],
    pub dense: [Option<f64>; 3],
    /// Ticket minus dense, seed-paired, with 95% intervals.
    pub gaps: [Option<PairedDifference>; 3],
    pub outcome: Outcome,
}

/// Where the highest double-win sparsity lies: at least the sparsity of the sparsest double-win
/// ticket, and below the sparsest one tested above it that is not double-win (when there is one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SparsityBound {
    pub at_least: Option<f64>,
    pub below: Option<f64>,
}

impl std::fmt::Display for SparsityBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.at_least, self.below) {
            (None, Some(b)) => write!(f, "none (< {:.1}%)", 100.0 * b),
            (None, None) => write!(f, "none found"),
            (Some(a), Some(b)) => write!(f, "{:.1}% (< {:.1}%)", 100.0 * a, 100.0 * b),
            (Some(a), None) => write!(f, "{:.1}% (or more)", 100.0 * a),
        }
    }
}

/// Double-win verdicts for a list of tickets against one dense network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub rows: Vec<VerdictRow>,
    /// Tolerance (fraction: 0.01 = 1 point).
    pub tolerance: f64,
}

impl Verdict {
    /// Judges each ticket `(label, sparsity, its runs)` against the dense network's runs; runs
    /// are paired by seed.
    pub fn judge(dense: &[&TransferReport], tickets: &[(String, f64, Vec<&TransferReport>)], tolerance: f64) -> Verdict {
        let rows = tickets
            .iter()
            .map(|(label, sparsity, runs)| {
                let gaps = Metric::ALL.map(|m| paired(m, runs, dense));
                VerdictRow {
                    label: label.clone(),
                    sparsity: *sparsity,
                    ticket: Metric::ALL.map(|m| m.mean(runs)),
                    dense: Metric::ALL.map(|m| m.mean(dense)),
                    outcome: Outcome::of(&gaps, tolerance),
                    gaps,
                }
            })
            .collect();
        Verdict { rows, tolerance }
    }

    /// The sparsity of the sparsest double-win ticket.
    pub fn highest_double_win(&self) -> Option<f64> {
        self.rows.iter().filter(|r| r.outcome == Outcome::DoubleWin).map(|r| r.sparsity).reduce(f64::max)
    }

    /// Bounds on the highest double-win sparsity (see [`SparsityBound`]).
    pub fn bound(&self) -> SparsityBound {
        let at_least = self.highest_double_win();
        let below = self
            .rows
            .iter()
            .filter(|r| r.outcome == Outcome::NotDoubleWin && at_least.is_none_or(|a| r.sparsity > a))
            .map(|r| r.sparsity)
            .reduce(f64::min);
        SparsityBound { at_least, below }
    }

    /// What the verdict shows, in one or two sentences computed from its rows: how many tickets
    /// are double-win, not, or unresolved; the highest double-win sparsity; and which of the three
    /// numbers rules out the tickets that are not (the one most often below the tolerance).
    pub fn conclusion(&self) -> String {
        let n = |o: Outcome| self.rows.iter().filter(|r| r.outcome == o).count();
        let mut s = format!(
            "Of {} tickets, {} are double-win, {} are not and {} are unresolved at a tolerance of {:.1} points; highest double-win \
             sparsity: {}.",
            self.rows.len(),
            n(Outcome::DoubleWin),
            n(Outcome::NotDoubleWin),
            n(Outcome::Unresolved),
            100.0 * self.tolerance,
            self.bound()
        );
        let below = |i: usize| self.rows.iter().filter(|r| r.gaps[i].is_some_and(|g| g.upper < -self.tolerance)).count();
        if let Some((i, count)) = (0..3).map(|i| (i, below(i))).filter(|(_, c)| *c > 0).max_by_key(|(_, c)| *c) {
            s += &format!(
                " {} decides most \"no\" verdicts: it falls measurably below the dense network for {count} ticket(s).",
                Metric::ALL[i].name()
            );
        } else if n(Outcome::Unresolved) > 0 {
            s += " No number is measurably below the dense network's; the unresolved tickets need narrower intervals (more seeds or \
                  test images).";
        }
        s
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Double-win verdict: ticket minus dense, points, mean over seeds [95% interval]; tolerance {:.1} points",
                100.0 * self.tolerance
            ),
            &["ticket", "sparsity %", "std-FT SA", "adv-FT SA", "adv-FT RA", "double-win"],
        );
        for r in &self.rows {
            let cell = |i: usize| match (&r.gaps[i], r.ticket[i]) {
                (Some(g), Some(v)) => format!("{:.1}: {}", 100.0 * v, g.points()),
                _ => "-".into(),
            };
            t.push(vec![r.label.clone(), format!("{:.2}", 100.0 * r.sparsity), cell(0), cell(1), cell(2), r.outcome.name().into()]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.table().to_html());
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
    }
}
