//! What the engine and the providers both do on this machine, written
//! once: replacing a file so that no reader ever sees half of it, and
//! telling a process from a later one that reuses its pid (`/proc`).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// A step of [`write_atomically`] that failed, with the file it was on.
#[derive(Debug)]
pub struct WriteError {
    /// `create`, `write`, `flush` or `replace`.
    pub step: &'static str,
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} `{}`: {}",
            self.step,
            self.path.display(),
            self.error
        )
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Replaces `path` with `bytes` (file mode `mode`): written to a temporary
/// file in the same directory, flushed to disk, renamed over `path`, and
/// the directory flushed, so that a crash leaves the old content or the
/// new one, never a torn file. The temporary file is removed on failure.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(path.file_name().unwrap_or_default());
    temporary_name.push(format!(".tmp.{}", std::process::id()));
    let temporary = directory.join(temporary_name);
    let failed = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |error| WriteError { step, path, error }
    };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)
            .map_err(failed("create", &temporary))?;
        // Exactly `mode`, whatever the umask (a mode a user set is kept).
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(failed("create", &temporary))?;
        }
        file.write_all(bytes).map_err(failed("write", &temporary))?;
        file.sync_all().map_err(failed("flush", &temporary))?;
        fs::rename(&temporary, path).map_err(failed("replace", path))?;
        // Make the rename itself durable.
        if let Ok(directory) = File::open(&directory) {
            let _ = directory.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// A process as `/proc/PID/stat` shows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStat {
    /// `R`, `S`, `Z` (zombie), …
    pub state: char,
    /// When it started, in clock ticks after boot (field 22): with the pid,
    /// what tells it from a later process that reuses the pid.
    pub started: u64,
}

/// The process running under `pid` now, if any.
pub fn process_stat(pid: u32) -> Option<ProcessStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after the last ')'.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); field 22 is starttime.
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some(ProcessStat { state, started })
}

/// This machine's name (for lock holders).
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_is_running() {
        let stat = process_stat(std::process::id()).expect("our own /proc entry");
        assert!(matches!(stat.state, 'R' | 'S'), "{stat:?}");
        assert_eq!(
            process_stat(std::process::id()).map(|s| s.started),
            Some(stat.started)
        );
    }

    #[test]
    fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("infra-host-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file.json");
        write_atomically(&path, b"first", 0o600).unwrap();
        write_atomically(&path, b"second", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let missing = dir.join("no-such-dir").join("file");
        let error = write_atomically(&missing, b"x", 0o600).unwrap_err();
        assert_eq!(error.step, "create");
        fs::remove_dir_all(&dir).unwrap();
    }
}
