//! Transfer, the double-win verdict, the experiment store and studies.

mod common;

use common::*;
use doublewin::prelude::*;
use doublewin::prune::{global_magnitude, Mask};
use doublewin::store::Store;
use doublewin::study::{Family, Study};
use doublewin::transfer::{transfer, FineTuning, Scores, TransferConfig, Verdict};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn source_net() -> Network {
    let fm = Embedded::FashionMnist.splits(0.1, 0).unwrap().with_train_fraction(0.02, 0).unwrap();
    let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &fm.train).unwrap(), Device::Cpu, 0).unwrap();
    train_with(&mut net, &fm, &TrainConfig::default().epochs(1), &mut Callbacks::none(), None).unwrap();
    net
}

fn quick(ft: FineTuning) -> TransferConfig {
    TransferConfig {
        fine_tuning: ft,
        eps: 0.1,
        train_steps: 3,
        val_steps: 3,
        test_steps: 10,
        recipe: TrainConfig::default().epochs(3).lr(0.02).batch_size(64),
        ..TransferConfig::default()
    }
}

#[test]
fn a_ticket_transfers_with_its_zeros_kept_and_reports_both_checkpoints() {
    let pretrained = source_net();
    let digits = Embedded::Digits.splits(0.1, 0).unwrap();
    let mask = global_magnitude(&pretrained, &Mask::dense_for(&pretrained).unwrap(), 0.5).unwrap();
    let dense = transfer(&pretrained, None, &digits, &quick(FineTuning::Standard)).unwrap();
    let ticket = transfer(&pretrained, Some(&mask), &digits, &quick(FineTuning::Standard)).unwrap();
    assert!(dense.best_sa.test_sa > 0.7, "{dense}");
    assert!(ticket.best_sa.test_sa > 0.5, "{ticket}");
    assert!((ticket.sparsity - 0.5).abs() < 1e-3 && dense.sparsity == 0.0);
    assert!(ticket.best_ra.val_ra >= ticket.best_sa.val_ra && ticket.best_sa.val_sa >= ticket.best_ra.val_sa);
    let adv = transfer(&pretrained, Some(&mask), &digits, &quick(FineTuning::Adversarial)).unwrap();
    assert!(adv.best_ra.test_ra > ticket.best_ra.test_ra, "adversarial fine-tuning buys RA: {adv} vs {ticket}");
    let few = transfer(&pretrained, Some(&mask), &digits, &TransferConfig { fraction: 0.1, ..quick(FineTuning::Standard) }).unwrap();
    assert_eq!(few.train_examples, digits.train.fraction(0.1, 0).unwrap().len());
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

#[test]
fn store_hits_are_fast_identical_and_computed_once_under_concurrency() {
    let store = Store::open(temp_dir("store")).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let key = Store::key("demo", &["config-a"]);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, runs, key) = (store.clone(), runs.clone(), key.clone());
            std::thread::spawn(move || {
                store
                    .get_or_run("demo", &key, serde_json::json!({"what": "demo"}), |dir| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        std::fs::write(dir.join("artifact.txt"), "x").unwrap();
                        Ok(vec![1.5f64, 2.5])
                    })
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<Vec<f64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran once");
    assert!(results.iter().all(|r| r == &vec![1.5, 2.5]));
    let t = std::time::Instant::now();
    let hit: Vec<f64> = store
        .get_or_run("demo", &key, serde_json::Value::Null, |_| -> doublewin::error::Result<Vec<f64>> { panic!("must not run") })
        .unwrap();
    assert!(t.elapsed().as_secs_f64() < 0.1 && hit == vec![1.5, 2.5]);
    assert_eq!(store.entries().unwrap().len(), 1);
    assert_eq!(store.clean(Some("demo")).unwrap(), 1);
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn a_study_runs_its_grid_once_and_then_loads_it() {
    let mut study = Study::for_profile(Profile::Tiny);
    study.pretrainings = vec![Pretraining::Standard];
    study.families = vec![Family::ST];
    study.source_fraction = 0.02;
    study.pretrain = TrainConfig::default().epochs(1);
    study.transfer.recipe = TrainConfig::default().epochs(1).batch_size(64);
    study.transfer.test_steps = 5;
    // The grid only: one data fraction, no landscapes (tests/report.rs covers those).
    study.fractions = vec![1.0];
    study.landscapes = None;
    let store = Store::open(temp_dir("study")).unwrap();
    let rt = Runtime::new(DeviceChoice::Cpu, 0, 0).unwrap();
    let first = study.run(&rt, &store).unwrap();
    assert_eq!(first.computed_steps, study.size());
    assert_eq!(first.transfers.len(), 3 * 2); // dense + 2 tickets, both fine-tunings
    let verdicts = first.verdicts();
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].verdict.rows.len(), 2);
    let t = std::time::Instant::now();
    let again = study.run(&rt, &store).unwrap();
    assert_eq!(again.computed_steps, 0);
    assert!(t.elapsed().as_secs_f64() < 5.0, "a finished study reloads quickly");
    assert_eq!(serde_json::to_string(&again.transfers).unwrap(), serde_json::to_string(&first.transfers).unwrap());
    assert!(first.verdict_table().to_string().contains("m^ST"));
}
