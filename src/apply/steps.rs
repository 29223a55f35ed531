//! A plan as steps for the walker: which provider operations run, and what
//! each waits for.
//!
//! - A create or update waits for the creates, updates and replacements of
//!   what it depends on in the configuration.
//! - A delete waits for the deletes of everything that depended on the
//!   object in the state (reverse dependency order), and for the updates of
//!   resources that referred to it, which stop referring to it first.
//! - A replacement is two steps: destroy then create (`-/+`), or create
//!   then destroy (`+/-`, create_before_destroy), whose destroy also waits
//!   for the dependents to be updated onto the new object.

use std::collections::BTreeMap;

use crate::plan::{Action, Plan};
use crate::state::{State, named_by};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Create,
    Update,
    /// Destroys the object a `Delete` removes, or the old object of a
    /// replacement.
    Destroy,
    /// Reads a data source whose arguments were unknown while planning.
    Read,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub address: String,
    pub kind: StepKind,
    /// The plan's change this step belongs to.
    pub change: usize,
    /// Steps (indices) this one waits for.
    pub waits_for: Vec<usize>,
}

/// `config_dependencies`: for each configured instance, the instances it
/// depends on (from the resource graph).
pub fn steps(
    plan: &Plan,
    config_dependencies: &BTreeMap<String, Vec<String>>,
    state: &State,
) -> Vec<Step> {
    let mut steps = Vec::new();
    // Per address: its create/update step and its destroy step.
    let mut apply_step: BTreeMap<&str, usize> = BTreeMap::new();
    let mut destroy_step: BTreeMap<&str, usize> = BTreeMap::new();
    let push = |steps: &mut Vec<Step>, address: &str, kind, change| {
        steps.push(Step {
            address: address.to_string(),
            kind,
            change,
            waits_for: Vec::new(),
        });
        steps.len() - 1
    };
    for (index, change) in plan.changes.iter().enumerate() {
        let address = change.address.as_str();
        match change.action {
            Action::NoOp => {}
            // Read while planning, unless its arguments were unknown then.
            Action::Read if change.before.is_some() => {}
            Action::Read => {
                apply_step.insert(address, push(&mut steps, address, StepKind::Read, index));
            }
            Action::Create => {
                apply_step.insert(address, push(&mut steps, address, StepKind::Create, index));
            }
            Action::Update => {
                apply_step.insert(address, push(&mut steps, address, StepKind::Update, index));
            }
            Action::Delete => {
                destroy_step.insert(address, push(&mut steps, address, StepKind::Destroy, index));
            }
            Action::Replace {
                create_before_destroy,
            } => {
                let destroy = push(&mut steps, address, StepKind::Destroy, index);
                let create = push(&mut steps, address, StepKind::Create, index);
                if create_before_destroy {
                    steps[destroy].waits_for.push(create);
                } else {
                    steps[create].waits_for.push(destroy);
                }
                apply_step.insert(address, create);
                destroy_step.insert(address, destroy);
            }
        }
    }
    // Creates and updates after what they depend on.
    for (&address, &step) in &apply_step {
        for dependency in config_dependencies.get(address).into_iter().flatten() {
            if let Some(&before) = apply_step.get(dependency.as_str()) {
                steps[step].waits_for.push(before);
            }
        }
    }
    // Destroys after their dependents (as the state records them).
    let action_of = |address: &str| {
        plan.changes
            .binary_search_by(|c| c.address.as_str().cmp(address))
            .ok()
            .map(|i| plan.changes[i].action)
    };
    let mut named = Vec::new();
    for (dependent, resource) in &state.resources {
        // What it names among the destroyed (a whole resource: each of
        // its instances).
        named.clear();
        for recorded in &resource.dependencies {
            named.extend(
                named_by(&destroy_step, recorded).map(|(&address, &destroy)| (address, destroy)),
            );
        }
        for &(dependency, destroy) in &named {
            if let Some(&first) = destroy_step.get(dependent.as_str()) {
                steps[destroy].waits_for.push(first);
            }
            // A dependent that stays, updated off the object, goes first —
            // unless the object is replaced destroy-first (the dependent's
            // update then waits for the new object instead).
            let destroy_first = matches!(
                action_of(dependency),
                Some(Action::Replace {
                    create_before_destroy: false
                })
            );
            if !destroy_first
                && action_of(dependent) == Some(Action::Update)
                && let Some(&update) = apply_step.get(dependent.as_str())
            {
                steps[destroy].waits_for.push(update);
            }
        }
    }
    for step in &mut steps {
        step.waits_for.sort_unstable();
        step.waits_for.dedup();
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResourceMode;
    use crate::plan::Change;
    use crate::state::ResourceState;

    fn change(address: &str, action: Action) -> Change {
        Change {
            address: address.into(),
            mode: ResourceMode::Managed,
            type_name: "mock_resource".into(),
            action,
            before: None,
            after: None,
            replaced_because: Vec::new(),
            changed: Vec::new(),
            sensitive: Vec::new(),
        }
    }

    fn recorded(dependencies: &[&str]) -> ResourceState {
        ResourceState {
            type_name: "mock_resource".into(),
            provider: "mock".into(),
            attributes: Default::default(),
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            sensitive: Vec::new(),
        }
    }

    fn describe(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| {
                let waits: Vec<String> = s
                    .waits_for
                    .iter()
                    .map(|&w| format!("{:?} {}", steps[w].kind, steps[w].address))
                    .collect();
                format!("{:?} {} <- [{}]", s.kind, s.address, waits.join(", "))
            })
            .collect()
    }

    #[test]
    fn creates_follow_dependencies_and_deletes_go_in_reverse() {
        let plan = Plan {
            changes: vec![
                change("a", Action::Create),
                change("b", Action::Create),
                change("old_db", Action::Delete),
                change("old_web", Action::Delete),
            ],
            ..Plan::default()
        };
        let config = [("b".to_string(), vec!["a".to_string()])].into();
        let mut state = State::new("t");
        state.resources.insert("old_db".into(), recorded(&[]));
        state
            .resources
            .insert("old_web".into(), recorded(&["old_db"]));
        assert_eq!(
            describe(&steps(&plan, &config, &state)),
            vec![
                "Create a <- []",
                "Create b <- [Create a]",
                "Destroy old_db <- [Destroy old_web]",
                "Destroy old_web <- []",
            ]
        );
    }

    #[test]
    fn a_whole_resource_recorded_as_a_dependency_orders_each_of_its_instances() {
        let plan = Plan {
            changes: vec![
                change("net[0]", Action::Delete),
                change("net[1]", Action::Delete),
                change("network", Action::Delete),
                change("user", Action::Delete),
            ],
            ..Plan::default()
        };
        let mut state = State::new("t");
        for address in ["net[0]", "net[1]", "network"] {
            state.resources.insert(address.into(), recorded(&[]));
        }
        state.resources.insert("user".into(), recorded(&["net"]));
        assert_eq!(
            describe(&steps(&plan, &BTreeMap::new(), &state)),
            vec![
                "Destroy net[0] <- [Destroy user]",
                "Destroy net[1] <- [Destroy user]",
                // Named like `net`, but another resource.
                "Destroy network <- []",
                "Destroy user <- []",
            ]
        );
    }

    #[test]
    fn replacements_order_their_two_halves() {
        let plan = Plan {
            changes: vec![
                change(
                    "cbd",
                    Action::Replace {
                        create_before_destroy: true,
                    },
                ),
                change(
                    "plain",
                    Action::Replace {
                        create_before_destroy: false,
                    },
                ),
                change("user", Action::Update),
            ],
            ..Plan::default()
        };
        let config = [(
            "user".to_string(),
            vec!["cbd".to_string(), "plain".to_string()],
        )]
        .into();
        let mut state = State::new("t");
        state.resources.insert("cbd".into(), recorded(&[]));
        state.resources.insert("plain".into(), recorded(&[]));
        state
            .resources
            .insert("user".into(), recorded(&["cbd", "plain"]));
        assert_eq!(
            describe(&steps(&plan, &config, &state)),
            vec![
                // The old `cbd` goes after the new one exists and `user` moved to it.
                "Destroy cbd <- [Create cbd, Update user]",
                "Create cbd <- []",
                "Destroy plain <- []",
                "Create plain <- [Destroy plain]",
                "Update user <- [Create cbd, Create plain]",
            ]
        );
    }
}
