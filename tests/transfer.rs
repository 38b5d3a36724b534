//! Transfer and the double-win verdict.

use doublewin::prelude::*;
use doublewin::prune::{global_magnitude, Mask};
use doublewin::transfer::{transfer, Scores, TransferConfig, Verdict};

fn source_net() -> Network {
    let fm = Embedded::FashionMnist.splits(0.1, 0).unwrap().with_train_fraction(0.02, 0).unwrap();
    let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &fm.train).unwrap(), Device::Cpu, 0).unwrap();
    train_with(&mut net, &fm, &TrainConfig::default().epochs(1), &mut Callbacks::none(), None).unwrap();
    net
}

fn quick(ft: RegimeKind) -> TransferConfig {
    let threat = ThreatModel::linf(0.1).train_steps(3).val_steps(3);
    TransferConfig::new(ft, &threat).unwrap().recipe(TrainConfig::default().epochs(3).lr(0.02).batch_size(64))
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
    let cfg = quick(RegimeKind::Adversarial).recipe(TrainConfig::default().epochs(1).lr(0.02).batch_size(64));
    let a = transfer(&pretrained, None, &digits, &cfg).unwrap();
    assert_eq!(a.best_sa.epoch, a.best_ra.epoch);
    assert_eq!(a.best_sa, a.best_ra);
    assert!(a.best_ra.test_ra < a.best_ra.test_sa);
    assert_eq!(a.best_ra.test_per_attack.len(), cfg.test_attacks.len());
    let b = transfer(&pretrained, None, &digits, &cfg).unwrap();
    assert_eq!((a.best_sa.clone(), a.best_ra.clone()), (b.best_sa, b.best_ra));
}

fn scores(std_sa: &[f64], adv_sa: &[f64], adv_ra: &[f64]) -> Scores {
    Scores { std_sa: std_sa.to_vec(), adv_sa: adv_sa.to_vec(), adv_ra: adv_ra.to_vec() }
}

#[test]
fn the_verdict_needs_all_three_within_tolerance() {
    let dense = scores(&[0.90], &[0.80], &[0.50]);
    let tickets = vec![
        ("match".to_string(), 0.36, scores(&[0.899], &[0.798], &[0.497])),
        ("loses RA".to_string(), 0.59, scores(&[0.91], &[0.81], &[0.48])),
        ("better".to_string(), 0.74, scores(&[0.92], &[0.82], &[0.52])),
    ];
    let v = Verdict::judge(&dense, &tickets, 0.005);
    assert_eq!(v.rows.iter().map(|r| r.double_win).collect::<Vec<_>>(), vec![true, false, true]);
    assert_eq!(v.highest_double_win(), Some(0.74));
    // With seeds, the spread widens the tolerance: a 2-point gap inside a 3-point spread passes.
    let dense = scores(&[0.88, 0.92], &[0.80, 0.80], &[0.50, 0.50]);
    let noisy = scores(&[0.85, 0.91], &[0.80, 0.80], &[0.50, 0.50]);
    let v = Verdict::judge(&dense, &[("noisy".into(), 0.2, noisy)], 0.005);
    assert!(v.rows[0].double_win && v.rows[0].tolerance[0] > 0.03, "{v}");
    // Missing a regime is never a win.
    let v = Verdict::judge(&dense, &[("partial".into(), 0.2, scores(&[0.99], &[], &[]))], 0.005);
    assert!(!v.rows[0].double_win);
}
