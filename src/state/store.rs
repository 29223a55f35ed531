//! Reading and writing the state file safely.
//!
//! A write goes to a temporary file in the same directory, is flushed to
//! disk, and replaces the state by `rename`, after which the directory is
//! flushed too: a crash leaves either the old state or the new one, never a
//! torn file. The state being replaced is kept as `<state>.backup`. A state
//! this build does not understand — corrupt, another format, a newer
//! version — is refused, and never overwritten.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::format::{FORMAT_NAME, FORMAT_VERSION, State};

#[derive(Debug)]
pub enum StateError {
    /// The file is not valid JSON, or not valid state of this version.
    Corrupt { path: PathBuf, detail: String },
    /// Valid JSON, but not an infra state.
    UnknownFormat { path: PathBuf },
    /// Written by a newer infra.
    NewerVersion { path: PathBuf, version: u64 },
    Io {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Corrupt { path, detail } => write!(
                f,
                "state file `{}` is corrupt: {detail}\n  help: restore it from git or from `{}`; infra will not overwrite it",
                path.display(),
                backup_path(path).display()
            ),
            StateError::UnknownFormat { path } => write!(
                f,
                "`{}` is not an infra state file\n  help: point `backend local {{ path = … }}` at the state file, or move this file away; infra will not overwrite it",
                path.display()
            ),
            StateError::NewerVersion { path, version } => write!(
                f,
                "state file `{}` has format version {version}, newer than this infra understands ({FORMAT_VERSION})\n  help: upgrade infra; this version will not overwrite it",
                path.display()
            ),
            StateError::Io {
                path,
                action,
                error,
            } => {
                write!(f, "cannot {action} `{}`: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for StateError {}

/// `<state>.backup`: the state before the last write.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".backup");
    path.with_file_name(name)
}

fn io<'p>(path: &'p Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StateError + 'p {
    move |error| StateError::Io {
        path: path.to_path_buf(),
        action,
        error,
    }
}

/// Parses state text, telling apart corrupt, foreign and newer files.
fn parse(path: &Path, text: &str) -> Result<State, StateError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|error| StateError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{error}"),
        })?;
    if json.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(StateError::UnknownFormat {
            path: path.to_path_buf(),
        });
    }
    match json.get("version").and_then(|v| v.as_u64()) {
        Some(version) if version > u64::from(FORMAT_VERSION) => {
            return Err(StateError::NewerVersion {
                path: path.to_path_buf(),
                version,
            });
        }
        Some(_) => {}
        None => {
            return Err(StateError::Corrupt {
                path: path.to_path_buf(),
                detail: "`version` is missing or not a number".into(),
            });
        }
    }
    serde_json::from_value(json).map_err(|error| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("{error}"),
    })
}

/// Reads the state; `None` when there is no state file yet.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    match fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io(path, "read")(error)),
    }
}

/// Writes the state atomically, keeping the previous one as a backup.
/// Returns whether anything changed on disk (an identical state is not
/// rewritten).
pub fn save(path: &Path, state: &State) -> Result<bool, StateError> {
    save_with(path, state, true)
}

/// [`save`]; `backup` says whether the file being replaced becomes the
/// backup (the first save of an apply) or not (its later saves, which keep
/// the state from before the run as the backup).
pub fn save_with(path: &Path, state: &State, backup: bool) -> Result<bool, StateError> {
    let text = state.to_canonical_json();
    let previous = match fs::read_to_string(path) {
        Ok(previous) => Some(previous),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(io(path, "read")(error)),
    };
    if let Some(previous) = &previous {
        // Never replace a state this build cannot read: it may be someone's
        // newer state, or the only copy of a damaged one.
        parse(path, previous)?;
        if *previous == text {
            return Ok(false);
        }
        if backup {
            write_atomically(&backup_path(path), previous.as_bytes())?;
        }
    }
    write_atomically(path, text.as_bytes())?;
    Ok(true)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(path.file_name().unwrap_or_default());
    temporary_name.push(format!(".tmp.{}", std::process::id()));
    let temporary = directory.join(temporary_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(io(&temporary, "create"))?;
        file.write_all(bytes).map_err(io(&temporary, "write"))?;
        file.sync_all().map_err(io(&temporary, "flush"))?;
        fs::rename(&temporary, path).map_err(io(path, "replace"))?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(&directory) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}
