//! `module` blocks: a child module evaluated with the inputs its call
//! passes, its outputs made available to the caller.

use super::*;

impl<'c> ModuleEvaluation<'c, '_> {
    pub(super) fn evaluate_module_call(&mut self, name: &str) -> bool {
        let call = &self.config.declarations.module_calls[name];
        let Some(child) = self.config.children.get(name) else {
            self.values.modules.insert(name.to_string(), Value::Unknown);
            return false;
        };
        let mut values = BTreeMap::new();
        let mut input_marks = BTreeMap::new();
        let mut ok = true;
        for input in &call.inputs {
            match self.eval_in_scope_marked(&input.value) {
                Ok((value, marks)) => {
                    if !marks.is_clear() {
                        input_marks.insert(input.name.name.clone(), marks);
                    }
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
            &Inputs::Child(values, call.span, inherited, input_marks),
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
        let mut marks = Marks::gather();
        for (output, output_marks) in &evaluated.output_marks {
            marks.add(Segment::Key(output.clone()), output_marks);
        }
        NamedMarks::set(&mut self.values.marks.modules, name, marks.finish());
        self.result.children.insert(name.to_string(), evaluated);
        true
    }
}
