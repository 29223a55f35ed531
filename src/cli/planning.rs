//! What the commands that read the state share: [`open`] builds the run's
//! provider registry, loads the configuration, resolves its backend once,
//! takes the lock (for the commands that write) and reads the state;
//! [`make_plan`] then runs the engine's [`Planner`] and reports its
//! diagnostics. Returns the exit code when that cannot be done.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::exit;
use crate::check::{CheckOptions, Loaded};
use crate::diagnostics::{ReportStyle, render_all};
use crate::eval::SchemaCatalog;
use crate::events::{Event, Events};
use crate::plan::{
    PlanFailure, PlanOptions, Planned, Planner, SAVED_PLAN_FORMAT, SAVED_PLAN_VERSION, SavedPlan,
    SavedVariable, change_lines, configuration_digest, json_digest, prior_digests, secret_digest,
    to_json,
};
use crate::providers::ProviderRegistry;
use crate::state::journal::PendingCreate;
use crate::state::migration::{self, BackendRecord, check_unmoved};
use crate::state::{Backend, LockGuard, LockWait, State, StateVersion};

/// Options that shape a plan.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanningArgs {
    /// Refresh the state through the providers first
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    pub refresh: bool,
    /// Only bring the state up to date with the real objects (accept the
    /// drift, reviewed); change no object
    #[arg(long, conflicts_with_all = ["targets", "replacements"])]
    pub refresh_only: bool,
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
    pub lock: LockArgs,
    #[command(flatten)]
    pub variables: super::VariableArgs,
    /// Variable values recorded in a saved plan (`infra apply FILE`).
    #[arg(skip)]
    pub saved_values: Vec<(String, crate::eval::Value)>,
}

/// Whether to take the state lock, and how long to wait for it.
#[derive(Debug, Clone, clap::Args)]
pub struct LockArgs {
    /// Take the state lock (`-lock=false`: don't; only when no other run
    /// uses this state)
    #[arg(long = "lock", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub lock: bool,
    /// Wait this long for a state lock another run holds (e.g. `30s`, `5m`)
    #[arg(long = "lock-timeout", default_value = "0s", value_name = "DURATION", value_parser = parse_lock_timeout, global = true)]
    pub lock_timeout: Duration,
}

fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    infra_provider_sdk::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write e.g. `30s`, `5m` or `1m30s`"))
}

impl PlanningArgs {
    fn plan_options(&self, destroy: bool) -> PlanOptions {
        PlanOptions {
            refresh: self.refresh,
            targets: self.targets.clone(),
            replacements: self.replacements.clone(),
            parallelism: self.parallelism,
            destroy,
        }
    }
}

/// A configuration loaded, its backend resolved, its state read (and
/// locked, if asked), its providers built: where `plan`, `apply`,
/// `destroy`, `drift` and `import` start.
pub struct Opened {
    pub options: CheckOptions,
    pub loaded: Loaded,
    pub backend: Arc<dyn Backend>,
    pub lock: Option<LockGuard>,
    pub state: State,
    /// What a save must find in the backend (compare-and-swap).
    pub version: StateVersion,
    /// Creates the journal of an interrupted run left pending.
    pub pending: Vec<PendingCreate>,
    pub providers: ProviderRegistry,
    pub runtime: tokio::runtime::Runtime,
}

/// Opens the configuration in `directory` and its state; `lock_for` names
/// the operation that takes the state lock (none for read-only commands).
pub fn open(
    directory: Option<PathBuf>,
    variables: &super::VariableArgs,
    saved_values: &[(String, crate::eval::Value)],
    lock_for: Option<(&str, &LockArgs)>,
    events: &Events,
    style: ReportStyle,
) -> Result<Opened, ExitCode> {
    super::stop_signals::install();
    let runtime = runtime()?;
    let providers = ProviderRegistry::builtin();
    let (dir, display_dir) = super::validate::directories(directory);
    let mut options = variables.check_options(dir.clone(), display_dir, providers.catalog());
    options.saved_values = saved_values.to_vec();
    // Parsed once: the backend says where the state is, and the same
    // sources are then evaluated against that state.
    let loaded = crate::check::load(&options);
    let declared = loaded.backend(&options);
    let configured = BackendRecord::of(declared.as_ref());
    if let Err(message) = check_unmoved(&dir, &configured) {
        return Err(fail(message));
    }
    let backend = match crate::state::backend::resolve(&dir, declared) {
        Ok(backend) => backend,
        Err(message) => {
            eprint!(
                "{}",
                render_all(&loaded.diagnostics, &loaded.sources, style)
            );
            return Err(fail(message));
        }
    };
    let lock = match lock_for {
        Some((operation, args)) => take_lock(backend.as_ref(), operation, args, events)?,
        None => None,
    };
    // The first run that changes the state records where it is kept, so a
    // later change of the `backend` block is noticed (see `check_unmoved`).
    // (`drift` locks only to read a state no apply is changing.)
    if lock_for.is_some_and(|(operation, _)| operation != "drift")
        && !migration::record_path(&dir).exists()
        && let Err(message) = migration::write_record(&dir, &configured)
    {
        return Err(fail(message));
    }
    let stored = backend.read().map_err(|error| fail(error.to_string()))?;
    if let Some(journal) = &stored.recovery.journal {
        eprintln!(
            "note: an earlier run stopped before saving the state; its journal `{}` restored {} finished change(s), and planning looks for the objects of {} create(s) it had started",
            journal.display(),
            stored.recovery.restored,
            stored.recovery.pending.len()
        );
    }
    let state = stored
        .state
        .unwrap_or_else(|| State::new(crate::state::new_lineage()));
    Ok(Opened {
        options,
        loaded,
        backend,
        lock,
        state,
        version: stored.version,
        pending: stored.recovery.pending,
        providers,
        runtime,
    })
}

/// The configuration's directory and its `backend` block (kind and
/// settings; `None`: none written), read as [`open_backend`] says.
pub fn declared_backend(
    directory: Option<PathBuf>,
    variables: &super::VariableArgs,
    style: ReportStyle,
) -> Result<(PathBuf, Option<(String, crate::eval::Value)>), ExitCode> {
    let (dir, display_dir) = super::validate::directories(directory);
    let options = variables.check_options(dir.clone(), display_dir, Arc::default());
    let loaded = crate::check::load(&options);
    let declared = loaded.backend(&options);
    if declared.is_none() && loaded.diagnostics.has_errors() {
        eprint!(
            "{}",
            render_all(&loaded.diagnostics, &loaded.sources, style)
        );
        return Err(fail(
            "the configuration has errors; fix them so that its state can be found".into(),
        ));
    }
    Ok((dir, declared))
}

/// The backend of the configuration in `directory`, for the commands that
/// need only the state (`state`, `output`, `force-unlock`): the files are
/// parsed, and evaluated only if the `backend` block refers to variables.
/// Problems elsewhere in the configuration don't stop them — unless the
/// backend cannot be told for sure.
pub fn open_backend(
    directory: Option<PathBuf>,
    variables: &super::VariableArgs,
    style: ReportStyle,
) -> Result<Arc<dyn Backend>, ExitCode> {
    let (dir, declared) = declared_backend(directory, variables, style)?;
    check_unmoved(&dir, &BackendRecord::of(declared.as_ref())).map_err(fail)?;
    crate::state::backend::resolve(&dir, declared).map_err(fail)
}

/// Takes the state lock, waiting up to `--lock-timeout` (and saying so);
/// none with `--lock=false`. A lock another run still holds at the end is
/// exit code 3 ([`exit::LOCKED`]): a scheduled job can retry.
pub fn take_lock(
    backend: &dyn Backend,
    operation: &str,
    args: &LockArgs,
    events: &Events,
) -> Result<Option<LockGuard>, ExitCode> {
    super::stop_signals::install();
    if !args.lock {
        return Ok(None);
    }
    let waiting = |holder: &crate::state::LockInfo| {
        let event = Event::WaitingForLock {
            holder: format!("{} (pid {} on {})", holder.who, holder.pid, holder.host),
            operation: holder.operation.clone(),
            since: holder.when.clone(),
        };
        match events.is_rendered() {
            true => events.emit(event),
            false => eprintln!("{}", crate::events::describe(&event)),
        }
    };
    let wait = LockWait {
        timeout: args.lock_timeout,
        waiting: &waiting,
    };
    match backend.lock(operation, &wait) {
        Ok(lock) => {
            match &lock.replaced_stale {
                Some(stale) if stale.pid == 0 => {
                    eprintln!("note: removed a stale lock: {}", stale.who);
                }
                Some(stale) => eprintln!(
                    "note: removed a stale lock of {} (pid {} on {} is gone)",
                    stale.who, stale.pid, stale.host
                ),
                None => {}
            }
            Ok(Some(lock))
        }
        Err(error @ crate::state::LockError::Held(_)) => {
            eprintln!("error: {error}");
            Err(ExitCode::from(exit::LOCKED))
        }
        Err(error) => Err(fail(error.to_string())),
    }
}

/// Prints `error: …` and gives exit code 1.
pub fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

/// A plan, what applying it takes, and what the CLI keeps around it.
pub struct PlannedRun {
    pub planned: Planned,
    pub backend: Arc<dyn Backend>,
    /// Held by `apply` and `destroy` until they finish.
    pub lock: Option<LockGuard>,
    /// The version of the stored state the plan was made against.
    pub version: StateVersion,
    pub providers: ProviderRegistry,
    pub schemas: Arc<SchemaCatalog>,
    pub runtime: tokio::runtime::Runtime,
}

impl PlannedRun {
    /// The saved form of this plan (`-out`), or what a saved plan must
    /// equal to be applied.
    /// `secret_key` keys the digests of sensitive variables: a new one for
    /// a plan being saved, the saved plan's own to compare with it.
    pub fn to_saved(&self, args: &PlanningArgs, secret_key: &str) -> SavedPlan {
        let planned = &self.planned;
        let variables = planned
            .evaluation
            .variables
            .values
            .keys()
            .filter_map(|name| {
                let value = planned.variables.get(name)?.to_json();
                let saved = if planned.sensitive_variables.contains(name) {
                    SavedVariable::Pbkdf2Sha256(secret_digest(&value, secret_key))
                } else {
                    SavedVariable::Value(value)
                };
                Some((name.clone(), saved))
            })
            .collect();
        SavedPlan {
            format: SAVED_PLAN_FORMAT.to_string(),
            version: SAVED_PLAN_VERSION,
            lineage: if self.version.exists() {
                planned.refreshed.lineage.clone()
            } else {
                String::new()
            },
            configuration: configuration_digest(
                &planned.evaluation.config,
                &planned.evaluation.sources,
            ),
            destroy: planned.destroying,
            targets: args.targets.clone(),
            replacements: args.replacements.clone(),
            variables,
            secret_key: secret_key.to_string(),
            prior: prior_digests(&planned.plan, &planned.refreshed),
            plan_sha256: json_digest(&to_json(&planned.plan, &self.schemas)),
            summary: planned.plan.summary(),
            changes: change_lines(&planned.plan),
            shown: None,
        }
    }
}

/// Plans for `plan` (no lock), `apply` and `destroy` (`lock_for` names the
/// operation that holds the lock), reporting every diagnostic on stderr.
pub fn make_plan(
    directory: Option<PathBuf>,
    args: &PlanningArgs,
    destroying: bool,
    lock_for: Option<&str>,
    events: &Events,
    style: ReportStyle,
) -> Result<PlannedRun, ExitCode> {
    let Opened {
        options,
        loaded,
        backend,
        lock,
        state,
        version,
        pending,
        providers,
        runtime,
    } = open(
        directory,
        &args.variables,
        &args.saved_values,
        lock_for.map(|operation| (operation, &args.lock)),
        events,
        style,
    )?;
    let planner = Planner::new(&providers, args.plan_options(destroying))
        .with_events(events.clone())
        .with_pending(pending);
    match runtime.block_on(planner.plan(loaded, &options, &state)) {
        Ok(planned) => {
            eprint!(
                "{}",
                render_all(&planned.warnings, &planned.evaluation.sources, style)
            );
            Ok(PlannedRun {
                planned,
                backend,
                lock,
                version,
                schemas: options.schemas,
                providers,
                runtime,
            })
        }
        Err(PlanFailure {
            diagnostics,
            sources,
        }) => {
            eprint!("{}", render_all(&diagnostics, &sources, style));
            eprintln!(
                "{} error(s); nothing was planned",
                diagnostics.error_count().max(1)
            );
            runtime.block_on(providers.close());
            Err(ExitCode::from(1))
        }
    }
}

/// The runtime apply and plan drive providers on: one thread for the
/// walker, its focused evaluations and the providers' I/O (the state is
/// saved and journaled on threads of its own).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::from(1)
        })
}
