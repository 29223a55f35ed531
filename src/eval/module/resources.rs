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
        let instances = if let Some(count_expr) = &resource.count {
            let count = self.eval_in_scope(count_expr).ok();
            count
                .and_then(|count| self.known_count(&count, count_expr))
                .map(|n| {
                    (0..n)
                        .map(|i| (InstanceKey::Index(i), Some(i), None))
                        .collect()
                })
        } else if let Some(for_each_expr) = &resource.for_each {
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
        };
        if instances.is_none() {
            self.values.set_resource(id, Value::Unknown);
        }
        instances
    }

    /// The value of a resource made of its instances' objects: a list
    /// (`count`), a map (`for_each`) or the one object.
    fn resource_value(resource: &ResourceDecl, mut objects: Vec<(InstanceKey, Value)>) -> Value {
        if resource.count.is_some() {
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
        }
    }

    /// The marks of a resource's value from those of its instances, placed
    /// as [`Self::resource_value`] places their objects.
    fn resource_marks(resource: &ResourceDecl, mut marks: Vec<(InstanceKey, Marks)>) -> Marks {
        if resource.count.is_none() && resource.for_each.is_none() {
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

    pub(super) fn evaluate_resource(&mut self, id: &'c ResourceId) -> bool {
        if self.recorded.contains(id) {
            return self.read_recorded_resource(id);
        }
        let Some(mut instances) = self.instances_of(id) else {
            return false;
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
        let dependencies: Arc<[String]> = dependencies.into();
        let declared: &'c BTreeMap<ResourceId, ResourceDecl> = &self.config.declarations.resources;
        let mut ok = true;
        let mut objects: Vec<(InstanceKey, Value)> = Vec::new();
        let mut instance_marks: Vec<(InstanceKey, Marks)> = Vec::new();
        // An error in an argument computed from a secret hides its details
        // (a function's message may quote the value).
        let secret_arguments: Vec<bool> = resource
            .arguments
            .iter()
            .map(|argument| self.is_sensitive(&argument.value))
            .collect();
        // What the schema alone marks, worked out once: most instances
        // have no other secret and share it.
        let schema_only = Self::schema_marks(schema, Marks::clear());
        let schema_paths: Arc<[String]> = sensitive_paths(&schema_only, std::iter::empty()).into();
        for (key, count_index, each) in instances {
            let mut evaluator = self.evaluator(count_index, each);
            let mut arguments = BTreeMap::new();
            let mut marks = Marks::gather();
            for (argument, secret) in resource.arguments.iter().zip(&secret_arguments) {
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
            match eval_nested_blocks(
                &mut evaluator,
                &resource.nested_blocks,
                &mut arguments,
                &mut marks,
            ) {
                Ok(()) => {}
                Err(_) => ok = false,
            }
            let keys = instance_keys(&mut evaluator, &keyed, declared);
            let marks = marks.finish();
            let (marks, sensitive): (Marks, Arc<[String]>) = if marks.is_clear() {
                (schema_only.clone(), schema_paths.clone())
            } else {
                let marks = Self::schema_marks(schema, marks);
                let paths = sensitive_paths(&marks, arguments.keys().map(String::as_str));
                (marks, paths.into())
            };
            instance_marks.push((key.clone(), marks));
            let arguments = Arc::new(arguments);
            let instance = ResourceInstance {
                id: id.clone(),
                address: self.address_of(id, &key),
                key: key.clone(),
                arguments,
                dependencies: self.narrowed(&dependencies, &keys),
                sensitive,
                lifecycle: resource.lifecycle.clone(),
                span: resource.header_span,
            };
            // What references see: what the planner decides; without one,
            // the arguments, plus every attribute the schema has (unknown if
            // the provider computes it, else null); without a schema,
            // unknown for every attribute read but not set.
            let object = match self
                .context
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
                            for attribute in &referenced {
                                object
                                    .entry(attribute.name.clone())
                                    .or_insert(Value::Unknown);
                            }
                            Value::map(object)
                        }
                    }
                }
            };
            objects.push((key, object));
            self.result.resources.push(instance);
        }
        self.values
            .set_resource(id, Self::resource_value(resource, objects));
        let marks = Self::resource_marks(resource, instance_marks);
        self.values.marks.set_resource(id, marks);
        ok
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

impl<'c> ModuleEvaluation<'c, '_> {
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
