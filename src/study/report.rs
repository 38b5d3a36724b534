//! What a study shows: the double-win verdicts with their intervals, the headline (highest
//! double-win sparsity), tickets against their controls, IMP diagnostics, the sparsity /
//! data-efficiency / IMP-family / landscape figures, the three claims of the paper as tested
//! claims ([`super::claims`]), and the Markdown and self-contained HTML reports.

use super::claims::Claim;
use super::grid::SubnetworkKind;
use super::query::TransferGroup;
use super::steps::subnetwork_name;
use super::StudyResults;
use crate::data::DataSource;
use crate::display::{escape_html, evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::landscape::{landscape_figure, landscape_table, Landscape};
use crate::plot::{palette, Color, Figure, Layer, Panel, Series};
use crate::prune::Mask;
use crate::stats::PairedDifference;
use crate::train::{ImpFamily, Pretraining};
use crate::transfer::TransferReport;
use crate::verdict::{paired, Metric, SparsityBound, Verdict};
use serde::{Deserialize, Serialize};

/// A verdict with what it is about: the tickets of one IMP family of one pre-training, on one
/// downstream dataset at one data fraction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerdictCell {
    pub pretraining: Pretraining,
    pub family: ImpFamily,
    pub dataset: DataSource,
    pub fraction: f64,
    pub verdict: Verdict,
}

impl StudyResults {
    /// One panel per metric the grid measures: accuracy against sparsity, one line per
    /// `(label, colour, dashed, pick)` curve (its points at the study's rounds), each ticket's
    /// band the 95% interval of its paired difference to the dense network drawn around its
    /// mean, each dense network a dashed horizontal line.
    fn metric_panels(&self, title: &str, curves: &[(String, Color, bool, TransferGroup)]) -> Vec<Panel> {
        Metric::ALL
            .iter()
            .map(|&metric| {
                let mut panel = Panel::new(format!("{title}{}", metric.name()), "sparsity (%)", "test accuracy (%)");
                let mut baselines: Vec<(Pretraining, DataSource, u64)> = Vec::new();
                let one_dense = curves.iter().all(|c| c.3.pretraining == curves[0].3.pretraining);
                for (label, color, dashed, pick) in curves {
                    let dense_pick = TransferGroup::dense(pick.pretraining, pick.dataset, pick.fraction);
                    let dense = self.runs(dense_pick);
                    let rounds = self.rounds_of(pick.kind);
                    let mut points = Vec::new();
                    let mut band = Vec::new();
                    for r in rounds {
                        let p = TransferGroup { round: r, ..*pick };
                        let runs = self.runs(p);
                        let (Some(s), Some(m)) = (self.sparsity(p), metric.mean(&runs)) else { continue };
                        points.push((100.0 * s, 100.0 * m));
                        if let (Some(g), Some(d)) = (paired(metric, &runs, &dense), metric.mean(&dense)) {
                            band.push((100.0 * s, 100.0 * (d + g.lower), 100.0 * (d + g.upper)));
                        }
                    }
                    if !band.is_empty() && !dashed {
                        panel.push(Layer::Band { name: String::new(), color: *color, points: band });
                    }
                    let series = Series::new(label.clone(), points);
                    panel.push(if *dashed { Layer::dashed(series, *color) } else { Layer::line(series, *color) });
                    let id = (pick.pretraining, pick.dataset, pick.fraction.to_bits());
                    if !baselines.contains(&id) {
                        baselines.push(id);
                        if let Some(d) = metric.mean(&dense) {
                            let name = if one_dense { "dense".to_string() } else { format!("{} dense", pick.pretraining.short()) };
                            panel.push(Layer::HLine { name, y: 100.0 * d, color: if one_dense { Color::GREY } else { *color } });
                        }
                    }
                }
                panel
            })
            // A metric the grid does not measure (e.g. no standard fine-tuning) is left out.
            .filter(Panel::has_data)
            .collect()
    }

    /// The rounds at which subnetworks of `kind` were transferred.
    fn rounds_of(&self, kind: SubnetworkKind) -> Vec<usize> {
        match (kind, &self.study.controls) {
            (SubnetworkKind::RandomTicket | SubnetworkKind::OneShot, Some(c)) => c.rounds.clone(),
            _ => self.study.rounds.clone(),
        }
    }

    fn note(&self) -> String {
        format!(
            "mean over {} seed(s); bands: 95% interval of the seed-paired difference to the dense network (dashed), drawn around \
             the ticket's mean",
            self.study.seeds.len()
        )
    }

    /// The paper's main figure, with the controls: for each pre-training (a row), SA and RA of
    /// the tickets of `family` against sparsity, the random-ticket and one-shot controls (dashed,
    /// where the study runs them) and the dense network.
    pub fn sparsity_figure(&self, dataset: impl Into<DataSource>, fraction: f64, family: ImpFamily) -> Result<Figure> {
        let dataset = dataset.into();
        let mut panels = Vec::new();
        // One colour per pre-training's ticket and one per control, so that the legend's
        // "STD ticket", "FAT ticket" and "AT ticket" differ (they once shared the first colour).
        let n = self.study.pretrainings.len();
        for (j, &pre) in self.study.pretrainings.iter().enumerate() {
            let ticket = TransferGroup::ticket(pre, family, 0, dataset, fraction);
            let mut curves = vec![(format!("{} ticket", pre.short()), palette(j), false, ticket)];
            if let Some(c) = self.study.controls.as_ref().filter(|c| c.family == family && c.fractions.contains(&fraction)) {
                for (i, &k) in c.kinds.iter().enumerate() {
                    curves.push((k.name().to_string(), palette(n + i), true, ticket.kind(k)));
                }
            }
            panels.extend(self.metric_panels(&format!("{}: ", pre.short()), &curves));
        }
        let cols = panels.len().clamp(1, 3);
        let mut fig = Figure::grid(
            format!(
                "{} tickets transferred to {} with {}% of its data, against their controls",
                family.name(),
                dataset.name(),
                100.0 * fraction
            ),
            panels,
            cols,
        )?
        .note(self.note());
        fig.panel_size = (360.0, 260.0);
        Ok(fig)
    }

    /// One row of panels per data fraction: the tickets of every pre-training.
    pub fn data_efficiency_figure(&self, dataset: impl Into<DataSource>, family: ImpFamily) -> Result<Figure> {
        let dataset = dataset.into();
        let panels = self
            .study
            .fractions
            .iter()
            .flat_map(|&f| {
                let curves: Vec<_> = self
                    .study
                    .pretrainings
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (format!("{} ticket", p.short()), palette(i), false, TransferGroup::ticket(p, family, 0, dataset, f)))
                    .collect();
                self.metric_panels(&format!("{}% data: ", 100.0 * f), &curves)
            })
            .collect();
        // The title names the fractions the study has (it once said "100% vs less data" of a study
        // with only 1%).
        let fractions = self.study.fractions.iter().map(|f| format!("{}%", 100.0 * f)).collect::<Vec<_>>().join(" vs ");
        let mut fig =
            Figure::grid(format!("{} tickets on {}: {fractions} of the data", family.name(), dataset.name()), panels, 3)?.note(self.note());
        fig.panel_size = (360.0, 260.0);
        Ok(fig)
    }

    /// m^ST against m^AT tickets, one row of panels per pre-training.
    pub fn family_figure(&self, dataset: impl Into<DataSource>, fraction: f64) -> Result<Figure> {
        let dataset = dataset.into();
        let mut panels = Vec::new();
        for &pre in &self.study.pretrainings {
            let curves: Vec<_> = self
                .study
                .families
                .iter()
                .enumerate()
                .map(|(i, &f)| (f.name().to_string(), palette(i), false, TransferGroup::ticket(pre, f, 0, dataset, fraction)))
                .collect();
            panels.extend(self.metric_panels(&format!("{}: ", pre.short()), &curves));
        }
        let mut fig = Figure::grid(format!("IMP re-training: m^ST vs m^AT ({}, {}% data)", dataset.name(), 100.0 * fraction), panels, 3)?
            .note(self.note());
        fig.panel_size = (360.0, 260.0);
        Ok(fig)
    }

    /// The landscapes of the study: one row per pre-training, one column per data fraction (one
    /// row of pre-trainings where the study has one fraction), all on one contour scale.
    pub fn landscape_figure(&self) -> Result<Figure> {
        let plan =
            self.study.landscapes.as_ref().ok_or_else(|| Error::invalid("this study draws no landscapes", "set study.landscapes"))?;
        let landscapes: Vec<Landscape> = self.landscapes.iter().map(|l| l.landscape.clone()).collect();
        if landscapes.is_empty() {
            return Err(Error::invalid("no landscapes in these results", "run the study first"));
        }
        let mut fig = landscape_figure(
            &format!(
                "Loss landscapes of the {} ticket ({:.2}% sparse), {} fine-tuning on {}",
                subnetwork_name(SubnetworkKind::Ticket, Some(plan.family), plan.round),
                100.0 * landscapes[0].sparsity,
                plan.fine_tuning.name(),
                plan.dataset.name()
            ),
            &landscapes,
            // One column per data fraction; with one fraction, the pre-trainings side by side.
            if plan.fractions.len() > 1 { plan.fractions.len() } else { landscapes.len() },
        )?;
        fig.panel_size = (360.0, 300.0);
        Ok(fig)
    }

    /// The study's landscapes as a table, with the test SA / RA of the fine-tuning drawn.
    pub fn landscape_table(&self) -> Table {
        let mut t = landscape_table(&self.landscapes.iter().map(|l| l.landscape.clone()).collect::<Vec<_>>());
        t.headers.extend(["test SA %".to_string(), "test RA %".to_string()]);
        for (row, l) in t.rows.iter_mut().zip(&self.landscapes) {
            row.push(format!("{:.2}", 100.0 * l.report.best_sa.test_sa));
            row.push(format!("{:.2}", 100.0 * l.report.best_ra.test_ra));
        }
        t
    }

    /// Verdicts per (pre-training, IMP family, downstream dataset, data fraction).
    pub fn verdicts(&self) -> Vec<VerdictCell> {
        let s = &self.study;
        let mut out = Vec::new();
        for &pre in &s.pretrainings {
            for &family in &s.families {
                for &d in &s.downstream {
                    for &fraction in &s.fractions {
                        let dense = self.runs(TransferGroup::dense(pre, d, fraction));
                        let tickets: Vec<(String, f64, Vec<&TransferReport>)> = s
                            .rounds
                            .iter()
                            .filter_map(|&r| {
                                let p = TransferGroup::ticket(pre, family, r, d, fraction);
                                Some((subnetwork_name(SubnetworkKind::Ticket, Some(family), r), self.sparsity(p)?, self.runs(p)))
                            })
                            .collect();
                        let verdict = Verdict::judge(&dense, &tickets, s.tolerance);
                        out.push(VerdictCell { pretraining: pre, family, dataset: d, fraction, verdict });
                    }
                }
            }
        }
        out
    }

    /// The highest double-win sparsity of a pre-training on a dataset at a data fraction, over
    /// the IMP families: the family whose bound reaches highest, and of families that reach
    /// equally high the one whose upper limit lies highest (no limit above all), so that the
    /// limit holds for every family.
    pub fn bound(&self, pre: Pretraining, dataset: DataSource, fraction: f64) -> SparsityBound {
        let key = |b: &SparsityBound| (b.at_least.unwrap_or(-1.0), b.below.unwrap_or(f64::INFINITY));
        self.verdicts()
            .into_iter()
            .filter(|c| c.pretraining == pre && c.dataset == dataset && c.fraction == fraction)
            .map(|c| c.verdict.bound())
            .max_by(|a, b| key(a).0.total_cmp(&key(b).0).then(key(a).1.total_cmp(&key(b).1)))
            .unwrap_or(SparsityBound { at_least: None, below: None })
    }

    /// One row per verdict cell: each ticket's outcome and the highest double-win sparsity.
    pub fn verdict_table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "Double-win tickets ({} transfers, {} seeds, tolerance {:.1} points)",
                self.transfers.len(),
                self.study.seeds.len(),
                100.0 * self.study.tolerance
            ),
            &[
                "pre-training",
                "mask",
                "downstream",
                "data %",
                "tickets (sparsity: double-win?)",
                "highest double-win sparsity",
                "a test of the hypothesis?",
            ],
        );
        for c in self.verdicts() {
            let gate = self.gate_outcome(c.pretraining, c.dataset, c.fraction);
            let tickets =
                c.verdict.rows.iter().map(|r| format!("{:.1}%: {}", 100.0 * r.sparsity, r.outcome.name())).collect::<Vec<_>>().join(", ");
            t.push(vec![
                c.pretraining.short().into(),
                c.family.name().into(),
                c.dataset.name().into(),
                format!("{}", 100.0 * c.fraction),
                tickets,
                c.verdict.bound().to_string(),
                if gate.tests_hypothesis() { "yes".into() } else { gate.caveat().replace("not a test of the hypothesis: ", "no: ") },
            ]);
        }
        t
    }

    /// Every ticket's three paired differences to the dense network, with intervals.
    pub fn gap_table(&self) -> Table {
        let mut t = Table::new(
            format!("Tickets minus dense (points, seed-paired mean [95% interval]); tolerance {:.1} points", 100.0 * self.study.tolerance),
            &["pre-training", "ticket", "downstream", "data %", "sparsity %", "std-FT SA", "adv-FT SA", "adv-FT RA", "double-win"],
        );
        for c in self.verdicts() {
            let gate = self.gate_outcome(c.pretraining, c.dataset, c.fraction);
            for r in &c.verdict.rows {
                let cell = |i: usize| r.gaps[i].map(|g| g.points()).unwrap_or_else(|| "-".into());
                t.push(vec![
                    c.pretraining.short().into(),
                    r.label.clone(),
                    c.dataset.name().into(),
                    format!("{}", 100.0 * c.fraction),
                    format!("{:.2}", 100.0 * r.sparsity),
                    cell(0),
                    cell(1),
                    cell(2),
                    if gate.tests_hypothesis() { r.outcome.name().into() } else { format!("{} ({})", r.outcome.name(), gate.caveat()) },
                ]);
            }
        }
        t
    }

    /// Per pre-training and data fraction: the highest double-win sparsity found on each
    /// downstream dataset (over the IMP families), the paper's headline comparison.
    pub fn headline_table(&self) -> Table {
        let s = &self.study;
        let mut headers = vec!["pre-training".to_string(), "data %".to_string()];
        headers.extend(s.downstream.iter().map(|d| d.name().to_string()));
        let mut t = Table {
            title: "Highest sparsity with a double-win ticket (and the lowest sparsity above it resolved as not double-win); \
                    settings where pre-training does not measurably help (the gate) are marked: they test nothing inherited"
                .into(),
            headers,
            rows: Vec::new(),
        };
        for &pre in &s.pretrainings {
            for &fraction in &s.fractions {
                let mut row = vec![pre.short().to_string(), format!("{}", 100.0 * fraction)];
                row.extend(s.downstream.iter().map(|&d| {
                    let bound = self.bound(pre, d, fraction);
                    match self.gate_outcome(pre, d, fraction) {
                        g if g.tests_hypothesis() => bound.to_string(),
                        g => format!("{bound}, not a test (pre-training {})", g.name()),
                    }
                }));
                t.rows.push(row);
            }
        }
        t
    }

    /// Tickets against their controls: the seed-paired differences ticket minus random ticket
    /// and ticket minus one-shot, per metric.
    pub fn control_table(&self) -> Option<Table> {
        let c = self.study.controls.as_ref()?;
        let mut t = Table::new(
            format!("{} tickets minus their controls (points, seed-paired mean [95% interval])", c.family.name()),
            &["pre-training", "downstream", "data %", "round", "sparsity %", "control", "std-FT SA", "adv-FT SA", "adv-FT RA"],
        );
        for &pre in &self.study.pretrainings {
            for &d in &self.study.downstream {
                for &f in &c.fractions {
                    for &r in &c.rounds {
                        let ticket = TransferGroup::ticket(pre, c.family, r, d, f);
                        for &k in &c.kinds {
                            let runs = (self.runs(ticket), self.runs(ticket.kind(k)));
                            let cell = |m: Metric| paired(m, &runs.0, &runs.1).map(|g| g.points()).unwrap_or_else(|| "-".into());
                            t.push(vec![
                                pre.short().into(),
                                d.name().into(),
                                format!("{}", 100.0 * f),
                                r.to_string(),
                                self.sparsity(ticket).map(|s| format!("{:.2}", 100.0 * s)).unwrap_or_default(),
                                k.name().into(),
                                cell(Metric::StdSa),
                                cell(Metric::AdvSa),
                                cell(Metric::AdvRa),
                            ]);
                        }
                    }
                }
            }
        }
        Some(t)
    }

    /// The seed-paired difference of `metric` between two subnetworks (`a - b`).
    pub fn difference(&self, metric: Metric, a: TransferGroup, b: TransferGroup) -> Option<PairedDifference> {
        paired(metric, &self.runs(a), &self.runs(b))
    }

    /// How much the test attack overstates RA, from the attack checks ("" without them).
    pub fn attack_gap_line(&self) -> Option<String> {
        let c = &self.attack_checks;
        if c.is_empty() {
            return None;
        }
        let gaps: Vec<f64> = c.iter().map(|a| 100.0 * a.gap()).collect();
        let (lo, hi) = gaps.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), g| (a.min(*g), b.max(*g)));
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        Some(format!(
            "AutoAttack-fast (APGD-CE, APGD-T) run after them on {} of this study's networks ({} test images each) lowers RA by \
             {lo:.1} to {hi:.1} points (mean {mean:.1}): the RA reported here is too kind by about that much.",
            c.len(),
            c[0].examples
        ))
    }

    /// The attack checks, one row per network.
    pub fn attack_check_table(&self) -> Option<Table> {
        if self.attack_checks.is_empty() {
            return None;
        }
        let mut t = Table::new(
            "Attack checks: RA under the study's test attacks, then AutoAttack-fast on the points still robust",
            &["network", "test images", "SA %", "RA % (study's attacks)", "RA % (+ AutoAttack-fast)", "gap (points)"],
        );
        for a in &self.attack_checks {
            t.push(vec![
                a.title.clone(),
                a.examples.to_string(),
                format!("{:.1}", 100.0 * a.sa),
                format!("{:.1}", 100.0 * a.ra_test),
                format!("{:.1}", 100.0 * a.ra_strong),
                format!("{:.1}", 100.0 * a.gap()),
            ]);
        }
        Some(t)
    }

    /// Every transfer's test SA / RA.
    pub fn transfer_table(&self) -> Table {
        let mut t = Table::new(
            "Transfers (test split)",
            &[
                "pre-training",
                "subnetwork",
                "sparsity %",
                "downstream",
                "fine-tuning",
                "data %",
                "seed",
                "SA % (best val SA)",
                "RA % (best val RA)",
            ],
        );
        for r in &self.transfers {
            t.push(vec![
                r.pretraining.map_or("none", |p| p.short()).into(),
                subnetwork_name(r.kind, r.family, r.round),
                format!("{:.2}", 100.0 * r.report.sparsity),
                r.dataset.name().into(),
                r.report.fine_tuning.name().into(),
                format!("{}", 100.0 * r.report.fraction),
                r.report.seed.to_string(),
                format!("{:.2}", 100.0 * r.report.best_sa.test_sa),
                format!("{:.2}", 100.0 * r.report.best_ra.test_ra),
            ]);
        }
        t
    }

    /// The paper's three claims, each tested on these results.
    pub fn claims(&self) -> Vec<Claim> {
        super::claims::claims(self)
    }

    /// One of the paper's claims, tested on these results, by name:
    ///
    /// ```no_run
    /// use doublewin::prelude::*;
    /// # fn main() -> Result<()> {
    /// let results = Session::from_env()?.results()?;
    /// println!("{}", results.claim(ClaimId::Families).text());
    /// # Ok(())
    /// # }
    /// ```
    pub fn claim(&self, id: super::claims::ClaimId) -> Claim {
        id.test(self)
    }

    /// The claims as plain-language lines: claim, verdict, evidence.
    pub fn findings(&self) -> Vec<String> {
        self.claims().iter().map(|c| format!("{}: {}. {}", c.title, c.verdict.name(), c.evidence.join(" "))).collect()
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.verdict_table().to_html());
    }
}

impl std::fmt::Display for StudyResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.verdict_table())?;
        writeln!(f, "{:.0}s, {} steps computed, the rest from the store", self.seconds, self.computed_steps)
    }
}

/// What IMP produced: per pre-training, family and round, the ticket's sparsity, its overlap
/// with one-shot magnitude pruning at the same count (does re-training move the mask?) and with
/// the other family's ticket of the same round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpRow {
    pub pretraining: Pretraining,
    pub family: ImpFamily,
    pub round: usize,
    pub sparsity: f64,
    /// |ticket and one-shot| / |ticket or one-shot| over kept weights.
    pub overlap_one_shot: f64,
    /// The same with the ticket of the other family (m^ST vs m^AT), when the study has both.
    pub overlap_other_family: Option<f64>,
    /// The re-training this round's mask was cut from: source validation SA (RA for m^AT) of the
    /// re-trained network and of the dense one (`None` for round 1).
    #[serde(default)]
    pub retrained: Option<crate::prune::Recovery>,
}

/// A study's report: its results, IMP diagnostics, per-layer densities and the figures built
/// from them. Renders in a notebook and saves as one self-contained HTML file (figures inline),
/// a Markdown summary and the figures.
#[derive(Debug, Clone)]
pub struct StudyReport {
    pub results: StudyResults,
    pub imp: Vec<ImpRow>,
    /// (file stem, figure), in report order.
    pub figures: Vec<(String, Figure)>,
    /// The same conclusions on a second seed set (when the study has `stability_seeds`).
    pub stability: Option<super::Stability>,
    /// The ladder toward the paper run from this study, when the store has one
    /// (`doublewin study ladder`).
    pub ladder: Option<super::LadderReport>,
}

impl StudyReport {
    /// Builds every figure of `results`; `masks` (label, mask) get per-layer density bars.
    pub fn new(results: StudyResults, imp: Vec<ImpRow>, masks: &[(String, Mask)]) -> Result<StudyReport> {
        let s = &results.study;
        let mut figures = Vec::new();
        for &d in &s.downstream {
            for &family in &s.families {
                let stem = family.name().replace('^', "");
                if let Some(&f) = s.fractions.first() {
                    figures.push((format!("sparsity-{}-{stem}", d.name()), results.sparsity_figure(d, f, family)?));
                }
                if s.fractions.len() > 1 {
                    figures.push((format!("fractions-{}-{stem}", d.name()), results.data_efficiency_figure(d, family)?));
                }
            }
            if s.families.len() > 1 {
                if let Some(&f) = s.fractions.first() {
                    figures.push((format!("families-{}", d.name()), results.family_figure(d, f)?));
                }
            }
        }
        if !results.landscapes.is_empty() {
            figures.push(("landscapes".into(), results.landscape_figure()?));
        }
        if !masks.is_empty() {
            let panels = masks.iter().map(|(label, m)| m.density_panel(format!("{label} ({:.2}% sparse)", 100.0 * m.sparsity()))).collect();
            figures.push(("density".into(), Figure::grid("Per-layer density of the tickets", panels, masks.len().min(3))?));
        }
        Ok(StudyReport { results, imp, figures, stability: None, ladder: None })
    }

    /// IMP diagnostics as a table.
    pub fn imp_table(&self) -> Table {
        let mut t = Table::new(
            "IMP masks: how far the re-training each mask was cut from came back on the source validation split (re-trained minus \
             the dense network re-trained alike, points; RA for m^AT), and the overlap of kept weights (intersection over union) \
             with one-shot magnitude pruning at the same count and with the other family's ticket",
            &[
                "pre-training",
                "family",
                "round",
                "sparsity %",
                "re-trained val SA vs dense alike",
                "re-trained val RA vs dense alike",
                "overlap with one-shot %",
                "overlap m^ST vs m^AT %",
            ],
        );
        for r in &self.imp {
            let (sa, ra) = r.retrained.map(|x| x.gap_points()).map_or((None, None), |(sa, ra)| (Some(sa), ra));
            let points = |g: Option<f64>| g.map(|g| format!("{g:+.1}")).unwrap_or_else(|| "-".into());
            t.push(vec![
                r.pretraining.short().into(),
                r.family.name().into(),
                r.round.to_string(),
                format!("{:.2}", 100.0 * r.sparsity),
                points(sa),
                points(ra),
                format!("{:.1}", 100.0 * r.overlap_one_shot),
                r.overlap_other_family.map(|o| format!("{:.1}", 100.0 * o)).unwrap_or_else(|| "-".into()),
            ]);
        }
        t
    }

    /// How far IMP's re-trainings came back, in one sentence ([`crate::prune::recovery_sentence`]
    /// within [`crate::prune::RECOVERED_POINTS`]).
    pub fn recovery_sentence(&self) -> Option<String> {
        let rec: Vec<crate::prune::Recovery> = self.imp.iter().filter_map(|r| r.retrained).collect();
        crate::prune::recovery_sentence(&rec, crate::prune::RECOVERED_POINTS)
    }

    /// One line on what was run and how long it took, with the threat model and how much its
    /// test attack overstates RA (the attack checks).
    fn summary_line(&self) -> String {
        let r = &self.results;
        format!(
            "{} transfers and {} landscapes; {:.0} s ({} steps computed, the rest from the store). Threat model: {}, test attacks: \
             {}.{}",
            r.transfers.len(),
            r.landscapes.len(),
            r.seconds,
            r.computed_steps,
            r.study.threat.describe(),
            r.study.threat.test.name(),
            r.attack_gap_line().map(|l| format!(" {l}")).unwrap_or_default()
        )
    }

    /// The tables of the report, in order.
    fn tables(&self) -> Vec<Table> {
        let r = &self.results;
        let mut v = vec![r.verdict_table(), r.gap_table()];
        v.extend(r.control_table());
        v.extend(r.attack_check_table());
        if !self.imp.is_empty() {
            v.push(self.imp_table());
        }
        if !r.landscapes.is_empty() {
            v.push(r.landscape_table());
        }
        v.push(r.transfer_table());
        v
    }

    fn stability_markdown(&self, headline: &Table) -> String {
        match &self.stability {
            Some(st) => st.markdown(headline),
            None => format!("## Stability\n\n{NO_STABILITY}\n\n"),
        }
    }

    /// The Markdown summary; figures are referenced as `figures/<stem>.svg`.
    pub fn markdown(&self) -> String {
        let r = &self.results;
        let mut s = format!(
            "# Double-win study\n\n{}\n\n## First: does pre-training help?\n\n{}\n## The paper's claims, tested\n\n",
            self.summary_line(),
            r.gate_table().to_markdown()
        );
        for c in r.claims() {
            s += &c.markdown();
        }
        let headline = r.headline_table();
        s += &headline.to_markdown();
        s += &self.stability_markdown(&headline);
        if let Some(line) = self.recovery_sentence() {
            s += &format!("## Is IMP iterative here?\n\n{line}\n\n");
        }
        if let Some(l) = &self.ladder {
            s += &l.markdown();
        }
        for (stem, fig) in &self.figures {
            s += &format!("![{}](figures/{stem}.svg)\n\n", fig.title);
        }
        for t in self.tables() {
            s += &t.to_markdown();
        }
        s + &format!("### Settings\n\n```json\n{}\n```\n", serde_json::to_string_pretty(&r.study).unwrap_or_default())
    }

    /// One self-contained HTML page: claims, tables and every figure inline (SVG).
    pub fn html(&self) -> String {
        let r = &self.results;
        let mut body = format!(
            "<h1>Double-win study</h1><p>{}</p><h2>First: does pre-training help?</h2>{}<h2>The paper's claims, tested</h2>",
            escape_html(&self.summary_line()),
            r.gate_table().to_html()
        );
        for c in r.claims() {
            body += &c.html();
        }
        let headline = r.headline_table();
        body += &headline.to_html();
        body += &match &self.stability {
            Some(st) => st.html(&headline),
            None => format!("<h2>Stability</h2><p>{}</p>", escape_html(NO_STABILITY)),
        };
        if let Some(line) = self.recovery_sentence() {
            body += &format!("<h2>Is IMP iterative here?</h2><p>{}</p>", escape_html(&line));
        }
        if let Some(l) = &self.ladder {
            body += &l.html();
        }
        body += "<h2>Figures</h2>";
        for (_, fig) in &self.figures {
            body += &format!("<figure>{}</figure>", fig.svg());
        }
        body += "<h2>Tables</h2>";
        for t in self.tables() {
            body += &t.to_html();
        }
        body += &format!("<h2>Settings</h2><pre>{}</pre>", escape_html(&serde_json::to_string_pretty(&r.study).unwrap_or_default()));
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>doublewin study report</title><style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}figure{{margin:1em 0;overflow-x:auto}}table{{margin:1em 0}}.claim{{border-left:4px solid #888;padding:0 1em;margin:1em 0}}</style></head><body>{body}</body></html>"
        )
    }

    /// Writes `report.html`, `report.md`, `results.json` (every transfer and landscape),
    /// `report.json` (verdicts with their intervals, the claims, IMP diagnostics) and
    /// `figures/*.svg` (and `.png` with the `png` feature) into `dir` (each file atomically);
    /// returns the HTML file's path.
    pub fn save(&self, dir: impl AsRef<std::path::Path>) -> Result<std::path::PathBuf> {
        let dir = dir.as_ref();
        let summary = serde_json::json!({
            "gates": self.results.pretraining_gates(),
            "stability": self.stability,
            "verdicts": self.results.verdicts(),
            "claims": self.results.claims(),
            "imp": self.imp,
            "ladder": self.ladder,
        });
        crate::fsio::write_json(&dir.join("report.json"), &summary)?;
        for (stem, fig) in &self.figures {
            fig.save_svg(dir.join("figures").join(format!("{stem}.svg")))?;
            #[cfg(feature = "png")]
            fig.save_png(dir.join("figures").join(format!("{stem}.png")))?;
        }
        crate::fsio::write_json(&dir.join("results.json"), &self.results)?;
        crate::fsio::write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        let html = dir.join("report.html");
        crate::fsio::write_atomic(&html, self.html().as_bytes())?;
        Ok(html)
    }

    pub fn evcxr_display(&self) {
        let claims: String = self.results.claims().iter().map(|c| c.html()).collect();
        let r = &self.results;
        evcxr_emit("text/html", &format!("{}{claims}{}", r.gate_table().to_html(), r.headline_table().to_html()));
    }
}

impl std::fmt::Display for StudyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.results.gate_table())?;
        for c in self.results.claims() {
            write!(f, "{}", c.text())?;
        }
        write!(f, "{}", self.results.headline_table())?;
        writeln!(f, "{}", self.stability.as_ref().map_or(NO_STABILITY.to_string(), |s| s.summary()))
    }
}

/// What the report says without a second seed set.
const NO_STABILITY: &str = "Not checked on a second seed set (the study has no stability_seeds): the verdicts above may hinge on \
                            the seeds.";
