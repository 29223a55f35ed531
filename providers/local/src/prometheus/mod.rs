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
//! `rules.yml`, `data/`, `server.log` (`server.rs`: the process's life,
//! shared with `alertmanager.rs`, the `local_alertmanager` resource).
//! `query.rs` asks a server a PromQL query (the engine's rollout analysis
//! does).

pub mod alertmanager;
pub mod query;
mod render;
mod server;

use infra_provider_sdk::*;
use serde_json::{Value, json};

pub use render::{check_expression, targets_file};
pub(crate) use server::{create, delete, read, update};

use crate::runtime::process::{self, ProcessId};
use crate::runtime::{RuntimeDir, write_atomically};
use server::{Server, io_error};

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

/// The files of a Prometheus server for `config`: `prometheus.yml` and
/// `rules.yml`. A deployment's targets file is made now if it does not
/// exist yet (its fleet rewrites it as instances come and go).
fn files(
    runtime: &RuntimeDir,
    server: &Server,
    config: &Attributes,
) -> Result<[(&'static str, String); 2], ProviderError> {
    let scrapes = render::scrapes(config).map_err(invalid)?;
    let rules = render::alert_rules(config).map_err(invalid)?;
    let managers = alertmanagers(config).map_err(invalid)?;
    let [(_, scrape_interval), (_, evaluation_interval), _] = settings(config);
    let rules_path = server.file("rules.yml");
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
    Ok([
        ("rules.yml", render::rules_file(&rules)),
        ("prometheus.yml", text),
    ])
}

fn state_of(listen: &str, id: ProcessId, config: &Attributes) -> Attributes {
    let mut state = config.clone();
    for name in ["scrape", "alertmanagers"] {
        if config.get(name).is_some_and(|v| !v.is_null())
            && let Some(value) = canonical(config, name)
        {
            state.insert(name.to_string(), value);
        }
    }
    state.extend(server::identity(listen, id));
    for (name, value) in settings(config) {
        state.insert(name.to_string(), json!(value));
    }
    state
}

/// The `local_prometheus` kind of server.
pub(crate) struct Prometheus;

impl server::Kind for Prometheus {
    const WHAT: &'static str = "Prometheus";
    const DIR: &'static str = "prometheus";

    fn program() -> Result<std::path::PathBuf, ProviderError> {
        server::find_program("prometheus", "INFRA_PROMETHEUS").ok_or_else(|| {
            ProviderError::new(
                "no `prometheus` program: install Prometheus (e.g. `apt-get install prometheus`) or set INFRA_PROMETHEUS to its path",
            )
            .with_code("PrometheusMissing")
        })
    }

    fn files(
        runtime: &RuntimeDir,
        server: &Server,
        config: &Attributes,
    ) -> Result<Vec<(&'static str, String)>, ProviderError> {
        files(runtime, server, config).map(Vec::from)
    }

    fn args(server: &Server, config: &Attributes) -> Vec<String> {
        let [_, _, (_, retention)] = settings(config);
        vec![
            format!("--config.file={}", server.file("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", server.file("data").display()),
            format!("--storage.tsdb.retention.time={retention}"),
            format!("--web.listen-address={}", server.listen),
            "--web.enable-lifecycle".to_string(),
        ]
    }

    fn state_of(listen: &str, id: ProcessId, config: &Attributes) -> Attributes {
        state_of(listen, id, config)
    }
}
