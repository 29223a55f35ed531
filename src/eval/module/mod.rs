//! Evaluates one module: resolves every reference to a declared object,
//! orders the objects by their dependencies (reporting cycles as the shortest
//! chain), and evaluates variables, locals, resources (expanding `count` and
//! `for_each`), child modules, deployments and outputs in that order.
//!
//! This file holds the evaluation of one module as a whole (`run`) and of
//! one node; the concepts it puts together have a file each:
//! `resolution.rs` (references → the dependency graph, cycles),
//! `variables.rs`, `module_calls.rs`, `resources.rs` (`count`/`for_each`,
//! deployments), `sensitivity.rs`, `schema_checks.rs`, `bodies.rs`.

mod bodies;
mod dynamic;
mod module_calls;
mod resolution;
mod resources;
mod schema_checks;
mod sensitivity;
mod variables;

pub use bodies::evaluate_standalone_block;
use bodies::{eval_body, eval_nested_blocks};
use resolution::{Node, body_expressions};
pub use variables::{ProvidedValue, RootVariables, VariableOrigin};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::config::{ModuleConfig, ResourceDecl, ResourceId, ResourceMode};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, code_list, did_you_mean};
use crate::syntax::{Block, Body, Expr, ExprKind, Ident, Item, SourceMap, Span};

use super::evaluated::{EvaluatedModule, InstanceKey, OutputValue, ResourceInstance};
use super::evaluator::{
    Each, EvalResult, Evaluator, Failed, MAX_EVALUATION_STEPS, MarkedResult, ModuleValues,
    NamedMarks, Scope,
};
use super::functions::MAX_GENERATED_ELEMENTS;
use super::marks::{Marks, MarksBuilder, Segment, SensitivePath, marks_of_paths};
use super::references::{
    Reference, Target, collect_references, collect_references_scoped, names_one_instance,
};
use super::schema::{BlockSchema, SchemaCatalog, SchemaLookup, provider_of};
use super::types::{BadType, TYPE_NAMES, TypeConstraint};
use super::value::{Value, format_number};

/// Evaluates the root module and, through it, every child module — or,
/// when there is a `focus`, only what the resources named in it need: those resources (all instances of
/// `module.net.aws_subnet.a`, or one: `aws_subnet.a[0]`) and what they
/// refer to. Apply uses it to learn one instance's arguments once its
/// dependencies are applied: the resources the focus depends on are read
/// from the planner's [`InstancePlanner::recorded_object`] (an instance
/// without a record is unknown), so neither their arguments nor what
/// those refer to are evaluated again — only their `count`/`for_each`,
/// which say which instances exist. The cost grows with the focus's direct
/// dependencies, not with the configuration or the depth of the chain
/// behind it. Problems are reported only as far as that part goes.
pub fn evaluate_focused(
    root: &ModuleConfig,
    variables: &RootVariables,
    schemas: &SchemaCatalog,
    planner: Option<&dyn InstancePlanner>,
    sources: &SourceMap,
    focus: Option<&BTreeSet<String>>,
    diagnostics: &mut Diagnostics,
) -> EvaluatedModule {
    let context = Context {
        root_dir: &root.dir.to_string_lossy(),
        schemas,
        planner,
        sources,
        module_instances: std::sync::atomic::AtomicUsize::new(0),
    };
    let mut budget = MAX_EVALUATION_STEPS;
    let inputs = Inputs::Root(variables);
    evaluate_module(
        root,
        Vec::new(),
        &inputs,
        &context,
        focus,
        diagnostics,
        &mut budget,
    )
}

enum Inputs<'a> {
    Root(&'a RootVariables),
    /// Values a `module` block passes, with the span of each expression,
    /// the span of the block (where a missing input must be added), the
    /// addresses its inputs depend on, and the marks of the inputs with
    /// sensitive parts.
    Child(
        BTreeMap<String, (Value, Span)>,
        Span,
        Vec<String>,
        BTreeMap<String, Marks>,
    ),
}

/// `components` (as `kosaraju_scc` lists them: what a component depends on
/// before it) in waves: each component goes in the wave after the last of
/// its dependencies', so the members of a wave do not depend on each other.
fn waves(
    graph: &DiGraph<Node<'_>, Span>,
    components: Vec<Vec<NodeIndex>>,
) -> Vec<Vec<Vec<NodeIndex>>> {
    let mut wave_of = vec![0usize; graph.node_count()];
    let mut waves: Vec<Vec<Vec<NodeIndex>>> = Vec::new();
    for component in components {
        // Edges go from a user to what it depends on.
        let wave = component
            .iter()
            .flat_map(|&node| graph.neighbors(node))
            .filter(|dependency| !component.contains(dependency))
            .map(|dependency| wave_of[dependency.index()] + 1)
            .max()
            .unwrap_or(0);
        for node in &component {
            wave_of[node.index()] = wave;
        }
        if waves.len() <= wave {
            waves.resize_with(wave + 1, Vec::new);
        }
        waves[wave].push(component);
    }
    waves
}

/// An instance to evaluate: its key, `count.index`, and `each.key`/`each.value`.
pub type PlannedInstance = (InstanceKey, Option<usize>, Option<Each>);

/// The key of a map entry as a `&str` borrowed from the map.
fn name_key<'m, V>(map: &'m BTreeMap<String, V>, name: &str) -> &'m str {
    map.get_key_value(name)
        .map(|(key, _)| key.as_str())
        .unwrap_or("")
}

/// What every module of one evaluation shares.
struct Context<'c> {
    root_dir: &'c str,
    schemas: &'c SchemaCatalog,
    planner: Option<&'c dyn InstancePlanner>,
    sources: &'c SourceMap,
    /// Module instances evaluated so far (at most
    /// [`crate::config::MAX_MODULE_INSTANCES`]: `count` and `for_each` on
    /// modules multiply at every level).
    module_instances: std::sync::atomic::AtomicUsize,
}

/// Decides what a resource instance will look like after apply, so that the
/// resources that refer to it see the truth while they are evaluated: an
/// unchanged dependency keeps its recorded `id`, a replaced one gets an
/// unknown one. Planning (`plan/`) implements it against the state; without
/// a planner (`validate`), everything the provider computes is unknown.
pub trait InstancePlanner: Sync {
    /// The planned attributes of `instance`, or `None` to use the default
    /// (configured values, computed attributes unknown).
    fn planned_object(
        &self,
        instance: &ResourceInstance,
        schema: Option<&BlockSchema>,
    ) -> Option<Arc<BTreeMap<String, Value>>>;

    /// Whether this evaluation runs during apply, when the values of
    /// `timestamp()` and `uuid()` are known (while planning they are not).
    fn applying(&self) -> bool {
        false
    }

    /// Where the instances of stable `count`/`for_each` expressions are kept
    /// from one focused evaluation to the next (see [`Expansions`]).
    fn expansions(&self) -> Option<&Expansions> {
        None
    }

    /// The object recorded for the instance at `address` once it is
    /// applied, for a focused evaluation (see [`evaluate_focused`]) to read
    /// the resources its focus depends on without evaluating them again.
    fn recorded_object(&self, address: &str) -> Option<RecordedObject> {
        let _ = address;
        None
    }
}

/// The instances of `count`/`for_each` expressions that evaluate the same
/// all through one apply (they depend on no resource), kept by the
/// address of their resource or module call from one focused evaluation to
/// the next: a step inside `module.net["a"]` then looks its instance up
/// instead of evaluating a `for_each` over every key again — which made
/// applying N module instances cost N².
#[derive(Default)]
pub struct Expansions(std::sync::Mutex<HashMap<String, Arc<Expansion>>>);

/// One expression's instances, and where each is by its key's suffix
/// (`[0]`, `["a"]`).
pub struct Expansion {
    pub instances: Vec<PlannedInstance>,
    by_suffix: HashMap<String, usize>,
}

impl Expansions {
    fn get(&self, address: &str) -> Option<Arc<Expansion>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(address)
            .cloned()
    }

    fn keep(&self, address: String, instances: Vec<PlannedInstance>) -> Arc<Expansion> {
        let expansion = Arc::new(Expansion::new(instances));
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address, expansion.clone());
        expansion
    }
}

impl Expansion {
    fn new(instances: Vec<PlannedInstance>) -> Expansion {
        let by_suffix = instances
            .iter()
            .enumerate()
            .map(|(position, (key, _, _))| (key.suffix(), position))
            .collect();
        Expansion {
            instances,
            by_suffix,
        }
    }

    /// The instance whose key's suffix is `suffix` (`["a"]`).
    pub fn by_suffix(&self, suffix: &str) -> Option<&PlannedInstance> {
        self.by_suffix.get(suffix).map(|&at| &self.instances[at])
    }
}

/// An applied instance as the state records it.
pub struct RecordedObject {
    pub attributes: BTreeMap<String, Value>,
    /// Its attributes whose values are sensitive.
    pub sensitive: Vec<String>,
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
    /// Per resource, each reference it makes to another resource, with the
    /// instance key written after it when that names one instance (see
    /// [`super::references::names_one_instance`]): its instances then
    /// depend on that instance only.
    keyed_references: HashMap<&'c ResourceId, Vec<(&'c ResourceId, Option<&'c Expr>)>>,
    /// What the `count`/`for_each` of each resource and module call refers
    /// to (see [`Self::expansion_is_stable`]).
    expansion_targets: HashMap<Node<'c>, Vec<Node<'c>>>,
    failed: HashSet<Node<'c>>,
    /// Declared resources by mode, type and name, to resolve references
    /// (which borrow their names from the syntax tree) without allocating.
    /// (`None` in a focused evaluation, which looks them up one by one.)
    resource_index: Option<HashMap<(ResourceMode, &'c str, &'c str), &'c ResourceId>>,
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
    /// Resources a focused evaluation reads from their records (see
    /// [`evaluate_focused`]) instead of evaluating them.
    recorded: HashSet<&'c ResourceId>,
}

/// Evaluates the module `config` as the instance at `path` (`["net[\"a\"]"]`
/// for `module.net["a"]`; empty for the root module).
fn evaluate_module<'c>(
    config: &'c ModuleConfig,
    path: Vec<String>,
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
            applying: context.planner.is_some_and(|planner| planner.applying()),
            ..ModuleValues::default()
        },
        module_prefix: ModuleEvaluation::compute_module_prefix(&path),
        result: EvaluatedModule {
            path,
            ..EvaluatedModule::default()
        },
        diagnostics,
        budget,
        referenced_attributes: HashMap::default(),
        dependencies: HashMap::default(),
        keyed_references: HashMap::default(),
        expansion_targets: HashMap::default(),
        failed: HashSet::default(),
        // An index of every resource costs a pass over the module: a
        // focused evaluation looks up the few it needs instead.
        resource_index: focus.is_none().then(|| {
            config
                .declarations
                .resources
                .keys()
                .map(|id| ((id.mode, &*id.type_name, &*id.name), id))
                .collect()
        }),
        inherited_dependencies: match inputs {
            Inputs::Child(_, _, inherited, _) => inherited.clone(),
            Inputs::Root(_) => Vec::new(),
        },
        focus,
        whole_modules: HashSet::default(),
        recorded: HashSet::default(),
    };
    evaluation.run(inputs);
    evaluation.result
}

impl<'c> ModuleEvaluation<'c, '_> {
    fn run(&mut self, inputs: &Inputs) {
        // 1. The nodes, 2. their references → edges (user → dependency),
        //    unknown names reported. A focused evaluation starts from the
        //    focused nodes and adds only what they refer to, transitively:
        //    its graph, and its cost, grow with what the focus needs, not
        //    with the module.
        let mut graph: DiGraph<Node<'c>, Span> = DiGraph::new();
        let mut index_of: HashMap<Node<'c>, NodeIndex> = HashMap::default();
        match self.focus {
            None => {
                let nodes = self.all_nodes();
                for node in &nodes {
                    index_of.insert(*node, graph.add_node(*node));
                }
                for node in nodes {
                    let exprs = self.expressions_of(node);
                    self.analyse_node(node, &exprs, &mut graph, &mut index_of, false);
                }
            }
            Some(focus) => {
                let mut pending = self.focused_nodes(focus);
                for node in &pending {
                    index_of.insert(*node, graph.add_node(*node));
                }
                while let Some(node) = pending.pop() {
                    let exprs = match node {
                        // Read from its records: only which instances exist
                        // is evaluated.
                        Node::Resource(id) if self.recorded.contains(id) => {
                            let resource = &self.config.declarations.resources[id];
                            resource.count.iter().chain(&resource.for_each).collect()
                        }
                        _ => self.expressions_of(node),
                    };
                    let added = self.analyse_node(node, &exprs, &mut graph, &mut index_of, true);
                    for dependency in added {
                        match dependency {
                            // A module whose outputs are needed is evaluated whole.
                            Node::Module(name) => {
                                self.whole_modules.insert(name);
                            }
                            Node::Resource(id) if self.context.planner.is_some() => {
                                self.recorded.insert(id);
                            }
                            _ => {}
                        }
                        pending.push(dependency);
                    }
                }
            }
        }

        // 3. Strongly connected components in dependency order, in waves
        //    of nodes independent of each other; cycles reported. The
        //    resources of a wave may be evaluated on several threads.
        let components = petgraph::algo::kosaraju_scc(&graph);
        for wave in waves(&graph, components) {
            let mut resources = Vec::new();
            for component in wave {
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
                match node {
                    Node::Resource(id) if !self.depends_on_failed(node) => resources.push(id),
                    _ => self.evaluate_node(node, inputs),
                }
            }
            self.evaluate_independent_resources(&resources);
        }
        self.check_unused_inputs(inputs);
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
                let value = self.eval_in_scope_marked(expr);
                let ok = value.is_ok();
                let (value, marks) = value.unwrap_or((Value::Unknown, Marks::clear()));
                self.values.locals.insert(name.to_string(), value.clone());
                if !marks.is_clear() {
                    self.result
                        .local_marks
                        .insert(name.to_string(), marks.clone());
                }
                NamedMarks::set(&mut self.values.marks.locals, name, marks);
                self.result.locals.insert(name.to_string(), value);
                ok
            }
            Node::Resource(id) => self.evaluate_resource(id),
            Node::Module(name) => self.evaluate_module_call(name),
            Node::Deployment(name) => {
                let block = &self.config.declarations.deployments[name].block;
                let value = self.eval_block_body(&block.body, None, None);
                let ok = value.is_ok();
                let (mut value, marks) = value.unwrap_or((Value::Unknown, Marks::clear()));
                if ok {
                    self.add_deployment_instance(name, block, &marks);
                }
                // Its address, for what finds its instances by it (a
                // `local_prometheus`'s `scrape`); not an argument.
                if let Value::Map(fields) = &mut value {
                    Arc::make_mut(fields).insert(
                        "address".into(),
                        Value::string(format!("{}deployment.{name}", self.module_prefix)),
                    );
                }
                if !marks.is_clear() {
                    self.result
                        .deployment_marks
                        .insert(name.to_string(), marks.clone());
                }
                NamedMarks::set(&mut self.values.marks.deployments, name, marks);
                self.values
                    .deployments
                    .insert(name.to_string(), value.clone());
                self.result.deployments.insert(name.to_string(), value);
                ok
            }
            Node::Output(name) => {
                let output = &self.config.declarations.outputs[name];
                let Some(expr) = &output.value else { return };
                let value = self.eval_in_scope_marked(expr).and_then(|(value, marks)| {
                    let value = self.evaluator(None, None).bounded(value, expr.span)?;
                    Ok((value, marks))
                });
                let ok = value.is_ok();
                let (value, marks) = value.unwrap_or((Value::Unknown, Marks::clear()));
                // What the caller reads keeps the secret parts marked; a
                // root output holding any secret is shown as a secret.
                let marks = if output.sensitive {
                    Marks::whole()
                } else {
                    marks
                };
                self.result.outputs.insert(
                    name.to_string(),
                    OutputValue {
                        value,
                        sensitive: !marks.is_clear(),
                    },
                );
                if !marks.is_clear() {
                    self.result.output_marks.insert(name.to_string(), marks);
                }
                ok
            }
            Node::Provider(index) => {
                let provider = &self.config.declarations.providers[index];
                let value = self.eval_block_body(&provider.block.body, None, None);
                let ok = value.is_ok();
                self.result.providers.push((
                    provider.name.value.clone(),
                    value.map_or(Value::Unknown, |(value, _)| value),
                ));
                ok
            }
            Node::Backend => {
                let Some(backend) = &self.config.declarations.backend else {
                    return;
                };
                let value = self
                    .eval_block_body(&backend.block.body, None, None)
                    .map(|(value, _)| value);
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

    /// An evaluator in this module's scope (with `count.index` and
    /// `each` when evaluating an instance).
    fn evaluator(&mut self, count_index: Option<usize>, each: Option<Each>) -> Evaluator<'_, '_> {
        let scope = Scope {
            values: &self.values,
            module_dir: &self.config.dir,
            count_index,
            each,
        };
        Evaluator::new(scope, self.diagnostics, self.budget)
    }

    /// Evaluates `expr` in the module's scope; an error in an expression
    /// computed from a secret hides its details (a function's message may
    /// quote the value).
    fn eval_in_scope(&mut self, expr: &'c Expr) -> EvalResult {
        self.eval_in_scope_marked(expr).map(|(value, _)| value)
    }

    /// [`Self::eval_in_scope`], with the marks of the value's secrets.
    fn eval_in_scope_marked(&mut self, expr: &'c Expr) -> MarkedResult {
        let mark = self.diagnostics.len();
        let value = self.evaluator(None, None).eval_marked(expr);
        if self.diagnostics.len() > mark && self.is_sensitive(expr) {
            self.diagnostics.redact_from(mark);
        }
        value
    }

    /// Evaluates a block body into an object: attributes by name; unlabelled
    /// nested blocks as a list of objects under their kind; labelled ones as
    /// an object keyed by label.
    fn eval_block_body(
        &mut self,
        body: &Body,
        count_index: Option<usize>,
        each: Option<Each>,
    ) -> MarkedResult {
        eval_body(&mut self.evaluator(count_index, each), body, &[])
    }

    fn compute_module_prefix(path: &[String]) -> String {
        path.iter().map(|p| format!("module.{p}.")).collect()
    }

    fn address_of(&self, id: &ResourceId, key: &InstanceKey) -> String {
        instance_address(&self.module_prefix, id, key)
    }
}

/// The address of an instance of `id` in the module whose addresses start
/// with `module_prefix`.
fn instance_address(module_prefix: &str, id: &ResourceId, key: &InstanceKey) -> String {
    let mut address =
        String::with_capacity(module_prefix.len() + id.type_name.len() + id.name.len() + 8);
    address.push_str(module_prefix);
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
