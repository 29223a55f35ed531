//! Drift: how the real objects differ from what the state records, found
//! by a refresh. `infra drift` reports it (for scheduled CI checks); the
//! plan shows the same differences as the changes that would undo them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::markdown;

use serde_json::json;

use crate::config::ResourceMode;
use crate::eval::{SchemaCatalog, SchemaLookup};
use crate::state::State;

/// `format_version` of `infra drift --json`: raised when a field changes
/// meaning or disappears (new fields do not raise it).
pub const DRIFT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub enum Drifted {
    /// Attributes whose values differ: (name, recorded, now).
    Changed(Vec<(String, serde_json::Value, serde_json::Value)>),
    /// The object no longer exists.
    Gone,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftReport {
    /// By address, sorted.
    pub drifted: Vec<(String, Drifted)>,
    /// How many resources were compared.
    pub checked: usize,
}

/// Compares the recorded state with the refreshed one.
pub fn drift(recorded: &State, refreshed: &State) -> DriftReport {
    let mut drifted = Vec::new();
    for (address, before) in &recorded.resources {
        let Some(now) = refreshed.resources.get(address) else {
            drifted.push((address.clone(), Drifted::Gone));
            continue;
        };
        let names: BTreeSet<&String> = before
            .attributes
            .keys()
            .chain(now.attributes.keys())
            .collect();
        let changed: Vec<(String, serde_json::Value, serde_json::Value)> = names
            .into_iter()
            .filter_map(|name| {
                let old = before.attributes.get(name).cloned().unwrap_or_default();
                let new = now.attributes.get(name).cloned().unwrap_or_default();
                (old != new).then(|| (name.clone(), old, new))
            })
            .collect();
        if !changed.is_empty() {
            drifted.push((address.clone(), Drifted::Changed(changed)));
        }
    }
    DriftReport {
        drifted,
        checked: recorded.resources.len(),
    }
}

fn is_sensitive(schemas: &SchemaCatalog, state: &State, address: &str, attribute: &str) -> bool {
    let Some(resource) = state.resources.get(address) else {
        return false;
    };
    // A secret anywhere inside hides the attribute's change.
    if resource
        .sensitive
        .iter()
        .any(|path| crate::eval::SensitivePath::parse(path).attribute() == Some(attribute))
    {
        return true;
    }
    match schemas.lookup(ResourceMode::Managed, &resource.type_name) {
        SchemaLookup::Found(schema) => schema
            .attributes
            .get(attribute)
            .is_some_and(|a| a.sensitive),
        _ => false,
    }
}

/// The changes between `old` and `new` at `path`, one line per changed
/// leaf: inside objects key by key (`tags.cost`), inside lists of the same
/// length element by element (`ingress[1].cidr`), so one changed tag does
/// not print the whole map twice. A key only one side has is a `+` or `-`
/// line alone.
fn leaf_changes(path: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut String) {
    use serde_json::Value::{Array, Null, Object};
    match (old, new) {
        (Object(before), Object(after)) => {
            let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
            for key in keys {
                let inner = if is_identifier(key) {
                    format!("{path}.{key}")
                } else {
                    format!("{path}[{}]", serde_json::Value::String(key.clone()))
                };
                let (old, new) = (
                    before.get(key).unwrap_or(&Null),
                    after.get(key).unwrap_or(&Null),
                );
                match (before.contains_key(key), after.contains_key(key)) {
                    (true, false) => {
                        let _ = writeln!(out, "- {inner} = {old}");
                    }
                    (false, true) => {
                        let _ = writeln!(out, "+ {inner} = {new}");
                    }
                    _ if old != new => leaf_changes(&inner, old, new, out),
                    _ => {}
                }
            }
        }
        (Array(before), Array(after)) if before.len() == after.len() => {
            for (index, (old, new)) in before.iter().zip(after).enumerate() {
                if old != new {
                    leaf_changes(&format!("{path}[{index}]"), old, new, out);
                }
            }
        }
        _ => {
            let _ = writeln!(out, "- {path} = {old}\n+ {path} = {new}");
        }
    }
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

impl DriftReport {
    pub fn has_drift(&self) -> bool {
        !self.drifted.is_empty()
    }

    /// For people: each drifted resource and attribute, sensitive values
    /// hidden.
    pub fn render(&self, schemas: &SchemaCatalog, recorded: &State) -> String {
        let mut out = String::new();
        if !self.has_drift() {
            let _ = writeln!(
                out,
                "No drift: the {} resource(s) in the state match the real objects.",
                self.checked
            );
            return out;
        }
        for (address, drifted) in &self.drifted {
            match drifted {
                Drifted::Gone => {
                    let _ = writeln!(out, "  # {address} was deleted outside infra");
                }
                Drifted::Changed(attributes) => {
                    let _ = writeln!(out, "  # {address} was changed outside infra");
                    let width = attributes
                        .iter()
                        .map(|(n, _, _)| n.len())
                        .max()
                        .unwrap_or(0);
                    for (name, old, new) in attributes {
                        if is_sensitive(schemas, recorded, address, name) {
                            let _ = writeln!(out, "    ~ {name:width$} = (sensitive value)");
                        } else {
                            let _ = writeln!(out, "    ~ {name:width$} = {old} -> {new}");
                        }
                    }
                }
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Drift: {} of {} resource(s) differ from the state. `infra plan` shows how apply would undo it; `infra apply` does.",
            self.drifted.len(),
            self.checked
        );
        out
    }

    /// For a pull request or an issue (what a CI bot posts): a summary
    /// line, a table of the drifted resources, and each one's attribute
    /// changes as a collapsible diff, sensitive values hidden; at most
    /// `max_bytes` long (a comment's limit), truncated with a note that
    /// says how many resources are not shown.
    pub fn to_markdown(
        &self,
        schemas: &SchemaCatalog,
        recorded: &State,
        max_bytes: usize,
    ) -> String {
        if !self.has_drift() {
            return format!(
                "### infra drift: no drift\n\nThe {} resource(s) in the state match the real objects.\n",
                self.checked
            );
        }
        let mut report = markdown::Bounded::new(max_bytes);
        report.head(&format!(
            "### infra drift: {} of {} resource(s) changed outside infra\n\n",
            self.drifted.len(),
            self.checked
        ));
        report.head("| Resource | Outside infra | Attributes |\n|---|---|---|\n");
        let rows: Vec<String> = self
            .drifted
            .iter()
            .map(|(address, drifted)| {
                let (what, names) = match drifted {
                    Drifted::Gone => ("deleted", String::new()),
                    Drifted::Changed(attributes) => (
                        "changed",
                        attributes
                            .iter()
                            .map(|(name, _, _)| markdown::code(name))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                };
                format!("| {} | {what} | {names} |\n", markdown::code(address))
            })
            .collect();
        let details: Vec<String> = self
            .drifted
            .iter()
            .map(|(address, drifted)| match drifted {
                Drifted::Gone => String::new(),
                Drifted::Changed(attributes) => {
                    let mut diff = String::new();
                    for (name, old, new) in attributes {
                        if is_sensitive(schemas, recorded, address, name) {
                            let _ = writeln!(diff, "~ {name} = (sensitive value)");
                        } else {
                            leaf_changes(name, old, new, &mut diff);
                        }
                    }
                    markdown::details(
                        &format!(
                            "{}: {} attribute(s) changed",
                            markdown::html_code(address),
                            attributes.len()
                        ),
                        &markdown::fenced("diff", &diff),
                    )
                }
            })
            .collect();
        let shown = report.rows(&rows, "resource(s)");
        report.line("\n");
        report.sections(&details[..shown]);
        report.finish(
            "`infra plan` shows how apply would undo it; `infra apply` does.\n",
            "run `infra drift` for the whole report",
        )
    }

    /// For machines: `{ "format": "infra-drift", "format_version": 1,
    /// "checked": N, "drifted": [ { "address", "status": "changed" |
    /// "deleted", "attributes": [names] } ] }` (docs/json-formats.md).
    /// Values are not included (they may be sensitive); `infra state show`
    /// has them.
    pub fn to_json(&self) -> serde_json::Value {
        let drifted: Vec<serde_json::Value> = self
            .drifted
            .iter()
            .map(|(address, drifted)| match drifted {
                Drifted::Gone => json!({ "address": address, "status": "deleted" }),
                Drifted::Changed(attributes) => json!({
                    "address": address,
                    "status": "changed",
                    "attributes": attributes.iter().map(|(n, _, _)| n).collect::<Vec<_>>(),
                }),
            })
            .collect();
        json!({
            "format": "infra-drift",
            "format_version": DRIFT_FORMAT_VERSION,
            "checked": self.checked,
            "drifted": drifted,
        })
    }
}
