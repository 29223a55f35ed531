//! Processes that outlive infra: started detached, logged to a file, and
//! known by pid **and** start time, so that a pid the kernel has reused for
//! something else is never taken for ours (nor signalled).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use serde_json::{Value, json};

/// A process as infra recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    /// When it started, in clock ticks after boot (`/proc/PID/stat`, field 22).
    pub started: u64,
}

impl ProcessId {
    /// The process running now under `pid`, whatever it is.
    pub fn of(pid: i32) -> Option<ProcessId> {
        stat(pid).map(|(_, started)| ProcessId { pid, started })
    }

    pub fn to_json(self) -> (Value, Value) {
        (json!(self.pid), json!(self.started))
    }

    pub fn from_json(pid: Option<&Value>, started: Option<&Value>) -> Option<ProcessId> {
        Some(ProcessId {
            pid: i32::try_from(pid?.as_i64()?).ok()?,
            started: started?.as_u64()?,
        })
    }

    /// Whether this very process still runs (not a zombie, not a newer
    /// process under the same pid).
    pub fn is_running(self) -> bool {
        matches!(stat(self.pid), Some((state, started)) if started == self.started && state != 'Z' && state != 'X')
    }
}

/// State letter and start time of `pid`, from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let stat = infra_provider_sdk::host::process_stat(u32::try_from(pid).ok()?)?;
    Some((stat.state, stat.started))
}

/// How a started process is detached from infra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// Its own session: no terminal's signals reach it (the load balancer).
    Session,
    /// Its own process group, which `stop` signals as a whole (instances).
    Group,
}

/// The `pid` and `started` attributes of a resource that is a process
/// infra started (the load balancer, a Prometheus server).
pub fn identity_attributes() -> [(&'static str, infra_provider_sdk::Attribute); 2] {
    use infra_provider_sdk::{Attribute, AttributeType};
    [
        (
            "pid",
            Attribute::computed(AttributeType::Number).describe("its process id"),
        ),
        (
            "started",
            Attribute::computed(AttributeType::Number).describe(
                "its start time (clock ticks after boot): with the pid, which process it is",
            ),
        ),
    ]
}

pub struct Spawn<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub workdir: &'a Path,
    pub log: &'a Path,
    pub detach: Detach,
}

/// Starts a process with stdin from /dev/null and stdout and stderr
/// appended to `log`. A thread reaps it if it exits while infra still runs,
/// so that it does not linger as a zombie that looks alive.
pub fn spawn(spec: Spawn<'_>) -> std::io::Result<ProcessId> {
    if let Some(parent) = spec.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.log)?;
    let mut command = Command::new(spec.program);
    command
        .args(spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(spec.workdir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    match spec.detach {
        Detach::Group => {
            command.process_group(0);
        }
        Detach::Session => {
            // SAFETY: the closure runs in the child between fork and exec,
            // where only async-signal-safe calls are allowed: setsid is one,
            // and it touches no memory of the parent.
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(|| {
                    rustix::process::setsid()?;
                    Ok(())
                });
            }
        }
    }
    let mut child = command.spawn()?;
    let pid = child.id() as i32;
    let id = ProcessId::of(pid).unwrap_or(ProcessId { pid, started: 0 });
    std::thread::spawn(move || child.wait());
    Ok(id)
}

/// Sends `signal` to the process `pid`, or to its whole group. A process
/// that is gone already is not an error.
pub fn signal(pid: i32, group: bool, signal: Signal) {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let _ = if group {
        rustix::process::kill_process_group(pid, signal)
    } else {
        rustix::process::kill_process(pid, signal)
    };
}

/// Stops the process (and, for an instance, its group): SIGTERM, up to
/// `grace` to exit, then SIGKILL. A process that is not ours any more (or
/// already gone) is left alone.
pub async fn stop(id: ProcessId, group: bool, grace: Duration) {
    if !id.is_running() {
        return;
    }
    // A pid we checked is still the process we started.
    signal(id.pid, group, Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !id.is_running() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if id.is_running() {
        signal(id.pid, group, Signal::KILL);
        for _ in 0..100 {
            if !id.is_running() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The last lines of a log, to explain why a process failed.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_is_ours_only_with_its_start_time_and_stop_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let id = spawn(Spawn {
            program: "sleep",
            args: &["30".to_string()],
            env: &[],
            workdir: dir.path(),
            log: &dir.path().join("sleep.log"),
            detach: Detach::Group,
        })
        .unwrap();
        assert!(id.is_running());
        // The same pid with another start time: a different process (pid
        // reuse), never taken for ours, never signalled.
        let impostor = ProcessId {
            pid: id.pid,
            started: id.started + 1,
        };
        assert!(!impostor.is_running());
        stop(impostor, true, Duration::from_millis(100)).await;
        assert!(id.is_running(), "stopping the impostor left ours alone");
        stop(id, true, Duration::from_secs(5)).await;
        assert!(!id.is_running());
    }
}
