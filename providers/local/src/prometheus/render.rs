//! What a `local_prometheus` runs on: its configuration and rules files,
//! made from the resource's arguments, and `promtool`'s check of the rules.
//!
//! Both files are written as JSON, which is YAML too (Prometheus reads
//! either). A `scrape` entry is what a reference gives:
//!
//! - a `local_lb` (an object with `listen` and `admin`): its `/metrics` on
//!   the admin port, job `local_lb/LISTEN`;
//! - a `deployment` (an object with `address`, or the state's `id`, that
//!   names `deployment.…`): file-based discovery of the file its fleet
//!   rewrites as instances start and stop (`.infra/deployments/ADDRESS/
//!   targets.json`), job `ADDRESS` — a rollout's new instances are scraped
//!   without a restart;
//! - another object with `listen` (a `local_prometheus`, for example), or
//!   a string `"HOST:PORT"`: that address's `/metrics`.

use std::path::{Path, PathBuf};
use std::process::Command;

use infra_provider_sdk::{Attributes, Diagnostic, parse_duration};
use serde_json::{Value, json};

use crate::runtime::RuntimeDir;

/// One alert rule, as an `alert { … }` block writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlertRule {
    pub name: String,
    pub expr: String,
    pub hold: String,
    pub severity: String,
    pub summary: Option<String>,
}

/// The `alert` blocks of `config`; problems name the block and argument.
pub(crate) fn alert_rules(config: &Attributes) -> Result<Vec<AlertRule>, Diagnostic> {
    let Some(blocks) = config.get("alert").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let blocks = blocks
        .as_array()
        .ok_or_else(|| Diagnostic::error("`alert` must be blocks").at("alert"))?;
    let mut rules = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let at = |name: &str| format!("alert.{index}.{name}");
        let text = |name: &str| block.get(name).and_then(Value::as_str).map(String::from);
        let name = text("name").ok_or_else(|| {
            Diagnostic::error("an `alert` block needs a `name`")
                .at(&at("name"))
                .help("e.g. name = \"HighErrorRate\" (letters, digits and _)")
        })?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(
                Diagnostic::error(format!("`{name}` is not a valid alert name"))
                    .at(&at("name"))
                    .help("an alert's name is a metric-style name: letters, digits and _, not starting with a digit"),
            );
        }
        let expr = text("expr").ok_or_else(|| {
            Diagnostic::error(format!("alert `{name}` needs an `expr`"))
                .at(&at("expr"))
                .help("a PromQL condition, e.g. expr = \"rate(errors_total[1m]) > 0.1\"")
        })?;
        let hold = text("for").unwrap_or_else(|| "0s".into());
        if parse_duration(&hold).is_none() {
            return Err(Diagnostic::error(format!(
                "alert `{name}`: `for` = \"{hold}\" is not a duration"
            ))
            .at(&at("for"))
            .help("how long the condition must hold before the alert fires, e.g. \"1m\""));
        }
        rules.push(AlertRule {
            name,
            expr,
            hold,
            severity: text("severity").unwrap_or_else(|| "warning".into()),
            summary: text("summary"),
        });
    }
    Ok(rules)
}

/// The rules file: one group, `infra`, evaluated every
/// `evaluation_interval`.
pub(crate) fn rules_file(rules: &[AlertRule]) -> String {
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let mut annotations = serde_json::Map::new();
            if let Some(summary) = &rule.summary {
                annotations.insert("summary".into(), json!(summary));
            }
            json!({
                "alert": rule.name,
                "expr": rule.expr,
                "for": rule.hold,
                "labels": { "severity": rule.severity },
                "annotations": annotations,
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "groups": [{ "name": "infra", "rules": rules }] }))
        .expect("JSON")
}

/// How one `scrape` entry is scraped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scrape {
    Static { job: String, target: String },
    Deployment { address: String },
}

/// The entries of `scrape`, read.
pub(crate) fn scrapes(config: &Attributes) -> Result<Vec<Scrape>, Diagnostic> {
    let Some(entries) = config.get("scrape").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let entries = entries.as_array().ok_or_else(|| {
        Diagnostic::error("`scrape` must be a list")
            .at("scrape")
            .help("e.g. scrape = [local_lb.front, deployment.web, \"127.0.0.1:9100\"]")
    })?;
    let mut scrapes = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let address = entry
            .get("deployment")
            .or_else(|| entry.get("address"))
            .or_else(|| entry.get("id"))
            .and_then(Value::as_str)
            .filter(|a| a.starts_with("deployment.") || a.contains(".deployment."));
        let scrape = match entry {
            Value::String(target) => Scrape::Static {
                job: target.clone(),
                target: target.clone(),
            },
            // As `canonical` writes them (the state).
            Value::Object(fields)
                if fields.contains_key("job") && fields.contains_key("target") =>
            {
                Scrape::Static {
                    job: fields["job"].as_str().unwrap_or_default().to_string(),
                    target: fields["target"].as_str().unwrap_or_default().to_string(),
                }
            }
            _ if address.is_some() => Scrape::Deployment {
                address: address.unwrap_or_default().to_string(),
            },
            Value::Object(fields) => match (
                fields.get("admin").and_then(Value::as_str),
                fields.get("listen").and_then(Value::as_str),
            ) {
                (Some(admin), Some(listen)) => Scrape::Static {
                    job: format!("local_lb/{listen}"),
                    target: admin.to_string(),
                },
                (None, Some(listen)) => Scrape::Static {
                    job: listen.to_string(),
                    target: listen.to_string(),
                },
                _ => return Err(not_scrapable(index)),
            },
            _ => return Err(not_scrapable(index)),
        };
        if let Scrape::Static { target, .. } = &scrape
            && target.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(Diagnostic::error(format!(
                "scrape entry {index}: `{target}` is not an address and port"
            ))
            .at(&format!("scrape.{index}"))
            .help("write it as \"127.0.0.1:9100\""));
        }
        scrapes.push(scrape);
    }
    Ok(scrapes)
}

/// `scrape` as the state keeps it and the plan shows it: what is scraped,
/// not the whole objects referred to (a deployment's new version changes
/// nothing here).
pub(crate) fn canonical(scrapes: &[Scrape]) -> Value {
    scrapes
        .iter()
        .map(|scrape| match scrape {
            Scrape::Static { job, target } => json!({ "job": job, "target": target }),
            Scrape::Deployment { address } => json!({ "job": address, "deployment": address }),
        })
        .collect()
}

fn not_scrapable(index: usize) -> Diagnostic {
    Diagnostic::error(format!(
        "scrape entry {index} is neither a local_lb, a deployment nor \"HOST:PORT\""
    ))
    .at(&format!("scrape.{index}"))
    .help("list references to what to scrape: scrape = [local_lb.front, deployment.web]")
}

/// Where a deployment's fleet keeps the targets file its Prometheus
/// servers read.
pub fn targets_file(runtime: &RuntimeDir, address: &str) -> PathBuf {
    runtime.deployment(address).join("targets.json")
}

/// What a Prometheus server is given: its `prometheus.yml`.
pub(crate) struct Settings<'a> {
    pub scrape_interval: &'a str,
    pub evaluation_interval: &'a str,
    pub rules: &'a Path,
    pub alertmanagers: &'a [String],
}

pub(crate) fn config_file(runtime: &RuntimeDir, settings: &Settings, scrapes: &[Scrape]) -> String {
    let scrape_configs: Vec<Value> = scrapes
        .iter()
        .map(|scrape| match scrape {
            Scrape::Static { job, target } => json!({
                "job_name": job,
                "static_configs": [{ "targets": [target] }],
            }),
            Scrape::Deployment { address } => json!({
                "job_name": address,
                "file_sd_configs": [{
                    "files": [targets_file(runtime, address)],
                    "refresh_interval": "5s",
                }],
            }),
        })
        .collect();
    let mut config = json!({
        "global": {
            "scrape_interval": settings.scrape_interval,
            "evaluation_interval": settings.evaluation_interval,
        },
        "rule_files": [settings.rules],
        "scrape_configs": scrape_configs,
    });
    if !settings.alertmanagers.is_empty() {
        config["alerting"] = json!({
            "alertmanagers": [{ "static_configs": [{ "targets": settings.alertmanagers }] }],
        });
    }
    serde_json::to_string_pretty(&config).expect("JSON")
}

/// `promtool check rules` on `file`'s text: its combined output when it
/// fails; `None` when it passes or promtool is not installed.
fn promtool_rejects(file_text: &str) -> Option<String> {
    let promtool = super::server::find_program("promtool", "PROMTOOL")?;
    let token = crate::runtime::random_token().ok()?;
    let file = std::env::temp_dir().join(format!("infra-rules-{}.yml", &token[..16]));
    std::fs::write(&file, file_text).ok()?;
    let output = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let output = output.ok()?;
    (!output.status.success()).then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Whether `expr` is PromQL promtool accepts (as a recording rule's
/// expression): why not, or `None` (also when promtool is not installed).
pub fn check_expression(expr: &str) -> Option<String> {
    // The engine reads a deployment at every evaluation: ask promtool (a
    // process, ~35 ms) once per expression and run.
    static CHECKED: std::sync::Mutex<Option<std::collections::HashMap<String, Option<String>>>> =
        std::sync::Mutex::new(None);
    if let Some(known) = CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_default()
        .get(expr)
    {
        return known.clone();
    }
    let verdict = promtool_check_expression(expr);
    CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_default()
        .insert(expr.to_string(), verdict.clone());
    verdict
}

fn promtool_check_expression(expr: &str) -> Option<String> {
    let file = json!({ "groups": [{ "name": "query", "rules": [{ "record": "infra:query", "expr": expr }] }] });
    let text = promtool_rejects(&file.to_string())?;
    let why = text
        .lines()
        .find_map(|line| {
            line.split_once("\": ")
                .map(|(_, why)| why.trim().to_string())
        })
        .unwrap_or_else(|| text.trim().replace('\n', "; "));
    Some(why)
}

/// `promtool check rules` on the rules of `config`, when promtool is
/// installed (`$PROMTOOL`, or on `PATH`): a PromQL error is a diagnostic at
/// the `expr` of the rule at fault. Without promtool, nothing is checked
/// here (Prometheus itself refuses bad rules at apply).
pub(crate) fn check_rules(rules: &[AlertRule]) -> Vec<Diagnostic> {
    if rules.is_empty() {
        return Vec::new();
    }
    let Some(text) = promtool_rejects(&rules_file(rules)) else {
        return Vec::new();
    };
    // `…: group "infra", rule 2, "HighErrorRate": could not parse
    // expression: 1:9: parse error: …`
    let mut problems = Vec::new();
    for line in text.lines().filter(|line| line.contains(", rule ")) {
        let number = line
            .split(", rule ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse::<usize>().ok());
        let Some(index) = number.and_then(|n| n.checked_sub(1)) else {
            continue;
        };
        let why = line
            .split_once("\": ")
            .map_or(line, |(_, why)| why)
            .trim()
            .to_string();
        let name = rules.get(index).map_or("?", |rule| rule.name.as_str());
        problems.push(
            Diagnostic::error(format!("alert `{name}`: {why}"))
                .at(&format!("alert.{index}.expr"))
                .help("fix the PromQL expression (promtool check rules rejects it)"),
        );
    }
    if problems.is_empty() {
        let why = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("Checking"))
            .collect::<Vec<_>>()
            .join("; ");
        problems.push(
            Diagnostic::error(format!("promtool check rules: {why}"))
                .at("alert")
                .help("fix the alert rules"),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: Value) -> Attributes {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn scrape_entries_are_read_by_their_shape() {
        let read = scrapes(&config(json!({ "scrape": [
            { "listen": "127.0.0.1:8080", "admin": "127.0.0.1:40001", "pid": 1 },
            { "address": "deployment.web", "replicas": 3 },
            { "id": "module.app[\"a\"].deployment.api" },
            { "listen": "127.0.0.1:9090", "url": "http://127.0.0.1:9090" },
            "127.0.0.1:9100",
        ]})))
        .unwrap();
        assert_eq!(
            read,
            [
                Scrape::Static {
                    job: "local_lb/127.0.0.1:8080".into(),
                    target: "127.0.0.1:40001".into()
                },
                Scrape::Deployment {
                    address: "deployment.web".into()
                },
                Scrape::Deployment {
                    address: "module.app[\"a\"].deployment.api".into()
                },
                Scrape::Static {
                    job: "127.0.0.1:9090".into(),
                    target: "127.0.0.1:9090".into()
                },
                Scrape::Static {
                    job: "127.0.0.1:9100".into(),
                    target: "127.0.0.1:9100".into()
                },
            ]
        );
        let bad = scrapes(&config(json!({ "scrape": [{ "path": "x" }] }))).unwrap_err();
        assert_eq!(bad.attribute.as_deref(), Some("scrape.0"));
        let bad = scrapes(&config(json!({ "scrape": ["localhost"] }))).unwrap_err();
        assert!(bad.summary.contains("not an address"), "{}", bad.summary);
    }

    #[test]
    fn alert_blocks_become_rules_with_defaults() {
        let rules = alert_rules(&config(json!({ "alert": [
            { "name": "Errors", "expr": "x > 1", "for": "1m", "summary": "many errors" },
            { "name": "Down", "expr": "up == 0" },
        ]})))
        .unwrap();
        assert_eq!(rules[1].hold, "0s");
        assert_eq!(rules[1].severity, "warning");
        let file: Value = serde_json::from_str(&rules_file(&rules)).unwrap();
        assert_eq!(file["groups"][0]["rules"][0]["for"], "1m");
        assert_eq!(
            file["groups"][0]["rules"][0]["annotations"]["summary"],
            "many errors"
        );
        let bad = alert_rules(&config(json!({ "alert": [
            { "name": "Ok", "expr": "x" }, { "name": "1bad", "expr": "x" },
        ]})))
        .unwrap_err();
        assert_eq!(bad.attribute.as_deref(), Some("alert.1.name"));
        let bad = alert_rules(&config(json!({ "alert": [
            { "name": "Slow", "expr": "x", "for": "soon" },
        ]})))
        .unwrap_err();
        assert_eq!(bad.attribute.as_deref(), Some("alert.0.for"));
    }
}
