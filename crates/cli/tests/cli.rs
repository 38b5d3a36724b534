//! The command line: clear errors and non-zero exits on bad input; JSON output.

use std::process::Command;

#[path = "../../../tests/common/mod.rs"]
mod common;
use common::temp_dir;

fn doublewin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_doublewin")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_input_exits_non_zero_with_a_message() {
    let (ok, _, err) = doublewin(&["train", "--dataset", "imagenet", "--out", "/tmp/x.safetensors"]);
    assert!(!ok && err.contains("imagenet") && err.contains("fashion-mnist"), "{err}");
    let (ok, _, err) = doublewin(&["evaluate", "--net", "/nonexistent/net.safetensors"]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = doublewin(&["--device", "tpu", "info"]);
    assert!(!ok && err.contains("tpu"), "{err}");
}

#[test]
fn info_and_data_list_speak_json() {
    let (ok, out, err) = doublewin(&["--json", "info"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["libtorch"], "2.13.0");
    let (ok, out, err) = doublewin(&["--json", "data", "list"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);
    assert_eq!(v[0]["train"], 60000);
}

#[test]
fn environment_variables_are_honoured_and_validated() {
    let run = |vars: &[(&str, &str)], args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_doublewin")).envs(vars.iter().copied()).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, out, err) = run(&[("DOUBLEWIN_THREADS", "1"), ("DOUBLEWIN_SEED", "7")], &["--json", "info"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["threads"].as_u64(), v["seed"].as_u64()), (Some(1), Some(7)));
    let (ok, _, err) = run(&[("DOUBLEWIN_THREADS", "abc")], &["info"]);
    assert!(!ok && err.contains("abc"), "{err}");
    let (ok, _, err) = run(&[("DOUBLEWIN_PROFILE", "huge")], &["study", "plan"]);
    assert!(!ok && err.contains("huge") && err.contains("small"), "{err}");
}

#[test]
fn bad_studies_and_values_are_refused_before_anything_runs() {
    let dir = temp_dir("cli-bad");
    let (ok, out, _) = doublewin(&["study", "show", "--profile", "tiny"]);
    assert!(ok);
    let good: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut bad = good.clone();
    bad["imp_fracton"] = bad["imp_fraction"].take();
    bad.as_object_mut().unwrap().remove("imp_fraction");
    let path = dir.join("bad.json");
    std::fs::write(&path, bad.to_string()).unwrap();
    let store = dir.join("store");
    let (ok, _, err) = doublewin(&["study", "run", "--config", path.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(!ok && err.contains("imp_fracton") && err.contains("imp_fraction"), "{err}");
    let mut bad = good.clone();
    bad["threat"]["eps"] = serde_json::json!(-0.1);
    std::fs::write(&path, bad.to_string()).unwrap();
    let (ok, _, err) = doublewin(&["study", "run", "--config", path.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(!ok && err.contains("eps = -0.1"), "{err}");
    assert!(!store.join("pretrain").exists(), "nothing ran");
    // Bad radii are named as such, before any file is read or any training starts.
    let (ok, _, err) = doublewin(&["evaluate", "--net", "/nonexistent/net.safetensors", "--eps", "0"]);
    assert!(!ok && err.contains("eps = 0"), "{err}");
    let (ok, _, err) = doublewin(&[
        "imp",
        "--net",
        "/nonexistent/net.safetensors",
        "--dataset",
        "digits",
        "--rounds",
        "1",
        "--eps",
        "-1",
        "--out",
        "/tmp/x",
    ]);
    assert!(!ok && err.contains("eps = -1"), "{err}");
    // A store written by an older doublewin is refused with the command that clears it.
    let old = dir.join("old-store");
    std::fs::create_dir_all(old.join("pretrain/abc")).unwrap();
    std::fs::write(old.join("pretrain/abc/result.json"), "{}").unwrap();
    let (ok, _, err) = doublewin(&["study", "list", "--store", old.to_str().unwrap()]);
    assert!(!ok && err.contains("--old-format"), "{err}");
    let (ok, _, err) = doublewin(&["study", "clean", "--old-format", "--store", old.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, _, err) = doublewin(&["study", "list", "--store", old.to_str().unwrap()]);
    assert!(ok, "{err}");
}
