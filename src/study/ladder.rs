//! The ladder toward the paper's protocol: does the study's answer belong to the paper's
//! question or to the miniature's shortcuts? Each [`Rung`] changes one thing from a base study
//! (IMP that re-trains, a wider network, more downstream data, longer fine-tuning), and a last
//! rung combines those that moved anything. Every rung is an ordinary [`Study`] run through the
//! store (resumable, shared steps computed once, workers or Slurm alike); [`LadderReport`] is the
//! table "Does the answer hold?": per rung its cost, each ticket minus the dense network, IMP
//! minus one-shot pruning, the verdict and the pre-training gate. The report of the base study
//! reads a saved ladder from the store ([`LadderReport::load`]); it never computes one.

use super::gate::GateOutcome;
use super::grid::Study;
use super::grid::SubnetworkKind;
use super::query::TransferGroup;
use super::results::StudyResults;
use super::steps::subnetwork_name;
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::stats::PairedDifference;
use crate::store::Store;
use crate::train::{ImpFamily, Pretraining};
use crate::verdict::{paired, Metric, Outcome};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One change to a study: a rung of the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rung {
    /// The base study as it is.
    Base,
    /// IMP that re-trains: every round on all of the source for `epochs` epochs (the paper
    /// re-trains each round on the whole source), with both mask families.
    ImpRetrains { epochs: usize },
    /// The ConvNet's widths times `factor`.
    Wider { factor: i64 },
    /// This fraction of the downstream training data (the tickets' controls too).
    Data { fraction: f64 },
    /// Fine-tuning epochs and minimum SGD steps times `factor`.
    LongerFineTuning { factor: usize },
    /// Several rungs at once.
    Combined(Vec<Rung>),
}

impl Rung {
    /// A short name for tables and `--only`: base, imp, wider-2, data-10, fine-tune-2, or the
    /// combined rungs' names joined by `+`.
    pub fn name(&self) -> String {
        match self {
            Rung::Base => "base".into(),
            Rung::ImpRetrains { .. } => "imp".into(),
            Rung::Wider { factor } => format!("wider-{factor}"),
            Rung::Data { fraction } => format!("data-{}", 100.0 * fraction),
            Rung::LongerFineTuning { factor } => format!("fine-tune-{factor}"),
            Rung::Combined(v) => v.iter().map(Rung::name).collect::<Vec<_>>().join("+"),
        }
    }

    /// What the rung changes, in words.
    pub fn change(&self) -> String {
        match self {
            Rung::Base => "the base study as it is".into(),
            Rung::ImpRetrains { epochs } => {
                format!("IMP re-trains {epochs} epoch(s) per round on all of the source; m^ST and m^AT")
            }
            Rung::Wider { factor } => format!("ConvNet widths x{factor}"),
            Rung::Data { fraction } => format!("{}% of the downstream data", 100.0 * fraction),
            Rung::LongerFineTuning { factor } => format!("{factor}x the fine-tuning epochs and steps"),
            Rung::Combined(v) => v.iter().map(Rung::change).collect::<Vec<_>>().join("; "),
        }
    }

    /// Applies the change to `study`.
    pub fn apply(&self, study: &mut Study) -> Result<()> {
        match self {
            Rung::Base => {}
            Rung::ImpRetrains { epochs } => {
                study.imp_fraction = 1.0;
                study.imp.retrain.epochs = *epochs;
                for family in [ImpFamily::Standard, ImpFamily::Adversarial] {
                    if !study.families.contains(&family) {
                        study.families.push(family);
                    }
                }
            }
            Rung::Wider { factor } => study.arch = study.arch.widened(*factor)?,
            Rung::Data { fraction } => {
                study.fractions = vec![*fraction];
                if let Some(c) = &mut study.controls {
                    c.fractions = vec![*fraction];
                }
            }
            Rung::LongerFineTuning { factor } => {
                study.transfer.recipe.epochs *= factor;
                study.transfer.min_steps *= factor;
            }
            Rung::Combined(v) => {
                for r in v {
                    r.apply(study)?;
                }
            }
        }
        Ok(())
    }
}

/// The base study and its rungs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ladder {
    /// The study whose answer is questioned (e.g. the `small` profile).
    pub base: Study,
    /// The base narrowed to the ladder's cell (see [`Ladder::toward_paper`]).
    pub cell: Study,
    pub rungs: Vec<Rung>,
    /// Every rung of the full ladder, by name (what a report lists as not run yet).
    pub planned: Vec<String>,
    /// Whether [`Ladder::run`] adds the combination of the rungs that moved (the full ladder;
    /// not a run of some rungs, [`Ladder::only`]).
    pub combine: bool,
}

/// Per-round re-training epochs of the IMP rung: enough for every round's re-trained network to
/// come back within a point of the dense network on the source validation split at the `small`
/// sizes (measured: crates/bench/studies.md, "IMP that re-trains").
pub const IMP_RETRAIN_EPOCHS: usize = 3;

/// The width factors of the ladder's wider rungs, narrowest first. The `full` profile takes the
/// widest: the closest the ConvNet comes to the paper's over-parameterised ResNets.
pub const WIDTH_FACTORS: [i64; 2] = [2, 4];

impl Ladder {
    /// The ladder toward the paper from `base`: its cell narrowed to the STD and AT sources,
    /// m^ST tickets at the base's rounds with one-shot and random-ticket controls at each of them,
    /// the scratch control (the gate), the first `seeds` seeds, no stability set, landscapes or
    /// attack checks. Rungs: the base; IMP that re-trains; widths x2; 10% of the downstream data;
    /// twice the fine-tuning; widths x4 ([`WIDTH_FACTORS`]). [`Ladder::run`] adds the combination of the rungs
    /// that moved anything.
    pub fn toward_paper(base: &Study, seeds: usize) -> Result<Ladder> {
        if seeds == 0 {
            return Err(Error::invalid("a ladder with 0 seeds", "use --ladder-seeds 6 (or more)"));
        }
        let mut cell = base.clone();
        cell.pretrainings.retain(|p| *p != Pretraining::Fast);
        cell.families = vec![ImpFamily::Standard];
        cell.seeds = (0..seeds as u64).collect();
        cell.stability_seeds = Vec::new();
        cell.landscapes = None;
        cell.attack_check_examples = 0;
        cell.scratch = true;
        if let Some(c) = &mut cell.controls {
            c.family = ImpFamily::Standard;
            c.rounds = cell.rounds.clone();
            c.fractions = cell.fractions.clone();
        }
        // In the order they run: the dearest last, so that an interrupted ladder has the others.
        let mut rungs = vec![Rung::Base, Rung::ImpRetrains { epochs: IMP_RETRAIN_EPOCHS }, Rung::Wider { factor: WIDTH_FACTORS[0] }];
        if !cell.fractions.contains(&0.1) {
            rungs.push(Rung::Data { fraction: 0.1 });
        }
        rungs.extend([Rung::LongerFineTuning { factor: 2 }, Rung::Wider { factor: WIDTH_FACTORS[1] }]);
        let planned = rungs.iter().map(Rung::name).collect();
        Ok(Ladder { base: base.clone(), cell, rungs, planned, combine: true })
    }

    /// Keeps only the rungs named in `names` (see [`Rung::name`]); an unknown name is refused.
    pub fn only(mut self, names: &[String]) -> Result<Ladder> {
        if names.is_empty() {
            return Ok(self);
        }
        for n in names {
            if !self.rungs.iter().any(|r| r.name() == *n) {
                return Err(Error::invalid(
                    format!("no rung named '{n}'"),
                    format!("use one of {}", self.rungs.iter().map(Rung::name).collect::<Vec<_>>().join(", ")),
                ));
            }
        }
        self.rungs.retain(|r| names.contains(&r.name()));
        self.combine = false;
        Ok(self)
    }

    /// The study of a rung: the cell with the rung's change, checked.
    pub fn study(&self, rung: &Rung) -> Result<Study> {
        let mut s = self.cell.clone();
        rung.apply(&mut s)?;
        s.check()?;
        Ok(s)
    }

    /// The studies of the rungs to run, by name: every rung of this ladder, and the combination of
    /// the rungs that moved when `saved` (the store's ladder of the same base) has every planned
    /// rung and more than one of them moved. What `study ladder --export` writes for a cluster.
    pub fn studies(&self, saved: Option<&LadderReport>) -> Result<Vec<(String, Study)>> {
        let mut out = Vec::new();
        for rung in &self.rungs {
            out.push((rung.name(), self.study(rung)?));
        }
        if let Some(rung) = saved.filter(|_| self.combine).and_then(|s| s.combined_rung(&self.planned)) {
            out.push((rung.name(), self.study(&rung)?));
        }
        Ok(out)
    }

    /// Runs every rung with `run` (which computes what the store lacks of a study and returns
    /// its results: one process, workers or a cluster), then the combination of the rungs that
    /// moved anything against the base (when more than one did), and returns the table.
    pub fn run(&self, store: &Store, mut run: impl FnMut(&Study) -> Result<StudyResults>) -> Result<LadderReport> {
        let mut rungs = Vec::new();
        for rung in &self.rungs {
            crate::progress::note(&format!("ladder rung '{}': {}", rung.name(), rung.change()));
            let study = self.study(rung)?;
            rungs.push(LadderRung::of(rung, &run(&study)?, store)?);
        }
        rungs.sort_by_key(|r| rung_order(&r.rung));
        let mut report = LadderReport {
            base_key: ladder_key(&self.base)?,
            seeds: self.cell.seeds.clone(),
            tolerance: self.cell.tolerance,
            planned: self.planned.clone(),
            complete: self.combine,
            rungs,
        };
        let combination = report.combination();
        if self.combine && combination.len() > 1 {
            let rung = Rung::Combined(combination);
            crate::progress::note(&format!("ladder rung '{}' (the rungs that moved something): {}", rung.name(), rung.change()));
            let study = self.study(&rung)?;
            report.rungs.push(LadderRung::of(&rung, &run(&study)?, store)?);
        }
        Ok(report)
    }
}

/// One ticket of a rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderRow {
    pub pretraining: Pretraining,
    pub family: ImpFamily,
    pub round: usize,
    pub sparsity: f64,
    /// Ticket minus dense (`Metric::ALL` order), seed-paired.
    pub gaps: [Option<PairedDifference>; 3],
    /// Ticket minus one-shot pruning to the same count (where the rung has that control).
    pub vs_one_shot: [Option<PairedDifference>; 3],
    pub outcome: Outcome,
}

/// What one rung gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderRung {
    pub rung: Rung,
    /// Core-seconds of every step of the rung's study as the store recorded them ([`Store::core_seconds`];
    /// shared steps counted in every rung that uses them: what the rung costs from an empty
    /// store); `None` when a step has no recorded time.
    pub cost_seconds: Option<f64>,
    pub steps: usize,
    /// The pre-training gate per pre-training (first downstream dataset and fraction).
    pub gates: Vec<(Pretraining, GateOutcome)>,
    pub rows: Vec<LadderRow>,
}

impl LadderRung {
    fn of(rung: &Rung, r: &StudyResults, store: &Store) -> Result<LadderRung> {
        let s = &r.study;
        let plan = s.plan()?;
        let cost = plan.steps.iter().map(|p| store.core_seconds(p.kind, &p.key)).sum::<Option<f64>>();
        let (d, f) = (s.downstream[0], s.fractions[0]);
        let mut rows = Vec::new();
        for cell in r.verdicts().into_iter().filter(|c| c.dataset == d && c.fraction == f) {
            for (round, v) in s.rounds.iter().zip(&cell.verdict.rows) {
                let ticket = TransferGroup::ticket(cell.pretraining, cell.family, *round, d, f);
                let one_shot = r.runs(ticket.kind(SubnetworkKind::OneShot));
                let vs_one_shot = Metric::ALL.map(|m| (!one_shot.is_empty()).then(|| paired(m, &r.runs(ticket), &one_shot)).flatten());
                rows.push(LadderRow {
                    pretraining: cell.pretraining,
                    family: cell.family,
                    round: *round,
                    sparsity: v.sparsity,
                    gaps: v.gaps,
                    vs_one_shot,
                    outcome: v.outcome,
                });
            }
        }
        let gates = s.pretrainings.iter().map(|&p| (p, r.gate_outcome(p, d, f))).collect();
        Ok(LadderRung { rung: rung.clone(), cost_seconds: cost, steps: plan.len(), gates, rows })
    }

    fn gate_outcome(&self, p: Pretraining) -> GateOutcome {
        self.gates.iter().find(|(q, _)| *q == p).map_or(GateOutcome::NotChecked, |(_, g)| *g)
    }

    /// Whether this rung moved anything against `base`: a gate or a verdict changed, or a
    /// ticket's difference to the dense network moved by more than `tol` and by more than the
    /// half-width of either interval (beyond what the seeds alone move), on a ticket
    /// (pre-training, family, round) both have.
    pub fn moved_from(&self, base: &LadderRung, tol: f64) -> bool {
        let gate_changed = self.gates.iter().any(|(p, g)| base.gate_outcome(*p) != *g);
        gate_changed
            || self.rows.iter().any(|row| {
                base.rows.iter().filter(|b| (b.pretraining, b.family, b.round) == (row.pretraining, row.family, row.round)).any(|b| {
                    b.outcome != row.outcome
                        || row.gaps.iter().zip(&b.gaps).any(|(x, y)| match (x, y) {
                            (Some(x), Some(y)) => {
                                let half = |g: &PairedDifference| (g.upper - g.lower) / 2.0;
                                (x.mean - y.mean).abs() > tol.max(half(x)).max(half(y))
                            }
                            _ => false,
                        })
                })
            })
    }

    /// Whether pre-training measurably helps at least one of the rung's sources (the gate), so
    /// that some of its verdicts test the paper's hypothesis.
    pub fn tests_hypothesis(&self) -> bool {
        self.gates.iter().any(|(_, g)| g.tests_hypothesis())
    }

    /// Double-win tickets among those whose setting passes the gate (a test of the hypothesis).
    pub fn double_wins(&self) -> usize {
        self.rows.iter().filter(|r| r.outcome == Outcome::DoubleWin && self.gate_outcome(r.pretraining).tests_hypothesis()).count()
    }
}

/// The ladder's table: "Does the answer hold?"
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderReport {
    /// The store key of the base study (which report the ladder belongs to).
    pub base_key: String,
    pub seeds: Vec<u64>,
    pub tolerance: f64,
    /// Every single-change rung of the full ladder, by name.
    #[serde(default)]
    pub planned: Vec<String>,
    /// Whether the full ladder ran (its combination included, when more than one rung moved).
    #[serde(default)]
    pub complete: bool,
    pub rungs: Vec<LadderRung>,
}

/// Where a rung stands in a ladder's table.
fn rung_order(r: &Rung) -> (usize, i64) {
    match r {
        Rung::Base => (0, 0),
        Rung::ImpRetrains { .. } => (1, 0),
        Rung::Wider { factor } => (2, *factor),
        Rung::Data { .. } => (3, 0),
        Rung::LongerFineTuning { .. } => (4, 0),
        Rung::Combined(v) => (5, v.len() as i64),
    }
}

/// The key a ladder of `base` is saved under. The ladder runs its own seeds (the first few) and
/// no stability set, so the base's seed sets are left out: a ladder still belongs to a base whose
/// seed count changed.
fn ladder_key(base: &Study) -> Result<String> {
    let base = Study { seeds: Vec::new(), stability_seeds: Vec::new(), ..base.clone() };
    crate::store::key_of("ladder", &base)
}

fn ladder_path(store: &Store, base_key: &str) -> PathBuf {
    store.root().join("ladders").join(format!("{base_key}.json"))
}

impl LadderReport {
    /// Writes the ladder into the store (atomically), where the base study's report finds it.
    pub fn save(&self, store: &Store) -> Result<PathBuf> {
        let path = ladder_path(store, &self.base_key);
        crate::fsio::write_json(&path, self)?;
        Ok(path)
    }

    /// The saved ladder of `base`, if the store has one. A damaged file is reported and ignored
    /// (run `study ladder` again to rewrite it).
    pub fn load(store: &Store, base: &Study) -> Result<Option<LadderReport>> {
        let path = ladder_path(store, &ladder_key(base)?);
        if !path.exists() {
            return Ok(None);
        }
        match crate::fsio::read_json(&path) {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                crate::progress::warn(&format!("{e}: the report leaves the ladder out (run `doublewin study ladder` again)"));
                Ok(None)
            }
        }
    }

    /// The single-change rungs that moved something against the base (see
    /// [`LadderRung::moved_from`]); empty without a base rung.
    pub fn moved(&self) -> Vec<Rung> {
        let Some(base) = self.rungs.iter().find(|r| r.rung == Rung::Base) else { return Vec::new() };
        self.rungs
            .iter()
            .filter(|r| !matches!(r.rung, Rung::Base | Rung::Combined(_)) && r.moved_from(base, self.tolerance))
            .map(|r| r.rung.clone())
            .collect()
    }

    /// The rungs the combined rung applies: those that moved something, of the wider rungs only
    /// the widest (widening twice would multiply the factors: x2 then x4 is x8, a network no rung
    /// measured).
    pub fn combination(&self) -> Vec<Rung> {
        let moved = self.moved();
        let widest = moved.iter().filter_map(|r| if let Rung::Wider { factor } = r { Some(*factor) } else { None }).max();
        moved.into_iter().filter(|r| !matches!(r, Rung::Wider { factor } if Some(*factor) != widest)).collect()
    }

    /// The combined rung, once every rung in `planned` has run and more than one moved something.
    pub fn combined_rung(&self, planned: &[String]) -> Option<Rung> {
        let ran: Vec<String> = self.rungs.iter().map(|r| r.rung.name()).collect();
        let combination = self.combination();
        (planned.iter().all(|n| ran.contains(n)) && combination.len() > 1).then_some(Rung::Combined(combination))
    }

    /// This ladder with the rungs of `older` (a saved ladder of the same base and seeds) that it
    /// did not run itself, so that a run of some rungs (`--only`) keeps the others.
    pub fn merged_with(mut self, older: Option<LadderReport>) -> LadderReport {
        if let Some(old) = older.filter(|o| o.base_key == self.base_key && o.seeds == self.seeds) {
            self.complete |= old.complete;
            let kept: Vec<LadderRung> = old.rungs.into_iter().filter(|o| !self.rungs.iter().any(|r| r.rung == o.rung)).collect();
            self.rungs.extend(kept);
            // Ladder order: single changes as the ladder lists them, combinations last.
            self.rungs.sort_by_key(|r| rung_order(&r.rung));
        }
        self
    }

    /// What the ladder shows, in one or two sentences.
    pub fn conclusion(&self) -> String {
        let names = |v: Vec<&LadderRung>| v.iter().map(|r| r.rung.name()).collect::<Vec<_>>().join(", ");
        let yes: Vec<&LadderRung> = self.rungs.iter().filter(|r| r.double_wins() > 0).collect();
        let moved = self.moved();
        let moved = if self.rungs.len() < 2 || !self.rungs.iter().any(|r| r.rung == Rung::Base) {
            String::new()
        } else if moved.is_empty() {
            "No rung moved a verdict, a gate or a ticket's difference to dense by more than the tolerance.".to_string()
        } else {
            format!("Rungs that moved something against the base: {}.", moved.iter().map(Rung::name).collect::<Vec<_>>().join(", "))
        };
        let ran: Vec<String> = self.rungs.iter().map(|r| r.rung.name()).collect();
        let mut missing: Vec<String> = self.planned.iter().filter(|n| !ran.contains(n)).cloned().collect();
        if !self.complete && self.combination().len() > 1 {
            missing.push("the combination of the rungs that moved".into());
        }
        let missing = if missing.is_empty() {
            String::new()
        } else {
            format!(" Not run yet: {} (`doublewin study ladder` completes the ladder through the store).", missing.join(", "))
        };
        // A rung where pre-training measurably helps no source tests nothing inherited: say so
        // rather than count it among the rungs the "no" holds under.
        let (tested, untested): (Vec<&LadderRung>, Vec<&LadderRung>) = self.rungs.iter().partition(|r| r.tests_hypothesis());
        let untested = match untested.len() {
            0 => String::new(),
            n => format!(
                " {} {} nothing: pre-training measurably helps none of {} sources there (the gate), so a ticket that matches \
                 dense there keeps nothing shown to come from pre-training.",
                names(untested),
                if n == 1 { "tests" } else { "test" },
                if n == 1 { "its" } else { "their" }
            ),
        };
        if !yes.is_empty() {
            format!("The answer changes along the ladder: double-win tickets appear at {}.{untested} {moved}{missing}", names(yes))
        } else if tested.is_empty() {
            format!("No rung tests the hypothesis.{untested} {moved}{missing}")
        } else {
            format!(
                "The \"no\" holds under {}: no rung yields a double-win ticket where pre-training measurably helps.{untested} {moved}{missing}",
                names(tested)
            )
        }
    }

    /// The table: one row per rung and ticket.
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Does the answer hold? Each rung changes one thing from the base; ticket minus dense and ticket minus one-shot pruning, \
                 points, seed-paired mean [95% interval], {} seeds; tolerance {:.1} points; cost = core-minutes of all the rung's steps",
                self.seeds.len(),
                100.0 * self.tolerance
            ),
            &[
                "rung",
                "change",
                "cost (core-min)",
                "pre-training (gate)",
                "ticket",
                "sparsity %",
                "std-FT SA",
                "adv-FT SA",
                "adv-FT RA",
                "IMP minus one-shot (std SA / adv SA / adv RA)",
                "double-win",
            ],
        );
        for r in &self.rungs {
            for (i, row) in r.rows.iter().enumerate() {
                let gap = |g: &Option<PairedDifference>| g.map(|g| g.points()).unwrap_or_else(|| "-".into());
                let short = |g: &Option<PairedDifference>| g.map(|g| format!("{:+.1}", 100.0 * g.mean)).unwrap_or_else(|| "-".into());
                // A rung's change and cost once, on its first row.
                let (change, cost) = match i {
                    0 => (r.rung.change(), r.cost_seconds.map(|c| format!("{:.0}", c / 60.0)).unwrap_or_else(|| "-".into())),
                    _ => (String::new(), String::new()),
                };
                t.push(vec![
                    r.rung.name(),
                    change,
                    cost,
                    format!("{} ({})", row.pretraining.short(), r.gate_outcome(row.pretraining).name()),
                    subnetwork_name(SubnetworkKind::Ticket, Some(row.family), row.round),
                    format!("{:.1}", 100.0 * row.sparsity),
                    gap(&row.gaps[0]),
                    gap(&row.gaps[1]),
                    gap(&row.gaps[2]),
                    row.vs_one_shot.iter().map(short).collect::<Vec<_>>().join(" / "),
                    row.outcome.name().into(),
                ]);
            }
        }
        t
    }

    /// The ladder as a report section (Markdown).
    pub fn markdown(&self) -> String {
        format!("## Does the answer hold? The ladder toward the paper\n\n{}\n\n{}", self.conclusion(), self.table().to_markdown())
    }

    /// The ladder as a report section (HTML).
    pub fn html(&self) -> String {
        format!(
            "<h2>Does the answer hold? The ladder toward the paper</h2><p>{}</p>{}",
            crate::display::escape_html(&self.conclusion()),
            self.table().to_html()
        )
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.html());
    }
}

impl std::fmt::Display for LadderReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.table())?;
        writeln!(f, "{}", self.conclusion())
    }
}
