//! The part `plan`, `apply` and `destroy` share: find the state (and lock
//! it, for the commands that write it), configure the providers, refresh,
//! evaluate against the refreshed state, diff, and apply the plan options
//! (`--destroy`, `--target`, `--replace`). Reports every problem and
//! returns the exit code when the plan cannot be made.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::apply::{ApplyJob, PlannedInstance};
use crate::diagnostics::{Diagnostic, ReportStyle, render_all};
use crate::eval::SchemaCatalog;
use crate::plan::{
    Evaluation, Plan, SAVED_PLAN_FORMAT, SAVED_PLAN_VERSION, SavedPlan, SavedVariable,
    change_lines, check_replacements, configuration_digest, destroy_plan, json_digest, plan_loaded,
    prior_digests, read_data_sources, refine_with_providers, refresh, restrict_to_targets, to_json,
};
use crate::providers::Providers;
use crate::state::{State, StateLock};

/// Options that shape a plan.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanningArgs {
    /// Refresh the state through the providers first
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    pub refresh: bool,
    /// Plan only this resource, instance or module and what it depends on (repeatable)
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Replace this resource even though no attribute forces it (repeatable)
    #[arg(long = "replace", value_name = "ADDR")]
    pub replacements: Vec<String>,
    /// How many provider operations run at once (refresh and apply)
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub parallelism: usize,
    #[command(flatten)]
    pub variables: super::VariableArgs,
    /// Variable values recorded in a saved plan (`infra apply FILE`).
    #[arg(skip)]
    pub saved_values: Vec<(String, crate::eval::Value)>,
}

/// A plan and what it takes to apply it.
pub struct Planned {
    pub plan: Plan,
    /// The state the plan was made against (refreshed).
    pub refreshed: State,
    pub state_path: PathBuf,
    /// Held by `apply` and `destroy` until they finish.
    pub lock: Option<StateLock>,
    pub providers: Providers,
    pub schemas: Arc<SchemaCatalog>,
    pub instances: BTreeMap<String, PlannedInstance>,
    /// The configuration, to evaluate again while applying.
    pub evaluation: Arc<Evaluation>,
    /// What refreshed, and what applies.
    pub runtime: tokio::runtime::Runtime,
    /// Whether the state file existed (a new state gets a new lineage).
    pub state_existed: bool,
    /// The root module's variables, and which are sensitive.
    pub variables: BTreeMap<String, crate::eval::Value>,
    pub sensitive_variables: Vec<String>,
}

impl Planned {
    /// The saved form of this plan (`-out`), or what a saved plan must
    /// equal to be applied.
    pub fn to_saved(&self, args: &PlanningArgs, destroying: bool) -> SavedPlan {
        let variables = self
            .evaluation
            .variables
            .values
            .keys()
            .filter_map(|name| {
                let value = self.variables.get(name)?.to_json();
                let saved = if self.sensitive_variables.contains(name) {
                    SavedVariable::Sha256(json_digest(&value))
                } else {
                    SavedVariable::Value(value)
                };
                Some((name.clone(), saved))
            })
            .collect();
        SavedPlan {
            format: SAVED_PLAN_FORMAT.to_string(),
            version: SAVED_PLAN_VERSION,
            lineage: if self.state_existed {
                self.refreshed.lineage.clone()
            } else {
                String::new()
            },
            configuration: configuration_digest(&self.evaluation.config, &self.evaluation.sources),
            destroy: destroying,
            targets: args.targets.clone(),
            replacements: args.replacements.clone(),
            variables,
            prior: prior_digests(&self.plan, &self.refreshed),
            plan_sha256: json_digest(&to_json(&self.plan, &self.schemas)),
            summary: self.plan.summary(),
            changes: change_lines(&self.plan),
        }
    }
}

/// A configuration loaded, its state found (and locked, if asked) and
/// read, its providers configured: where `plan`, `apply`, `destroy`,
/// `drift` and `import` start.
pub struct Opened {
    pub options: crate::check::CheckOptions,
    pub loaded: crate::check::Loaded,
    pub state_path: PathBuf,
    pub lock: Option<StateLock>,
    pub state: State,
    pub state_existed: bool,
    pub providers: Providers,
    /// Problems configuring the providers.
    pub problems: crate::diagnostics::Diagnostics,
    pub runtime: tokio::runtime::Runtime,
}

/// Opens the configuration in `directory` and its state; `lock_for` names
/// the operation that takes the state lock (none for read-only commands).
pub fn open(
    directory: Option<PathBuf>,
    variables: &super::VariableArgs,
    saved_values: &[(String, crate::eval::Value)],
    lock_for: Option<&str>,
    style: ReportStyle,
) -> Result<Opened, ExitCode> {
    let runtime = runtime()?;
    let (dir, display_dir) = super::validate::directories(directory);
    let mut options = variables.check_options(dir.clone(), display_dir);
    options.saved_values = saved_values.to_vec();
    // Parsed once: the backend says where the state is, and the same
    // sources are then evaluated against that state.
    let loaded = crate::check::load(&options);
    let state_path = match super::state_file::path_from_backend(&dir, loaded.backend(&options)) {
        Ok(path) => path,
        Err(message) => {
            eprint!(
                "{}",
                render_all(&loaded.diagnostics, &loaded.sources, style)
            );
            return Err(fail(message));
        }
    };
    let lock = match lock_for {
        Some(operation) => match StateLock::acquire(&state_path, operation) {
            Ok(lock) => {
                if let Some(stale) = &lock.replaced_stale {
                    eprintln!(
                        "note: removed a stale lock of {} (pid {} on {} is gone)",
                        stale.who, stale.pid, stale.host
                    );
                }
                Some(lock)
            }
            Err(error) => return Err(fail(error.to_string())),
        },
        None => None,
    };
    let (state, state_existed) = match crate::state::load(&state_path) {
        Ok(Some(state)) => (state, true),
        Ok(None) => (State::new(crate::state::new_lineage()), false),
        Err(error) => return Err(fail(error.to_string())),
    };
    let providers = crate::providers::builtin();
    let problems =
        runtime.block_on(providers.configure(&loaded.provider_settings(&options), &options.dir));
    Ok(Opened {
        options,
        loaded,
        state_path,
        lock,
        state,
        state_existed,
        providers,
        problems,
        runtime,
    })
}

/// Prints `error: …` and gives exit code 1.
pub fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

/// Plans for `plan` (no lock), `apply` and `destroy` (`lock_for` names the
/// operation that holds the lock).
pub fn make_plan(
    directory: Option<PathBuf>,
    args: &PlanningArgs,
    destroying: bool,
    lock_for: Option<&str>,
    style: ReportStyle,
) -> Result<Planned, ExitCode> {
    let Opened {
        options,
        loaded,
        state_path,
        lock,
        state,
        state_existed,
        providers,
        mut problems,
        runtime,
    } = open(
        directory,
        &args.variables,
        &args.saved_values,
        lock_for,
        style,
    )?;
    let mut refreshed = if args.refresh {
        let (refreshed, diagnostics) =
            runtime.block_on(refresh(&state, &providers, args.parallelism));
        problems.extend(diagnostics);
        refreshed
    } else {
        state.clone()
    };
    problems.extend(runtime.block_on(read_data_sources(
        &loaded,
        &options,
        &mut refreshed,
        &providers,
    )));
    let (mut checked, mut plan) = plan_loaded(loaded, &options, &refreshed, &args.replacements);
    checked.diagnostics.extend(problems);
    if !checked.diagnostics.has_errors() {
        let refined = runtime.block_on(refine_with_providers(&mut plan, &refreshed, &providers));
        checked.diagnostics.extend(refined);
    }
    if let Some(evaluated) = &checked.evaluated {
        if !checked.diagnostics.has_errors() {
            checked
                .diagnostics
                .extend(crate::providers::validate_with_providers(
                    evaluated, &providers,
                ));
        }
        // A plan must be able to apply: every resource needs its provider.
        for instance in evaluated.all_resources() {
            let name = crate::eval::provider_of(&instance.id.type_name);
            if providers.get(name).is_none() {
                checked.diagnostics.push(
                    Diagnostic::error("infra::no_provider", format!("no provider `{name}` in this build for `{}`", instance.address))
                        .with_label(instance.span, "cannot be planned or applied yet")
                        .with_help("the built-in providers are `local`, `random` and `aws`; `infra validate` checks configurations of other providers without them"),
                );
            }
        }
    }
    let mut evaluated = checked.evaluated.take().unwrap_or_default();
    let instances = ApplyJob::instances_of(&evaluated);
    if destroying {
        let (destroy, diagnostics) = destroy_plan(&refreshed, Some(&evaluated));
        plan = destroy;
        checked.diagnostics.extend(diagnostics);
    }
    checked
        .diagnostics
        .extend(check_replacements(&plan, &args.replacements));
    if !args.targets.is_empty() {
        let mut dependencies: BTreeMap<String, Vec<String>> = instances
            .iter()
            .map(|(address, i)| (address.clone(), i.dependencies.clone()))
            .collect();
        // Objects no longer configured depend on what the state says.
        for (address, resource) in &refreshed.resources {
            dependencies
                .entry(address.clone())
                .or_insert_with(|| resource.dependencies.clone());
        }
        checked.diagnostics.extend(restrict_to_targets(
            &mut plan,
            &args.targets,
            &dependencies,
            destroying,
        ));
    }
    checked.diagnostics.sort();
    eprint!(
        "{}",
        render_all(&checked.diagnostics, &checked.sources, style)
    );
    if checked.diagnostics.has_errors() {
        eprintln!(
            "{} error(s); nothing was planned",
            checked.diagnostics.error_count()
        );
        return Err(ExitCode::from(1));
    }
    let Some(config) = checked.config.take() else {
        return Err(fail("no configuration to plan".into()));
    };
    let evaluation = Arc::new(Evaluation {
        config,
        variables: checked.variables,
        sources: checked.sources,
        schemas: options.schemas.clone(),
    });
    Ok(Planned {
        plan,
        refreshed,
        state_path,
        lock,
        providers,
        schemas: options.schemas,
        instances,
        evaluation,
        runtime,
        state_existed,
        variables: std::mem::take(&mut evaluated.variables),
        sensitive_variables: std::mem::take(&mut evaluated.sensitive_variables),
    })
}

/// The runtime apply and plan drive providers on: one thread for the
/// walker and the providers' I/O, a blocking pool for evaluation and
/// state saves.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::from(1)
        })
}
