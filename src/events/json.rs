//! Events as JSON lines (`infra apply --json`), one object per line, in the
//! shape of Terraform's machine-readable UI so that tools written for it
//! read infra's too: `@level`, `@message`, `@timestamp`, `type`
//! (`apply_start`, `apply_progress`, `apply_complete`, `apply_errored`,
//! `refresh_start`, `refresh_complete`, `change_summary`, …) and a `hook`
//! naming the resource. docs/events.md describes every type.

use std::io::Write as _;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::{Event, Renderer, timestamp};

#[derive(Default)]
pub struct JsonLines;

impl Renderer for JsonLines {
    fn render(&self, at: SystemTime, event: &Event) {
        let object = to_json(event, at);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{object}");
    }
}

/// One event as its JSON object.
pub fn to_json(event: &Event, at: SystemTime) -> Value {
    let message = super::plain::line(event).unwrap_or_else(|| summary(event));
    let (level, kind, body) = match event {
        Event::WaitingForLock {
            holder,
            operation,
            since,
        } => (
            "info",
            "waiting_for_lock",
            json!({ "lock": { "holder": holder, "operation": operation, "since": since } }),
        ),
        Event::RefreshStarted { objects } => (
            "info",
            "refresh_start",
            json!({ "refresh": { "objects": objects } }),
        ),
        Event::RefreshFinished { objects, gone } => (
            "info",
            "refresh_complete",
            json!({ "refresh": { "objects": objects, "gone": gone } }),
        ),
        Event::ApplyStarted { changes } => (
            "info",
            "apply_plan",
            json!({ "apply": { "changes": changes } }),
        ),
        Event::Started { address, verb } => (
            "info",
            "apply_start",
            json!({ "hook": { "resource": { "addr": address }, "action": verb.as_str() } }),
        ),
        Event::Progress {
            address,
            verb,
            elapsed,
        } => (
            "info",
            "apply_progress",
            json!({ "hook": { "resource": { "addr": address }, "action": verb.as_str(), "elapsed_seconds": elapsed.as_secs() } }),
        ),
        Event::Finished {
            address,
            verb,
            elapsed,
        } => (
            "info",
            "apply_complete",
            json!({ "hook": { "resource": { "addr": address }, "action": verb.as_str(), "elapsed_seconds": elapsed.as_secs_f64() } }),
        ),
        Event::Failed {
            address,
            verb,
            elapsed,
            failure,
        } => (
            "error",
            "apply_errored",
            json!({ "hook": {
                "resource": { "addr": address },
                "action": verb.as_str(),
                "elapsed_seconds": elapsed.as_secs_f64(),
                "error": {
                    "operation": failure.operation.as_str(),
                    "code": failure.code,
                    "message": failure.message,
                    "attribute": failure.attribute,
                    "retryable": failure.retryable,
                },
            } }),
        ),
        Event::Skipped {
            address,
            verb,
            because,
        } => (
            "warn",
            "apply_skipped",
            json!({ "hook": { "resource": { "addr": address }, "action": verb.as_str(), "because": because } }),
        ),
        Event::Note { .. } => ("info", "log", json!({})),
        Event::Step { address, message } => (
            "info",
            "apply_step",
            json!({ "hook": { "resource": { "addr": address }, "message": message } }),
        ),
        Event::ApplyFinished {
            added,
            changed,
            destroyed,
            failed,
            skipped,
            not_started,
            elapsed,
        } => (
            if *failed > 0 { "error" } else { "info" },
            "change_summary",
            json!({ "changes": {
                "add": added, "change": changed, "remove": destroyed,
                "failed": failed, "skipped": skipped, "not_started": not_started,
                "elapsed_seconds": elapsed.as_secs_f64(),
                "operation": "apply",
            } }),
        ),
    };
    let mut object = json!({
        "@level": level,
        "@message": message,
        "@timestamp": timestamp(at),
        "type": kind,
    });
    if let (Value::Object(object), Value::Object(body)) = (&mut object, body) {
        object.extend(body);
    }
    object
}

fn summary(event: &Event) -> String {
    match event {
        Event::RefreshStarted { objects } => format!("Refreshing {objects} object(s)"),
        Event::RefreshFinished { objects, gone } => {
            format!("Refreshed {objects} object(s); {gone} no longer exist")
        }
        Event::ApplyStarted { changes } => format!("Applying {changes} change(s)"),
        Event::ApplyFinished {
            added,
            changed,
            destroyed,
            failed,
            ..
        } => format!(
            "Apply finished: {added} added, {changed} changed, {destroyed} destroyed, {failed} failed"
        ),
        _ => String::new(),
    }
}
