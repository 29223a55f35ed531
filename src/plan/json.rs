//! The machine-readable plan (`infra plan --json`), format version 1:
//!
//! ```json
//! { "format": "infra-plan", "format_version": 1,
//!   "changes": [ { "address": "aws_instance.web[0]", "mode": "managed",
//!                  "type": "aws_instance", "action": "replace",
//!                  "create_before_destroy": false,
//!                  "before": { … }, "after": { … },
//!                  "after_unknown": ["id"], "sensitive": ["password"],
//!                  "changed": ["ami", "id"], "replaced_because": ["ami"] } ],
//!   "output_changes": [ { "name": "url", "action": "update", "before": "…",
//!                         "after": null, "after_unknown": true,
//!                         "sensitive": false } ],
//!   "summary": { "add": 0, "change": 0, "replace": 1, "destroy": 0 } }
//! ```
//!
//! `action` is one of `create`, `update`, `replace`, `delete`, `read`,
//! `no-op`. Values only known after apply are `null` in `after` and named in
//! `after_unknown` (also when only a part of the value is unknown). Sensitive
//! values (per the schema, or computed from secrets) are `null` in `before`
//! and `after` and their paths named in `sensitive` (`password`, or
//! `template.env.DB_PASSWORD` for a secret inside an attribute): the JSON
//! never holds their plaintext. No-op changes are
//! included, so a consumer sees every instance.
//!
//! A deployment updated to a new version also has `rollout`:
//! `{ "strategy": "rolling", "from": 3, "to": 3, "peak": 4,
//! "fewest_in_service": 3, "least_duration_seconds": 10.5, "steps":
//! [{ "start_new": 1 }, { "retire_old": 2 }, …] }` — `start_new` is the
//! number of new instances in service after the step, `retire_old` the
//! number of old ones left; blue/green also has `start_idle` (new
//! instances healthy, sent nothing), `switch` and `hold_seconds`; canary
//! `shift` (percent to the new version) and `pause_seconds` with
//! `analysed`; a sticky share of the customers `{ "sticky": { "key":
//! "X-User", "percent": 25 } }`; a manual gate is `{ "gate": true }`.
//! `analysis` holds the analysis bounds (`null` without one). `recorded`
//! is where the last rollout stands as the state records it (`null` when
//! none): `{ "status": "running" | "paused" | "rolled_back" | "failed",
//! "strategy", "to" (the version id), "step", "steps", "at", "readings" }`.

use std::collections::BTreeMap;

use serde_json::json;

use super::diff::{Action, Plan};
use crate::config::ResourceMode;
use crate::deploy::record::RolloutRecord;
use crate::deploy::{Rollout, Step};
use crate::eval::{SchemaCatalog, SchemaLookup, Value};

pub const PLAN_FORMAT_VERSION: u32 = 1;

/// A rollout as the plan's JSON shows it.
fn rollout_json(rollout: &Rollout) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = rollout
        .steps
        .iter()
        .map(|step| match *step {
            Step::StartNew { total } => json!({ "start_new": total }),
            Step::RetireOld { remaining } => json!({ "retire_old": remaining }),
            Step::StartIdle { total } => json!({ "start_idle": total }),
            Step::Switch => json!({ "switch": true }),
            Step::Hold { duration, analysed } => {
                json!({ "hold_seconds": duration.as_secs_f64(), "analysed": analysed })
            }
            Step::Shift { weight } => json!({ "shift": weight }),
            Step::Route {
                ref header,
                ref values,
            } => json!({ "route": { "header": header, "values": values } }),
            Step::Gate => json!({ "gate": true }),
            Step::Sticky { ref key, percent } => {
                json!({ "sticky": { "key": key, "percent": percent } })
            }
            Step::Pause { duration, analysed } => {
                json!({ "pause_seconds": duration.as_secs_f64(), "analysed": analysed })
            }
        })
        .collect();
    json!({
        "strategy": rollout.strategy,
        "from": rollout.from,
        "to": rollout.to,
        "peak": rollout.peak,
        "fewest_in_service": rollout.fewest_in_service,
        "least_duration_seconds": rollout.least_duration.as_secs_f64(),
        "steps": steps,
        "recorded": rollout.recorded.as_ref().map(RolloutRecord::to_json),
        "analysis": rollout.analysis.as_ref().map(|analysis| json!({
            "interval_seconds": analysis.interval.as_secs_f64(),
            "max_error_rate": analysis.max_error_rate,
            "max_p50_latency_seconds": analysis.max_p50_latency.map(|d| d.as_secs_f64()),
            "max_p99_latency_seconds": analysis.max_p99_latency.map(|d| d.as_secs_f64()),
            "min_requests": analysis.min_requests,
            "failure_limit": analysis.failure_limit,
            "inconclusive_limit": analysis.inconclusive_limit,
            "consecutive_error_limit": analysis.consecutive_error_limit,
        })),
    })
}

fn action_name(action: Action) -> &'static str {
    action.name()
}

pub fn to_json(plan: &Plan, schemas: &SchemaCatalog) -> serde_json::Value {
    let mut summary = BTreeMap::from([("add", 0), ("change", 0), ("replace", 0), ("destroy", 0)]);
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|change| {
            let bucket = match change.action {
                Action::Create => Some("add"),
                Action::Update => Some("change"),
                Action::Replace { .. } => Some("replace"),
                Action::Delete => Some("destroy"),
                Action::Read | Action::NoOp => None,
            };
            if let Some(bucket) = bucket {
                *summary.entry(bucket).or_default() += 1;
            }
            let schema = match schemas.lookup(change.mode, &change.type_name) {
                SchemaLookup::Found(schema) => Some(schema),
                _ => None,
            };
            let is_sensitive = |name: &str| {
                crate::eval::names_whole_attribute(name, &change.sensitive)
                    || schema
                        .and_then(|s| s.attributes.get(name))
                        .is_some_and(|a| a.sensitive)
            };
            let mut sensitive: Vec<String> = Vec::new();
            let mut after_unknown: Vec<String> = Vec::new();
            let mut render = |values: Option<&BTreeMap<String, Value>>,
                              track_unknown: bool|
             -> serde_json::Value {
                let Some(values) = values else {
                    return serde_json::Value::Null;
                };
                let mut object = serde_json::Map::new();
                for (name, value) in values {
                    if track_unknown && !value.is_wholly_known() {
                        after_unknown.push(name.clone());
                    }
                    let rendered = if is_sensitive(name) && !matches!(value, Value::Null) {
                        if !sensitive.contains(name) {
                            sensitive.push(name.clone());
                        }
                        serde_json::Value::Null
                    } else if !matches!(value, Value::Null)
                        && crate::eval::has_nested_paths(name, &change.sensitive)
                    {
                        // Secrets inside: each is null, its path named.
                        for path in &change.sensitive {
                            let parsed = crate::eval::SensitivePath::parse(path);
                            if parsed.attribute() == Some(name.as_str())
                                && !sensitive.contains(path)
                            {
                                sensitive.push(path.clone());
                            }
                        }
                        crate::eval::redact_attribute(value, name, &change.sensitive, &Value::Null)
                            .to_json()
                    } else {
                        value.to_json()
                    };
                    object.insert(name.clone(), rendered);
                }
                serde_json::Value::Object(object)
            };
            let before = render(change.before.as_deref(), false);
            let after = render(change.after.as_deref(), true);
            sensitive.sort_unstable();
            let mut entry = json!({
                "address": change.address,
                "mode": if change.mode == ResourceMode::Data { "data" } else { "managed" },
                "type": change.type_name,
                "action": action_name(change.action),
                "before": before,
                "after": after,
                "after_unknown": after_unknown,
                "sensitive": sensitive,
                "changed": change.changed,
                "replaced_because": change.replaced_because,
            });
            if let Action::Replace {
                create_before_destroy,
            } = change.action
            {
                entry["create_before_destroy"] = create_before_destroy.into();
            }
            if let Some(rollout) = plan.rollouts.get(&change.address) {
                entry["rollout"] = rollout_json(rollout);
            }
            entry
        })
        .collect();
    json!({
        "format": "infra-plan",
        "format_version": PLAN_FORMAT_VERSION,
        "changes": changes,
        "output_changes": plan.outputs.iter().map(|o| o.to_json()).collect::<Vec<_>>(),
        "summary": summary,
    })
}
