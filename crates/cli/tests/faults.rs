//! The fault-injection suite: a micro study (every step kind, seconds per step) is computed once
//! into a reference store, then damaged and interrupted in every way the store promises to
//! survive, and each time run again to the end and compared with the reference bit for bit
//! (every step's files by SHA-256, every result value with its timings left out):
//! - each file a step lists, and its `result.json`, flipped in place (same size), truncated and
//!   deleted, for every step kind;
//! - `study run --workers 2` killed with SIGKILL (the whole process group) at evenly spaced
//!   instants until it finishes;
//! - SIGTERM to the parent of the workers, and to the whole group: exit status 3, then a rerun;
//! - concurrent first opens of a new store;
//! - `--json` of every subcommand parsed as one JSON document.
//!
//! It prints one summary line: faults injected, recovered, results identical.

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../tests/common/mod.rs"]
mod common;
use common::temp_dir as tmp;

const BIN: &str = env!("CARGO_BIN_EXE_doublewin");
/// `study run`'s status when a signal stopped it (doublewin::study::EXIT_STOPPED).
const STOPPED: i32 = doublewin::study::EXIT_STOPPED;

fn doublewin(args: &[&str]) -> Output {
    Command::new(BIN).args(["--threads", "1"]).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("status {:?}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The tiny profile cut to one step or two of every kind, each a second or so.
fn micro_study(dir: &Path) -> PathBuf {
    let o = doublewin(&["study", "show", "--profile", "tiny"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut s: Value = serde_json::from_slice(&o.stdout).unwrap();
    s["pretrainings"] = serde_json::json!(["standard"]);
    s["families"] = serde_json::json!(["standard"]);
    s["source_fraction"] = serde_json::json!(0.02);
    s["pretrain"]["epochs"] = serde_json::json!(2);
    s["rounds"] = serde_json::json!([2]);
    s["fine_tunings"] = serde_json::json!(["standard"]);
    s["fractions"] = serde_json::json!([0.1]);
    s["transfer"]["recipe"]["epochs"] = serde_json::json!(2);
    s["controls"] = Value::Null;
    s["scratch"] = serde_json::json!(false);
    s["attack_check_examples"] = serde_json::json!(16);
    let l = &mut s["landscapes"];
    l["round"] = serde_json::json!(2);
    l["fine_tuning"] = serde_json::json!("standard");
    l["fractions"] = serde_json::json!([0.1]);
    l["resolution"] = serde_json::json!(3);
    l["examples"] = serde_json::json!(16);
    l["checkpoints"] = serde_json::json!(3);
    let path = dir.join("micro.json");
    std::fs::write(&path, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    path
}

fn study_run(study: &Path, store: &Path, workers: usize) -> Output {
    doublewin(&["study", "run", "--config", study.to_str().unwrap(), "--store", store.to_str().unwrap(), "--workers", &workers.to_string()])
}

/// `study run --workers N` in its own process group (so the group can be signalled).
fn spawn_run(study: &Path, store: &Path, workers: usize) -> std::process::Child {
    Command::new(BIN)
        .args(["--threads", "1", "study", "run", "--workers", &workers.to_string(), "--config"])
        .arg(study)
        .arg("--store")
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process (or group, pid < 0) this test started.
    unsafe { libc::kill(pid, sig) };
}

/// Waits for `child` at most `limit`; its status, or None (then it is killed).
fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(-(child.id() as i32), libc::SIGKILL);
    let _ = child.wait();
    None
}

/// Drops every "seconds" field (timings differ from run to run; nothing else may).
fn strip_timings(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("seconds");
            m.values_mut().for_each(strip_timings);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_timings),
        _ => {}
    }
}

/// Every finished step of a store: kind/key -> (its files with their hashes, its value).
fn snapshot(store: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for kind in std::fs::read_dir(store).unwrap().flatten().filter(|e| e.path().is_dir()) {
        for step in std::fs::read_dir(kind.path()).unwrap().flatten().filter(|e| e.path().is_dir()) {
            let Ok(text) = std::fs::read_to_string(step.path().join("result.json")) else { continue };
            let mut v: Value = serde_json::from_str(&text).unwrap();
            strip_timings(&mut v);
            let name = format!("{}/{}", kind.file_name().to_string_lossy(), step.file_name().to_string_lossy());
            out.insert(name, serde_json::json!({"files": v["files"], "value": v["value"]}));
        }
    }
    out
}

fn differences(reference: &BTreeMap<String, Value>, other: &BTreeMap<String, Value>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in reference {
        match other.get(k) {
            None => d.push(format!("{k} missing")),
            Some(w) if w != v => d.push(format!("{k} differs")),
            _ => {}
        }
    }
    d.extend(other.keys().filter(|k| !reference.contains_key(*k)).map(|k| format!("{k} extra")));
    d
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let o = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip,
    Truncate,
    Delete,
}

fn damage(path: &Path, how: Damage) {
    match how {
        Damage::Flip => {
            let mut bytes = std::fs::read(path).unwrap();
            let i = bytes.len() / 2;
            // A digit stays a digit, any other byte changes: the size is kept either way.
            bytes[i] = if bytes[i].is_ascii_digit() { b'0' + (bytes[i] - b'0' + 1) % 10 } else { bytes[i] ^ 0x5a };
            std::fs::write(path, bytes).unwrap();
        }
        Damage::Truncate => {
            let len = std::fs::metadata(path).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len / 2).unwrap();
        }
        Damage::Delete => std::fs::remove_file(path).unwrap(),
    }
}

/// For every step kind: one of its listed files of each type (by extension) and its
/// `result.json`.
fn targets(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in std::fs::read_dir(store).unwrap().flatten().filter(|e| e.path().is_dir() && e.file_name() != "studies") {
        let mut seen = std::collections::BTreeSet::new();
        let mut steps: Vec<PathBuf> = std::fs::read_dir(kind.path()).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        steps.sort();
        for step in steps {
            let record: Value = serde_json::from_str(&std::fs::read_to_string(step.join("result.json")).unwrap()).unwrap();
            if seen.insert("result.json".to_string()) {
                out.push(step.join("result.json"));
            }
            for f in record["files"].as_array().unwrap() {
                let p = f["path"].as_str().unwrap();
                let ext = p.rsplit_once('.').map_or(p, |(_, e)| e).to_string();
                if seen.insert(ext) {
                    out.push(step.join(p));
                }
            }
        }
    }
    out
}

#[test]
fn faults_are_detected_recovered_from_and_leave_results_identical() {
    let t0 = Instant::now();
    let dir = tmp("suite");
    let study = micro_study(&dir);
    let reference = dir.join("reference");
    let t = Instant::now();
    let o = study_run(&study, &reference, 2);
    assert!(o.status.success(), "{}", text(&o));
    let run_time = t.elapsed();
    let want = snapshot(&reference);
    let kinds: std::collections::BTreeSet<&str> = want.keys().map(|k| k.split('/').next().unwrap()).collect();
    assert_eq!(kinds.len(), 6, "the micro study covers every step kind: {kinds:?}");
    let (mut injected, mut recovered, mut identical) = (0usize, 0usize, 0usize);

    // 1. Damaged files: each kind's files flipped, truncated and deleted (all kinds at once per
    //    round), then a rerun.
    let store = dir.join("damaged");
    for how in [Damage::Flip, Damage::Truncate, Damage::Delete] {
        copy_dir(&reference, &store);
        let hit = targets(&store);
        for p in &hit {
            damage(p, how);
        }
        injected += hit.len();
        let o = study_run(&study, &store, 1);
        assert!(o.status.success(), "{how:?}: {}", text(&o));
        recovered += hit.len();
        let d = differences(&want, &snapshot(&store));
        assert!(d.is_empty(), "{how:?} of {hit:?}: {d:?}");
        identical += hit.len();
    }

    // 2. SIGKILL to the whole group at N evenly spaced instants of a run (each on a fresh
    //    store), then a rerun to the end.
    const KILLS: u32 = 4;
    for k in 1..=KILLS {
        let store = dir.join(format!("killed-{k}"));
        let mut child = spawn_run(&study, &store, 2);
        std::thread::sleep(run_time * k / (KILLS + 1));
        signal(-(child.id() as i32), libc::SIGKILL);
        let _ = child.wait();
        injected += 1;
        let o = study_run(&study, &store, 2);
        assert!(o.status.success(), "after a kill at {k}/{}: {}", KILLS + 1, text(&o));
        recovered += 1;
        let d = differences(&want, &snapshot(&store));
        assert!(d.is_empty(), "after a kill at {k}/{}: {d:?}", KILLS + 1);
        identical += 1;
    }

    // 3. SIGTERM to the parent of the workers, then to the whole group: both stop with status 3
    //    (no worker left behind), and a rerun finishes the study.
    for group in [false, true] {
        let store = dir.join(if group { "term-group" } else { "term-parent" });
        let mut child = spawn_run(&study, &store, 2);
        std::thread::sleep(run_time / 3);
        let pid = child.id() as i32;
        signal(if group { -pid } else { pid }, libc::SIGTERM);
        let status = wait_at_most(&mut child, run_time + Duration::from_secs(30)).expect("the run stops after SIGTERM");
        assert_eq!(status.code(), Some(STOPPED), "SIGTERM to the {}: {status:?}", if group { "group" } else { "parent" });
        // No worker of the group survives its parent.
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: signal 0 only asks whether the group still exists.
        assert_ne!(unsafe { libc::kill(-pid, 0) }, 0, "a worker outlived the stopped run");
        injected += 1;
        let o = study_run(&study, &store, 2);
        assert!(o.status.success(), "{}", text(&o));
        recovered += 1;
        let d = differences(&want, &snapshot(&store));
        assert!(d.is_empty(), "after SIGTERM: {d:?}");
        identical += 1;
    }

    // 4. Eight processes open one new store at once, three times.
    for round in 0..3 {
        let store = dir.join(format!("new-{round}"));
        let children: Vec<_> = (0..8)
            .map(|_| {
                Command::new(BIN)
                    .args(["study", "plan", "--config"])
                    .arg(&study)
                    .arg("--store")
                    .arg(&store)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "concurrent open: {}", text(&o));
            injected += 1;
            recovered += 1;
            identical += 1;
        }
    }

    // 5. --json: stdout is one JSON document for every subcommand.
    let out = dir.join("json");
    let net = out.join("net.safetensors");
    let tickets = out.join("imp");
    let (s, r) = (study.to_str().unwrap(), reference.to_str().unwrap());
    let clean_store = dir.join("clean");
    copy_dir(&reference, &clean_store);
    let commands: Vec<Vec<String>> = [
        vec!["info"],
        vec!["data", "list"],
        vec!["study", "show", "--profile", "tiny"],
        vec!["study", "plan", "--config", s, "--store", r],
        vec!["study", "run", "--config", s, "--store", r],
        vec!["study", "run", "--config", s, "--store", r, "--workers", "2"],
        vec!["study", "report", "--config", s, "--store", r, "--out", out.join("report").to_str().unwrap()],
        vec!["study", "list", "--store", r],
        vec!["study", "clean", "--kind", "landscape", "--store", clean_store.to_str().unwrap()],
        vec!["pretrain", "--regime", "standard", "--profile", "tiny", "--store", clean_store.to_str().unwrap()],
        vec!["bench", "--quick", "--no-peer", "--only", "eval-convnet", "--out", out.join("bench.md").to_str().unwrap()],
        vec!["train", "--dataset", "digits", "--epochs", "1", "--out", net.to_str().unwrap()],
        vec!["evaluate", "--net", net.to_str().unwrap(), "--dataset", "digits", "--eps", "0.1", "--examples", "50"],
        vec![
            "imp",
            "--net",
            net.to_str().unwrap(),
            "--dataset",
            "digits",
            "--rounds",
            "1",
            "--epochs",
            "1",
            "--out",
            tickets.to_str().unwrap(),
        ],
        vec![
            "transfer",
            "--net",
            net.to_str().unwrap(),
            "--mask",
            tickets.join("round-01.mask.safetensors").to_str().unwrap(),
            "--dataset",
            "digits",
            "--fraction",
            "0.1",
            "--epochs",
            "1",
        ],
    ]
    .iter()
    .map(|c| c.iter().map(|a| a.to_string()).collect())
    .collect();
    for c in &commands {
        let o = Command::new(BIN).args(["--threads", "1", "--json"]).args(c).output().unwrap();
        assert!(o.status.success(), "{c:?}: {}", text(&o));
        let parsed: Result<Value, _> = serde_json::from_slice(&o.stdout);
        assert!(parsed.is_ok(), "{c:?} printed more than one JSON document on stdout: {}", text(&o));
    }

    println!(
        "fault injection: {injected} faults injected, {recovered} recovered, {identical} with results identical to the \
         reference ({KILLS} kills, {} commands' --json parsed) in {:.0} s",
        commands.len(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!((recovered, identical), (injected, injected));
}

#[test]
fn bad_values_are_refused_naming_where_they_came_from() {
    let dir = tmp("values");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let o = Command::new(BIN).envs(env.iter().copied()).args(args).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, err) = run(&[], &["--threads", "20000", "info"]);
    assert!(!ok && err.contains("--threads = 20000") && err.contains("at most"), "{err}");
    let (ok, err) = run(&[("DOUBLEWIN_THREADS", "100000")], &["info"]);
    assert!(!ok && err.contains("DOUBLEWIN_THREADS = 100000"), "{err}");
    let (ok, err) = run(&[("DOUBLEWIN_SEED", "x")], &["info"]);
    assert!(!ok && err.contains("DOUBLEWIN_SEED='x'"), "{err}");
    let (ok, err) = run(&[], &["evaluate", "--net", "/nonexistent.safetensors", "--examples", "0"]);
    assert!(!ok && err.contains("--examples 0"), "{err}");
    let store = dir.join("store");
    let (ok, err) = run(&[], &["study", "clean", "--kind", "bogus", "--store", store.to_str().unwrap()]);
    assert!(!ok && err.contains("bogus") && err.contains("transfer"), "{err}");
    let (ok, err) = run(&[], &["study", "list", "--store", dir.join("missing").to_str().unwrap()]);
    assert!(!ok && err.contains("not found") && !dir.join("missing").exists(), "{err}");
    // Study files: a repeated entry, and a wrong type named by its field path.
    let o = doublewin(&["study", "show", "--profile", "tiny"]);
    let good: Value = serde_json::from_slice(&o.stdout).unwrap();
    let path = dir.join("study.json");
    let mut bad = good.clone();
    bad["fractions"] = serde_json::json!([0.1, 0.1]);
    std::fs::write(&path, bad.to_string()).unwrap();
    let (ok, err) = run(&[], &["study", "plan", "--config", path.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(!ok && err.contains("fractions") && err.contains("repeat"), "{err}");
    let mut bad = good.clone();
    bad["transfer"]["recipe"]["epochs"] = serde_json::json!("ten");
    std::fs::write(&path, bad.to_string()).unwrap();
    let (ok, err) = run(&[], &["study", "plan", "--config", path.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(!ok && err.contains("transfer.recipe.epochs"), "{err}");
}

#[test]
fn a_read_only_store_serves_finished_steps_and_refuses_new_ones_up_front() {
    let dir = tmp("ro");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |opts: &str| Command::new("mount").args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(&mnt).output();
    match mount("size=64m") {
        Ok(o) if o.status.success() => {}
        _ => {
            // A read-only file system needs a mount (root): permissions alone do not stop root.
            println!("skipped: cannot mount a tmpfs here (not root?)");
            return;
        }
    }
    // Unmounted however the test ends (before `dir` is removed: dropped in reverse order).
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).output();
        }
    }
    let _mounted = Unmount(mnt.clone());
    let study = micro_study(&dir);
    let store = mnt.join("store");
    let o = study_run(&study, &store, 1);
    assert!(o.status.success(), "{}", text(&o));
    let remount = Command::new("mount").args(["-o", "remount,ro"]).arg(&mnt).output().unwrap();
    assert!(remount.status.success(), "{}", text(&remount));
    let s = study.to_str().unwrap();
    let st = store.to_str().unwrap();
    // Everything done: running, with workers, and reporting only read.
    for args in [vec!["study", "run", "--config", s, "--store", st], vec!["study", "run", "--config", s, "--store", st, "--workers", "2"]] {
        let o = doublewin(&args);
        assert!(o.status.success(), "{args:?} on a read-only store with every step done: {}", text(&o));
    }
    let out = dir.join("report");
    let o = doublewin(&["study", "report", "--config", s, "--store", st, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // Cleaning it: refused with the reason and the fix, not a bare OS error.
    let o = doublewin(&["study", "clean", "--store", st]);
    assert!(!o.status.success() && text(&o).contains("cannot clean") && text(&o).contains("writable"), "{}", text(&o));
    // One more seed: refused before any work, with the fix.
    let mut more: Value = serde_json::from_str(&std::fs::read_to_string(&study).unwrap()).unwrap();
    more["seeds"] = serde_json::json!([0, 1]);
    let more_path = dir.join("more.json");
    std::fs::write(&more_path, more.to_string()).unwrap();
    let o = doublewin(&["study", "run", "--config", more_path.to_str().unwrap(), "--store", st]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("read-only") && err.contains("writable"), "{}", text(&o));
}

#[test]
fn a_pretraining_stopped_by_sigterm_ends_at_a_saved_epoch_and_resumes_to_the_same_weights() {
    let dir = tmp("epoch-stop");
    let study = micro_study(&dir);
    // One long step: a 12-epoch pre-training (the rest of the micro study is unchanged).
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&study).unwrap()).unwrap();
    s["pretrain"]["epochs"] = serde_json::json!(12);
    s["source_fraction"] = serde_json::json!(0.05);
    std::fs::write(&study, s.to_string()).unwrap();
    let reference = dir.join("reference");
    let o = study_run(&study, &reference, 1);
    assert!(o.status.success(), "{}", text(&o));
    let store = dir.join("stopped");
    let mut child = spawn_run(&study, &store, 1);
    // Signal once the pre-training has saved its first epoch.
    let history = || -> Option<Value> {
        let steps = std::fs::read_dir(store.join("pretrain")).ok()?;
        steps.flatten().find_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path().join("train/history.json")).ok()?).ok())
    };
    let t = Instant::now();
    while history().is_none() {
        assert!(t.elapsed() < Duration::from_secs(120), "the pre-training never saved an epoch");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(child.id() as i32, libc::SIGTERM);
    let status = wait_at_most(&mut child, Duration::from_secs(60)).expect("the run stops after SIGTERM");
    assert_eq!(status.code(), Some(STOPPED));
    let saved = history().expect("the stopped pre-training keeps its saved epochs")["history"]["epochs"].as_array().unwrap().len();
    assert!(saved < 12, "stopped after {saved} of 12 epochs: the signal did not stop the pre-training itself");
    // (issue 28, 1) A resume state with one bit flipped is not resumed from: the run starts
    // over, with a warning, and ends where an uninterrupted run ends.
    let flipped = dir.join("flipped");
    copy_dir(&store, &flipped);
    let state = std::fs::read_dir(flipped.join("pretrain"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("train/state.safetensors"))
        .find(|p| p.exists())
        .unwrap();
    let mut bytes = std::fs::read(&state).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&state, bytes).unwrap();
    let o = study_run(&study, &flipped, 1);
    assert!(o.status.success() && text(&o).contains("not resuming"), "{}", text(&o));
    let d = differences(&snapshot(&reference), &snapshot(&flipped));
    assert!(d.is_empty(), "a run whose resume state was damaged differs: {d:?}");
    // (issue 28, 2) `study clean` while the pre-training runs leaves it alone; the run ends done.
    let running = dir.join("running");
    let mut child = spawn_run(&study, &running, 1);
    let started = || {
        std::fs::read_dir(running.join("pretrain")).ok().is_some_and(|d| d.flatten().any(|e| e.path().join("train/history.json").exists()))
    };
    let t = Instant::now();
    while !started() {
        assert!(t.elapsed() < Duration::from_secs(120), "the pre-training never saved an epoch");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = doublewin(&["study", "clean", "--store", running.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("alone"), "{}", text(&o));
    let status = wait_at_most(&mut child, Duration::from_secs(300)).expect("the run ends");
    assert!(status.success(), "the run under a clean failed: {status}");
    let o = doublewin(&["study", "list", "--store", running.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let d = differences(&snapshot(&reference), &snapshot(&running));
    assert!(d.is_empty(), "a run cleaned under differs: {d:?}");
    let o = study_run(&study, &store, 1);
    assert!(o.status.success(), "{}", text(&o));
    let d = differences(&snapshot(&reference), &snapshot(&store));
    assert!(d.is_empty(), "a pre-training stopped after {saved} epochs and resumed differs: {d:?}");
    println!("pre-training stopped by SIGTERM after epoch {saved} of 12, resumed: every step identical to an uninterrupted run");
}

/// Runs `args` as user `nobody` (uid 65534): root ignores file permissions, so this is how a
/// test meets an unreadable file. `None` where setpriv is missing.
fn as_nobody(args: &[&str]) -> Option<Output> {
    Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "--threads", "1"]).args(args).output().ok()
}

/// The probed defects of the store (issue 28): unreadable is not damaged, a lost store.json is
/// found again from the steps, edited records and descriptions are not trusted, clean and list
/// say what is wrong, and the upstream-hash rule recomputes exactly what read a changed file.
#[test]
fn probed_store_defects_are_fixed() {
    let dir = tmp("probed-store");
    let study = micro_study(&dir);
    // The micro study with its scratch control: the transfers that read no pre-training.
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&study).unwrap()).unwrap();
    s["scratch"] = serde_json::json!(true);
    std::fs::write(&study, s.to_string()).unwrap();
    let reference = dir.join("reference");
    let o = study_run(&study, &reference, 1);
    assert!(o.status.success(), "{}", text(&o));
    let (s, r) = (study.to_str().unwrap().to_string(), reference.to_str().unwrap().to_string());
    let pretrain = std::fs::read_dir(reference.join("pretrain")).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();

    // (4) An unreadable step is an error naming the path; nothing is deleted or recomputed.
    // Only where user `nobody` can run this binary and read the reference store at all (a
    // checkout under /root is not reachable for it): the probe must succeed first.
    if let Some(o) = as_nobody(&["study", "list", "--store", &r]).filter(|o| o.status.success()) {
        let store = dir.join("private");
        copy_dir(&reference, &store);
        let st = store.to_str().unwrap();
        // Everyone may enter the folders; the pre-training's weights only root may read.
        Command::new("chmod").args(["-R", "a+rwX"]).arg(&store).output().unwrap();
        Command::new("chmod").arg("a+x").arg(&*dir).output().unwrap();
        let weights = store.join(pretrain.strip_prefix(&reference).unwrap()).join("net.safetensors");
        Command::new("chmod").arg("600").arg(&weights).output().unwrap();
        let before = std::fs::read(&weights).unwrap();
        let o2 = as_nobody(&["study", "run", "--config", &s, "--store", st]).unwrap();
        let err = String::from_utf8_lossy(&o2.stderr);
        assert!(!o2.status.success() && err.contains("net.safetensors") && err.contains("read access"), "{}", text(&o2));
        assert!(!err.contains("SHA-256"), "a permission error is not damage: {err}");
        assert_eq!(std::fs::read(&weights).unwrap(), before, "the unreadable step was left as it was");
        let _ = o;
    } else {
        println!("skipped the permission check: no setpriv, or user nobody cannot run {BIN}");
    }
    // A result.json that cannot be read as a file (a folder in its place): an error, not damage.
    let store = dir.join("eisdir");
    copy_dir(&reference, &store);
    let st = store.to_str().unwrap().to_string();
    let result = store.join(pretrain.strip_prefix(&reference).unwrap()).join("result.json");
    std::fs::remove_file(&result).unwrap();
    std::fs::create_dir(&result).unwrap();
    let o = doublewin(&["study", "run", "--config", &s, "--store", &st]);
    assert!(!o.status.success() && text(&o).contains("nothing was deleted"), "{}", text(&o));
    assert!(result.is_dir() && result.parent().unwrap().join("net.safetensors").exists());

    // (5) A lost store.json is found again from the steps; the old-format clean refuses them.
    let store = dir.join("no-marker");
    copy_dir(&reference, &store);
    let st = store.to_str().unwrap().to_string();
    std::fs::remove_file(store.join("store.json")).unwrap();
    let o = doublewin(&["study", "clean", "--old-format", "--store", &st]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not an older store"), "{}", text(&o));
    assert!(!store.join("store.json").exists(), "the refused clean wrote no marker");
    let o = doublewin(&["study", "run", "--config", &s, "--store", &st]);
    assert!(o.status.success() && text(&o).contains("written again"), "{}", text(&o));
    assert!(differences(&snapshot(&reference), &snapshot(&store)).is_empty());

    // (12) A record without its checksum, or an edited describe.json, is not trusted; a garbled
    // describe.json does not take `study list` down; a typo'd or dangling store is named.
    let store = dir.join("edited");
    copy_dir(&reference, &store);
    let st = store.to_str().unwrap().to_string();
    let step = store.join(pretrain.strip_prefix(&reference).unwrap());
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(step.join("result.json")).unwrap()).unwrap();
    record.as_object_mut().unwrap().remove("checksum");
    std::fs::write(step.join("result.json"), record.to_string()).unwrap();
    let o = doublewin(&["study", "plan", "--config", &s, "--store", &st]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no checksum"), "{}", text(&o));
    let imp = std::fs::read_dir(store.join("imp")).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    std::fs::write(imp.join("describe.json"), "{ garbled").unwrap();
    let o = doublewin(&["study", "list", "--store", &st]);
    assert!(o.status.success(), "one garbled describe.json takes no listing down: {}", text(&o));
    let o = doublewin(&["study", "run", "--config", &s, "--store", &st]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(differences(&snapshot(&reference), &snapshot(&store)).is_empty());
    let typo = dir.join("no-such-store");
    let o = doublewin(&["study", "clean", "--store", typo.to_str().unwrap()]);
    assert!(!o.status.success() && !typo.exists(), "{}", text(&o));
    let link = dir.join("dangling");
    std::os::unix::fs::symlink(dir.join("nowhere"), &link).unwrap();
    for command in ["list", "plan"] {
        let o = doublewin(&["study", command, "--store", link.to_str().unwrap()]);
        assert!(!o.status.success() && text(&o).contains("symbolic link"), "{command}: {}", text(&o));
    }

    // (1 of the deliverables, and 3) Inputs by content: the pre-training recomputed with other
    // bytes (two threads instead of one) makes every step that read its weights stale, and
    // nothing else: the scratch transfers keep their results.
    let store = dir.join("upstream");
    copy_dir(&reference, &store);
    let st = store.to_str().unwrap().to_string();
    let step = store.join(pretrain.strip_prefix(&reference).unwrap());
    let before = records(&store);
    std::fs::remove_file(step.join("result.json")).unwrap();
    let o = Command::new(BIN).args(["--threads", "2", "study", "run", "--config", &s, "--store", &st]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let after = records(&store);
    let weights_changed = before[&format!("pretrain/{}", step.file_name().unwrap().to_string_lossy())]["files"]
        != after[&format!("pretrain/{}", step.file_name().unwrap().to_string_lossy())]["files"];
    assert!(weights_changed, "two threads gave the same pre-trained bytes: the rule is not exercised");
    let mut recomputed = Vec::new();
    for (name, v) in &after {
        let reads_pretrain = v["inputs"].as_array().is_some_and(|i| !i.is_empty());
        let again = before.get(name) != Some(v);
        if name.starts_with("pretrain/") || name.starts_with("studies") {
            continue;
        }
        let scratch = v["label"].as_str().unwrap_or_default().contains("scratch");
        assert_eq!(
            again,
            !scratch,
            "{name}: recomputed {again}, but it {} the pre-training",
            if scratch { "does not read" } else { "reads" }
        );
        assert!(
            scratch || reads_pretrain || name.starts_with("landscape/") || name.starts_with("attack-check/"),
            "{name} records its inputs"
        );
        if again {
            recomputed.push(name.clone());
        }
    }
    assert!(recomputed.iter().any(|n| n.starts_with("imp/")) && recomputed.iter().any(|n| n.starts_with("transfer/")), "{recomputed:?}");
    println!("a pre-training recomputed with other bytes: {} steps below it recomputed, the scratch transfers kept", recomputed.len());
}

/// Every step's result.json, by kind/key (timings included: a recomputed step differs).
fn records(store: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for kind in std::fs::read_dir(store).unwrap().flatten().filter(|e| e.path().is_dir()) {
        for step in std::fs::read_dir(kind.path()).unwrap().flatten().filter(|e| e.path().is_dir()) {
            let Ok(text) = std::fs::read_to_string(step.path().join("result.json")) else { continue };
            let name = format!("{}/{}", kind.file_name().to_string_lossy(), step.file_name().to_string_lossy());
            out.insert(name, serde_json::from_str(&text).unwrap());
        }
    }
    out
}

/// The probed defects of input checking (items 6-11): each refused with the field or flag named,
/// none a panic or a C++ backtrace.
#[test]
fn probed_input_defects_are_refused_naming_the_field() {
    let dir = tmp("probed-input");
    let out = dir.join("x.safetensors");
    let o = doublewin(&["train", "--dataset", "digits", "--epochs", "1", "--lr", "1e39", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() != Some(101) && !o.status.success() && err.contains("lr") && !err.contains("panicked"), "{}", text(&o));
    let good: Value = serde_json::from_slice(&doublewin(&["study", "show", "--profile", "tiny"]).stdout).unwrap();
    let path = dir.join("study.json");
    let plan = |text: String| {
        std::fs::write(&path, text).unwrap();
        let o = doublewin(&["study", "plan", "--config", path.to_str().unwrap(), "--store", dir.join("store").to_str().unwrap()]);
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let mut bad = good.clone();
    bad["arch"] = serde_json::json!({"ConvNet": {"widths": [-4]}});
    let (ok, err) = plan(bad.to_string());
    assert!(!ok && err.contains("widths") && !err.contains("frame"), "{err}");
    let mut bad = good.clone();
    bad["arch"] = serde_json::json!({"ConvNet": {"widths": [8], "depth": 3}});
    let (ok, err) = plan(bad.to_string());
    assert!(!ok && err.contains("depth"), "an unknown field inside arch is refused: {err}");
    let (ok, err) = plan(format!("{good} trailing"));
    assert!(!ok && err.contains("after the study"), "{err}");
    for (field, value) in [("kinds", serde_json::json!(["one-shot", "one-shot"])), ("rounds", serde_json::json!([1, 1]))] {
        let mut bad = good.clone();
        bad["controls"][field] = value;
        let (ok, err) = plan(bad.to_string());
        assert!(!ok && err.contains(&format!("controls.{field}")) && err.contains("repeat"), "{field}: {err}");
    }
    let mut bad = good.clone();
    bad["landscapes"]["fractions"] = serde_json::json!([1.0, 1.0]);
    let (ok, err) = plan(bad.to_string());
    assert!(!ok && err.contains("landscapes.fractions"), "{err}");
    // (11) An empty --stability-seeds turns the check off, as its help says.
    let o = doublewin(&["study", "plan", "--profile", "tiny", "--stability-seeds", "", "--store", dir.join("store").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // (10) Slurm values are checked before a line is written.
    let submit = |extra: &[&str], sub: &str| {
        let d = dir.join(sub);
        let (ds, store) = (d.to_str().unwrap().to_string(), dir.join("slurm-store").to_str().unwrap().to_string());
        let mut args = vec!["study", "submit", "--slurm", "--profile", "tiny", "--store", &store, "--dir", &ds];
        args.extend_from_slice(extra);
        let o = doublewin(&args);
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned(), d)
    };
    let (ok, err, d) = submit(&["--partition", "batch\n#SBATCH --uid=0"], "slurm-a");
    assert!(!ok && err.contains("--partition") && !d.join("worker.sbatch").exists(), "{err}");
    let (ok, err, _) = submit(&["--time", "307445734561825861"], "slurm-b");
    assert!(!ok && err.contains("--time"), "{err}");
    let (ok, err, _) = submit(&[], "slurm c%j");
    assert!(!ok && err.contains("--dir"), "{err}");
}

/// (13) Workers die with their parent, even a parent killed by SIGKILL; a worker killed while
/// the others finish every step leaves a complete study and exit status 0.
#[test]
fn workers_die_with_their_parent_and_a_lost_worker_is_not_a_failed_study() {
    let dir = tmp("probed-workers");
    let study = micro_study(&dir);
    let store = dir.join("store");
    let mut parent = Command::new(BIN)
        .args(["--threads", "1", "study", "run", "--workers", "2", "--config"])
        .arg(&study)
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let children = |pid: u32| -> Vec<i32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let t = Instant::now();
    let workers = loop {
        let w = children(parent.id());
        if w.len() == 2 {
            break w;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the workers never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    signal(parent.id() as i32, libc::SIGKILL);
    let _ = parent.wait();
    let alive = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    let t = Instant::now();
    while workers.iter().any(|&w| alive(w)) {
        assert!(t.elapsed() < Duration::from_secs(120), "workers {workers:?} outlived their parent by two minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One worker killed at once: the other computes every step, and the run succeeds.
    let mut parent = Command::new(BIN)
        .args(["--threads", "1", "study", "run", "--workers", "2", "--config"])
        .arg(&study)
        .arg("--store")
        .arg(dir.join("store-2"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let victim = loop {
        if let Some(&w) = children(parent.id()).first() {
            break w;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no worker started");
        std::thread::sleep(Duration::from_millis(5));
    };
    signal(victim, libc::SIGKILL);
    let status = wait_at_most(&mut parent, Duration::from_secs(300)).expect("the run ends");
    let mut err = String::new();
    use std::io::Read;
    parent.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "every step done, yet the run failed: {err}");
    let o = doublewin(&["study", "plan", "--config", study.to_str().unwrap(), "--store", dir.join("store-2").to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("to do"), "{}", text(&o));
}

/// A store handed out as an archive (issue 29): exported, imported into an empty store, the
/// report is the same byte for byte; a truncated archive is refused naming its entry and leaves
/// nothing behind; an import racing a run of the same study on the same store loses nothing.
#[test]
fn a_store_handed_out_as_an_archive_gives_the_same_report() {
    let dir = tmp("archive");
    let study = micro_study(&dir);
    let s = study.to_str().unwrap().to_string();
    let reference = dir.join("reference");
    let o = study_run(&study, &reference, 1);
    assert!(o.status.success(), "{}", text(&o));
    let archive = dir.join("store.tar.gz");
    let a = archive.to_str().unwrap().to_string();
    let o = doublewin(&["store", "export", "--config", &s, "--store", reference.to_str().unwrap(), &a]);
    assert!(o.status.success(), "{}", text(&o));
    let imported = dir.join("imported");
    let st = imported.to_str().unwrap().to_string();
    for again in [false, true] {
        let o = doublewin(&["--json", "store", "import", "--store", &st, &a]);
        assert!(o.status.success(), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["added"].as_u64().unwrap() == 0, again, "importing twice adds nothing: {v}");
    }
    let report = |store: &Path, out: &str| {
        let out = dir.join(out);
        let o = doublewin(&[
            "study",
            "report",
            "--require-done",
            "--config",
            &s,
            "--store",
            store.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::read(out.join("report.md")).unwrap()
    };
    assert!(report(&reference, "report-a") == report(&imported, "report-b"), "the imported store's report differs");
    assert!(differences(&snapshot(&reference), &snapshot(&imported)).is_empty());
    // Truncated: refused, naming an entry, and nothing becomes visible.
    let bytes = std::fs::read(&archive).unwrap();
    let truncated = dir.join("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let empty = dir.join("empty");
    let o = doublewin(&["store", "import", "--store", empty.to_str().unwrap(), truncated.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("entry"), "{}", text(&o));
    let left: Vec<_> = std::fs::read_dir(&empty).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("store.json")], "a refused import leaves nothing but the store's marker");
    // An import racing a run of the same study: both finish, every step done once and intact.
    let raced = dir.join("raced");
    let mut run = spawn_run(&study, &raced, 2);
    let o = doublewin(&["store", "import", "--store", raced.to_str().unwrap(), &a]);
    assert!(o.status.success(), "{}", text(&o));
    let status = wait_at_most(&mut run, Duration::from_secs(300)).expect("the run ends");
    assert!(status.success(), "the run beside an import failed: {status}");
    assert!(differences(&snapshot(&reference), &snapshot(&raced)).is_empty(), "an import racing a run lost or changed a step");
}
