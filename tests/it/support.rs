//! What the tests share: the one way to run the `infra` binary
//! ([`command`], [`on_a_terminal`]), real processes for the local-runtime
//! tests — demo-app backends and `infra local-lb`, each stopped (SIGKILL to
//! its process group, then reaped) when its guard drops, also when a test
//! fails — a load generator that opens a new connection per request, as the
//! rollout tests demand, and the engine in process ([`engine`]).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use infra_provider_local::runtime::http::{self, Request};
pub use infra_provider_local::runtime::process::{Signal, signal};
use serde_json::Value;

pub const INFRA: &str = env!("CARGO_BIN_EXE_infra");

/// `infra ARGS`, in `dir` (or the package root), without a terminal: no
/// stdin, colour settings of the environment removed. The caller adds
/// what its area needs (the mock provider, moto's endpoint, variables).
pub fn command(dir: Option<&Path>, args: &[&str]) -> Command {
    let mut command = Command::new(INFRA);
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("INFRA_LOG")
        // The state keys of whoever runs the tests: a test sets its own.
        .env_remove("INFRA_STATE_KEY")
        .env_remove("INFRA_STATE_PASSPHRASE")
        .env_remove("INFRA_STATE_PREVIOUS_KEY")
        .stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
}

/// Runs `infra ARGS` on a pseudo-terminal (util-linux `script`), in `dir`,
/// typing `input`; returns what the terminal showed.
pub fn on_a_terminal(dir: Option<&Path>, args: &str, input: &str, env: &[(&str, &str)]) -> String {
    let line = format!("{INFRA} {args}");
    let mut script = Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(dir) = dir {
        script.current_dir(dir);
    }
    let mut child = script
        .spawn()
        .expect("`script` (util-linux) runs commands on a pseudo-terminal");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    text(&output.stdout)
}

/// A runtime for the engine's async calls in a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout then stderr, for failure messages.
pub fn both(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

/// Compares `actual` with the golden file `path` (relative to the package
/// root) and shows the difference; `UPDATE_EXPECT=1` rewrites the file
/// instead (then review the diff). The one snapshot mechanism of the tests
/// (expect-test).
pub fn golden(path: &Path, actual: &str) {
    let path = std::env::current_dir().expect("cwd").join(path);
    expect_test::ExpectFile {
        path,
        position: file!(),
    }
    .assert_eq(actual);
}

/// The directories in `dir` (fixtures, plan cases, examples), sorted.
pub fn directories_in(dir: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{dir}: {error}"))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir())
        .collect();
    found.sort();
    found
}

/// The example configurations: the directories of `examples/` that hold
/// `.infra` files (`examples/ci/` holds CI pipelines, not a configuration).
pub fn example_configurations() -> Vec<PathBuf> {
    directories_in("examples")
        .into_iter()
        .filter(|dir| {
            std::fs::read_dir(dir).unwrap().any(|entry| {
                entry
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|e| e == "infra")
            })
        })
        .collect()
}

/// Every file under `dir` whose name ends with `ending` (`.rs`, or `""`
/// for all), with its text, sorted by path.
pub fn files_under(dir: &str, ending: &str) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from(dir)];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .expect("read dir")
                    .map(|entry| entry.expect("entry").path()),
            );
        } else if path.to_string_lossy().ends_with(ending) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            found.push((path, text));
        }
    }
    found.sort();
    found
}

/// The schemas of a fictional provider `test` (`test_network`,
/// `test_server` as the caller shapes them, and a data source
/// `test_image`), to exercise the front end's and the diff's schema rules.
pub fn test_provider_catalog(
    network: infra::eval::BlockSchema,
    server: infra::eval::BlockSchema,
) -> infra::eval::SchemaCatalog {
    use infra::eval::{AttributeSchema as A, BlockSchema, ProviderSchemas, TypeConstraint as T};
    let image = BlockSchema {
        attributes: [
            ("name".to_string(), A::required(T::String)),
            ("id".to_string(), A::computed(T::String)),
        ]
        .into(),
        blocks: Default::default(),
        set: false,
    };
    let mut catalog = infra::eval::SchemaCatalog::default();
    catalog.providers.insert(
        "test".into(),
        ProviderSchemas {
            resources: [
                ("test_network".to_string(), network),
                ("test_server".to_string(), server),
            ]
            .into(),
            data_sources: [("test_image".to_string(), image)].into(),
        },
    );
    catalog
}

/// The state at `path` as the next run reads it: the state file, with the
/// journal of an interrupted apply replayed over it (during a run the file
/// is saved only at intervals; the journal holds every finished change).
pub fn stored_state(path: &Path) -> Value {
    use infra::state::Backend as _;
    let stored = infra::state::LocalBackend::new(path)
        .read()
        .expect("the state reads");
    let state = stored.state.expect("there is a state");
    serde_json::from_str(&state.to_canonical_json()).expect("state is JSON")
}

pub fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write file");
}
/// demo-app, the service the local examples deploy: its own crate, built
/// beside infra by `cargo test --workspace` (or `cargo build -p demo-app`).
pub static DEMO_APP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let here = std::env::current_exe().expect("the test's own path");
    // target/debug/deps/<test> → target/debug/demo-app
    let built = here
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("demo-app"))
        .expect("a target directory");
    assert!(
        built.exists(),
        "{} is not built: run the tests with `cargo test --workspace`, or `cargo build -p demo-app` first",
        built.display()
    );
    built.display().to_string()
});

/// A child process killed (with its group) when dropped.
pub struct Process {
    pub child: Child,
    pub name: String,
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL now, as a crash would.
    pub fn kill(&mut self) {
        // A process group this test started.
        signal(self.pid(), true, Signal::KILL);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn in_own_group(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    command.process_group(0)
}

pub fn free_port() -> u16 {
    infra_provider_local::runtime::free_port().unwrap()
}

/// A demo-app backend on a port the system picked; `env` adds settings.
pub struct Backend {
    pub process: Process,
    pub addr: String,
    pub name: String,
    /// Its stderr, for a failing test to show.
    pub log: tempfile::NamedTempFile,
}

impl Backend {
    /// What it wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

/// Starts demo-app with `--port 0` and waits for the line naming the port
/// the system gave it: no other process can hold that port, unlike one
/// picked beforehand and bound later.
pub fn demo_app(name: &str, env: &[(&str, &str)]) -> Backend {
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut command = Command::new(&*DEMO_APP);
    command
        .args(["--port", "0"])
        .env("INFRA_INSTANCE", name)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("the log file"));
    let mut process = Process {
        child: in_own_group(&mut command).spawn().expect("start demo-app"),
        name: format!("demo-app {name}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|line| line.split_once(" listening on ").map(|(_, addr)| addr))
        {
            break addr.trim().to_string();
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("{} exited early: {status}\n{text}", process.name);
        }
        assert!(
            Instant::now() < deadline,
            "{} never listened\n{text}",
            process.name
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    Backend {
        process,
        addr,
        name: name.to_string(),
        log,
    }
}

/// `infra local-lb` with its runtime directory, and its admin API.
pub struct LoadBalancer {
    pub process: Process,
    pub listen: String,
    pub admin: String,
    pub token: String,
    _dir: tempfile::TempDir,
}

pub fn load_balancer() -> LoadBalancer {
    let dir = tempfile::tempdir().unwrap();
    let token = "test-token-0123456789abcdef".to_string();
    std::fs::write(dir.path().join("token"), &token).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(INFRA);
    command
        .args(["local-lb", "--listen", &listen, "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut process = Process {
        child: in_own_group(&mut command)
            .spawn()
            .expect("start infra local-lb"),
        name: "infra local-lb".into(),
    };
    let announced = dir.path().join("admin.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    let admin = loop {
        if let Ok(text) = std::fs::read_to_string(&announced)
            && let Ok(value) = serde_json::from_str::<Value>(&text)
        {
            break value["admin"].as_str().unwrap().to_string();
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("local-lb exited early: {status}");
        }
        assert!(Instant::now() < deadline, "local-lb never announced itself");
        std::thread::sleep(Duration::from_millis(10));
    };
    LoadBalancer {
        process,
        listen,
        admin,
        token,
        _dir: dir,
    }
}

impl LoadBalancer {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let response = http::send(
            &self.admin,
            Request {
                method,
                path,
                token: Some(&self.token),
                body: text.as_deref().map(str::as_bytes),
                ..Request::default()
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        (
            response.status,
            serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        )
    }

    /// Registers `backend` in `pool` with fast health checks.
    pub async fn register(&self, pool: &str, backend: &Backend) {
        self.register_addr(pool, &backend.name, &backend.addr).await;
    }

    /// Registers the backend at `addr` as `name` in `pool`, with fast
    /// health checks of `/healthz`.
    pub async fn register_addr(&self, pool: &str, name: &str, addr: &str) {
        let body = serde_json::json!({
            "pool": pool,
            "addr": addr,
            "health": {"path": "/healthz", "interval_ms": 100, "timeout_ms": 500,
                       "healthy_threshold": 2, "unhealthy_threshold": 2},
        });
        let (status, answer) = self
            .call("PUT", &format!("/backends/{name}"), Some(body))
            .await;
        assert!(status < 300, "register {name}: {status} {answer}");
    }

    pub async fn backend_status(&self, name: &str) -> Value {
        let (_, status) = self.call("GET", "/status", None).await;
        status["pools"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|pool| pool["backends"].as_array().unwrap().iter())
            .find(|b| b["id"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until the load balancer's checks agree on `name`'s health.
    pub async fn wait_health(&self, name: &str, healthy: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.backend_status(name).await["healthy"] != Value::Bool(healthy) {
            assert!(
                Instant::now() < deadline,
                "{name} never became healthy={healthy}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        http::get(&self.admin, "/metrics", Duration::from_secs(10))
            .await
            .unwrap()
            .text()
    }
}

/// What a load run saw: every answer's status and body, and every error.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub answers: Vec<(u16, String)>,
    pub errors: Vec<String>,
}

impl LoadResult {
    pub fn failed(&self) -> usize {
        self.errors.len()
            + self
                .answers
                .iter()
                .filter(|(s, _)| !(200..300).contains(s))
                .count()
    }

    /// Fails the test, with the first errors, if any request failed.
    pub fn assert_none_failed(&self, during: &str) {
        assert_eq!(
            self.failed(),
            0,
            "failed requests during {during}: {:?}",
            &self.errors[..self.errors.len().min(5)]
        );
    }

    /// Answers whose body names `instance`.
    pub fn served_by(&self, instance: &str) -> usize {
        let marker = format!("({instance})");
        self.answers
            .iter()
            .filter(|(_, body)| body.contains(&marker))
            .count()
    }
}

/// `count` GETs of `path` on `addr`, `concurrency` at a time, each on a new
/// connection. `progress` counts finished requests for the caller.
pub async fn load(
    addr: &str,
    path: &str,
    count: usize,
    concurrency: usize,
    progress: Arc<AtomicUsize>,
) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (addr, path, next, progress) = (
            addr.to_string(),
            path.to_string(),
            next.clone(),
            progress.clone(),
        );
        workers.spawn(async move {
            let mut result = LoadResult::default();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match http::get(&addr, &path, Duration::from_secs(30)).await {
                    Ok(answer) => result.answers.push((answer.status, answer.text())),
                    Err(error) => result.errors.push(error.to_string()),
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
            result
        });
    }
    let mut all = LoadResult::default();
    while let Some(part) = workers.join_next().await {
        let part = part.unwrap();
        all.answers.extend(part.answers);
        all.errors.extend(part.errors);
    }
    all
}

/// Sum of a Prometheus counter's samples whose labels contain `filter`.
pub fn metric_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target: PathBuf = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        } else if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        }
    }
}

/// The engine in process, as the CLI drives it but without a state file:
/// the one planning pipeline ([`infra::plan::Planner`]), then apply.
pub mod engine {
    use infra::apply::{ApplyReport, apply_in_memory};
    use infra::check::{CheckOptions, load};
    use infra::events::Events;
    use infra::plan::{PlanFailure, PlanOptions, Planned, Planner};
    use infra::providers::ProviderRegistry;
    use infra::state::State;

    pub async fn plan(
        options: &CheckOptions,
        state: &State,
        providers: &ProviderRegistry,
        parallelism: usize,
        destroy: bool,
    ) -> Result<Planned, PlanFailure> {
        let planner = Planner::new(
            providers,
            PlanOptions {
                parallelism,
                destroy,
                ..PlanOptions::default()
            },
        );
        planner.plan(load(options), options, state).await
    }

    pub async fn plan_and_apply(
        options: &CheckOptions,
        state: State,
        providers: &ProviderRegistry,
        parallelism: usize,
        destroy: bool,
    ) -> Result<(State, ApplyReport), PlanFailure> {
        let planned = plan(options, &state, providers, parallelism, destroy).await?;
        Ok(apply_in_memory(planned, providers, parallelism, Events::none()).await)
    }

    /// Options to check the configuration in `dir` with `providers`' schemas.
    pub fn options(dir: &std::path::Path, providers: &ProviderRegistry) -> CheckOptions {
        CheckOptions {
            dir: dir.to_path_buf(),
            schemas: providers.catalog(),
            ..CheckOptions::default()
        }
    }
}
