//! Configuration + state → [`Plan`]: one [`Change`] per resource instance.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use crate::check::{CheckOptions, Checked, Loaded, evaluate, load};
use crate::config::ResourceMode;
use crate::deploy::record::RolloutRecord;
use crate::deploy::{Deployments, Rollout, rollout_of};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::eval::{
    BlockSchema, EvaluatedModule, Expansions, InstancePlanner, RecordedObject, ResourceInstance,
    SchemaCatalog, SchemaLookup, TypeConstraint, Value,
};
use crate::state::{ResourceState, State};

/// Where a [`StatePlanner`] finds the record of an instance: a [`State`],
/// or apply's working state behind its lock. Read from several threads.
pub trait Records: Sync {
    fn with_record<T>(&self, address: &str, look: impl FnOnce(Option<&ResourceState>) -> T) -> T;
}

impl Records for State {
    fn with_record<T>(&self, address: &str, look: impl FnOnce(Option<&ResourceState>) -> T) -> T {
        look(self.resources.get(address))
    }
}

/// Tells evaluation what each instance will look like after apply, from
/// the state: the same decision [`diff`] reports, so that references to an
/// unchanged resource see its recorded values, and references to a replaced
/// one see unknowns.
pub struct StatePlanner<'s, R: Records = State> {
    pub state: &'s R,
    /// `--replace` addresses: replaced although nothing forces it.
    pub replace: &'s [String],
    /// The changes decided while evaluating, by address, kept for [`diff`]
    /// (which would otherwise decide each one again); `None`: not kept.
    decided: Option<Mutex<FxHashMap<String, Change>>>,
    /// Evaluating during apply: values known only then (`timestamp()`)
    /// are known.
    applying: bool,
    /// Where focused evaluations during apply keep stable expansions.
    expansions: Option<&'s Expansions>,
}

impl<'s, R: Records> StatePlanner<'s, R> {
    pub fn new(state: &'s R, replace: &'s [String]) -> StatePlanner<'s, R> {
        StatePlanner {
            state,
            replace,
            decided: None,
            applying: false,
            expansions: None,
        }
    }

    /// This planner, keeping stable `count`/`for_each` instances in
    /// `expansions` from one focused evaluation to the next.
    pub fn with_expansions(self, expansions: &'s Expansions) -> StatePlanner<'s, R> {
        StatePlanner {
            expansions: Some(expansions),
            ..self
        }
    }

    /// A planner for evaluations during apply.
    pub fn applying(state: &'s R) -> StatePlanner<'s, R> {
        StatePlanner {
            applying: true,
            ..StatePlanner::new(state, &[])
        }
    }

    /// A planner that keeps each change it decides for [`diff`].
    pub fn keeping_changes(state: &'s R, replace: &'s [String]) -> StatePlanner<'s, R> {
        StatePlanner {
            decided: Some(Mutex::default()),
            ..StatePlanner::new(state, replace)
        }
    }

    /// The change decided for `address` while evaluating, if kept.
    fn decided(&self, address: &str) -> Option<Change> {
        self.decided
            .as_ref()?
            .lock()
            .expect("planner")
            .remove(address)
    }
}

impl<R: Records> InstancePlanner for StatePlanner<'_, R> {
    fn planned_object(
        &self,
        instance: &ResourceInstance,
        schema: Option<&BlockSchema>,
    ) -> Option<Arc<BTreeMap<String, Value>>> {
        let forced = self.forces_replacement(&instance.address);
        let change = self.state.with_record(&instance.address, |prior| {
            plan_instance(instance, prior.map(|p| &p.attributes), schema, forced)
        });
        match &self.decided {
            Some(decided) => {
                let after = change.after.clone();
                decided
                    .lock()
                    .expect("planner")
                    .insert(instance.address.clone(), change);
                after
            }
            None => change.after,
        }
    }

    fn applying(&self) -> bool {
        self.applying
    }

    fn expansions(&self) -> Option<&Expansions> {
        self.expansions
    }

    fn recorded_object(&self, address: &str) -> Option<RecordedObject> {
        self.state.with_record(address, |record| {
            record.map(|record| RecordedObject {
                attributes: to_values(&record.attributes),
                sensitive: record.sensitive.clone(),
            })
        })
    }
}

impl<R: Records> StatePlanner<'_, R> {
    fn forces_replacement(&self, address: &str) -> bool {
        self.replace
            .iter()
            .any(|target| super::modes::targets(target, address))
    }
}

/// Evaluates the configuration against the state and diffs it: the whole
/// of planning, minus refresh.
pub fn plan(options: &CheckOptions, state: &State) -> (Checked, Plan) {
    plan_loaded(load(options), options, state, &[])
}

/// [`plan`] of a configuration already loaded (to find its state first).
/// `replace` lists `--replace` addresses.
pub fn plan_loaded(
    loaded: Loaded,
    options: &CheckOptions,
    state: &State,
    replace: &[String],
) -> (Checked, Plan) {
    let planner = StatePlanner::keeping_changes(state, replace);
    let mut checked = evaluate(loaded, options, Some(&planner));
    let Some(evaluated) = &checked.evaluated else {
        return (checked, Plan::default());
    };
    let (mut plan, diagnostics) = diff(evaluated, &planner, &options.schemas);
    checked.diagnostics.extend(diagnostics);
    plan.rollouts = rollouts(&plan, &checked.deployments);
    (checked, plan)
}

/// The rollouts of the deployments a plan updates to a new version.
fn rollouts(plan: &Plan, deployments: &Deployments) -> BTreeMap<String, Rollout> {
    plan.changes
        .iter()
        .filter(|change| change.action == Action::Update)
        .filter_map(|change| {
            let spec = deployments.get(&change.address)?;
            let before = change.before.as_deref()?;
            let mut rollout = rollout_of(spec, before, change.after.as_deref()?)?;
            rollout.recorded = before
                .get(RolloutRecord::ATTRIBUTE)
                .and_then(|record| RolloutRecord::from_json(&record.to_json()));
            Some((change.address.clone(), rollout))
        })
        .collect()
}

/// What happens to one resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    NoOp,
    /// `+`
    Create,
    /// `~`: changed in place.
    Update,
    /// `-/+`, or `+/-` when the new object is created before the old one
    /// is destroyed (`lifecycle { create_before_destroy = true }`).
    Replace {
        create_before_destroy: bool,
    },
    /// `-`: no longer in the configuration.
    Delete,
    /// `<=`: a data source, read during planning and apply.
    Read,
}

impl Action {
    /// `create`, `update`, `replace`, `delete`, `read`, `no-op`: as the JSON
    /// plan and events name it.
    pub fn name(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace { .. } => "replace",
            Action::Delete => "delete",
            Action::Read => "read",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace {
                create_before_destroy: false,
            } => "-/+",
            Action::Replace {
                create_before_destroy: true,
            } => "+/-",
            Action::Delete => "-",
            Action::Read => "<=",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub address: String,
    pub mode: ResourceMode,
    pub type_name: String,
    pub action: Action,
    /// Attributes as the state has them (none for a create). Shared: an
    /// unchanged object's `after` is the same map, and what references see
    /// while evaluating is too, so a no-op copies nothing.
    pub before: Option<Arc<BTreeMap<String, Value>>>,
    /// Attributes as they will be (none for a delete); unknown where only
    /// apply will know.
    pub after: Option<Arc<BTreeMap<String, Value>>>,
    /// Attributes whose change forces the replacement.
    pub replaced_because: Vec<String>,
    /// Every attribute that changes, sorted.
    pub changed: Vec<String>,
    /// Attributes whose values are sensitive beyond those the schema marks
    /// (computed from sensitive values), sorted: shown as `(sensitive
    /// value)`.
    pub sensitive: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Sorted by address.
    pub changes: Vec<Change>,
    /// How each deployment that gets a new version rolls it out, by
    /// address.
    pub rollouts: BTreeMap<String, Rollout>,
    /// The root module's outputs that change, by name.
    pub outputs: Vec<super::outputs::OutputChange>,
}

impl Plan {
    fn count(&self, wanted: fn(Action) -> bool) -> usize {
        self.changes.iter().filter(|c| wanted(c.action)).count()
    }

    /// `Plan: 2 to add, 1 to change, 1 to replace, 0 to destroy.` or
    /// `No changes.`
    pub fn summary(&self) -> String {
        let add = self.count(|a| a == Action::Create);
        let change = self.count(|a| a == Action::Update);
        let replace = self.count(|a| matches!(a, Action::Replace { .. }));
        let destroy = self.count(|a| a == Action::Delete);
        let outputs = self.outputs.len();
        if add + change + replace + destroy + outputs == 0 {
            return "No changes.".into();
        }
        let also = match outputs {
            0 => String::new(),
            1 => ", 1 output to change".into(),
            n => format!(", {n} outputs to change"),
        };
        format!(
            "Plan: {add} to add, {change} to change, {replace} to replace, {destroy} to destroy{also}."
        )
    }

    /// Anything for apply to do: a resource to change, or an output (as
    /// Terraform, whose `-detailed-exitcode` counts output changes too).
    pub fn has_changes(&self) -> bool {
        self.has_resource_changes() || !self.outputs.is_empty()
    }

    pub fn has_resource_changes(&self) -> bool {
        self.changes
            .iter()
            .any(|c| !matches!(c.action, Action::NoOp | Action::Read))
    }
}

/// Compares every resource instance of the configuration with the state.
/// Errors (e.g. `prevent_destroy` on a resource the plan would destroy)
/// are diagnostics; the plan still lists every change.
pub fn diff(
    evaluated: &EvaluatedModule,
    planner: &StatePlanner,
    schemas: &SchemaCatalog,
) -> (Plan, Diagnostics) {
    let state = planner.state;
    let mut diagnostics = Diagnostics::new();
    let mut changes = Vec::new();
    let mut configured: rustc_hash::FxHashSet<&str> = Default::default();
    for instance in evaluated.all_resources() {
        configured.insert(instance.address.as_str());
        let schema = match schemas.lookup(instance.id.mode, &instance.id.type_name) {
            SchemaLookup::Found(schema) => Some(schema),
            _ => None,
        };
        // Decided while evaluating (the same instance, record and schema),
        // or now.
        let change = planner.decided(&instance.address).unwrap_or_else(|| {
            let prior = state.resources.get(&instance.address);
            let forced = planner.forces_replacement(&instance.address);
            plan_instance(instance, prior.map(|p| &p.attributes), schema, forced)
        });
        if let Action::Replace { .. } = change.action
            && instance.lifecycle.prevent_destroy
        {
            diagnostics.push(
                Diagnostic::error(Code::PreventDestroy, format!("`{}` would be replaced, but it has `prevent_destroy`", instance.address))
                    .with_label(instance.span, format!("replacement forced by {}", code_names(&change.replaced_because)))
                    .with_help("keep the attributes that force replacement unchanged, or remove `prevent_destroy` from its `lifecycle` block if destroying it is intended"),
            );
        }
        changes.push(change);
    }
    for (address, prior) in &state.resources {
        if configured.contains(address.as_str()) || crate::state::is_data_address(address) {
            continue;
        }
        changes.push(Change {
            address: address.clone(),
            mode: ResourceMode::Managed,
            type_name: prior.type_name.clone(),
            action: Action::Delete,
            before: Some(Arc::new(to_values(&prior.attributes))),
            after: None,
            replaced_because: Vec::new(),
            changed: Vec::new(),
            sensitive: prior.sensitive.clone(),
        });
    }
    // Addresses are unique, and mostly in order already.
    if !changes.is_sorted_by(|a, b| a.address <= b.address) {
        changes.sort_unstable_by(|a, b| a.address.cmp(&b.address));
    }
    propagate_create_before_destroy(&mut changes, evaluated);
    (
        Plan {
            changes,
            ..Plan::default()
        },
        diagnostics,
    )
}

/// A replacement created before its old object is destroyed needs what it
/// depends on to outlive the old object too: replacements of its
/// dependencies become create-before-destroy as well (otherwise a
/// dependency would have to be destroyed before, and created after, it).
fn propagate_create_before_destroy(changes: &mut [Change], evaluated: &EvaluatedModule) {
    let create_before_destroy = Action::Replace {
        create_before_destroy: true,
    };
    if !changes.iter().any(|c| c.action == create_before_destroy) {
        return;
    }
    let graph = crate::graph::ResourceGraph::build(evaluated);
    let position: BTreeMap<String, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.clone(), i))
        .collect();
    let mut pending: Vec<usize> = changes
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.action
                == Action::Replace {
                    create_before_destroy: true,
                }
        })
        .map(|(i, _)| i)
        .collect();
    while let Some(index) = pending.pop() {
        for dependency in graph.dependencies_of(&changes[index].address) {
            let Some(&at) = position.get(dependency) else {
                continue;
            };
            if changes[at].action
                == (Action::Replace {
                    create_before_destroy: false,
                })
            {
                changes[at].action = Action::Replace {
                    create_before_destroy: true,
                };
                pending.push(at);
            }
        }
    }
}

fn code_names(names: &[String]) -> String {
    crate::diagnostics::code_list(names)
}

pub(super) fn to_values(
    attributes: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, Value> {
    attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::from_json(v)))
        .collect()
}

/// Equal as far as the plan can tell: unknown is never equal, numbers
/// compare by value (state JSON keeps `2` and `2.0` alike).
fn same(planned: &Value, recorded: &Value) -> bool {
    match (planned, recorded) {
        (Value::Unknown, _) | (_, Value::Unknown) => false,
        (Value::Number(a), Value::Number(b)) => a == b,
        (Value::List(a), Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| same(x, y))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len() && a.iter().all(|(k, x)| b.get(k).is_some_and(|y| same(x, y)))
        }
        _ => planned == recorded,
    }
}

/// `force_replace`: `--replace` names it (an existing object is replaced
/// even if nothing forces it; `replaced_because` stays empty).
/// Equal as sets: the same elements (by [`same`]) in any order.
fn same_as_sets(planned: &Value, recorded: &Value) -> bool {
    let (Value::List(planned), Value::List(recorded)) = (planned, recorded) else {
        return same(planned, recorded);
    };
    if planned.len() != recorded.len() {
        return false;
    }
    let mut unmatched: Vec<&Value> = recorded.iter().collect();
    planned.iter().all(
        |element| match unmatched.iter().position(|other| same(element, other)) {
            Some(at) => {
                unmatched.swap_remove(at);
                true
            }
            None => false,
        },
    )
}

fn plan_instance(
    instance: &ResourceInstance,
    prior: Option<&BTreeMap<String, serde_json::Value>>,
    schema: Option<&BlockSchema>,
    force_replace: bool,
) -> Change {
    let mut change = Change {
        address: instance.address.clone(),
        mode: instance.id.mode,
        type_name: instance.id.type_name.to_string(),
        action: Action::NoOp,
        before: prior.map(|prior| Arc::new(to_values(prior))),
        after: None,
        replaced_because: Vec::new(),
        changed: Vec::new(),
        sensitive: instance.sensitive.to_vec(),
    };
    // What the configuration asks for, with every computed attribute the
    // provider will set unknown until apply (null if it is not computed).
    static NULL: Value = Value::Null;
    static UNKNOWN: Value = Value::Unknown;
    let unset = schema
        .into_iter()
        .flat_map(|schema| &schema.attributes)
        .filter(|(name, _)| !instance.arguments.contains_key(*name))
        .map(|(name, attribute)| (name, if attribute.computed { &UNKNOWN } else { &NULL }));
    let wanted = instance.arguments.iter().chain(unset);
    if instance.id.mode == ResourceMode::Data {
        // Read while planning (its values are known), or during apply.
        change.action = Action::Read;
        change.after = Some(match &change.before {
            Some(before) => before.clone(),
            None => Arc::new(wanted.map(|(k, v)| (k.clone(), v.clone())).collect()),
        });
        return change;
    }
    let Some(before) = &change.before else {
        change.action = Action::Create;
        change.changed = instance.arguments.keys().cloned().collect();
        change.after = Some(Arc::new(
            wanted.map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
        return change;
    };
    let ignored: BTreeSet<&str> = instance
        .lifecycle
        .ignore_changes
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    // The recorded object itself, copied only if something changes.
    let mut after = Arc::clone(before);
    for (name, value) in wanted {
        let computed_only = schema
            .and_then(|s| s.attributes.get(name))
            .is_some_and(|a| a.computed && !a.is_settable());
        let recorded = before.get(name).unwrap_or(&Value::Null);
        if computed_only || ignored.contains(name.as_str()) {
            // The provider's value stands (it is only re-read on refresh).
            continue;
        }
        let configured = instance.arguments.contains_key(name);
        // An optional+computed attribute left unset keeps the provider's value.
        let keeps_provider_value = !configured
            && schema
                .and_then(|s| s.attributes.get(name))
                .is_some_and(|a| a.computed);
        let unordered = schema.is_some_and(|s| {
            s.blocks.get(name).is_some_and(|b| b.set)
                || s.attributes
                    .get(name)
                    .is_some_and(|a| matches!(a.type_constraint, TypeConstraint::Set(_)))
        });
        let equal = if unordered {
            same_as_sets(value, recorded)
        } else {
            same(value, recorded)
        };
        if keeps_provider_value || equal {
            continue;
        }
        change.changed.push(name.clone());
        if schema
            .and_then(|s| s.attributes.get(name))
            .is_some_and(|a| a.force_new)
        {
            change.replaced_because.push(name.clone());
        }
        Arc::make_mut(&mut after).insert(name.clone(), value.clone());
    }
    // The configured attributes came first, then the schema's others.
    change.changed.sort();
    change.replaced_because.sort();
    change.action = if !change.replaced_because.is_empty() || force_replace {
        // A replacement gets a new object: everything the provider computes
        // is unknown again.
        if let Some(schema) = schema {
            for (name, attribute) in &schema.attributes {
                if attribute.computed && !instance.arguments.contains_key(name) {
                    Arc::make_mut(&mut after).insert(name.clone(), Value::Unknown);
                }
            }
        }
        Action::Replace {
            create_before_destroy: instance.lifecycle.create_before_destroy,
        }
    } else if change.changed.is_empty() {
        Action::NoOp
    } else {
        Action::Update
    };
    change.after = Some(after);
    change
}

/// Lets each provider refine the planned changes of its resources (the
/// `plan` hook): values it knows in advance, and replacements its schema
/// cannot express (a disk that can grow in place but not shrink).
pub async fn refine_with_providers(
    plan: &mut Plan,
    state: &State,
    providers: &crate::providers::ProviderRegistry,
) -> Diagnostics {
    use infra_provider_sdk::{ObjectIdentity, PlanRequest, Planned};
    let mut diagnostics = Diagnostics::new();
    for change in &mut plan.changes {
        if !matches!(
            change.action,
            Action::Create | Action::Update | Action::Replace { .. }
        ) {
            continue;
        }
        let Some(provider) = providers.get(crate::eval::provider_of(&change.type_name)) else {
            continue;
        };
        let Some(after) = &change.after else {
            continue;
        };
        let proposed = after
            .iter()
            .map(|(name, value)| {
                let planned = if value.is_wholly_known() {
                    Planned::Known(value.to_json())
                } else {
                    Planned::Unknown
                };
                (name.clone(), planned)
            })
            .collect();
        let response = provider
            .plan(PlanRequest {
                type_name: change.type_name.clone(),
                identity: ObjectIdentity {
                    address: change.address.clone(),
                    lineage: state.lineage.clone(),
                },
                prior: state
                    .resources
                    .get(&change.address)
                    .map(|r| r.attributes.clone()),
                proposed,
            })
            .await;
        for problem in response.diagnostics {
            diagnostics.push(crate::providers::provider_diagnostic(
                problem,
                &format!("`{}`: ", change.address),
            ));
        }
        let refined: BTreeMap<String, Value> = response
            .planned
            .into_iter()
            .map(|(name, planned)| {
                let value = match planned {
                    Planned::Known(json) => Value::from_json(&json),
                    Planned::Unknown => Value::Unknown,
                };
                (name, value)
            })
            .collect();
        // What the provider planned may be what is recorded already (a
        // value it keeps in a canonical form): then that is no change.
        if let Some(before) = &change.before {
            change.changed.retain(|name| {
                let recorded = before.get(name).unwrap_or(&Value::Null);
                refined
                    .get(name)
                    .is_none_or(|planned| !planned.is_wholly_known() || !same(planned, recorded))
            });
            if change.action == Action::Update && change.changed.is_empty() {
                change.action = Action::NoOp;
            }
        }
        change.after = Some(Arc::new(refined));
        let forced: Vec<String> = response
            .requires_replace
            .into_iter()
            .filter(|name| change.changed.contains(name) && !change.replaced_because.contains(name))
            .collect();
        if !forced.is_empty() && change.before.is_some() {
            change.replaced_because.extend(forced);
            change.replaced_because.sort();
            if change.action == Action::Update {
                change.action = Action::Replace {
                    create_before_destroy: false,
                };
            }
        }
    }
    diagnostics
}
