//! Training regimes on the real embedded data: adversarial training buys robustness, fast
//! adversarial training most of it.

use doublewin::attack::{robust_evaluate, Fgsm};
use doublewin::prelude::*;
use doublewin::train::Regime;

#[test]
fn adversarial_training_beats_standard_in_ra_and_fast_gets_most_of_it() {
    let eps = doublewin::attack::default_eps([1, 8, 8]);
    let splits = Embedded::Digits.splits(0.1, 0).unwrap();
    let attacks = ThreatModel::linf(eps).test_attacks();
    let mut results = Vec::new();
    for regime in [Regime::Standard, Regime::fast(eps).unwrap(), Regime::adversarial(eps).unwrap()] {
        let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &splits.train).unwrap(), Device::Cpu, 5).unwrap();
        let cfg = TrainConfig::default().epochs(8).batch_size(64).lr(0.05).seed(2).regime(regime.clone());
        let h = train_with(&mut net, &splits, &cfg, &mut Callbacks::none(), None).unwrap();
        if let Regime::Fast { .. } = regime {
            assert!(h.epochs.iter().all(|r| r.robust_check.is_some()), "the overfitting guard measures every epoch");
        }
        let e = robust_evaluate(&net, &splits.test, &attacks, 256).unwrap();
        println!("{}: SA {:.3} RA {:.3}", regime.name(), e.sa, e.ra);
        results.push((e.sa, e.ra));
    }
    let [(std_sa, std_ra), (_, fat_ra), (at_sa, at_ra)] = results[..] else { unreachable!() };
    assert!(std_sa > 0.85 && at_sa > 0.6, "{results:?}");
    assert!(at_ra > std_ra + 0.15, "AT must beat STD in RA by a clear margin: {results:?}");
    assert!(fat_ra > std_ra + 0.6 * (at_ra - std_ra), "FAT must reach most of AT's gain: {results:?}");
}

#[test]
fn the_overfitting_guard_stops_and_restores_the_epoch_before_the_collapse() {
    let eps = 0.1;
    let splits = Embedded::Digits.splits(0.1, 0).unwrap().with_train_fraction(0.3, 0).unwrap();
    // A guard that reads every drop (even a rise) as a collapse: it must stop at epoch 2 and
    // hand back epoch 1's weights.
    let mut guard = doublewin::train::OverfitGuard::for_threat(&ThreatModel::linf(eps));
    guard.max_drop = -1.0;
    let regime = Regime::Fast { attack: Fgsm::random_start(eps).train_mode(true), guard: Some(guard) };
    let cfg = |epochs| {
        TrainConfig::default().epochs(epochs).batch_size(64).schedule(Schedule::Constant).select_best(false).seed(4).regime(regime.clone())
    };
    let run = |epochs| {
        let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &splits.train).unwrap(), Device::Cpu, 8).unwrap();
        let h = train_with(&mut net, &splits, &cfg(epochs), &mut Callbacks::none(), None).unwrap();
        (h, net.content_hash().unwrap())
    };
    let (stopped, stopped_hash) = run(3);
    assert_eq!(stopped.epochs.len(), 2);
    assert!(stopped.stopped_early.as_deref().unwrap_or("").contains("catastrophic overfitting"));
    assert_eq!(stopped.selected_epoch, Some(1));
    let (_, one_epoch_hash) = run(1);
    assert_eq!(stopped_hash, one_epoch_hash);
}
