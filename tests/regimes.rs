//! Training regimes on the real embedded data: adversarial training buys robustness, fast
//! adversarial training most of it.

use doublewin::attack::{robust_evaluate, Fgsm, Pgd};
use doublewin::prelude::*;
use doublewin::train::Regime;

#[test]
fn adversarial_training_beats_standard_in_ra_and_fast_gets_most_of_it() {
    let eps = doublewin::attack::default_eps([1, 8, 8]);
    let splits = Embedded::Digits.splits(0.1, 0).unwrap();
    let attacks = [Fgsm::new(eps).into(), Pgd::linf(eps, eps / 4.0, 20).into()];
    let mut results = Vec::new();
    for regime in [Regime::Standard, Regime::fast(eps), Regime::adversarial(eps)] {
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
