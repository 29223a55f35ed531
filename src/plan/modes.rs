//! Plans other than "make it match the configuration": `--destroy`
//! (everything in the state goes), `--target ADDR` (only some resources and
//! what they need), and the check of `--replace ADDR`. And [`Evaluation`]: the configuration kept to be evaluated
//! again while applying, when values unknown at plan time become known.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::check::evaluate_with_deployments;
use crate::config::{ModuleConfig, ResourceMode};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::eval::{EvaluatedModule, Expansions, RootVariables, SchemaCatalog};
use crate::state::State;
use crate::syntax::SourceMap;

use super::diff::{Action, Change, Plan, Records, StatePlanner, to_values};

/// A plan that destroys every object in the state, in reverse dependency
/// order. `prevent_destroy` on a configured resource is an error.
pub fn destroy_plan(state: &State, evaluated: Option<&EvaluatedModule>) -> (Plan, Diagnostics) {
    let mut diagnostics = Diagnostics::new();
    if let Some(evaluated) = evaluated {
        for instance in evaluated.all_resources() {
            if instance.lifecycle.prevent_destroy && state.resources.contains_key(&instance.address)
            {
                diagnostics.push(
                    Diagnostic::error(Code::PreventDestroy, format!("`{}` would be destroyed, but it has `prevent_destroy`", instance.address))
                        .with_label(instance.span, "has `lifecycle { prevent_destroy = true }`")
                        .with_help("remove `prevent_destroy` from its `lifecycle` block if destroying it is intended, or leave it out with `--target`"),
                );
            }
        }
    }
    let changes = state
        .resources
        .iter()
        // Data sources' results are not objects: nothing to destroy.
        .filter(|(address, _)| !crate::state::is_data_address(address))
        .map(|(address, resource)| Change {
            address: address.clone(),
            mode: ResourceMode::Managed,
            type_name: resource.type_name.clone(),
            action: Action::Delete,
            before: Some(Arc::new(to_values(&resource.attributes))),
            after: None,
            replaced_because: Vec::new(),
            changed: Vec::new(),
            sensitive: resource.sensitive.clone(),
        })
        .collect();
    (
        Plan {
            changes,
            ..Plan::default()
        },
        diagnostics,
    )
}

/// Whether `address` (`aws_subnet.a[0]`) is named by `target`: the same
/// instance, its whole resource (`aws_subnet.a`), or a module it is in
/// (`module.net`).
pub fn targets(target: &str, address: &str) -> bool {
    address == target
        || address
            .strip_prefix(target)
            .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
}

/// Keeps only the changes of the targeted resources and of what they
/// depend on (so that they can be applied); when destroying, of the
/// targeted resources and of what depends on them (so that nothing is left
/// pointing at a destroyed object). Targets that match nothing are errors.
pub fn restrict_to_targets(
    plan: &mut Plan,
    wanted: &[String],
    dependencies: &BTreeMap<String, Vec<String>>,
    destroying: bool,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for target in wanted {
        let matched: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|c| targets(target, &c.address))
            .collect();
        if matched.is_empty() {
            diagnostics.push(
                Diagnostic::error(Code::Target, format!("`--target {target}` matches no resource"))
                    .with_help("name a resource (`random_id.x`), an instance (`random_id.x[0]`) or a module (`module.net`); `infra state list` shows what the state holds"),
            );
        }
        kept.extend(matched.into_iter().map(|c| c.address.clone()));
    }
    // Follow edges: towards dependencies for a normal plan, towards
    // dependents when destroying.
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (address, needs) in dependencies {
        for need in needs {
            if destroying {
                edges.entry(need).or_default().push(address);
            } else {
                edges.entry(address).or_default().push(need);
            }
        }
    }
    let mut stack: Vec<String> = kept.iter().cloned().collect();
    while let Some(address) = stack.pop() {
        for &next in edges.get(address.as_str()).into_iter().flatten() {
            if kept.insert(next.to_string()) {
                stack.push(next.to_string());
            }
        }
    }
    plan.changes.retain(|c| kept.contains(&c.address));
    diagnostics
}

/// `--replace ADDR` must name an object that exists (the replacement
/// itself is planned by [`super::plan_loaded`], so that what depends on
/// the object sees its new values as unknown).
pub fn check_replacements(plan: &Plan, wanted: &[String]) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for target in wanted {
        let exists = plan
            .changes
            .iter()
            .any(|c| targets(target, &c.address) && c.before.is_some());
        if !exists {
            diagnostics.push(
                Diagnostic::error(
                    Code::Replace,
                    format!("`--replace {target}` matches no existing resource"),
                )
                .with_help(
                    "only objects that exist can be replaced; `infra state list` shows them",
                ),
            );
        }
    }
    diagnostics
}

/// A configuration kept after planning, to be evaluated again against the
/// state as apply changes it.
pub struct Evaluation {
    pub config: ModuleConfig,
    pub variables: RootVariables,
    pub sources: SourceMap,
    pub schemas: Arc<SchemaCatalog>,
    /// Stable `count`/`for_each` instances, kept from one focused
    /// evaluation to the next.
    pub expansions: Expansions,
}

impl Evaluation {
    /// Where the value of argument `attribute` of the resource at
    /// `address` is written (see [`argument_span`]).
    pub fn argument_span(&self, address: &str, attribute: &str) -> Option<crate::syntax::Span> {
        argument_span(&self.config, address, attribute)
    }

    /// The configuration evaluated against `state`: references to applied
    /// resources see their real values.
    pub fn against(&self, state: &State) -> Result<EvaluatedModule, String> {
        self.evaluate(state, None)
    }

    /// [`Evaluation::against`], of only the resources or instances in
    /// `focus` (see [`crate::eval::evaluate_focused`]): what they depend on is read from
    /// its records in `state`.
    pub fn focused(
        &self,
        state: &impl Records,
        focus: &BTreeSet<String>,
    ) -> Result<EvaluatedModule, String> {
        self.evaluate(state, Some(focus))
    }

    fn evaluate(
        &self,
        state: &impl Records,
        focus: Option<&BTreeSet<String>>,
    ) -> Result<EvaluatedModule, String> {
        let planner = match focus {
            Some(_) => StatePlanner::applying(state).with_expansions(&self.expansions),
            None => StatePlanner::applying(state),
        };
        let mut diagnostics = Diagnostics::new();
        let evaluated = evaluate_with_deployments(
            &self.config,
            &self.variables,
            &self.schemas,
            Some(&planner),
            &self.sources,
            focus,
            &mut diagnostics,
        )
        .0;
        match diagnostics.iter().find(|d| d.is_error()) {
            Some(error) => Err(format!(
                "evaluating the configuration again failed: {}",
                error.message
            )),
            None => Ok(evaluated),
        }
    }
}

/// Where the value of argument `attribute` of the resource at `address` is
/// written: `ami`; `ingress.0.port` (or `ingress[0].port`), the `port` of
/// its first `ingress` block; `scrape.2`, a part of the `scrape` value (its
/// whole expression). A block the path names without the argument is its
/// header; `None` when the resource's block does not write it.
pub fn argument_span(
    config: &ModuleConfig,
    address: &str,
    attribute: &str,
) -> Option<crate::syntax::Span> {
    let mut module = config;
    let mut rest = crate::graph::without_key(address);
    while let Some((step, tail)) = crate::graph::split_module_step(rest) {
        module = module.children.get(step.split('[').next()?)?;
        rest = tail;
    }
    let path: Vec<&str> = attribute
        .split(['.', '[', ']'])
        .filter(|segment| !segment.is_empty())
        .collect();
    // A deployment's fleet names its arguments as the block writes them.
    if let Some(name) = rest.strip_prefix("deployment.") {
        let block = &module.declarations.deployments.get(name)?.block;
        let attributes: Vec<_> = block.attributes().cloned().collect();
        let blocks: Vec<_> = block.blocks().cloned().collect();
        return span_in_body(&attributes, &blocks, &path);
    }
    let (_, resource) = module
        .declarations
        .resources
        .iter()
        .find(|(id, _)| id.to_string() == rest)?;
    span_in_body(&resource.arguments, &resource.nested_blocks, &path)
}

fn span_in_body(
    attributes: &[crate::syntax::Attribute],
    blocks: &[crate::syntax::Block],
    path: &[&str],
) -> Option<crate::syntax::Span> {
    let (name, rest) = path.split_first()?;
    if let Some(argument) = attributes.iter().find(|a| a.name.name == *name) {
        return Some(argument.value.span);
    }
    let (index, rest) = match rest.split_first() {
        Some((n, tail)) if n.parse::<usize>().is_ok() => (n.parse().unwrap_or(0), tail),
        _ => (0, rest),
    };
    let block = blocks.iter().filter(|b| b.kind.name == *name).nth(index)?;
    if rest.is_empty() {
        return Some(block.header_span);
    }
    let inner_attributes: Vec<_> = block.attributes().cloned().collect();
    let inner_blocks: Vec<_> = block.blocks().cloned().collect();
    span_in_body(&inner_attributes, &inner_blocks, rest).or(Some(block.header_span))
}
