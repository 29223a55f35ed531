//! The declarations of one module, checked for shape: which blocks exist,
//! their labels, their arguments, and no duplicates. Expressions stay
//! unevaluated here; `eval/` gives them values.

use std::collections::BTreeMap;
use std::fmt;

use crate::diagnostics::{Code, Diagnostic, Diagnostics, code_list, did_you_mean};
use crate::syntax::{Attribute, Block, Expr, ExprKind, File, Ident, Item, Label, Span};

/// Managed resources (`resource`) and data sources (`data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceMode {
    Managed,
    Data,
}

/// `aws_vpc.main` or `data.aws_ami.ubuntu`, without an instance key. The
/// names are shared (`Arc<str>`): ids are cloned into graphs, references
/// and every instance, and a clone should not allocate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub mode: ResourceMode,
    pub type_name: std::sync::Arc<str>,
    pub name: std::sync::Arc<str>,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mode == ResourceMode::Data {
            f.write_str("data.")?;
        }
        write!(f, "{}.{}", self.type_name, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct VariableDecl {
    pub name: Ident,
    pub type_expr: Option<Expr>,
    pub default: Option<Expr>,
    pub description: Option<String>,
    pub sensitive: bool,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct LocalDecl {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Debug, Clone)]
pub struct ProviderDecl {
    pub name: Label,
    pub block: Block,
}

#[derive(Debug, Clone)]
pub struct BackendDecl {
    pub kind: Label,
    pub block: Block,
}

#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub create_before_destroy: bool,
    pub prevent_destroy: bool,
    /// Attribute names whose changes are ignored.
    pub ignore_changes: Vec<Ident>,
}

#[derive(Debug, Clone)]
pub struct ResourceDecl {
    pub id: ResourceId,
    pub type_label: Label,
    pub name_label: Label,
    pub count: Option<Expr>,
    pub for_each: Option<Expr>,
    pub depends_on: Vec<Expr>,
    pub provider: Option<Expr>,
    pub lifecycle: Lifecycle,
    /// Arguments for the provider: attributes other than the meta-arguments.
    pub arguments: Vec<Attribute>,
    /// Nested argument blocks (e.g. `ingress { … }`), not `lifecycle`.
    pub nested_blocks: Vec<Block>,
    pub span: Span,
    pub header_span: Span,
}

#[derive(Debug, Clone)]
pub struct OutputDecl {
    pub name: Ident,
    pub value: Option<Expr>,
    pub sensitive: bool,
    pub description: Option<String>,
    pub depends_on: Vec<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ModuleCallDecl {
    pub name: Ident,
    pub source: String,
    pub source_span: Span,
    pub inputs: Vec<Attribute>,
    pub depends_on: Vec<Expr>,
    /// One module instance per index (`module.net[0]`) or per key
    /// (`module.net["a"]`).
    pub count: Option<Expr>,
    pub for_each: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct DeploymentDecl {
    pub name: Ident,
    pub block: Block,
}

/// Everything declared in one module directory.
#[derive(Debug, Clone, Default)]
pub struct ModuleDeclarations {
    pub variables: BTreeMap<String, VariableDecl>,
    pub locals: BTreeMap<String, LocalDecl>,
    pub providers: Vec<ProviderDecl>,
    pub backend: Option<BackendDecl>,
    pub resources: BTreeMap<ResourceId, ResourceDecl>,
    pub outputs: BTreeMap<String, OutputDecl>,
    pub module_calls: BTreeMap<String, ModuleCallDecl>,
    pub deployments: BTreeMap<String, DeploymentDecl>,
}

pub const BLOCK_KINDS: &[&str] = &[
    "backend",
    "data",
    "deployment",
    "locals",
    "module",
    "output",
    "provider",
    "resource",
    "variable",
];

fn duplicate(kind: &str, name: &str, first: Span, second: Span) -> Diagnostic {
    Diagnostic::error(Code::Duplicate, format!("duplicate {kind} `{name}`"))
        .with_label(second, format!("`{name}` declared again here"))
        .with_label(first, "first declared here")
        .with_help(format!(
            "rename one of them or remove the duplicate; {kind} names must be unique in a module"
        ))
}

fn unknown_attribute(block_kind: &str, attribute: &Attribute, allowed: &[&str]) -> Diagnostic {
    let name = &attribute.name.name;
    Diagnostic::error(
        Code::UnknownArgument,
        format!("unknown argument `{name}` in a `{block_kind}` block"),
    )
    .with_label(attribute.name.span, "not an argument of this block")
    .with_help(
        did_you_mean(name, allowed.iter().copied()).unwrap_or_else(|| {
            format!("the arguments of `{block_kind}` are {}", code_list(allowed))
        }),
    )
}

fn unexpected_block(block_kind: &str, nested: &Block) -> Diagnostic {
    Diagnostic::error(
        Code::UnexpectedBlock,
        format!(
            "unexpected block `{}` in a `{block_kind}` block",
            nested.kind.name
        ),
    )
    .with_label(nested.header_span, "not allowed here")
    .with_help(format!(
        "`{block_kind}` blocks take only attributes; remove this block"
    ))
}

/// The literal string value of an attribute, or a diagnostic.
fn literal_string(attribute: &Attribute, diagnostics: &mut Diagnostics) -> Option<String> {
    if let ExprKind::Template(parts) = &attribute.value.kind {
        let mut text = String::new();
        let mut literal = true;
        for part in parts {
            match part {
                crate::syntax::TemplatePart::Literal(piece) => text.push_str(piece),
                _ => literal = false,
            }
        }
        if literal {
            return Some(text);
        }
    }
    diagnostics.push(
        Diagnostic::error(
            Code::TypeMismatch,
            format!("`{}` must be a literal string", attribute.name.name),
        )
        .with_label(attribute.value.span, "not a literal string")
        .with_help("write a plain quoted string; references are not allowed here"),
    );
    None
}

fn literal_bool(attribute: &Attribute, diagnostics: &mut Diagnostics) -> bool {
    match attribute.value.kind {
        ExprKind::Bool(flag) => flag,
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("`{}` must be `true` or `false`", attribute.name.name),
                )
                .with_label(attribute.value.span, "not a literal bool")
                .with_help("write `true` or `false`; references are not allowed here"),
            );
            false
        }
    }
}

/// `depends_on = [a.b, c.d]`: the list of references.
fn reference_list(attribute: &Attribute, diagnostics: &mut Diagnostics) -> Vec<Expr> {
    match &attribute.value.kind {
        ExprKind::List(items) => {
            let mut references = Vec::new();
            for item in items {
                if matches!(
                    item.kind,
                    ExprKind::Traversal { .. } | ExprKind::Variable(_)
                ) {
                    references.push(item.clone());
                } else {
                    diagnostics.push(
                        Diagnostic::error(Code::TypeMismatch, format!("`{}` takes references only", attribute.name.name))
                            .with_label(item.span, "not a reference")
                            .with_help("list resources or modules by name, e.g. [aws_vpc.main, module.network]"),
                    );
                }
            }
            references
        }
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("`{}` must be a list of references", attribute.name.name),
                )
                .with_label(attribute.value.span, "not a list")
                .with_help("write a list, e.g. [aws_vpc.main]"),
            );
            Vec::new()
        }
    }
}

/// Checks that a block has exactly the labels its kind needs.
fn expect_labels(block: &Block, names: &[&str], diagnostics: &mut Diagnostics) -> bool {
    if block.labels.len() == names.len() {
        return true;
    }
    let kind = &block.kind.name;
    let usage = std::iter::once(kind.clone())
        .chain(names.iter().map(|n| n.to_uppercase()))
        .collect::<Vec<_>>()
        .join(" ");
    let message = if block.labels.len() < names.len() {
        format!("missing {} for a `{kind}` block", names[block.labels.len()])
    } else {
        format!("too many labels for a `{kind}` block")
    };
    diagnostics.push(
        Diagnostic::error(Code::BlockLabels, message)
            .with_label(
                block.header_span,
                format!("expected {} label(s)", names.len()),
            )
            .with_help(format!("write `{usage} {{ … }}`")),
    );
    false
}

impl ModuleDeclarations {
    /// Collects the declarations of a module's files, reporting every shape
    /// error (and carrying on past each).
    pub fn from_files(
        files: impl IntoIterator<Item = File>,
        diagnostics: &mut Diagnostics,
    ) -> ModuleDeclarations {
        let mut module = ModuleDeclarations::default();
        for file in files {
            for item in file.body.items {
                match item {
                    Item::Attribute(attribute) => diagnostics.push(
                        Diagnostic::error(
                            Code::UnexpectedAttribute,
                            format!("attribute `{}` outside a block", attribute.name.name),
                        )
                        .with_label(attribute.name.span, "top-level attributes are not allowed")
                        .with_help("put it inside a block, e.g. `locals { … }`"),
                    ),
                    Item::Block(block) => module.add_block(block, diagnostics),
                }
            }
        }
        module
    }

    fn add_block(&mut self, block: Block, diagnostics: &mut Diagnostics) {
        match block.kind.name.as_str() {
            "variable" => self.add_variable(&block, diagnostics),
            "locals" => self.add_locals(&block, diagnostics),
            "provider" => {
                if expect_labels(&block, &["provider name"], diagnostics) {
                    self.providers.push(ProviderDecl {
                        name: block.labels[0].clone(),
                        block,
                    });
                }
            }
            "backend" => {
                if !expect_labels(&block, &["backend kind"], diagnostics) {
                    return;
                }
                if let Some(previous) = &self.backend {
                    diagnostics.push(
                        Diagnostic::error(Code::Duplicate, "duplicate `backend` block")
                            .with_label(block.header_span, "second backend here")
                            .with_label(previous.block.header_span, "first backend here")
                            .with_help("a configuration has one backend; remove one of them"),
                    );
                    return;
                }
                let kind = block.labels[0].clone();
                if !["local", "s3"].contains(&kind.value.as_str()) {
                    diagnostics.push(
                        Diagnostic::error(
                            Code::UnknownBackend,
                            format!("unknown backend `{}`", kind.value),
                        )
                        .with_label(kind.span, "not a backend")
                        .with_help(
                            did_you_mean(&kind.value, ["local", "s3"])
                                .unwrap_or_else(|| "the backends are `local` and `s3`".into()),
                        ),
                    );
                }
                self.backend = Some(BackendDecl { kind, block });
            }
            "resource" => self.add_resource(block, ResourceMode::Managed, diagnostics),
            "data" => self.add_resource(block, ResourceMode::Data, diagnostics),
            "output" => self.add_output(&block, diagnostics),
            "module" => self.add_module_call(&block, diagnostics),
            "deployment" => {
                if !expect_labels(&block, &["deployment name"], diagnostics) {
                    return;
                }
                let name = label_ident(&block.labels[0]);
                if let Some(previous) = self.deployments.get(&name.name) {
                    diagnostics.push(duplicate(
                        "deployment",
                        &name.name,
                        previous.name.span,
                        name.span,
                    ));
                    return;
                }
                self.deployments
                    .insert(name.name.clone(), DeploymentDecl { name, block });
            }
            other => diagnostics.push(
                Diagnostic::error(Code::UnknownBlock, format!("unknown block type `{other}`"))
                    .with_label(block.kind.span, "not a block type")
                    .with_help(
                        did_you_mean(other, BLOCK_KINDS.iter().copied()).unwrap_or_else(|| {
                            format!("the block types are {}", code_list(BLOCK_KINDS))
                        }),
                    ),
            ),
        }
    }

    fn add_variable(&mut self, block: &Block, diagnostics: &mut Diagnostics) {
        if !expect_labels(block, &["variable name"], diagnostics) {
            return;
        }
        let name = label_ident(&block.labels[0]);
        if [
            "count", "each", "path", "var", "local", "module", "data", "self",
        ]
        .contains(&name.name.as_str())
        {
            diagnostics.push(
                Diagnostic::error(
                    Code::ReservedName,
                    format!("`{}` is a reserved name", name.name),
                )
                .with_label(name.span, "reserved")
                .with_help("choose another name for the variable"),
            );
        }
        let mut variable = VariableDecl {
            name: name.clone(),
            type_expr: None,
            default: None,
            description: None,
            sensitive: false,
            span: block.header_span,
        };
        const ALLOWED: &[&str] = &["type", "default", "description", "sensitive"];
        for attribute in block.attributes() {
            match attribute.name.name.as_str() {
                "type" => variable.type_expr = Some(attribute.value.clone()),
                "default" => variable.default = Some(attribute.value.clone()),
                "description" => variable.description = literal_string(attribute, diagnostics),
                "sensitive" => variable.sensitive = literal_bool(attribute, diagnostics),
                _ => diagnostics.push(unknown_attribute("variable", attribute, ALLOWED)),
            }
        }
        for nested in block.blocks() {
            diagnostics.push(unexpected_block("variable", nested));
        }
        if let Some(previous) = self.variables.get(&name.name) {
            diagnostics.push(duplicate(
                "variable",
                &name.name,
                previous.name.span,
                name.span,
            ));
            return;
        }
        self.variables.insert(name.name.clone(), variable);
    }

    fn add_locals(&mut self, block: &Block, diagnostics: &mut Diagnostics) {
        expect_labels(block, &[], diagnostics);
        for attribute in block.attributes() {
            let name = attribute.name.clone();
            if let Some(previous) = self.locals.get(&name.name) {
                diagnostics.push(duplicate(
                    "local value",
                    &name.name,
                    previous.name.span,
                    name.span,
                ));
                continue;
            }
            self.locals.insert(
                name.name.clone(),
                LocalDecl {
                    name,
                    value: attribute.value.clone(),
                },
            );
        }
        for nested in block.blocks() {
            diagnostics.push(unexpected_block("locals", nested));
        }
    }

    fn add_resource(&mut self, block: Block, mode: ResourceMode, diagnostics: &mut Diagnostics) {
        if !expect_labels(&block, &["resource type", "resource name"], diagnostics) {
            return;
        }
        let Block {
            kind,
            labels,
            body,
            span,
            header_span,
        } = block;
        let kind = &kind.name;
        let mut labels = labels.into_iter();
        let (Some(type_label), Some(name_label)) = (labels.next(), labels.next()) else {
            return;
        };
        let id = ResourceId {
            mode,
            type_name: type_label.value.as_str().into(),
            name: name_label.value.as_str().into(),
        };
        let mut resource = ResourceDecl {
            id: id.clone(),
            type_label,
            name_label,
            count: None,
            for_each: None,
            depends_on: Vec::new(),
            provider: None,
            lifecycle: Lifecycle::default(),
            arguments: Vec::new(),
            nested_blocks: Vec::new(),
            span,
            header_span,
        };
        // Duplicates are found before the attributes are moved out; blocks
        // have few attributes, so a quadratic scan beats building a map.
        let first_of_duplicate: Vec<Option<Span>> = body
            .items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Item::Attribute(attribute) => {
                    body.items[..index]
                        .iter()
                        .find_map(|earlier| match earlier {
                            Item::Attribute(earlier)
                                if earlier.name.name == attribute.name.name =>
                            {
                                Some(earlier.name.span)
                            }
                            _ => None,
                        })
                }
                Item::Block(_) => None,
            })
            .collect();
        let mut nested_blocks = Vec::new();
        for (item, first) in body.items.into_iter().zip(first_of_duplicate) {
            let attribute = match item {
                Item::Attribute(attribute) => attribute,
                Item::Block(nested) => {
                    nested_blocks.push(nested);
                    continue;
                }
            };
            let name = attribute.name.name.as_str();
            if let Some(first) = first {
                diagnostics.push(
                    Diagnostic::error(Code::Duplicate, format!("duplicate argument `{name}`"))
                        .with_label(attribute.name.span, "set again here")
                        .with_label(first, "first set here")
                        .with_help("an argument may be set once per block; remove one of them"),
                );
                continue;
            }
            match name {
                "count" => resource.count = Some(attribute.value),
                "for_each" => resource.for_each = Some(attribute.value),
                "depends_on" => resource.depends_on = reference_list(&attribute, diagnostics),
                "provider" => resource.provider = Some(attribute.value),
                _ => resource.arguments.push(attribute),
            }
        }
        if let (Some(count), Some(for_each)) = (&resource.count, &resource.for_each) {
            diagnostics.push(
                Diagnostic::error(
                    Code::CountAndForEach,
                    format!("`{id}` sets both `count` and `for_each`"),
                )
                .with_label(for_each.span, "`for_each` here")
                .with_label(count.span, "`count` here")
                .with_help(
                    "use one of them: `count` for N alike instances, `for_each` for one per key",
                ),
            );
        }
        for nested in nested_blocks {
            if nested.kind.name == "lifecycle" {
                if mode == ResourceMode::Data {
                    diagnostics.push(unexpected_block(kind, &nested));
                } else {
                    resource.lifecycle = lifecycle(&nested, diagnostics);
                }
            } else {
                resource.nested_blocks.push(nested);
            }
        }
        if let Some(previous) = self.resources.get(&id) {
            diagnostics.push(duplicate(
                kind,
                &id.to_string(),
                previous.header_span,
                block.header_span,
            ));
            return;
        }
        self.resources.insert(id, resource);
    }

    fn add_output(&mut self, block: &Block, diagnostics: &mut Diagnostics) {
        if !expect_labels(block, &["output name"], diagnostics) {
            return;
        }
        let name = label_ident(&block.labels[0]);
        let mut output = OutputDecl {
            name: name.clone(),
            value: None,
            sensitive: false,
            description: None,
            depends_on: Vec::new(),
            span: block.header_span,
        };
        const ALLOWED: &[&str] = &["value", "sensitive", "description", "depends_on"];
        for attribute in block.attributes() {
            match attribute.name.name.as_str() {
                "value" => output.value = Some(attribute.value.clone()),
                "sensitive" => output.sensitive = literal_bool(attribute, diagnostics),
                "description" => output.description = literal_string(attribute, diagnostics),
                "depends_on" => output.depends_on = reference_list(attribute, diagnostics),
                _ => diagnostics.push(unknown_attribute("output", attribute, ALLOWED)),
            }
        }
        for nested in block.blocks() {
            diagnostics.push(unexpected_block("output", nested));
        }
        if output.value.is_none() {
            diagnostics.push(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("output `{}` has no `value`", name.name),
                )
                .with_label(block.header_span, "missing `value`")
                .with_help("add `value = …` with what the output should show"),
            );
        }
        if let Some(previous) = self.outputs.get(&name.name) {
            diagnostics.push(duplicate(
                "output",
                &name.name,
                previous.name.span,
                name.span,
            ));
            return;
        }
        self.outputs.insert(name.name.clone(), output);
    }

    fn add_module_call(&mut self, block: &Block, diagnostics: &mut Diagnostics) {
        if !expect_labels(block, &["module name"], diagnostics) {
            return;
        }
        let name = label_ident(&block.labels[0]);
        let mut source = None;
        let mut inputs = Vec::new();
        let mut depends_on = Vec::new();
        let (mut count, mut for_each) = (None, None);
        for attribute in block.attributes() {
            match attribute.name.name.as_str() {
                "source" => {
                    source =
                        literal_string(attribute, diagnostics).map(|s| (s, attribute.value.span));
                }
                "depends_on" => depends_on = reference_list(attribute, diagnostics),
                "count" => count = Some(attribute.value.clone()),
                "for_each" => for_each = Some(attribute.value.clone()),
                _ => inputs.push(attribute.clone()),
            }
        }
        if let (Some(count), Some(for_each)) = (&count, &for_each) {
            diagnostics.push(
                Diagnostic::error(
                    Code::CountAndForEach,
                    format!("`module.{}` sets both `count` and `for_each`", name.name),
                )
                .with_label(for_each.span, "`for_each` here")
                .with_label(count.span, "`count` here")
                .with_help(
                    "use one of them: `count` for N alike instances, `for_each` for one per key",
                ),
            );
        }
        for nested in block.blocks() {
            diagnostics.push(unexpected_block("module", nested));
        }
        let Some((source, source_span)) = source else {
            diagnostics.push(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("module `{}` has no `source`", name.name),
                )
                .with_label(block.header_span, "missing `source`")
                .with_help("add `source = \"./path/to/module\"`"),
            );
            return;
        };
        if let Some(previous) = self.module_calls.get(&name.name) {
            diagnostics.push(duplicate(
                "module",
                &name.name,
                previous.name.span,
                name.span,
            ));
            return;
        }
        self.module_calls.insert(
            name.name.clone(),
            ModuleCallDecl {
                name,
                source,
                source_span,
                inputs,
                depends_on,
                count,
                for_each,
                span: block.header_span,
            },
        );
    }
}

fn label_ident(label: &Label) -> Ident {
    Ident {
        name: label.value.clone(),
        span: label.span,
    }
}

fn lifecycle(block: &Block, diagnostics: &mut Diagnostics) -> Lifecycle {
    let mut lifecycle = Lifecycle::default();
    const ALLOWED: &[&str] = &["create_before_destroy", "prevent_destroy", "ignore_changes"];
    for attribute in block.attributes() {
        match attribute.name.name.as_str() {
            "create_before_destroy" => {
                lifecycle.create_before_destroy = literal_bool(attribute, diagnostics);
            }
            "prevent_destroy" => lifecycle.prevent_destroy = literal_bool(attribute, diagnostics),
            "ignore_changes" => {
                match &attribute.value.kind {
                    ExprKind::List(items) => {
                        for item in items {
                            match &item.kind {
                            ExprKind::Variable(ident) => lifecycle.ignore_changes.push(ident.clone()),
                            _ => diagnostics.push(
                                Diagnostic::error(Code::TypeMismatch, "`ignore_changes` takes attribute names")
                                    .with_label(item.span, "not an attribute name")
                                    .with_help("list attribute names without quotes, e.g. [tags, user_data]"),
                            ),
                        }
                        }
                    }
                    _ => diagnostics.push(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            "`ignore_changes` must be a list of attribute names",
                        )
                        .with_label(attribute.value.span, "not a list")
                        .with_help("write e.g. `ignore_changes = [tags]`"),
                    ),
                }
            }
            _ => diagnostics.push(unknown_attribute("lifecycle", attribute, ALLOWED)),
        }
    }
    for nested in block.blocks() {
        diagnostics.push(unexpected_block("lifecycle", nested));
    }
    lifecycle
}
