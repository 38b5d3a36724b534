//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project venv's Python (set up by scripts/setup.sh), or $DOUBLEWIN_PYTHON.
pub fn python() -> PathBuf {
    let p = std::env::var_os("DOUBLEWIN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(p.exists(), "{} missing: run `bash scripts/setup.sh` first (the tests compare against PyTorch)", p.display());
    p
}

/// Runs a script from tests/python with the venv's Python; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let out = Command::new(python()).arg(&path).args(args).output().expect("cannot start python");
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh empty folder under the system temp dir, unique per test, removed when dropped (set
/// DOUBLEWIN_KEEP_TEST_DIRS=1 to keep it for a post-mortem). Tests that leave their folders behind
/// fill the disk of a machine that runs the suite often (a CI run once failed that way).
pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl From<&TestDir> for PathBuf {
    fn from(d: &TestDir) -> PathBuf {
        d.0.clone()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("DOUBLEWIN_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn temp_dir(name: &str) -> TestDir {
    sweep_dead_processes_dirs();
    let d = std::env::temp_dir().join(format!("doublewin-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TestDir(d)
}

/// Removes the test folders of processes that no longer run (a static fixture is never dropped; a
/// killed run drops nothing), once per test process.
fn sweep_dead_processes_dirs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("doublewin-test-").and_then(|r| r.split('-').next()) else { continue };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}

/// The real sample images (foolbox's first 20 test images of CIFAR-10/100, MNIST, Fashion-MNIST).
pub fn foolbox_dir() -> PathBuf {
    let d = doublewin::data::embedded::data_dir().join("fixtures/foolbox");
    assert!(d.join("cifar10_00_3.png").exists(), "{} missing: run `bash scripts/setup.sh`", d.display());
    d
}

/// (path, label) of the foolbox samples of one dataset prefix, in index order.
pub fn foolbox_samples(prefix: &str) -> Vec<(PathBuf, u8)> {
    let mut v: Vec<(usize, PathBuf, u8)> = std::fs::read_dir(foolbox_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p.file_stem()?.to_str()?.to_string();
            let mut parts = stem.rsplitn(3, '_');
            let label: u8 = parts.next()?.parse().ok()?;
            let index: usize = parts.next()?.parse().ok()?;
            (parts.next()? == prefix).then_some((index, p, label))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p, l)| (p, l)).collect()
}

/// A session of `study` on `store`: the CPU, 2 threads, seed 0 (the tiny profile sizes the
/// source models' test subset).
pub fn session(study: &doublewin::study::Study, store: &doublewin::store::Store) -> doublewin::session::Session {
    let rt = doublewin::runtime::Runtime::new(doublewin::runtime::DeviceChoice::Cpu, 2, 0).unwrap();
    doublewin::session::Session::new(rt, doublewin::study::Profile::Tiny, store.clone()).with_study(study.clone())
}

/// The tiny profile cut down to one pre-training and one IMP family to round 2: the dense
/// network and the round-2 ticket transferred (standard and adversarial) at 100% of the data
/// with one seed, and one landscape on a 3 x 3 grid. Nine steps.
pub fn mini_study() -> doublewin::study::Study {
    use doublewin::study::{ImpFamily, Pretraining, Profile, Study};
    let mut s = Study::for_profile(Profile::Tiny);
    s.pretrainings = vec![Pretraining::Standard];
    s.families = vec![ImpFamily::Standard];
    s.rounds = vec![2];
    s.fractions = vec![1.0];
    s.seeds = vec![0];
    s.controls = None;
    // No scratch control, attack checks or second seed set unless a test asks for them.
    s.scratch = false;
    s.attack_check_examples = 0;
    s.stability_seeds.clear();
    s.source_fraction = 0.02;
    s.pretrain = s.pretrain.clone().epochs(1);
    s.transfer.recipe = s.transfer.recipe.clone().epochs(2);
    if let Some(plan) = s.landscapes.as_mut() {
        plan.fractions = vec![1.0];
        plan.resolution = 3;
        plan.examples = 32;
    }
    s
}

/// A randomly initialised ConvNet on `c` x `side` x `side` inputs with `classes` classes and no
/// normalisation (for constraint checks).
pub fn random_convnet(c: i64, side: i64, classes: usize, seed: u64) -> doublewin::model::Network {
    use doublewin::model::{Arch, Network, NetworkSpec, Normalization};
    let spec = NetworkSpec {
        arch: Arch::convnet(),
        in_channels: c,
        input_size: side,
        classes: (0..classes).map(|i| i.to_string()).collect(),
        normalization: Normalization::identity(c as usize),
    };
    Network::new(spec, tch::Device::Cpu, seed).unwrap()
}

/// Asserts that `adv` is in [0, 1] and within `eps` of `x` (L2 per example when `l2`, else L-inf).
pub fn assert_in_ball_and_box(adv: &tch::Tensor, x: &tch::Tensor, eps: f64, l2: bool, what: &str) {
    assert_eq!(adv.size(), x.size(), "{what}");
    assert!(adv.min().double_value(&[]) >= 0.0 && adv.max().double_value(&[]) <= 1.0, "{what} leaves [0, 1]");
    let delta = (adv - x).flatten(1, -1);
    let size = if l2 {
        delta.norm_scalaropt_dim(2.0, [1i64].as_slice(), false).max().double_value(&[])
    } else {
        delta.abs().max().double_value(&[])
    };
    assert!(size <= eps * (1.0 + 1e-5) + 1e-6, "{what}: |delta| {size} > eps {eps}");
}

/// Runs `attacks` on a Digits ConvNet (train mode batch, 16 images) whose parameters carry
/// gradients, and asserts that every parameter gradient is exactly as it was.
pub fn assert_parameter_gradients_untouched(attacks: impl FnOnce(&doublewin::model::Network, &tch::Tensor, &tch::Tensor)) {
    use doublewin::model::{Arch, Network, NetworkSpec};
    let (train, _) = doublewin::data::Embedded::Digits.load().unwrap();
    let net = Network::new(NetworkSpec::for_data(Arch::convnet(), &train).unwrap(), tch::Device::Cpu, 1).unwrap();
    let x = train.float_images(0, 16).unwrap();
    let y = train.labels().narrow(0, 0, 16);
    net.forward(&x, true).unwrap().cross_entropy_for_logits(&y).backward();
    let before: Vec<tch::Tensor> = net.parameters().iter().map(|(_, p)| p.grad().copy()).collect();
    attacks(&net, &x, &y);
    for ((name, p), b) in net.parameters().iter().zip(&before) {
        assert!(p.grad().equal(b), "gradient of {name} changed");
    }
}
