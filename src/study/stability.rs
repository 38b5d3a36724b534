//! The stability check: a conclusion that flips when the fine-tuning seeds change is luck, not a
//! finding. A study with `stability_seeds` runs every transfer again with that second, disjoint
//! seed set; [`Stability`] computes the pre-training gates, the headline (the highest double-win
//! sparsity per pre-training, dataset and data fraction) and the claim verdicts on each set alone
//! and lists every one that differs. Where only the headline's upper limit moves (the lowest
//! sparsity above it resolved as not double-win: "none (< 59%)" vs "none found") the highest
//! double-win sparsity itself is the same; that is listed as a difference in resolution, not a
//! disagreement. The report prints the first set's results and this check beside them.

use super::claims::ClaimVerdict;
use super::StudyResults;
use crate::display::{escape_html, Table};
use serde::{Deserialize, Serialize};

/// What one seed set concludes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conclusions {
    pub seeds: Vec<u64>,
    /// The headline table's rows (pre-training, data %, one cell per downstream dataset).
    pub headline: Vec<Vec<String>>,
    /// The headline's values: (pre-training, data %, dataset, highest double-win sparsity, its
    /// upper limit), e.g. ("AT", "10", "digits", "59.0%", "< 73.8%") or (.., "none", "none found").
    #[serde(default)]
    pub highest: Vec<(String, String, String, String, String)>,
    /// (claim title, verdict) in the report's order.
    pub claims: Vec<(String, ClaimVerdict)>,
    /// (pre-training, dataset, data %, gate outcome name).
    pub gates: Vec<(String, String, String, String)>,
}

impl Conclusions {
    pub fn of(results: &StudyResults) -> Conclusions {
        Conclusions {
            seeds: results.study.seeds.clone(),
            headline: results.headline_table().rows,
            highest: highest(results),
            claims: results.claims().into_iter().map(|c| (c.title, c.verdict)).collect(),
            gates: results
                .pretraining_gates()
                .into_iter()
                .map(|g| {
                    (g.pretraining.short().into(), g.dataset.name().into(), format!("{}", 100.0 * g.fraction), g.outcome.name().into())
                })
                .collect(),
        }
    }
}

/// The headline's values, one per pre-training x data fraction x dataset.
fn highest(results: &StudyResults) -> Vec<(String, String, String, String, String)> {
    let s = &results.study;
    let mut out = Vec::new();
    for &pre in &s.pretrainings {
        for &fraction in &s.fractions {
            for &d in &s.downstream {
                let b = results.bound(pre, d, fraction);
                let value = b.at_least.map_or("none".to_string(), |a| format!("{:.1}%", 100.0 * a));
                let limit = b
                    .below
                    .map_or(if b.at_least.is_some() { "or more" } else { "none found" }.to_string(), |x| format!("< {:.1}%", 100.0 * x));
                out.push((pre.short().to_string(), format!("{}", 100.0 * fraction), d.name().to_string(), value, limit));
            }
        }
    }
    out
}

/// The two seed sets' conclusions and where they differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    pub first: Conclusions,
    pub second: Conclusions,
    /// One line per gate, highest double-win sparsity or claim that differs.
    pub differences: Vec<String>,
    /// One line per headline cell whose upper limit alone differs (same highest sparsity).
    #[serde(default)]
    pub resolution: Vec<String>,
}

impl Stability {
    /// The check on results that hold both seed sets (`None` when the study has no
    /// `stability_seeds`).
    pub fn of(results: &StudyResults) -> Option<Stability> {
        let s = &results.study;
        if s.stability_seeds.is_empty() {
            return None;
        }
        let first = Conclusions::of(&results.for_seeds(&s.seeds));
        let second = Conclusions::of(&results.for_seeds(&s.stability_seeds));
        Some(Stability::compare(first, second))
    }

    /// Compares two sets of conclusions.
    pub fn compare(first: Conclusions, second: Conclusions) -> Stability {
        let mut differences = Vec::new();
        for (a, b) in first.gates.iter().zip(&second.gates) {
            if a != b {
                differences.push(format!("gate {} {} {}% data: {} vs {}", a.0, a.1, a.2, a.3, b.3));
            }
        }
        let mut resolution = Vec::new();
        for (a, b) in first.highest.iter().zip(&second.highest) {
            let cell = format!("{} {}% data, {}", a.0, a.1, a.2);
            if a.3 != b.3 {
                differences.push(format!("highest double-win sparsity {cell}: {} vs {}", a.3, b.3));
            } else if a.4 != b.4 {
                resolution.push(format!("{cell}: {} ({}) vs {} ({})", a.3, a.4, b.3, b.4));
            }
        }
        for ((title, a), (_, b)) in first.claims.iter().zip(&second.claims) {
            if a != b {
                differences.push(format!("{title}: {} vs {}", a.name(), b.name()));
            }
        }
        Stability { first, second, differences, resolution }
    }

    /// Both seed sets give the same gates, highest double-win sparsities and claim verdicts.
    pub fn agrees(&self) -> bool {
        self.differences.is_empty()
    }

    /// One line: the verdict of the check.
    pub fn summary(&self) -> String {
        let sets = format!("seeds {:?} and {:?}", self.first.seeds, self.second.seeds);
        let resolution = if self.resolution.is_empty() {
            String::new()
        } else {
            format!(
                " The upper limit of the highest double-win sparsity (the sparsest ticket resolved as not double-win) \
                 moves in {} cell(s), the highest sparsity itself does not: {}.",
                self.resolution.len(),
                self.resolution.join("; ")
            )
        };
        if self.agrees() {
            format!(
                "Stability check: {sets} give the same pre-training gates, highest double-win sparsities and claim verdicts: \
                 the conclusions above do not hinge on the seeds.{resolution}"
            )
        } else {
            format!(
                "Stability check: {sets} disagree in {} place(s): those conclusions hinge on the seeds and are not settled ({}).{resolution}",
                self.differences.len(),
                self.differences.join("; ")
            )
        }
    }

    /// Claims side by side.
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Stability: the claims on two disjoint seed sets ({:?} vs {:?})", self.first.seeds, self.second.seeds),
            &["claim", "first seeds", "second seeds", "same"],
        );
        for ((title, a), (_, b)) in self.first.claims.iter().zip(&self.second.claims) {
            t.push(vec![title.clone(), a.name().into(), b.name().into(), if a == b { "yes" } else { "NO" }.into()]);
        }
        t
    }

    /// The second seed set's headline table, to read beside the first's.
    pub fn second_headline(&self, template: &Table) -> Table {
        Table {
            title: format!("The headline again with seeds {:?}", self.second.seeds),
            headers: template.headers.clone(),
            rows: self.second.headline.clone(),
        }
    }

    pub fn markdown(&self, headline: &Table) -> String {
        format!("## Stability\n\n{}\n\n{}{}", self.summary(), self.table().to_markdown(), self.second_headline(headline).to_markdown())
    }

    pub fn html(&self, headline: &Table) -> String {
        format!(
            "<h2>Stability</h2><p>{}</p>{}{}",
            escape_html(&self.summary()),
            self.table().to_html(),
            self.second_headline(headline).to_html()
        )
    }
}

impl StudyResults {
    /// The results of one seed set only, as if the study had run with `seeds` (its
    /// `stability_seeds` cleared).
    pub fn for_seeds(&self, seeds: &[u64]) -> StudyResults {
        let mut out = self.clone();
        out.transfers.retain(|t| seeds.contains(&t.report.seed));
        out.study.seeds = seeds.to_vec();
        out.study.stability_seeds.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conclusions(seeds: Vec<u64>, value: &str, limit: &str, claim: ClaimVerdict) -> Conclusions {
        Conclusions {
            seeds,
            headline: vec![vec!["AT".into(), "10".into(), format!("{value} ({limit})")]],
            highest: vec![("AT".into(), "10".into(), "digits".into(), value.into(), limit.into())],
            claims: vec![("1. existence".into(), claim)],
            gates: vec![("AT".into(), "digits".into(), "10".into(), "helps".into())],
        }
    }

    #[test]
    fn a_changed_highest_sparsity_gate_or_claim_is_a_difference() {
        let a = conclusions(vec![0, 1, 2], "59.0%", "< 73.8%", ClaimVerdict::Reproduced);
        let same = Stability::compare(a.clone(), conclusions(vec![3, 4, 5], "59.0%", "< 73.8%", ClaimVerdict::Reproduced));
        assert!(same.agrees() && same.summary().contains("do not hinge") && same.resolution.is_empty());
        let other = Stability::compare(a.clone(), conclusions(vec![3, 4, 5], "36.0%", "< 59.0%", ClaimVerdict::Unresolved));
        assert!(!other.agrees());
        assert_eq!(other.differences.len(), 2, "{:?}", other.differences);
        assert!(other.summary().contains("not settled") && other.table().rows[0][3] == "NO");
        let mut gate = a.clone();
        gate.gates[0].3 = "unresolved".into();
        assert_eq!(Stability::compare(a.clone(), gate).differences.len(), 1);
    }

    #[test]
    fn a_moved_upper_limit_alone_is_a_difference_in_resolution() {
        let a = conclusions(vec![0, 1, 2], "none", "< 59.0%", ClaimVerdict::Unresolved);
        let b = conclusions(vec![3, 4, 5], "none", "none found", ClaimVerdict::Unresolved);
        let s = Stability::compare(a, b);
        assert!(s.agrees(), "{:?}", s.differences);
        assert_eq!(s.resolution.len(), 1);
        assert!(s.summary().contains("do not hinge") && s.summary().contains("moves in 1 cell"), "{}", s.summary());
    }
}
