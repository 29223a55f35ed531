//! Expression evaluation in a [`Scope`]: operators, templates, traversals,
//! calls, for-expressions, with unknown values flowing through.
//!
//! Names that do not exist were already reported by `references`, so here a
//! missing name fails quietly; what only evaluation can find (a type error, a
//! missing map key, a function error) becomes a diagnostic at its span.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::path::Path;

use crate::config::{ResourceId, ResourceMode};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, code_list, did_you_mean};
use crate::syntax::{
    BinaryOp, Expr, ExprKind, ForIntro, Ident, ObjectKey, Span, Step, TemplatePart, UnaryOp,
};

use super::functions::{CallContext, MAX_GENERATED_ELEMENTS, lookup_function};
use super::value::{Value, format_number};

/// Evaluation work allowed for one run; beyond it evaluation stops with an
/// error, so no configuration can make `infra` run for ever.
pub const MAX_EVALUATION_STEPS: u64 = 20_000_000;

/// The longest string an expression may produce (as `file()` reads).
pub const MAX_STRING_BYTES: usize = 16 << 20;

/// The most values (elements and attributes at any depth) one resource
/// argument or output may hold.
pub const MAX_VALUE_SIZE: u64 = MAX_GENERATED_ELEMENTS as u64;

/// The named values of one module, filled in dependency order.
#[derive(Debug, Default)]
pub struct ModuleValues {
    pub variables: HashMap<String, Value>,
    pub locals: HashMap<String, Value>,
    /// Managed resources and data sources by type, then name, looked up by
    /// `&str` without allocating (see [`ModuleValues::resource`]).
    pub(super) resources: HashMap<std::sync::Arc<str>, HashMap<std::sync::Arc<str>, Value>>,
    pub(super) data_sources: HashMap<std::sync::Arc<str>, HashMap<std::sync::Arc<str>, Value>>,
    pub modules: HashMap<String, Value>,
    pub deployments: HashMap<String, Value>,
    pub path_module: String,
    pub path_root: String,
}

impl ModuleValues {
    pub fn resource(&self, mode: ResourceMode, type_name: &str, name: &str) -> Option<&Value> {
        let by_type = match mode {
            ResourceMode::Managed => &self.resources,
            ResourceMode::Data => &self.data_sources,
        };
        by_type.get(type_name)?.get(name)
    }

    pub fn set_resource(&mut self, id: &ResourceId, value: Value) {
        let by_type = match id.mode {
            ResourceMode::Managed => &mut self.resources,
            ResourceMode::Data => &mut self.data_sources,
        };
        by_type
            .entry(id.type_name.clone())
            .or_default()
            .insert(id.name.clone(), value);
    }
}

/// Where an expression is evaluated: its module's values plus `count.index`,
/// `each.*` and the variables of enclosing for-expressions.
pub struct Scope<'a> {
    pub values: &'a ModuleValues,
    pub module_dir: &'a Path,
    pub count_index: Option<usize>,
    pub each: Option<(Value, Value)>,
}

/// Evaluation failed and a diagnostic says why (or a name was unknown,
/// already reported by the reference pass).
#[derive(Debug, Clone, Copy)]
pub struct Failed;

pub type EvalResult = Result<Value, Failed>;

pub struct Evaluator<'s, 'd> {
    scope: Scope<'s>,
    bindings: Vec<(String, Value)>,
    pub diagnostics: &'d mut Diagnostics,
    budget: &'d mut u64,
}

impl<'s, 'd> Evaluator<'s, 'd> {
    pub fn new(scope: Scope<'s>, diagnostics: &'d mut Diagnostics, budget: &'d mut u64) -> Self {
        Evaluator {
            scope,
            bindings: Vec::new(),
            diagnostics,
            budget,
        }
    }

    fn error(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) -> Failed {
        self.diagnostics.push(
            Diagnostic::error(code, message)
                .with_label(span, label)
                .with_help(help),
        );
        Failed
    }

    fn type_error(
        &mut self,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Failed {
        let message = message.into();
        self.error(Code::TypeMismatch, span, message.clone(), message, help)
    }

    /// Spends what walking `values` whole costs from the budget (the walk
    /// stops where the budget does); over it is an error at `span`.
    fn charge(&mut self, values: &[&Value], span: Span, what: &str) -> Result<(), Failed> {
        let mut cost: u64 = 0;
        for value in values {
            let left = self.budget.saturating_sub(cost);
            match value.size_within(left) {
                Some(size) => cost += size,
                None => {
                    cost = u64::MAX;
                    break;
                }
            }
        }
        self.spend(cost, span, what)
    }

    /// Spends `cost` steps of the budget; over it is an error at `span`.
    fn spend(&mut self, cost: u64, span: Span, what: &str) -> Result<(), Failed> {
        if *self.budget == 0 {
            return Err(Failed);
        }
        if cost < *self.budget {
            *self.budget -= cost;
            return Ok(());
        }
        *self.budget = 0;
        Err(self.error(
            Code::EvaluationTooLarge,
            span,
            format!(
                "evaluation is too large: `{what}` here would walk more values than infra allows ({MAX_EVALUATION_STEPS} steps in all)"
            ),
            "evaluation stopped here",
            "look for values that double at each step (`[local.x, local.x]`, `concat(local.x, local.x)`) or nested for-expressions over large ranges",
        ))
    }

    /// `value`, unless it holds more than [`MAX_VALUE_SIZE`] values (a
    /// resource argument or an output: it is shown in plans and saved).
    pub fn bounded(&mut self, value: Value, span: Span) -> EvalResult {
        if value.size_within(MAX_VALUE_SIZE).is_some() {
            return Ok(value);
        }
        Err(self.error(
            Code::EvaluationTooLarge,
            span,
            format!("this value holds more than {MAX_VALUE_SIZE} values (elements and attributes at any depth)"),
            "too large to plan and save",
            "look for values that double at each step (`[local.x, local.x]`), or keep large data in a file",
        ))
    }

    pub fn eval(&mut self, expr: &Expr) -> EvalResult {
        if *self.budget == 0 {
            return Err(Failed);
        }
        *self.budget -= 1;
        if *self.budget == 0 {
            return Err(self.error(
                Code::EvaluationTooLarge,
                expr.span,
                "evaluation is too large",
                "evaluation stopped here",
                "the configuration builds more values than infra allows; look for nested for-expressions over large ranges",
            ));
        }
        match &expr.kind {
            ExprKind::Null => Ok(Value::Null),
            ExprKind::Bool(flag) => Ok(Value::Bool(*flag)),
            ExprKind::Number(number) => Ok(Value::Number(*number)),
            ExprKind::Template(parts) => self.template(parts),
            ExprKind::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.eval(item)?);
                }
                Ok(Value::list(values))
            }
            ExprKind::Object(items) => self.object(items),
            ExprKind::Variable(ident) => self.traversal_from_name(ident, &[], expr.span),
            ExprKind::Traversal { root, steps } => match &root.kind {
                ExprKind::Variable(ident) => self.traversal_from_name(ident, steps, expr.span),
                _ => {
                    let value = self.eval(root)?;
                    self.apply_steps(value, steps)
                }
            },
            ExprKind::Call {
                name,
                args,
                expand_final,
            } => self.call(name, args, *expand_final),
            ExprKind::Unary { op, operand } => {
                let value = self.eval(operand)?;
                match (op, &value) {
                    (_, Value::Unknown) => Ok(Value::Unknown),
                    (UnaryOp::Not, Value::Bool(flag)) => Ok(Value::Bool(!flag)),
                    (UnaryOp::Negate, Value::Number(number)) => Ok(Value::Number(-number)),
                    (UnaryOp::Not, other) => Err(self.type_error(
                        operand.span,
                        format!("`!` needs a bool, not a {}", other.type_name()),
                        "compare first, e.g. `!(x == \"\")`",
                    )),
                    (UnaryOp::Negate, other) => Err(self.type_error(
                        operand.span,
                        format!("`-` needs a number, not a {}", other.type_name()),
                        "negate a number",
                    )),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let left = self.eval(lhs)?;
                let right = self.eval(rhs)?;
                self.binary(*op, left, right, lhs.span, rhs.span)
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                let flag = self.eval(condition)?;
                match flag {
                    Value::Bool(true) => self.eval(then),
                    Value::Bool(false) => self.eval(otherwise),
                    Value::Unknown => {
                        self.eval(then)?;
                        self.eval(otherwise)?;
                        Ok(Value::Unknown)
                    }
                    other => Err(self.type_error(
                        condition.span,
                        format!("the condition must be a bool, not a {}", other.type_name()),
                        "write a comparison, e.g. `var.env == \"prod\" ? 3 : 1`",
                    )),
                }
            }
            ExprKind::ForList {
                intro,
                value,
                condition,
            } => self.for_list(intro, value, condition.as_deref()),
            ExprKind::ForObject {
                intro,
                key,
                value,
                group,
                condition,
            } => self.for_object(intro, key, value, *group, condition.as_deref()),
            ExprKind::Parenthesized(inner) => self.eval(inner),
        }
    }

    fn template(&mut self, parts: &[TemplatePart]) -> EvalResult {
        // The commonest shapes, without building a string: plain text, and
        // `"${x}"` where `x` is already a string.
        match parts {
            [] => return Ok(Value::string("")),
            [TemplatePart::Literal(text)] => return Ok(Value::string(text)),
            [TemplatePart::Interpolation(expr)] => {
                let value = self.eval(expr)?;
                if matches!(value, Value::String(_) | Value::Unknown) {
                    return Ok(value);
                }
                if let Some(text) = value.to_interpolated() {
                    return Ok(Value::string(text));
                }
                // null, lists and objects: the general path reports them.
            }
            _ => {}
        }
        let mut out = String::new();
        let mut unknown = false;
        for part in parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Interpolation(expr) => {
                    let value = self.eval(expr)?;
                    match value {
                        Value::Unknown => unknown = true,
                        Value::Null => {
                            return Err(self.type_error(
                                expr.span,
                                "cannot interpolate null",
                                "give it a value, or use `coalesce(x, \"\")`",
                            ));
                        }
                        Value::List(_) | Value::Map(_) => {
                            return Err(self.type_error(
                                expr.span,
                                format!("cannot interpolate a {}", value.type_name()),
                                "turn it into a string first, e.g. with `join(\",\", …)` or `jsonencode(…)`",
                            ));
                        }
                        other => out.push_str(&other.to_interpolated().unwrap_or_default()),
                    }
                    if out.len() > MAX_STRING_BYTES {
                        return Err(self.error(
                            Code::EvaluationTooLarge,
                            expr.span,
                            format!(
                                "this string would be over the {} MiB a value may have",
                                MAX_STRING_BYTES >> 20
                            ),
                            "the string grows too large here",
                            "look for a string that grows at every step (a template of its own result)",
                        ));
                    }
                }
            }
        }
        Ok(if unknown {
            Value::Unknown
        } else {
            Value::String(out.into())
        })
    }

    fn object_key(&mut self, key: &ObjectKey) -> Result<Option<String>, Failed> {
        match key {
            ObjectKey::Name(ident) => Ok(Some(ident.name.clone())),
            ObjectKey::Expr(expr) => match self.eval(expr)? {
                Value::Unknown => Ok(None),
                value => match value.to_interpolated() {
                    Some(text) => Ok(Some(text)),
                    None => Err(self.type_error(
                        expr.span,
                        format!(
                            "an object key must be a string, not a {}",
                            value.type_name()
                        ),
                        "use a string key",
                    )),
                },
            },
        }
    }

    fn object(&mut self, items: &[crate::syntax::ObjectItem]) -> EvalResult {
        let mut entries = BTreeMap::new();
        let mut spans: HashMap<String, Span> = HashMap::default();
        let mut unknown = false;
        for item in items {
            let key = self.object_key(&item.key)?;
            let value = self.eval(&item.value)?;
            let Some(key) = key else {
                unknown = true;
                continue;
            };
            if let Some(first) = spans.insert(key.clone(), item.key.span()) {
                self.diagnostics.push(
                    Diagnostic::error(Code::Duplicate, format!("duplicate object key `{key}`"))
                        .with_label(item.key.span(), "set again here")
                        .with_label(first, "first set here")
                        .with_help("each key may appear once; remove one of them"),
                );
                return Err(Failed);
            }
            entries.insert(key, value);
        }
        Ok(if unknown {
            Value::Unknown
        } else {
            Value::map(entries)
        })
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        left: Value,
        right: Value,
        left_span: Span,
        right_span: Span,
    ) -> EvalResult {
        use BinaryOp::*;
        if matches!(op, Equal | NotEqual) {
            // Comparing walks both values whole.
            self.charge(&[&left, &right], left_span.to(right_span), "comparing")?;
            if !left.is_wholly_known() || !right.is_wholly_known() {
                return Ok(Value::Unknown);
            }
            let equal = match (&left, &right) {
                (Value::Number(a), Value::Number(b)) => a == b,
                _ => left == right,
            };
            return Ok(Value::Bool(if op == Equal { equal } else { !equal }));
        }
        if left.is_unknown() || right.is_unknown() {
            return Ok(Value::Unknown);
        }
        if matches!(op, Or | And) {
            let a = self.bool_operand(op, &left, left_span)?;
            let b = self.bool_operand(op, &right, right_span)?;
            return Ok(Value::Bool(if op == Or { a || b } else { a && b }));
        }
        let a = self.number_operand(op, &left, left_span)?;
        let b = self.number_operand(op, &right, right_span)?;
        Ok(match op {
            Less => Value::Bool(a < b),
            LessEqual => Value::Bool(a <= b),
            Greater => Value::Bool(a > b),
            GreaterEqual => Value::Bool(a >= b),
            Add => Value::Number(a + b),
            Subtract => Value::Number(a - b),
            Multiply => Value::Number(a * b),
            Divide | Modulo if b == 0.0 => {
                return Err(self.error(
                    Code::DivisionByZero,
                    right_span,
                    "division by zero",
                    "this is zero",
                    "make sure the divisor is never 0",
                ));
            }
            Divide => Value::Number(a / b),
            Modulo => Value::Number(a % b),
            Or | And | Equal | NotEqual => unreachable!("handled above"),
        })
    }

    fn bool_operand(&mut self, op: BinaryOp, value: &Value, span: Span) -> Result<bool, Failed> {
        match value {
            Value::Bool(flag) => Ok(*flag),
            other => Err(self.type_error(
                span,
                format!("`{}` needs bools, not a {}", op.symbol(), other.type_name()),
                "compare first, e.g. `x == \"yes\"`",
            )),
        }
    }

    fn number_operand(&mut self, op: BinaryOp, value: &Value, span: Span) -> Result<f64, Failed> {
        match value {
            Value::Number(number) => Ok(*number),
            Value::String(text) if text.trim().parse::<f64>().is_ok() => {
                Ok(text.trim().parse().expect("checked"))
            }
            other => {
                let help = if op == BinaryOp::Add && matches!(other, Value::String(_)) {
                    "to join strings, interpolate them: \"${a}${b}\"".to_string()
                } else {
                    format!("`{}` works on numbers", op.symbol())
                };
                Err(self.type_error(
                    span,
                    format!(
                        "`{}` needs numbers, not a {}",
                        op.symbol(),
                        other.type_name()
                    ),
                    help,
                ))
            }
        }
    }

    fn call(&mut self, name: &Ident, args: &[Expr], expand_final: bool) -> EvalResult {
        let mut values = Vec::with_capacity(args.len());

        for (index, arg) in args.iter().enumerate() {
            let value = self.eval(arg)?;
            if expand_final && index + 1 == args.len() {
                match value {
                    Value::List(items) => {
                        for item in items.iter() {
                            values.push(item.clone());
                        }
                    }
                    Value::Unknown => return Ok(Value::Unknown),
                    other => {
                        return Err(self.type_error(
                            arg.span,
                            format!("`...` expands a list, not a {}", other.type_name()),
                            "remove `...` or pass a list",
                        ));
                    }
                }
            } else {
                values.push(value);
            }
        }
        // Unknown functions and wrong arity were reported by the reference pass.
        let Some(function) = lookup_function(&name.name) else {
            return Err(Failed);
        };
        if values.len() < function.min_args
            || function.max_args.is_some_and(|max| values.len() > max)
        {
            if expand_final {
                return Err(self.error(
                    Code::FunctionArity,
                    name.span,
                    format!(
                        "`{}` got {} arguments after expansion",
                        name.name,
                        values.len()
                    ),
                    "wrong number of arguments",
                    format!("call it as `{}`", function.signature),
                ));
            }
            return Err(Failed);
        }
        // What the call walks: its arguments whole (a function that is not
        // structural looks for unknowns at every depth, and most walk them
        // anyway), or only their top level.
        let call_span = args
            .first()
            .map_or(name.span, |first| name.span.to(first.span));
        if function.structural && function.name != "flatten" {
            let top_level: u64 = values
                .iter()
                .map(|value| match value {
                    Value::List(items) => items.len() as u64,
                    Value::Map(entries) => entries.len() as u64,
                    _ => 1,
                })
                .sum();
            self.spend(top_level, call_span, &name.name)?;
        } else {
            let walked: Vec<&Value> = values.iter().collect();
            self.charge(&walked, call_span, &name.name)?;
        }
        let context = CallContext {
            module_dir: self.scope.module_dir,
        };
        match function.call(&values, &context) {
            Ok(Value::String(text)) if text.len() > MAX_STRING_BYTES => Err(self.error(
                Code::EvaluationTooLarge,
                name.span,
                format!(
                    "`{}` would return a string of {} bytes, over the {} MiB a value may have",
                    name.name,
                    text.len(),
                    MAX_STRING_BYTES >> 20
                ),
                "this result is too large",
                "look for a string that grows at every step (templates or functions applied to their own result)",
            )),
            Ok(value) => Ok(value),
            Err(error) => {
                let span = error
                    .argument
                    // After `...` expansion, later values all come from the last argument.
                    .and_then(|i| args.get(i).or(args.last()).map(|arg| arg.span))
                    .unwrap_or(name.span);
                let help = error
                    .help
                    .unwrap_or_else(|| format!("call it as `{}`", function.signature));
                Err(self.error(
                    Code::FunctionError,
                    span,
                    format!("`{}`: {}", name.name, error.message),
                    error.message.clone(),
                    help,
                ))
            }
        }
    }

    /// Evaluates a reference that starts with a bare name, consuming the
    /// steps that name the object, then applies the rest.
    fn traversal_from_name(&mut self, root: &Ident, steps: &[Step], _span: Span) -> EvalResult {
        if let Some((_, value)) = self
            .bindings
            .iter()
            .rev()
            .find(|(name, _)| *name == root.name)
        {
            let value = value.clone();
            return self.apply_steps(value, steps);
        }
        let attr = |index: usize| match steps.get(index) {
            Some(Step::Attr(ident)) => Some(ident.name.as_str()),
            _ => None,
        };
        let values = self.scope.values;
        let (value, consumed) = match root.name.as_str() {
            "var" => (attr(0).and_then(|n| values.variables.get(n)).cloned(), 1),
            "local" => (attr(0).and_then(|n| values.locals.get(n)).cloned(), 1),
            "deployment" => (attr(0).and_then(|n| values.deployments.get(n)).cloned(), 1),
            "module" => (attr(0).and_then(|n| values.modules.get(n)).cloned(), 1),
            "count" => (self.scope.count_index.map(|i| Value::Number(i as f64)), 1),
            "each" => match (attr(0), &self.scope.each) {
                (Some("key"), Some((key, _))) => (Some(key.clone()), 1),
                (Some("value"), Some((_, value))) => (Some(value.clone()), 1),
                _ => (None, 1),
            },
            "path" => match attr(0) {
                Some("module") => (Some(Value::string(&values.path_module)), 1),
                Some("root") => (Some(Value::string(&values.path_root)), 1),
                Some("cwd") => (
                    std::env::current_dir()
                        .ok()
                        .map(|d| Value::string(d.to_string_lossy())),
                    1,
                ),
                _ => (None, 1),
            },
            "data" => match (attr(0), attr(1)) {
                (Some(type_name), Some(name)) => (
                    values
                        .resource(ResourceMode::Data, type_name, name)
                        .cloned(),
                    2,
                ),
                _ => (None, 2),
            },
            type_name => match attr(0) {
                Some(name) => (
                    values
                        .resource(ResourceMode::Managed, type_name, name)
                        .cloned(),
                    1,
                ),
                None => (None, 0),
            },
        };
        let Some(value) = value else {
            return Err(Failed);
        };
        self.apply_steps(value, steps.get(consumed..).unwrap_or(&[]))
    }

    fn apply_steps(&mut self, mut value: Value, steps: &[Step]) -> EvalResult {
        for (position, step) in steps.iter().enumerate() {
            value = match step {
                Step::Splat(_) => {
                    let rest = &steps[position + 1..];
                    return match value {
                        Value::Unknown => Ok(Value::Unknown),
                        Value::Null => Ok(Value::list(Vec::new())),
                        Value::List(items) => {
                            let mut out = Vec::with_capacity(items.len());
                            for item in items.iter() {
                                out.push(self.apply_steps(item.clone(), rest)?);
                            }
                            Ok(Value::list(out))
                        }
                        single => Ok(Value::list(vec![self.apply_steps(single, rest)?])),
                    };
                }
                Step::Attr(ident) => self.get_attribute(value, ident)?,
                Step::Index(index_expr) => {
                    let index = self.eval(index_expr)?;
                    self.index(value, index, index_expr.span)?
                }
            };
        }
        Ok(value)
    }

    fn get_attribute(&mut self, value: Value, ident: &Ident) -> EvalResult {
        let name = &ident.name;
        match value {
            Value::Unknown => Ok(Value::Unknown),
            Value::Map(entries) => match entries.get(name) {
                Some(found) => Ok(found.clone()),
                None => {
                    let help = did_you_mean(name, entries.keys().map(String::as_str)).unwrap_or_else(|| {
                        if entries.is_empty() { "the object is empty".into() } else { format!("it has {}", code_list(entries.keys().take(8))) }
                    });
                    Err(self.error(Code::UnknownAttribute, ident.span, format!("unknown attribute `{name}`"), "not in this object", help))
                }
            },
            Value::List(_) => Err(self.type_error(
                ident.span,
                format!("cannot read `.{name}` of a list"),
                format!("for every element write `[*].{name}`; for one element index it first, e.g. `[0].{name}`"),
            )),
            Value::Null => Err(self.type_error(ident.span, format!("cannot read `.{name}` of null"), "check that the value is set before reading from it")),
            other => Err(self.type_error(ident.span, format!("cannot read `.{name}` of a {}", other.type_name()), "only objects have attributes")),
        }
    }

    fn index(&mut self, value: Value, index: Value, span: Span) -> EvalResult {
        match (value, index) {
            (Value::Unknown, _) | (_, Value::Unknown) => Ok(Value::Unknown),
            (Value::List(items), Value::Number(number)) => {
                if number.fract() != 0.0 || number < 0.0 || number as usize >= items.len() {
                    return Err(self.error(
                        Code::InvalidIndex,
                        span,
                        format!("index {} is out of range", format_number(number)),
                        format!("the list has {} element(s)", items.len()),
                        if items.is_empty() {
                            "the list is empty".to_string()
                        } else {
                            format!("use an index from 0 to {}", items.len() - 1)
                        },
                    ));
                }
                Ok(items[number as usize].clone())
            }
            (Value::List(_), other) => Err(self.type_error(
                span,
                format!("a list index must be a number, not a {}", other.type_name()),
                "index lists by position, e.g. `[0]`",
            )),
            (Value::Map(entries), key) => {
                let Some(key) = key.to_interpolated() else {
                    return Err(self.type_error(
                        span,
                        format!("a map key must be a string, not a {}", key.type_name()),
                        "index maps by key, e.g. `[\"name\"]`",
                    ));
                };
                match entries.get(&key) {
                    Some(found) => Ok(found.clone()),
                    None => {
                        let help = did_you_mean(&key, entries.keys().map(String::as_str))
                            .unwrap_or_else(|| {
                                let keys: Vec<String> =
                                    entries.keys().take(8).map(|k| format!("\"{k}\"")).collect();
                                if keys.is_empty() {
                                    "the map is empty".into()
                                } else {
                                    format!("the keys are {}", keys.join(", "))
                                }
                            });
                        Err(self.error(
                            Code::InvalidIndex,
                            span,
                            format!("no key \"{key}\""),
                            "not in this map",
                            help,
                        ))
                    }
                }
            }
            (Value::Null, _) => Err(self.type_error(
                span,
                "cannot index null",
                "check that the value is set before indexing it",
            )),
            (other, _) => Err(self.type_error(
                span,
                format!("cannot index a {}", other.type_name()),
                "only lists and maps can be indexed",
            )),
        }
    }

    /// The (key, value) pairs a for-expression iterates over.
    fn iterate(&mut self, intro: &ForIntro) -> Result<Option<Vec<(Value, Value)>>, Failed> {
        let collection = self.eval(&intro.collection)?;
        match collection {
            Value::Unknown => Ok(None),
            Value::List(items) => Ok(Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Value::Number(i as f64), v.clone()))
                    .collect(),
            )),
            Value::Map(entries) => Ok(Some(
                entries
                    .iter()
                    .map(|(k, v)| (Value::string(k), v.clone()))
                    .collect(),
            )),
            other => Err(self.type_error(
                intro.collection.span,
                format!("cannot iterate over a {}", other.type_name()),
                "a for-expression iterates over a list or a map",
            )),
        }
    }

    fn bind(&mut self, intro: &ForIntro, key: Value, value: Value) {
        if let Some(key_var) = &intro.key_var {
            self.bindings.push((key_var.name.clone(), key));
        }
        self.bindings.push((intro.value_var.name.clone(), value));
    }

    fn keep(&mut self, condition: Option<&Expr>) -> Result<Option<bool>, Failed> {
        let Some(condition) = condition else {
            return Ok(Some(true));
        };
        match self.eval(condition)? {
            Value::Bool(flag) => Ok(Some(flag)),
            Value::Unknown => Ok(None),
            other => Err(self.type_error(
                condition.span,
                format!(
                    "the `if` condition must be a bool, not a {}",
                    other.type_name()
                ),
                "write a comparison",
            )),
        }
    }

    fn for_list(&mut self, intro: &ForIntro, value: &Expr, condition: Option<&Expr>) -> EvalResult {
        let Some(pairs) = self.iterate(intro)? else {
            return Ok(Value::Unknown);
        };
        let depth = self.bindings.len();
        let mut out = Vec::with_capacity(pairs.len());
        let mut unknown = false;
        for (key, item) in pairs {
            self.bind(intro, key, item);
            let result = (|| -> Result<(), Failed> {
                match self.keep(condition)? {
                    Some(true) => out.push(self.eval(value)?),
                    Some(false) => {}
                    None => unknown = true,
                }
                Ok(())
            })();
            self.bindings.truncate(depth);
            result?;
        }
        Ok(if unknown {
            Value::Unknown
        } else {
            Value::list(out)
        })
    }

    fn for_object(
        &mut self,
        intro: &ForIntro,
        key_expr: &Expr,
        value_expr: &Expr,
        group: bool,
        condition: Option<&Expr>,
    ) -> EvalResult {
        let Some(pairs) = self.iterate(intro)? else {
            return Ok(Value::Unknown);
        };
        let depth = self.bindings.len();
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut unknown = false;
        for (key, item) in pairs {
            self.bind(intro, key, item);
            let result = (|| -> Result<(), Failed> {
                match self.keep(condition)? {
                    Some(true) => {}
                    Some(false) => return Ok(()),
                    None => {
                        unknown = true;
                        return Ok(());
                    }
                }
                let key = self.eval(key_expr)?;
                let value = self.eval(value_expr)?;
                let key = match key {
                    Value::Unknown => {
                        unknown = true;
                        return Ok(());
                    }
                    other => match other.to_interpolated() {
                        Some(text) => text,
                        None => {
                            return Err(self.type_error(
                                key_expr.span,
                                format!(
                                    "an object key must be a string, not a {}",
                                    other.type_name()
                                ),
                                "produce a string key",
                            ));
                        }
                    },
                };
                if group {
                    grouped.entry(key).or_default().push(value);
                } else if let std::collections::btree_map::Entry::Vacant(slot) =
                    out.entry(key.clone())
                {
                    slot.insert(value);
                } else {
                    return Err(self.error(
                        Code::Duplicate,
                        key_expr.span,
                        format!("duplicate key \"{key}\" in a for-expression"),
                        "produces the same key twice",
                        "make keys unique, or add `...` after the value to group values by key",
                    ));
                }
                Ok(())
            })();
            self.bindings.truncate(depth);
            result?;
            if out.len() > MAX_GENERATED_ELEMENTS {
                return Err(self.error(
                    Code::EvaluationTooLarge,
                    key_expr.span,
                    "for-expression builds too many keys",
                    "here",
                    "reduce the collection",
                ));
            }
        }
        if unknown {
            return Ok(Value::Unknown);
        }
        if group {
            return Ok(Value::map(
                grouped
                    .into_iter()
                    .map(|(k, v)| (k, Value::list(v)))
                    .collect(),
            ));
        }
        Ok(Value::map(out))
    }
}
