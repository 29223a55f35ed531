//! Reading and writing the state file safely.
//!
//! A write goes to a temporary file in the same directory, is flushed to
//! disk, and replaces the state by `rename`, after which the directory is
//! flushed too: a crash leaves either the old state or the new one, never a
//! torn file. The state being replaced is kept as `<state>.backup`. A state
//! this build does not understand — corrupt, another format, a newer
//! version — is refused, and never overwritten.

use std::fmt;
use std::fs;
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
    /// Someone else saved the state since this run read it.
    Changed { path: PathBuf },
    /// A FIFO, a device, a directory: reading it could hang or never end.
    NotAFile { path: PathBuf },
    /// Its secrets do not open: no key, another key, or a changed envelope.
    Sealed { path: PathBuf, detail: String },
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
            StateError::Sealed { path, detail } => {
                write!(f, "state file `{}`: {detail}", path.display())
            }
            StateError::NotAFile { path } => write!(
                f,
                "`{}` is not a regular file (a FIFO, a device or a directory); infra neither reads nor replaces it\n  help: point `backend local {{ path = … }}` at a regular file, or move this one away",
                path.display()
            ),
            StateError::Changed { path } => write!(
                f,
                "state file `{}` was changed by someone else since this run read it; this run's changes were not saved over it\n  help: make sure runs take the lock (another run, or an edit by hand, wrote it), then plan again",
                path.display()
            ),
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

/// Parses state text, telling apart corrupt, foreign and newer files
/// (`path` names where the text came from in errors).
pub fn parse(path: &Path, text: &str) -> Result<State, StateError> {
    let json: serde_json::Value =
        super::strict_json::parse(text).map_err(|error| StateError::Corrupt {
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

/// Refuses a `path` that exists and is not a regular file (after
/// symbolic links): opening a FIFO blocks until a writer comes, a device
/// may never end.
pub(super) fn refuse_special(path: &Path) -> Result<(), StateError> {
    match fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => Err(StateError::NotAFile {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Reads the state; `None` when there is no state file yet.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    load_text(path).map(|(state, _)| state)
}

/// [`load`], with the text it was read from.
pub(super) fn load_text(path: &Path) -> Result<(Option<State>, Option<String>), StateError> {
    refuse_special(path)?;
    match fs::read_to_string(path) {
        Ok(text) => Ok((Some(parse(path, &text)?), Some(text))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok((None, None)),
        Err(error) => Err(io(path, "read")(error)),
    }
}

/// Writes the state atomically, keeping the previous one as a backup.
/// Returns whether anything changed on disk (an identical state is not
/// rewritten).
pub fn save(path: &Path, state: &State) -> Result<bool, StateError> {
    let mut changed = false;
    let text = state.to_canonical_json();
    save_text(path, state, true, |previous| {
        changed = previous != Some(text.as_str());
        Ok(Vouched::No)
    })?;
    Ok(changed)
}

/// What a save's check says of the text it is about to replace.
pub(super) enum Vouched {
    /// It is the text this run read and parsed already (its digest is
    /// the one read): no need to parse it again.
    ReadBefore,
    /// Unknown: it is parsed before it is replaced.
    No,
}

/// Saves `state` unless the file holds it already; `check` sees the text
/// being replaced (none when there is no file) and may refuse the save.
/// Returns the text now in the file.
pub(super) fn save_text(
    path: &Path,
    state: &State,
    backup: bool,
    check: impl FnOnce(Option<&str>) -> Result<Vouched, StateError>,
) -> Result<String, StateError> {
    let text = state.to_canonical_json();
    refuse_special(path)?;
    let previous = match fs::read_to_string(path) {
        Ok(previous) => Some(previous),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(io(path, "read")(error)),
    };
    let vouched = check(previous.as_deref())?;
    if let Some(previous) = &previous {
        // Never replace a state this build cannot read: it may be someone's
        // newer state, or the only copy of a damaged one.
        if let Vouched::No = vouched {
            parse(path, previous)?;
        }
        if *previous == text {
            return Ok(text);
        }
        if backup {
            write_atomically(&backup_path(path), previous.as_bytes(), mode_of(path))?;
        }
    }
    write_atomically(path, text.as_bytes(), mode_of(path))?;
    Ok(text)
}

/// Writes `state` to the first of `places` where it can be written whole
/// and read back as the same state; the failures, place by place, when it
/// fits nowhere.
pub fn write_rescue(state: &State, places: &[PathBuf]) -> Result<PathBuf, Vec<(PathBuf, String)>> {
    let text = state.to_canonical_json();
    let mut failures = Vec::new();
    for place in places {
        if let Err(error) = write_atomically(place, text.as_bytes(), NEW_FILE_MODE) {
            failures.push((place.clone(), error.to_string()));
            continue;
        }
        let verified = match fs::read_to_string(place) {
            Ok(back) if back == text => parse(place, &back).map(drop),
            Ok(_) => Err(StateError::Corrupt {
                path: place.clone(),
                detail: "it reads back differently".into(),
            }),
            Err(error) => Err(io(place, "read back")(error)),
        };
        match verified {
            Ok(()) => return Ok(place.clone()),
            Err(error) => {
                let _ = fs::remove_file(place);
                failures.push((place.clone(), error.to_string()));
            }
        }
    }
    Err(failures)
}

/// The mode of a state file infra creates: it may hold secrets.
pub const NEW_FILE_MODE: u32 = 0o600;

/// The mode `path` has now (a user's `chmod` is kept), or `NEW_FILE_MODE`.
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).map_or(NEW_FILE_MODE, |m| m.permissions().mode() & 0o7777)
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    infra_provider_sdk::host::write_atomically(path, bytes, mode).map_err(|failure| {
        StateError::Io {
            path: failure.path,
            action: failure.step,
            error: failure.error,
        }
    })
}
