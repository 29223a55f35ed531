//! Variables: values from outside (`-var`, files, the environment, a
//! saved plan) or from a `module` block, converted to their declared type,
//! defaults, and the inputs nobody declared.

use super::*;

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

impl<'c> ModuleEvaluation<'c, '_> {
    pub(super) fn evaluate_variable(&mut self, name: &str, inputs: &Inputs) -> bool {
        let variable = &self.config.declarations.variables[name];
        let type_constraint = match &variable.type_expr {
            None => TypeConstraint::Any,
            Some(expr) => match TypeConstraint::from_expr(expr) {
                Ok(constraint) => constraint,
                Err(BadType { expr: bad, why }) => {
                    let written = match &bad.kind {
                        ExprKind::Variable(ident) => ident.name.clone(),
                        ExprKind::Call { name, .. } => name.name.clone(),
                        _ => String::new(),
                    };
                    let help = match &why {
                        Some(_) => "`optional(TYPE, DEFAULT)`: the default is a constant of TYPE, e.g. `optional(number, 80)`".to_string(),
                        None => did_you_mean(&written, TYPE_NAMES.iter().copied()).unwrap_or_else(|| {
                            "types are string, number, bool, any, list(T), set(T), map(T), tuple([T, …]) and object({ name = T, other = optional(T, default) })".into()
                        }),
                    };
                    self.diagnostics.push(
                        Diagnostic::error(Code::InvalidType, "invalid type constraint")
                            .with_label(bad.span, why.unwrap_or_else(|| "not a type".into()))
                            .with_help(help),
                    );
                    TypeConstraint::Any
                }
            },
        };
        // Declared sensitive, the whole value is a secret; else the parts
        // the calling module passes as secrets are.
        let marks = match inputs {
            _ if variable.sensitive => Marks::whole(),
            Inputs::Child(_, _, _, marked) => marked.get(name).cloned().unwrap_or_default(),
            Inputs::Root(_) => Marks::clear(),
        };
        if !marks.is_clear() {
            self.result.sensitive_variables.push(name.to_string());
        }
        NamedMarks::set(&mut self.values.marks.variables, name, marks);
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
    pub(super) fn eval_provided(&mut self, name: &str, expr: &Expr) -> Result<Value, Failed> {
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
        // A constant: it refers to nothing, sensitive or not.
        self.evaluator(None, None).eval(expr)
    }

    pub(super) fn check_unused_inputs(&mut self, inputs: &Inputs) {
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
}
