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
use super::marks::{Marks, Segment};
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
    /// During apply: `timestamp()` and `uuid()` have values.
    pub applying: bool,
    /// The sensitive parts of the values above (only those with any).
    pub marks: NamedMarks,
}

/// The [`Marks`] of a module's named values; a name missing here is clear.
#[derive(Debug, Default)]
pub struct NamedMarks {
    pub variables: HashMap<String, Marks>,
    pub locals: HashMap<String, Marks>,
    /// By mode, type and name, looked up by `&str` without allocating.
    pub resources:
        HashMap<(ResourceMode, std::sync::Arc<str>), HashMap<std::sync::Arc<str>, Marks>>,
    pub modules: HashMap<String, Marks>,
    pub deployments: HashMap<String, Marks>,
}

impl NamedMarks {
    fn of(map: &HashMap<String, Marks>, name: Option<&str>) -> Marks {
        match name {
            Some(name) if !map.is_empty() => map.get(name).cloned().unwrap_or_default(),
            _ => Marks::clear(),
        }
    }

    pub(super) fn resource(&self, mode: ResourceMode, type_name: &str, name: &str) -> Marks {
        if self.resources.is_empty() {
            return Marks::clear();
        }
        self.resources
            .iter()
            .find(|((m, t), _)| *m == mode && &**t == type_name)
            .and_then(|(_, by_name)| by_name.get(name))
            .cloned()
            .unwrap_or_default()
    }

    /// Records `marks` for a name (clear ones are not kept).
    pub fn set(map: &mut HashMap<String, Marks>, name: &str, marks: Marks) {
        if marks.is_clear() {
            map.remove(name);
        } else {
            map.insert(name.to_string(), marks);
        }
    }

    pub fn set_resource(&mut self, id: &ResourceId, marks: Marks) {
        let by_name = self
            .resources
            .entry((id.mode, id.type_name.clone()))
            .or_default();
        if marks.is_clear() {
            by_name.remove(&*id.name);
        } else {
            by_name.insert(id.name.clone(), marks);
        }
    }
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
    pub each: Option<Each>,
}

/// `each.key` and `each.value` of a `for_each` instance, with the marks of
/// the value (and of the key: marked when the whole collection is).
#[derive(Debug, Clone)]
pub struct Each {
    pub key: Value,
    pub value: Value,
    pub key_marks: Marks,
    pub value_marks: Marks,
}

/// Evaluation failed and a diagnostic says why (or a name was unknown,
/// already reported by the reference pass).
#[derive(Debug, Clone, Copy)]
pub struct Failed;

pub type EvalResult = Result<Value, Failed>;

/// A value with the marks of its sensitive parts.
pub type Marked = (Value, Marks);
pub type MarkedResult = Result<Marked, Failed>;

pub struct Evaluator<'s, 'd> {
    scope: Scope<'s>,
    bindings: Vec<(String, Value, Marks)>,
    pub diagnostics: &'d mut Diagnostics,
    budget: &'d mut u64,
    /// Evaluating a `templatefile` template, which may not call another.
    in_template_file: bool,
    /// Blocks `dynamic` blocks generated so far (bounded by
    /// [`MAX_GENERATED_BLOCKS`]).
    generated_blocks: usize,
}

/// How many blocks `dynamic` blocks may generate for one instance, nested
/// ones included.
pub const MAX_GENERATED_BLOCKS: usize = 10_000;

impl<'s, 'd> Evaluator<'s, 'd> {
    pub fn new(scope: Scope<'s>, diagnostics: &'d mut Diagnostics, budget: &'d mut u64) -> Self {
        Evaluator {
            scope,
            bindings: Vec::new(),
            diagnostics,
            budget,
            in_template_file: false,
            generated_blocks: 0,
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

    /// The value of `expr`, its marks dropped: for what is never shown or
    /// saved (`count`, conditions), or where the caller tracks secrets itself.
    pub fn eval(&mut self, expr: &Expr) -> EvalResult {
        self.eval_marked(expr).map(|(value, _)| value)
    }

    /// The value of `expr` with the marks of its sensitive parts.
    pub fn eval_marked(&mut self, expr: &Expr) -> MarkedResult {
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
        let clear = |value: Value| Ok((value, Marks::clear()));
        match &expr.kind {
            ExprKind::Null => clear(Value::Null),
            ExprKind::Bool(flag) => clear(Value::Bool(*flag)),
            ExprKind::Number(number) => clear(Value::Number(*number)),
            ExprKind::Template(parts) => self.template(parts),
            ExprKind::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                let mut marks = Marks::gather();
                for (index, item) in items.iter().enumerate() {
                    let (value, item_marks) = self.eval_marked(item)?;
                    marks.add(Segment::Index(index), &item_marks);
                    values.push(value);
                }
                Ok((Value::list(values), marks.finish()))
            }
            ExprKind::Object(items) => self.object(items),
            ExprKind::Variable(ident) => self.traversal_from_name(ident, &[], expr.span),
            ExprKind::Traversal { root, steps } => match &root.kind {
                ExprKind::Variable(ident) => self.traversal_from_name(ident, steps, expr.span),
                _ => {
                    let value = self.eval_marked(root)?;
                    self.apply_steps(value, steps)
                }
            },
            ExprKind::Call {
                name,
                args,
                expand_final,
            } => self.call(name, args, *expand_final),
            ExprKind::Unary { op, operand } => {
                let (value, marks) = self.eval_marked(operand)?;
                let marks = marks.collapsed();
                let value = match (op, &value) {
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
                }?;
                Ok((value, marks))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (left, left_marks) = self.eval_marked(lhs)?;
                let (right, right_marks) = self.eval_marked(rhs)?;
                let marks = left_marks.union(&right_marks).collapsed();
                let value = self.binary(*op, left, right, lhs.span, rhs.span)?;
                Ok((value, marks))
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                // A choice made by a secret tells of it: the result is marked.
                let (flag, condition_marks) = self.eval_marked(condition)?;
                let chosen = match flag {
                    Value::Bool(true) => self.eval_marked(then),
                    Value::Bool(false) => self.eval_marked(otherwise),
                    Value::Unknown => {
                        let (_, then_marks) = self.eval_marked(then)?;
                        let (_, otherwise_marks) = self.eval_marked(otherwise)?;
                        Ok((Value::Unknown, then_marks.union(&otherwise_marks)))
                    }
                    other => Err(self.type_error(
                        condition.span,
                        format!("the condition must be a bool, not a {}", other.type_name()),
                        "write a comparison, e.g. `var.env == \"prod\" ? 3 : 1`",
                    )),
                }?;
                Ok(if condition_marks.is_clear() {
                    chosen
                } else {
                    (chosen.0, Marks::whole())
                })
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
            ExprKind::Parenthesized(inner) => self.eval_marked(inner),
        }
    }

    /// Evaluates `arg` as `try` and `can` do: its errors are the answer
    /// (`Err` with its diagnostics taken back), unless evaluation ran out of
    /// budget or size, which stops everything, `try` included.
    fn attempt(&mut self, arg: &Expr) -> Result<MarkedResult, Failed> {
        let mark = self.diagnostics.len();
        let result = self.eval_marked(arg);
        if result.is_ok() {
            return Ok(result);
        }
        let exhausted = *self.budget == 0
            || self
                .diagnostics
                .iter()
                .skip(mark)
                .any(|d| d.code == Code::EvaluationTooLarge);
        if exhausted {
            return Err(Failed);
        }
        Ok(result)
    }

    /// `try(a, b, …)`: the first argument that evaluates without an error.
    /// One that depends on values known only after apply makes the result
    /// unknown (it may fail once they are known).
    fn try_each(&mut self, name: &Ident, args: &[Expr]) -> MarkedResult {
        for (index, arg) in args.iter().enumerate() {
            let mark = self.diagnostics.len();
            match self.attempt(arg)? {
                Ok((value, marks)) if value.is_wholly_known() => return Ok((value, marks)),
                Ok((_, marks)) => return Ok((Value::Unknown, marks.collapsed())),
                Err(Failed) if index + 1 < args.len() => self.diagnostics.truncate(mark),
                Err(Failed) => {
                    let why = self.diagnostics.iter().nth(mark).map(|d| d.message.clone());
                    self.diagnostics.truncate(mark);
                    let message = match why {
                        Some(why) => format!("every argument of `try` failed; the last one: {why}"),
                        None => "every argument of `try` failed".to_string(),
                    };
                    return Err(self.error(
                        Code::FunctionError,
                        arg.span,
                        message,
                        "the last argument failed too",
                        format!(
                            "end `{}` with a value that cannot fail, e.g. `try(var.settings.port, 80)`",
                            name.name
                        ),
                    ));
                }
            }
        }
        unreachable!("try has at least one argument")
    }

    /// `can(x)`: whether `x` evaluates without an error (unknown while it
    /// depends on values known only after apply).
    fn can(&mut self, arg: &Expr) -> MarkedResult {
        let mark = self.diagnostics.len();
        match self.attempt(arg)? {
            Ok((value, _)) if value.is_wholly_known() => Ok((Value::Bool(true), Marks::clear())),
            Ok(_) => Ok((Value::Unknown, Marks::clear())),
            Err(Failed) => {
                self.diagnostics.truncate(mark);
                Ok((Value::Bool(false), Marks::clear()))
            }
        }
    }

    /// `templatefile(path, vars)`: the file read as a template and rendered
    /// with `vars` as its only names (and the functions, `templatefile`
    /// excepted). Its problems are reported at the call, with the
    /// template's line and column.
    fn templatefile(
        &mut self,
        values: &[Value],
        context: &CallContext,
        name: &Ident,
        args: &[Expr],
    ) -> EvalResult {
        let call_span = name.span.to(args[args.len() - 1].span);
        if self.in_template_file {
            return Err(self.error(
                Code::FunctionError,
                call_span,
                "a template cannot call `templatefile`",
                "called from a template",
                "render the inner template in the configuration and pass the result as a variable",
            ));
        }
        if values.iter().any(|value| !value.is_wholly_known()) {
            return Ok(Value::Unknown);
        }
        let Value::Map(vars) = &values[1] else {
            return Err(self.type_error(
                args[1].span,
                format!(
                    "the variables must be an object, not a {}",
                    values[1].type_name()
                ),
                "write them as an object: `templatefile(\"init.tpl\", { port = 80 })`",
            ));
        };
        let path = values[0].to_interpolated().unwrap_or_default();
        let text = match super::functions::template_text(values, context) {
            Ok(text) => text,
            Err(error) => {
                return Err(self.error(
                    Code::FunctionError,
                    args[0].span,
                    error.message,
                    "cannot be read",
                    error.help.unwrap_or_default(),
                ));
            }
        };
        let at = |span: Span| -> String {
            let before = text.get(..span.start as usize).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
            format!("{path}:{line}:{column}")
        };
        // A problem in the template: its message with where it is, and its help.
        let located = |problem: &Diagnostic| -> (String, String) {
            let place = problem
                .primary_span()
                .map(at)
                .unwrap_or_else(|| path.clone());
            let help = problem.help.clone();
            (
                format!("{place}: {}", problem.message),
                help.unwrap_or_else(|| "fix the template".into()),
            )
        };
        let template_file = crate::syntax::FileId(u32::MAX);
        let parts = match crate::syntax::parse_template(template_file, &text) {
            Ok(parts) => parts,
            Err(problem) => {
                let (message, help) = located(&problem);
                return Err(self.error(
                    Code::FunctionError,
                    args[0].span,
                    format!("the template does not parse: {message}"),
                    "this template",
                    help,
                ));
            }
        };
        // Every name the template reads must be one of `vars`.
        let whole = Expr {
            kind: ExprKind::Template(parts),
            span: Span::new(template_file, 0, text.len()),
        };
        let mut references = Vec::new();
        let mut problems = Vec::new();
        super::references::collect_references(&whole, &mut references, &mut problems);
        // A variable read whole (`${port}`) is a bare name to the reference
        // pass, one read by attribute (`${cfg.port}`) a reference: both
        // are fine when the name is a variable.
        let root_of = |span: Span| {
            let written = text.get(span.range()).unwrap_or("");
            written
                .split(['.', '['])
                .next()
                .unwrap_or(written)
                .trim()
                .to_string()
        };
        let is_name = |root: &str| {
            root.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && root
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        };
        problems.retain(|problem| {
            problem
                .primary_span()
                .is_none_or(|span| !vars.contains_key(&root_of(span)))
        });
        let unknown_name = references
            .iter()
            .map(|reference| reference.span)
            .chain(problems.iter().filter_map(Diagnostic::primary_span))
            .map(|span| (root_of(span), span))
            .find(|(root, _)| is_name(root) && !vars.contains_key(root));
        if let Some((root, span)) = unknown_name {
            let given: Vec<&str> = vars.keys().map(String::as_str).collect();
            return Err(self.error(
                Code::FunctionError,
                args[1].span,
                format!(
                    "{}: the template reads `{root}`, which is not among its variables",
                    at(span)
                ),
                "the template's variables",
                if given.is_empty() {
                    format!("add `{root} = …` here: a template sees only these variables")
                } else {
                    format!(
                        "add `{root} = …` here (a template sees only these variables: {})",
                        code_list(&given)
                    )
                },
            ));
        }
        if let Some(problem) = problems.first() {
            let (message, help) = located(problem);
            return Err(self.error(
                Code::FunctionError,
                args[0].span,
                message,
                "in this template",
                help,
            ));
        }
        let ExprKind::Template(parts) = &whole.kind else {
            unreachable!("built above")
        };
        let empty = ModuleValues::default();
        let scope = Scope {
            values: &empty,
            module_dir: self.scope.module_dir,
            count_index: None,
            each: None,
        };
        let mut diagnostics = Diagnostics::new();
        let mut inner = Evaluator::new(scope, &mut diagnostics, &mut *self.budget);
        inner.in_template_file = true;
        inner.bindings = vars
            .iter()
            .map(|(key, value)| (key.clone(), value.clone(), Marks::clear()))
            .collect();
        let rendered = inner.template(parts);
        match rendered {
            Ok((value, _)) => Ok(value),
            Err(Failed) => {
                let problem = diagnostics.iter().next();
                let code = match problem {
                    Some(problem) if problem.code == Code::EvaluationTooLarge => problem.code,
                    _ => Code::FunctionError,
                };
                let (message, help) = problem.map_or_else(
                    || ("the template failed".into(), "fix the template".into()),
                    located,
                );
                Err(self.error(
                    code,
                    call_span,
                    message,
                    "rendering this template failed",
                    help,
                ))
            }
        }
    }

    /// A string template; a secret interpolated marks the whole string.
    fn template(&mut self, parts: &[TemplatePart]) -> MarkedResult {
        // The commonest shapes, without building a string: plain text, and
        // `"${x}"` where `x` is already a string.
        match parts {
            [] => return Ok((Value::string(""), Marks::clear())),
            [TemplatePart::Literal(text)] => return Ok((Value::string(text), Marks::clear())),
            [TemplatePart::Interpolation(expr)] => {
                let (value, marks) = self.eval_marked(expr)?;
                if matches!(value, Value::String(_) | Value::Unknown) {
                    return Ok((value, marks.collapsed()));
                }
                if let Some(text) = value.to_interpolated() {
                    return Ok((Value::string(text), marks.collapsed()));
                }
                // null, lists and objects: the general path reports them.
            }
            _ => {}
        }
        let mut rendered = Rendered::default();
        self.render(parts, &mut rendered)?;
        let Rendered {
            out,
            unknown,
            marks,
        } = rendered;
        let value = if unknown {
            Value::Unknown
        } else {
            Value::String(out.into())
        };
        Ok((value, marks))
    }

    /// Renders template parts into `rendered`: literal text, interpolated
    /// values, the chosen branch of each `%{ if }`, the body of each
    /// `%{ for }` once per element. An unknown value (or condition, or
    /// collection) makes the whole string unknown; a secret marks it.
    fn render(&mut self, parts: &[TemplatePart], rendered: &mut Rendered) -> Result<(), Failed> {
        for part in parts {
            let span = match part {
                TemplatePart::Literal(text) => {
                    rendered.out.push_str(text);
                    None
                }
                TemplatePart::Interpolation(expr) => {
                    let (value, part_marks) = self.eval_marked(expr)?;
                    rendered.marks = rendered.marks.union(&part_marks.collapsed());
                    match value {
                        Value::Unknown => rendered.unknown = true,
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
                        other => rendered
                            .out
                            .push_str(&other.to_interpolated().unwrap_or_default()),
                    }
                    Some(expr.span)
                }
                TemplatePart::If {
                    condition,
                    then,
                    otherwise,
                    ..
                } => {
                    let (value, part_marks) = self.eval_marked(condition)?;
                    rendered.marks = rendered.marks.union(&part_marks.collapsed());
                    match value {
                        Value::Bool(true) => self.render(then, rendered)?,
                        Value::Bool(false) => self.render(otherwise, rendered)?,
                        Value::Unknown => rendered.unknown = true,
                        other => {
                            return Err(self.type_error(
                                condition.span,
                                format!(
                                    "the `%{{ if }}` condition must be a bool, not a {}",
                                    other.type_name()
                                ),
                                "compare it to get a bool, e.g. `%{ if x != \"\" }`",
                            ));
                        }
                    }
                    Some(condition.span)
                }
                TemplatePart::For { intro, body, .. } => {
                    let (pairs, collection_marks) = self.iterate(intro)?;
                    rendered.marks = rendered.marks.union(&collection_marks.collapsed());
                    let Some(pairs) = pairs else {
                        rendered.unknown = true;
                        continue;
                    };
                    let key_marks = collection_marks.of_keys();
                    let depth = self.bindings.len();
                    for (key, item, item_marks) in pairs {
                        // Each pass costs a step, even over literal text.
                        self.spend(1, intro.collection.span, "%{ for }")?;
                        self.bind(intro, key, &key_marks, item, item_marks);
                        let result = self.render(body, rendered);
                        self.bindings.truncate(depth);
                        result?;
                        if rendered.out.len() > MAX_STRING_BYTES {
                            break;
                        }
                    }
                    Some(intro.collection.span)
                }
            };
            // Literal text alone grows only inside a `%{ for }`, which
            // reports it.
            if let Some(span) = span
                && rendered.out.len() > MAX_STRING_BYTES
            {
                return Err(self.error(
                    Code::EvaluationTooLarge,
                    span,
                    format!(
                        "this string would be over the {} MiB a value may have",
                        MAX_STRING_BYTES >> 20
                    ),
                    "the string grows too large here",
                    "look for a string that grows at every step (a template of its own result, or a `%{ for }` over a large range)",
                ));
            }
        }
        Ok(())
    }

    /// An object key (`None` when unknown) and whether a secret computed it.
    fn object_key(&mut self, key: &ObjectKey) -> Result<(Option<String>, bool), Failed> {
        match key {
            ObjectKey::Name(ident) => Ok((Some(ident.name.clone()), false)),
            ObjectKey::Expr(expr) => {
                let (value, marks) = self.eval_marked(expr)?;
                Ok((self.key_text(value, expr)?, !marks.is_clear()))
            }
        }
    }

    fn key_text(&mut self, value: Value, expr: &Expr) -> Result<Option<String>, Failed> {
        match value {
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
        }
    }

    /// An object literal: each attribute keeps its own marks (a key
    /// computed from a secret marks the whole object).
    fn object(&mut self, items: &[crate::syntax::ObjectItem]) -> MarkedResult {
        let mut entries = BTreeMap::new();
        let mut spans: HashMap<String, Span> = HashMap::default();
        let mut unknown = false;
        let mut marks = Marks::gather();
        let mut key_marked = false;
        for item in items {
            let (key, marked) = self.object_key(&item.key)?;
            key_marked |= marked;
            let (value, value_marks) = self.eval_marked(&item.value)?;
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
            marks.add(Segment::Key(key.clone()), &value_marks);
            entries.insert(key, value);
        }
        let marks = if key_marked {
            Marks::whole()
        } else {
            marks.finish()
        };
        let value = if unknown {
            Value::Unknown
        } else {
            Value::map(entries)
        };
        Ok((value, marks))
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

    /// A function call. Its result is marked whole when any argument has a
    /// marked part (`jsonencode({ password = var.db })` is a secret), except
    /// for `sensitive(x)`, which marks, and `nonsensitive(x)`, which clears.
    fn call(&mut self, name: &Ident, args: &[Expr], expand_final: bool) -> MarkedResult {
        match (name.name.as_str(), args) {
            ("try", [_, ..]) if !expand_final => return self.try_each(name, args),
            ("can", [arg]) if !expand_final => return self.can(arg),
            _ => {}
        }
        let mut values = Vec::with_capacity(args.len());
        let mut marks = Marks::clear();
        for (index, arg) in args.iter().enumerate() {
            let (value, arg_marks) = self.eval_marked(arg)?;
            marks = marks.union(&arg_marks);
            if expand_final && index + 1 == args.len() {
                match value {
                    Value::List(items) => {
                        for item in items.iter() {
                            values.push(item.clone());
                        }
                    }
                    Value::Unknown => return Ok((Value::Unknown, marks.collapsed())),
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
            applying: self.scope.values.applying,
        };
        if function.name == "templatefile" {
            let value = self.templatefile(&values, &context, name, args)?;
            return Ok((value, marks.collapsed()));
        }
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
            Ok(value) => {
                let marks = match function.name {
                    "sensitive" => Marks::whole(),
                    "nonsensitive" => Marks::clear(),
                    _ => marks.collapsed(),
                };
                Ok((value, marks))
            }
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
    fn traversal_from_name(&mut self, root: &Ident, steps: &[Step], _span: Span) -> MarkedResult {
        if let Some((_, value, marks)) = self
            .bindings
            .iter()
            .rev()
            .find(|(name, _, _)| *name == root.name)
        {
            let bound = (value.clone(), marks.clone());
            return self.apply_steps(bound, steps);
        }
        let attr = |index: usize| match steps.get(index) {
            Some(Step::Attr(ident)) => Some(ident.name.as_str()),
            _ => None,
        };
        let values = self.scope.values;
        let marks = &values.marks;
        // `var.x`, `local.x`, …: a value by name, with its marks.
        let named = |values: &HashMap<String, Value>, marks: &HashMap<String, Marks>| {
            let name = attr(0);
            let value = name.and_then(|n| values.get(n)).cloned();
            (value, 1, NamedMarks::of(marks, name))
        };
        let (value, consumed, marked) = match root.name.as_str() {
            "var" => named(&values.variables, &marks.variables),
            "local" => named(&values.locals, &marks.locals),
            "deployment" => named(&values.deployments, &marks.deployments),
            "module" => named(&values.modules, &marks.modules),
            "count" => (
                self.scope.count_index.map(|i| Value::Number(i as f64)),
                1,
                Marks::clear(),
            ),
            "each" => match (attr(0), &self.scope.each) {
                (Some("key"), Some(each)) => (Some(each.key.clone()), 1, each.key_marks.clone()),
                (Some("value"), Some(each)) => {
                    (Some(each.value.clone()), 1, each.value_marks.clone())
                }
                _ => (None, 1, Marks::clear()),
            },
            "path" => (
                match attr(0) {
                    Some("module") => Some(Value::string(&values.path_module)),
                    Some("root") => Some(Value::string(&values.path_root)),
                    Some("cwd") => std::env::current_dir()
                        .ok()
                        .map(|d| Value::string(d.to_string_lossy())),
                    _ => None,
                },
                1,
                Marks::clear(),
            ),
            "data" => match (attr(0), attr(1)) {
                (Some(type_name), Some(name)) => (
                    values
                        .resource(ResourceMode::Data, type_name, name)
                        .cloned(),
                    2,
                    marks.resource(ResourceMode::Data, type_name, name),
                ),
                _ => (None, 2, Marks::clear()),
            },
            type_name => match attr(0) {
                Some(name) => (
                    values
                        .resource(ResourceMode::Managed, type_name, name)
                        .cloned(),
                    1,
                    marks.resource(ResourceMode::Managed, type_name, name),
                ),
                None => (None, 0, Marks::clear()),
            },
        };
        let Some(value) = value else {
            return Err(Failed);
        };
        self.apply_steps((value, marked), steps.get(consumed..).unwrap_or(&[]))
    }

    fn apply_steps(&mut self, (mut value, mut marks): Marked, steps: &[Step]) -> MarkedResult {
        for (position, step) in steps.iter().enumerate() {
            (value, marks) = match step {
                Step::Splat(_) => {
                    let rest = &steps[position + 1..];
                    return match value {
                        Value::Unknown => Ok((Value::Unknown, marks)),
                        Value::Null => Ok((Value::list(Vec::new()), Marks::clear())),
                        Value::List(items) => {
                            let mut out = Vec::with_capacity(items.len());
                            let mut out_marks = Marks::gather();
                            for (index, item) in items.iter().enumerate() {
                                let (item, item_marks) =
                                    self.apply_steps((item.clone(), marks.index(index)), rest)?;
                                out_marks.add(Segment::Index(index), &item_marks);
                                out.push(item);
                            }
                            Ok((Value::list(out), out_marks.finish()))
                        }
                        single => {
                            let (item, item_marks) = self.apply_steps((single, marks), rest)?;
                            Ok((Value::list(vec![item]), item_marks.under(Segment::Index(0))))
                        }
                    };
                }
                Step::Attr(ident) => {
                    // `list.0`: the legacy index syntax of HCL 1 (the name is
                    // read as a number only after a list: attribute reads are hot).
                    let legacy = match &value {
                        Value::List(_) => super::references::legacy_index(&ident.name),
                        _ => None,
                    };
                    match legacy {
                        Some(position) => {
                            let inner = marks.index(position);
                            let index = Value::Number(position as f64);
                            (self.index(value, index, ident.span)?, inner)
                        }
                        None => {
                            let inner = marks.key(&ident.name);
                            (self.get_attribute(value, ident)?, inner)
                        }
                    }
                }
                Step::Index(index_expr) => {
                    let (index, index_marks) = self.eval_marked(index_expr)?;
                    let inner = if !index_marks.is_clear() {
                        // Which element a secret picks tells of the secret.
                        Marks::whole()
                    } else if marks.is_clear() {
                        Marks::clear()
                    } else {
                        match (&value, &index) {
                            (Value::List(_), Value::Number(n)) if *n >= 0.0 => {
                                marks.index(*n as usize)
                            }
                            (_, key) => match key.to_interpolated() {
                                Some(key) => marks.key(&key),
                                None => marks.collapsed(),
                            },
                        }
                    };
                    (self.index(value, index, index_expr.span)?, inner)
                }
            };
        }
        Ok((value, marks))
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

    /// The (key, value) pairs a for-expression iterates over (`None`:
    /// unknown) with the marks of each value, and the collection's marks.
    #[allow(clippy::type_complexity)]
    fn iterate(
        &mut self,
        intro: &ForIntro,
    ) -> Result<(Option<Vec<(Value, Value, Marks)>>, Marks), Failed> {
        let (collection, marks) = self.eval_marked(&intro.collection)?;
        match collection {
            Value::Unknown => Ok((None, marks)),
            Value::List(items) => Ok((
                Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Number(i as f64), v.clone(), marks.index(i)))
                        .collect(),
                ),
                marks,
            )),
            Value::Map(entries) => Ok((
                Some(
                    entries
                        .iter()
                        .map(|(k, v)| (Value::string(k), v.clone(), marks.key(k)))
                        .collect(),
                ),
                marks,
            )),
            other => Err(self.type_error(
                intro.collection.span,
                format!("cannot iterate over a {}", other.type_name()),
                "a for-expression iterates over a list or a map",
            )),
        }
    }

    /// Binds `name` (a `dynamic` block's iterator) until [`Self::unbind`]
    /// with the depth returned.
    pub(crate) fn bind_name(&mut self, name: &str, value: Value, marks: Marks) -> usize {
        let depth = self.bindings.len();
        self.bindings.push((name.to_string(), value, marks));
        depth
    }

    pub(crate) fn unbind(&mut self, depth: usize) {
        self.bindings.truncate(depth);
    }

    /// Counts `count` more blocks generated by a `dynamic` block at `span`;
    /// past [`MAX_GENERATED_BLOCKS`] for the instance, an error.
    pub(crate) fn generating(&mut self, count: usize, span: Span) -> Result<(), Failed> {
        self.generated_blocks += count;
        if self.generated_blocks <= MAX_GENERATED_BLOCKS {
            return Ok(());
        }
        Err(self.error(
            Code::EvaluationTooLarge,
            span,
            format!("`dynamic` blocks would generate more than {MAX_GENERATED_BLOCKS} blocks here"),
            "generates too many blocks",
            "look for nested `dynamic` blocks over large collections",
        ))
    }

    fn bind(
        &mut self,
        intro: &ForIntro,
        key: Value,
        key_marks: &Marks,
        value: Value,
        marks: Marks,
    ) {
        if let Some(key_var) = &intro.key_var {
            self.bindings
                .push((key_var.name.clone(), key, key_marks.clone()));
        }
        self.bindings
            .push((intro.value_var.name.clone(), value, marks));
    }

    /// Whether the `if` keeps an element (`None`: unknown), and whether a
    /// secret decided it.
    fn keep(&mut self, condition: Option<&Expr>) -> Result<(Option<bool>, bool), Failed> {
        let Some(condition) = condition else {
            return Ok((Some(true), false));
        };
        let (value, marks) = self.eval_marked(condition)?;
        let marked = !marks.is_clear();
        match value {
            Value::Bool(flag) => Ok((Some(flag), marked)),
            Value::Unknown => Ok((None, marked)),
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

    /// `[for … : value if …]`: each element keeps its marks; a secret in
    /// the `if` marks the whole list (which elements are left tells of it).
    fn for_list(
        &mut self,
        intro: &ForIntro,
        value: &Expr,
        condition: Option<&Expr>,
    ) -> MarkedResult {
        let (pairs, collection_marks) = self.iterate(intro)?;
        let Some(pairs) = pairs else {
            return Ok((Value::Unknown, collection_marks.collapsed()));
        };
        let key_marks = collection_marks.of_keys();
        let depth = self.bindings.len();
        let mut out = Vec::with_capacity(pairs.len());
        let mut marks = Marks::gather();
        let mut whole = false;
        let mut unknown = false;
        for (key, item, item_marks) in pairs {
            self.bind(intro, key, &key_marks, item, item_marks);
            let result = (|| -> Result<(), Failed> {
                let (kept, marked) = self.keep(condition)?;
                whole |= marked;
                match kept {
                    Some(true) => {
                        let (element, element_marks) = self.eval_marked(value)?;
                        marks.add(Segment::Index(out.len()), &element_marks);
                        out.push(element);
                    }
                    Some(false) => {}
                    None => unknown = true,
                }
                Ok(())
            })();
            self.bindings.truncate(depth);
            result?;
        }
        let marks = if whole {
            Marks::whole()
        } else {
            marks.finish()
        };
        Ok(if unknown {
            (Value::Unknown, marks.collapsed())
        } else {
            (Value::list(out), marks)
        })
    }

    /// `{for … : key => value if …}`: each value keeps its marks; a secret
    /// in a key or in the `if` marks the whole object.
    fn for_object(
        &mut self,
        intro: &ForIntro,
        key_expr: &Expr,
        value_expr: &Expr,
        group: bool,
        condition: Option<&Expr>,
    ) -> MarkedResult {
        let (pairs, collection_marks) = self.iterate(intro)?;
        let Some(pairs) = pairs else {
            return Ok((Value::Unknown, collection_marks.collapsed()));
        };
        let key_marks = collection_marks.of_keys();
        let depth = self.bindings.len();
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        let mut grouped: BTreeMap<String, Vec<(Value, Marks)>> = BTreeMap::new();
        let mut marks = Marks::gather();
        let mut whole = false;
        let mut unknown = false;
        for (key, item, item_marks) in pairs {
            self.bind(intro, key, &key_marks, item, item_marks);
            let result = (|| -> Result<(), Failed> {
                let (kept, marked) = self.keep(condition)?;
                whole |= marked;
                match kept {
                    Some(true) => {}
                    Some(false) => return Ok(()),
                    None => {
                        unknown = true;
                        return Ok(());
                    }
                }
                let (key, key_marks) = self.eval_marked(key_expr)?;
                let (value, value_marks) = self.eval_marked(value_expr)?;
                whole |= !key_marks.is_clear();
                let Some(key) = self.key_text(key, key_expr)? else {
                    unknown = true;
                    return Ok(());
                };
                if group {
                    grouped.entry(key).or_default().push((value, value_marks));
                } else if let std::collections::btree_map::Entry::Vacant(slot) =
                    out.entry(key.clone())
                {
                    marks.add(Segment::Key(key), &value_marks);
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
        let value = if unknown {
            Value::Unknown
        } else if group {
            let mut lists = BTreeMap::new();
            for (key, values) in grouped {
                let mut group_marks = Marks::gather();
                let mut items = Vec::with_capacity(values.len());
                for (index, (value, value_marks)) in values.into_iter().enumerate() {
                    group_marks.add(Segment::Index(index), &value_marks);
                    items.push(value);
                }
                marks.add(Segment::Key(key.clone()), &group_marks.finish());
                lists.insert(key, Value::list(items));
            }
            Value::map(lists)
        } else {
            Value::map(out)
        };
        let marks = if whole {
            Marks::whole()
        } else {
            marks.finish()
        };
        if value.is_unknown() {
            return Ok((value, marks.collapsed()));
        }
        Ok((value, marks))
    }
}

/// A template being rendered.
#[derive(Default)]
struct Rendered {
    out: String,
    unknown: bool,
    marks: Marks,
}

/// Whether none of `exprs` refers to anything (a variable, a resource…):
/// then they can be evaluated on their own, with [`standalone`].
pub fn refers_to_nothing<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> bool {
    let mut references = Vec::new();
    let mut problems = Vec::new();
    for expr in exprs {
        super::references::collect_references(expr, &mut references, &mut problems);
    }
    references.is_empty() && problems.is_empty()
}

/// Runs `evaluate` with an evaluator that sees no names, in `module_dir`.
pub fn standalone<T>(module_dir: &Path, evaluate: impl FnOnce(&mut Evaluator) -> T) -> T {
    let values = ModuleValues::default();
    let mut diagnostics = Diagnostics::new();
    let mut budget = MAX_EVALUATION_STEPS;
    let scope = Scope {
        values: &values,
        module_dir,
        count_index: None,
        each: None,
    };
    evaluate(&mut Evaluator::new(scope, &mut diagnostics, &mut budget))
}

/// The value of an expression that refers to nothing (a type's default in
/// `optional(type, default)`), evaluated on its own; `None` when it refers
/// to something or fails.
pub fn constant(expr: &Expr) -> Option<Value> {
    if !refers_to_nothing([expr]) {
        return None;
    }
    standalone(Path::new("."), |evaluator| evaluator.eval(expr).ok())
}
