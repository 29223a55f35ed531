//! A server of the Prometheus family (Prometheus, Alertmanager) as infra
//! runs it: one process per `listen` address, its files in
//! `.infra/<kind>/<listen>/`, started detached in its own session, known
//! by pid and start time (recorded in `process.json` the moment it starts,
//! so that the next create adopts what an interrupted apply started),
//! ready when `/-/ready` answers 200, reloaded with `POST /-/reload`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use infra_provider_sdk::{Attributes, ProviderError};
use serde_json::{Value, json};

use crate::runtime::http::{self, Request};
use crate::runtime::process::{self, Detach, ProcessId, Spawn};
use crate::runtime::{RuntimeDir, file_name, write_atomically};

/// How long a new server may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Server<'a> {
    /// For messages and error codes: `Prometheus`, `Alertmanager`.
    pub what: &'static str,
    pub listen: &'a str,
    pub dir: PathBuf,
}

impl<'a> Server<'a> {
    /// The server of `kind` (`prometheus`, `alertmanager`) on `listen`.
    pub fn of(runtime: &RuntimeDir, what: &'static str, kind: &str, listen: &'a str) -> Self {
        Server {
            what,
            listen,
            dir: runtime.root().join(kind).join(file_name(listen)),
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn log(&self) -> PathBuf {
        self.file("server.log")
    }

    fn error(&self, problem: &str, message: String) -> ProviderError {
        ProviderError::new(message).with_code(format!("{}{problem}", self.what))
    }

    /// Whether it answers `/-/ready` with 200.
    pub async fn ready(&self) -> bool {
        ready(self.listen).await
    }

    /// The process an interrupted apply started here, still running: to
    /// adopt rather than start a second one (which could not listen). One
    /// still starting up is waited for; one that never gets ready is
    /// stopped, and a new one started.
    pub async fn adoptable(&self) -> Option<ProcessId> {
        let text = std::fs::read_to_string(self.file("process.json")).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        let id = ProcessId::from_json(value.get("pid"), value.get("started"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        while id.is_running() {
            if self.ready().await {
                return Some(id);
            }
            if Instant::now() > deadline {
                process::stop(id, false, Duration::from_secs(5)).await;
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Starts `program` with `args` and waits until it is ready; one that
    /// exits or is not ready in time is stopped, and the error quotes its
    /// log.
    pub async fn start(&self, program: &Path, args: &[String]) -> Result<ProcessId, ProviderError> {
        let id = process::spawn(Spawn {
            program: &program.to_string_lossy(),
            args,
            env: &[],
            workdir: &self.dir,
            log: &self.log(),
            detach: Detach::Session,
        })
        .map_err(|e| self.error("Failed", format!("cannot start {}: {e}", program.display())))?;
        let (pid, started) = id.to_json();
        let record = self.file("process.json");
        write_atomically(
            &record,
            json!({ "pid": pid, "started": started })
                .to_string()
                .as_bytes(),
            0o644,
        )
        .map_err(|e| io_error(&record, e))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Ready, and still ours (not another process on the port).
            if self.ready().await && id.is_running() {
                return Ok(id);
            }
            if !id.is_running() || Instant::now() > deadline {
                process::stop(id, false, Duration::from_secs(5)).await;
                return Err(self.error(
                    "Failed",
                    format!(
                        "{} on {} did not start: {}",
                        self.what,
                        self.listen,
                        process::log_tail(&self.log(), 3)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /-/reload`: the server reads its files again; its refusal.
    pub async fn reload(&self) -> Result<(), String> {
        let request = Request {
            method: "POST",
            path: "/-/reload",
            ..Request::default()
        };
        match http::send(self.listen, request, Duration::from_secs(30)).await {
            Ok(answer) if answer.status == 200 => Ok(()),
            Ok(answer) => Err(answer.text().trim().to_string()),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Writes `files` (name, content), then — when the server runs —
    /// reloads it; a reload it refuses puts the previous files back (and
    /// reloads those), and the error says why: nothing half-applied.
    pub async fn replace_files(
        &self,
        files: &[(&str, String)],
        running: bool,
    ) -> Result<(), ProviderError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        let before: Vec<(PathBuf, Option<Vec<u8>>)> = files
            .iter()
            .map(|(name, _)| (self.file(name), std::fs::read(self.file(name)).ok()))
            .collect();
        for (name, content) in files {
            let path = self.file(name);
            write_atomically(&path, content.as_bytes(), 0o644).map_err(|e| io_error(&path, e))?;
        }
        if !running {
            return Ok(());
        }
        let Err(why) = self.reload().await else {
            return Ok(());
        };
        for (path, content) in before {
            let _ = match content {
                Some(content) => write_atomically(&path, &content, 0o644),
                None => std::fs::remove_file(&path),
            };
        }
        let _ = self.reload().await;
        Err(self.error(
            "Refused",
            format!(
                "{} on {} refused the new configuration (the previous one is kept): {why}",
                self.what, self.listen
            ),
        ))
    }

    /// The running process `prior` records, or an error that says it is
    /// not running.
    pub fn recorded(&self, prior: &Attributes) -> Result<ProcessId, ProviderError> {
        ProcessId::from_json(prior.get("pid"), prior.get("started"))
            .filter(|id| id.is_running())
            .ok_or_else(|| {
                self.error(
                    "Unreachable",
                    format!("{} on {} is not running", self.what, self.listen),
                )
            })
    }
}

/// One kind of server: what it is called, how it is started, the files
/// its configuration is written to and the state it records.
pub(crate) trait Kind {
    /// For messages and error codes: `Prometheus`.
    const WHAT: &'static str;
    /// Its directory under `.infra/`: `prometheus`.
    const DIR: &'static str;
    /// The program, or the error that says how to install it.
    fn program() -> Result<PathBuf, ProviderError>;
    /// Its files (name, content) for `config`.
    fn files(
        runtime: &RuntimeDir,
        server: &Server,
        config: &Attributes,
    ) -> Result<Vec<(&'static str, String)>, ProviderError>;
    /// Its command line.
    fn args(server: &Server, config: &Attributes) -> Vec<String>;
    /// The state: `config` with defaults, and the process.
    fn state_of(listen: &str, id: ProcessId, config: &Attributes) -> Attributes;
}

fn listen_of(attributes: &Attributes) -> Result<&str, ProviderError> {
    attributes
        .get("listen")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::new("`listen` is required"))
}

/// Create: adopts the server an interrupted apply started on `listen`, or
/// writes the files and starts one, ready.
pub(crate) async fn create<K: Kind>(
    runtime: &RuntimeDir,
    config: &Attributes,
) -> Result<Attributes, ProviderError> {
    let listen = listen_of(config)?;
    let server = Server::of(runtime, K::WHAT, K::DIR, listen);
    if let Some(id) = server.adoptable().await {
        let prior = K::state_of(listen, id, &Attributes::new());
        return update::<K>(runtime, &prior, config.clone()).await;
    }
    let program = K::program()?;
    runtime.ensure().map_err(|e| io_error(runtime.root(), e))?;
    server
        .replace_files(&K::files(runtime, &server, config)?, false)
        .await?;
    let id = server.start(&program, &K::args(&server, config)).await?;
    Ok(K::state_of(listen, id, config))
}

/// Update: new files and a reload; files the server refuses are put back
/// as they were (and reloaded), and the error says why.
pub(crate) async fn update<K: Kind>(
    runtime: &RuntimeDir,
    prior: &Attributes,
    config: Attributes,
) -> Result<Attributes, ProviderError> {
    let listen = listen_of(&config)?;
    let server = Server::of(runtime, K::WHAT, K::DIR, listen);
    let id = server.recorded(prior)?;
    server
        .replace_files(&K::files(runtime, &server, &config)?, true)
        .await?;
    Ok(K::state_of(listen, id, &config))
}

pub(crate) fn io_error(path: &Path, error: std::io::Error) -> ProviderError {
    ProviderError::new(format!("cannot write {}: {error}", path.display()))
}

/// A program: `$ENV_VAR` when set, else `name` found on `PATH`.
pub(crate) fn find_program(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Refresh: still the process infra started (pid and start time), and
/// ready? Otherwise gone (drift: the next apply starts it again).
pub(crate) async fn read(state: Attributes) -> Option<Attributes> {
    let id = ProcessId::from_json(state.get("pid"), state.get("started"))?;
    if !id.is_running() {
        return None;
    }
    let listen = state.get("listen").and_then(Value::as_str)?;
    ready(listen).await.then_some(state)
}

/// Whether the server on `listen` answers `/-/ready` with 200.
async fn ready(listen: &str) -> bool {
    http::get(listen, "/-/ready", Duration::from_secs(2))
        .await
        .is_ok_and(|answer| answer.status == 200)
}

/// Destroy: SIGTERM, then SIGKILL after 10 s.
pub(crate) async fn delete(state: &Attributes) {
    if let Some(id) = ProcessId::from_json(state.get("pid"), state.get("started")) {
        process::stop(id, false, Duration::from_secs(10)).await;
    }
}

/// The attributes every such server records: `listen`, `id`, `url`, and
/// the process.
pub(crate) fn identity(listen: &str, id: ProcessId) -> [(String, Value); 5] {
    let (pid, started) = id.to_json();
    [
        ("listen".to_string(), json!(listen)),
        ("id".to_string(), json!(listen)),
        ("url".to_string(), json!(format!("http://{listen}"))),
        ("pid".to_string(), pid),
        ("started".to_string(), started),
    ]
}
