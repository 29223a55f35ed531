//! Resolution: every reference of a module's declarations mapped to the
//! object it names (or reported once, with a "did you mean"), the
//! dependency graph they make, cycles reported as the shortest chain, and
//! the resource dependencies recorded in the state.

use super::*;

/// A named object of a module: a node of its dependency graph. It borrows
/// its name from the module's declarations, so nodes are copied freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Node<'c> {
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
pub(super) fn body_expressions<'b>(body: &'b Body, out: &mut Vec<&'b Expr>) {
    body_expressions_in(body, false, out);
}

/// `iterator = NAME` of a `dynamic` block names a binding: not an
/// expression.
fn body_expressions_in<'b>(body: &'b Body, dynamic: bool, out: &mut Vec<&'b Expr>) {
    for item in &body.items {
        match item {
            Item::Attribute(attribute) if attribute.name.name == "provider" => {}
            Item::Attribute(attribute) if dynamic && attribute.name.name == "iterator" => {}
            Item::Attribute(attribute) => out.push(&attribute.value),
            Item::Block(block) => block_expressions(block, out),
        }
    }
}

/// The expressions of a nested block's body.
fn block_expressions<'b>(block: &'b Block, out: &mut Vec<&'b Expr>) {
    body_expressions_in(&block.body, block.kind.name == "dynamic", out);
}

pub(super) fn resource_expressions(resource: &ResourceDecl) -> Vec<&Expr> {
    let mut out: Vec<&Expr> = Vec::new();
    out.extend(resource.count.iter());
    out.extend(resource.for_each.iter());
    out.extend(resource.arguments.iter().map(|a| &a.value));
    for block in &resource.nested_blocks {
        block_expressions(block, &mut out);
    }
    out.extend(resource.depends_on.iter());
    out
}

/// The shortest cycle from `start` back to itself inside one component,
/// as (node, span of the reference to the next node) hops.
pub(super) fn shortest_cycle_through(
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

impl<'c> ModuleEvaluation<'c, '_> {
    /// Every node of the module, in declaration order.
    pub(super) fn all_nodes(&self) -> Vec<Node<'c>> {
        let declarations = &self.config.declarations;
        let mut nodes: Vec<Node<'c>> = Vec::new();
        nodes.extend(
            declarations
                .variables
                .keys()
                .map(|name| Node::Variable(name)),
        );
        nodes.extend(declarations.locals.keys().map(|name| Node::Local(name)));
        nodes.extend(declarations.resources.keys().map(Node::Resource));
        nodes.extend(
            declarations
                .module_calls
                .keys()
                .map(|name| Node::Module(name)),
        );
        nodes.extend(
            declarations
                .deployments
                .keys()
                .map(|name| Node::Deployment(name)),
        );
        nodes.extend(declarations.outputs.keys().map(|name| Node::Output(name)));
        nodes.extend((0..declarations.providers.len()).map(Node::Provider));
        if declarations.backend.is_some() {
            nodes.push(Node::Backend);
        }
        nodes
    }

    /// The expressions of a node: what it may refer to.
    pub(super) fn expressions_of(&self, node: Node<'c>) -> Vec<&'c Expr> {
        let declarations = &self.config.declarations;
        let mut exprs: Vec<&'c Expr> = Vec::new();
        match node {
            Node::Variable(name) => exprs.extend(declarations.variables[name].default.iter()),
            Node::Local(name) => exprs.push(&declarations.locals[name].value),
            Node::Resource(id) => exprs = resource_expressions(&declarations.resources[id]),
            Node::Module(name) => {
                let call = &declarations.module_calls[name];
                exprs.extend(call.count.iter().chain(&call.for_each));
                exprs.extend(call.inputs.iter().map(|a| &a.value));
                exprs.extend(call.depends_on.iter());
            }
            Node::Deployment(name) => {
                body_expressions(&declarations.deployments[name].block.body, &mut exprs);
            }
            Node::Output(name) => {
                let output = &declarations.outputs[name];
                exprs.extend(output.value.iter());
                exprs.extend(output.depends_on.iter());
            }
            Node::Provider(index) => {
                body_expressions(&declarations.providers[index].block.body, &mut exprs);
            }
            Node::Backend => {
                if let Some(backend) = &declarations.backend {
                    body_expressions(&backend.block.body, &mut exprs);
                }
            }
        }
        exprs
    }

    /// The nodes a focused evaluation starts from: the focused resources,
    /// deployments and outputs (`output.name`) of this module, and the
    /// module calls that contain focused ones.
    pub(super) fn focused_nodes(&self, focus: &BTreeSet<String>) -> Vec<Node<'c>> {
        let declarations = &self.config.declarations;
        let prefix = self.module_prefix.as_str();
        let mut nodes: Vec<Node<'c>> = Vec::new();
        for address in focus
            .range(prefix.to_string()..)
            .take_while(|address| address.starts_with(prefix))
        {
            let rest = &address[prefix.len()..];
            if let Some((step, _)) = crate::graph::split_module_step(rest) {
                let name = step.split('[').next().unwrap_or(step);
                if let Some((name, _)) = declarations.module_calls.get_key_value(name) {
                    nodes.push(Node::Module(name));
                }
            } else if let Some(name) = rest.strip_prefix("deployment.") {
                if let Some((name, _)) = declarations.deployments.get_key_value(name) {
                    nodes.push(Node::Deployment(name));
                }
            } else if let Some(name) = rest.strip_prefix("output.")
                && let Some((name, _)) = declarations.outputs.get_key_value(name)
            {
                nodes.push(Node::Output(name));
            } else {
                let rest = crate::graph::without_key(rest);
                let (mode, rest) = match rest.strip_prefix("data.") {
                    Some(rest) => (ResourceMode::Data, rest),
                    None => (ResourceMode::Managed, rest),
                };
                if let Some((type_name, name)) = rest.split_once('.')
                    && let Some(id) = self.find_resource(mode, type_name, name)
                {
                    nodes.push(Node::Resource(id));
                }
            }
        }
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// The declared resource `type_name.name` of `mode`.
    pub(super) fn find_resource(
        &self,
        mode: ResourceMode,
        type_name: &str,
        name: &str,
    ) -> Option<&'c ResourceId> {
        if let Some(index) = &self.resource_index {
            return index.get(&(mode, type_name, name)).copied();
        }
        let config: &'c ModuleConfig = self.config;
        let key = ResourceId {
            mode,
            type_name: type_name.into(),
            name: name.into(),
        };
        config
            .declarations
            .resources
            .get_key_value(&key)
            .map(|(id, _)| id)
    }

    /// Step 2 for one node: its references become edges to what they name
    /// (unknown names are reported) and its recorded dependencies. With
    /// `add_missing`, a node it refers to that the graph lacks is added;
    /// returns those added.
    pub(super) fn analyse_node(
        &mut self,
        node: Node<'c>,
        exprs: &[&'c Expr],
        graph: &mut DiGraph<Node<'c>, Span>,
        index_of: &mut HashMap<Node<'c>, NodeIndex>,
        add_missing: bool,
    ) -> Vec<Node<'c>> {
        let mut added = Vec::new();
        let mut references = Vec::new();
        let mut problems = Vec::new();
        // `dynamic` blocks bind their iterators within their `content`.
        let mut scoped = Vec::new();
        if let Node::Resource(id) = node {
            let resource = &self.config.declarations.resources[id];
            dynamic::dynamic_scopes(resource.nested_blocks.iter(), &mut scoped);
        }
        for expr in exprs {
            collect_references_scoped(expr, &scoped, &mut references, &mut problems);
        }
        for problem in problems {
            self.diagnostics.push(problem);
        }
        let from = index_of[&node];
        let mut targets = BTreeSet::new();
        let expansion_span = self.expansion_expr(node).map(|expr| expr.span);
        for reference in references {
            let reported = self.diagnostics.len();
            let resolved = self.resolve(node, &reference);
            // `rule.value` where the iterator is renamed (`iterator = r`).
            if resolved.is_none()
                && self.diagnostics.len() > reported
                && let Target::Resource { name, .. } = reference.target
                && matches!(name, "key" | "value")
                && let Some((_, iterator)) = scoped
                    .iter()
                    .find(|(span, _)| span.contains(reference.span))
                && let Some(diagnostic) = self.diagnostics.last_mut()
            {
                diagnostic.help = Some(format!(
                    "inside this `dynamic` block the iterator is `{iterator}`: write `{iterator}.{name}`"
                ));
            }
            if let Some(target) = resolved {
                if let (Node::Resource(id), Node::Resource(other)) = (node, target) {
                    let key = reference.key.filter(|key| names_one_instance(key));
                    self.keyed_references
                        .entry(id)
                        .or_default()
                        .push((other, key));
                }
                let to = match index_of.get(&target) {
                    Some(&to) => Some(to),
                    None if add_missing => {
                        let to = graph.add_node(target);
                        index_of.insert(target, to);
                        added.push(target);
                        Some(to)
                    }
                    None => None,
                };
                if let Some(to) = to {
                    graph.add_edge(from, to, reference.span);
                }
                if expansion_span.is_some_and(|span| span.contains(reference.span)) {
                    self.expansion_targets.entry(node).or_default().push(target);
                }
                targets.insert(target);
            }
        }
        if !targets.is_empty() {
            self.dependencies.insert(node, targets);
        }
        added
    }

    /// Maps a reference to the node it names, or reports it.
    pub(super) fn resolve(
        &mut self,
        from: Node<'c>,
        reference: &Reference<'c>,
    ) -> Option<Node<'c>> {
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
                if let Some(id) = self.find_resource(mode, type_name, name) {
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
                if let Some(output) = reference.attribute.map(|a| a.name.as_str())
                    && (call.count.is_some() || call.for_each.is_some())
                {
                    // `module.net.vpc_id` where `net` has instances.
                    let (meta, example) = if call.count.is_some() {
                        ("count", format!("module.{name}[0].{output}"))
                    } else {
                        ("for_each", format!("module.{name}[\"key\"].{output}"))
                    };
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::InvalidReference,
                            format!("`module.{name}` has `{meta}`: name one of its instances"),
                        )
                        .with_label(span, "a list or map of instances, not one")
                        .with_help(format!(
                            "write `{example}`, or all of them with `[for m in module.{name} : m.{output}]`"
                        )),
                    );
                    return None;
                }
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
                let allowed = match from {
                    Node::Resource(id) => declarations.resources[id].count.is_some(),
                    Node::Module(name) => declarations.module_calls[name].count.is_some(),
                    _ => false,
                };
                if !allowed {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::InvalidReference,
                            "`count.index` used where there is no `count`",
                        )
                        .with_label(span, "no `count` here")
                        .with_help(
                            "`count.index` is available only in a resource or module block that sets `count`",
                        ),
                    );
                }
            }
            Target::EachKey | Target::EachValue => {
                let allowed = match from {
                    Node::Resource(id) => declarations.resources[id].for_each.is_some(),
                    Node::Module(name) => declarations.module_calls[name].for_each.is_some(),
                    _ => false,
                };
                if !allowed {
                    self.diagnostics.push(
                        Diagnostic::error(Code::InvalidReference, "`each` used where there is no `for_each`")
                            .with_label(span, "no `for_each` here")
                            .with_help("`each.key` and `each.value` are available only in a resource or module block that sets `for_each`"),
                    );
                }
            }
            Target::Path => {}
        }
        None
    }

    /// Reports the shortest cycle in a strongly connected component as a
    /// chain `a → b → a`, each hop with its file:line.
    pub(super) fn report_cycle(&mut self, graph: &DiGraph<Node, Span>, component: &[NodeIndex]) {
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

    /// What the instances of `id` depend on, from one walk of the graph:
    /// the addresses of [`Self::transitive_dependencies`], and the
    /// resources each instance depends on one instance of — every
    /// reference `id` makes to them names an instance by a key computed
    /// from `count.index`/`each` and constants (`peer[count.index % 3]`),
    /// and none reaches them through a local or a variable — with the key
    /// expressions, to evaluate per instance.
    pub(super) fn resource_dependencies(
        &self,
        id: &'c ResourceId,
    ) -> (Vec<String>, Vec<(&'c ResourceId, Vec<&'c Expr>)>) {
        let (reached, indirect) = self.reached(Node::Resource(id));
        let Some(references) = self.keyed_references.get(id) else {
            return (self.addresses_of(&reached), Vec::new());
        };
        let mut keys: BTreeMap<&'c ResourceId, Option<Vec<&'c Expr>>> = BTreeMap::new();
        for &(other, key) in references {
            let entry = keys.entry(other).or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), key) {
                (Some(keys), Some(key)) => keys.push(key),
                _ => *entry = None,
            }
        }
        let keyed = keys
            .into_iter()
            .filter(|(other, _)| !indirect.contains(other))
            .filter_map(|(other, keys)| Some((other, keys?)))
            .collect();
        (self.addresses_of(&reached), keyed)
    }

    /// The resources, modules and deployments `node` depends on, directly or
    /// through locals, variables and outputs, as addresses (`module.x` stands
    /// for every resource in it), plus what this module inherits.
    /// The `count` or `for_each` of a resource or module call.
    pub(super) fn expansion_expr(&self, node: Node<'c>) -> Option<&'c Expr> {
        let declarations = &self.config.declarations;
        match node {
            Node::Resource(id) => {
                let resource = &declarations.resources[id];
                resource.count.as_ref().or(resource.for_each.as_ref())
            }
            Node::Module(name) => {
                let call = &declarations.module_calls[name];
                call.count.as_ref().or(call.for_each.as_ref())
            }
            _ => None,
        }
    }

    /// Whether the `count`/`for_each` of `node` depends on no resource,
    /// module or deployment, directly or through locals (nor, in a child
    /// module, on what the calling module passes): then it evaluates the
    /// same all through one apply, and its instances can be kept (see
    /// [`Expansions`]).
    pub(super) fn expansion_is_stable(&self, node: Node<'c>) -> bool {
        self.inherited_dependencies.is_empty()
            && self
                .expansion_targets
                .get(&node)
                .into_iter()
                .flatten()
                .all(|target| match target {
                    Node::Resource(_) | Node::Module(_) | Node::Deployment(_) => false,
                    other => self.reached(*other).0.is_empty(),
                })
    }

    pub(super) fn transitive_dependencies(&self, node: Node<'c>) -> Vec<String> {
        self.addresses_of(&self.reached(node).0)
    }

    /// `reached` as sorted addresses, with what this module inherits.
    fn addresses_of(&self, reached: &[Node<'c>]) -> Vec<String> {
        let mut out: Vec<String> = self.inherited_dependencies.clone();
        for node in reached {
            match *node {
                Node::Resource(other) => out.push(self.address_of(other, &InstanceKey::None)),
                Node::Module(name) => out.push(format!("{}module.{name}", self.module_prefix)),
                Node::Deployment(name) => {
                    out.push(format!("{}deployment.{name}", self.module_prefix));
                }
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The resources, modules and deployments `node` depends on, directly
    /// or through the values computed from others (locals, variables,
    /// outputs, providers), each once; and the resources among them reached
    /// through one of those values, whose whole value is read.
    fn reached(&self, node: Node<'c>) -> (Vec<Node<'c>>, HashSet<&'c ResourceId>) {
        let mut reached = Vec::new();
        let mut indirect = HashSet::default();
        let mut seen: HashSet<Node<'c>> = HashSet::default();
        let next_of = |node: &Node<'c>, through: bool| {
            self.dependencies
                .get(node)
                .into_iter()
                .flatten()
                .map(move |next| (*next, through))
        };
        let mut pending: Vec<(Node<'c>, bool)> = next_of(&node, false).collect();
        while let Some((dependency, through)) = pending.pop() {
            if let (Node::Resource(id), true) = (dependency, through) {
                indirect.insert(id);
            }
            if !seen.insert(dependency) {
                continue;
            }
            match dependency {
                Node::Resource(_) | Node::Deployment(_) => {
                    reached.push(dependency);
                }
                // A module's outputs may pass its inputs through without a
                // resource in between: what the inputs depend on is
                // reached too (else an output that hands on a password
                // would be read before the password exists).
                Node::Module(_) => {
                    reached.push(dependency);
                    pending.extend(next_of(&dependency, true));
                }
                // Values computed from others: look through them.
                Node::Local(_)
                | Node::Variable(_)
                | Node::Output(_)
                | Node::Provider(_)
                | Node::Backend => pending.extend(next_of(&dependency, true)),
            }
        }
        (reached, indirect)
    }
}
