//! `local_lb`: infra's load balancer as a resource. Create starts the
//! process (see `lb/`) detached in its own session, so it outlives infra,
//! and waits until its admin API answers. Refresh checks that the very
//! process started (pid and start time) still runs and answers: a dead one
//! is gone, and the next apply starts it again. Destroy stops it.
//!
//! Its files are in `.infra/lb/<listen>/`: `token` (the admin token, mode
//! 0600), `admin.json` (what the process announces), `lb.log`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use infra_provider_sdk::*;
use serde_json::{Value, json};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::lb::protocol::{
    Announcement, BackendStatus, Balance, Deregistered, ErrorBody, PoolTotals, Registration,
    Routes, Settings, Status, Weights,
};
use crate::runtime::http::{self, Request};
use crate::runtime::process::{self, Detach, ProcessId, Spawn};
use crate::runtime::{RuntimeDir, random_token, write_atomically};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "infra's HTTP load balancer, a process on this machine",
        [
            (
                "listen",
                Attribute::required(AttributeType::String)
                    .force_new()
                    .describe("where clients connect, e.g. \"127.0.0.1:8080\" (loopback)"),
            ),
            (
                "connect_timeout",
                Attribute::optional_computed(AttributeType::String)
                    .describe("how long a connection to a backend may take (default \"1s\"); changed in place"),
            ),
            (
                "response_timeout",
                Attribute::optional_computed(AttributeType::String).describe(
                    "how long a backend may take to answer whole (default \"30s\"); an idempotent request that times out is tried once on another backend, else the client gets 504",
                ),
            ),
            (
                "max_failures",
                Attribute::optional_computed(AttributeType::Number).describe(
                    "failed requests in a row (5xx, timeout, connection error) that take a backend out of service until its health checks pass again; 0 never (default 5)",
                ),
            ),
            (
                "balance",
                Attribute::optional_computed(AttributeType::String).describe(
                    "\"round_robin\" (default) or \"least_outstanding\": the backend with the fewest requests in flight",
                ),
            ),
            (
                "id",
                Attribute::computed(AttributeType::String).describe("the listen address"),
            ),
            (
                "admin",
                Attribute::computed(AttributeType::String)
                    .describe("the admin API and /metrics, e.g. \"127.0.0.1:40123\""),
            ),
        ]
        .into_iter()
        .chain(process::identity_attributes()),
    )
}

/// The settings `config` asks for, defaults filled in.
fn settings_of(config: &Attributes) -> Result<Settings, ProviderError> {
    let defaults = Settings::default();
    let millis = |name: &str, default: u64| -> Result<u64, ProviderError> {
        match config.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(text)) => parse_duration(text)
                .filter(|d| !d.is_zero())
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .ok_or_else(|| {
                    ProviderError::new(format!(
                        "`{name}` = \"{text}\" is not a duration over zero like \"2s\" or \"500ms\""
                    ))
                    .at(name)
                }),
            Some(other) => Err(ProviderError::new(format!(
                "`{name}` must be a duration like \"2s\", not {other}"
            ))
            .at(name)),
        }
    };
    let max_failures = match config.get("max_failures") {
        None | Some(Value::Null) => defaults.max_failures,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                ProviderError::new(format!(
                    "`max_failures` must be a whole number (0: never), not {value}"
                ))
                .at("max_failures")
            })?,
    };
    let balance = match config.get("balance").and_then(Value::as_str) {
        None => defaults.balance,
        Some("round_robin") => Balance::RoundRobin,
        Some("least_outstanding") => Balance::LeastOutstanding,
        Some(other) => {
            return Err(ProviderError::new(format!(
                "`balance` = \"{other}\": use \"round_robin\" or \"least_outstanding\""
            ))
            .at("balance"));
        }
    };
    Ok(Settings {
        connect_timeout_ms: millis("connect_timeout", defaults.connect_timeout_ms)?,
        response_timeout_ms: millis("response_timeout", defaults.response_timeout_ms)?,
        max_failures,
        balance,
    })
}

/// The settings as the state records them: what the configuration wrote
/// (its own spelling), defaults as written in the docs.
fn recorded_settings(config: &Attributes) -> [(String, Value); 4] {
    let given = |name: &str, default: Value| {
        (
            name.to_string(),
            config
                .get(name)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default),
        )
    };
    [
        given("connect_timeout", json!("1s")),
        given("response_timeout", json!("30s")),
        given("max_failures", json!(Settings::default().max_failures)),
        given("balance", json!("round_robin")),
    ]
}

/// The defaults of the settings a plan leaves unknown (unset, new).
pub(crate) fn plan_defaults(planned: &mut PlannedAttributes) {
    for (name, default) in recorded_settings(&Attributes::new()) {
        if matches!(planned.get(&name), None | Some(Planned::Unknown)) {
            planned.insert(name, Planned::Known(default));
        }
    }
}

/// Settings as a running load balancer reports them, in the state's form.
fn reported_settings(settings: &Settings) -> [(String, Value); 4] {
    [
        (
            "connect_timeout".into(),
            json!(format!("{}ms", settings.connect_timeout_ms)),
        ),
        (
            "response_timeout".into(),
            json!(format!("{}ms", settings.response_timeout_ms)),
        ),
        ("max_failures".into(), json!(settings.max_failures)),
        (
            "balance".into(),
            json!(match settings.balance {
                Balance::RoundRobin => "round_robin",
                Balance::LeastOutstanding => "least_outstanding",
            }),
        ),
    ]
}

pub(crate) fn validate(config: &Attributes) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if let Err(error) = settings_of(config) {
        let mut diagnostic = Diagnostic::error(error.message);
        if let Some(attribute) = error.attribute {
            diagnostic = diagnostic.at(&attribute);
        }
        problems.push(diagnostic);
    }
    let Some(listen) = config.get("listen").and_then(Value::as_str) else {
        return problems;
    };
    problems.extend(validate_listen(listen));
    problems
}

fn validate_listen(listen: &str) -> Vec<Diagnostic> {
    crate::runtime::loopback_listen(listen, "the local load balancer", 8080)
        .err()
        .into_iter()
        .collect()
}

/// How to reach a running load balancer's admin API.
#[derive(Debug, Clone)]
pub struct AdminApi {
    pub addr: String,
    pub token: String,
    /// The pid it announced.
    pub pid: i32,
}

impl AdminApi {
    /// The load balancer listening on `listen`, from its runtime files.
    pub fn find(runtime: &RuntimeDir, listen: &str) -> Option<AdminApi> {
        let dir = runtime.load_balancer(listen);
        let announced: Announcement =
            serde_json::from_str(&std::fs::read_to_string(dir.join("admin.json")).ok()?).ok()?;
        Some(AdminApi {
            addr: announced.admin,
            token: std::fs::read_to_string(dir.join("token"))
                .ok()?
                .trim()
                .to_string(),
            pid: i32::try_from(announced.pid).ok()?,
        })
    }

    /// One call; the answer read as `T`. A 404 is `None` (nothing to do).
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Option<T>, ProviderError> {
        let text = body.map(|body| serde_json::to_string(body).expect("protocol types serialise"));
        let request = Request {
            method,
            path,
            token: Some(&self.token),
            body: text.as_deref().map(str::as_bytes),
            headers: &[],
        };
        // Draining waits on the server side: allow for it.
        let timeout = ADMIN_TIMEOUT + Duration::from_secs(600);
        let response = http::send(&self.addr, request, timeout)
            .await
            .map_err(|e| {
                ProviderError::new(format!(
                    "the load balancer's admin API at {} does not answer: {e}",
                    self.addr
                ))
                .with_code("LoadBalancerUnreachable")
            })?;
        if response.status == 404 {
            return Ok(None);
        }
        if response.status >= 400 {
            let error = serde_json::from_slice::<ErrorBody>(&response.body)
                .map_or_else(|_| response.text(), |body| body.error);
            return Err(ProviderError::new(format!(
                "{method} {path} on the load balancer: {} {error}",
                response.status
            ))
            .with_code("LoadBalancerRefused"));
        }
        serde_json::from_slice(&response.body)
            .map(Some)
            .map_err(|error| {
                ProviderError::new(format!(
                    "{method} {path} on the load balancer: an answer infra cannot read: {error}"
                ))
                .with_code("LoadBalancerRefused")
            })
    }

    /// `GET /status`: pools, weights, backends.
    pub async fn status(&self) -> Result<Status, ProviderError> {
        Ok(self
            .call::<Status>("GET", "/status", None::<&()>)
            .await?
            .unwrap_or_default())
    }

    /// `PUT /backends/ID` (the same registration again changes nothing).
    pub async fn register(
        &self,
        id: &str,
        registration: &Registration,
    ) -> Result<(), ProviderError> {
        self.call::<BackendStatus>("PUT", &format!("/backends/{id}"), Some(registration))
            .await
            .map(drop)
    }

    /// `GET /pools/NAME/totals`: what a pool has answered so far.
    pub async fn totals(&self, pool: &str) -> Result<PoolTotals, ProviderError> {
        Ok(self
            .call::<PoolTotals>("GET", &format!("/pools/{pool}/totals"), None::<&()>)
            .await?
            .unwrap_or_default())
    }

    /// `PUT /routes`: every route, replaced.
    pub async fn set_routes(&self, routes: &Routes) -> Result<(), ProviderError> {
        self.call::<Status>("PUT", "/routes", Some(routes))
            .await
            .map(drop)
    }

    /// `GET /settings`.
    pub async fn settings(&self) -> Result<Settings, ProviderError> {
        Ok(self
            .call::<Settings>("GET", "/settings", None::<&()>)
            .await?
            .unwrap_or_default())
    }

    /// `PUT /settings`: for the next request on.
    pub async fn set_settings(&self, settings: &Settings) -> Result<(), ProviderError> {
        self.call::<Settings>("PUT", "/settings", Some(settings))
            .await
            .map(drop)
    }

    /// `PUT /weights`: the pools' weights, all at once.
    pub async fn set_weights(&self, weights: &Weights) -> Result<(), ProviderError> {
        self.call::<Status>("PUT", "/weights", Some(weights))
            .await
            .map(drop)
    }

    /// `DELETE /backends/ID`: no new requests, up to `drain` for those in
    /// flight, then removed. `None` when it was not registered.
    pub async fn deregister(
        &self,
        id: &str,
        drain: Duration,
    ) -> Result<Option<Deregistered>, ProviderError> {
        let path = format!("/backends/{id}?drain_ms={}", drain.as_millis());
        self.call("DELETE", &path, None::<&()>).await
    }
}

fn listen_of(attributes: &Attributes) -> Result<&str, ProviderError> {
    attributes
        .get("listen")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::new("`listen` is required"))
}

fn state_of(
    listen: &str,
    admin: &str,
    id: ProcessId,
    settings: [(String, Value); 4],
) -> Attributes {
    let (pid, started) = id.to_json();
    let mut state: Attributes = [
        ("listen".to_string(), json!(listen)),
        ("id".to_string(), json!(listen)),
        ("admin".to_string(), json!(admin)),
        ("pid".to_string(), pid),
        ("started".to_string(), started),
    ]
    .into();
    state.extend(settings);
    state
}

/// Gives the running load balancer at `admin` the settings of `config`.
async fn configure(
    runtime: &RuntimeDir,
    listen: &str,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let settings = settings_of(config)?;
    let api = AdminApi::find(runtime, listen).ok_or_else(|| {
        ProviderError::new(format!("the load balancer on {listen} is not running"))
            .with_code("LoadBalancerUnreachable")
    })?;
    api.set_settings(&settings).await
}

/// `listen`'s settings changed in place.
pub(crate) async fn update(
    runtime: &RuntimeDir,
    prior: &Attributes,
    config: Attributes,
) -> Result<Attributes, ProviderError> {
    let listen = listen_of(&config)?;
    configure(runtime, listen, &config).await?;
    let mut state = prior.clone();
    state.extend(recorded_settings(&config));
    Ok(state)
}

/// The load balancer announced for `listen`, if it runs and answers.
async fn running(runtime: &RuntimeDir, listen: &str) -> Option<(String, ProcessId)> {
    let api = AdminApi::find(runtime, listen)?;
    api.status().await.ok()?;
    Some((api.addr, ProcessId::of(api.pid)?))
}

pub(crate) async fn create(
    runtime: &RuntimeDir,
    program: &[PathBuf],
    config: &Attributes,
) -> Result<Attributes, ProviderError> {
    let listen = listen_of(config)?;
    let io = |what: &str, e: std::io::Error| ProviderError::new(format!("cannot {what}: {e}"));
    runtime
        .ensure()
        .map_err(|e| io("create the runtime directory .infra/", e))?;
    let dir = runtime.load_balancer(listen);
    std::fs::create_dir_all(&dir).map_err(|e| io(&format!("create {}", dir.display()), e))?;
    // One left by an apply that was killed before it could save: adopt it.
    if let Some((admin, id)) = running(runtime, listen).await {
        configure(runtime, listen, config).await?;
        return Ok(state_of(listen, &admin, id, recorded_settings(config)));
    }
    let token_file = dir.join("token");
    if !token_file.exists() {
        let token = random_token().map_err(|e| io("make an admin token", e))?;
        write_atomically(&token_file, token.as_bytes(), 0o600)
            .map_err(|e| io(&format!("write {}", token_file.display()), e))?;
    }
    let _ = std::fs::remove_file(dir.join("admin.json"));
    let (executable, leading) = program
        .split_first()
        .ok_or_else(|| ProviderError::new("no program to run the load balancer with"))?;
    let mut args: Vec<String> = leading
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.extend([
        "--listen".to_string(),
        listen.to_string(),
        "--dir".to_string(),
        dir.to_string_lossy().into_owned(),
    ]);
    let log = dir.join("lb.log");
    let id = process::spawn(Spawn {
        program: &executable.to_string_lossy(),
        args: &args,
        env: &[],
        workdir: &dir,
        log: &log,
        detach: Detach::Session,
    })
    .map_err(|e| {
        io(
            &format!("start the load balancer ({})", executable.display()),
            e,
        )
    })?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((admin, announced)) = running(runtime, listen).await
            && announced.pid == id.pid
        {
            configure(runtime, listen, config).await?;
            return Ok(state_of(listen, &admin, id, recorded_settings(config)));
        }
        if !id.is_running() || Instant::now() > deadline {
            process::stop(id, false, Duration::from_secs(2)).await;
            return Err(ProviderError::new(format!(
                "the load balancer on {listen} did not start: {}",
                process::log_tail(&log, 3)
            ))
            .with_code("LoadBalancerFailed"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Still the process infra started, and answering?
pub(crate) async fn read(runtime: &RuntimeDir, state: Attributes) -> Option<Attributes> {
    let id = ProcessId::from_json(state.get("pid"), state.get("started"))?;
    if !id.is_running() {
        return None;
    }
    let listen = listen_of(&state).ok()?;
    let (admin, announced) = running(runtime, listen).await?;
    if announced.pid != id.pid {
        return None;
    }
    // Settings changed behind infra's back show as drift.
    let recorded = recorded_settings(&state);
    let settings = match AdminApi::find(runtime, listen)?.settings().await {
        Ok(now) if settings_of(&state).is_ok_and(|wanted| wanted == now) => recorded,
        Ok(now) => reported_settings(&now),
        Err(_) => recorded,
    };
    Some(state_of(listen, &admin, id, settings))
}

pub(crate) async fn delete(runtime: &RuntimeDir, state: &Attributes) {
    if let Some(id) = ProcessId::from_json(state.get("pid"), state.get("started")) {
        process::stop(id, false, Duration::from_secs(10)).await;
    }
    if let Ok(listen) = listen_of(state) {
        let _ = std::fs::remove_file(runtime.load_balancer(listen).join("admin.json"));
    }
}
