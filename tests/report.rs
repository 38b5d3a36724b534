//! A small study end to end: its figures carry exactly the numbers of its results (tickets,
//! controls, dense networks), the report states the paper's claims with their verdicts and is
//! written as self-contained HTML + Markdown (+ PNG with the `png` feature), a rerun comes from
//! the store, and a grid without some fine-tuning still reports what it has.

mod common;

use common::*;
use doublewin::prelude::*;
use doublewin::study::{ControlPlan, SubnetworkKind};

#[test]
fn figures_carry_the_results_and_the_report_is_self_contained() {
    let store_dir = temp_dir("report-store");
    let store = Store::open(&*store_dir).unwrap();
    let mut study = mini_study();
    study.controls =
        Some(ControlPlan { family: ImpFamily::Standard, kinds: SubnetworkKind::CONTROLS.to_vec(), rounds: vec![2], fractions: vec![1.0] });
    let report = session(&study, &store).report().unwrap();
    let results = &report.results;
    assert_eq!(results.transfers.len(), 4 + 4, "dense and ticket, and the two controls, each fine-tuned two ways");
    assert_eq!(results.landscapes.len(), 1);

    // The sparsity figure's SVG holds the ticket's test numbers and the dense baselines.
    let fig = results.sparsity_figure(Embedded::Digits, 1.0, ImpFamily::Standard).unwrap();
    let series = Figure::series_in_svg(&fig.svg()).unwrap();
    let pick = |kind: SubnetworkKind, ft: FineTuning| {
        results.transfers.iter().find(|t| t.kind == kind && t.report.fine_tuning == ft).map(|t| t.report.clone()).unwrap()
    };
    let ticket_std = pick(SubnetworkKind::Ticket, FineTuning::Standard);
    let ticket_adv = pick(SubnetworkKind::Ticket, FineTuning::Adversarial);
    let dense_adv = pick(SubnetworkKind::Dense, FineTuning::Adversarial);
    let x = 100.0 * ticket_std.sparsity;
    let expected = [100.0 * ticket_std.best_sa.test_sa, 100.0 * ticket_adv.best_sa.test_sa, 100.0 * ticket_adv.best_ra.test_ra];
    let lines: Vec<&Series> = series.iter().filter(|s| s.name == "STD ticket").collect();
    assert_eq!(lines.len(), 3, "one ticket curve per metric panel: {series:?}");
    for (line, want) in lines.iter().zip(expected) {
        assert_eq!(line.points, vec![(x, want)]);
    }
    // With one pre-training the baseline is just "dense".
    let dense: Vec<&Series> = series.iter().filter(|s| s.name == "dense").collect();
    assert_eq!(dense.len(), 3);
    assert_eq!(dense[2].points[0].1, 100.0 * dense_adv.best_ra.test_ra);
    // The controls are drawn beside the ticket, at the ticket's sparsity (same kept count).
    for (name, kind) in [("random ticket", SubnetworkKind::RandomTicket), ("one-shot", SubnetworkKind::OneShot)] {
        let line = series.iter().find(|s| s.name == name).unwrap();
        let control = pick(kind, FineTuning::Standard);
        assert!((control.sparsity - ticket_std.sparsity).abs() < 1e-12);
        assert_eq!(line.points, vec![(x, 100.0 * control.best_sa.test_sa)]);
    }
    // The three claims, each with a verdict and its evidence.
    let claims = results.claims();
    assert_eq!(claims.len(), 3);
    assert!(claims.iter().all(|c| !c.evidence.is_empty()), "{claims:?}");

    // Files: HTML with every figure inline and nothing fetched, Markdown, PNGs that decode.
    let out = temp_dir("report-out");
    let html_path = report.save(&out).unwrap();
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_eq!(html.matches("<svg").count(), report.figures.len());
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(html.contains("The paper's claims, tested") && html.contains("Highest sparsity with a double-win ticket"));
    assert!(html.contains("minus their controls") && html.contains("overlap with one-shot"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for (stem, _) in &report.figures {
        assert!(md.contains(&format!("figures/{stem}.svg")));
        assert!(out.join("figures").join(format!("{stem}.svg")).exists());
        #[cfg(feature = "png")]
        {
            let png = image::open(out.join("figures").join(format!("{stem}.png"))).unwrap();
            assert!(png.width() > 300 && png.height() > 150);
        }
    }
    assert!(report.figures.iter().any(|(stem, _)| stem == "landscapes"));
    assert!(report.figures.iter().any(|(stem, _)| stem == "density"));

    // A rerun computes nothing and gives the same numbers.
    let again = session(&study, &store).results().unwrap();
    assert_eq!(again.computed_steps, 0);
    assert_eq!(again.transfers.len(), results.transfers.len());
    assert_eq!(again.landscapes[0].landscape, results.landscapes[0].landscape);
}

#[test]
fn a_grid_without_standard_fine_tuning_reports_what_it_has() {
    let store_dir = temp_dir("report-adv-only");
    let store = Store::open(&*store_dir).unwrap();
    let mut study = mini_study();
    study.fine_tunings = vec![FineTuning::Adversarial];
    study.landscapes = None;
    let report = session(&study, &store).report().unwrap();
    let series: Vec<Series> = report.figures.iter().flat_map(|(_, f)| f.series().unwrap()).collect();
    assert!(!series.is_empty());
    let html = report.html();
    assert!(html.contains("RA after adversarial FT") && !html.contains("SA after standard FT"), "only measured metrics are drawn");
    report.save(temp_dir("report-adv-only-out")).unwrap();
}
