//! Resources and deployments: `count` and `for_each` expanded into
//! instances, each instance's arguments evaluated (or planned, through the
//! `InstancePlanner`), with its address and dependencies.

use super::*;

impl<'c> ModuleEvaluation<'c, '_> {
    /// A `deployment` block as a resource instance of type `deployment`
    /// (`deployment.NAME`), with what it depends on and the paths of its
    /// secrets (`template.env.DB_PASSWORD`); `deploy::lower` reads it and
    /// makes it its provider's.
    pub(super) fn add_deployment_instance(
        &mut self,
        name: &'c str,
        block: &'c Block,
        marks: &Marks,
    ) {
        let names = block.body.items.iter().map(|item| match item {
            Item::Attribute(attribute) => attribute.name.name.as_str(),
            Item::Block(nested) => nested.kind.name.as_str(),
        });
        let sensitive = sensitive_paths(marks, names);
        let id = ResourceId {
            mode: ResourceMode::Managed,
            type_name: "deployment".into(),
            name: name.into(),
        };
        self.result.resources.push(ResourceInstance {
            address: format!("{}deployment.{name}", self.module_prefix),
            id,
            key: InstanceKey::None,
            arguments: Arc::default(),
            dependencies: self.transitive_dependencies(Node::Deployment(name)).into(),
            sensitive: sensitive.into(),
            lifecycle: Default::default(),
            span: block.header_span,
        });
    }

    /// The instances of a resource: one, or one per `count` index or
    /// `for_each` key; `None` (its value set unknown) when that cannot be
    /// known.
    fn instances_of(&mut self, id: &'c ResourceId) -> Option<Vec<PlannedInstance>> {
        let resource = &self.config.declarations.resources[id];
        let instances = self.expand(resource.count.as_ref(), resource.for_each.as_ref());
        if instances.is_none() {
            self.values.set_resource(id, Value::Unknown);
        }
        instances
    }

    /// The instances a `count` or `for_each` (of a resource or a module
    /// call) asks for: one per index or key, or the one without either;
    /// `None` when that cannot be known (reported).
    pub(super) fn expand(
        &mut self,
        count: Option<&'c Expr>,
        for_each: Option<&'c Expr>,
    ) -> Option<Vec<PlannedInstance>> {
        if let Some(count_expr) = count {
            let count = self.eval_in_scope(count_expr).ok();
            count
                .and_then(|count| self.known_count(&count, count_expr))
                .map(|n| {
                    (0..n)
                        .map(|i| (InstanceKey::Index(i), Some(i), None))
                        .collect()
                })
        } else if let Some(for_each_expr) = for_each {
            let collection = self.eval_in_scope_marked(for_each_expr).ok();
            collection.and_then(|(collection, marks)| {
                let pairs = self.for_each_pairs(&collection, for_each_expr)?;
                let key_marks = marks.of_keys();
                Some(
                    pairs
                        .into_iter()
                        .map(|(key, value)| {
                            let each = Each {
                                key: Value::string(&key),
                                value,
                                key_marks: key_marks.clone(),
                                value_marks: marks.key(&key),
                            };
                            (InstanceKey::Key(key), None, Some(each))
                        })
                        .collect(),
                )
            })
        } else {
            Some(vec![(InstanceKey::None, None, None)])
        }
    }

    /// The value of a resource made of its instances' objects (see
    /// [`instances_value`]).
    fn resource_value(resource: &ResourceDecl, objects: Vec<(InstanceKey, Value)>) -> Value {
        instances_value(
            resource.count.is_some(),
            resource.for_each.is_some(),
            objects,
        )
    }

    /// The marks of a resource's value from those of its instances (see
    /// [`instances_marks`]).
    fn resource_marks(resource: &ResourceDecl, marks: Vec<(InstanceKey, Marks)>) -> Marks {
        instances_marks(
            resource.count.is_some() || resource.for_each.is_some(),
            marks,
        )
    }

    /// A resource a focused evaluation depends on, read from the records
    /// of its instances (see [`evaluate_focused`]): an instance without a
    /// record is unknown.
    fn read_recorded_resource(&mut self, id: &'c ResourceId) -> bool {
        let Some(instances) = self.instances_of(id) else {
            return false;
        };
        let planner = self.context.planner;
        let resource = &self.config.declarations.resources[id];
        let schema = self.resource_schema(resource);
        let mut marks = Vec::new();
        let objects = instances
            .into_iter()
            .map(|(key, _, _)| {
                let address = self.address_of(id, &key);
                let (object, recorded_marks) =
                    match planner.and_then(|p| p.recorded_object(&address)) {
                        Some(recorded) => (
                            Value::map(recorded.attributes),
                            marks_of_paths(recorded.sensitive.iter().map(String::as_str)),
                        ),
                        None => (Value::Unknown, Marks::clear()),
                    };
                marks.push((key.clone(), Self::schema_marks(schema, recorded_marks)));
                (key, object)
            })
            .collect();
        let marks = Self::resource_marks(resource, marks);
        self.values.marks.set_resource(id, marks);
        let value = Self::resource_value(resource, objects);
        self.values.set_resource(id, value);
        true
    }

    /// Evaluates one resource: [`Self::prepare_resource`], its instances,
    /// [`Self::record_instances`]. `false` when something failed (reported).
    pub(super) fn evaluate_resource(&mut self, id: &'c ResourceId) -> bool {
        match self.prepare_resource(id) {
            Ok(mut prepared) => {
                let (scope, diagnostics, budget) = self.instance_scope();
                let evaluated = scope.evaluate_instances(&mut prepared, diagnostics, budget);
                self.record_instances(&prepared, evaluated)
            }
            Err(ok) => ok,
        }
    }

    /// Evaluates resources none of which depends on another: each is
    /// prepared here, in order; their instances are evaluated on several
    /// threads when there are enough of them to pay for the threads; then
    /// each is recorded, in order, so that the result is the same whatever
    /// the threads did first.
    pub(super) fn evaluate_independent_resources(&mut self, ids: &[&'c ResourceId]) {
        let mut prepared = Vec::with_capacity(ids.len());
        for &id in ids {
            match self.prepare_resource(id) {
                Ok(resource) => prepared.push(resource),
                Err(true) => {}
                Err(false) => {
                    self.failed.insert(Node::Resource(id));
                }
            }
        }
        let instances: usize = prepared.iter().map(|p| p.instances.len()).sum();
        let threads = if instances >= PARALLEL_INSTANCES {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            1
        };
        let (scope, diagnostics, budget) = self.instance_scope();
        let evaluated = if threads > 1 {
            scope.evaluate_in_parallel(&mut prepared, threads, diagnostics, budget)
        } else {
            prepared
                .iter_mut()
                .map(|resource| scope.evaluate_instances(resource, diagnostics, budget))
                .collect()
        };
        for (resource, evaluated) in prepared.iter().zip(evaluated) {
            if !self.record_instances(resource, evaluated) {
                self.failed.insert(Node::Resource(resource.id));
            }
        }
    }

    /// What a resource's instances need worked out once: which instances
    /// (`count`/`for_each`), its schema, dependencies and secrets. `Err`
    /// holds the outcome when there is nothing more to evaluate: a resource
    /// read from its records, or instances that cannot be known (`false`,
    /// reported).
    fn prepare_resource(&mut self, id: &'c ResourceId) -> Result<PreparedResource<'c>, bool> {
        if self.recorded.contains(id) {
            return Err(self.read_recorded_resource(id));
        }
        let Some(mut instances) = self.instances_of(id) else {
            return Err(false);
        };
        // A focus on instances (`aws_subnet.a[0]`) evaluates only those.
        if let Some(focus) = self.focus
            && !focus.contains(&self.address_of(id, &InstanceKey::None))
        {
            instances.retain(|(key, _, _)| focus.contains(&self.address_of(id, key)));
        }
        let resource = &self.config.declarations.resources[id];
        let schema = self.resource_schema(resource);
        // Each resource is evaluated once, so its list can be taken.
        let referenced = self.referenced_attributes.remove(id).unwrap_or_default();
        if let Some(schema) = schema {
            self.check_references_against_schema(id, &referenced, schema);
        }
        let (dependencies, keyed) = self.resource_dependencies(id);
        // An error in an argument computed from a secret hides its details
        // (a function's message may quote the value).
        let secret_arguments = resource
            .arguments
            .iter()
            .map(|argument| self.is_sensitive(&argument.value))
            .collect();
        // What the schema alone marks, worked out once: most instances
        // have no other secret and share it.
        let schema_only = Self::schema_marks(schema, Marks::clear());
        let schema_paths = sensitive_paths(&schema_only, std::iter::empty()).into();
        Ok(PreparedResource {
            id,
            resource,
            instances,
            schema,
            referenced,
            dependencies: dependencies.into(),
            keyed,
            secret_arguments,
            schema_only,
            schema_paths,
        })
    }

    /// The module's values for [`InstanceScope`] to read, with the
    /// diagnostics and evaluation budget it reports to and spends.
    fn instance_scope(&mut self) -> (InstanceScope<'_, 'c>, &mut Diagnostics, &mut u64) {
        let scope = InstanceScope {
            values: &self.values,
            config: self.config,
            module_prefix: &self.module_prefix,
            planner: self.context.planner,
        };
        (scope, &mut *self.diagnostics, &mut *self.budget)
    }

    /// Records a resource's evaluated instances: its value (a list, map or
    /// object of its instances' objects) for references to read, and its
    /// instances for planning.
    fn record_instances(
        &mut self,
        prepared: &PreparedResource<'c>,
        evaluated: EvaluatedInstances,
    ) -> bool {
        self.result.resources.extend(evaluated.instances);
        let value = Self::resource_value(prepared.resource, evaluated.objects);
        self.values.set_resource(prepared.id, value);
        let marks = Self::resource_marks(prepared.resource, evaluated.marks);
        self.values.marks.set_resource(prepared.id, marks);
        evaluated.ok
    }

    pub(super) fn must_be_known(&mut self, what: &str, expr: &Expr) {
        self.diagnostics.push(
            Diagnostic::error(Code::UnknownValue, format!("`{what}` must be known before apply"))
                .with_label(expr.span, "depends on values known only after apply")
                .with_help(format!("`{what}` decides how many instances to plan, so it may only use variables, locals and data sources")),
        );
    }

    pub(super) fn known_count(&mut self, count: &Value, expr: &Expr) -> Option<usize> {
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

    pub(super) fn for_each_pairs(
        &mut self,
        collection: &Value,
        expr: &Expr,
    ) -> Option<Vec<(String, Value)>> {
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

/// The sensitive paths that `marks` (of an object whose attributes are
/// `names`) name: each marked part's path; every attribute when the whole
/// object is marked.
fn sensitive_paths<'n>(marks: &Marks, names: impl Iterator<Item = &'n str>) -> Vec<String> {
    if marks.is_whole() {
        let mut all: Vec<String> = names.map(str::to_string).collect();
        all.sort();
        all.dedup();
        return all;
    }
    marks
        .paths()
        .iter()
        .map(|path| SensitivePath(path.clone()).to_string())
        .collect()
}

/// The instance each of `keyed`'s resources is referred to by, as this
/// instance's evaluator computes its key (`count.index % 3` → `[1]`); a
/// resource whose key is not one of its instances' (or fails) is left out,
/// so it stays a dependency as a whole. Errors are not reported here: the
/// argument the key is written in reports them.
fn instance_keys<'c>(
    evaluator: &mut Evaluator<'_, '_>,
    keyed: &[(&'c ResourceId, Vec<&'c Expr>)],
    resources: &BTreeMap<ResourceId, ResourceDecl>,
) -> Vec<(&'c ResourceId, Vec<InstanceKey>)> {
    let mut found = Vec::new();
    for (other, exprs) in keyed {
        let Some(declared) = resources.get(*other) else {
            continue;
        };
        let mark = evaluator.diagnostics.len();
        let keys: Option<Vec<InstanceKey>> = exprs
            .iter()
            .map(|expr| {
                let value = evaluator.eval(expr).ok()?;
                match (
                    &value,
                    declared.count.is_some(),
                    declared.for_each.is_some(),
                ) {
                    (Value::Number(n), true, _) if *n >= 0.0 && n.fract() == 0.0 => {
                        Some(InstanceKey::Index(*n as usize))
                    }
                    (Value::String(text), true, _) => text.parse().ok().map(InstanceKey::Index),
                    (Value::String(text), _, true) => Some(InstanceKey::Key(text.to_string())),
                    _ => None,
                }
            })
            .collect();
        evaluator.diagnostics.truncate(mark);
        if let Some(keys) = keys {
            found.push((*other, keys));
        }
    }
    found
}

impl<'c> InstanceScope<'_, 'c> {
    /// `dependencies` with each resource of `keys` replaced by the
    /// instances named (shared when there is nothing to narrow).
    fn narrowed(
        &self,
        dependencies: &Arc<[String]>,
        keys: &[(&'c ResourceId, Vec<InstanceKey>)],
    ) -> Arc<[String]> {
        if keys.is_empty() {
            return dependencies.clone();
        }
        let mut narrowed: Vec<String> = dependencies.to_vec();
        for (other, instances) in keys {
            let whole = self.address_of(other, &InstanceKey::None);
            narrowed.retain(|address| *address != whole);
            narrowed.extend(instances.iter().map(|key| self.address_of(other, key)));
        }
        narrowed.sort();
        narrowed.dedup();
        narrowed.into()
    }
}

/// Below this many instances in a wave of independent resources, threads
/// cost more than they save.
const PARALLEL_INSTANCES: usize = 512;

/// What [`ModuleEvaluation::prepare_resource`] works out once per
/// resource, before its instances are evaluated.
pub(super) struct PreparedResource<'c> {
    id: &'c ResourceId,
    resource: &'c ResourceDecl,
    /// Taken when the instances are evaluated.
    instances: Vec<PlannedInstance>,
    schema: Option<&'c BlockSchema>,
    /// The attributes other objects read from it.
    referenced: Vec<&'c Ident>,
    dependencies: Arc<[String]>,
    /// The resources it depends on one instance of, with the key
    /// expressions (see [`ModuleEvaluation::resource_dependencies`]).
    keyed: Vec<(&'c ResourceId, Vec<&'c Expr>)>,
    /// Per argument: computed from a secret.
    secret_arguments: Vec<bool>,
    schema_only: Marks,
    schema_paths: Arc<[String]>,
}

/// A resource's instances, evaluated, for
/// [`ModuleEvaluation::record_instances`].
pub(super) struct EvaluatedInstances {
    ok: bool,
    objects: Vec<(InstanceKey, Value)>,
    marks: Vec<(InstanceKey, Marks)>,
    instances: Vec<ResourceInstance>,
}

/// What evaluating an instance reads — the module's values, which nothing
/// writes meanwhile — so that the instances of independent resources can
/// be evaluated on several threads, each with its own diagnostics.
#[derive(Clone, Copy)]
pub(super) struct InstanceScope<'s, 'c> {
    values: &'s ModuleValues,
    config: &'c ModuleConfig,
    module_prefix: &'s str,
    planner: Option<&'c dyn InstancePlanner>,
}

impl<'c> InstanceScope<'_, 'c> {
    fn address_of(&self, id: &ResourceId, key: &InstanceKey) -> String {
        instance_address(self.module_prefix, id, key)
    }

    /// Evaluates `prepared` over threads: the resources in `threads` runs of
    /// about as many instances each, in order, every run with its own
    /// diagnostics and a budget as large as what is left (so a run cannot
    /// spend more than the whole evaluation could), merged in order.
    fn evaluate_in_parallel(
        self,
        prepared: &mut [PreparedResource<'c>],
        threads: usize,
        diagnostics: &mut Diagnostics,
        budget: &mut u64,
    ) -> Vec<EvaluatedInstances> {
        let instances: usize = prepared.iter().map(|p| p.instances.len()).sum();
        let per_run = instances.div_ceil(threads).max(1);
        let mut runs = Vec::with_capacity(threads);
        let mut rest = prepared;
        while !rest.is_empty() {
            let mut taken = 0;
            let mut end = 0;
            while end < rest.len() && taken < per_run {
                taken += rest[end].instances.len();
                end += 1;
            }
            let (run, tail) = rest.split_at_mut(end);
            runs.push(run);
            rest = tail;
        }
        let left = *budget;
        let finished: Vec<(Vec<EvaluatedInstances>, Diagnostics, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = runs
                .into_iter()
                .map(|run| {
                    s.spawn(move || {
                        let mut diagnostics = Diagnostics::default();
                        let mut budget = left;
                        let evaluated = run
                            .iter_mut()
                            .map(|p| self.evaluate_instances(p, &mut diagnostics, &mut budget))
                            .collect();
                        (evaluated, diagnostics, left - budget)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut all = Vec::new();
        for (evaluated, found, spent) in finished {
            diagnostics.extend(found);
            *budget = budget.saturating_sub(spent);
            all.extend(evaluated);
        }
        all
    }

    /// Evaluates the instances of `prepared` (taking them): each one's
    /// arguments and nested blocks converted to the schema's types, its
    /// address, dependencies and secrets, and the object references see.
    fn evaluate_instances(
        self,
        prepared: &mut PreparedResource<'c>,
        diagnostics: &mut Diagnostics,
        budget: &mut u64,
    ) -> EvaluatedInstances {
        let PreparedResource {
            id,
            resource,
            schema,
            ref referenced,
            ref dependencies,
            ref keyed,
            ref secret_arguments,
            ref schema_only,
            ref schema_paths,
            ..
        } = *prepared;
        let instances = std::mem::take(&mut prepared.instances);
        let declared: &'c BTreeMap<ResourceId, ResourceDecl> = &self.config.declarations.resources;
        let mut evaluated = EvaluatedInstances {
            ok: true,
            objects: Vec::with_capacity(instances.len()),
            marks: Vec::with_capacity(instances.len()),
            instances: Vec::with_capacity(instances.len()),
        };
        for (key, count_index, each) in instances {
            let scope = Scope {
                values: self.values,
                module_dir: &self.config.dir,
                count_index,
                each,
            };
            let mut evaluator = Evaluator::new(scope, &mut *diagnostics, &mut *budget);
            let mut arguments = BTreeMap::new();
            let mut marks = Marks::gather();
            for (argument, secret) in resource.arguments.iter().zip(secret_arguments) {
                let mark = evaluator.diagnostics.len();
                let value = evaluator
                    .eval_marked(&argument.value)
                    .and_then(|(value, marks)| {
                        Ok((evaluator.bounded(value, argument.value.span)?, marks))
                    });
                let secret = *secret || value.as_ref().is_ok_and(|(_, m)| !m.is_clear());
                if secret {
                    evaluator.diagnostics.redact_from(mark);
                }
                match value {
                    Ok((value, value_marks)) => {
                        marks.add(Segment::Key(argument.name.name.clone()), &value_marks);
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
                                    evaluated.ok = false;
                                    continue;
                                }
                            },
                            None => value,
                        };
                        arguments.insert(argument.name.name.clone(), value);
                    }
                    Err(_) => evaluated.ok = false,
                }
            }
            match eval_nested_blocks(
                &mut evaluator,
                &resource.nested_blocks,
                &mut arguments,
                &mut marks,
            ) {
                Ok(()) => {}
                Err(_) => evaluated.ok = false,
            }
            let keys = instance_keys(&mut evaluator, keyed, declared);
            let marks = marks.finish();
            let (marks, sensitive): (Marks, Arc<[String]>) = if marks.is_clear() {
                (schema_only.clone(), schema_paths.clone())
            } else {
                let marks = ModuleEvaluation::schema_marks(schema, marks);
                let paths = sensitive_paths(&marks, arguments.keys().map(String::as_str));
                (marks, paths.into())
            };
            evaluated.marks.push((key.clone(), marks));
            let arguments = Arc::new(arguments);
            let instance = ResourceInstance {
                id: id.clone(),
                address: self.address_of(id, &key),
                key: key.clone(),
                arguments,
                dependencies: self.narrowed(dependencies, &keys),
                sensitive,
                lifecycle: resource.lifecycle.clone(),
                span: resource.header_span,
            };
            // What references see: what the planner decides; without one,
            // the arguments, plus every attribute the schema has (unknown if
            // the provider computes it, else null); without a schema,
            // unknown for every attribute read but not set.
            let object = match self
                .planner
                .and_then(|planner| planner.planned_object(&instance, schema))
            {
                Some(planned) => Value::Map(planned),
                None => {
                    let arguments = &*instance.arguments;
                    match schema {
                        Some(schema) => {
                            let mut object = arguments.clone();
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
                            Value::Map(instance.arguments.clone())
                        }
                        None => {
                            let mut object = arguments.clone();
                            for attribute in referenced {
                                object
                                    .entry(attribute.name.clone())
                                    .or_insert(Value::Unknown);
                            }
                            Value::map(object)
                        }
                    }
                }
            };
            evaluated.objects.push((key, object));
            evaluated.instances.push(instance);
        }
        evaluated
    }
}

/// The value of a resource or module call made of its instances' values: a
/// list (`count`), a map by key (`for_each`), or the one value.
pub(super) fn instances_value(
    counted: bool,
    keyed: bool,
    mut objects: Vec<(InstanceKey, Value)>,
) -> Value {
    if counted {
        Value::list(objects.into_iter().map(|(_, v)| v).collect())
    } else if keyed {
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
    }
}

/// The marks of [`instances_value`]'s value from those of its instances,
/// placed as it places their values (`repeated`: `count` or `for_each`).
pub(super) fn instances_marks(repeated: bool, mut marks: Vec<(InstanceKey, Marks)>) -> Marks {
    if !repeated {
        return marks.pop().map(|(_, m)| m).unwrap_or_default();
    }
    let mut gathered = Marks::gather();
    for (position, (key, instance_marks)) in marks.iter().enumerate() {
        let step = match key {
            InstanceKey::Key(k) => Segment::Key(k.clone()),
            _ => Segment::Index(position),
        };
        gathered.add(step, instance_marks);
    }
    gathered.finish()
}
