//! Drift: how the real objects differ from what the state records, found
//! by a refresh. `infra drift` reports it (for scheduled CI checks); the
//! plan shows the same differences as the changes that would undo them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::json;

use crate::config::ResourceMode;
use crate::eval::{SchemaCatalog, SchemaLookup};
use crate::state::State;

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

    /// For machines: `{ "drifted": [ { "address", "status": "changed" |
    /// "deleted", "attributes": [names] } ], "checked": N }`. Values are not
    /// included (they may be sensitive); `infra state show` has them.
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
        json!({ "drifted": drifted, "checked": self.checked })
    }
}
