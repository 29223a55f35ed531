//! The plan's changes to the root module's outputs ("Changes to Outputs"):
//! what `infra output` will say after apply, compared with what it says
//! now. An output whose value is only known after apply is an update (or a
//! create); one no longer configured is a delete.

use serde_json::json;

use crate::eval::{EvaluatedModule, Value};
use crate::state::State;

use super::diff::Action;

#[derive(Debug, Clone, PartialEq)]
pub struct OutputChange {
    pub name: String,
    /// `Create`, `Update` or `Delete` (unchanged outputs are not listed).
    pub action: Action,
    /// As the state records it (none for a new output).
    pub before: Option<serde_json::Value>,
    /// As it will be, `Value::Unknown` where only apply will know (none
    /// for a deleted output).
    pub after: Option<Value>,
    pub sensitive: bool,
}

/// The outputs that change, sorted by name.
pub fn output_changes(evaluated: &EvaluatedModule, state: &State) -> Vec<OutputChange> {
    let mut changes = Vec::new();
    for (name, output) in &evaluated.outputs {
        let recorded = state.outputs.get(name);
        let same = recorded.is_some_and(|recorded| {
            recorded.sensitive == output.sensitive
                && output.value.is_wholly_known()
                && Value::from_json(&recorded.value) == output.value
        });
        if same {
            continue;
        }
        changes.push(OutputChange {
            name: name.clone(),
            action: if recorded.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            before: recorded.map(|recorded| recorded.value.clone()),
            after: Some(output.value.clone()),
            sensitive: output.sensitive || recorded.is_some_and(|r| r.sensitive),
        });
    }
    for (name, recorded) in &state.outputs {
        if !evaluated.outputs.contains_key(name) {
            changes.push(OutputChange {
                name: name.clone(),
                action: Action::Delete,
                before: Some(recorded.value.clone()),
                after: None,
                sensitive: recorded.sensitive,
            });
        }
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    changes
}

impl OutputChange {
    /// `+ url = "…"`, `~ port = 8080 -> 8081`, `- old = "x" -> null`.
    pub fn line(&self, width: usize) -> String {
        let shown = |value: String| {
            if self.sensitive {
                "(sensitive value)".to_string()
            } else {
                value
            }
        };
        let after = || match &self.after {
            Some(Value::Unknown) | None => "(known after apply)".to_string(),
            Some(value) if !value.is_wholly_known() => "(known after apply)".to_string(),
            Some(value) => shown(value.to_string()),
        };
        let before = || {
            self.before
                .as_ref()
                .map(|value| shown(Value::from_json(value).to_string()))
                .unwrap_or_default()
        };
        let name = &self.name;
        match self.action {
            Action::Create => format!("  + {name:width$} = {}", after()),
            Action::Delete => format!("  - {name:width$} = {} -> null", before()),
            _ => format!("  ~ {name:width$} = {} -> {}", before(), after()),
        }
    }

    /// `{ "name", "action", "before", "after", "after_unknown", "sensitive" }`
    /// (values `null` when sensitive).
    pub fn to_json(&self) -> serde_json::Value {
        let hidden = |value: serde_json::Value| {
            if self.sensitive {
                serde_json::Value::Null
            } else {
                value
            }
        };
        let unknown = self.after.as_ref().is_some_and(|v| !v.is_wholly_known());
        json!({
            "name": self.name,
            "action": self.action.name(),
            "before": hidden(self.before.clone().unwrap_or_default()),
            "after": if unknown { serde_json::Value::Null } else {
                hidden(self.after.as_ref().map(Value::to_json).unwrap_or_default())
            },
            "after_unknown": unknown,
            "sensitive": self.sensitive,
        })
    }
}
