//! Three-way merge of two states, resource by resource: what `infra state
//! merge BASE OURS THEIRS` does as git's merge driver.
//!
//! Each resource (and each output) is taken from the side that changed it
//! since the common base; when both changed it differently, it is a
//! conflict, written between git's markers so that the file is not a valid
//! state (infra refuses it) until someone picks a side.

use std::collections::BTreeMap;

use serde::Serialize;

use super::format::{FORMAT_VERSION, State};

/// One entry both sides changed differently.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// `resource` or `output`.
    pub kind: &'static str,
    pub name: String,
    pub ours: Option<serde_json::Value>,
    pub theirs: Option<serde_json::Value>,
}

impl Conflict {
    /// What each side did, for the message: `changed`, `removed`, `added`.
    pub fn describe(&self) -> String {
        let side = |value: &Option<serde_json::Value>| match value {
            Some(_) => "changed",
            None => "removed",
        };
        format!(
            "{} `{}`: ours {}, theirs {}",
            self.kind,
            self.name,
            side(&self.ours),
            side(&self.theirs)
        )
    }
}

/// The merge of two states: the merged state (conflicting entries as ours
/// has them) and the conflicts.
#[derive(Debug)]
pub struct Merged {
    pub state: State,
    pub conflicts: Vec<Conflict>,
}

/// Why two states cannot be merged at all.
#[derive(Debug, PartialEq)]
pub struct NotMergeable(pub String);

impl std::fmt::Display for NotMergeable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Merges `ours` and `theirs`, which both come from `base` (none when the
/// state was added on both branches).
pub fn merge(base: Option<&State>, ours: &State, theirs: &State) -> Result<Merged, NotMergeable> {
    if ours.lineage != theirs.lineage {
        return Err(NotMergeable(format!(
            "the two states have different lineages (`{}` and `{}`): they record different infrastructure",
            ours.lineage, theirs.lineage
        )));
    }
    let mut conflicts = Vec::new();
    let resources = merge_maps(
        "resource",
        base.map(|b| &b.resources),
        &ours.resources,
        &theirs.resources,
        &mut conflicts,
    );
    let outputs = merge_maps(
        "output",
        base.map(|b| &b.outputs),
        &ours.outputs,
        &theirs.outputs,
        &mut conflicts,
    );
    Ok(Merged {
        state: State {
            format: ours.format.clone(),
            version: FORMAT_VERSION,
            lineage: ours.lineage.clone(),
            resources,
            outputs,
        },
        conflicts,
    })
}

fn merge_maps<V: Clone + PartialEq + Serialize>(
    kind: &'static str,
    base: Option<&BTreeMap<String, V>>,
    ours: &BTreeMap<String, V>,
    theirs: &BTreeMap<String, V>,
    conflicts: &mut Vec<Conflict>,
) -> BTreeMap<String, V> {
    let mut merged = BTreeMap::new();
    let names: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for name in names {
        let (b, o, t) = (
            base.and_then(|base| base.get(name)),
            ours.get(name),
            theirs.get(name),
        );
        let chosen = if o == t || t == b {
            o
        } else if o == b {
            t
        } else {
            conflicts.push(Conflict {
                kind,
                name: name.clone(),
                ours: o.map(json),
                theirs: t.map(json),
            });
            o
        };
        if let Some(value) = chosen {
            merged.insert(name.clone(), value.clone());
        }
    }
    merged
}

/// The merged state as text: canonical when there is no conflict; else the
/// same layout with each conflicting entry between git's markers, ours
/// above theirs.
pub fn merged_text(merged: &Merged) -> String {
    if merged.conflicts.is_empty() {
        return merged.state.to_canonical_json();
    }
    let conflict_of = |kind: &str, name: &str| {
        merged
            .conflicts
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    };
    let section = |kind: &'static str, entries: BTreeMap<&String, serde_json::Value>| {
        let mut names: Vec<&String> = entries.keys().copied().collect();
        for conflict in merged.conflicts.iter().filter(|c| c.kind == kind) {
            if !entries.contains_key(&conflict.name) {
                names.push(&conflict.name);
            }
        }
        names.sort();
        let last = names.len().saturating_sub(1);
        let mut text = String::new();
        for (index, name) in names.iter().enumerate() {
            let comma = if index == last { "" } else { "," };
            match conflict_of(kind, name) {
                None => text.push_str(&entry(name, &entries[name], comma)),
                Some(conflict) => {
                    text.push_str(&format!("<<<<<<< ours: {}\n", conflict.describe()));
                    if let Some(ours) = &conflict.ours {
                        text.push_str(&entry(name, ours, comma));
                    }
                    text.push_str("=======\n");
                    if let Some(theirs) = &conflict.theirs {
                        text.push_str(&entry(name, theirs, comma));
                    }
                    text.push_str(">>>>>>> theirs\n");
                }
            }
        }
        text
    };
    // A conflicting entry is written from the conflict, whatever the map has.
    let state = &merged.state;
    let resources = section(
        "resource",
        state.resources.iter().map(|(n, r)| (n, json(r))).collect(),
    );
    let outputs = section(
        "output",
        state.outputs.iter().map(|(n, o)| (n, json(o))).collect(),
    );
    format!(
        "{{\n  \"format\": {},\n  \"version\": {FORMAT_VERSION},\n  \"lineage\": {},\n  \"resources\": {{\n{resources}  }},\n  \"outputs\": {{\n{outputs}  }}\n}}\n",
        serde_json::Value::from(merged.state.format.as_str()),
        serde_json::Value::from(merged.state.lineage.as_str()),
    )
}

fn json(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("a state serialises")
}

/// `    "name": value` as the canonical text lays out a map's entry.
fn entry(name: &str, value: &serde_json::Value, comma: &str) -> String {
    let pretty = serde_json::to_string_pretty(value).expect("serialises");
    let indented = pretty.replace('\n', "\n    ");
    format!("    {}: {indented}{comma}\n", serde_json::Value::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ResourceState;

    fn resource(id: &str) -> ResourceState {
        ResourceState {
            type_name: "random_id".into(),
            provider: "random".into(),
            attributes: [("id".to_string(), serde_json::json!(id))].into(),
            dependencies: Vec::new(),
            sensitive: Vec::new(),
        }
    }

    fn state(resources: &[(&str, &str)]) -> State {
        let mut state = State::new("l");
        for (address, id) in resources {
            state.resources.insert(address.to_string(), resource(id));
        }
        state
    }

    #[test]
    fn changes_on_different_resources_merge_and_the_same_change_is_no_conflict() {
        let base = state(&[("r.a", "1"), ("r.b", "1"), ("r.gone", "1")]);
        let ours = state(&[("r.a", "2"), ("r.b", "1"), ("r.new_ours", "1")]);
        let theirs = state(&[("r.a", "2"), ("r.b", "3"), ("r.new_theirs", "1")]);
        let merged = merge(Some(&base), &ours, &theirs).unwrap();
        assert!(merged.conflicts.is_empty());
        assert_eq!(
            merged.state,
            state(&[
                ("r.a", "2"),
                ("r.b", "3"),
                ("r.new_ours", "1"),
                ("r.new_theirs", "1")
            ])
        );
        assert_eq!(merged_text(&merged), merged.state.to_canonical_json());
    }

    #[test]
    fn the_same_resource_changed_on_both_sides_is_a_conflict_between_markers() {
        let base = state(&[("r.a", "1"), ("r.b", "1"), ("r.c", "1")]);
        let ours = state(&[("r.a", "2"), ("r.b", "1"), ("r.c", "1")]);
        let theirs = state(&[("r.a", "3"), ("r.b", "1")]);
        let merged = merge(Some(&base), &ours, &theirs).unwrap();
        assert_eq!(merged.conflicts.len(), 1, "r.c: only theirs removed it");
        assert_eq!(merged.conflicts[0].name, "r.a");
        let text = merged_text(&merged);
        assert!(
            text.contains("<<<<<<< ours: resource `r.a`: ours changed, theirs changed\n"),
            "{text}"
        );
        assert!(crate::state::strict_json::parse(&text).is_err(), "{text}");
        // Keeping either side gives a valid state.
        for keep in ["2", "3"] {
            let mut lines = Vec::new();
            let mut side = None;
            for line in text.lines() {
                if line.starts_with("<<<<<<<") {
                    side = Some("2");
                } else if line == "=======" {
                    side = Some("3");
                } else if line == ">>>>>>> theirs" {
                    side = None;
                } else if side.is_none_or(|s| s == keep) {
                    lines.push(line);
                }
            }
            let resolved: State = serde_json::from_str(&lines.join("\n")).unwrap();
            assert_eq!(resolved, state(&[("r.a", keep), ("r.b", "1")]));
        }
    }

    #[test]
    fn states_of_different_lineages_are_not_merged() {
        let mut theirs = state(&[]);
        theirs.lineage = "other".into();
        assert!(merge(None, &state(&[]), &theirs).is_err());
    }
}
