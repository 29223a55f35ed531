//! `module` blocks: a child module evaluated with the inputs its call
//! passes, its outputs made available to the caller. A call with `count`
//! or `for_each` evaluates the module once per index or key: its instances
//! are `module.net[0]` / `module.net["a"]`, and `module.net` is a list or
//! a map of their outputs.

use super::*;
use crate::config::{MAX_MODULE_INSTANCES, ModuleCallDecl};

impl<'c> ModuleEvaluation<'c, '_> {
    pub(super) fn evaluate_module_call(&mut self, name: &str) -> bool {
        let call = &self.config.declarations.module_calls[name];
        let Some(child) = self.config.children.get(name) else {
            self.values.modules.insert(name.to_string(), Value::Unknown);
            return false;
        };
        self.check_module_inputs(name, call, child);
        let Some(expansion) = self.module_expansion(name, call) else {
            self.values.modules.insert(name.to_string(), Value::Unknown);
            return false;
        };
        // What the module's inputs depend on, every resource inside depends on.
        let inherited = self.transitive_dependencies(Node::Module(name_key(
            &self.config.declarations.module_calls,
            name,
        )));
        let repeated = call.count.is_some() || call.for_each.is_some();
        let mut ok = true;
        let mut values = Vec::new();
        let mut marks = Vec::new();
        // A focused evaluation that needs no output of the module evaluates
        // only the instances that hold focused resources: one apply step
        // costs one instance, not all of them.
        let chosen: Vec<&PlannedInstance> = match self
            .focus
            .filter(|_| repeated && !self.whole_modules.contains(name))
        {
            Some(focus) => {
                let prefix = format!("{}module.{name}[", self.module_prefix);
                let mut suffixes = BTreeSet::new();
                for address in focus
                    .range(prefix.clone()..)
                    .take_while(|address| address.starts_with(&prefix))
                {
                    let inside = &address[self.module_prefix.len()..];
                    if let Some((step, _)) = crate::graph::split_module_step(inside) {
                        suffixes.insert(&step[name.len()..]);
                    }
                }
                suffixes
                    .into_iter()
                    .filter_map(|suffix| expansion.by_suffix(suffix))
                    .collect()
            }
            None => expansion.instances.iter().collect(),
        };
        for (key, count_index, each) in chosen {
            let (key, count_index, each) = (key.clone(), *count_index, each.clone());
            let segment = format!("{name}{}", key.suffix());
            let Some(evaluated) = self.evaluate_module_instance(
                call,
                child,
                segment.clone(),
                count_index,
                each,
                &inherited,
            ) else {
                ok = false;
                continue;
            };
            let outputs: BTreeMap<String, Value> = evaluated
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect();
            let mut output_marks = Marks::gather();
            for (output, marked) in &evaluated.output_marks {
                output_marks.add(Segment::Key(output.clone()), marked);
            }
            marks.push((key.clone(), output_marks.finish()));
            values.push((key, Value::map(outputs)));
            self.result.children.insert(segment, evaluated);
        }
        if !ok {
            self.values.modules.insert(name.to_string(), Value::Unknown);
            return false;
        }
        let value =
            resources::instances_value(call.count.is_some(), call.for_each.is_some(), values);
        self.values.modules.insert(name.to_string(), value);
        let marks = resources::instances_marks(repeated, marks);
        NamedMarks::set(&mut self.values.marks.modules, name, marks);
        true
    }

    /// The instances of a module call: evaluated, or — in a focused
    /// evaluation during apply, when its `count`/`for_each` depends on no
    /// resource — kept from the first evaluation (see [`Expansions`]).
    fn module_expansion(&mut self, name: &str, call: &'c ModuleCallDecl) -> Option<Arc<Expansion>> {
        let node = Node::Module(name_key(&self.config.declarations.module_calls, name));
        let kept = self
            .context
            .planner
            .and_then(|planner| planner.expansions())
            .filter(|_| self.focus.is_some() && self.expansion_is_stable(node));
        let address = format!("{}module.{name}", self.module_prefix);
        if let Some(hit) = kept.and_then(|kept| kept.get(&address)) {
            return Some(hit);
        }
        let instances = self.expand(call.count.as_ref(), call.for_each.as_ref())?;
        Some(match kept {
            Some(kept) => kept.keep(address, instances),
            None => Arc::new(Expansion::new(instances)),
        })
    }

    /// Reports the inputs a module call passes that its module does not
    /// declare.
    fn check_module_inputs(&mut self, name: &str, call: &'c ModuleCallDecl, child: &ModuleConfig) {
        for input in &call.inputs {
            if child.declarations.variables.contains_key(&input.name.name) {
                continue;
            }
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
        }
    }

    /// One instance of a module call (`segment`: `net`, `net[0]` or
    /// `net["a"]`), its inputs evaluated with its `count.index` or `each`;
    /// `None` when an input failed (reported) or names no variable.
    fn evaluate_module_instance(
        &mut self,
        call: &'c ModuleCallDecl,
        child: &'c ModuleConfig,
        segment: String,
        count_index: Option<usize>,
        each: Option<Each>,
        inherited: &[String],
    ) -> Option<EvaluatedModule> {
        let evaluated_so_far = self
            .context
            .module_instances
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if evaluated_so_far >= MAX_MODULE_INSTANCES {
            if evaluated_so_far == MAX_MODULE_INSTANCES {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::EvaluationTooLarge,
                        format!("the configuration evaluates more than {MAX_MODULE_INSTANCES} module instances"),
                    )
                    .with_label(call.span, "the module over the limit")
                    .with_help("`count` and `for_each` on modules that call other modules multiply at each level; flatten the tree"),
                );
            }
            return None;
        }
        let mut values = BTreeMap::new();
        let mut input_marks = BTreeMap::new();
        let mut ok = true;
        for input in &call.inputs {
            let mark = self.diagnostics.len();
            let evaluated = self
                .evaluator(count_index, each.clone())
                .eval_marked(&input.value);
            if self.diagnostics.len() > mark && self.is_sensitive(&input.value) {
                self.diagnostics.redact_from(mark);
            }
            match evaluated {
                Ok((value, marks)) => {
                    if !marks.is_clear() {
                        input_marks.insert(input.name.name.clone(), marks);
                    }
                    values.insert(input.name.name.clone(), (value, input.value.span));
                }
                Err(_) => ok = false,
            }
            ok &= child.declarations.variables.contains_key(&input.name.name);
        }
        if !ok {
            return None;
        }
        let name = call.name.name.as_str();
        let focus = self.focus.filter(|_| !self.whole_modules.contains(name));
        let mut path = self.result.path.clone();
        path.push(segment);
        Some(evaluate_module(
            child,
            path,
            &Inputs::Child(values, call.span, inherited.to_vec(), input_marks),
            self.context,
            focus,
            self.diagnostics,
            self.budget,
        ))
    }
}
