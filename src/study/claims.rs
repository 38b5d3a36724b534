//! The paper's three findings, each tested on a study's results with its evidence (numbers and
//! 95% intervals), an honest verdict (reproduced / not reproduced / unresolved at this scale /
//! not tested by this grid) and what would settle it.
//!
//! 1. Double-win tickets exist at non-trivial sparsity, and AT pre-training gives them at the
//!    highest sparsity (the paper: 100% of the downstream data; here the study's largest data
//!    fraction, said in the evidence: a study may leave out the fractions where pre-training does
//!    not help).
//! 2. With 10% / 1% of the downstream data, FAT finds better tickets at low sparsity and AT
//!    overtakes it at high sparsity (tested on RA after adversarial fine-tuning; "better" by the
//!    gate's rule: a lower bound above 0, refuted when at most the tolerance better).
//! 3. Standard or adversarial re-training inside IMP (m^ST vs m^AT) makes no significant
//!    difference to how tickets transfer (tested per metric, pooled over pre-trainings, data
//!    fractions and rounds: equivalence within the tolerance).
//!
//! Every claim counts only the settings that pass the pre-training gate ([`super::gate`]): a
//! ticket cannot keep what pre-training did not give. A claim with no such setting is "not
//! tested", never "unresolved".

use super::query::TransferGroup;
use super::StudyResults;
use crate::data::DataSource;
use crate::display::escape_html;
use crate::stats::PairedDifference;
use crate::train::{ImpFamily, Pretraining};
use crate::verdict::{pooled, Metric, Outcome};
use serde::{Deserialize, Serialize};

/// How a claim came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimVerdict {
    Reproduced,
    NotReproduced,
    /// The intervals cannot decide at this scale.
    Unresolved,
    /// The study's grid lacks what the claim needs.
    NotTested,
}

impl ClaimVerdict {
    pub fn name(self) -> &'static str {
        match self {
            ClaimVerdict::Reproduced => "reproduced",
            ClaimVerdict::NotReproduced => "not reproduced",
            ClaimVerdict::Unresolved => "unresolved at this scale",
            ClaimVerdict::NotTested => "not tested by this study",
        }
    }
    /// Both parts must hold; one refuted part refutes the whole.
    fn and(self, other: ClaimVerdict) -> ClaimVerdict {
        use ClaimVerdict::*;
        match (self, other) {
            (NotTested, _) | (_, NotTested) => NotTested,
            (NotReproduced, _) | (_, NotReproduced) => NotReproduced,
            (Reproduced, Reproduced) => Reproduced,
            _ => Unresolved,
        }
    }
}

/// One claim of the paper, tested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub title: String,
    /// What the paper reports.
    pub paper: String,
    pub verdict: ClaimVerdict,
    /// The numbers behind the verdict.
    pub evidence: Vec<String>,
    /// What would settle it (or make it firmer).
    pub settle: String,
}

impl Claim {
    pub fn text(&self) -> String {
        let mut s = format!("{}: {}\n  paper: {}\n", self.title, self.verdict.name(), self.paper);
        for e in &self.evidence {
            s += &format!("  - {e}\n");
        }
        s + &format!("  to settle: {}\n", self.settle)
    }
    pub fn markdown(&self) -> String {
        let evidence: String = self.evidence.iter().map(|e| format!("- {e}\n")).collect();
        format!(
            "### {}: **{}**\n\n*Paper:* {}\n\n{evidence}\n*To settle:* {}\n\n",
            self.title,
            self.verdict.name(),
            self.paper,
            self.settle
        )
    }
    pub fn html(&self) -> String {
        let evidence: String = self.evidence.iter().map(|e| format!("<li>{}</li>", escape_html(e))).collect();
        format!(
            "<div class=\"claim\"><h3>{}: <b>{}</b></h3><p><i>Paper:</i> {}</p><ul>{evidence}</ul><p><i>To settle:</i> {}</p></div>",
            escape_html(&self.title),
            self.verdict.name(),
            escape_html(&self.paper),
            escape_html(&self.settle)
        )
    }
}

/// The paper's three claims, by name (what a notebook asks for: `results.claim(ClaimId::Families)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimId {
    /// 1. Double-win tickets exist, and AT pre-training gives them at the highest sparsity.
    Existence,
    /// 2. With 10% / 1% of the data, FAT is better at low sparsity and AT at high sparsity.
    DataEfficiency,
    /// 3. m^ST and m^AT tickets transfer alike.
    Families,
}

impl ClaimId {
    pub const ALL: [ClaimId; 3] = [ClaimId::Existence, ClaimId::DataEfficiency, ClaimId::Families];

    /// The claim tested on `r`.
    pub fn test(self, r: &StudyResults) -> Claim {
        match self {
            ClaimId::Existence => existence(r),
            ClaimId::DataEfficiency => data_limited(r),
            ClaimId::Families => families(r),
        }
    }
}

/// The three claims.
pub fn claims(r: &StudyResults) -> Vec<Claim> {
    ClaimId::ALL.iter().map(|c| c.test(r)).collect()
}

fn first_dataset(r: &StudyResults) -> Option<DataSource> {
    r.study.downstream.first().copied()
}

/// The widest interval half-width among tickets' comparisons (points), for "to settle" lines.
fn widest(r: &StudyResults) -> f64 {
    r.verdicts()
        .iter()
        .flat_map(|c| c.verdict.rows.iter().flat_map(|row| row.gaps.iter().flatten().map(|g| g.half_width())))
        .fold(0.0, f64::max)
        * 100.0
}

fn settle_scale(r: &StudyResults) -> String {
    let examples = r.transfers.first().map(|t| t.report.best_sa.test_clean_hits.len()).unwrap_or(0);
    format!(
        "intervals here reach +-{:.1} points with {} seeds on {} test images; more seeds narrow the seed part, a larger test set the \
         test part (the `full` profile adds more data fractions, digits and AutoAttack-grade RA), and the `paper` profile asks \
         the question at CIFAR scale",
        widest(r),
        r.study.seeds.len(),
        examples
    )
}

fn existence(r: &StudyResults) -> Claim {
    let title = "1. Double-win tickets exist, and AT pre-training gives them at the highest sparsity".to_string();
    let paper = "highest double-win sparsity on CIFAR-10: 89.26% (STD), 89.26% (FAT), 91.41% (AT); on CIFAR-100: 73.79% / 79.03% / \
                 83.22%"
        .to_string();
    let top = r.study.fractions.iter().copied().fold(0.0, f64::max);
    let (Some(d), true) = (first_dataset(r), top > 0.0) else {
        return Claim {
            title,
            paper,
            verdict: ClaimVerdict::NotTested,
            evidence: vec!["the study has no downstream data fraction".into()],
            settle: String::new(),
        };
    };
    let mut evidence = Vec::new();
    let gated: Vec<Pretraining> = r.study.pretrainings.iter().copied().filter(|&p| r.gate_outcome(p, d, top).tests_hypothesis()).collect();
    for &p in r.study.pretrainings.iter().filter(|p| !gated.contains(p)) {
        evidence.push(format!(
            "{} pre-training, {} at {}% data: left out ({})",
            p.short(),
            d.name(),
            100.0 * top,
            r.gate_outcome(p, d, top).caveat()
        ));
    }
    let cells: Vec<_> =
        r.verdicts().into_iter().filter(|c| c.dataset == d && c.fraction == top && gated.contains(&c.pretraining)).collect();
    let outcomes: Vec<Outcome> = cells.iter().flat_map(|c| c.verdict.rows.iter().map(|row| row.outcome)).collect();
    let exists = if outcomes.contains(&Outcome::DoubleWin) {
        ClaimVerdict::Reproduced
    } else if !outcomes.is_empty() && outcomes.iter().all(|o| *o == Outcome::NotDoubleWin) {
        ClaimVerdict::NotReproduced
    } else if outcomes.is_empty() {
        ClaimVerdict::NotTested
    } else {
        ClaimVerdict::Unresolved
    };
    let bounds: Vec<(Pretraining, crate::verdict::SparsityBound)> = gated.iter().map(|&p| (p, r.bound(p, d, top))).collect();
    for (p, b) in &bounds {
        let n =
            |o: Outcome| cells.iter().filter(|c| c.pretraining == *p).flat_map(|c| &c.verdict.rows).filter(|row| row.outcome == o).count();
        evidence.push(format!(
            "{} pre-training, {} at {}% data: highest double-win sparsity {b} ({} tickets yes, {} no, {} unresolved over the IMP \
             families)",
            p.short(),
            d.name(),
            100.0 * top,
            n(Outcome::DoubleWin),
            n(Outcome::NotDoubleWin),
            n(Outcome::Unresolved)
        ));
    }
    let at = bounds.iter().find(|(p, _)| *p == Pretraining::Adversarial).map(|(_, b)| *b);
    let others: Vec<_> = bounds.iter().filter(|(p, _)| *p != Pretraining::Adversarial).map(|(_, b)| *b).collect();
    let highest = match at {
        None => ClaimVerdict::NotTested,
        Some(_) if others.is_empty() => ClaimVerdict::NotTested,
        Some(a) => {
            let proven_above = |lo: Option<f64>, b: &crate::verdict::SparsityBound| lo.zip(b.below).is_some_and(|(l, u)| l >= u);
            if others.iter().all(|o| proven_above(a.at_least, o)) {
                ClaimVerdict::Reproduced
            } else if others.iter().any(|o| a.below.zip(o.at_least).is_some_and(|(u, l)| l >= u)) {
                ClaimVerdict::NotReproduced
            } else {
                ClaimVerdict::Unresolved
            }
        }
    };
    evidence.push(format!(
        "existence: {}; AT highest: {} (reproduced needs AT's double-win sparsity at or above the sparsity where each other \
         pre-training is resolved as not double-win)",
        exists.name(),
        highest.name()
    ));
    Claim { title, paper, verdict: exists.and(highest), evidence, settle: settle_scale(r) }
}

fn data_limited(r: &StudyResults) -> Claim {
    let title = "2. With 10% / 1% of the data, FAT gives better tickets at low sparsity and AT overtakes at high sparsity".to_string();
    let paper = "data-limited transfer (10% and 1% of CIFAR-10 / CIFAR-100): FAT's tickets lead at low sparsity, AT's at high \
                 sparsity (Fig. 3-4 of the paper)"
        .to_string();
    let s = &r.study;
    let limited: Vec<f64> = s.fractions.iter().copied().filter(|f| *f < 1.0).collect();
    let has = |k| s.pretrainings.contains(&k);
    let (Some(d), Some(family), Some(&low), Some(&high)) =
        (first_dataset(r), s.families.first().copied(), s.rounds.iter().min(), s.rounds.iter().max())
    else {
        return Claim {
            title,
            paper,
            verdict: ClaimVerdict::NotTested,
            evidence: vec!["the study has no tickets".into()],
            settle: String::new(),
        };
    };
    if limited.is_empty() || !has(Pretraining::Fast) || !has(Pretraining::Adversarial) || low == high {
        return Claim {
            title,
            paper,
            verdict: ClaimVerdict::NotTested,
            evidence: vec!["needs FAT and AT pre-trainings, a data fraction below 100% and at least two ticket rounds".into()],
            settle: "add them to the grid".into(),
        };
    }
    let mut evidence = Vec::new();
    let mut verdict: Option<ClaimVerdict> = None;
    for &f in &limited {
        if let Some(here) = crossing_at(r, Crossing { dataset: d, family, low, high, fraction: f }, &mut evidence) {
            verdict = Some(verdict.map_or(here, |v| v.and(here)));
        }
    }
    if verdict.is_none() {
        evidence.push("no data fraction below 100% where both FAT and AT pre-training measurably help: not a test".into());
    } else {
        evidence.push(format!(
            "reproduced means the leader measurably better at both ends (a lower bound above 0); not reproduced, at one end at \
             most {:.1} points better (an upper bound at most the tolerance)",
            100.0 * s.tolerance
        ));
    }
    Claim { title, paper, verdict: verdict.unwrap_or(ClaimVerdict::NotTested), evidence, settle: settle_scale(r) }
}

/// One data fraction of claim 2: the two pre-trainings' tickets at the lowest and highest round.
#[derive(Clone, Copy)]
struct Crossing {
    dataset: DataSource,
    family: ImpFamily,
    low: usize,
    high: usize,
    fraction: f64,
}

/// Claim 2 at one data fraction: FAT minus AT at the lowest round and AT minus FAT at the
/// highest, with the evidence line; `None` where the gate leaves the fraction out.
fn crossing_at(r: &StudyResults, c: Crossing, evidence: &mut Vec<String>) -> Option<ClaimVerdict> {
    let s = &r.study;
    let Crossing { dataset: d, family, low, high, fraction: f } = c;
    let gates = [Pretraining::Fast, Pretraining::Adversarial].map(|p| r.gate_outcome(p, d, f));
    if !gates.iter().all(|g| g.tests_hypothesis()) {
        evidence.push(format!(
            "{}% data: left out (pre-training gate: FAT {}, AT {} against scratch)",
            100.0 * f,
            gates[0].name(),
            gates[1].name()
        ));
        return None;
    }
    let diff = |m: Metric, round: usize, a: Pretraining, b: Pretraining| {
        r.difference(m, TransferGroup::ticket(a, family, round, d, f), TransferGroup::ticket(b, family, round, d, f))
    };
    let show = |g: Option<PairedDifference>| g.map(|g| g.points()).unwrap_or_else(|| "-".into());
    let (fat_low, at_high) = (
        diff(Metric::AdvRa, low, Pretraining::Fast, Pretraining::Adversarial),
        diff(Metric::AdvRa, high, Pretraining::Adversarial, Pretraining::Fast),
    );
    evidence.push(format!(
        "{}% data, {} tickets: RA after adversarial FT, FAT minus AT at {:.1}% sparsity {}; AT minus FAT at {:.1}% sparsity {} \
         (SA after standard FT: {} and {})",
        100.0 * f,
        family.name(),
        100.0 * s.imp.sparsity_after(low),
        show(fat_low),
        100.0 * s.imp.sparsity_after(high),
        show(at_high),
        show(diff(Metric::StdSa, low, Pretraining::Fast, Pretraining::Adversarial)),
        show(diff(Metric::StdSa, high, Pretraining::Adversarial, Pretraining::Fast)),
    ));
    // Each end asks "does one beat the other?" with the gate's rule: measurably better, or at
    // most the tolerance better (refuted), or undecided.
    let here = match (fat_low.map(|g| g.better(s.tolerance)), at_high.map(|g| g.better(s.tolerance))) {
        (Some(Some(true)), Some(Some(true))) => ClaimVerdict::Reproduced,
        (Some(a), Some(b)) if a == Some(false) || b == Some(false) => ClaimVerdict::NotReproduced,
        (Some(_), Some(_)) => ClaimVerdict::Unresolved,
        _ => ClaimVerdict::NotTested,
    };
    Some(here)
}

fn families(r: &StudyResults) -> Claim {
    let title = "3. Standard or adversarial re-training inside IMP (m^ST vs m^AT) makes no significant difference".to_string();
    let paper = "m^ST and m^AT tickets transfer about equally well (no significant difference in SA or RA)".to_string();
    let s = &r.study;
    if !(s.families.contains(&ImpFamily::Standard) && s.families.contains(&ImpFamily::Adversarial)) || s.rounds.is_empty() {
        return Claim {
            title,
            paper,
            verdict: ClaimVerdict::NotTested,
            evidence: vec!["needs both IMP families".into()],
            settle: "add both families to the grid".into(),
        };
    }
    let mut evidence = Vec::new();
    let mut overall = Vec::new();
    let pairs_of = |pres: &[Pretraining]| {
        let mut pairs = Vec::new();
        for &pre in pres {
            for &d in &s.downstream {
                for &f in s.fractions.iter().filter(|&&f| r.gate_outcome(pre, d, f).tests_hypothesis()) {
                    for &round in &s.rounds {
                        let st = r.runs(TransferGroup::ticket(pre, ImpFamily::Standard, round, d, f));
                        let at = r.runs(TransferGroup::ticket(pre, ImpFamily::Adversarial, round, d, f));
                        pairs.push((at, st));
                    }
                }
            }
        }
        pairs
    };
    let tol = s.tolerance;
    for m in Metric::ALL {
        let Some(all) = pooled(m, &pairs_of(&s.pretrainings)) else { continue };
        let per_pre: Vec<String> =
            s.pretrainings.iter().filter_map(|&p| pooled(m, &pairs_of(&[p])).map(|g| format!("{} {}", p.short(), g.points()))).collect();
        evidence.push(format!(
            "{}: m^AT minus m^ST, pooled over pre-trainings, data fractions and rounds: {} points ({})",
            m.name(),
            all.points(),
            per_pre.join(", ")
        ));
        overall.push(all);
    }
    if overall.is_empty() {
        evidence.push("no setting where pre-training measurably helps (see the pre-training gate): not a test".into());
    }
    let verdict = if overall.is_empty() {
        ClaimVerdict::NotTested
    } else if overall.iter().all(|g| g.lower >= -tol && g.upper <= tol) {
        ClaimVerdict::Reproduced
    } else if overall.iter().any(|g| g.lower > tol || g.upper < -tol) {
        ClaimVerdict::NotReproduced
    } else {
        ClaimVerdict::Unresolved
    };
    evidence.push(format!(
        "reproduced means every pooled interval lies within +-{:.1} points (equivalence); not reproduced, one lies entirely outside \
         it",
        100.0 * tol
    ));
    Claim { title, paper, verdict, evidence, settle: settle_scale(r) }
}
