//! What a study shows: verdict, headline and transfer tables, the sparsity / data-efficiency /
//! IMP-family / landscape figures, and the Markdown and self-contained HTML reports.

use super::{subnetwork_name, StudyResults};
use crate::data::DataSource;
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::landscape::{landscape_figure, landscape_table, Landscape};
use crate::plot::{palette, Color, Figure, Layer, Panel, Series};
use crate::train::RegimeKind;
use crate::transfer::{Scores, TransferReport, Verdict};
use serde::{Deserialize, Serialize};

/// A verdict with what it is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerdictCell {
    pub pretraining: RegimeKind,
    pub family: RegimeKind,
    pub dataset: DataSource,
    pub fraction: f64,
    pub verdict: Verdict,
}

/// Picks one metric's values (over seeds) out of [`Scores`].
type Metric = fn(&Scores) -> &Vec<f64>;

const METRICS: [(&str, Metric); 3] =
    [("SA after standard FT", |s| &s.std_sa), ("SA after adversarial FT", |s| &s.adv_sa), ("RA after adversarial FT", |s| &s.adv_ra)];

/// Mean, min and max of a metric in %, or `None` without values.
fn summary(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mean = 100.0 * v.iter().sum::<f64>() / v.len() as f64;
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    Some((mean, 100.0 * lo, 100.0 * hi))
}

impl StudyResults {
    /// The transfer reports of one subnetwork (all fine-tunings and seeds).
    pub fn reports(
        &self,
        pre: RegimeKind,
        family: Option<RegimeKind>,
        round: usize,
        dataset: impl Into<DataSource>,
        fraction: f64,
    ) -> Vec<&TransferReport> {
        let dataset = dataset.into();
        self.transfers
            .iter()
            .filter(|t| {
                t.pretraining == pre && t.family == family && t.round == round && t.dataset == dataset && t.report.fraction == fraction
            })
            .map(|t| &t.report)
            .collect()
    }

    /// One panel per verdict metric: SA / RA against sparsity for each (label, colour, family,
    /// pre-training) curve, with the dense baselines dashed and min-max bands over seeds.
    fn metric_panels(
        &self,
        title: &str,
        dataset: DataSource,
        fraction: f64,
        curves: &[(String, Color, RegimeKind, RegimeKind)],
    ) -> Vec<Panel> {
        METRICS
            .iter()
            .map(|(metric, get)| {
                let mut panel = Panel::new(format!("{title}{metric}"), "sparsity (%)", "test accuracy (%)");
                let mut baselines: Vec<RegimeKind> = Vec::new();
                for (label, color, family, pre) in curves {
                    let mut points = Vec::new();
                    for &r in &self.study.rounds {
                        let reports = self.reports(*pre, Some(*family), r, dataset, fraction);
                        if let (Some(first), Some(m)) = (reports.first(), summary(get(&Scores::from_reports(&reports)))) {
                            points.push((100.0 * first.sparsity, m));
                        }
                    }
                    if self.study.seeds.len() > 1 {
                        panel.push(Layer::Band {
                            name: String::new(),
                            color: *color,
                            points: points.iter().map(|(x, m)| (*x, m.1, m.2)).collect(),
                        });
                    }
                    panel.push(Layer::line(Series::new(label.clone(), points.iter().map(|(x, m)| (*x, m.0)).collect()), *color));
                    if !baselines.contains(pre) {
                        baselines.push(*pre);
                        if let Some(d) = summary(get(&Scores::from_reports(&self.reports(*pre, None, 0, dataset, fraction)))) {
                            let name =
                                if curves.iter().all(|c| c.3 == *pre) { "dense".to_string() } else { format!("{} dense", pre.short()) };
                            let color = if curves.iter().all(|c| c.3 == *pre) { Color::GREY } else { *color };
                            panel.push(Layer::HLine { name, y: d.0, color });
                        }
                    }
                }
                panel
            })
            // A metric the grid does not measure (e.g. no standard fine-tuning) is left out.
            .filter(Panel::has_data)
            .collect()
    }

    fn pretraining_curves(&self, family: RegimeKind) -> Vec<(String, Color, RegimeKind, RegimeKind)> {
        self.study.pretrainings.iter().enumerate().map(|(i, &p)| (format!("{} ticket", p.short()), palette(i), family, p)).collect()
    }

    /// The paper's main figure: SA and RA of the tickets against sparsity, one curve per
    /// pre-training, with each pre-training's dense baseline dashed.
    pub fn sparsity_figure(&self, dataset: impl Into<DataSource>, fraction: f64, family: RegimeKind) -> Result<Figure> {
        let dataset = dataset.into();
        let panels = self.metric_panels("", dataset, fraction, &self.pretraining_curves(family));
        Ok(Figure::grid(
            format!("{} tickets transferred to {} with {}% of its data", family.family(), dataset.name(), 100.0 * fraction),
            panels,
            3,
        )?
        .note(self.seed_note()))
    }

    /// One row of panels per data fraction (100 / 10 / 1%): data-efficient transfer.
    pub fn data_efficiency_figure(&self, dataset: impl Into<DataSource>, family: RegimeKind) -> Result<Figure> {
        let dataset = dataset.into();
        let curves = self.pretraining_curves(family);
        let panels =
            self.study.fractions.iter().flat_map(|&f| self.metric_panels(&format!("{}% data: ", 100.0 * f), dataset, f, &curves)).collect();
        let mut fig = Figure::grid(format!("{} tickets on {}: 100% vs less data", family.family(), dataset.name()), panels, 3)?
            .note(self.seed_note());
        fig.panel_size = (360.0, 260.0);
        Ok(fig)
    }

    /// m^ST against m^AT tickets, one row of panels per pre-training.
    pub fn family_figure(&self, dataset: impl Into<DataSource>, fraction: f64) -> Result<Figure> {
        let dataset = dataset.into();
        let mut panels = Vec::new();
        for &pre in &self.study.pretrainings {
            let curves: Vec<_> =
                self.study.families.iter().enumerate().map(|(i, &f)| (f.family().to_string(), palette(i), f, pre)).collect();
            panels.extend(self.metric_panels(&format!("{}: ", pre.short()), dataset, fraction, &curves));
        }
        let mut fig = Figure::grid(format!("IMP re-training: m^ST vs m^AT ({}, {}% data)", dataset.name(), 100.0 * fraction), panels, 3)?
            .note(self.seed_note());
        fig.panel_size = (360.0, 260.0);
        Ok(fig)
    }

    /// The landscapes of the study: one row per pre-training, one column per data fraction.
    pub fn landscape_figure(&self) -> Result<Figure> {
        let plan =
            self.study.landscapes.as_ref().ok_or_else(|| Error::invalid("this study draws no landscapes", "set study.landscapes"))?;
        let cols = plan.fractions.len().max(1);
        let landscapes: Vec<Landscape> = self.landscapes.iter().map(|l| l.landscape.clone()).collect();
        if landscapes.is_empty() {
            return Err(Error::invalid("no landscapes in these results", "run the study first"));
        }
        let mut fig = landscape_figure(
            &format!(
                "Loss landscapes of the {} ticket ({:.2}% sparse), {} fine-tuning on {}",
                subnetwork_name(Some(plan.family), plan.round),
                100.0 * landscapes[0].sparsity,
                plan.fine_tuning.name(),
                plan.dataset.name()
            ),
            &landscapes,
            cols,
        )?;
        fig.panel_size = (360.0, 300.0);
        Ok(fig)
    }

    /// The study's landscapes as a table.
    pub fn landscape_table(&self) -> Table {
        let mut t = landscape_table(&self.landscapes.iter().map(|l| l.landscape.clone()).collect::<Vec<_>>());
        t.headers.extend(["test SA %".to_string(), "test RA %".to_string()]);
        for (row, l) in t.rows.iter_mut().zip(&self.landscapes) {
            row.push(format!("{:.2}", 100.0 * l.report.best_sa.test_sa));
            row.push(format!("{:.2}", 100.0 * l.report.best_ra.test_ra));
        }
        t
    }

    fn seed_note(&self) -> String {
        match self.study.seeds.len() {
            1 => "one seed (no bands); dashed: dense baselines".into(),
            n => format!("mean over {n} seeds, bands: min-max; dashed: dense baselines"),
        }
    }

    /// Plain-language findings computed from the results: the highest double-win sparsity per
    /// pre-training and data fraction, the cost of sparsity in RA, and the landscapes' shapes.
    pub fn findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let verdicts = self.verdicts();
        for &pre in &self.study.pretrainings {
            let per_fraction: Vec<String> = self
                .study
                .fractions
                .iter()
                .map(|&f| {
                    let best = verdicts
                        .iter()
                        .filter(|c| c.pretraining == pre && c.fraction == f)
                        .filter_map(|c| c.verdict.highest_double_win().map(|s| (s, c.family, c.dataset)))
                        .max_by(|a, b| a.0.total_cmp(&b.0));
                    match best {
                        Some((s, fam, d)) => {
                            format!("{}% data: up to {:.1}% sparse ({}, {})", 100.0 * f, 100.0 * s, fam.family(), d.name())
                        }
                        None => format!("{}% data: none", 100.0 * f),
                    }
                })
                .collect();
            out.push(format!("{} pre-training, double-win tickets: {}.", pre.short(), per_fraction.join("; ")));
        }
        if let (Some(&top), Some(&d), Some(&f)) =
            (self.study.rounds.iter().max(), self.study.downstream.first(), self.study.fractions.first())
        {
            let gaps: Vec<String> = self
                .study
                .pretrainings
                .iter()
                .filter_map(|&pre| {
                    let ticket = summary(&Scores::from_reports(&self.reports(pre, Some(RegimeKind::Standard), top, d, f)).adv_ra)?;
                    let dense = summary(&Scores::from_reports(&self.reports(pre, None, 0, d, f)).adv_ra)?;
                    Some(format!("{} {:.1} vs dense {:.1}", pre.short(), ticket.0, dense.0))
                })
                .collect();
            if !gaps.is_empty() {
                out.push(format!(
                    "RA after adversarial fine-tuning on {} ({}% data) at the sparsest m^ST ticket (round {top}): {}.",
                    d.name(),
                    100.0 * f,
                    gaps.join(", ")
                ));
            }
        }
        for &f in self.study.landscapes.iter().flat_map(|p| p.fractions.iter()) {
            let row: Vec<String> = self
                .landscapes
                .iter()
                .filter(|l| l.fraction == f)
                .map(|l| {
                    format!("{} final loss {:.3}, mean rise {:.3}", l.pretraining.short(), l.landscape.final_loss, l.landscape.mean_rise())
                })
                .collect();
            if !row.is_empty() {
                out.push(format!("Landscapes at {}% data: {}.", 100.0 * f, row.join("; ")));
            }
        }
        out
    }

    /// Verdicts per (pre-training, IMP family, downstream dataset, data fraction).
    pub fn verdicts(&self) -> Vec<VerdictCell> {
        let s = &self.study;
        let mut out = Vec::new();
        for &pre in &s.pretrainings {
            for &family in &s.families {
                for &d in &s.downstream {
                    for &fraction in &s.fractions {
                        let pick = |fam: Option<RegimeKind>, round: usize| self.reports(pre, fam, round, d, fraction);
                        let dense = Scores::from_reports(&pick(None, 0));
                        let tickets: Vec<(String, f64, Scores)> = s
                            .rounds
                            .iter()
                            .filter_map(|&r| {
                                let reports = pick(Some(family), r);
                                let sparsity = reports.first()?.sparsity;
                                Some((format!("{} r{r}", family.family()), sparsity, Scores::from_reports(&reports)))
                            })
                            .collect();
                        out.push(VerdictCell {
                            pretraining: pre,
                            family,
                            dataset: d,
                            fraction,
                            verdict: Verdict::judge(&dense, &tickets, s.tolerance),
                        });
                    }
                }
            }
        }
        out
    }

    /// One row per verdict cell: the highest double-win sparsity and each ticket's outcome.
    pub fn verdict_table(&self) -> Table {
        let mut t = Table::new(
            format!("Double-win tickets ({} transfers, tolerance {:.1} points)", self.transfers.len(), 100.0 * self.study.tolerance),
            &["pre-training", "mask", "downstream", "data %", "tickets (sparsity: double-win?)", "highest double-win sparsity %"],
        );
        for c in self.verdicts() {
            let tickets = c
                .verdict
                .rows
                .iter()
                .map(|r| format!("{:.1}%: {}", 100.0 * r.sparsity, if r.double_win { "yes" } else { "no" }))
                .collect::<Vec<_>>()
                .join(", ");
            t.push(vec![
                c.pretraining.short().into(),
                c.family.family().into(),
                c.dataset.name().into(),
                format!("{}", 100.0 * c.fraction),
                tickets,
                c.verdict.highest_double_win().map(|s| format!("{:.2}", 100.0 * s)).unwrap_or_else(|| "-".into()),
            ]);
        }
        t
    }

    /// Per pre-training and data fraction: the highest double-win sparsity found on each
    /// downstream dataset (over both IMP families), the paper's headline comparison.
    pub fn headline_table(&self) -> Table {
        let s = &self.study;
        let mut headers = vec!["pre-training".to_string(), "data %".to_string()];
        headers.extend(s.downstream.iter().map(|d| d.name().to_string()));
        let mut t = Table { title: "Highest sparsity with a double-win ticket (%)".into(), headers, rows: Vec::new() };
        let verdicts = self.verdicts();
        for &pre in &s.pretrainings {
            for &fraction in &s.fractions {
                let mut row = vec![pre.short().to_string(), format!("{}", 100.0 * fraction)];
                for &d in &s.downstream {
                    let best = verdicts
                        .iter()
                        .filter(|c| c.pretraining == pre && c.dataset == d && c.fraction == fraction)
                        .filter_map(|c| c.verdict.highest_double_win())
                        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
                    row.push(best.map(|b| format!("{:.2}", 100.0 * b)).unwrap_or_else(|| "none".into()));
                }
                t.rows.push(row);
            }
        }
        t
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
                r.pretraining.short().into(),
                subnetwork_name(r.family, r.round),
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

    /// A Markdown report: headline, verdicts, every transfer, and the study's settings.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Double-win study\n\n{} transfers; {:.0} s ({} steps computed, the rest from the store).\n\n",
            self.transfers.len(),
            self.seconds,
            self.computed_steps
        );
        s += &self.headline_table().to_markdown();
        s += &self.verdict_table().to_markdown();
        s += &self.transfer_table().to_markdown();
        s + &format!("### Settings\n\n```json\n{}\n```\n", serde_json::to_string_pretty(&self.study).unwrap_or_default())
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

/// A study's report: its results and the figures built from them. Renders in a notebook and
/// saves as one self-contained HTML file (figures inline), a Markdown summary and the figures
/// as SVG and PNG.
#[derive(Debug, Clone)]
pub struct StudyReport {
    pub results: StudyResults,
    /// (file stem, figure), in report order.
    pub figures: Vec<(String, Figure)>,
}

impl super::Study {
    /// Runs (or loads) the study and builds its report, including the per-layer density of the
    /// landscape tickets (read from the store).
    pub fn report(&self, rt: &crate::runtime::Runtime, store: &crate::store::Store) -> Result<StudyReport> {
        let results = self.run(rt, store)?;
        let mut masks = Vec::new();
        if let Some(plan) = &self.landscapes {
            for &pre in &self.pretrainings {
                masks.push((
                    format!("{} {}", pre.short(), subnetwork_name(Some(plan.family), plan.round)),
                    self.ticket(store, pre, plan.family, plan.round)?,
                ));
            }
        }
        StudyReport::new(results, &masks)
    }
}

impl StudyReport {
    /// Builds every figure of `results`; `masks` (label, mask) get per-layer density bars.
    pub fn new(results: StudyResults, masks: &[(String, crate::prune::Mask)]) -> Result<StudyReport> {
        let s = &results.study;
        let mut figures = Vec::new();
        for &d in &s.downstream {
            for &family in &s.families {
                figures.push((
                    format!("sparsity-{}-{}", d.name(), family.family().replace('^', "")),
                    results.data_efficiency_figure(d, family)?,
                ));
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
        Ok(StudyReport { results, figures })
    }

    /// One line on what was run and how long it took.
    fn summary_line(&self) -> String {
        let r = &self.results;
        format!(
            "{} transfers and {} landscapes; {:.0} s ({} steps computed, the rest from the store).",
            r.transfers.len(),
            r.landscapes.len(),
            r.seconds,
            r.computed_steps
        )
    }

    fn findings_html(&self) -> String {
        let items: String = self.results.findings().iter().map(|f| format!("<li>{}</li>", crate::display::escape_html(f))).collect();
        format!("<ul>{items}</ul>")
    }

    /// The Markdown summary; figures are referenced as `figures/<stem>.svg`.
    pub fn markdown(&self) -> String {
        let r = &self.results;
        let findings: String = r.findings().iter().map(|f| format!("- {f}\n")).collect();
        let mut s = format!("# Double-win study\n\n{}\n\n## Findings\n\n{findings}\n", self.summary_line());
        s += &r.headline_table().to_markdown();
        for (stem, fig) in &self.figures {
            s += &format!("![{}](figures/{stem}.svg)\n\n", fig.title);
        }
        s += &r.verdict_table().to_markdown();
        if !r.landscapes.is_empty() {
            s += &r.landscape_table().to_markdown();
        }
        s += &r.transfer_table().to_markdown();
        s + &format!("### Settings\n\n```json\n{}\n```\n", serde_json::to_string_pretty(&r.study).unwrap_or_default())
    }

    /// One self-contained HTML page: findings, tables and every figure inline (SVG).
    pub fn html(&self) -> String {
        let r = &self.results;
        let esc = crate::display::escape_html;
        let mut body = format!("<h1>Double-win study</h1><p>{}</p><h2>Findings</h2>{}", esc(&self.summary_line()), self.findings_html());
        body += &r.headline_table().to_html();
        body += "<h2>Figures</h2>";
        for (_, fig) in &self.figures {
            body += &format!("<figure>{}</figure>", fig.svg());
        }
        body += "<h2>Verdicts</h2>";
        body += &r.verdict_table().to_html();
        if !r.landscapes.is_empty() {
            body += &r.landscape_table().to_html();
        }
        body += "<h2>Every transfer</h2>";
        body += &r.transfer_table().to_html();
        body += &format!("<h2>Settings</h2><pre>{}</pre>", esc(&serde_json::to_string_pretty(&r.study).unwrap_or_default()));
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>doublewin study report</title><style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}figure{{margin:1em 0;overflow-x:auto}}table{{margin:1em 0}}</style></head><body>{body}</body></html>"
        )
    }

    /// Writes `report.html`, `report.md`, `results.json` and `figures/*.svg` (and `.png` with the
    /// `png` feature) into `dir`
    /// (each file atomically); returns the HTML file's path.
    pub fn save(&self, dir: impl AsRef<std::path::Path>) -> Result<std::path::PathBuf> {
        let dir = dir.as_ref();
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
        evcxr_emit("text/html", &format!("{}{}", self.findings_html(), self.results.headline_table().to_html()));
    }
}

impl std::fmt::Display for StudyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in self.results.findings() {
            writeln!(f, "- {line}")?;
        }
        write!(f, "{}", self.results.headline_table())
    }
}
