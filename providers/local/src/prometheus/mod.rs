//! `local_prometheus`: a real Prometheus server (the `prometheus` program,
//! e.g. Debian's package) as a resource. Create writes its configuration
//! (`render.rs`: what `scrape` references, the `alert` rules) and starts it
//! detached, listening on `listen`, and waits until it is ready. Refresh
//! checks that the very process started (pid and start time) still runs
//! and answers `/-/ready`: a dead server is gone, and the next apply starts
//! it again. Update rewrites the files and reloads it (`POST /-/reload`);
//! one it refuses is put back as it was. Destroy stops it.
//!
//! Its files are in `.infra/prometheus/<listen>/`: `prometheus.yml`,
//! `rules.yml`, `data/`, `prometheus.log`. `query.rs` asks a server a
//! PromQL query (the engine's rollout analysis does).

pub mod query;
mod render;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use infra_provider_sdk::*;
use serde_json::{Value, json};

pub use render::{check_expression, targets_file};

use crate::runtime::http::{self, Request};
use crate::runtime::process::{self, Detach, ProcessId, Spawn};
use crate::runtime::{RuntimeDir, write_atomically};

/// How long a new server may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn schema() -> ResourceSchema {
    let alert = ResourceSchema::new(
        "an alert rule the server evaluates",
        [
            (
                "name",
                Attribute::required(AttributeType::String)
                    .describe("the alert's name, e.g. \"HighErrorRate\""),
            ),
            (
                "expr",
                Attribute::required(AttributeType::String).describe(
                    "the PromQL condition; the alert is pending while it returns anything",
                ),
            ),
            (
                "for",
                Attribute::optional(AttributeType::String).describe(
                    "how long the condition must hold before the alert fires (default \"0s\")",
                ),
            ),
            (
                "severity",
                Attribute::optional(AttributeType::String)
                    .describe("the `severity` label (default \"warning\")"),
            ),
            (
                "summary",
                Attribute::optional(AttributeType::String)
                    .describe("the `summary` annotation, what a notification says"),
            ),
        ],
    );
    ResourceSchema::new(
        "a Prometheus server, a process on this machine",
        [
            (
                "listen",
                Attribute::required(AttributeType::String)
                    .force_new()
                    .describe("its web UI and API, e.g. \"127.0.0.1:9090\" (loopback)"),
            ),
            (
                "scrape",
                Attribute::optional(AttributeType::Any).describe(
                    "what to scrape: references to local_lb and deployment resources, or \"HOST:PORT\"",
                ),
            ),
            (
                "scrape_interval",
                Attribute::optional_computed(AttributeType::String)
                    .describe("how often targets are scraped (default \"15s\")"),
            ),
            (
                "evaluation_interval",
                Attribute::optional_computed(AttributeType::String)
                    .describe("how often alert rules are evaluated (default: scrape_interval)"),
            ),
            (
                "retention",
                Attribute::optional_computed(AttributeType::String)
                    .describe("how long samples are kept (default \"1d\")"),
            ),
            (
                "alertmanagers",
                Attribute::optional(AttributeType::Any).describe(
                    "where firing alerts are sent: references to local_alertmanager resources or \"HOST:PORT\"",
                ),
            ),
            (
                "id",
                Attribute::computed(AttributeType::String).describe("the listen address"),
            ),
            (
                "url",
                Attribute::computed(AttributeType::String)
                    .describe("its base URL, e.g. \"http://127.0.0.1:9090\", for queries"),
            ),
        ]
        .into_iter()
        .chain(process::identity_attributes()),
    )
    .with_block("alert", alert)
}

/// The listen address's URL, known at plan time.
fn url_of(listen: &str) -> String {
    format!("http://{listen}")
}

fn listen_of(attributes: &Attributes) -> Result<&str, ProviderError> {
    attributes
        .get("listen")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::new("`listen` is required"))
}

fn text_or<'a>(config: &'a Attributes, name: &str, default: &'a str) -> &'a str {
    config
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .unwrap_or(default)
}

/// The settings the state records, defaults filled in.
fn settings(config: &Attributes) -> [(&'static str, String); 3] {
    let scrape = text_or(config, "scrape_interval", "15s");
    [
        ("scrape_interval", scrape.to_string()),
        (
            "evaluation_interval",
            text_or(config, "evaluation_interval", scrape).to_string(),
        ),
        ("retention", text_or(config, "retention", "1d").to_string()),
    ]
}

/// Unset settings are planned as their defaults, and `url` and `id` from
/// `listen`, not as values known only after apply.
pub(crate) fn plan_defaults(planned: &mut PlannedAttributes) {
    let known = |value: Option<&Planned>| match value {
        Some(Planned::Known(value)) => Some(value.clone()),
        _ => None,
    };
    let mut written = Attributes::new();
    for name in [
        "scrape_interval",
        "evaluation_interval",
        "retention",
        "listen",
    ] {
        if let Some(value) = known(planned.get(name)) {
            written.insert(name.to_string(), value);
        }
    }
    if matches!(planned.get("scrape_interval"), Some(Planned::Unknown))
        || matches!(planned.get("listen"), Some(Planned::Unknown) | None)
    {
        return;
    }
    for (name, value) in settings(&written) {
        if matches!(planned.get(name), None | Some(Planned::Unknown)) {
            planned.insert(name.to_string(), Planned::Known(json!(value)));
        }
    }
    if let Some(listen) = written.get("listen").and_then(Value::as_str) {
        planned.insert("id".into(), Planned::Known(json!(listen)));
        planned.insert("url".into(), Planned::Known(json!(url_of(listen))));
    }
    for name in ["scrape", "alertmanagers"] {
        if let Some(Planned::Known(value)) = planned.get(name)
            && !value.is_null()
        {
            let given = Attributes::from([(name.to_string(), value.clone())]);
            if let Some(value) = canonical(&given, name) {
                planned.insert(name.to_string(), Planned::Known(value));
            }
        }
    }
}

/// `scrape` or `alertmanagers` of `config` in the form the state keeps
/// (see [`render::canonical`]); `None` when it cannot be read.
fn canonical(config: &Attributes, name: &str) -> Option<Value> {
    match name {
        "scrape" => render::scrapes(config).ok().map(|s| render::canonical(&s)),
        _ => alertmanagers(config).ok().map(|list| json!(list)),
    }
}

pub(crate) fn validate(config: &Attributes) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if let Some(listen) = config.get("listen").and_then(Value::as_str)
        && let Err(problem) = crate::runtime::loopback_listen(listen, "a local Prometheus", 9090)
    {
        problems.push(problem);
    }
    for name in ["scrape_interval", "evaluation_interval", "retention"] {
        if let Some(text) = config.get(name).and_then(Value::as_str)
            && parse_duration(text).is_none_or(|d| d.is_zero())
        {
            problems.push(
                Diagnostic::error(format!("`{name}` = \"{text}\" is not a duration over zero"))
                    .at(name)
                    .help("write e.g. \"15s\", \"1m\" or \"1d\""),
            );
        }
    }
    if config.contains_key("scrape")
        && let Err(problem) = render::scrapes(config)
    {
        problems.push(problem);
    }
    if config.contains_key("alertmanagers")
        && let Err(problem) = alertmanagers(config)
    {
        problems.push(problem);
    }
    match render::alert_rules(config) {
        Ok(rules) => problems.extend(render::check_rules(&rules)),
        Err(problem) => problems.push(problem),
    }
    problems
}

/// The `alertmanagers` as addresses: an object's `listen`, or a string.
fn alertmanagers(config: &Attributes) -> Result<Vec<String>, Diagnostic> {
    let Some(list) = config.get("alertmanagers").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| Diagnostic::error("`alertmanagers` must be a list").at("alertmanagers"))?;
    list.iter()
        .enumerate()
        .map(|(index, entry)| {
            entry
                .as_str()
                .or_else(|| entry.get("listen").and_then(Value::as_str))
                .filter(|addr| addr.parse::<std::net::SocketAddr>().is_ok())
                .map(String::from)
                .ok_or_else(|| {
                    Diagnostic::error(format!(
                        "alertmanagers entry {index} is neither a local_alertmanager nor \"HOST:PORT\""
                    ))
                    .at(&format!("alertmanagers.{index}"))
                    .help("e.g. alertmanagers = [local_alertmanager.main]")
                })
        })
        .collect()
}

/// A problem found in the arguments at apply, as an error.
fn invalid(problem: Diagnostic) -> ProviderError {
    let mut error = ProviderError::new(problem.summary).with_code("InvalidArgument");
    if let Some(attribute) = problem.attribute {
        error = error.at(attribute);
    }
    error
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn of(runtime: &RuntimeDir, listen: &str) -> Files {
        Files {
            dir: runtime
                .root()
                .join("prometheus")
                .join(crate::runtime::file_name(listen)),
        }
    }
    fn config(&self) -> PathBuf {
        self.dir.join("prometheus.yml")
    }
    fn rules(&self) -> PathBuf {
        self.dir.join("rules.yml")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("prometheus.log")
    }
    /// The process started last, written the moment it starts: a server an
    /// apply killed before it could save is adopted by the next create.
    fn process(&self) -> PathBuf {
        self.dir.join("process.json")
    }

    /// Writes both files for `config`; returns what they held before.
    fn write(
        &self,
        runtime: &RuntimeDir,
        config: &Attributes,
    ) -> Result<[Option<Vec<u8>>; 2], ProviderError> {
        let scrapes = render::scrapes(config).map_err(invalid)?;
        let rules = render::alert_rules(config).map_err(invalid)?;
        let managers = alertmanagers(config).map_err(invalid)?;
        let [(_, scrape_interval), (_, evaluation_interval), _] = settings(config);
        let rules_path = self.rules();
        let text = render::config_file(
            runtime,
            &render::Settings {
                scrape_interval: &scrape_interval,
                evaluation_interval: &evaluation_interval,
                rules: &rules_path,
                alertmanagers: &managers,
            },
            &scrapes,
        );
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        // A deployment's targets file exists before Prometheus reads it
        // (its fleet rewrites it as instances come and go).
        for scrape in &scrapes {
            if let render::Scrape::Deployment { address } = scrape {
                let file = targets_file(runtime, address);
                if !file.exists() {
                    if let Some(dir) = file.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
                    }
                    write_atomically(&file, b"[]", 0o644).map_err(|e| io_error(&file, e))?;
                }
            }
        }
        let before = [
            std::fs::read(self.config()).ok(),
            std::fs::read(self.rules()).ok(),
        ];
        write_atomically(&self.rules(), render::rules_file(&rules).as_bytes(), 0o644)
            .map_err(|e| io_error(&self.rules(), e))?;
        write_atomically(&self.config(), text.as_bytes(), 0o644)
            .map_err(|e| io_error(&self.config(), e))?;
        Ok(before)
    }

    fn restore(&self, before: [Option<Vec<u8>>; 2]) {
        for (path, content) in [self.config(), self.rules()].into_iter().zip(before) {
            match content {
                Some(content) => {
                    let _ = write_atomically(&path, &content, 0o644);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

fn io_error(path: &Path, error: std::io::Error) -> ProviderError {
    ProviderError::new(format!("cannot write {}: {error}", path.display()))
}

fn state_of(listen: &str, id: ProcessId, config: &Attributes) -> Attributes {
    let (pid, started) = id.to_json();
    let mut state = config.clone();
    for name in ["scrape", "alertmanagers"] {
        if config.get(name).is_some_and(|v| !v.is_null())
            && let Some(value) = canonical(config, name)
        {
            state.insert(name.to_string(), value);
        }
    }
    state.extend([
        ("listen".to_string(), json!(listen)),
        ("id".to_string(), json!(listen)),
        ("url".to_string(), json!(url_of(listen))),
        ("pid".to_string(), pid),
        ("started".to_string(), started),
    ]);
    for (name, value) in settings(config) {
        state.insert(name.to_string(), json!(value));
    }
    state
}

/// Whether the server on `listen` answers `/-/ready` with 200.
async fn ready(listen: &str) -> bool {
    http::get(listen, "/-/ready", Duration::from_secs(2))
        .await
        .is_ok_and(|answer| answer.status == 200)
}

pub(crate) async fn create(
    runtime: &RuntimeDir,
    config: &Attributes,
) -> Result<Attributes, ProviderError> {
    let listen = listen_of(config)?;
    let program = render::find_program("prometheus", "INFRA_PROMETHEUS").ok_or_else(|| {
        ProviderError::new(
            "no `prometheus` program: install Prometheus (e.g. `apt-get install prometheus`) or set INFRA_PROMETHEUS to its path",
        )
        .with_code("PrometheusMissing")
    })?;
    runtime.ensure().map_err(|e| io_error(runtime.root(), e))?;
    let files = Files::of(runtime, listen);
    let started_before = std::fs::read_to_string(files.process())
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|value| ProcessId::from_json(value.get("pid"), value.get("started")))
        .filter(|id| id.is_running());
    if let Some(id) = started_before
        && ready(listen).await
    {
        let prior = state_of(listen, id, &Attributes::new());
        return update(runtime, &prior, config.clone()).await;
    }
    files.write(runtime, config)?;
    let [_, _, (_, retention)] = settings(config);
    let args = vec![
        format!("--config.file={}", files.config().display()),
        format!("--storage.tsdb.path={}", files.dir.join("data").display()),
        format!("--storage.tsdb.retention.time={retention}"),
        format!("--web.listen-address={listen}"),
        "--web.enable-lifecycle".to_string(),
    ];
    let id = process::spawn(Spawn {
        program: &program.to_string_lossy(),
        args: &args,
        env: &[],
        workdir: &files.dir,
        log: &files.log(),
        detach: Detach::Session,
    })
    .map_err(|e| {
        ProviderError::new(format!("cannot start {}: {e}", program.display()))
            .with_code("PrometheusFailed")
    })?;
    let (pid, started) = id.to_json();
    write_atomically(
        &files.process(),
        json!({ "pid": pid, "started": started })
            .to_string()
            .as_bytes(),
        0o644,
    )
    .map_err(|e| io_error(&files.process(), e))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !id.is_running() || Instant::now() > deadline {
            process::stop(id, false, Duration::from_secs(5)).await;
            return Err(ProviderError::new(format!(
                "Prometheus on {listen} did not start: {}",
                process::log_tail(&files.log(), 3)
            ))
            .with_code("PrometheusFailed"));
        }
        if ready(listen).await {
            // Another process answering on the port is not ours.
            if !id.is_running() {
                continue;
            }
            return Ok(state_of(listen, id, config));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Still the process infra started, and ready?
pub(crate) async fn read(state: Attributes) -> Option<Attributes> {
    let id = ProcessId::from_json(state.get("pid"), state.get("started"))?;
    if !id.is_running() {
        return None;
    }
    let listen = listen_of(&state).ok()?;
    ready(listen).await.then_some(state)
}

/// New files, then a reload; a configuration the server refuses is put
/// back as it was (and reloaded), and the error says why.
pub(crate) async fn update(
    runtime: &RuntimeDir,
    prior: &Attributes,
    config: Attributes,
) -> Result<Attributes, ProviderError> {
    let listen = listen_of(&config)?;
    let id = ProcessId::from_json(prior.get("pid"), prior.get("started"))
        .filter(|id| id.is_running())
        .ok_or_else(|| {
            ProviderError::new(format!("Prometheus on {listen} is not running"))
                .with_code("PrometheusUnreachable")
        })?;
    let files = Files::of(runtime, listen);
    let before = files.write(runtime, &config)?;
    if let Err(why) = reload(listen).await {
        files.restore(before);
        let _ = reload(listen).await;
        return Err(ProviderError::new(format!(
            "Prometheus on {listen} refused the new configuration (the previous one is kept): {why}"
        ))
        .with_code("PrometheusRefused"));
    }
    let mut state = state_of(listen, id, &config);
    state.insert(
        "started".into(),
        prior.get("started").cloned().unwrap_or(Value::Null),
    );
    Ok(state)
}

async fn reload(listen: &str) -> Result<(), String> {
    let request = Request {
        method: "POST",
        path: "/-/reload",
        ..Request::default()
    };
    match http::send(listen, request, Duration::from_secs(30)).await {
        Ok(answer) if answer.status == 200 => Ok(()),
        Ok(answer) => Err(answer.text().trim().to_string()),
        Err(error) => Err(error.to_string()),
    }
}

pub(crate) async fn delete(state: &Attributes) {
    if let Some(id) = ProcessId::from_json(state.get("pid"), state.get("started")) {
        process::stop(id, false, Duration::from_secs(10)).await;
    }
}
