//! The crate's one error type. Every message says what went wrong and, where there is one,
//! what to do about it, because the reader is often a student in a notebook.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in doublewin.
#[derive(Debug)]
pub enum Error {
    /// A file could not be read or written.
    Io { path: PathBuf, source: std::io::Error },
    /// A file exists but its content is not what it should be (corrupt, truncated, wrong format);
    /// `fix` says what to do about it, which depends on what the file is.
    BadFile { path: PathBuf, problem: String, fix: String },
    /// A parameter or argument is out of range or inconsistent.
    InvalidInput { problem: String, fix: String },
    /// A dataset, network or artifact that was asked for is not there.
    NotFound { what: String, fix: String },
    /// Keys of a checkpoint that could not be matched with a network's parameters.
    KeyMismatch { path: PathBuf, unplaced: Vec<String>, missing: Vec<String>, shape_mismatch: Vec<String> },
    /// A download failed.
    Download { url: String, problem: String },
    /// libtorch reported an error.
    Torch(tch::TchError),
    /// A stop was requested ([`crate::runtime::request_stop`], e.g. by SIGTERM): the work done so
    /// far is saved and the same call resumes it.
    Stopped,
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }
    /// A damaged or foreign file, with what to do about it.
    pub fn bad_file_fix(path: impl AsRef<Path>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::BadFile { path: path.as_ref().to_path_buf(), problem: problem.into(), fix: fix.into() }
    }
    /// A damaged dataset file: it can be prepared or downloaded again.
    pub fn bad_data_file(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        Error::bad_file_fix(
            path,
            problem,
            "the file is corrupt, truncated or not in the expected format; delete it and prepare (bash scripts/setup.sh) or download it again",
        )
    }
    pub fn invalid(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::InvalidInput { problem: problem.into(), fix: fix.into() }
    }
    pub fn not_found(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::NotFound { what: what.into(), fix: fix.into() }
    }
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", ... ({} more)", items.len() - SHOWN));
    }
    s
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::BadFile { path, problem, fix } => write!(f, "{}: {problem}; {fix}", path.display()),
            Error::InvalidInput { problem, fix } => write!(f, "{problem}; {fix}"),
            Error::NotFound { what, fix } => write!(f, "{what} not found; {fix}"),
            Error::KeyMismatch { path, unplaced, missing, shape_mismatch } => {
                write!(f, "{}: checkpoint does not fit the network.", path.display())?;
                if !unplaced.is_empty() {
                    write!(f, " Keys in the file with no place in the network: {}.", list(unplaced))?;
                }
                if !missing.is_empty() {
                    write!(f, " Network parameters missing from the file: {}.", list(missing))?;
                }
                if !shape_mismatch.is_empty() {
                    write!(f, " Shape mismatches: {}.", list(shape_mismatch))?;
                }
                write!(f, " Check the architecture you asked for (e.g. resnet18 vs resnet50) and the key prefix")
            }
            Error::Download { url, problem } => {
                write!(f, "download of {url} failed: {problem}. Re-run to resume; check the network or place the file by hand")
            }
            Error::Torch(e) => write!(f, "libtorch: {e}"),
            Error::Stopped => write!(f, "stopped on request after saving the work done so far; run the same command again to resume"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Torch(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e)
    }
}
