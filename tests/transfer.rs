//! Transfer and the double-win verdict.

mod common;

use doublewin::prelude::*;
use doublewin::prune::{global_magnitude, Mask};
use doublewin::stats::Hits;
use doublewin::transfer::{transfer, Checkpoint, SaCheckpoint, TransferConfig, TransferReport};
use doublewin::verdict::{Outcome, Verdict};

fn source_net() -> Network {
    let fm = Embedded::FashionMnist.splits(0.1, 0).unwrap().with_train_fraction(0.02, 0).unwrap();
    let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &fm.train).unwrap(), Device::Cpu, 0).unwrap();
    train_with(&mut net, &fm, &TrainConfig::default().epochs(1), &mut Callbacks::none(), None).unwrap();
    net
}

fn quick(ft: RegimeKind) -> TransferConfig {
    let threat = ThreatModel::linf(0.1).train_steps(3).val_steps(3);
    TransferConfig::new(ft, &threat).unwrap().recipe(Recipe::default().epochs(3).lr(0.02).batch_size(64))
}

#[test]
fn a_ticket_transfers_with_its_zeros_kept_and_reports_both_checkpoints() {
    let pretrained = source_net();
    let digits = Embedded::Digits.splits(0.1, 0).unwrap();
    let mask = global_magnitude(&pretrained, &Mask::dense_for(&pretrained).unwrap(), 0.5).unwrap();
    let dense = transfer(&pretrained, None, &digits, &quick(RegimeKind::Standard)).unwrap();
    let ticket = transfer(&pretrained, Some(&mask), &digits, &quick(RegimeKind::Standard)).unwrap();
    assert!(dense.best_sa.test_sa > 0.7, "{dense}");
    assert!(ticket.best_sa.test_sa > 0.5, "{ticket}");
    assert!((ticket.sparsity - 0.5).abs() < 1e-3 && dense.sparsity == 0.0);
    assert!(ticket.best_ra.val_ra >= ticket.best_sa.val_ra && ticket.best_sa.val_sa >= ticket.best_ra.val_sa);
    let adv = transfer(&pretrained, Some(&mask), &digits, &quick(RegimeKind::Adversarial)).unwrap();
    assert!(adv.best_ra.test_ra > ticket.best_ra.test_ra, "adversarial fine-tuning buys RA: {adv} vs {ticket}");
    let few = transfer(&pretrained, Some(&mask), &digits, &quick(RegimeKind::Standard).fraction(0.1)).unwrap();
    assert_eq!(few.train_examples, digits.train.fraction(0.1, 0).unwrap().len());
    // The source network was built for 28x28 images, digits are 8x8: the report says so.
    assert!(dense.notes.iter().any(|n| n.contains("28x28") && n.contains("8x8")), "{:?}", dense.notes);
}

#[test]
fn a_checkpoint_gets_one_test_ra_and_a_rerun_gets_the_same_numbers() {
    let pretrained = source_net();
    let digits = Embedded::Digits.splits(0.1, 0).unwrap();
    // One epoch: the best-SA and best-RA checkpoints are the same epoch, so they must report the
    // same test numbers (each checkpoint is evaluated once, its attack starts seeded by the run).
    let cfg = quick(RegimeKind::Adversarial).recipe(Recipe::default().epochs(1).lr(0.02).batch_size(64));
    let a = transfer(&pretrained, None, &digits, &cfg).unwrap();
    assert_eq!(a.best_sa.epoch, a.best_ra.epoch);
    assert_eq!(a.best_sa, SaCheckpoint::from(&a.best_ra));
    assert!(a.best_ra.test_ra < a.best_ra.test_sa);
    assert_eq!(a.best_ra.test_per_attack.len(), cfg.test_attacks.len());
    let b = transfer(&pretrained, None, &digits, &cfg).unwrap();
    assert_eq!((a.best_sa.clone(), a.best_ra.clone()), (b.best_sa, b.best_ra));
}

/// SA is measured at the best-validation-SA checkpoint and RA at the best-validation-RA one (the
/// paper's protocol); the best-SA checkpoint is not attacked when it is another epoch, and the
/// best-RA checkpoint's numbers are those of its own weights and the run's seed alone.
#[test]
fn sa_comes_from_the_best_sa_checkpoint_and_ra_from_the_best_ra_one_alone() {
    use doublewin::train::EVAL_BATCH_SIZE;
    use doublewin::transfer::{transfer_recorded, CheckpointPlan};
    let pretrained = source_net();
    let digits = Embedded::Digits.splits(0.1, 0).unwrap();
    let dir = common::temp_dir("two-checkpoints");
    let recipe = Recipe::default().epochs(6).lr(0.05).batch_size(64);
    // The first seed whose two checkpoints are different epochs (seeds fix everything).
    let (cfg, report) = (0..6u64)
        .map(|seed| {
            let cfg = quick(RegimeKind::Adversarial).seed(seed).recipe(recipe.clone());
            let plan = CheckpointPlan { dir: dir.join(seed.to_string()), max: 7 };
            (cfg.clone(), transfer_recorded(&pretrained, None, &digits, &cfg, Some(&plan)).unwrap())
        })
        .find(|(_, r)| r.best_sa.epoch != r.best_ra.epoch)
        .expect("one of six seeds picks two different epochs");
    let saved = |epoch: usize| {
        let dir = dir.join(cfg.seed.to_string());
        Network::load(EpochCheckpoints::new(dir).path(epoch), Device::Cpu).unwrap()
    };
    let attacks: Vec<AttackSpec> = cfg.test_attacks.iter().map(|a| a.seeded(cfg.seed)).collect();
    let ra = robust_evaluate(&saved(report.best_ra.epoch), &digits.test, &attacks, EVAL_BATCH_SIZE).unwrap();
    assert_eq!((ra.sa, ra.ra, &ra.robust_hits), (report.best_ra.test_sa, report.best_ra.test_ra, &report.best_ra.test_robust_hits));
    let sa = robust_evaluate(&saved(report.best_sa.epoch), &digits.test, &[], EVAL_BATCH_SIZE).unwrap();
    assert_eq!((sa.sa, &sa.clean_hits), (report.best_sa.test_sa, &report.best_sa.test_clean_hits));
    // The table shows no RA for the best-SA checkpoint: it was not measured.
    let best_sa_row = report.to_string().lines().find(|l| l.contains("best val SA")).unwrap().to_string();
    assert!(best_sa_row.trim_end().ends_with('-'), "{best_sa_row}");
}

/// A transfer report with given test hits: `right` of `n` examples right, the first ones.
fn run(ft: RegimeKind, seed: u64, n: usize, sa_right: usize, ra_right: usize) -> TransferReport {
    let hits = |k: usize| Hits((0..n).map(|i| i < k).collect());
    let checkpoint = Checkpoint {
        epoch: 1,
        val_sa: 0.0,
        val_ra: 0.0,
        test_sa: sa_right as f64 / n as f64,
        test_ra: ra_right as f64 / n as f64,
        test_per_attack: Vec::new(),
        warnings: Vec::new(),
        test_clean_hits: hits(sa_right),
        test_robust_hits: hits(ra_right),
    };
    TransferReport {
        dataset: "digits".into(),
        fine_tuning: ft,
        fraction: 1.0,
        train_examples: 0,
        sparsity: 0.0,
        seed,
        best_sa: SaCheckpoint::from(&checkpoint),
        best_ra: checkpoint,
        history: History::default(),
        notes: Vec::new(),
        seconds: 0.0,
    }
}

/// Standard and adversarial runs of three seeds: SA `sa` and RA `ra` right of 2,000 examples,
/// plus `jitter * seed` more right for each.
fn refs(v: &[TransferReport]) -> Vec<&TransferReport> {
    v.iter().collect()
}

fn runs(sa: usize, ra: usize, jitter: usize) -> Vec<TransferReport> {
    let mut v = Vec::new();
    for seed in 0..3u64 {
        let j = jitter * seed as usize;
        v.push(run(RegimeKind::Standard, seed, 2000, sa + j, 0));
        v.push(run(RegimeKind::Adversarial, seed, 2000, sa - 100 + j, ra + j));
    }
    v
}

#[test]
fn the_verdict_is_yes_no_or_unresolved_from_paired_intervals() {
    let dense = runs(1800, 1000, 0);
    let tickets = [("match", runs(1798, 996, 0)), ("loses RA", runs(1800, 900, 0)), ("noisy", runs(1790, 990, 10))];
    let cases: Vec<(String, f64, Vec<&TransferReport>)> = tickets.iter().map(|(l, r)| (l.to_string(), 0.5, refs(r))).collect();
    let v = Verdict::judge(&refs(&dense), &cases, 0.01);
    // A ticket 0.1 / 0.2 points below dense on identical examples: the hits differ on a handful of
    // examples only, the interval is narrow and within 1 point: double-win.
    assert_eq!(v.rows[0].outcome, Outcome::DoubleWin, "{v}");
    // 5 points of RA lost on every seed: the whole interval is below -1 point.
    assert_eq!(v.rows[1].outcome, Outcome::NotDoubleWin, "{v}");
    let g = v.rows[1].gaps[2].unwrap();
    assert!((g.mean + 0.05).abs() < 1e-12 && g.upper < -0.01);
    // Seeds that disagree by 1 point each widen the interval past the tolerance: unresolved.
    assert_eq!(v.rows[2].outcome, Outcome::Unresolved, "{v}");
    assert!(v.rows[2].gaps[0].unwrap().se_seed > 0.0);
    assert_eq!(v.bound().at_least, Some(0.5));
    // A ticket without adversarial runs cannot be judged.
    let std_only: Vec<TransferReport> = runs(1800, 1000, 0).into_iter().filter(|r| r.fine_tuning == RegimeKind::Standard).collect();
    let v = Verdict::judge(&refs(&dense), &[("partial".into(), 0.2, refs(&std_only))], 0.01);
    assert_eq!(v.rows[0].outcome, Outcome::Incomplete);
}
