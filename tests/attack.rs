//! Attacks: closed-form optima on linear models, constraints, parity with PyTorch, evaluation.

mod common;

use common::*;
use doublewin::attack::{robust_evaluate, Attack, AttackSpec, Fgsm, MaskingCheck, Norm, Pgd, Targeted, Targeting};
use doublewin::model::{Arch, Network, NetworkSpec, Normalization};
use doublewin::runtime::Rng;
use tch::{Device, Kind, Tensor};

/// A two-class linear classifier on 1x4x4 inputs with fixed weights.
fn linear() -> (Network, Tensor) {
    let spec = NetworkSpec {
        arch: Arch::Linear,
        in_channels: 1,
        input_size: 4,
        classes: vec!["a".into(), "b".into()],
        normalization: Normalization::identity(1),
    };
    let net = Network::new(spec, Device::Cpu, 0).unwrap();
    let w = Tensor::from_slice(&[
        0.5f32, -1.0, 2.0, 0.3, -0.7, 1.1, 0.2, -0.4, 0.9, -0.6, 0.05, 1.5, -2.0, 0.8, -0.1, 0.6, 0.1, 0.4, -0.3, 0.0, 0.7, -0.2, 1.2, 0.3,
        -0.5, 0.25, -0.8, 0.9, 0.3, -1.1, 0.6, 0.2,
    ])
    .view([2, 16]);
    let _guard = tch::no_grad_guard();
    for (name, mut t) in net.named_tensors() {
        if name == "fc.weight" {
            t.copy_(&w);
        } else {
            let _ = t.zero_();
        }
    }
    // The loss of label 0 grows fastest along w1 - w0.
    let dir = (w.get(1) - w.get(0)).view([1, 1, 4, 4]);
    (net, dir)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn linf_attacks_find_the_closed_form_optimum_of_a_linear_model() {
    let (net, dir) = linear();
    let x = Tensor::full([3, 1, 4, 4], 0.5, (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 0, 0]);
    let eps = 0.1;
    let optimum = &x + dir.sign() * eps;
    let fgsm = Fgsm::new(eps).perturb(&net, &x, &y).unwrap();
    assert!(max_abs(&(&fgsm - &optimum)) < 1e-6);
    let pgd = Pgd::linf(eps, eps / 4.0, 10).seed(3).perturb(&net, &x, &y).unwrap();
    assert!(max_abs(&(&pgd - &optimum)) < 1e-6, "PGD from a random start reaches the corner");
    // Targeted toward label 1 is the same direction for a two-class model.
    let tgt = Pgd::linf(eps, eps / 4.0, 10).perturb_targeted(&net, &x, &Tensor::from_slice(&[1i64, 1, 1])).unwrap();
    assert!(max_abs(&(&tgt - &optimum)) < 1e-6);
    let ll = Pgd::linf(eps, eps / 4.0, 10).targeting(Targeting::LeastLikely).perturb(&net, &x, &y).unwrap();
    assert!(max_abs(&(&ll - &optimum)) < 1e-6 || max_abs(&(&ll - (&x - dir.sign() * eps))) < 1e-6);
}

#[test]
fn l2_pgd_finds_the_closed_form_optimum_of_a_linear_model() {
    let (net, dir) = linear();
    let x = Tensor::full([2, 1, 4, 4], 0.5, (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 0]);
    let eps = 0.3;
    let optimum = &x + &dir / dir.norm() * eps;
    let adv = Pgd::l2(eps, 0.1, 10).random_start(false).perturb(&net, &x, &y).unwrap();
    assert!(max_abs(&(&adv - &optimum)) < 1e-5, "{}", max_abs(&(&adv - &optimum)));
    // From a random start with restarts it gets within a hair of the optimal loss.
    let adv = Pgd::l2(eps, 0.05, 50).restarts(3).perturb(&net, &x, &y).unwrap();
    let loss = |t: &Tensor| net.forward(t, false).unwrap().cross_entropy_for_logits(&y).double_value(&[]);
    assert!(loss(&adv) > loss(&optimum) - 1e-3, "{} vs {}", loss(&adv), loss(&optimum));
}

#[test]
fn adversarial_examples_stay_in_the_ball_and_the_box() {
    let mut rng = Rng::new(42);
    for case in 0..12 {
        let c = [1i64, 3][case % 2];
        let side = [8i64, 12, 16][case % 3];
        let n = 1 + rng.below(5) as i64;
        let eps = [0.01, 0.1, 0.5, 2.0][rng.below(4)];
        let net = random_convnet(c, side, 4, case as u64);
        let x = rng.uniform_tensor(&[n, c, side, side], 0.0, 1.0, Device::Cpu).unwrap();
        let y = Tensor::from_slice(&(0..n).map(|i| i % 4).collect::<Vec<_>>());
        let attacks: Vec<AttackSpec> = vec![
            Fgsm::new(eps).into(),
            Fgsm::random_start(eps).into(),
            Pgd::linf(eps, eps / 4.0, 3).into(),
            Pgd::l2(eps, eps / 2.0, 3).restarts(2).into(),
        ];
        for a in attacks {
            let adv = a.perturb(&net, &x, &y).unwrap();
            assert_in_ball_and_box(&adv, &x, eps, a.name().contains("L2"), &a.name());
        }
    }
}

#[test]
fn attacks_leave_parameter_gradients_untouched() {
    assert_parameter_gradients_untouched(|net, x, y| {
        let _ = Pgd::linf(0.1, 0.03, 5).perturb(net, x, y).unwrap();
        let _ = Fgsm::random_start(0.1).train_mode(true).perturb(net, x, y).unwrap();
    });
}

#[test]
fn pgd_matches_pytorch_step_for_step() {
    let dir = temp_dir("pgd-parity");
    run_python("pgd_reference.py", &[dir.to_str().unwrap()]);
    let r: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap().into_iter().collect();
    let spec = NetworkSpec {
        arch: Arch::convnet(),
        in_channels: 1,
        input_size: 28,
        classes: (0..10).map(|i| i.to_string()).collect(),
        normalization: Normalization { mean: vec![r["mean"].double_value(&[0])], std: vec![r["std"].double_value(&[0])] },
    };
    let net = Network::import(dir.join("weights.safetensors"), spec, Device::Cpu).unwrap();
    let adv = Pgd::linf(0.1, 0.025, 10).perturb_from(&net, &r["x"], &r["y"], &r["start"], false).unwrap();
    let diff = max_abs(&(&adv - &r["adv"]));
    assert!(diff < 1e-5, "max |doublewin - PyTorch| = {diff}");
}

#[test]
fn robust_accuracy_is_below_clean_and_falls_with_eps() {
    let splits = doublewin::data::Embedded::Digits.splits(0.1, 0).unwrap();
    let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &splits.train).unwrap(), Device::Cpu, 2).unwrap();
    let cfg = doublewin::train::TrainConfig::default().epochs(3).batch_size(64).seed(1);
    doublewin::train::train_with(&mut net, &splits, &cfg, &mut doublewin::train::Callbacks::none(), None).unwrap();
    let eval = robust_evaluate(&net, &splits.test, &[Fgsm::new(0.1).into(), Pgd::linf(0.1, 0.025, 10).into()], 128).unwrap();
    assert!(eval.sa > 0.8, "{eval}");
    assert!(eval.ra <= eval.sa && eval.per_attack[1].accuracy_after <= eval.per_attack[0].accuracy_after);
    assert!(eval.ra < eval.sa - 0.1, "a standard model loses accuracy under attack: {eval}");
    let check = MaskingCheck::run(&net, &splits.test, &Pgd::linf(0.1, 0.025, 10), &[0.02, 0.05, 0.1, 0.2], 128).unwrap();
    for w in check.pgd_accuracy.windows(2) {
        assert!(w[1] <= w[0] + 1e-9, "RA must fall as eps grows: {check}");
    }
    assert!(check.warnings.is_empty(), "{check}");
    // The diagnosis does flag the classic signs when they are there.
    let masked = MaskingCheck { pgd_accuracy: vec![0.5, 0.6, 0.7, 0.8], mean_input_gradient: 0.0, zero_gradient_fraction: 1.0, ..check };
    let w = masked.diagnose(0.01);
    assert!(
        w.iter().any(|m| m.contains("PGD weaker than FGSM"))
            && w.iter().any(|m| m.contains("rises"))
            && w.iter().any(|m| m.contains("vanish")),
        "{w:?}"
    );
    assert_eq!(Norm::default(), Norm::Linf);
}
