//! The front half of every command: read a configuration directory, gather
//! variable values (`-var`, `-var-file`, `INFRA_VAR_*`), and evaluate it.
//! `validate` stops here; `plan` and `apply` go on from the result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::config::{ModuleConfig, load_root, read_and_parse};
use crate::deploy::Deployments;
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::eval::{
    EvaluatedModule, InstancePlanner, ProvidedValue, RootVariables, SchemaCatalog, TypeConstraint,
    Value, VariableOrigin, evaluate_focused, evaluate_standalone_block,
};
use crate::syntax::{Item, SourceMap, parse_expression};

/// Where the configuration is and what the user set from outside.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub dir: PathBuf,
    /// Prefix for file names in diagnostics (what the user typed after `-C`).
    pub display_dir: PathBuf,
    /// `-var NAME=VALUE`, in order.
    pub vars: Vec<String>,
    /// `-var-file FILE`, in order.
    pub var_files: Vec<PathBuf>,
    /// `INFRA_VAR_NAME=VALUE` pairs from the environment, prefix removed.
    pub env_vars: Vec<(String, String)>,
    /// Values recorded in a saved plan: they win over all the others.
    pub saved_values: Vec<(String, Value)>,
    /// Resource schemas to check resource blocks against (from the
    /// providers; empty until the engine supplies them).
    pub schemas: std::sync::Arc<SchemaCatalog>,
}

impl CheckOptions {
    /// Reads `INFRA_VAR_*` from this process's environment.
    pub fn with_process_env(mut self) -> CheckOptions {
        self.env_vars = std::env::vars()
            .filter_map(|(key, value)| {
                key.strip_prefix("INFRA_VAR_")
                    .map(|name| (name.to_string(), value))
            })
            .collect();
        self.env_vars.sort();
        self
    }
}

pub struct Checked {
    pub sources: SourceMap,
    pub config: Option<ModuleConfig>,
    /// The root variables it was evaluated with (apply evaluates again).
    pub variables: RootVariables,
    pub evaluated: Option<EvaluatedModule>,
    /// Its `deployment` blocks, read (see [`crate::deploy`]).
    pub deployments: Deployments,
    pub diagnostics: Diagnostics,
}

pub fn check(options: &CheckOptions) -> Checked {
    check_with_planner(options, None)
}

/// [`check`], with a planner that tells evaluation what each resource
/// instance will look like after apply (see [`InstancePlanner`]).
pub fn check_with_planner(
    options: &CheckOptions,
    planner: Option<&dyn InstancePlanner>,
) -> Checked {
    evaluate(load(options), options, planner)
}

/// A configuration read and its variables gathered, not yet evaluated:
/// what a command needs before it can find the state (from the backend).
pub struct Loaded {
    pub sources: SourceMap,
    pub config: Option<ModuleConfig>,
    pub variables: RootVariables,
    pub diagnostics: Diagnostics,
}

/// Reads the configuration and gathers its variables.
pub fn load(options: &CheckOptions) -> Loaded {
    let mut sources = SourceMap::new();
    let mut diagnostics = Diagnostics::new();
    let config = load_root(
        &options.dir,
        &options.display_dir,
        &mut sources,
        &mut diagnostics,
    );
    let variables = match &config {
        Some(config) => gather_variables(config, options, &mut sources, &mut diagnostics),
        None => RootVariables::default(),
    };
    Loaded {
        sources,
        config,
        variables,
        diagnostics,
    }
}

/// Evaluates a configuration (only what `focus` needs when there is one:
/// see [`evaluate_focused`]) and reads its `deployment` blocks
/// ([`crate::deploy::lower`]): the one way the engine evaluates.
pub fn evaluate_with_deployments(
    root: &ModuleConfig,
    variables: &RootVariables,
    schemas: &SchemaCatalog,
    planner: Option<&dyn InstancePlanner>,
    sources: &SourceMap,
    focus: Option<&BTreeSet<String>>,
    diagnostics: &mut Diagnostics,
) -> (EvaluatedModule, Deployments) {
    let mut evaluated = evaluate_focused(
        root,
        variables,
        schemas,
        planner,
        sources,
        focus,
        diagnostics,
    );
    let deployments = crate::deploy::lower(&mut evaluated, root, diagnostics);
    (evaluated, deployments)
}

/// Evaluates a loaded configuration.
pub fn evaluate(
    loaded: Loaded,
    options: &CheckOptions,
    planner: Option<&dyn InstancePlanner>,
) -> Checked {
    let Loaded {
        sources,
        config,
        variables,
        mut diagnostics,
    } = loaded;
    let (evaluated, deployments) = match config.as_ref() {
        Some(config) => {
            let (evaluated, deployments) = evaluate_with_deployments(
                config,
                &variables,
                &options.schemas,
                planner,
                &sources,
                None,
                &mut diagnostics,
            );
            (Some(evaluated), deployments)
        }
        None => (None, Deployments::new()),
    };
    diagnostics.sort();
    Checked {
        sources,
        config,
        variables,
        evaluated,
        deployments,
        diagnostics,
    }
}

impl Loaded {
    /// The root module's backend: its kind and settings. A backend written
    /// with values that refer to nothing (the usual case) is read on its
    /// own; otherwise the configuration is evaluated to find it.
    pub fn backend(&self, options: &CheckOptions) -> Option<(String, Value)> {
        let config = self.config.as_ref()?;
        let declared = config.declarations.backend.as_ref()?;
        if let Some(settings) = evaluate_standalone_block(&declared.block, &config.dir) {
            return Some((declared.kind.value.clone(), settings));
        }
        self.evaluate_without_state(config, options).backend
    }

    /// An evaluation only to read settings from (its problems are reported
    /// by the real one).
    fn evaluate_without_state(
        &self,
        config: &ModuleConfig,
        options: &CheckOptions,
    ) -> EvaluatedModule {
        let mut diagnostics = Diagnostics::new();
        evaluate_with_deployments(
            config,
            &self.variables,
            &options.schemas,
            None,
            &self.sources,
            None,
            &mut diagnostics,
        )
        .0
    }

    /// The root module's `provider NAME { … }` settings, to configure the
    /// providers before refresh. Blocks of literals are read on their own;
    /// otherwise the configuration is evaluated (without a state) to find
    /// them.
    pub fn provider_settings(&self, options: &CheckOptions) -> Vec<(String, Value)> {
        let Some(config) = self.config.as_ref() else {
            return Vec::new();
        };
        let standalone: Option<Vec<(String, Value)>> = config
            .declarations
            .providers
            .iter()
            .map(|p| {
                evaluate_standalone_block(&p.block, &config.dir)
                    .map(|settings| (p.name.value.clone(), settings))
            })
            .collect();
        if let Some(settings) = standalone {
            return settings;
        }
        self.evaluate_without_state(config, options).providers
    }
}

/// Merges variable values by precedence: environment, then variable files
/// in order, then `-var` in order (later wins).
fn gather_variables(
    config: &ModuleConfig,
    options: &CheckOptions,
    sources: &mut SourceMap,
    diagnostics: &mut Diagnostics,
) -> RootVariables {
    let declared = &config.declarations.variables;
    let type_of = |name: &str| -> TypeConstraint {
        declared
            .get(name)
            .and_then(|v| v.type_expr.as_ref())
            .and_then(|e| TypeConstraint::from_expr(e).ok())
            .unwrap_or(TypeConstraint::Any)
    };
    let mut values: BTreeMap<String, (VariableOrigin, ProvidedValue)> = BTreeMap::new();
    let text_value = |name: &str,
                      text: &str,
                      label: String,
                      sources: &mut SourceMap,
                      diagnostics: &mut Diagnostics|
     -> Option<ProvidedValue> {
        let constraint = type_of(name);
        // Untyped values are strings unless written as a list or object.
        let looks_structured = text.trim_start().starts_with(['[', '{']);
        if !constraint.is_complex() || (constraint == TypeConstraint::Any && !looks_structured) {
            return Some(ProvidedValue::Text(text.to_string()));
        }
        let id = sources.add(label, PathBuf::new(), text.to_string());
        match parse_expression(id, &sources.file(id).text) {
            Ok(expr) => Some(ProvidedValue::Expr(expr)),
            // `any` accepts plain text as a string.
            Err(_) if constraint == TypeConstraint::Any => {
                Some(ProvidedValue::Text(text.to_string()))
            }
            Err(diagnostic) => {
                diagnostics.push(diagnostic.with_help(format!("`{name}` is a `{constraint}`: write the value in infra syntax, e.g. '[\"a\", \"b\"]' or '{{ key = \"value\" }}'")));
                None
            }
        }
    };
    for (name, text) in &options.env_vars {
        if !declared.contains_key(name) {
            continue;
        }
        if let Some(value) = text_value(
            name,
            text,
            format!("INFRA_VAR_{name}"),
            sources,
            diagnostics,
        ) {
            values.insert(name.clone(), (VariableOrigin::Environment, value));
        }
    }
    for path in &options.var_files {
        let Some((_, file)) =
            read_and_parse(path, path.display().to_string(), sources, diagnostics)
        else {
            continue;
        };
        for item in file.body.items {
            match item {
                Item::Attribute(attribute) => {
                    values.insert(
                        attribute.name.name.clone(),
                        (
                            VariableOrigin::File(attribute.name.span),
                            ProvidedValue::Expr(attribute.value),
                        ),
                    );
                }
                Item::Block(block) => diagnostics.push(
                    Diagnostic::error(
                        Code::VarFile,
                        "a variable file holds only `name = value` lines",
                    )
                    .with_label(block.header_span, "a block is not allowed here")
                    .with_help("write each variable as `name = value`"),
                ),
            }
        }
    }
    for assignment in &options.vars {
        let Some((name, text)) = assignment.split_once('=') else {
            diagnostics.push(
                Diagnostic::error(
                    Code::VarSyntax,
                    format!("`-var {assignment}` is not NAME=VALUE"),
                )
                .with_help(format!("write `-var {assignment}=VALUE`")),
            );
            continue;
        };
        let name = name.trim();
        if let Some(value) = text_value(name, text, format!("-var {name}"), sources, diagnostics) {
            values.insert(name.to_string(), (VariableOrigin::CommandLine, value));
        }
    }
    for (name, value) in &options.saved_values {
        values.insert(
            name.clone(),
            (
                VariableOrigin::SavedPlan,
                ProvidedValue::Value(value.clone()),
            ),
        );
    }
    RootVariables { values }
}
