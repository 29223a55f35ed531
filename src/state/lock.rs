//! The state lock: `<state>.lock`, created exclusively, naming its holder.
//!
//! A second run that finds the lock stops with a message naming who holds
//! it, since when and for what. A lock left by a process of this host that
//! is gone (its pid no longer runs, or now runs another program: the start
//! time tells) is stale and taken over. `force_unlock` removes a lock by id.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    /// The holder's start time (clock ticks after boot, from /proc), to
    /// tell it from a later process that reuses its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<u64>,
    /// UTC, RFC 3339.
    pub when: String,
    pub operation: String,
}

#[derive(Debug)]
pub enum LockError {
    /// Another run holds the lock.
    Held(Box<LockInfo>),
    /// The lock file exists but cannot be read as a lock.
    Unreadable {
        path: PathBuf,
        detail: String,
    },
    NotLocked {
        path: PathBuf,
    },
    WrongId {
        held: Box<LockInfo>,
        given: String,
    },
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held(info) => write!(
                f,
                "the state is locked by {} (pid {} on {}) since {} for `{}`\n  help: wait for that run to finish; if it is gone for good, run `infra force-unlock {}`",
                info.who, info.pid, info.host, info.when, info.operation, info.id
            ),
            LockError::Unreadable { path, detail } => write!(
                f,
                "lock file `{}` cannot be read: {detail}\n  help: make sure no other infra run is active, then delete the file",
                path.display()
            ),
            LockError::NotLocked { path } => {
                write!(f, "the state is not locked (no `{}`)", path.display())
            }
            LockError::WrongId { held, given } => write!(
                f,
                "the lock has id `{}`, not `{given}`\n  help: it is held by {} (pid {} on {}) for `{}`; check before forcing it",
                held.id, held.who, held.pid, held.host, held.operation
            ),
            LockError::Io { path, error } => write!(f, "cannot lock `{}`: {error}", path.display()),
        }
    }
}

impl std::error::Error for LockError {}

/// A held lock; released (the file removed) when dropped.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    pub info: LockInfo,
    /// A stale lock of a dead local process that this one replaced.
    pub replaced_stale: Option<LockInfo>,
}

pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    state_path.with_file_name(name)
}

impl LockInfo {
    /// A new lock of this process for `operation`, with a fresh id.
    pub fn of_this_process(operation: &str) -> LockInfo {
        LockInfo {
            id: super::format::new_lineage()[..16].to_string(),
            who: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id(),
            process_start: process_start(std::process::id()),
            when: crate::clock::now(),
            operation: operation.to_string(),
        }
    }
}

impl StateLock {
    /// Takes the lock for `operation` (`apply`, `destroy`, …).
    pub fn acquire(state_path: &Path, operation: &str) -> Result<StateLock, LockError> {
        let path = lock_path(state_path);
        let info = LockInfo::of_this_process(operation);
        let mut replaced_stale = None;
        for _ in 0..2 {
            match create_exclusively(&path, &info) {
                Ok(()) => {
                    HELD.lock()
                        .expect("held locks")
                        .push((path.clone(), info.id.clone()));
                    return Ok(StateLock {
                        path,
                        info,
                        replaced_stale,
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held = match read_lock(&path) {
                        Ok(held) => held,
                        // An older build created the lock empty and then
                        // wrote it: empty for longer than that takes, its
                        // holder crashed in between.
                        Err(_) if replaced_stale.is_none() && left_empty(&path) => {
                            fs::remove_file(&path).map_err(|error| LockError::Io {
                                path: path.clone(),
                                error,
                            })?;
                            replaced_stale = Some(LockInfo {
                                id: String::new(),
                                who: "a run that crashed while taking the lock (it left it empty)"
                                    .into(),
                                host: hostname(),
                                pid: 0,
                                process_start: None,
                                when: String::new(),
                                operation: String::new(),
                            });
                            continue;
                        }
                        Err(error) => return Err(error),
                    };
                    if replaced_stale.is_none() && is_stale(&held) {
                        fs::remove_file(&path).map_err(|error| LockError::Io {
                            path: path.clone(),
                            error,
                        })?;
                        replaced_stale = Some(held);
                        continue;
                    }
                    return Err(LockError::Held(Box::new(held)));
                }
                Err(error) => return Err(LockError::Io { path, error }),
            }
        }
        Err(LockError::Held(Box::new(read_lock(&path)?)))
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        HELD.lock()
            .expect("held locks")
            .retain(|(_, id)| *id != self.info.id);
        release(&self.path, &self.info.id);
    }
}

/// The locks this process holds, for [`release_held_locks`].
static HELD: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());

/// Removes the lock at `path` if it is still ours (never one forced away
/// and retaken).
fn release(path: &Path, id: &str) {
    if read_lock(path).is_ok_and(|held| held.id == id) {
        let _ = fs::remove_file(path);
    }
}

/// Releases every lock this process holds, when it is about to exit
/// without unwinding (stopped by a signal while planning).
pub fn release_held_locks() {
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    for (path, id) in held {
        release(&path, &id);
    }
}

/// `infra force-unlock ID`: removes the lock if its id is `id`.
pub fn force_unlock(state_path: &Path, id: &str) -> Result<LockInfo, LockError> {
    let path = lock_path(state_path);
    if !path.exists() {
        return Err(LockError::NotLocked { path });
    }
    let held = read_lock(&path)?;
    if held.id != id {
        return Err(LockError::WrongId {
            held: Box::new(held),
            given: id.to_string(),
        });
    }
    fs::remove_file(&path).map_err(|error| LockError::Io { path, error })?;
    Ok(held)
}

/// Creates the lock file with its content in one step: the content is
/// written to a file of its own, which is then linked to the lock's name
/// (`link` fails when the name exists), so another run never reads a lock
/// that is still empty. Where links are not supported, the lock is
/// created empty and then written.
fn create_exclusively(path: &Path, info: &LockInfo) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(info).expect("lock info serialises") + "\n";
    let draft = path.with_extension(format!("lock.{}", info.id));
    let linked = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&draft)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::hard_link(&draft, path)
    })();
    let _ = fs::remove_file(&draft);
    match linked {
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        }
        other => other,
    }
}

fn read_lock(path: &Path) -> Result<LockInfo, LockError> {
    let text = fs::read_to_string(path).map_err(|error| LockError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    serde_json::from_str(&text).map_err(|error| LockError::Unreadable {
        path: path.to_path_buf(),
        detail: error.to_string(),
    })
}

/// How long an empty lock may be on its way to being written.
const EMPTY_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the lock at `path` is empty and was last written over
/// [`EMPTY_LOCK_GRACE`] ago.
fn left_empty(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|metadata| {
        metadata.len() == 0
            && metadata
                .modified()
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > EMPTY_LOCK_GRACE)
    })
}

/// A lock is stale when its holder ran on this host and is gone: its pid
/// does not run, or runs a process that started at another time.
pub(super) fn is_stale(held: &LockInfo) -> bool {
    if held.host != hostname() {
        return false;
    }
    match (process_start(held.pid), held.process_start) {
        (None, _) => !Path::new(&format!("/proc/{}", held.pid)).exists(),
        (Some(now), Some(then)) => now != then,
        (Some(_), None) => false,
    }
}

fn hostname() -> String {
    infra_provider_sdk::host::hostname()
}

/// When the process `pid` started (clock ticks after boot), if it runs.
pub fn process_start(pid: u32) -> Option<u64> {
    infra_provider_sdk::host::process_stat(pid).map(|stat| stat.started)
}
