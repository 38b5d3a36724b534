//! The experiment store: a stable hash of a configuration, computed (as open_lth does) over the
//! fields that differ from the defaults, so adding a new field with a default value does not
//! rename existing experiments; and [`Store`], which keeps every finished step on disk under
//! that name.

use serde::Serialize;
use serde_json::Value;

fn diff(value: &Value, default: &Value) -> Option<Value> {
    match (value, default) {
        (Value::Object(v), Value::Object(d)) => {
            let m: serde_json::Map<String, Value> = v
                .iter()
                .filter_map(|(k, x)| match d.get(k) {
                    Some(dx) => diff(x, dx).map(|x| (k.clone(), x)),
                    None => Some((k.clone(), x.clone())),
                })
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        _ if value == default => None,
        _ => Some(value.clone()),
    }
}

/// The non-default part of a configuration as canonical JSON (keys sorted).
pub fn non_default_json<T: Serialize + Default>(config: &T) -> String {
    let v = serde_json::to_value(config).unwrap_or(Value::Null);
    let d = serde_json::to_value(T::default()).unwrap_or(Value::Null);
    // serde_json's Map is a BTreeMap (no preserve_order feature), so the text is canonical.
    diff(&v, &d).unwrap_or(Value::Object(Default::default())).to_string()
}

/// A 16-hex-digit name for a configuration, stable across runs, machines and added defaults.
pub fn stable_hash<T: Serialize + Default>(config: &T) -> String {
    crate::fsio::sha256(non_default_json(config).as_bytes())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[derive(Serialize, Default)]
    struct C {
        a: u32,
        b: String,
    }
    #[test]
    fn hash_ignores_defaults_and_is_stable() {
        assert_eq!(non_default_json(&C::default()), "{}");
        assert_eq!(non_default_json(&C { a: 3, ..Default::default() }), "{\"a\":3}");
        assert_eq!(stable_hash(&C { a: 3, ..Default::default() }), stable_hash(&C { a: 3, b: String::new() }));
        assert_ne!(stable_hash(&C { a: 3, ..Default::default() }), stable_hash(&C::default()));
    }
}

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A content-addressed store of finished steps: `root/<kind>/<key>/` holds a step's artifacts
/// and `result.json`; `key` hashes the step's config and its inputs' keys. A step runs under
/// an exclusive file lock, so two processes running the same study never compute or write the
/// same step at once; `result.json` is written last and atomically, so a step killed half-way
/// simply runs again (resuming from whatever its own checkpoints saved).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One finished step in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub kind: String,
    pub key: String,
    pub describe: serde_json::Value,
    pub bytes: u64,
}

impl Store {
    /// Opens (creating) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Store { root })
    }

    /// `$DOUBLEWIN_STORE`, else `<cache>/doublewin/store`.
    pub fn default_root() -> PathBuf {
        if let Some(d) = std::env::var_os("DOUBLEWIN_STORE").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        crate::data::embedded::data_dir().parent().map(|p| p.join("store")).unwrap_or_else(|| PathBuf::from("store"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The key of a step from its kind and the canonical texts of its config and inputs.
    pub fn key(kind: &str, parts: &[&str]) -> String {
        let mut text = kind.to_string();
        for p in parts {
            text.push('\u{1f}');
            text.push_str(p);
        }
        crate::fsio::sha256(text.as_bytes())[..16].to_string()
    }

    /// The folder of a step.
    pub fn dir(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(key)
    }

    /// Whether a step is finished.
    pub fn has(&self, kind: &str, key: &str) -> bool {
        self.dir(kind, key).join("result.json").exists()
    }

    /// Returns the stored result of a step, or runs it (in its folder, under the step's lock)
    /// and stores the result. `describe` is kept beside the result for listings.
    pub fn get_or_run<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        key: &str,
        describe: serde_json::Value,
        run: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<T> {
        let dir = self.dir(kind, key);
        let result = dir.join("result.json");
        if result.exists() {
            return crate::fsio::read_json(&result);
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock_path = self.root.join(kind).join(format!("{key}.lock"));
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        // Another process may have finished the step while we waited for the lock.
        if result.exists() {
            return crate::fsio::read_json(&result);
        }
        let value = run(&dir)?;
        crate::fsio::write_json(&dir.join("describe.json"), &describe)?;
        crate::fsio::write_json(&result, &value)?;
        drop(lock);
        Ok(value)
    }

    /// Every finished step.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let Ok(kinds) = std::fs::read_dir(&self.root) else { return Ok(out) };
        for kind in kinds.flatten().filter(|k| k.path().is_dir()) {
            for step in std::fs::read_dir(kind.path()).map_err(|e| Error::io(kind.path(), e))?.flatten() {
                let dir = step.path();
                if !dir.join("result.json").exists() {
                    continue;
                }
                let describe = crate::fsio::read_json(&dir.join("describe.json")).unwrap_or(serde_json::Value::Null);
                let bytes =
                    std::fs::read_dir(&dir).map(|d| d.flatten().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0);
                out.push(Entry {
                    kind: kind.file_name().to_string_lossy().into(),
                    key: step.file_name().to_string_lossy().into(),
                    describe,
                    bytes,
                });
            }
        }
        out.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
        Ok(out)
    }

    /// Removes every step of `kind` (or everything); returns how many step folders went.
    pub fn clean(&self, kind: Option<&str>) -> Result<usize> {
        let mut n = 0;
        let Ok(kinds) = std::fs::read_dir(&self.root) else { return Ok(0) };
        for k in kinds.flatten().filter(|k| k.path().is_dir()) {
            if kind.is_some_and(|want| k.file_name().to_string_lossy() != want) {
                continue;
            }
            n += std::fs::read_dir(k.path()).map(|d| d.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0);
            std::fs::remove_dir_all(k.path()).map_err(|e| Error::io(k.path(), e))?;
        }
        Ok(n)
    }
}
