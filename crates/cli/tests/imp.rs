//! IMP through the command line: a run killed with SIGKILL resumes to the same masks.

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::temp_dir;
use doublewin::prune::Mask;

#[test]
fn imp_killed_with_sigkill_resumes_to_the_same_masks() {
    let dir = temp_dir("imp-kill");
    let bin = env!("CARGO_BIN_EXE_doublewin");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let source = dir.join("source.safetensors");
    let out = run(&["train", "--dataset", "digits", "--epochs", "1", "--out", source.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let imp_args = |d: &std::path::Path| {
        vec![
            "imp".to_string(),
            "--net".into(),
            source.to_str().unwrap().into(),
            "--dataset".into(),
            "digits".into(),
            "--rounds".into(),
            "4".into(),
            "--epochs".into(),
            "2".into(),
            "--out".into(),
            d.to_str().unwrap().into(),
        ]
    };
    let straight = dir.join("straight");
    let out = run(&imp_args(&straight).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let killed = dir.join("killed");
    let mut child = std::process::Command::new(bin).args(imp_args(&killed)).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !killed.join("round-02.mask.safetensors.json").exists() {
        assert!(std::time::Instant::now() < deadline, "round 2 never finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("round-04.mask.safetensors").exists());
    let out = run(&imp_args(&killed).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for r in 1..=4 {
        let a = Mask::load(straight.join(format!("round-{r:02}.mask.safetensors"))).unwrap();
        let b = Mask::load(killed.join(format!("round-{r:02}.mask.safetensors"))).unwrap();
        assert_eq!(a, b, "round {r}");
        assert!((a.sparsity() - (1.0 - 0.8f64.powi(r))).abs() < 1e-3);
    }
}
