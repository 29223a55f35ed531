//! `local_alertmanager`: Prometheus's Alertmanager (Debian's
//! `prometheus-alertmanager`) as a resource, which sends the alerts a
//! `local_prometheus` fires (its `alertmanagers`) to webhooks. Its life is
//! a Prometheus server's (`server.rs`): created ready, refreshed by pid,
//! start time and `/-/ready`, updated by a reload that changes nothing when
//! refused, destroyed. Clustering is off (it would listen on every
//! interface); the files are in `.infra/alertmanager/<listen>/`.

use infra_provider_sdk::*;
use serde_json::{Value, json};

use super::server::{self, Server};
use crate::runtime::RuntimeDir;
use crate::runtime::process::ProcessId;

/// The timings of the one route, with their defaults (Alertmanager's own).
const TIMINGS: [(&str, &str, &str); 3] = [
    (
        "group_wait",
        "10s",
        "how long the first alert of a group waits for others before it is sent (default \"10s\")",
    ),
    (
        "group_interval",
        "5m",
        "how long before alerts newly added to a group are sent (default \"5m\")",
    ),
    (
        "repeat_interval",
        "4h",
        "how long before a firing alert is sent again (default \"4h\")",
    ),
];

pub(crate) fn schema() -> ResourceSchema {
    let mut attributes = vec![
        (
            "listen",
            Attribute::required(AttributeType::String)
                .force_new()
                .describe("its web UI and API, e.g. \"127.0.0.1:9093\" (loopback)"),
        ),
        (
            "webhooks",
            Attribute::optional(AttributeType::List(Box::new(AttributeType::String))).describe(
                "URLs each alert is POSTed to (Alertmanager's webhook format), when it fires and when it is resolved",
            ),
        ),
        (
            "id",
            Attribute::computed(AttributeType::String).describe("the listen address"),
        ),
        (
            "url",
            Attribute::computed(AttributeType::String)
                .describe("its base URL, e.g. \"http://127.0.0.1:9093\""),
        ),
    ];
    for (name, _, description) in TIMINGS {
        attributes.push((
            name,
            Attribute::optional_computed(AttributeType::String).describe(description),
        ));
    }
    ResourceSchema::new(
        "Prometheus's Alertmanager, a process on this machine",
        attributes
            .into_iter()
            .chain(crate::runtime::process::identity_attributes()),
    )
}

fn timings(config: &Attributes) -> Vec<(&'static str, String)> {
    TIMINGS
        .iter()
        .map(|(name, default, _)| {
            let written = config.get(*name).and_then(Value::as_str);
            (*name, written.unwrap_or(default).to_string())
        })
        .collect()
}

fn webhooks(config: &Attributes) -> Vec<String> {
    config
        .get("webhooks")
        .and_then(Value::as_array)
        .map(|urls| {
            urls.iter()
                .filter_map(|url| url.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Unset timings are planned as their defaults; `id` and `url` from
/// `listen`.
pub(crate) fn plan_defaults(planned: &mut PlannedAttributes) {
    for (name, default, _) in TIMINGS {
        if matches!(planned.get(name), None | Some(Planned::Unknown)) {
            planned.insert(name.to_string(), Planned::Known(json!(default)));
        }
    }
    if let Some(Planned::Known(Value::String(listen))) = planned.get("listen").cloned() {
        planned.insert("id".into(), Planned::Known(json!(listen)));
        planned.insert(
            "url".into(),
            Planned::Known(json!(format!("http://{listen}"))),
        );
    }
}

pub(crate) fn validate(config: &Attributes) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if let Some(listen) = config.get("listen").and_then(Value::as_str)
        && let Err(problem) = crate::runtime::loopback_listen(listen, "a local Alertmanager", 9093)
    {
        problems.push(problem);
    }
    for (index, url) in webhooks(config).iter().enumerate() {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            problems.push(
                Diagnostic::error(format!("`{url}` is not an http:// or https:// URL"))
                    .at(&format!("webhooks.{index}"))
                    .help("e.g. webhooks = [\"http://127.0.0.1:5001/alerts\"]"),
            );
        }
    }
    for (name, _, _) in TIMINGS {
        if let Some(text) = config.get(name).and_then(Value::as_str)
            && parse_duration(text).is_none_or(|d| d.is_zero())
        {
            problems.push(
                Diagnostic::error(format!("`{name}` = \"{text}\" is not a duration over zero"))
                    .at(name)
                    .help("write e.g. \"10s\" or \"5m\""),
            );
        }
    }
    problems
}

/// `alertmanager.yml`: one route to one receiver, which posts to every
/// webhook.
fn config_file(config: &Attributes) -> String {
    let mut route = json!({ "receiver": "infra", "group_by": ["alertname"] });
    for (name, value) in timings(config) {
        route[name] = json!(value);
    }
    let hooks: Vec<Value> = webhooks(config)
        .iter()
        .map(|url| json!({ "url": url, "send_resolved": true }))
        .collect();
    let mut receiver = json!({ "name": "infra" });
    if !hooks.is_empty() {
        receiver["webhook_configs"] = json!(hooks);
    }
    serde_json::to_string_pretty(&json!({ "route": route, "receivers": [receiver] })).expect("JSON")
}

fn state_of(listen: &str, id: ProcessId, config: &Attributes) -> Attributes {
    let mut state = config.clone();
    state.extend(server::identity(listen, id));
    for (name, value) in timings(config) {
        state.insert(name.to_string(), json!(value));
    }
    state
}

/// The `local_alertmanager` kind of server.
pub(crate) struct Alertmanager;

impl server::Kind for Alertmanager {
    const WHAT: &'static str = "Alertmanager";
    const DIR: &'static str = "alertmanager";

    fn program() -> Result<std::path::PathBuf, ProviderError> {
        server::find_program("prometheus-alertmanager", "INFRA_ALERTMANAGER")
            .or_else(|| server::find_program("alertmanager", "INFRA_ALERTMANAGER"))
            .ok_or_else(|| {
                ProviderError::new(
                    "no Alertmanager program: install it (e.g. `apt-get install prometheus-alertmanager`) or set INFRA_ALERTMANAGER to its path",
                )
                .with_code("AlertmanagerMissing")
            })
    }

    fn files(
        _: &RuntimeDir,
        _: &Server,
        config: &Attributes,
    ) -> Result<Vec<(&'static str, String)>, ProviderError> {
        Ok(vec![("alertmanager.yml", config_file(config))])
    }

    fn args(server: &Server, _: &Attributes) -> Vec<String> {
        vec![
            format!(
                "--config.file={}",
                server.file("alertmanager.yml").display()
            ),
            format!("--storage.path={}", server.file("data").display()),
            format!("--web.listen-address={}", server.listen),
            // No gossip port on every interface: one Alertmanager, alone.
            "--cluster.listen-address=".to_string(),
        ]
    }

    fn state_of(listen: &str, id: ProcessId, config: &Attributes) -> Attributes {
        state_of(listen, id, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_route_posts_to_every_webhook_with_the_timings() {
        let config: Attributes = serde_json::from_value(json!({
            "listen": "127.0.0.1:9093",
            "webhooks": ["http://127.0.0.1:5001/a", "http://127.0.0.1:5001/b"],
            "group_wait": "1s",
        }))
        .unwrap();
        let file: Value = serde_json::from_str(&config_file(&config)).unwrap();
        assert_eq!(file["route"]["group_wait"], "1s");
        assert_eq!(file["route"]["repeat_interval"], "4h");
        assert_eq!(
            file["receivers"][0]["webhook_configs"][1]["url"],
            "http://127.0.0.1:5001/b"
        );
        assert!(validate(&config).is_empty());
        let bad: Attributes =
            serde_json::from_value(json!({ "listen": "0.0.0.0:9093", "webhooks": ["ftp://x"] }))
                .unwrap();
        let problems = validate(&bad);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[1].attribute.as_deref(), Some("webhooks.0"));
    }
}
