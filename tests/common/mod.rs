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

/// A fresh empty folder under the system temp dir, unique per test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("doublewin-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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

/// The tiny profile cut down to one pre-training and one IMP family to round 2: the dense
/// network and the round-2 ticket transferred (standard and adversarial) at 100% of the data
/// with one seed, and one landscape on a 3 x 3 grid. Nine steps.
pub fn mini_study() -> doublewin::study::Study {
    use doublewin::study::{Profile, Study};
    use doublewin::train::RegimeKind;
    let mut s = Study::for_profile(Profile::Tiny);
    s.pretrainings = vec![RegimeKind::Standard];
    s.families = vec![RegimeKind::Standard];
    s.rounds = vec![2];
    s.imp.rounds = 2;
    s.fractions = vec![1.0];
    s.seeds = vec![0];
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
