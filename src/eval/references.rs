//! Static analysis of expressions: which named objects an expression refers
//! to (`var.x`, `aws_vpc.main`, `module.net`…), and calls to unknown
//! functions. Runs before evaluation, so every unknown name is reported, even
//! in a branch that evaluation never takes, and so the dependency graph of a
//! module can be built.

use crate::config::ResourceMode;
use crate::diagnostics::{Code, Diagnostic, did_you_mean};
use crate::syntax::{Expr, ExprKind, Ident, Span, Step, TemplatePart};

use super::functions::{function_names, lookup_function};

/// What a reference names. Names borrow from the syntax tree: collecting
/// references allocates nothing but the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target<'a> {
    Variable(&'a str),
    Local(&'a str),
    Resource {
        mode: ResourceMode,
        type_name: &'a str,
        name: &'a str,
    },
    Module(&'a str),
    Deployment(&'a str),
    CountIndex,
    EachKey,
    EachValue,
    Path,
}

#[derive(Debug, Clone)]
pub struct Reference<'a> {
    pub target: Target<'a>,
    /// The reference as written, e.g. `aws_vpc.main` in `aws_vpc.main.id`.
    pub span: Span,
    /// The attribute read from the target, if static: `id` in
    /// `aws_vpc.main.id` or `aws_subnet.a[0].id`; the output in `module.m.out`.
    pub attribute: Option<&'a Ident>,
    /// For a resource, the instance key written right after its name:
    /// `count.index % 3` in `aws_subnet.a[count.index % 3].id`.
    pub key: Option<&'a Expr>,
}

/// Whether `expr` (an instance key) is computed only from `count.index`,
/// `each.key`/`each.value`, variables and constants: then it names one
/// instance, known before anything is applied.
pub fn names_one_instance(expr: &Expr) -> bool {
    let mut references = Vec::new();
    let mut problems = Vec::new();
    collect_references(expr, &mut references, &mut problems);
    problems.is_empty()
        && references.iter().all(|reference| {
            matches!(
                reference.target,
                Target::CountIndex | Target::EachKey | Target::EachValue | Target::Variable(_)
            )
        })
}

/// Collects the references of `expr`, pushing diagnostics for malformed ones
/// and for unknown functions.
pub fn collect_references<'a>(
    expr: &'a Expr,
    references: &mut Vec<Reference<'a>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    collect_references_scoped(expr, &[], references, diagnostics);
}

/// [`collect_references`], where each name of `scoped` is bound within its
/// span (a `dynamic` block's iterator, within its `content`).
pub fn collect_references_scoped<'a>(
    expr: &'a Expr,
    scoped: &[(Span, &str)],
    references: &mut Vec<Reference<'a>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut walker = Walker {
        bound: Vec::new(),
        scoped,
        references,
        diagnostics,
    };
    walker.walk(expr);
}

struct Walker<'a, 'r> {
    /// Names bound by enclosing for-expressions.
    bound: Vec<&'a str>,
    /// Names bound within a span of the source.
    scoped: &'r [(Span, &'r str)],
    references: &'r mut Vec<Reference<'a>>,
    diagnostics: &'r mut Vec<Diagnostic>,
}

fn attr_name(steps: &[Step], index: usize) -> Option<&Ident> {
    match steps.get(index) {
        Some(Step::Attr(ident)) => Some(ident),
        _ => None,
    }
}

/// The index an attribute name stands for when it is a legacy index
/// (`list.0`, as HCL 1 wrote `list[0]`).
pub fn legacy_index(name: &str) -> Option<usize> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// The first static attribute after an optional instance key or splat.
fn attribute_after_key(steps: &[Step], index: usize) -> Option<&Ident> {
    match steps.get(index) {
        // `aws_instance.web.0.id`: the legacy index of HCL 1.
        Some(Step::Attr(ident)) if legacy_index(&ident.name).is_some() => {
            attr_name(steps, index + 1)
        }
        Some(Step::Attr(ident)) => Some(ident),
        Some(Step::Index(_) | Step::Splat(_)) => attr_name(steps, index + 1),
        None => None,
    }
}

pub const ROOT_NAMES: &[&str] = &[
    "var",
    "local",
    "count",
    "each",
    "path",
    "data",
    "module",
    "deployment",
];

impl<'a> Walker<'a, '_> {
    fn walk(&mut self, expr: &'a Expr) {
        match &expr.kind {
            ExprKind::Null | ExprKind::Bool(_) | ExprKind::Number(_) => {}
            ExprKind::Template(parts) => self.walk_template(parts),
            ExprKind::List(items) => items.iter().for_each(|item| self.walk(item)),
            ExprKind::Object(items) => {
                for item in items {
                    if let crate::syntax::ObjectKey::Expr(key) = &item.key {
                        self.walk(key);
                    }
                    self.walk(&item.value);
                }
            }
            ExprKind::Variable(ident) => {
                if !self.is_bound(ident) {
                    self.root(ident, &[], expr.span);
                }
            }
            ExprKind::Traversal { root, steps } => {
                match &root.kind {
                    ExprKind::Variable(ident) if !self.is_bound(ident) => {
                        self.root(ident, steps, expr.span);
                    }
                    _ => self.walk(root),
                }
                for step in steps {
                    if let Step::Index(index) = step {
                        self.walk(index);
                    }
                }
            }
            ExprKind::Call { name, args, .. } => {
                self.check_call(name, args.len());
                args.iter().for_each(|arg| self.walk(arg));
            }
            ExprKind::Unary { operand, .. } => self.walk(operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.walk(lhs);
                self.walk(rhs);
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                self.walk(condition);
                self.walk(then);
                self.walk(otherwise);
            }
            ExprKind::ForList {
                intro,
                value,
                condition,
            } => {
                self.walk(&intro.collection);
                let depth = self.bind(intro);
                self.walk(value);
                if let Some(condition) = condition {
                    self.walk(condition);
                }
                self.bound.truncate(depth);
            }
            ExprKind::ForObject {
                intro,
                key,
                value,
                condition,
                ..
            } => {
                self.walk(&intro.collection);
                let depth = self.bind(intro);
                self.walk(key);
                self.walk(value);
                if let Some(condition) = condition {
                    self.walk(condition);
                }
                self.bound.truncate(depth);
            }
            ExprKind::Parenthesized(inner) => self.walk(inner),
        }
    }

    fn is_bound(&self, ident: &Ident) -> bool {
        self.bound.contains(&ident.name.as_str())
            || self
                .scoped
                .iter()
                .any(|(span, name)| *name == ident.name && span.contains(ident.span))
    }

    fn walk_template(&mut self, parts: &'a [TemplatePart]) {
        for part in parts {
            match part {
                TemplatePart::Literal(_) => {}
                TemplatePart::Interpolation(inner) => self.walk(inner),
                TemplatePart::If {
                    condition,
                    then,
                    otherwise,
                    ..
                } => {
                    self.walk(condition);
                    self.walk_template(then);
                    self.walk_template(otherwise);
                }
                TemplatePart::For { intro, body, .. } => {
                    self.walk(&intro.collection);
                    let depth = self.bind(intro);
                    self.walk_template(body);
                    self.bound.truncate(depth);
                }
            }
        }
    }

    fn bind(&mut self, intro: &'a crate::syntax::ForIntro) -> usize {
        let depth = self.bound.len();
        if let Some(key) = &intro.key_var {
            self.bound.push(&key.name);
        }
        self.bound.push(&intro.value_var.name);
        depth
    }

    fn check_call(&mut self, name: &Ident, arity: usize) {
        let Some(function) = lookup_function(&name.name) else {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::UnknownFunction,
                    format!("unknown function `{}`", name.name),
                )
                .with_label(name.span, "no such function")
                .with_help(
                    did_you_mean(&name.name, function_names())
                        .unwrap_or_else(|| "see the function list in the README".into()),
                ),
            );
            return;
        };
        let too_few = arity < function.min_args;
        let too_many = function.max_args.is_some_and(|max| arity > max);
        if too_few || too_many {
            let expected = match function.max_args {
                Some(max) if max == function.min_args => format!("{max}"),
                Some(max) => format!("{} to {max}", function.min_args),
                None => format!("at least {}", function.min_args),
            };
            self.diagnostics.push(
                Diagnostic::error(
                    Code::FunctionArity,
                    format!(
                        "`{}` takes {expected} argument{}, not {arity}",
                        name.name,
                        if expected == "1" { "" } else { "s" }
                    ),
                )
                .with_label(name.span, "wrong number of arguments")
                .with_help(format!("call it as `{}`", function.signature)),
            );
        }
    }

    fn missing_name(&mut self, root: &Ident, example: &str) {
        self.diagnostics.push(
            Diagnostic::error(
                Code::InvalidReference,
                format!("`{}` must be followed by a name", root.name),
            )
            .with_label(root.span, "incomplete reference")
            .with_help(format!("write e.g. `{example}`")),
        );
    }

    fn push(&mut self, target: Target<'a>, span: Span, attribute: Option<&'a Ident>) {
        self.references.push(Reference {
            target,
            span,
            attribute,
            key: None,
        });
    }

    /// A reference to a resource whose instance key, if any, is the step
    /// at `key_step`.
    fn push_resource(
        &mut self,
        target: Target<'a>,
        span: Span,
        steps: &'a [Step],
        key_step: usize,
    ) {
        self.references.push(Reference {
            target,
            span,
            attribute: attribute_after_key(steps, key_step),
            key: match steps.get(key_step) {
                Some(Step::Index(key)) => Some(key),
                _ => None,
            },
        });
    }

    fn root(&mut self, root: &'a Ident, steps: &'a [Step], _whole: Span) {
        let span_to = |index: usize| {
            steps
                .get(index)
                .map(|step| root.span.to(step.span()))
                .unwrap_or(root.span)
        };
        match root.name.as_str() {
            "var" | "local" | "deployment" => {
                let Some(name) = attr_name(steps, 0) else {
                    let example = match root.name.as_str() {
                        "var" => "var.region",
                        "local" => "local.prefix",
                        _ => "deployment.api.version",
                    };
                    return self.missing_name(root, example);
                };
                let target = match root.name.as_str() {
                    "var" => Target::Variable(&name.name),
                    "local" => Target::Local(&name.name),
                    _ => Target::Deployment(&name.name),
                };
                self.push(target, span_to(0), attr_name(steps, 1));
            }
            "count" | "each" | "path" => {
                let allowed: &[&str] = match root.name.as_str() {
                    "count" => &["index"],
                    "each" => &["key", "value"],
                    _ => &["module", "root", "cwd"],
                };
                let attribute = attr_name(steps, 0);
                match attribute.map(|a| a.name.as_str()) {
                    Some(name) if allowed.contains(&name) => {
                        let target = match name {
                            "index" => Target::CountIndex,
                            "key" => Target::EachKey,
                            "value" => Target::EachValue,
                            _ => Target::Path,
                        };
                        self.push(target, span_to(0), None);
                    }
                    other => {
                        let span = attribute.map(|a| a.span).unwrap_or(root.span);
                        let written = other.unwrap_or("");
                        let choices = allowed
                            .iter()
                            .map(|a| format!("`{}.{a}`", root.name))
                            .collect::<Vec<_>>()
                            .join(" or ");
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::UnknownAttribute,
                                format!("`{}` has no attribute `{written}`", root.name),
                            )
                            .with_label(span, "not available here")
                            .with_help(
                                match did_you_mean(written, allowed.iter().copied()) {
                                    Some(suggestion) => suggestion,
                                    None => format!("use {choices}"),
                                },
                            ),
                        );
                    }
                }
            }
            "data" => {
                let (Some(type_name), Some(name)) = (attr_name(steps, 0), attr_name(steps, 1))
                else {
                    return self.missing_name(root, "data.aws_ami.ubuntu.id");
                };
                let target = Target::Resource {
                    mode: ResourceMode::Data,
                    type_name: &type_name.name,
                    name: &name.name,
                };
                self.push_resource(target, span_to(1), steps, 2);
            }
            "module" => {
                let Some(name) = attr_name(steps, 0) else {
                    return self.missing_name(root, "module.network.vpc_id");
                };
                self.push(Target::Module(&name.name), span_to(0), attr_name(steps, 1));
            }
            "self" => self.diagnostics.push(
                Diagnostic::error(Code::InvalidReference, "`self` is not supported")
                    .with_label(root.span, "not supported")
                    .with_help("refer to the resource by its address, e.g. `aws_instance.web.id`"),
            ),
            _ => {
                let Some(name) = attr_name(steps, 0) else {
                    let mut candidates: Vec<&str> = ROOT_NAMES.to_vec();
                    candidates.extend(self.bound.iter().copied());
                    let help = did_you_mean(&root.name, candidates).unwrap_or_else(|| {
                        if steps.is_empty() {
                            format!("to write the text `{0}`, quote it: \"{0}\"; to refer to a resource, write `TYPE.NAME`", root.name)
                        } else {
                            "a reference starts with `var.`, `local.`, `module.`, `data.` or a resource `TYPE.NAME`".into()
                        }
                    });
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::UnknownReference,
                            format!("unknown name `{}`", root.name),
                        )
                        .with_label(root.span, "not defined")
                        .with_help(help),
                    );
                    return;
                };
                let target = Target::Resource {
                    mode: ResourceMode::Managed,
                    type_name: &root.name,
                    name: &name.name,
                };
                self.push_resource(target, span_to(0), steps, 1);
            }
        }
    }
}
