//! Training on the real embedded data: learns, is deterministic, resumes exactly.

mod common;

use common::*;
use doublewin::prelude::*;
use doublewin::train::{Callback, EpochRecord};

fn digits() -> Splits {
    Embedded::Digits.splits(0.1, 0).unwrap()
}

fn quick(epochs: usize) -> TrainConfig {
    TrainConfig::default().epochs(epochs).batch_size(64).lr(0.05).seed(3)
}

fn fresh(data: &Splits) -> Network {
    Network::new(NetworkSpec::for_data(Arch::convnet(), &data.train).unwrap(), Device::Cpu, 11).unwrap()
}

#[test]
fn a_short_run_is_far_better_than_chance() {
    let data = digits();
    let mut net = fresh(&data);
    let before = evaluate(&net, &data.test, 256).unwrap();
    let history = train_with(&mut net, &data, &quick(4), &mut Callbacks::none(), None).unwrap();
    let after = evaluate(&net, &data.test, 256).unwrap();
    assert_eq!(history.epochs.len(), 4);
    assert!(after.accuracy > 0.8, "test accuracy {after} after training (before: {before})");
    assert!(history.epochs[3].train_loss < history.epochs[0].train_loss);
    // Model selection kept the best validation epoch's weights.
    let kept = history.selected_epoch.unwrap();
    let val = evaluate(&net, &data.val, 256).unwrap();
    assert!((val.accuracy - history.epochs[kept - 1].val.unwrap().accuracy).abs() < 1e-9);
}

#[test]
fn capped_validations_skip_epochs_without_changing_the_training() {
    let data = digits();
    let run = |validations: usize| {
        let mut net = fresh(&data);
        let cfg = quick(4).validations(validations).select_best(false);
        let h = train_with(&mut net, &data, &cfg, &mut Callbacks::none(), None).unwrap();
        (h, net.content_hash().unwrap())
    };
    let (every, w_every) = run(0);
    let (two, w_two) = run(2);
    // Validation only reads the network: the same weights and training losses either way.
    assert_eq!(w_every, w_two);
    let losses = |h: &History| h.epochs.iter().map(|r| r.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&every), losses(&two));
    let validated: Vec<usize> = two.epochs.iter().filter(|r| r.val.is_some()).map(|r| r.epoch).collect();
    assert_eq!(validated, vec![2, 4]);
    assert_eq!(two.epochs[1].val, every.epochs[1].val);
    assert!(every.epochs.iter().all(|r| r.val.is_some()));
    // The best record is one that was validated.
    assert!(two.best().is_some_and(|r| r.val.is_some()));
}

#[test]
fn the_same_seed_gives_identical_results_on_cpu() {
    let data = digits();
    let run = || {
        let mut net = fresh(&data);
        let h = train_with(&mut net, &data, &quick(2), &mut Callbacks::none(), None).unwrap();
        (h.epochs.iter().map(|r| (r.train_loss, r.val.map(|v| v.loss))).collect::<Vec<_>>(), net.content_hash().unwrap())
    };
    assert_eq!(run(), run());
}

/// Fails after a given epoch, as a crash would.
struct CrashAfter(usize);
impl Callback for CrashAfter {
    fn on_epoch_end(&mut self, r: &EpochRecord, _: &Network) -> doublewin::error::Result<()> {
        if r.epoch == self.0 {
            return Err(Error::invalid("simulated crash", "rerun"));
        }
        Ok(())
    }
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let data = digits();
    let cfg = quick(3);
    let mut straight = fresh(&data);
    let h1 = train_with(&mut straight, &data, &cfg, &mut Callbacks::none(), None).unwrap();

    let dir = temp_dir("resume");
    let mut net = fresh(&data);
    let crash = train_with(&mut net, &data, &cfg, &mut Callbacks::none().with(CrashAfter(2)), Some(&dir));
    assert!(crash.is_err());
    let mut resumed = fresh(&data);
    let h2 = train_with(&mut resumed, &data, &cfg, &mut Callbacks::none(), Some(&dir)).unwrap();
    assert_eq!(h1.epochs.iter().map(|r| r.train_loss).collect::<Vec<_>>(), h2.epochs.iter().map(|r| r.train_loss).collect::<Vec<_>>());
    assert_eq!(straight.content_hash().unwrap(), resumed.content_hash().unwrap());
    // A different configuration refuses the folder instead of mixing runs.
    let err = train_with(&mut fresh(&data), &data, &quick(4), &mut Callbacks::none(), Some(&dir)).unwrap_err().to_string();
    assert!(err.contains("another configuration"), "{err}");
}

#[test]
fn sgd_matches_pytorchs_update_rule() {
    // One parameter, two steps with momentum, nesterov and weight decay, against the formula
    // torch.optim.SGD implements.
    let data = digits();
    let net = fresh(&data);
    let cfg = doublewin::train::SgdConfig { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.01, nesterov: true };
    let mut sgd = doublewin::train::Sgd::new(&net, cfg).unwrap();
    let (_, w) = net.parameters().into_iter().find(|(n, _)| n == "fc.bias").unwrap();
    let w0 = Vec::<f32>::try_from(&w.detach()).unwrap();
    let x = data.train.float_images(0, 8).unwrap();
    let mut expected = w0.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let mut buf = vec![0.0f64; expected.len()];
    for step in 0..2 {
        sgd.zero_grad().unwrap();
        net.forward(&x, false).unwrap().sum(Kind::Float).backward();
        let g = Vec::<f32>::try_from(&w.grad()).unwrap();
        for i in 0..expected.len() {
            let d = g[i] as f64 + 0.01 * expected[i];
            buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
            expected[i] -= 0.1 * (d + 0.9 * buf[i]);
        }
        sgd.step(0.1).unwrap();
    }
    let got = Vec::<f32>::try_from(&w.detach()).unwrap();
    for (g, e) in got.iter().zip(&expected) {
        assert!((*g as f64 - e).abs() < 1e-5, "{g} vs {e}");
    }
}

#[test]
fn bad_configurations_are_rejected_with_advice() {
    let data = digits();
    let mut net = fresh(&data);
    let err = train_with(&mut net, &data, &quick(0), &mut Callbacks::none(), None).unwrap_err().to_string();
    assert!(err.contains("at least 1"), "{err}");
    let err = train_with(&mut net, &data, &quick(1).lr(-1.0), &mut Callbacks::none(), None).unwrap_err().to_string();
    assert!(err.contains("lr > 0"), "{err}");
    let other = Embedded::Digits.splits(0.1, 0).unwrap();
    let mut wrong = Network::new(NetworkSpec::for_data(Arch::convnet(), &other.train).unwrap(), Device::Cpu, 0)
        .unwrap()
        .with_new_head(vec!["x".into()], 0)
        .unwrap();
    let err = train_with(&mut wrong, &data, &quick(1), &mut Callbacks::none(), None).unwrap_err().to_string();
    assert!(err.contains("with_new_head") || err.contains("classes"), "{err}");
}

#[test]
fn history_figures_carry_their_series() {
    let data = digits();
    let mut net = fresh(&data);
    let h = train_with(&mut net, &data, &quick(2), &mut Callbacks::none(), None).unwrap();
    let fig = h.accuracy_figure().unwrap();
    let series = fig.series().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[1].name, "validation");
    assert_eq!(series[1].points[1], (2.0, 100.0 * h.epochs[1].val.unwrap().accuracy));
    assert!(fig.svg().starts_with("<svg") && fig.svg().contains("validation"));
}
