//! The experiment store: every finished step of a study, on disk, named by the hash of its
//! description. A step's description (a serde value, see `study::desc`) nests the descriptions
//! of everything upstream of it, so its key ([`Store::key`]) changes whenever anything that
//! produced it changes, and nothing else ever names a step: no key is assembled by hand.
//!
//! Layout: `root/store.json` (the format), `root/<kind>/<key>/` with `describe.json` (the
//! description itself), the step's files, and `result.json`, written last and atomically: the
//! step's value plus a manifest of its files (size and SHA-256). A step is done only when its
//! `result.json` parses and every file it lists exists and verifies; a broken step is computed
//! again. Steps run under an exclusive per-step file lock (`<kind>/<key>.lock`, released by the
//! OS when a process dies), so concurrent processes never compute a step twice, and a process
//! killed at any moment leaves at worst a half-filled step folder that is not done.

mod archive;

pub use archive::{ExportSummary, ImportSummary};

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The store layout this version writes and reads.
pub const FORMAT: &str = "doublewin-store/2";
const STEP_FORMAT: &str = "doublewin-step/2";
const MARKER: &str = "store.json";
const RESULT: &str = "result.json";
const DESCRIBE: &str = "describe.json";

/// The revision of the computation behind every step: raised when the same description would
/// give other numbers (2: the ConvNet's convolutions run channels-last, a different
/// floating-point order; 3: the ResNets back to NCHW).
/// It is part of every key, so results of an older revision are never handed back; they stay
/// in the store as unmatched steps until `study clean` removes them.
pub const NUMERICS: u32 = 3;

/// A 16-hex-digit name for a step: SHA-256 of the canonical JSON of `{kind, numerics,
/// description}` (serde_json sorts object keys, so the text is canonical). Serialisation errors
/// propagate.
pub fn key_of<D: Serialize + ?Sized>(kind: &str, description: &D) -> Result<String> {
    let value = serde_json::to_value(description)
        .map_err(|e| Error::invalid(format!("cannot describe a {kind} step: {e}"), "report this as a bug"))?;
    let text = serde_json::json!({ "kind": kind, "numerics": NUMERICS, "description": value }).to_string();
    Ok(crate::fsio::sha256(text.as_bytes())[..16].to_string())
}

/// What the store needs of a step's description: its kind (the folder it lives in), a label
/// for listings and progress lines, and its serialisation (whose hash is its key).
pub trait StepDescription: Serialize {
    fn kind(&self) -> &'static str;
    fn label(&self) -> String;
    fn key(&self) -> Result<String> {
        key_of(self.kind(), self)
    }
    /// The upstream files it reads (none by default): recorded by hash when it runs, so a
    /// changed upstream makes it stale.
    fn inputs(&self) -> Result<Vec<Input>> {
        Ok(Vec::new())
    }
}

/// A step's place in a store ([`Store::step`]): its folder, and whether it is done.
#[derive(Debug, Clone)]
pub struct StepFolder<'a> {
    store: &'a Store,
    kind: &'static str,
    key: String,
    dir: PathBuf,
}

impl StepFolder<'_> {
    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// A file of the step, by its path in the step's folder.
    pub fn file(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.join(name)
    }
    /// [`Store::status`] of the step.
    pub fn status(&self, check: Check) -> Status {
        self.store.status(self.kind, &self.key, check)
    }
    pub fn is_done(&self) -> bool {
        self.status(Check::Sizes) == Status::Done
    }
}

/// A file of a finished step, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the step folder, with `/` separators.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record<T> {
    format: String,
    kind: String,
    key: String,
    label: String,
    files: Vec<FileRecord>,
    value: T,
    /// SHA-256 of the canonical JSON of everything above ([`record_checksum`]): a changed digit
    /// in a stored accuracy is caught like a damaged weight file. A record without one is not
    /// trusted (it is computed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
    /// Wall seconds the step took to compute (records written before it have none): what
    /// estimates of a study's wall time and a ladder rung's cost are made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
    /// The upstream files the step read, with their SHA-256 when it read them: the step is
    /// stale (computed again) once any of them changes (records written before it have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<InputRecord>,
    /// libtorch's intra-op threads when it ran: the floating-point order, so the bytes, depend
    /// on it (what a step read is pinned by `inputs`; this says why two stores' bytes differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    /// CPU seconds this process spent while it computed the step, all its threads together
    /// (records written before it have none): a rung's cost in core-minutes, which neither other
    /// work on the machine nor a stopped (SIGSTOP) run inflates as it does the wall time. The
    /// CLI and its workers compute one step at a time, so the process's time is the step's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_seconds: Option<f64>,
}

/// Files of an upstream step that a step reads: every file of step `kind`/`key` whose path
/// starts with `prefix` (a file name, or a folder followed by `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub kind: &'static str,
    pub key: String,
    pub prefix: String,
}

impl Input {
    /// The files of `upstream`'s step that start with `prefix`.
    pub fn of<D: StepDescription + ?Sized>(upstream: &D, prefix: impl Into<String>) -> Result<Input> {
        Ok(Input { kind: upstream.kind(), key: upstream.key()?, prefix: prefix.into() })
    }
}

/// An upstream file a step read: its path in the store (`kind/key/file`) and its SHA-256 then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    pub path: String,
    pub sha256: String,
}

/// The checksum of a record's fields (serde_json sorts object keys: the text is canonical, and
/// floats print in their shortest round-tripping form, so the value read back hashes the same).
/// The compute time is covered when the record has one (older records hash as before).
fn record_checksum<T: Serialize>(r: &Record<T>) -> String {
    let mut v = serde_json::json!({"format": r.format, "kind": r.kind, "key": r.key, "label": r.label, "files": r.files, "value": r.value});
    if let Some(s) = r.seconds {
        v["seconds"] = serde_json::json!(s);
    }
    if !r.inputs.is_empty() {
        v["inputs"] = serde_json::json!(r.inputs);
    }
    if let Some(t) = r.threads {
        v["threads"] = serde_json::json!(t);
    }
    if let Some(c) = r.cpu_seconds {
        v["cpu_seconds"] = serde_json::json!(c);
    }
    crate::fsio::sha256(v.to_string().as_bytes())
}

/// User plus system CPU seconds of this process so far, all threads (`getrusage`).
fn process_cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage writes one plain `rusage` struct that we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Some(secs(u.ru_utime) + secs(u.ru_stime))
}

#[derive(Serialize, Deserialize)]
struct Marker {
    format: String,
}

/// Where a step stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Never finished.
    Missing,
    /// Finished and intact.
    Done,
    /// Has a result whose files are missing or damaged (the reason says which): it is computed
    /// again when needed.
    Broken(String),
    /// A file of the step exists but cannot be read (permissions, an I/O error): nothing is
    /// known about the step, so nothing of it is used or deleted; the reason names the path.
    Unreadable(String),
}

/// Whether `e` is a failure to read an existing file (permissions, I/O), as opposed to a file
/// that is missing or whose content is wrong.
fn unreadable(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() != std::io::ErrorKind::NotFound)
}

/// How carefully [`Store::status`] checks a finished step's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Existence and size (fast; for listings and plans).
    Sizes,
    /// Existence, size and SHA-256 (before a step's value or files are used).
    Hashes,
}

/// One finished step in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: String,
    pub key: String,
    pub label: String,
    /// The step's description (`describe.json`).
    pub describe: serde_json::Value,
    pub bytes: u64,
}

/// The outcome of [`Store::try_run`].
#[derive(Debug)]
pub enum Attempt<T> {
    /// The step was already in the store.
    Stored(T),
    /// This call computed it.
    Computed(T),
    /// Another process holds the step's lock (it is computing it).
    Busy,
}

/// A content-addressed store of finished steps (see the module comment).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Why the store cannot be written (`None`: it can), probed the first time a step is about to
    /// be computed: commands that only read never write a probe file.
    read_only: std::sync::OnceLock<Option<String>>,
}

impl Store {
    /// Opens the store at `root`, creating it when the folder is missing or empty. A folder that
    /// holds files but no `store.json` (a store of an older doublewin, whose keys did not name
    /// every upstream setting, or not a store at all) is refused with the fix.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        check_link(&root)?;
        std::fs::create_dir_all(&root).map_err(|e| creation_error(&root, Error::io(&root, e)))?;
        let marker = root.join(MARKER);
        if !marker.exists() {
            // Files a concurrent creator may be writing (its marker's temp file) are not a
            // foreign store; re-check the marker after listing, it may have landed meanwhile.
            let others: Vec<String> = std::fs::read_dir(&root)
                .map_err(|e| Error::io(&root, e))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != MARKER && !n.contains(".tmp-"))
                .collect();
            let (current, older) = step_formats(&root);
            if !others.is_empty() && !marker.exists() && current > 0 && older == 0 {
                // The marker alone was lost (deleted, or a copy that left it out): every step
                // says it is of this format, and each is verified by its own checksums as ever.
                crate::progress::warn(&format!(
                    "{} had no {MARKER}; its {current} step(s) are of this format ({STEP_FORMAT}): {MARKER} written again",
                    root.display()
                ));
                crate::fsio::write_json(&marker, &Marker { format: FORMAT.into() }).map_err(|e| creation_error(&root, e))?;
            }
            if !others.is_empty() && !marker.exists() {
                return Err(Error::invalid(
                    format!(
                        "{} holds {} but no {MARKER}: it is a store written by an older doublewin (its keys did not name every \
                         upstream setting, so it could hand back results of other settings) or not a store at all",
                        root.display(),
                        others.join(", ")
                    ),
                    format!(
                        "point DOUBLEWIN_STORE / --store at a new folder; to reclaim the space of an old store, \
                         `doublewin study clean --old-format --store {}` deletes every step in it",
                        root.display()
                    ),
                ));
            }
            if !marker.exists() {
                // Every concurrent creator writes the same text and renames it into place: whoever
                // lands last, the marker is whole and right.
                crate::fsio::write_json(&marker, &Marker { format: FORMAT.into() }).map_err(|e| creation_error(&root, e))?;
            }
        }
        let m: Marker = crate::fsio::read_json(&marker)?;
        if m.format != FORMAT {
            return Err(Error::invalid(
                format!("{} is a store of format '{}', this doublewin reads '{FORMAT}'", root.display(), m.format),
                "use a doublewin of that version, or start a new store (DOUBLEWIN_STORE=another folder)",
            ));
        }
        Ok(Store { root, read_only: std::sync::OnceLock::new() })
    }

    /// Opens an existing store folder without creating it: for commands that only read
    /// (`study list`). A missing folder is an error that says so.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        check_link(&root)?;
        if !root.is_dir() {
            return Err(Error::not_found(
                format!("a doublewin store at {}", root.display()),
                "run a study first (doublewin study run), or pass the store's folder with --store",
            ));
        }
        Store::open(root)
    }

    /// Why this store cannot be written (`None`: it can). A read-only store still serves every
    /// finished step; computing a missing one is refused with this reason.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.get_or_init(|| read_only_reason(&self.root)).as_deref()
    }

    /// An error unless the store can be written.
    pub fn check_writable(&self) -> Result<()> {
        match self.read_only() {
            None => Ok(()),
            Some(why) => Err(Error::invalid(
                format!("the store {} cannot be written ({why}) and the study has steps left to compute", self.root.display()),
                "make the folder writable (chmod u+w, or remount it read-write), or copy it to a writable place and pass --store",
            )),
        }
    }

    /// `$DOUBLEWIN_STORE`, else `store` in [`crate::runtime::cache_dir`]. The one definition:
    /// scripts ask the binary (`doublewin --json info`, field `store`).
    pub fn default_root() -> PathBuf {
        match std::env::var_os("DOUBLEWIN_STORE").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => crate::runtime::cache_dir().join("store"),
        }
    }

    /// [`Store::open`] of [`Store::default_root`].
    pub fn open_default() -> Result<Store> {
        Store::open(Store::default_root())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// [`key_of`].
    pub fn key<D: Serialize>(kind: &str, description: &D) -> Result<String> {
        key_of(kind, description)
    }

    /// The folder of a step.
    pub fn dir(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(key)
    }

    /// The step a description names: its folder and status, with kind and key taken from the
    /// description itself (so they cannot be paired wrongly).
    pub fn step<D: StepDescription>(&self, description: &D) -> Result<StepFolder<'_>> {
        let key = description.key()?;
        Ok(StepFolder { store: self, kind: description.kind(), dir: self.dir(description.kind(), &key), key })
    }

    fn read_record<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Result<Record<T>> {
        let path = self.dir(kind, key).join(RESULT);
        let raw: Record<serde_json::Value> = crate::fsio::read_json(&path)?;
        match &raw.checksum {
            Some(sum) if *sum == record_checksum(&raw) => {}
            Some(_) => return Err(Error::bad_file_fix(&path, "does not match its checksum (damaged)", "it is computed again when needed")),
            // Every record of this format is written with its checksum: one without was edited.
            None => return Err(Error::bad_file_fix(&path, "has no checksum (edited by hand?)", "it is computed again when needed")),
        }
        let value: T = serde_json::from_value(raw.value).map_err(|e| {
            Error::bad_file_fix(&path, format!("its value does not read as a {kind} result ({e})"), "it is computed again when needed")
        })?;
        let record = Record {
            format: raw.format,
            kind: raw.kind,
            key: raw.key,
            label: raw.label,
            files: raw.files,
            value,
            checksum: raw.checksum,
            seconds: raw.seconds,
            inputs: raw.inputs,
            threads: raw.threads,
            cpu_seconds: raw.cpu_seconds,
        };
        if record.format != STEP_FORMAT || record.kind != kind || record.key != key {
            return Err(Error::bad_file_fix(
                &path,
                format!(
                    "a '{}' record of {}/{} where {kind}/{key} in format {STEP_FORMAT} belongs",
                    record.format, record.kind, record.key
                ),
                "run `doublewin study clean` on this store",
            ));
        }
        Ok(record)
    }

    /// Whether a step is done, missing, or broken (and why).
    pub fn status(&self, kind: &str, key: &str, check: Check) -> Status {
        let dir = self.dir(kind, key);
        match std::fs::metadata(dir.join(RESULT)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Status::Missing,
            Err(e) => return Status::Unreadable(Error::io(dir.join(RESULT), e).to_string()),
            Ok(_) => {}
        }
        let record = match self.read_record::<serde_json::Value>(kind, key) {
            Ok(r) => r,
            Err(e) if unreadable(&e) => return Status::Unreadable(e.to_string()),
            Err(e) => return Status::Broken(e.to_string()),
        };
        // The description is the step's identity: its hash must still be the folder's name.
        match crate::fsio::read_json::<serde_json::Value>(&dir.join(DESCRIBE)) {
            Ok(d) if key_of(kind, &d).ok().as_deref() == Some(key) => {}
            Ok(_) => return Status::Broken(format!("{DESCRIBE} does not describe step {key} (edited?)")),
            Err(e) if unreadable(&e) => return Status::Unreadable(e.to_string()),
            Err(e) => return Status::Broken(e.to_string()),
        }
        for f in &record.files {
            let path = dir.join(&f.path);
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Status::Broken(format!("{} is missing", f.path)),
                Err(e) => return Status::Unreadable(Error::io(&path, e).to_string()),
                Ok(m) if m.len() != f.bytes => return Status::Broken(format!("{} has {} bytes, not {}", f.path, m.len(), f.bytes)),
                _ => {}
            }
            if check == Check::Hashes {
                match crate::fsio::sha256_file(&path) {
                    Ok(h) if h == f.sha256 => {}
                    Ok(_) => return Status::Broken(format!("{} does not match its SHA-256", f.path)),
                    Err(e) if unreadable(&e) => return Status::Unreadable(e.to_string()),
                    Err(e) => return Status::Broken(e.to_string()),
                }
            }
        }
        for input in &record.inputs {
            match self.input_changed(input) {
                Ok(None) => {}
                Ok(Some(why)) => return Status::Broken(format!("stale: {why}")),
                Err(e) => return Status::Unreadable(e.to_string()),
            }
        }
        Status::Done
    }

    /// Why an upstream file a step read is no longer what it read (`None`: it is); an error only
    /// where the upstream cannot be read at all.
    fn input_changed(&self, input: &InputRecord) -> Result<Option<String>> {
        let mut parts = input.path.splitn(3, '/');
        let (Some(kind), Some(key), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(Some(format!("input {} is not a store path", input.path)));
        };
        let upstream = match self.read_record::<serde_json::Value>(kind, key) {
            Ok(r) => r,
            Err(e) if unreadable(&e) => return Err(e),
            Err(_) => return Ok(Some(format!("its input {kind} step {key} is not done (recomputed or removed)"))),
        };
        Ok(match upstream.files.iter().find(|f| f.path == file) {
            Some(f) if f.sha256 == input.sha256 => None,
            Some(_) => Some(format!("{} changed after this step read it", input.path)),
            None => Some(format!("{} is gone from its step", input.path)),
        })
    }

    /// The files `inputs` name, with their SHA-256 as their steps recorded them; every
    /// upstream step must be done.
    fn input_records(&self, inputs: &[Input]) -> Result<Vec<InputRecord>> {
        let mut out = Vec::new();
        let threads = tch::get_num_threads().max(1) as usize;
        for i in inputs {
            let record = self.read_record::<serde_json::Value>(i.kind, &i.key)?;
            // Once per upstream step and process: every transfer of a ticket reads the same IMP run.
            static WARNED: std::sync::Mutex<std::collections::BTreeSet<String>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
            let first = || WARNED.lock().unwrap_or_else(|p| p.into_inner()).insert(format!("{}/{}", i.kind, i.key));
            if let Some(t) = record.threads.filter(|&t| t != threads && first()) {
                crate::progress::warn(&format!(
                    "this step runs at {threads} thread(s) and reads {} step {} computed at {t}: the bytes depend on the thread \
                     count (the same seed gives the same numbers only at the same count)",
                    i.kind, i.key
                ));
            }
            let before = out.len();
            out.extend(
                record
                    .files
                    .iter()
                    .filter(|f| f.path.starts_with(&i.prefix))
                    .map(|f| InputRecord { path: format!("{}/{}/{}", i.kind, i.key, f.path), sha256: f.sha256.clone() }),
            );
            if out.len() == before {
                return Err(Error::invalid(
                    format!("{} step {} has no file {}* that a step downstream reads", i.kind, i.key, i.prefix),
                    "report this as a bug",
                ));
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup();
        Ok(out)
    }

    /// The error for a step whose files cannot be read: it names the path and the fix, and
    /// nothing of the step is deleted.
    fn unreadable_error(kind: &str, key: &str, why: &str) -> Error {
        Error::invalid(
            format!("{kind} step {key} cannot be read ({why})"),
            "give this user read access to the store's files (or use a store of your own, --store); nothing was deleted",
        )
    }

    /// The wall seconds a finished step took to compute (`None`: not done, or recorded before
    /// compute times were).
    pub fn seconds(&self, kind: &str, key: &str) -> Option<f64> {
        self.finished_record(kind, key)?.seconds
    }

    /// The core-seconds a finished step took: its CPU seconds where recorded, else its wall seconds
    /// (what a 1-thread worker on an otherwise idle machine spends alike); `None` as [`Store::seconds`].
    pub fn core_seconds(&self, kind: &str, key: &str) -> Option<f64> {
        let r = self.finished_record(kind, key)?;
        r.cpu_seconds.or(r.seconds)
    }

    /// The seconds a finished step would take alone on a worker: its wall seconds, or its CPU
    /// seconds where those are fewer (other work shared the cores while it ran, so its wall time
    /// says more about the machine than about the step); `None` as [`Store::seconds`]. A step
    /// that ran on several threads used more CPU than wall time and keeps its wall time.
    pub fn worker_seconds(&self, kind: &str, key: &str) -> Option<f64> {
        let r = self.finished_record(kind, key)?;
        match (r.seconds, r.cpu_seconds) {
            (Some(wall), Some(cpu)) => Some(wall.min(cpu)),
            (wall, _) => wall,
        }
    }

    /// The record of a finished step (`None` when it is not done or cannot be read).
    fn finished_record(&self, kind: &str, key: &str) -> Option<Record<serde_json::Value>> {
        match self.status(kind, key, Check::Sizes) {
            Status::Done => self.read_record(kind, key).ok(),
            _ => None,
        }
    }

    /// The value of a finished, intact step (files verified by hash), or `None`.
    pub fn load<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Result<Option<T>> {
        match self.status(kind, key, Check::Hashes) {
            Status::Done => Ok(Some(self.read_record::<T>(kind, key)?.value)),
            Status::Unreadable(why) => Err(Self::unreadable_error(kind, key, &why)),
            _ => Ok(None),
        }
    }

    /// The value of the step described by `description`: from the store when done (its files
    /// verified), else computed by `run` in the step's folder under the step's lock (waiting for
    /// another process that holds it) and stored. The flag says whether this call computed it.
    pub fn get_or_run<D: StepDescription, T: Serialize + DeserializeOwned>(
        &self,
        description: &D,
        run: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<(T, bool)> {
        match self.run(description, true, run)? {
            Attempt::Stored(v) => Ok((v, false)),
            Attempt::Computed(v) => Ok((v, true)),
            Attempt::Busy => Err(Error::invalid("a blocking lock returned busy", "report this as a bug")),
        }
    }

    /// Like [`Store::get_or_run`], but never waits: when another process holds the step's lock,
    /// returns [`Attempt::Busy`] at once.
    pub fn try_run<D: StepDescription, T: Serialize + DeserializeOwned>(
        &self,
        description: &D,
        run: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<Attempt<T>> {
        self.run(description, false, run)
    }

    /// [`Store::get_or_run`] when `wait`, else [`Store::try_run`].
    pub fn run<D: StepDescription, T: Serialize + DeserializeOwned>(
        &self,
        description: &D,
        wait: bool,
        run: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<Attempt<T>> {
        let (kind, key) = (description.kind(), description.key()?);
        if let Some(v) = self.load(kind, &key)? {
            return Ok(Attempt::Stored(v));
        }
        self.check_writable()?;
        let dir = self.dir(kind, &key);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let Some(lock) = self.lock_step(kind, &key, wait)? else { return Ok(Attempt::Busy) };
        // Another process may have finished the step while we waited for the lock.
        match self.status(kind, &key, Check::Hashes) {
            Status::Done => return Ok(Attempt::Stored(self.read_record::<T>(kind, &key)?.value)),
            Status::Broken(why) => {
                // Nothing of a broken step is trusted: not its result, not the partial files a
                // resumable step would otherwise continue from (a damaged IMP round, say).
                crate::progress::warn(&format!("{kind} step {key} is broken ({why}): computing it again from nothing"));
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            Status::Unreadable(why) => return Err(Self::unreadable_error(kind, &key, &why)),
            Status::Missing => {}
        }
        crate::fsio::write_json(&dir.join(DESCRIBE), description)?;
        // What the step reads, pinned by hash before it reads it.
        let inputs = self.input_records(&description.inputs()?)?;
        let (start, cpu_start) = (std::time::Instant::now(), process_cpu_seconds());
        let value = run(&dir)?;
        let seconds = Some(start.elapsed().as_secs_f64());
        let cpu_seconds = process_cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);
        let files = manifest(&dir)?;
        let value = serde_json::to_value(&value)
            .map_err(|e| Error::invalid(format!("cannot store the {kind} result: {e}"), "report this as a bug"))?;
        let label = description.label();
        let threads = Some(tch::get_num_threads().max(1) as usize);
        let mut record = Record {
            format: STEP_FORMAT.into(),
            kind: kind.into(),
            key: key.clone(),
            label,
            files,
            value,
            checksum: None,
            seconds,
            inputs,
            threads,
            cpu_seconds,
        };
        record.checksum = Some(record_checksum(&record));
        crate::fsio::write_json(&dir.join(RESULT), &record)?;
        drop(lock);
        // Read back what was written: the caller gets exactly what later runs will load.
        Ok(Attempt::Computed(self.read_record::<T>(kind, &key)?.value))
    }

    /// Takes the exclusive lock of step `kind`/`key` (`<kind>/<key>.lock`, released when the file
    /// is dropped or the process dies): waiting for it when `wait`, else `None` when another
    /// process holds it.
    fn lock_step(&self, kind: &str, key: &str, wait: bool) -> Result<Option<std::fs::File>> {
        let lock_path = self.root.join(kind).join(format!("{key}.lock"));
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        if wait {
            lock.lock().map_err(|e| Error::io(&lock_path, e))?;
            return Ok(Some(lock));
        }
        match lock.try_lock() {
            Ok(()) => Ok(Some(lock)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock_path, e)),
        }
    }

    /// Every finished step (sizes checked, not hashes).
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for kind in subdirs(&self.root)? {
            let kind_name = file_name(&kind);
            for step in subdirs(&kind)? {
                let key = file_name(&step);
                match self.status(&kind_name, &key, Check::Sizes) {
                    Status::Done => {}
                    Status::Unreadable(why) => return Err(Self::unreadable_error(&kind_name, &key, &why)),
                    Status::Missing | Status::Broken(_) => continue,
                }
                let describe = crate::fsio::read_json(&step.join(DESCRIBE))?;
                let record = self.read_record::<serde_json::Value>(&kind_name, &key)?;
                let bytes = record.files.iter().map(|f| f.bytes).sum();
                out.push(Entry { kind: kind_name.clone(), key, label: record.label, describe, bytes });
            }
        }
        out.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
        Ok(out)
    }

    /// Removes every step of `kind` (or every step), each under its lock: a step another process
    /// is computing is left alone (and named in a warning), never deleted under it. The lock
    /// files stay (a process waiting on one must lock the same file a newcomer opens). Returns
    /// how many step folders went.
    pub fn clean(&self, kind: Option<&str>) -> Result<usize> {
        if let Some(why) = self.read_only() {
            return Err(Error::invalid(
                format!("cannot clean the store {} ({why})", self.root.display()),
                "make the folder writable (chmod u+w, or remount it read-write)",
            ));
        }
        let (mut n, mut busy) = (0, Vec::new());
        for k in subdirs(&self.root)? {
            if kind.is_some_and(|want| file_name(&k) != want) {
                continue;
            }
            for step in subdirs(&k)? {
                let Some(_lock) = self.lock_step(&file_name(&k), &file_name(&step), false)? else {
                    busy.push(format!("{}/{}", file_name(&k), file_name(&step)));
                    continue;
                };
                std::fs::remove_dir_all(&step).map_err(|e| Error::io(&step, e))?;
                n += 1;
            }
        }
        if !busy.is_empty() {
            crate::progress::warn(&format!(
                "left {} step(s) alone that a running process is computing: {} (clean again once it has finished)",
                busy.len(),
                busy.join(", ")
            ));
        }
        Ok(n)
    }

    /// Removes the steps of a store written by an older doublewin (folders `<kind>/<key>/` with a
    /// `result.json`, and their lock files), then marks the folder as a store of this format.
    /// Refuses a folder that is not such a store. Returns how many step folders went.
    pub fn remove_old_format(root: impl AsRef<Path>) -> Result<usize> {
        let root = root.as_ref();
        if root.join(MARKER).exists() {
            return Err(Error::invalid(format!("{} is a store of the current format", root.display()), "use `doublewin study clean`"));
        }
        let (current, _) = step_formats(root);
        if current > 0 {
            return Err(Error::invalid(
                format!("{} holds {current} step(s) of this doublewin's format ({STEP_FORMAT}): it is not an older store", root.display()),
                "open it with any study command: the missing store.json is written again from its steps",
            ));
        }
        let mut n = 0;
        for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))?.flatten() {
            let kind = entry.path();
            let steps = if kind.is_dir() { subdirs(&kind)? } else { Vec::new() };
            let is_kind = !steps.is_empty() && steps.iter().all(|s| s.join(RESULT).exists() || s.join(DESCRIBE).exists());
            if !is_kind {
                return Err(Error::invalid(
                    format!("{} holds {}, which is not a step folder of a doublewin store", root.display(), kind.display()),
                    "remove it by hand if it is yours to remove",
                ));
            }
        }
        for kind in subdirs(root)? {
            n += subdirs(&kind)?.len();
            std::fs::remove_dir_all(&kind).map_err(|e| Error::io(&kind, e))?;
        }
        crate::fsio::write_json(&root.join(MARKER), &Marker { format: FORMAT.into() })?;
        Ok(n)
    }
}

/// An error when `root` is a symbolic link that cannot be followed (dangling, or a loop).
fn check_link(root: &Path) -> Result<()> {
    if root.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        if let Err(e) = std::fs::metadata(root) {
            let target = std::fs::read_link(root).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(Error::invalid(
                format!("the store {} is a symbolic link to {target}, which cannot be followed ({e})", root.display()),
                "point the link at an existing folder, or pass --store / DOUBLEWIN_STORE a real folder",
            ));
        }
    }
    Ok(())
}

/// `e`, a failure to create the store at `root`, said as "the folder cannot be written" with the
/// fix when that is why.
fn creation_error(root: &Path, e: Error) -> Error {
    match read_only_reason(root) {
        Some(why) => Error::invalid(
            format!("cannot create the store {} ({why})", root.display()),
            "point DOUBLEWIN_STORE / --store at a folder you can write",
        ),
        None => e,
    }
}

/// Why `dir` (or, while it does not exist, its nearest existing ancestor) cannot be written,
/// found by creating and removing a probe file in it (`None`: it can). Permissions alone do not
/// tell: root ignores them, and a read-only mount does not show in them.
fn read_only_reason(dir: &Path) -> Option<String> {
    let target = dir.ancestors().find(|p| p.as_os_str().is_empty() || p.exists())?;
    let target = if target.as_os_str().is_empty() { Path::new(".") } else { target };
    let probe = target.join(format!(".write-probe.tmp-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(match e.raw_os_error() {
            Some(30) => format!("{} is on a read-only file system", target.display()),
            Some(13) => format!("permission denied in {}", target.display()),
            _ => format!("{}: {e}", target.display()),
        }),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// How many step records under `root` (`<kind>/<key>/result.json`) declare this version's step
/// format, and how many another one (unreadable records count as neither).
fn step_formats(root: &Path) -> (usize, usize) {
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    let (mut current, mut older) = (0, 0);
    for kind in subdirs(root).unwrap_or_default() {
        for step in subdirs(&kind).unwrap_or_default() {
            match crate::fsio::read_json::<Format>(&step.join(RESULT)) {
                Ok(f) if f.format == STEP_FORMAT => current += 1,
                Ok(_) => older += 1,
                Err(_) => {}
            }
        }
    }
    (current, older)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut v: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    v.sort();
    Ok(v)
}

/// Every file under a step folder except its description and result (and temporary files),
/// with size and SHA-256, in path order.
fn manifest(dir: &Path) -> Result<Vec<FileRecord>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<FileRecord>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out)?;
                continue;
            }
            let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if rel == RESULT || rel == DESCRIBE || rel.contains(".tmp-") {
                continue;
            }
            let bytes = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
            out.push(FileRecord { path: rel, bytes, sha256: crate::fsio::sha256_file(&path)? });
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_whole_description_and_kind() {
        #[derive(Serialize)]
        struct D {
            a: u32,
            inner: Vec<f64>,
        }
        let k = key_of("x", &D { a: 1, inner: vec![0.5] }).unwrap();
        assert_eq!(k.len(), 16);
        assert_eq!(k, key_of("x", &D { a: 1, inner: vec![0.5] }).unwrap());
        assert_ne!(k, key_of("y", &D { a: 1, inner: vec![0.5] }).unwrap());
        assert_ne!(k, key_of("x", &D { a: 1, inner: vec![0.25] }).unwrap());
        // A description that cannot be serialised is an error, never an empty key.
        let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1u8], 1u8)].into_iter().collect();
        assert!(key_of("x", &bad).is_err());
    }
}
