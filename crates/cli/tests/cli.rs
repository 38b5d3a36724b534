//! The command line: clear errors and non-zero exits on bad input; JSON output.

use std::process::Command;

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
    assert_eq!(v.as_array().unwrap().len(), 4);
    assert_eq!(v[0]["train"], 60000);
}
