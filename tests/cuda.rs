//! The device-generic checks, run on a GPU by `scripts/gpu_check.sh` (ignored by `cargo test`:
//! a CPU-only machine has no device to run them on). The device comes from
//! `DOUBLEWIN_TEST_DEVICE` (default `cuda`; `cpu` runs the same checks on the CPU, which is how
//! the script itself is tested where no GPU is lent).

use doublewin::attack::{robust_evaluate, Attack, Fgsm, Pgd};
use doublewin::data::Embedded;
use doublewin::prelude::*;
use doublewin::prune::{global_magnitude, Mask};
use doublewin::runtime::DeviceChoice;
use doublewin::train::{train_with, Callbacks, Regime, TrainConfig};
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor};

fn device() -> Device {
    let choice: DeviceChoice = std::env::var("DOUBLEWIN_TEST_DEVICE").unwrap_or_else(|_| "cuda".into()).parse().unwrap();
    let rt = Runtime::new(choice, 0, 0).unwrap_or_else(|e| panic!("no device to test on: {e}"));
    rt.device
}

/// A ConvNet trained three epochs on the digits, on the CPU, and its copy on the device.
fn trained_pair() -> (Splits, Network, Network) {
    let splits = Embedded::Digits.splits(0.1, 0).unwrap();
    let mut cpu = Network::new(NetworkSpec::for_data(Arch::convnet(), &splits.train).unwrap(), Device::Cpu, 2).unwrap();
    let cfg = TrainConfig::default().epochs(3).batch_size(64).seed(1);
    train_with(&mut cpu, &splits, &cfg, &mut Callbacks::none(), None).unwrap();
    let mut dev = cpu.try_clone().unwrap();
    dev.to_device(device()).unwrap();
    (splits, cpu, dev)
}

#[test]
#[ignore = "needs a GPU: scripts/gpu_check.sh runs it"]
fn evaluation_and_attacks_on_the_device_agree_with_the_cpu() {
    let (splits, cpu, dev) = trained_pair();
    // No random start: the CPU's and the GPU's generators draw different starts.
    let attacks = [Fgsm::new(0.1).into(), Pgd::linf(0.1, 0.025, 20).random_start(false).into()];
    let a = robust_evaluate(&cpu, &splits.test, &attacks, 128).unwrap();
    let b = robust_evaluate(&dev, &splits.test, &attacks, 128).unwrap();
    println!("cpu: {a}\n{:?}: {b}", device());
    // Clean predictions differ only where floating-point order flips a near tie.
    assert!((a.sa - b.sa).abs() <= 0.006, "SA {} vs {}", a.sa, b.sa);
    // PGD follows gradients through 20 steps: a few examples may end on the other side.
    assert!((a.ra - b.ra).abs() <= 0.02, "RA {} vs {}", a.ra, b.ra);
    // The adversarial examples stay in the ball and the box on the device.
    let x = splits.test.float_images(0, 64).unwrap().to_device(device());
    let y = splits.test.labels().narrow(0, 0, 64).to_device(device());
    let adv = Pgd::linf(0.1, 0.025, 20).perturb(&dev, &x, &y).unwrap();
    assert_eq!(adv.device(), device());
    let linf = (&adv - &x).abs().max().double_value(&[]);
    assert!(linf <= 0.1 + 1e-5 && adv.min().double_value(&[]) >= 0.0 && adv.max().double_value(&[]) <= 1.0);
}

#[test]
#[ignore = "needs a GPU: scripts/gpu_check.sh runs it"]
fn sparse_adversarial_training_on_the_device_keeps_pruned_weights_zero() {
    let (splits, _, mut dev) = trained_pair();
    let mask = global_magnitude(&dev, &Mask::dense_for(&dev).unwrap(), 0.8).unwrap();
    mask.attach(&mut dev).unwrap();
    let cfg = TrainConfig::default().epochs(2).batch_size(64).seed(3).regime(Regime::adversarial(0.1).unwrap());
    train_with(&mut dev, &splits, &cfg, &mut Callbacks::none(), None).unwrap();
    assert!(mask.holds_in(&dev).unwrap(), "a pruned weight moved during training on {:?}", device());
    let eval = robust_evaluate(&dev, &splits.test, &[Pgd::linf(0.1, 0.025, 10).into()], 128).unwrap();
    assert!(eval.sa > 0.5, "an 80%-sparse ConvNet still learns the digits on the device: {eval}");
}

/// The paper's network and step: ResNet-18 on CIFAR-shaped batches, PGD-10 adversarial examples
/// in train mode, one SGD step; prints images per second.
#[test]
#[ignore = "needs a GPU: scripts/gpu_check.sh runs it"]
fn resnet18_pgd10_training_steps_on_cifar_shaped_data() {
    let d = device();
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let spec = NetworkSpec {
        arch: Arch::resnet18_cifar(),
        in_channels: 3,
        input_size: 32,
        classes,
        normalization: doublewin::model::Normalization::identity(3),
    };
    let net = Network::new(spec, d, 0).unwrap();
    let batch = if d == Device::Cpu { 8 } else { 128 };
    tch::manual_seed(0);
    let x = Tensor::rand([batch, 3, 32, 32], (Kind::Float, d));
    let y = Tensor::randint(10, [batch], (Kind::Int64, d));
    let pgd = Pgd::linf(8.0 / 255.0, 2.0 / 255.0, 10).train_mode(true);
    let mut opt = tch::nn::Sgd { momentum: 0.9, dampening: 0.0, wd: 5e-4, nesterov: false }.build(net.var_store(), 0.1).unwrap();
    let steps = 5;
    let start = std::time::Instant::now();
    for _ in 0..steps {
        let adv = pgd.perturb(&net, &x, &y).unwrap();
        let loss = net.forward(&adv, true).unwrap().cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
        assert!(loss.double_value(&[]).is_finite());
    }
    if d != Device::Cpu {
        tch::Cuda::synchronize(0);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("ResNet-18 PGD-10 training on {d:?}: {:.0} images/s", (steps * batch) as f64 / seconds);
}
