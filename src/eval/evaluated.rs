//! The result of evaluation: every resource instance with its arguments
//! (unknown where only apply will know), outputs, and child modules. This is
//! what the engine turns into a resource graph and a plan.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::{Lifecycle, ResourceId, ResourceMode};
use crate::syntax::Span;

use super::value::{Value, quote};

/// `value` as `--show` prints it: the parts `marks` name redacted.
fn shown_marked(value: &Value, marks: Option<&super::marks::Marks>) -> String {
    match marks {
        None => value.to_string(),
        Some(marks) => {
            super::marks::shown_redacted(value, "value", &marks.attribute_paths("value"))
        }
    }
}

/// Which instance of a resource: none (no `count`/`for_each`), `[0]`, `["a"]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstanceKey {
    None,
    Index(usize),
    Key(String),
}

impl InstanceKey {
    pub fn suffix(&self) -> String {
        match self {
            InstanceKey::None => String::new(),
            InstanceKey::Index(index) => format!("[{index}]"),
            InstanceKey::Key(key) => format!("[{}]", quote(key)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResourceInstance {
    pub id: ResourceId,
    pub key: InstanceKey,
    /// Full address, e.g. `module.net.aws_subnet.public[0]`.
    pub address: String,
    /// Arguments as evaluated; nested blocks are lists of objects.
    pub arguments: std::sync::Arc<BTreeMap<String, Value>>,
    /// Addresses (without instance keys) of what this resource refers to or
    /// `depends_on`: resources, data sources and modules of the same module.
    pub dependencies: std::sync::Arc<[String]>,
    /// Paths of the sensitive parts of its attributes (`password`,
    /// `template.env.DB_PASSWORD`; see [`super::marks::SensitivePath`]):
    /// marked so by the schema, or computed from a sensitive value.
    pub sensitive: std::sync::Arc<[String]>,
    pub lifecycle: Lifecycle,
    /// The `kind "type" "name"` header of the block, for diagnostics.
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct OutputValue {
    pub value: Value,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Default)]
pub struct EvaluatedModule {
    pub path: Vec<String>,
    pub variables: BTreeMap<String, Value>,
    pub sensitive_variables: Vec<String>,
    pub locals: BTreeMap<String, Value>,
    pub resources: Vec<ResourceInstance>,
    pub outputs: BTreeMap<String, OutputValue>,
    /// The sensitive parts of outputs that have any, for the calling
    /// module's references (`module.db.settings.password`).
    pub output_marks: BTreeMap<String, super::marks::Marks>,
    /// The sensitive parts of locals and deployments that have any (so
    /// that `validate --show` hides them).
    pub local_marks: BTreeMap<String, super::marks::Marks>,
    pub deployment_marks: BTreeMap<String, super::marks::Marks>,
    pub deployments: BTreeMap<String, Value>,
    pub providers: Vec<(String, Value)>,
    pub backend: Option<(String, Value)>,
    pub children: BTreeMap<String, EvaluatedModule>,
}

impl EvaluatedModule {
    /// Every resource instance of this module and its children.
    pub fn all_resources(&self) -> Vec<&ResourceInstance> {
        let mut all: Vec<&ResourceInstance> = self.resources.iter().collect();
        for child in self.children.values() {
            all.extend(child.all_resources());
        }
        all
    }

    /// A readable, deterministic rendering (used by golden tests).
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        let title = if self.path.is_empty() {
            "root".to_string()
        } else {
            self.path
                .iter()
                .map(|p| format!("module.{p}"))
                .collect::<Vec<_>>()
                .join(".")
        };
        let _ = writeln!(out, "# {title}");
        if let Some((kind, settings)) = &self.backend {
            let _ = writeln!(out, "backend {kind} = {settings}");
        }
        for (name, settings) in &self.providers {
            let _ = writeln!(out, "provider {name} = {settings}");
        }
        for (name, value) in &self.variables {
            if self.sensitive_variables.contains(name) {
                let _ = writeln!(out, "var.{name} = (sensitive)");
            } else {
                let _ = writeln!(out, "var.{name} = {value}");
            }
        }
        for (name, value) in &self.locals {
            let shown = shown_marked(value, self.local_marks.get(name));
            let _ = writeln!(out, "local.{name} = {shown}");
        }
        for resource in &self.resources {
            let mode = if resource.id.mode == ResourceMode::Data {
                "data source"
            } else {
                "resource"
            };
            let _ = writeln!(out, "{mode} {}", resource.address);
            let width = resource
                .arguments
                .keys()
                .map(|k| k.len())
                .max()
                .unwrap_or(0);
            for (name, value) in resource.arguments.iter() {
                let shown = super::marks::shown_redacted(value, name, &resource.sensitive);
                let _ = writeln!(out, "  {name:width$} = {shown}");
            }
            if !resource.dependencies.is_empty() {
                let _ = writeln!(out, "  (depends on {})", resource.dependencies.join(", "));
            }
        }
        for (name, value) in &self.deployments {
            let shown = shown_marked(value, self.deployment_marks.get(name));
            let _ = writeln!(out, "deployment.{name} = {shown}");
        }
        for (name, output) in &self.outputs {
            if output.sensitive {
                let _ = writeln!(out, "output.{name} = (sensitive)");
            } else {
                let _ = writeln!(out, "output.{name} = {}", output.value);
            }
        }
        for child in self.children.values() {
            out.push('\n');
            child.render_into(out);
        }
    }
}
