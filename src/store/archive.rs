//! A store to hand out: finished steps packed into one gzip'd tar ([`Store::export`]) and merged
//! into another store ([`Store::import`]). Import unpacks into a staging folder inside the store
//! (same file system, so a step becomes visible by one rename), verifies every step there the way
//! the store verifies its own (record checksum, description against key, every file's SHA-256,
//! inputs present), and only then moves each step in under its lock, never over a finished step.
//! A truncated or damaged archive is refused naming the entry, and nothing of it becomes visible.

use super::{file_name, subdirs, Check, Status, Store, DESCRIBE, RESULT};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// The archive's table of contents, its first entry.
const CONTENTS: &str = "doublewin-archive.json";
const ARCHIVE_FORMAT: &str = "doublewin-archive/1";

#[derive(Debug, Serialize, Deserialize)]
struct Contents {
    format: String,
    /// `kind/key` of every step, upstream steps first.
    steps: Vec<String>,
}

/// What [`Store::export`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportSummary {
    pub steps: usize,
    pub bytes: u64,
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Steps moved into the store.
    pub added: usize,
    /// Steps the store already had finished (left as they were).
    pub kept: usize,
}

impl Store {
    /// Writes the finished steps `steps` (kind, key; each verified by hash first) with their
    /// descriptions, records and files into a gzip'd tar at `archive`, written atomically.
    pub fn export(&self, steps: &[(&str, String)], archive: &Path) -> Result<ExportSummary> {
        for (kind, key) in steps {
            match self.status(kind, key, Check::Hashes) {
                Status::Done => {}
                other => {
                    return Err(Error::invalid(
                        format!("{kind} step {key} is not finished and intact ({other:?})"),
                        "run the study to the end first (`doublewin study run`), then export",
                    ))
                }
            }
        }
        let contents = Contents { format: ARCHIVE_FORMAT.into(), steps: steps.iter().map(|(kind, key)| format!("{kind}/{key}")).collect() };
        crate::fsio::write_atomic_with(archive, |tmp| {
            let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
            let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
            tar.mode(tar::HeaderMode::Deterministic);
            let json = serde_json::to_vec_pretty(&contents)
                .map_err(|e| Error::invalid(format!("cannot write the archive's contents: {e}"), "report this as a bug"))?;
            let mut header = tar::Header::new_gnu();
            header.set_size(json.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, CONTENTS, json.as_slice()).map_err(|e| Error::io(tmp, e))?;
            for (kind, key) in steps {
                let dir = self.dir(kind, key);
                tar.append_dir_all(format!("{kind}/{key}"), &dir).map_err(|e| Error::io(&dir, e))?;
            }
            let gz = tar.into_inner().map_err(|e| Error::io(tmp, e))?;
            gz.finish().map_err(|e| Error::io(tmp, e))?;
            Ok(())
        })?;
        let bytes = std::fs::metadata(archive).map_err(|e| Error::io(archive, e))?.len();
        Ok(ExportSummary { steps: steps.len(), bytes })
    }

    /// Merges the steps of an archive written by [`Store::export`] into this store: everything is
    /// unpacked and verified before any step becomes visible; a step the store already has
    /// finished is kept as it is; each step moves in under its lock (a run computing it is waited
    /// for). Importing the same archive again changes nothing.
    pub fn import(&self, archive: &Path) -> Result<ImportSummary> {
        self.check_writable()?;
        let staging = Staging::new(self.root.join(format!(".import.tmp-{}", std::process::id())))?;
        let contents = unpack(archive, &staging.0)?;
        // The staged steps, checked as a store of their own: checksums, descriptions, hashes, and
        // every input of a step present (in the archive).
        let staged = Store { root: staging.0.clone(), read_only: std::sync::OnceLock::new() };
        for step in &contents.steps {
            let (kind, key) = step.split_once('/').ok_or_else(|| damaged(archive, step, "is not a kind/key step name"))?;
            match staged.status(kind, key, Check::Hashes) {
                Status::Done => {}
                Status::Missing => return Err(damaged(archive, step, "is listed but not in the archive (truncated?)")),
                Status::Broken(why) | Status::Unreadable(why) => return Err(damaged(archive, step, &why)),
            }
        }
        let mut summary = ImportSummary { added: 0, kept: 0 };
        for step in &contents.steps {
            let (kind, key) = step.split_once('/').unwrap_or_default();
            if self.status(kind, key, Check::Hashes) == Status::Done {
                summary.kept += 1;
                continue;
            }
            let kind_dir = self.root.join(kind);
            std::fs::create_dir_all(&kind_dir).map_err(|e| Error::io(&kind_dir, e))?;
            let _lock = self.lock_step(kind, key, true)?;
            // A run may have finished it while we waited for the lock.
            if self.status(kind, key, Check::Hashes) == Status::Done {
                summary.kept += 1;
                continue;
            }
            let target = self.dir(kind, key);
            if target.exists() {
                // An unfinished or broken attempt: nothing of it is trusted, as in a run.
                std::fs::remove_dir_all(&target).map_err(|e| Error::io(&target, e))?;
            }
            let from = staging.0.join(kind).join(key);
            std::fs::rename(&from, &target).map_err(|e| Error::io(&target, e))?;
            summary.added += 1;
        }
        Ok(summary)
    }
}

/// A staging folder, removed however the import ends.
struct Staging(PathBuf);

impl Staging {
    fn new(dir: PathBuf) -> Result<Staging> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Staging(dir))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn damaged(archive: &Path, entry: &str, why: &str) -> Error {
    Error::bad_file_fix(archive, format!("entry {entry}: {why}"), "nothing was imported; export the archive again, or copy it again")
}

/// Unpacks every entry into `dir` (regular files and folders only, under `kind/key/`), reading
/// the archive to its end so that a truncated one fails here; returns the table of contents.
fn unpack(archive: &Path, dir: &Path) -> Result<Contents> {
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut contents: Option<Contents> = None;
    let mut last = String::from("(the start)");
    let entries = tar.entries().map_err(|e| damaged(archive, &last, &e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(archive, &format!("after {last}"), &format!("cannot be read ({e})")))?;
        let path = entry.path().map_err(|e| damaged(archive, &format!("after {last}"), &e.to_string()))?.into_owned();
        last = path.display().to_string();
        if path == Path::new(CONTENTS) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).map_err(|e| damaged(archive, &last, &e.to_string()))?;
            let c: Contents = serde_json::from_str(&text).map_err(|e| damaged(archive, &last, &format!("unreadable ({e})")))?;
            if c.format != ARCHIVE_FORMAT {
                return Err(Error::bad_file_fix(
                    archive,
                    format!("an archive of format '{}', this doublewin reads '{ARCHIVE_FORMAT}'", c.format),
                    "export it again with this doublewin",
                ));
            }
            contents = Some(c);
            continue;
        }
        let parts: Vec<Component> = path.components().collect();
        let safe = parts.len() >= 2 && parts.iter().all(|c| matches!(c, Component::Normal(_)));
        let kind = entry.header().entry_type();
        if !safe || !(kind.is_file() || kind.is_dir()) {
            return Err(damaged(archive, &last, "is not a file or folder of a step (kind/key/...)"));
        }
        entry.unpack_in(dir).map_err(|e| damaged(archive, &last, &format!("cannot be unpacked ({e})")))?;
    }
    let contents = contents.ok_or_else(|| damaged(archive, CONTENTS, "is missing: not an archive written by `doublewin store export`"))?;
    // Nothing in the archive but the steps it lists.
    for kind in subdirs(dir)? {
        for step in subdirs(&kind)? {
            let name = format!("{}/{}", file_name(&kind), file_name(&step));
            if !contents.steps.contains(&name) {
                return Err(damaged(archive, &name, "is not listed in the archive's contents"));
            }
            for f in [DESCRIBE, RESULT] {
                if !step.join(f).is_file() {
                    return Err(damaged(archive, &format!("{name}/{f}"), "is missing (truncated?)"));
                }
            }
        }
    }
    Ok(contents)
}
