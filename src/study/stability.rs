//! The stability check: a conclusion that flips when the fine-tuning seeds change is luck, not a
//! finding. A study with `stability_seeds` runs every transfer again with that second, disjoint
//! seed set; [`Stability`] computes the headline table (highest double-win sparsity per
//! pre-training, dataset and data fraction, with the gate's marks) and the claim verdicts on each
//! set alone and lists every cell where they differ. The report prints the first set's results
//! and this check beside them.

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
            claims: results.claims().into_iter().map(|c| (c.title, c.verdict)).collect(),
            gates: results
                .gates()
                .into_iter()
                .map(|g| {
                    (g.pretraining.short().into(), g.dataset.name().into(), format!("{}", 100.0 * g.fraction), g.outcome.name().into())
                })
                .collect(),
        }
    }
}

/// The two seed sets' conclusions and where they differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    pub first: Conclusions,
    pub second: Conclusions,
    /// One line per headline cell, claim or gate setting that differs.
    pub differences: Vec<String>,
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
        for (a, b) in first.headline.iter().zip(&second.headline) {
            for (i, (x, y)) in a.iter().zip(b).enumerate().skip(2) {
                if x != y {
                    differences.push(format!("headline {} {}% data (column {}): {x} vs {y}", a[0], a[1], i - 1));
                }
            }
        }
        for ((title, a), (_, b)) in first.claims.iter().zip(&second.claims) {
            if a != b {
                differences.push(format!("{title}: {} vs {}", a.name(), b.name()));
            }
        }
        Stability { first, second, differences }
    }

    /// Both seed sets give the same headline table, gates and claim verdicts.
    pub fn agrees(&self) -> bool {
        self.differences.is_empty()
    }

    /// One line: the verdict of the check.
    pub fn summary(&self) -> String {
        let sets = format!("seeds {:?} and {:?}", self.first.seeds, self.second.seeds);
        if self.agrees() {
            format!(
                "Stability check: {sets} give the same headline table, pre-training gates and claim verdicts: the conclusions \
                 above do not hinge on the seeds."
            )
        } else {
            format!(
                "Stability check: {sets} disagree in {} place(s): those conclusions hinge on the seeds and are not settled ({}).",
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

    fn conclusions(seeds: Vec<u64>, cell: &str, claim: ClaimVerdict) -> Conclusions {
        Conclusions {
            seeds,
            headline: vec![vec!["AT".into(), "10".into(), cell.into()]],
            claims: vec![("1. existence".into(), claim)],
            gates: vec![("AT".into(), "digits".into(), "10".into(), "helps".into())],
        }
    }

    #[test]
    fn any_changed_cell_or_claim_is_a_difference() {
        let a = conclusions(vec![0, 1, 2], "59.0% (< 73.8%)", ClaimVerdict::Reproduced);
        let same = Stability::compare(a.clone(), conclusions(vec![3, 4, 5], "59.0% (< 73.8%)", ClaimVerdict::Reproduced));
        assert!(same.agrees() && same.summary().contains("do not hinge"));
        let other = Stability::compare(a.clone(), conclusions(vec![3, 4, 5], "36.0% (< 59.0%)", ClaimVerdict::Unresolved));
        assert!(!other.agrees());
        assert_eq!(other.differences.len(), 2, "{:?}", other.differences);
        assert!(other.summary().contains("not settled") && other.table().rows[0][3] == "NO");
    }
}
