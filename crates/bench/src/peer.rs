//! The PyTorch peer as a process (`crates/bench/peer.py --serve`) that runs one workload at a
//! time on request, so that each of our timed runs is paired with one of the peer's taken seconds
//! apart: on a shared machine whose speed drifts by a third between minutes, the ratio of two
//! back-to-back runs is a measurement where the ratio of two blocks of runs minutes apart is not.

use doublewin::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// What the peer is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PeerWorkload {
    pub id: String,
    pub kind: String,
    pub model: String,
    pub batch: i64,
    pub steps: usize,
    pub eps: f64,
    pub step: f64,
    pub attack_steps: usize,
    pub lr: f64,
    pub n: i64,
    pub fraction: f64,
    /// Models trained side by side (the seeds workloads; 0 elsewhere).
    pub seeds: usize,
}

/// The peer's settings for every workload (written as JSON next to the exchange files).
#[derive(Debug, Clone, Serialize)]
struct PeerConfig<'a> {
    threads: usize,
    seed: u64,
    dir: &'a Path,
}

/// The versions the peer reports when it starts.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PeerVersions {
    pub torch: String,
    pub torchvision: String,
    pub python: String,
}

/// What the peer computed in its last run of a workload (for the equal-results check).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PeerOutcome {
    pub outcome: String,
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

/// A running peer process.
pub(crate) struct Peer {
    child: Child,
    /// `None` once closed (which ends the peer's loop).
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub versions: PeerVersions,
    /// The workload set up last (named in errors).
    current: String,
}

impl Peer {
    /// Starts `python peer.py --serve` with the exchange folder `dir`, `threads` intra-op
    /// threads and `seed`.
    pub fn start(python: &Path, dir: &Path, threads: usize, seed: u64) -> Result<Peer> {
        let script = peer_script();
        if !script.exists() {
            return Err(Error::not_found(format!("the peer script {}", script.display()), "run the benchmark from a doublewin checkout"));
        }
        let config = dir.join("peer-config.json");
        doublewin::fsio::write_json(&config, &PeerConfig { threads, seed, dir })?;
        let mut child =
            Command::new(python).arg(&script).arg("--serve").arg(&config).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().map_err(
                |e| {
                    Error::invalid(
                        format!("cannot start the peer with {} ({e})", python.display()),
                        "set DOUBLEWIN_PYTHON to a python with torch, or pass --no-peer",
                    )
                },
            )?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::invalid("the peer has no stdin / stdout pipe", "report this as a bug"));
        };
        let mut peer =
            Peer { child, stdin: Some(stdin), stdout: BufReader::new(stdout), versions: PeerVersions::default(), current: "start".into() };
        peer.versions = serde_json::from_value(peer.reply()?).map_err(|e| peer.failed(&format!("its greeting does not read ({e})")))?;
        Ok(peer)
    }

    fn failed(&self, what: &str) -> Error {
        Error::invalid(
            format!("the PyTorch peer ({}, workload {}): {what}", peer_script().display(), self.current),
            "see its output above; it needs torch, torchvision, torchattacks and safetensors (the project venv has them), or pass --no-peer",
        )
    }

    /// The next reply line, as JSON (an `error` field is the peer's exception).
    fn reply(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).map_err(|e| self.failed(&format!("cannot read its reply ({e})")))?;
        if n == 0 {
            return Err(self.failed("it exited"));
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| self.failed(&format!("reply '{}' ({e})", line.trim())))?;
        match v.get("error").and_then(|e| e.as_str()) {
            Some(e) => Err(self.failed(e)),
            None => Ok(v),
        }
    }

    fn request(&mut self, req: serde_json::Value) -> Result<serde_json::Value> {
        let sent = match self.stdin.as_mut() {
            Some(pipe) => writeln!(pipe, "{req}").and_then(|_| pipe.flush()),
            None => Err(std::io::Error::other("the pipe is closed")),
        };
        sent.map_err(|e| self.failed(&format!("cannot send a request ({e})")))?;
        self.reply()
    }

    /// Prepares `w` (loads its model, data and masks from the exchange files).
    pub fn setup(&mut self, w: &PeerWorkload) -> Result<()> {
        self.current = w.id.clone();
        self.request(serde_json::json!({ "op": "setup", "workload": w })).map(|_| ())
    }

    /// Seconds of one run of the workload set up last.
    pub fn run(&mut self) -> Result<f64> {
        let v = self.request(serde_json::json!({ "op": "run" }))?;
        v.get("seconds").and_then(|s| s.as_f64()).ok_or_else(|| self.failed(&format!("a run reply without seconds: {v}")))
    }

    /// What the last run computed.
    pub fn finish(&mut self) -> Result<PeerOutcome> {
        let v = self.request(serde_json::json!({ "op": "finish" }))?;
        serde_json::from_value(v).map_err(|e| self.failed(&format!("its outcome does not read ({e})")))
    }
}

impl Drop for Peer {
    /// Closing stdin ends the peer's loop; it is waited for, so no process outlives the bench.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}

/// The Python interpreter for the peer: the config's, $DOUBLEWIN_PYTHON, $VIRTUAL_ENV/bin/python,
/// the project's .venv, python3.
pub(crate) fn python(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("DOUBLEWIN_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        let p = PathBuf::from(v).join("bin").join("python");
        if p.exists() {
            return p;
        }
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// The workspace root (the benchmark runs from a checkout: it needs the peer script, the
/// notebook scripts and the project venv).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The PyTorch peer, `crates/bench/peer.py`.
fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer.py")
}
