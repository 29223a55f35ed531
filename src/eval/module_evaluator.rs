//! Evaluates one module: resolves every reference to a declared object,
//! orders the objects by their dependencies (reporting cycles as the shortest
//! chain), and evaluates variables, locals, resources (expanding `count` and
//! `for_each`), child modules, deployments and outputs in that order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::config::{ModuleConfig, ResourceDecl, ResourceId, ResourceMode};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, code_list, did_you_mean};
use crate::syntax::{Block, Body, Expr, ExprKind, Ident, Item, SourceMap, Span};

use super::deployment::{check_deployment, deployment_resource};
use super::evaluated::{EvaluatedModule, InstanceKey, OutputValue, ResourceInstance};
use super::evaluator::{EvalResult, Evaluator, Failed, MAX_EVALUATION_STEPS, ModuleValues, Scope};
use super::functions::MAX_GENERATED_ELEMENTS;
use super::references::{Reference, Target, collect_references};
use super::schema::{BlockSchema, SchemaCatalog, SchemaLookup, provider_of};
use super::types::{TYPE_NAMES, TypeConstraint};
use super::value::{Value, format_number};

/// How a root variable got a value from outside the configuration.
#[derive(Debug, Clone)]
pub enum VariableOrigin {
    /// `-var name=value`
    CommandLine,
    /// An attribute in a `-var-file`.
    File(Span),
    /// `INFRA_VAR_name`
    Environment,
    /// Recorded in a saved plan (`infra apply FILE`).
    SavedPlan,
}

#[derive(Debug, Clone)]
pub enum ProvidedValue {
    /// Text to convert to the variable's type (`-var`, environment).
    Text(String),
    /// An expression (from a `-var-file`, or a `-var` of a complex type).
    Expr(Expr),
    /// A value already evaluated (from a saved plan).
    Value(Value),
}

/// Values for the root module's variables, already merged by precedence.
#[derive(Debug, Clone, Default)]
pub struct RootVariables {
    pub values: BTreeMap<String, (VariableOrigin, ProvidedValue)>,
}

/// Evaluates the root module and, through it, every child module.
pub fn evaluate_configuration(
    root: &ModuleConfig,
    variables: &RootVariables,
    schemas: &SchemaCatalog,
    planner: Option<&dyn InstancePlanner>,
    sources: &SourceMap,
    diagnostics: &mut Diagnostics,
) -> EvaluatedModule {
    let context = Context {
        root_dir: &root.dir.to_string_lossy(),
        schemas,
        planner,
        sources,
    };
    evaluate_root(root, variables, &context, None, diagnostics)
}

fn evaluate_root(
    root: &ModuleConfig,
    variables: &RootVariables,
    context: &Context,
    focus: Option<&BTreeSet<String>>,
    diagnostics: &mut Diagnostics,
) -> EvaluatedModule {
    let mut budget = MAX_EVALUATION_STEPS;
    let inputs = Inputs::Root(variables);
    evaluate_module(root, &inputs, context, focus, diagnostics, &mut budget)
}

/// [`evaluate_configuration`] of only what the resources named in `focus`
/// need: those resources (addresses without instance keys, e.g.
/// `module.net.aws_subnet.a`) and everything they depend on. Apply uses it
/// to learn one resource's arguments once its dependencies exist, at a cost
/// that grows with its dependencies rather than with the configuration.
/// Problems are reported only as far as that part of it goes.
pub fn evaluate_focused(
    root: &ModuleConfig,
    variables: &RootVariables,
    schemas: &SchemaCatalog,
    planner: Option<&dyn InstancePlanner>,
    sources: &SourceMap,
    focus: &BTreeSet<String>,
    diagnostics: &mut Diagnostics,
) -> EvaluatedModule {
    let context = Context {
        root_dir: &root.dir.to_string_lossy(),
        schemas,
        planner,
        sources,
    };
    evaluate_root(root, variables, &context, Some(focus), diagnostics)
}

enum Inputs<'a> {
    Root(&'a RootVariables),
    /// Values a `module` block passes, with the span of each expression,
    /// the span of the block (where a missing input must be added), the
    /// addresses its inputs depend on, and the inputs whose values are
    /// sensitive (computed from sensitive values).
    Child(
        BTreeMap<String, (Value, Span)>,
        Span,
        Vec<String>,
        BTreeSet<String>,
    ),
}

/// An instance to evaluate: its key, `count.index`, and `each.key`/`each.value`.
type PlannedInstance = (InstanceKey, Option<usize>, Option<(Value, Value)>);

/// The key of a map entry as a `&str` borrowed from the map.
fn name_key<'m, V>(map: &'m BTreeMap<String, V>, name: &str) -> &'m str {
    map.get_key_value(name)
        .map(|(key, _)| key.as_str())
        .unwrap_or("")
}

/// A named object of a module: a node of its dependency graph. It borrows
/// its name from the module's declarations, so nodes are copied freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Node<'c> {
    Variable(&'c str),
    Local(&'c str),
    Resource(&'c ResourceId),
    Module(&'c str),
    Deployment(&'c str),
    Output(&'c str),
    Provider(usize),
    Backend,
}

impl fmt::Display for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Variable(name) => write!(f, "var.{name}"),
            Node::Local(name) => write!(f, "local.{name}"),
            Node::Resource(id) => write!(f, "{id}"),
            Node::Module(name) => write!(f, "module.{name}"),
            Node::Deployment(name) => write!(f, "deployment.{name}"),
            Node::Output(name) => write!(f, "output.{name}"),
            Node::Provider(index) => write!(f, "provider #{index}"),
            Node::Backend => f.write_str("backend"),
        }
    }
}

/// Every expression in a body, nested blocks included, except `provider`
/// (a bare provider name, not a reference).
fn body_expressions<'b>(body: &'b Body, out: &mut Vec<&'b Expr>) {
    for item in &body.items {
        match item {
            Item::Attribute(attribute) if attribute.name.name == "provider" => {}
            Item::Attribute(attribute) => out.push(&attribute.value),
            Item::Block(block) => body_expressions(&block.body, out),
        }
    }
}

fn resource_expressions(resource: &ResourceDecl) -> Vec<&Expr> {
    let mut out: Vec<&Expr> = Vec::new();
    out.extend(resource.count.iter());
    out.extend(resource.for_each.iter());
    out.extend(resource.arguments.iter().map(|a| &a.value));
    for block in &resource.nested_blocks {
        body_expressions(&block.body, &mut out);
    }
    out.extend(resource.depends_on.iter());
    out
}

/// What every module of one evaluation shares.
struct Context<'c> {
    root_dir: &'c str,
    schemas: &'c SchemaCatalog,
    planner: Option<&'c dyn InstancePlanner>,
    sources: &'c SourceMap,
}

/// Decides what a resource instance will look like after apply, so that the
/// resources that refer to it see the truth while they are evaluated: an
/// unchanged dependency keeps its recorded `id`, a replaced one gets an
/// unknown one. Planning (`plan/`) implements it against the state; without
/// a planner (`validate`), everything the provider computes is unknown.
pub trait InstancePlanner {
    /// The planned attributes of `instance`, or `None` to use the default
    /// (configured values, computed attributes unknown).
    fn planned_object(
        &self,
        instance: &ResourceInstance,
        schema: Option<&BlockSchema>,
    ) -> Option<BTreeMap<String, Value>>;
}

struct ModuleEvaluation<'c, 'd> {
    config: &'c ModuleConfig,
    sources: &'c SourceMap,
    schemas: &'c SchemaCatalog,
    context: &'c Context<'c>,
    values: ModuleValues,
    result: EvaluatedModule,
    diagnostics: &'d mut Diagnostics,
    budget: &'d mut u64,
    /// Attributes read from each resource (with where they are read), so
    /// that unset ones can be unknown, or reported when the schema lacks them.
    referenced_attributes: HashMap<&'c ResourceId, Vec<&'c Ident>>,
    /// What each node refers to (for resource dependencies).
    dependencies: HashMap<Node<'c>, BTreeSet<Node<'c>>>,
    failed: HashSet<Node<'c>>,
    /// Declared resources by mode, type and name, to resolve references
    /// (which borrow their names from the syntax tree) without allocating.
    resource_index: HashMap<(ResourceMode, &'c str, &'c str), &'c ResourceId>,
    /// `module.a.module.b.` for addresses; empty in the root module.
    module_prefix: String,
    /// Resource addresses every resource of this module depends on: what
    /// the `module` block's inputs depend on in the calling module.
    inherited_dependencies: Vec<String>,
    /// When set, only the resources named here (and what they need) are
    /// evaluated; see [`evaluate_focused`].
    focus: Option<&'d BTreeSet<String>>,
    /// Module calls whose outputs a focused evaluation needs: evaluated
    /// whole.
    whole_modules: HashSet<&'c str>,
    /// Locals computed from sensitive values.
    sensitive_locals: HashSet<&'c str>,
    /// Per resource, the attributes whose values are sensitive: those the
    /// schema marks, and arguments computed from sensitive values.
    sensitive_attributes: HashMap<&'c ResourceId, Arc<[String]>>,
}

fn evaluate_module<'c>(
    config: &'c ModuleConfig,
    inputs: &Inputs,
    context: &'c Context<'c>,
    focus: Option<&BTreeSet<String>>,
    diagnostics: &mut Diagnostics,
    budget: &mut u64,
) -> EvaluatedModule {
    let mut evaluation = ModuleEvaluation {
        config,
        sources: context.sources,
        schemas: context.schemas,
        context,
        values: ModuleValues {
            path_module: config.dir.to_string_lossy().into_owned(),
            path_root: context.root_dir.to_string(),
            ..ModuleValues::default()
        },
        result: EvaluatedModule {
            path: config.path.clone(),
            ..EvaluatedModule::default()
        },
        diagnostics,
        budget,
        referenced_attributes: HashMap::default(),
        dependencies: HashMap::default(),
        failed: HashSet::default(),
        resource_index: config
            .declarations
            .resources
            .keys()
            .map(|id| ((id.mode, &*id.type_name, &*id.name), id))
            .collect(),
        module_prefix: ModuleEvaluation::compute_module_prefix(&config.path),
        inherited_dependencies: match inputs {
            Inputs::Child(_, _, inherited, _) => inherited.clone(),
            Inputs::Root(_) => Vec::new(),
        },
        focus,
        whole_modules: HashSet::default(),
        sensitive_locals: HashSet::default(),
        sensitive_attributes: HashMap::default(),
    };
    evaluation.run(inputs);
    evaluation.result
}

impl<'c> ModuleEvaluation<'c, '_> {
    fn run(&mut self, inputs: &Inputs) {
        let config: &'c ModuleConfig = self.config;
        let declarations = &config.declarations;
        // 1. The nodes and their expressions.
        let mut nodes: Vec<(Node<'c>, Vec<&'c Expr>)> = Vec::new();
        for (name, variable) in &declarations.variables {
            nodes.push((Node::Variable(name), variable.default.iter().collect()));
        }
        for (name, local) in &declarations.locals {
            nodes.push((Node::Local(name), vec![&local.value]));
        }
        for (id, resource) in &declarations.resources {
            nodes.push((Node::Resource(id), resource_expressions(resource)));
        }
        for (name, call) in &declarations.module_calls {
            let mut exprs: Vec<&Expr> = call.inputs.iter().map(|a| &a.value).collect();
            exprs.extend(call.depends_on.iter());
            nodes.push((Node::Module(name), exprs));
        }
        for (name, deployment) in &declarations.deployments {
            let mut exprs = Vec::new();
            body_expressions(&deployment.block.body, &mut exprs);
            nodes.push((Node::Deployment(name), exprs));
        }
        for (name, output) in &declarations.outputs {
            let mut exprs: Vec<&Expr> = output.value.iter().collect();
            exprs.extend(output.depends_on.iter());
            nodes.push((Node::Output(name), exprs));
        }
        for (index, provider) in declarations.providers.iter().enumerate() {
            let mut exprs = Vec::new();
            body_expressions(&provider.block.body, &mut exprs);
            nodes.push((Node::Provider(index), exprs));
        }
        if let Some(backend) = &declarations.backend {
            let mut exprs = Vec::new();
            body_expressions(&backend.block.body, &mut exprs);
            nodes.push((Node::Backend, exprs));
        }

        // 2. References → edges (user → dependency), unknown names reported.
        //    A focused evaluation analyses only the nodes it needs: the
        //    focused ones and, transitively, what they refer to.
        let mut graph: DiGraph<Node<'c>, Span> = DiGraph::new();
        let mut index_of: HashMap<Node<'c>, NodeIndex> = HashMap::default();
        for (node, _) in &nodes {
            index_of.insert(*node, graph.add_node(*node));
        }
        let mut needed: Option<HashSet<NodeIndex>> = None;
        match self.focus {
            None => {
                for (node, exprs) in &nodes {
                    self.analyse_node(*node, exprs, &mut graph, &index_of);
                }
            }
            Some(focus) => {
                let mut reached: HashSet<NodeIndex> = HashSet::default();
                let mut pending: Vec<usize> = Vec::new();
                for (position, (node, _)) in nodes.iter().enumerate() {
                    if self.is_focused(*node, focus) {
                        reached.insert(index_of[node]);
                        pending.push(position);
                    }
                }
                // Node indices follow the order of `nodes`.
                while let Some(position) = pending.pop() {
                    let (node, exprs) = &nodes[position];
                    self.analyse_node(*node, exprs, &mut graph, &index_of);
                    let dependencies: Vec<NodeIndex> = graph.neighbors(index_of[node]).collect();
                    for dependency in dependencies {
                        // A module whose outputs are needed is evaluated whole.
                        if let Node::Module(name) = graph[dependency] {
                            self.whole_modules.insert(name);
                        }
                        if reached.insert(dependency) {
                            pending.push(dependency.index());
                        }
                    }
                }
                needed = Some(reached);
            }
        }

        // 3. Strongly connected components in dependency order; cycles reported.
        let components = petgraph::algo::kosaraju_scc(&graph);
        for component in components {
            if let Some(needed) = &needed
                && !component.iter().any(|index| needed.contains(index))
            {
                continue;
            }
            let cyclic =
                component.len() > 1 || graph.find_edge(component[0], component[0]).is_some();
            if cyclic {
                self.report_cycle(&graph, &component);
                for index in &component {
                    self.failed.insert(graph[*index]);
                }
                continue;
            }
            let node = graph[component[0]];
            self.evaluate_node(node, inputs);
        }
        self.check_unused_inputs(inputs);
    }

    /// Step 2 for one node: its references become edges to what they name
    /// (unknown names are reported) and its recorded dependencies.
    fn analyse_node(
        &mut self,
        node: Node<'c>,
        exprs: &[&'c Expr],
        graph: &mut DiGraph<Node<'c>, Span>,
        index_of: &HashMap<Node<'c>, NodeIndex>,
    ) {
        let mut references = Vec::new();
        let mut problems = Vec::new();
        for expr in exprs {
            collect_references(expr, &mut references, &mut problems);
        }
        for problem in problems {
            self.diagnostics.push(problem);
        }
        let from = index_of[&node];
        let mut targets = BTreeSet::new();
        for reference in references {
            if let Some(target) = self.resolve(node, &reference) {
                if let Some(&to) = index_of.get(&target) {
                    graph.add_edge(from, to, reference.span);
                }
                targets.insert(target);
            }
        }
        if !targets.is_empty() {
            self.dependencies.insert(node, targets);
        }
    }

    /// Whether a focused evaluation starts from `node`: a focused resource,
    /// or a module call that contains one.
    fn is_focused(&self, node: Node<'c>, focus: &BTreeSet<String>) -> bool {
        match node {
            Node::Resource(id) => focus.contains(&self.address_of(id, &InstanceKey::None)),
            Node::Deployment(name) => {
                focus.contains(&format!("{}deployment.{name}", self.module_prefix))
            }
            Node::Module(name) => {
                let prefix = format!("{}module.{name}.", self.module_prefix);
                focus
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|first| first.starts_with(&prefix))
            }
            _ => false,
        }
    }

    /// Maps a reference to the node it names, or reports it.
    fn resolve(&mut self, from: Node<'c>, reference: &Reference<'c>) -> Option<Node<'c>> {
        let config: &'c ModuleConfig = self.config;
        let declarations = &config.declarations;
        let span = reference.span;
        let unknown = |kind: &str, written: String, candidates: Vec<String>, help: String| {
            Diagnostic::error(
                Code::UnknownReference,
                format!("unknown {kind} `{written}`"),
            )
            .with_label(span, "not declared")
            .with_help(
                did_you_mean(&written, candidates.iter().map(String::as_str)).unwrap_or(help),
            )
        };
        match reference.target {
            Target::Variable(name) => {
                if let Some((declared, _)) = declarations.variables.get_key_value(name) {
                    if matches!(from, Node::Variable(_)) {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::InvalidReference,
                                "a variable's default cannot refer to other values",
                            )
                            .with_label(span, "not allowed in a default")
                            .with_help(
                                "use a literal default, and compute derived values in `locals`",
                            ),
                        );
                        return None;
                    }
                    return Some(Node::Variable(declared));
                }
                let candidates = declarations
                    .variables
                    .keys()
                    .map(|n| format!("var.{n}"))
                    .collect();
                self.diagnostics.push(unknown(
                    "variable",
                    format!("var.{name}"),
                    candidates,
                    format!("declare it: `variable {name} {{ type = string }}`"),
                ));
            }
            Target::Local(name) => {
                if let Some((declared, _)) = declarations.locals.get_key_value(name) {
                    return Some(Node::Local(declared));
                }
                let candidates = declarations
                    .locals
                    .keys()
                    .map(|n| format!("local.{n}"))
                    .collect();
                self.diagnostics.push(unknown(
                    "local value",
                    format!("local.{name}"),
                    candidates,
                    format!("define it in a `locals {{ {name} = … }}` block"),
                ));
            }
            Target::Resource {
                mode,
                type_name,
                name,
            } => {
                if let Some(&id) = self.resource_index.get(&(mode, type_name, name)) {
                    if let Some(attribute) = reference.attribute {
                        self.referenced_attributes
                            .entry(id)
                            .or_default()
                            .push(attribute);
                    }
                    return Some(Node::Resource(id));
                }
                let id = ResourceId {
                    mode,
                    type_name: type_name.into(),
                    name: name.into(),
                };
                let kind = if id.mode == ResourceMode::Data {
                    "data source"
                } else {
                    "resource"
                };
                let candidates = declarations
                    .resources
                    .keys()
                    .filter(|r| r.mode == id.mode)
                    .map(|r| r.to_string())
                    .collect();
                let keyword = if id.mode == ResourceMode::Data {
                    "data"
                } else {
                    "resource"
                };
                self.diagnostics.push(unknown(
                    kind,
                    id.to_string(),
                    candidates,
                    format!(
                        "declare it: `{keyword} {} {} {{ … }}`",
                        id.type_name, id.name
                    ),
                ));
            }
            Target::Module(name) => {
                let Some((declared, call)) = declarations.module_calls.get_key_value(name) else {
                    let candidates = declarations
                        .module_calls
                        .keys()
                        .map(|n| format!("module.{n}"))
                        .collect();
                    self.diagnostics.push(unknown(
                        "module",
                        format!("module.{name}"),
                        candidates,
                        format!("declare it: `module {name} {{ source = \"./modules/{name}\" }}`"),
                    ));
                    return None;
                };
                if let (Some(output), Some(child)) = (
                    reference.attribute.map(|a| a.name.as_str()),
                    self.config.children.get(name),
                ) && !child.declarations.outputs.contains_key(output)
                {
                    let outputs = &child.declarations.outputs;
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::UnknownAttribute,
                            format!("module `{name}` has no output `{output}`"),
                        )
                        .with_label(span, "no such output")
                        .with_help(
                            did_you_mean(output, outputs.keys().map(String::as_str))
                                .unwrap_or_else(|| {
                                    format!(
                                        "declare `output {output} {{ value = … }}` in `{}`",
                                        call.source
                                    )
                                }),
                        ),
                    );
                    return None;
                }
                return Some(Node::Module(declared));
            }
            Target::Deployment(name) => {
                if let Some((declared, _)) = declarations.deployments.get_key_value(name) {
                    return Some(Node::Deployment(declared));
                }
                let candidates = declarations
                    .deployments
                    .keys()
                    .map(|n| format!("deployment.{n}"))
                    .collect();
                self.diagnostics.push(unknown(
                    "deployment",
                    format!("deployment.{name}"),
                    candidates,
                    format!("declare it: `deployment {name} {{ … }}`"),
                ));
            }
            Target::CountIndex => {
                let allowed = matches!(from, Node::Resource(id) if declarations.resources[id].count.is_some());
                if !allowed {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::InvalidReference,
                            "`count.index` used where there is no `count`",
                        )
                        .with_label(span, "no `count` here")
                        .with_help(
                            "`count.index` is available only in a resource block that sets `count`",
                        ),
                    );
                }
            }
            Target::EachKey | Target::EachValue => {
                let allowed = matches!(from, Node::Resource(id) if declarations.resources[id].for_each.is_some());
                if !allowed {
                    self.diagnostics.push(
                        Diagnostic::error(Code::InvalidReference, "`each` used where there is no `for_each`")
                            .with_label(span, "no `for_each` here")
                            .with_help("`each.key` and `each.value` are available only in a resource block that sets `for_each`"),
                    );
                }
            }
            Target::Path => {}
        }
        None
    }

    /// Reports the shortest cycle in a strongly connected component as a
    /// chain `a → b → a`, each hop with its file:line.
    fn report_cycle(&mut self, graph: &DiGraph<Node, Span>, component: &[NodeIndex]) {
        let members: HashSet<NodeIndex> = component.iter().copied().collect();
        let mut best: Option<Vec<(NodeIndex, Span)>> = None;
        let mut starts: Vec<NodeIndex> = component.to_vec();
        starts.sort_by_key(|index| graph[*index]);
        for &start in starts.iter().take(64) {
            if let Some(cycle) = shortest_cycle_through(graph, start, &members)
                && best.as_ref().is_none_or(|b| cycle.len() < b.len())
            {
                best = Some(cycle);
            }
        }
        let Some(cycle) = best else { return };
        let names: Vec<String> = cycle
            .iter()
            .map(|(index, _)| format!("`{}`", graph[*index]))
            .chain(std::iter::once(format!("`{}`", graph[cycle[0].0])))
            .collect();
        let mut diagnostic = Diagnostic::error(
            Code::Cycle,
            format!("dependency cycle: {}", names.join(" → ")),
        );
        for (position, (index, span)) in cycle.iter().enumerate() {
            let next = &graph[cycle[(position + 1) % cycle.len()].0];
            diagnostic =
                diagnostic.with_label(*span, format!("`{}` refers to `{next}`", graph[*index]));
        }
        for (position, (index, span)) in cycle.iter().enumerate() {
            let next = &graph[cycle[(position + 1) % cycle.len()].0];
            let location = self.location(*span);
            diagnostic =
                diagnostic.with_note(format!("{location}: `{}` → `{next}`", graph[*index]));
        }
        self.diagnostics.push(
            diagnostic
                .with_help("break the cycle: one of these values must not depend on the others"),
        );
    }

    fn location(&self, span: Span) -> String {
        self.sources.file_line(span)
    }

    fn depends_on_failed(&self, node: Node<'c>) -> bool {
        self.dependencies
            .get(&node)
            .is_some_and(|deps| deps.iter().any(|d| self.failed.contains(d)))
    }

    fn evaluate_node(&mut self, node: Node<'c>, inputs: &Inputs) {
        if self.depends_on_failed(node) {
            // Its inputs already failed with a diagnostic; don't cascade.
            self.failed.insert(node);
            self.mark_unknown(node);
            return;
        }
        let ok = match node {
            Node::Variable(name) => self.evaluate_variable(name, inputs),
            Node::Local(name) => {
                let expr = &self.config.declarations.locals[name].value;
                let value = self.eval_in_scope(expr);
                let ok = value.is_ok();
                let value = value.unwrap_or(Value::Unknown);
                self.values.locals.insert(name.to_string(), value.clone());
                self.result.locals.insert(name.to_string(), value);
                if self.is_sensitive(expr) {
                    self.sensitive_locals.insert(name);
                }
                ok
            }
            Node::Resource(id) => self.evaluate_resource(id),
            Node::Module(name) => self.evaluate_module_call(name),
            Node::Deployment(name) => {
                let block = &self.config.declarations.deployments[name].block;
                let value = self.eval_block_body(&block.body, None, None);
                let ok = value.is_ok();
                if let Ok(value) = &value {
                    let errors = self.diagnostics.error_count();
                    check_deployment(block, value, self.diagnostics);
                    if self.diagnostics.error_count() == errors {
                        self.add_deployment_instance(name, block, value);
                    }
                }
                let value = value.unwrap_or(Value::Unknown);
                self.values
                    .deployments
                    .insert(name.to_string(), value.clone());
                self.result.deployments.insert(name.to_string(), value);
                ok
            }
            Node::Output(name) => {
                let output = &self.config.declarations.outputs[name];
                let Some(expr) = &output.value else { return };
                let value = self.eval_in_scope(expr);
                let ok = value.is_ok();
                self.result.outputs.insert(
                    name.to_string(),
                    OutputValue {
                        value: value.unwrap_or(Value::Unknown),
                        // A value computed from a secret is a secret.
                        sensitive: output.sensitive || self.is_sensitive(expr),
                    },
                );
                ok
            }
            Node::Provider(index) => {
                let provider = &self.config.declarations.providers[index];
                let value = self.eval_block_body(&provider.block.body, None, None);
                let ok = value.is_ok();
                self.result
                    .providers
                    .push((provider.name.value.clone(), value.unwrap_or(Value::Unknown)));
                ok
            }
            Node::Backend => {
                let Some(backend) = &self.config.declarations.backend else {
                    return;
                };
                let value = self.eval_block_body(&backend.block.body, None, None);
                let ok = value.is_ok();
                if let Ok(value) = &value
                    && !value.is_wholly_known()
                {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::UnknownValue,
                            "backend settings must be known before apply",
                        )
                        .with_label(
                            backend.block.header_span,
                            "refers to values known only after apply",
                        )
                        .with_help("use literal values or variables in the `backend` block"),
                    );
                }
                self.result.backend =
                    Some((backend.kind.value.clone(), value.unwrap_or(Value::Unknown)));
                ok
            }
        };
        if !ok {
            self.failed.insert(node);
        }
    }

    fn mark_unknown(&mut self, node: Node<'c>) {
        match node {
            Node::Variable(name) => {
                self.values
                    .variables
                    .insert(name.to_string(), Value::Unknown);
            }
            Node::Local(name) => {
                self.values.locals.insert(name.to_string(), Value::Unknown);
            }
            Node::Resource(id) => {
                self.values.set_resource(id, Value::Unknown);
            }
            Node::Module(name) => {
                self.values.modules.insert(name.to_string(), Value::Unknown);
            }
            Node::Deployment(name) => {
                self.values
                    .deployments
                    .insert(name.to_string(), Value::Unknown);
            }
            _ => {}
        }
    }

    fn eval_in_scope(&mut self, expr: &Expr) -> EvalResult {
        let scope = Scope {
            values: &self.values,
            module_dir: &self.config.dir,
            count_index: None,
            each: None,
        };
        Evaluator::new(scope, self.diagnostics, self.budget).eval(expr)
    }

    /// Evaluates a block body into an object: attributes by name; unlabelled
    /// nested blocks as a list of objects under their kind; labelled ones as
    /// an object keyed by label.
    fn eval_block_body(
        &mut self,
        body: &Body,
        count_index: Option<usize>,
        each: Option<(Value, Value)>,
    ) -> EvalResult {
        let scope = Scope {
            values: &self.values,
            module_dir: &self.config.dir,
            count_index,
            each,
        };
        let mut evaluator = Evaluator::new(scope, self.diagnostics, self.budget);
        eval_body(&mut evaluator, body, &[])
    }

    fn evaluate_variable(&mut self, name: &str, inputs: &Inputs) -> bool {
        let variable = &self.config.declarations.variables[name];
        let type_constraint = match &variable.type_expr {
            None => TypeConstraint::Any,
            Some(expr) => match TypeConstraint::from_expr(expr) {
                Ok(constraint) => constraint,
                Err(bad) => {
                    let written = match &bad.kind {
                        ExprKind::Variable(ident) => ident.name.clone(),
                        ExprKind::Call { name, .. } => name.name.clone(),
                        _ => String::new(),
                    };
                    self.diagnostics.push(
                        Diagnostic::error(Code::InvalidType, "invalid type constraint")
                            .with_label(bad.span, "not a type")
                            .with_help(did_you_mean(&written, TYPE_NAMES.iter().copied()).unwrap_or_else(|| {
                                "types are string, number, bool, any, list(T), set(T), map(T) and object({ name = T })".into()
                            })),
                    );
                    TypeConstraint::Any
                }
            },
        };
        let fed_a_secret =
            matches!(inputs, Inputs::Child(_, _, _, sensitive) if sensitive.contains(name));
        if variable.sensitive || fed_a_secret {
            self.result.sensitive_variables.push(name.to_string());
        }
        // Where the value comes from, and the span to blame if it is wrong.
        let provided: Option<(Result<Value, Failed>, Option<Span>, String)> = match inputs {
            Inputs::Root(root) => root.values.get(name).map(|(origin, provided)| {
                let (span, origin_text) = match origin {
                    VariableOrigin::CommandLine => (None, format!("-var {name}=…")),
                    VariableOrigin::File(span) => (Some(*span), "the variable file".to_string()),
                    VariableOrigin::Environment => (None, format!("INFRA_VAR_{name}")),
                    VariableOrigin::SavedPlan => (None, "the saved plan".to_string()),
                };
                let value = match provided {
                    ProvidedValue::Text(text) => Ok(Value::string(text)),
                    ProvidedValue::Value(value) => Ok(value.clone()),
                    ProvidedValue::Expr(expr) => self.eval_provided(name, expr),
                };
                (
                    value,
                    span.or(match provided {
                        ProvidedValue::Expr(expr) => Some(expr.span),
                        ProvidedValue::Text(_) | ProvidedValue::Value(_) => None,
                    }),
                    origin_text,
                )
            }),
            Inputs::Child(values, _, _, _) => values.get(name).map(|(value, span)| {
                (
                    Ok(value.clone()),
                    Some(*span),
                    format!("the `{name}` argument of the module block"),
                )
            }),
        };
        let (raw, blame_span, origin) = match provided {
            Some((Ok(value), span, origin)) => (value, span, origin),
            Some((Err(_), _, _)) => {
                self.values
                    .variables
                    .insert(name.to_string(), Value::Unknown);
                return false;
            }
            None => match &variable.default {
                Some(expr) => match self.eval_in_scope(expr) {
                    Ok(value) => (value, Some(expr.span), "the default".to_string()),
                    Err(_) => {
                        self.values
                            .variables
                            .insert(name.to_string(), Value::Unknown);
                        return false;
                    }
                },
                None => {
                    let diagnostic = match inputs {
                        Inputs::Root(_) => Diagnostic::error(
                            Code::MissingVariable,
                            format!("no value for required variable `{name}`"),
                        )
                        .with_label(variable.span, "declared here without a default")
                        .with_help(format!(
                            "set it with `-var {name}=…`, in a `-var-file`, or with the environment variable `INFRA_VAR_{name}`; or give it a `default`"
                        )),
                        Inputs::Child(_, call_span, _, _) => {
                            let module = self.config.display_path();
                            Diagnostic::error(
                                Code::MissingVariable,
                                format!("`{module}` needs a value for its variable `{name}`"),
                            )
                            .with_label(*call_span, format!("no `{name}` given here"))
                            .with_label(variable.span, "declared without a default")
                            .with_help(format!(
                                "add `{name} = …` to this `module` block, or give the variable a `default`"
                            ))
                        }
                    };
                    self.diagnostics.push(diagnostic);
                    self.values
                        .variables
                        .insert(name.to_string(), Value::Unknown);
                    return false;
                }
            },
        };
        // Command-line text for a complex type is parsed by the caller; a
        // plain string for `any` stays a string.
        match type_constraint.convert(&raw) {
            Ok(value) => {
                self.values
                    .variables
                    .insert(name.to_string(), value.clone());
                self.result.variables.insert(name.to_string(), value);
                true
            }
            Err(why) => {
                let mut diagnostic = Diagnostic::error(Code::TypeMismatch, format!("invalid value for variable `{name}`: {why}"))
                    .with_help(format!("the variable is declared as `{type_constraint}`; fix the value given by {origin}"));
                if let Some(span) = blame_span {
                    diagnostic =
                        diagnostic.with_label(span, format!("not a valid `{type_constraint}`"));
                }
                diagnostic = diagnostic.with_label(variable.span, "declared here");
                self.diagnostics.push(diagnostic);
                self.values
                    .variables
                    .insert(name.to_string(), Value::Unknown);
                false
            }
        }
    }

    /// A value from `-var` or a variable file: a constant expression.
    fn eval_provided(&mut self, name: &str, expr: &Expr) -> Result<Value, Failed> {
        let mut references = Vec::new();
        let mut problems = Vec::new();
        collect_references(expr, &mut references, &mut problems);
        let had_problems = !problems.is_empty();
        for problem in problems {
            self.diagnostics.push(problem);
        }
        if let Some(reference) = references.first() {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::InvalidReference,
                    format!("the value of variable `{name}` refers to other values"),
                )
                .with_label(reference.span, "not allowed in a variable value")
                .with_help("give a literal value; to write text, quote it"),
            );
            return Err(Failed);
        }
        if had_problems {
            return Err(Failed);
        }
        self.eval_in_scope(expr)
    }

    fn check_unused_inputs(&mut self, inputs: &Inputs) {
        let declared = &self.config.declarations.variables;
        if let Inputs::Root(root) = inputs {
            for (name, (origin, _)) in &root.values {
                if declared.contains_key(name) {
                    continue;
                }
                let help =
                    did_you_mean(name, declared.keys().map(String::as_str)).unwrap_or_else(|| {
                        format!("declare it: `variable {name} {{ type = string }}`")
                    });
                match origin {
                    VariableOrigin::CommandLine => self.diagnostics.push(
                        Diagnostic::error(
                            Code::UndeclaredVariable,
                            format!("`-var {name}` sets a variable that is not declared"),
                        )
                        .with_help(help),
                    ),
                    VariableOrigin::File(span) => self.diagnostics.push(
                        Diagnostic::warning(
                            Code::UndeclaredVariable,
                            format!("the variable file sets `{name}`, which is not declared"),
                        )
                        .with_label(*span, "not a declared variable")
                        .with_help(help),
                    ),
                    // A saved plan is checked against the configuration
                    // as a whole (its digest) before it is applied.
                    VariableOrigin::Environment | VariableOrigin::SavedPlan => {}
                }
            }
        }
    }

    fn evaluate_module_call(&mut self, name: &str) -> bool {
        let call = &self.config.declarations.module_calls[name];
        let Some(child) = self.config.children.get(name) else {
            self.values.modules.insert(name.to_string(), Value::Unknown);
            return false;
        };
        let mut values = BTreeMap::new();
        let mut sensitive_inputs = BTreeSet::new();
        let mut ok = true;
        for input in &call.inputs {
            if self.is_sensitive(&input.value) {
                sensitive_inputs.insert(input.name.name.clone());
            }
            match self.eval_in_scope(&input.value) {
                Ok(value) => {
                    values.insert(input.name.name.clone(), (value, input.value.span));
                }
                Err(_) => ok = false,
            }
            if !child.declarations.variables.contains_key(&input.name.name) {
                let declared = child.declarations.variables.keys().map(String::as_str);
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::UnknownArgument,
                        format!("module `{name}` has no variable `{}`", input.name.name),
                    )
                    .with_label(input.name.span, "not a variable of the module")
                    .with_help(
                        did_you_mean(&input.name.name, declared).unwrap_or_else(|| {
                            format!(
                                "declare `variable {} {{ … }}` in `{}`, or remove this argument",
                                input.name.name, call.source
                            )
                        }),
                    ),
                );
                ok = false;
            }
        }
        if !ok {
            self.values.modules.insert(name.to_string(), Value::Unknown);
            return false;
        }
        // What the module's inputs depend on, every resource inside depends on.
        let inherited = self.transitive_dependencies(Node::Module(name_key(
            &self.config.declarations.module_calls,
            name,
        )));
        let focus = self.focus.filter(|_| !self.whole_modules.contains(name));
        let evaluated = evaluate_module(
            child,
            &Inputs::Child(values, call.span, inherited, sensitive_inputs),
            self.context,
            focus,
            self.diagnostics,
            self.budget,
        );
        let outputs: BTreeMap<String, Value> = evaluated
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        self.values
            .modules
            .insert(name.to_string(), Value::map(outputs));
        self.result.children.insert(name.to_string(), evaluated);
        true
    }

    /// Whether `expr` is computed from a sensitive value: a sensitive
    /// variable, a local or module output computed from one, or a sensitive
    /// attribute of a resource. Values carry no mark; sensitivity follows
    /// the references.
    fn is_sensitive(&self, expr: &'c Expr) -> bool {
        let mut references = Vec::new();
        collect_references(expr, &mut references, &mut Vec::new());
        references.iter().any(|reference| match reference.target {
            Target::Variable(name) => self.result.sensitive_variables.iter().any(|v| v == name),
            Target::Local(name) => self.sensitive_locals.contains(name),
            Target::Resource {
                mode,
                type_name,
                name,
            } => {
                let Some(id) = self.resource_index.get(&(mode, type_name, name)) else {
                    return false;
                };
                let Some(sensitive) = self.sensitive_attributes.get(id) else {
                    return false;
                };
                match reference.attribute {
                    Some(attribute) => sensitive.contains(&attribute.name),
                    None => !sensitive.is_empty(),
                }
            }
            Target::Module(name) => {
                let Some(child) = self.result.children.get(name) else {
                    return false;
                };
                match reference.attribute {
                    Some(output) => child.outputs.get(&output.name).is_some_and(|o| o.sensitive),
                    None => child.outputs.values().any(|o| o.sensitive),
                }
            }
            _ => false,
        })
    }

    /// The attributes of a resource whose values are sensitive.
    fn sensitive_attributes_of(
        &self,
        resource: &'c ResourceDecl,
        schema: Option<&BlockSchema>,
    ) -> Arc<[String]> {
        let mut sensitive: BTreeSet<String> = schema
            .map(|s| {
                s.attributes
                    .iter()
                    .filter(|(_, a)| a.sensitive)
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        for argument in &resource.arguments {
            if self.is_sensitive(&argument.value) {
                sensitive.insert(argument.name.name.clone());
            }
        }
        for block in &resource.nested_blocks {
            let mut expressions = Vec::new();
            body_expressions(&block.body, &mut expressions);
            if expressions.into_iter().any(|e| self.is_sensitive(e)) {
                sensitive.insert(block.kind.name.clone());
            }
        }
        sensitive.into_iter().collect()
    }

    fn resource_dependencies(&self, id: &'c ResourceId) -> Vec<String> {
        self.transitive_dependencies(Node::Resource(id))
    }

    /// The resources, modules and deployments `node` depends on, directly or
    /// through locals, variables and outputs, as addresses (`module.x` stands
    /// for every resource in it), plus what this module inherits.
    fn transitive_dependencies(&self, node: Node<'c>) -> Vec<String> {
        let mut out: Vec<String> = self.inherited_dependencies.clone();
        let mut seen: HashSet<Node<'c>> = HashSet::default();
        let mut pending: Vec<Node<'c>> = self
            .dependencies
            .get(&node)
            .map(|d| d.iter().copied().collect())
            .unwrap_or_default();
        while let Some(dependency) = pending.pop() {
            if !seen.insert(dependency) {
                continue;
            }
            match dependency {
                Node::Resource(other) => out.push(self.address_of(other, &InstanceKey::None)),
                Node::Module(name) => out.push(format!("{}module.{name}", self.module_prefix)),
                Node::Deployment(name) => {
                    out.push(format!("{}deployment.{name}", self.module_prefix));
                }
                // Values computed from others: look through them.
                Node::Local(_)
                | Node::Variable(_)
                | Node::Output(_)
                | Node::Provider(_)
                | Node::Backend => {
                    if let Some(next) = self.dependencies.get(&dependency) {
                        pending.extend(next.iter().copied());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn compute_module_prefix(path: &[String]) -> String {
        path.iter().map(|p| format!("module.{p}.")).collect()
    }

    fn address_of(&self, id: &ResourceId, key: &InstanceKey) -> String {
        let mut address = String::with_capacity(
            self.module_prefix.len() + id.type_name.len() + id.name.len() + 8,
        );
        address.push_str(&self.module_prefix);
        if id.mode == ResourceMode::Data {
            address.push_str("data.");
        }
        address.push_str(&id.type_name);
        address.push('.');
        address.push_str(&id.name);
        if *key != InstanceKey::None {
            address.push_str(&key.suffix());
        }
        address
    }

    /// A checked `deployment` block as the resource instance its provider
    /// manages (`deployment.NAME`, of type `<provider>_deployment`).
    fn add_deployment_instance(&mut self, name: &'c str, block: &'c Block, value: &Value) {
        let Some((provider, arguments)) = deployment_resource(value) else {
            return;
        };
        if provider != "local" {
            let span = block
                .attributes()
                .find(|a| a.name.name == "provider")
                .map(|a| a.value.span)
                .unwrap_or(block.header_span);
            self.diagnostics.push(
                Diagnostic::error(
                    Code::UnsupportedFleet,
                    format!("deployments on `{provider}` are not built yet"),
                )
                .with_label(span, "no fleet for this provider yet")
                .with_help("use `provider = local` (instances as processes behind a `local_lb`)"),
            );
            return;
        }
        // A block or argument computed from a secret is a secret.
        let mut sensitive: Vec<String> = Vec::new();
        for item in &block.body.items {
            match item {
                Item::Attribute(attribute) if self.is_sensitive(&attribute.value) => {
                    sensitive.push(attribute.name.name.clone());
                }
                Item::Block(nested)
                    if nested
                        .attributes()
                        .any(|attribute| self.is_sensitive(&attribute.value)) =>
                {
                    sensitive.push(nested.kind.name.clone());
                }
                _ => {}
            }
        }
        sensitive.sort();
        sensitive.dedup();
        let id = ResourceId {
            mode: ResourceMode::Managed,
            type_name: format!("{provider}_deployment").into(),
            name: name.into(),
        };
        self.result.resources.push(ResourceInstance {
            address: format!("{}deployment.{name}", self.module_prefix),
            id,
            key: InstanceKey::None,
            arguments: Arc::new(arguments),
            dependencies: self.transitive_dependencies(Node::Deployment(name)).into(),
            sensitive: sensitive.into(),
            lifecycle: Default::default(),
            span: block.header_span,
        });
    }

    fn evaluate_resource(&mut self, id: &'c ResourceId) -> bool {
        let resource = &self.config.declarations.resources[id];
        // Which instances exist.
        let instances: Vec<PlannedInstance> = if let Some(count_expr) = &resource.count {
            let Ok(count) = self.eval_in_scope(count_expr) else {
                self.values.set_resource(id, Value::Unknown);
                return false;
            };
            match self.known_count(&count, count_expr) {
                Some(n) => (0..n)
                    .map(|i| (InstanceKey::Index(i), Some(i), None))
                    .collect(),
                None => {
                    self.values.set_resource(id, Value::Unknown);
                    return false;
                }
            }
        } else if let Some(for_each_expr) = &resource.for_each {
            let Ok(collection) = self.eval_in_scope(for_each_expr) else {
                self.values.set_resource(id, Value::Unknown);
                return false;
            };
            match self.for_each_pairs(&collection, for_each_expr) {
                Some(pairs) => pairs
                    .into_iter()
                    .map(|(key, value)| {
                        (
                            InstanceKey::Key(key.clone()),
                            None,
                            Some((Value::string(&key), value)),
                        )
                    })
                    .collect(),
                None => {
                    self.values.set_resource(id, Value::Unknown);
                    return false;
                }
            }
        } else {
            vec![(InstanceKey::None, None, None)]
        };

        let schema = self.resource_schema(resource);
        // Each resource is evaluated once, so its list can be taken.
        let referenced = self.referenced_attributes.remove(id).unwrap_or_default();
        if let Some(schema) = schema {
            self.check_references_against_schema(id, &referenced, schema);
        }
        let dependencies: Arc<[String]> = self.resource_dependencies(id).into();
        let sensitive = self.sensitive_attributes_of(resource, schema);
        self.sensitive_attributes.insert(id, sensitive.clone());
        let mut ok = true;
        let mut objects: Vec<(InstanceKey, Value)> = Vec::new();
        for (key, count_index, each) in instances {
            let scope = Scope {
                values: &self.values,
                module_dir: &self.config.dir,
                count_index,
                each,
            };
            let mut evaluator = Evaluator::new(scope, self.diagnostics, self.budget);
            let mut arguments = BTreeMap::new();
            for argument in &resource.arguments {
                match evaluator.eval(&argument.value) {
                    Ok(value) => {
                        let value = match schema.and_then(|s| s.attributes.get(&argument.name.name))
                        {
                            Some(attribute) => match attribute.type_constraint.convert(&value) {
                                Ok(converted) => converted,
                                Err(why) => {
                                    evaluator.diagnostics.push(
                                        Diagnostic::error(
                                            Code::TypeMismatch,
                                            format!(
                                                "invalid value for `{}`: {why}",
                                                argument.name.name
                                            ),
                                        )
                                        .with_label(
                                            argument.value.span,
                                            format!("not a valid `{}`", attribute.type_constraint),
                                        )
                                        .with_help(
                                            format!(
                                                "`{}` of `{}` takes a `{}`",
                                                argument.name.name,
                                                id.type_name,
                                                attribute.type_constraint
                                            ),
                                        ),
                                    );
                                    ok = false;
                                    continue;
                                }
                            },
                            None => value,
                        };
                        arguments.insert(argument.name.name.clone(), value);
                    }
                    Err(_) => ok = false,
                }
            }
            match eval_nested_blocks(&mut evaluator, &resource.nested_blocks, &mut arguments) {
                Ok(()) => {}
                Err(_) => ok = false,
            }
            // What references see: the arguments, plus every attribute the
            // schema has (unknown if the provider computes it, else null);
            // without a schema, unknown for every attribute read but not set.
            let arguments = Arc::new(arguments);
            let object = match schema {
                Some(schema) => {
                    let mut object = (*arguments).clone();
                    for (name, attribute) in &schema.attributes {
                        object.entry(name.clone()).or_insert(if attribute.computed {
                            Value::Unknown
                        } else {
                            Value::Null
                        });
                    }
                    Value::map(object)
                }
                None if referenced.iter().all(|a| arguments.contains_key(&a.name)) => {
                    Value::Map(arguments.clone())
                }
                None => {
                    let mut object = (*arguments).clone();
                    for attribute in &referenced {
                        object
                            .entry(attribute.name.clone())
                            .or_insert(Value::Unknown);
                    }
                    Value::map(object)
                }
            };
            let instance = ResourceInstance {
                id: id.clone(),
                address: self.address_of(id, &key),
                key: key.clone(),
                arguments,
                dependencies: dependencies.clone(),
                sensitive: sensitive.clone(),
                lifecycle: resource.lifecycle.clone(),
                span: resource.header_span,
            };
            let object = match self
                .context
                .planner
                .and_then(|planner| planner.planned_object(&instance, schema))
            {
                Some(planned) => Value::map(planned),
                None => object,
            };
            objects.push((key, object));
            self.result.resources.push(instance);
        }
        let value = if resource.count.is_some() {
            Value::list(objects.into_iter().map(|(_, v)| v).collect())
        } else if resource.for_each.is_some() {
            Value::map(
                objects
                    .into_iter()
                    .map(|(key, v)| match key {
                        InstanceKey::Key(k) => (k, v),
                        _ => unreachable!("for_each instances have string keys"),
                    })
                    .collect(),
            )
        } else {
            objects.pop().map(|(_, v)| v).unwrap_or(Value::Unknown)
        };
        self.values.set_resource(id, value);
        ok
    }

    /// The schema of a resource's type, reporting an unknown type or provider
    /// and checking the block's shape against it (once per resource).
    fn resource_schema(&mut self, resource: &ResourceDecl) -> Option<&'c BlockSchema> {
        let id = &resource.id;
        let kind = if id.mode == ResourceMode::Data {
            "data source"
        } else {
            "resource"
        };
        match self.schemas.lookup(id.mode, &id.type_name) {
            SchemaLookup::Found(schema) => {
                let mut problems = Vec::new();
                check_block_against_schema(
                    &id.type_name,
                    resource.header_span,
                    &resource.arguments,
                    &resource.nested_blocks,
                    schema,
                    &mut problems,
                );
                for problem in problems {
                    self.diagnostics.push(problem);
                }
                Some(schema)
            }
            SchemaLookup::UnknownType(candidates) => {
                let provider = provider_of(&id.type_name);
                let help =
                    did_you_mean(&id.type_name, candidates.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "the {kind} types of `{provider}` are {}",
                            code_list(&candidates)
                        )
                    });
                let label = format!("provider `{provider}` has no such {kind} type");
                self.unknown_resource_type(resource, kind, label, help);
                None
            }
            SchemaLookup::UnknownProvider(providers) => {
                let provider = provider_of(&id.type_name);
                let help = did_you_mean(provider, providers.iter().copied())
                    .map(|m| format!("no provider is called `{provider}`; {m}"))
                    .unwrap_or_else(|| format!("the providers are {}", code_list(&providers)));
                self.unknown_resource_type(
                    resource,
                    kind,
                    format!("no provider `{provider}`"),
                    help,
                );
                None
            }
            SchemaLookup::NotCovered => None,
        }
    }

    fn unknown_resource_type(
        &mut self,
        resource: &ResourceDecl,
        kind: &str,
        label: String,
        help: String,
    ) {
        self.diagnostics.push(
            Diagnostic::error(
                Code::UnknownResourceType,
                format!("unknown {kind} type `{}`", resource.id.type_name),
            )
            .with_label(resource.type_label.span, label)
            .with_help(help),
        );
    }

    /// `aws_vpc.main.idd` where the schema has no `idd`.
    fn check_references_against_schema(
        &mut self,
        id: &ResourceId,
        referenced: &[&Ident],
        schema: &BlockSchema,
    ) {
        for attribute in referenced {
            if schema.attributes.contains_key(&attribute.name)
                || schema.blocks.contains_key(&attribute.name)
            {
                continue;
            }
            let candidates = schema
                .attributes
                .keys()
                .chain(schema.blocks.keys())
                .map(String::as_str);
            self.diagnostics.push(
                Diagnostic::error(
                    Code::UnknownAttribute,
                    format!("`{id}` has no attribute `{}`", attribute.name),
                )
                .with_label(
                    attribute.span,
                    format!("not an attribute of `{}`", id.type_name),
                )
                .with_help(
                    did_you_mean(&attribute.name, candidates).unwrap_or_else(|| {
                        format!(
                            "the attributes of `{}` are {}",
                            id.type_name,
                            code_list(schema.attributes.keys())
                        )
                    }),
                ),
            );
        }
    }

    fn must_be_known(&mut self, what: &str, expr: &Expr) {
        self.diagnostics.push(
            Diagnostic::error(Code::UnknownValue, format!("`{what}` must be known before apply"))
                .with_label(expr.span, "depends on values known only after apply")
                .with_help(format!("`{what}` decides how many instances to plan, so it may only use variables, locals and data sources")),
        );
    }

    fn known_count(&mut self, count: &Value, expr: &Expr) -> Option<usize> {
        // "3" counts as 3, as everywhere a number is expected (an untyped
        // `-var n=3` is a string).
        let converted = match count {
            Value::String(_) => TypeConstraint::Number.convert(count).ok(),
            _ => None,
        };
        match converted.as_ref().unwrap_or(count) {
            Value::Unknown => {
                self.must_be_known("count", expr);
                None
            }
            Value::Number(n)
                if n.fract() == 0.0 && *n >= 0.0 && *n <= MAX_GENERATED_ELEMENTS as f64 =>
            {
                Some(*n as usize)
            }
            Value::Number(n) => {
                self.diagnostics.push(
                    Diagnostic::error(Code::TypeMismatch, format!("`count` must be a whole number from 0 to {MAX_GENERATED_ELEMENTS}, not {}", format_number(*n)))
                        .with_label(expr.span, "invalid count")
                        .with_help("use a non-negative whole number"),
                );
                None
            }
            other => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!("`count` must be a number, not a {}", other.type_name()),
                    )
                    .with_label(expr.span, "not a number")
                    .with_help("for one instance per element of a collection, use `for_each`"),
                );
                None
            }
        }
    }

    fn for_each_pairs(&mut self, collection: &Value, expr: &Expr) -> Option<Vec<(String, Value)>> {
        match collection {
            Value::Map(entries) => Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            Value::List(items) => {
                let mut keys = BTreeMap::new();
                for item in items.iter() {
                    match item {
                        Value::String(text) => {
                            keys.insert(text.to_string(), item.clone());
                        }
                        Value::Unknown => {
                            self.must_be_known("for_each", expr);
                            return None;
                        }
                        other => {
                            self.diagnostics.push(
                                Diagnostic::error(Code::TypeMismatch, format!("`for_each` over a list needs strings, not a {}", other.type_name()))
                                    .with_label(expr.span, "not a set of strings")
                                    .with_help("use a map (key → value) or a set of strings, e.g. toset([\"a\", \"b\"])"),
                            );
                            return None;
                        }
                    }
                }
                Some(keys.into_iter().collect())
            }
            Value::Unknown => {
                self.must_be_known("for_each", expr);
                None
            }
            other => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!(
                            "`for_each` needs a map or a set of strings, not a {}",
                            other.type_name()
                        ),
                    )
                    .with_label(expr.span, "not a map or set")
                    .with_help("for N alike instances, use `count`"),
                );
                None
            }
        }
    }
}

/// Checks the arguments and nested blocks of a resource (or nested block)
/// against its schema: unknown names, provider-only attributes, missing
/// required arguments.
fn check_block_against_schema(
    what: &str,
    header_span: Span,
    attributes: &[crate::syntax::Attribute],
    blocks: &[Block],
    schema: &BlockSchema,
    problems: &mut Vec<Diagnostic>,
) {
    let settable = || {
        schema
            .attributes
            .iter()
            .filter(|(_, a)| a.is_settable())
            .map(|(name, _)| name.as_str())
            .chain(schema.blocks.keys().map(String::as_str))
    };
    for attribute in attributes {
        let name = &attribute.name.name;
        match schema.attributes.get(name) {
            Some(found) if found.is_settable() => {}
            Some(_) => problems.push(
                Diagnostic::error(
                    Code::ComputedArgument,
                    format!("`{name}` of `{what}` is set by the provider"),
                )
                .with_label(attribute.name.span, "cannot be configured")
                .with_help(format!(
                    "remove it; other resources can read it as `{what}.NAME.{name}`"
                )),
            ),
            None if schema.blocks.contains_key(name) => problems.push(
                Diagnostic::error(
                    Code::UnknownArgument,
                    format!("`{name}` of `{what}` is a block, not an argument"),
                )
                .with_label(attribute.name.span, "written as an argument")
                .with_help(format!("write it as a block: `{name} {{ … }}`")),
            ),
            None => problems.push(
                Diagnostic::error(
                    Code::UnknownArgument,
                    format!("unknown argument `{name}` for `{what}`"),
                )
                .with_label(
                    attribute.name.span,
                    format!("`{what}` has no such argument"),
                )
                .with_help(did_you_mean(name, settable()).unwrap_or_else(|| {
                    format!("the arguments of `{what}` are {}", code_list(settable()))
                })),
            ),
        }
    }
    for (name, attribute) in &schema.attributes {
        if attribute.required && !attributes.iter().any(|a| a.name.name == *name) {
            problems.push(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("missing required argument `{name}` for `{what}`"),
                )
                .with_label(header_span, format!("needs `{name}`"))
                .with_help(format!(
                    "add `{name} = …` (a `{}`)",
                    attribute.type_constraint
                )),
            );
        }
    }
    for block in blocks {
        let name = &block.kind.name;
        match schema.blocks.get(name) {
            Some(nested) => {
                let nested_attributes: Vec<crate::syntax::Attribute> =
                    block.attributes().cloned().collect();
                let nested_blocks: Vec<Block> = block.blocks().cloned().collect();
                check_block_against_schema(
                    &format!("{what}.{name}"),
                    block.header_span,
                    &nested_attributes,
                    &nested_blocks,
                    nested,
                    problems,
                );
            }
            None if schema.attributes.contains_key(name) => problems.push(
                Diagnostic::error(
                    Code::UnexpectedBlock,
                    format!("`{name}` of `{what}` is an argument, not a block"),
                )
                .with_label(block.header_span, "written as a block")
                .with_help(format!("write it as an argument: `{name} = …`")),
            ),
            None => problems.push(
                Diagnostic::error(
                    Code::UnexpectedBlock,
                    format!("unknown block `{name}` in `{what}`"),
                )
                .with_label(block.header_span, format!("`{what}` has no such block"))
                .with_help(
                    did_you_mean(name, schema.blocks.keys().map(String::as_str)).unwrap_or_else(
                        || {
                            if schema.blocks.is_empty() {
                                format!("`{what}` takes no nested blocks")
                            } else {
                                format!(
                                    "the blocks of `{what}` are {}",
                                    code_list(schema.blocks.keys())
                                )
                            }
                        },
                    ),
                ),
            ),
        }
    }
}

/// The value of a block whose expressions refer to nothing (a backend
/// written with literals), evaluated on its own, without the rest of the
/// configuration. `None` when it refers to something or does not evaluate.
pub fn evaluate_standalone_block(block: &Block, module_dir: &std::path::Path) -> Option<Value> {
    let mut expressions = Vec::new();
    body_expressions(&block.body, &mut expressions);
    let mut references = Vec::new();
    let mut problems = Vec::new();
    for expr in expressions {
        collect_references(expr, &mut references, &mut problems);
    }
    if !references.is_empty() || !problems.is_empty() {
        return None;
    }
    let values = ModuleValues::default();
    let mut diagnostics = Diagnostics::new();
    let mut budget = MAX_EVALUATION_STEPS;
    let scope = Scope {
        values: &values,
        module_dir,
        count_index: None,
        each: None,
    };
    let mut evaluator = Evaluator::new(scope, &mut diagnostics, &mut budget);
    eval_body(&mut evaluator, &block.body, &[]).ok()
}

/// Evaluates a body: attributes, and nested blocks as described at
/// [`ModuleEvaluation::eval_block_body`]. Reports every failing attribute.
pub(super) fn eval_body(evaluator: &mut Evaluator, body: &Body, skip: &[&str]) -> EvalResult {
    let mut object = BTreeMap::new();
    let mut seen: HashMap<&str, Span> = HashMap::default();
    let mut ok = true;
    let mut blocks = Vec::new();
    for item in &body.items {
        match item {
            Item::Attribute(attribute) => {
                let name = attribute.name.name.as_str();
                if skip.contains(&name) {
                    continue;
                }
                if let Some(first) = seen.insert(name, attribute.name.span) {
                    evaluator.diagnostics.push(
                        Diagnostic::error(Code::Duplicate, format!("duplicate argument `{name}`"))
                            .with_label(attribute.name.span, "set again here")
                            .with_label(first, "first set here")
                            .with_help("an argument may be set once per block; remove one of them"),
                    );
                    ok = false;
                    continue;
                }
                if name == "provider"
                    && let ExprKind::Variable(ident) = &attribute.value.kind
                {
                    // `provider = local`: a bare provider name.
                    object.insert(name.to_string(), Value::string(&ident.name));
                    continue;
                }
                match evaluator.eval(&attribute.value) {
                    Ok(value) => {
                        object.insert(name.to_string(), value);
                    }
                    Err(_) => ok = false,
                }
            }
            Item::Block(block) => blocks.push(block.clone()),
        }
    }
    if eval_nested_blocks(evaluator, &blocks, &mut object).is_err() {
        ok = false;
    }
    if ok {
        Ok(Value::map(object))
    } else {
        Err(Failed)
    }
}

fn eval_nested_blocks(
    evaluator: &mut Evaluator,
    blocks: &[Block],
    object: &mut BTreeMap<String, Value>,
) -> Result<(), Failed> {
    let mut ok = true;
    let mut lists: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut labelled: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for block in blocks {
        let value = eval_body(evaluator, &block.body, &[]);
        let Ok(value) = value else {
            ok = false;
            continue;
        };
        match block.labels.as_slice() {
            [] => lists
                .entry(block.kind.name.clone())
                .or_default()
                .push(value),
            [label] => {
                labelled
                    .entry(block.kind.name.clone())
                    .or_default()
                    .insert(label.value.clone(), value);
            }
            _ => {
                evaluator.diagnostics.push(
                    Diagnostic::error(
                        Code::BlockLabels,
                        format!("too many labels on a nested `{}` block", block.kind.name),
                    )
                    .with_label(block.header_span, "at most one label")
                    .with_help("nested blocks take at most one label"),
                );
                ok = false;
            }
        }
    }
    for (kind, values) in lists {
        object.insert(kind, Value::list(values));
    }
    for (kind, values) in labelled {
        object.insert(kind, Value::map(values));
    }
    if ok { Ok(()) } else { Err(Failed) }
}

/// The shortest cycle from `start` back to itself inside one component,
/// as (node, span of the reference to the next node) hops.
fn shortest_cycle_through(
    graph: &DiGraph<Node, Span>,
    start: NodeIndex,
    members: &HashSet<NodeIndex>,
) -> Option<Vec<(NodeIndex, Span)>> {
    use petgraph::visit::EdgeRef;
    let mut previous: HashMap<NodeIndex, (NodeIndex, Span)> = HashMap::default();
    let mut queue = VecDeque::from([start]);
    let mut visited: HashSet<NodeIndex> = HashSet::from_iter([start]);
    while let Some(current) = queue.pop_front() {
        let mut edges: Vec<_> = graph
            .edges(current)
            .filter(|e| members.contains(&e.target()))
            .collect();
        edges.sort_by_key(|e| (e.weight().file, e.weight().start));
        for edge in edges {
            let target = edge.target();
            if target == start {
                let mut hops = vec![(current, *edge.weight())];
                let mut at = current;
                while at != start {
                    let (before, span) = previous[&at];
                    hops.push((before, span));
                    at = before;
                }
                hops.reverse();
                return Some(hops);
            }
            if visited.insert(target) {
                previous.insert(target, (current, *edge.weight()));
                queue.push_back(target);
            }
        }
    }
    None
}
