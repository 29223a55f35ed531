//! `infra apply` and `infra destroy`: plan (under the state lock), show the
//! plan, ask for `yes`, then carry it out and keep the stored state up to
//! date as changes finish. Progress is an event stream: a live view on a
//! terminal, timestamped lines otherwise, JSON lines with `--json`. A
//! failed change is a diagnostic pointing at its resource (or at the
//! attribute the provider names). Ctrl-C (or SIGTERM) starts nothing new
//! and lets changes in flight finish; a second one abandons them.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::apply::{
    ApplyJob, ApplyReport, Cancel, InFlight, Outcome, RolloutCommand, StateWriter, Step, StepKind,
    WorkingState, apply,
};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, ReportStyle, render_all};
use crate::eval::Value;
use crate::events::{Events, JsonLines, Live, Plain};
use crate::plan::{Evaluation, PlannedInstance, SavedPlan, SavedVariable};
use crate::providers::OperationFailure;
use crate::state::{Backend, LockGuard};

use super::planning::{PlannedRun, PlanningArgs, make_plan};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A plan saved by `infra plan -out FILE`: apply exactly it (no prompt),
    /// or refuse if it is stale
    #[arg(value_name = "FILE")]
    pub plan_file: Option<PathBuf>,
    /// Apply without asking for confirmation
    #[arg(long)]
    pub auto_approve: bool,
    /// `-input=false` (a global option): never ask for confirmation.
    #[arg(skip = true)]
    pub input: bool,
    /// Stream the plan and the progress as JSON lines (needs
    /// `--auto-approve` or a saved plan)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub planning: PlanningArgs,
}

/// Exit code of an apply stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;
/// Exit code of an apply stopped by SIGTERM (128 + 15).
const TERMINATED: u8 = 143;

pub fn run(
    directory: Option<PathBuf>,
    args: &ApplyArgs,
    destroying: bool,
    style: ReportStyle,
    no_color: bool,
) -> ExitCode {
    let command = if destroying { "destroy" } else { "apply" };
    if args.planning.refresh_only {
        if destroying || args.plan_file.is_some() || args.json {
            eprintln!(
                "error: -refresh-only goes with neither `destroy`, a plan file nor --json\n  help: `infra apply -refresh-only` on its own"
            );
            return ExitCode::from(super::exit::ERROR);
        }
        return super::refresh_only::apply(
            directory,
            &args.planning,
            args.auto_approve,
            args.input,
            style,
        );
    }
    if args.json && !args.auto_approve && args.plan_file.is_none() {
        eprintln!(
            "error: `infra {command} --json` cannot ask for confirmation\n  help: review the plan first, then run `infra {command} --json --auto-approve`, or apply a saved plan"
        );
        return ExitCode::from(1);
    }
    let events = events_for(args.json);
    if let Some(path) = &args.plan_file {
        if destroying {
            eprintln!(
                "error: `infra destroy` takes no plan file\n  help: save a destroy plan with `infra plan --destroy -out {0}` and run `infra apply {0}`",
                path.display()
            );
            return ExitCode::from(super::exit::ERROR);
        }
        return apply_saved(directory, args, path, &events, style);
    }
    let run = match make_plan(
        directory,
        &args.planning,
        destroying,
        Some(command),
        &events,
        style,
    ) {
        Ok(run) => run,
        Err(code) => return code,
    };
    if args.json {
        super::plan::print_json_lines(&run.planned.plan);
    } else {
        super::plan::show(&run.planned.plan, &run.schemas, no_color);
    }
    if run.planned.plan.has_changes() && !args.auto_approve {
        match confirm(command, args.input) {
            Ok(()) => {}
            Err(code) => return code,
        }
    }
    if !args.json {
        println!();
    }
    carry_out(run, args.planning.parallelism, &events, args.json, style)
}

/// Where progress goes: JSON lines, a live view on a terminal, or
/// timestamped lines (CI, logs).
pub(super) fn events_for(json: bool) -> Events {
    if json {
        Events::new(Arc::new(JsonLines))
    } else if std::io::stdout().is_terminal() {
        Events::new(Arc::new(Live::new()))
    } else {
        Events::new(Arc::new(Plain))
    }
}

/// `infra apply FILE`: plans again with the saved plan's options and
/// variables, and applies only if that gives the very same plan.
fn apply_saved(
    directory: Option<PathBuf>,
    args: &ApplyArgs,
    path: &std::path::Path,
    events: &Events,
    style: ReportStyle,
) -> ExitCode {
    let saved = match SavedPlan::read(path) {
        Ok(saved) => saved,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    if !args.planning.targets.is_empty() || !args.planning.replacements.is_empty() {
        eprintln!(
            "error: a saved plan carries its own --target and --replace\n  help: plan again with the options you want: `infra plan -out {}`",
            path.display()
        );
        return ExitCode::from(super::exit::ERROR);
    }
    let mut planning = args.planning.clone();
    planning.refresh = true;
    planning.targets = saved.targets.clone();
    planning.replacements = saved.replacements.clone();
    planning.saved_values = saved
        .variables
        .iter()
        .filter_map(|(name, value)| match value {
            SavedVariable::Value(json) => Some((name.clone(), Value::from_json(json))),
            SavedVariable::Pbkdf2Sha256(_) => None,
        })
        .collect();
    let run = match make_plan(
        directory,
        &planning,
        saved.destroy,
        Some("apply"),
        events,
        style,
    ) {
        Ok(run) => run,
        Err(code) => return code,
    };
    let problems = saved.differences(&run.to_saved(&planning, &saved.secret_key));
    if !problems.is_empty() {
        eprintln!(
            "error: the saved plan {} cannot be applied; nothing was changed:",
            path.display()
        );
        for problem in problems {
            eprintln!("  - {problem}");
        }
        eprintln!(
            "  help: review a new plan with `infra plan -out {}`",
            path.display()
        );
        return ExitCode::from(1);
    }
    if !args.json {
        println!("Applying the saved plan {}.", path.display());
    }
    carry_out(run, planning.parallelism, events, args.json, style)
}

/// Asks for `yes` on a terminal; refuses without one, or with
/// `-input=false`.
pub(super) fn confirm(command: &str, input: bool) -> Result<(), ExitCode> {
    if !input {
        eprintln!(
            "error: `infra {command}` needs confirmation, and -input=false forbids asking\n  help: review the plan above, then run `infra {command} --auto-approve`, or apply a saved plan (`infra plan -out FILE`, then `infra apply FILE`)"
        );
        return Err(ExitCode::from(1));
    }
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: `infra {command}` needs confirmation, and stdin is not a terminal\n  help: review the plan above, then run `infra {command} --auto-approve` (e.g. in CI)"
        );
        return Err(ExitCode::from(1));
    }
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        println!("\n{command} cancelled; nothing was changed.");
        Err(ExitCode::from(1))
    }
}

pub(super) fn carry_out(
    run: PlannedRun,
    parallelism: usize,
    events: &Events,
    json: bool,
    style: ReportStyle,
) -> ExitCode {
    carry_out_with(run, parallelism, events, json, style, None)
}

/// [`carry_out`], with what `infra rollout promote|abort` asks of one
/// deployment's rollout.
pub(super) fn carry_out_with(
    run: PlannedRun,
    parallelism: usize,
    events: &Events,
    json: bool,
    style: ReportStyle,
    rollout_command: Option<RolloutCommand>,
) -> ExitCode {
    let PlannedRun {
        planned,
        backend,
        lock,
        version,
        providers,
        runtime,
        ..
    } = run;
    let destroying = planned.destroying;
    // Secrets are written in plaintext only where the backend says so
    // (a destroy takes them out).
    if !destroying
        && planned.plan.has_changes()
        && holds_secrets(&planned)
        && let Err(message) = backend.may_write_secrets()
    {
        eprintln!("error: {message}\n  note: nothing was changed");
        runtime.block_on(providers.close());
        return ExitCode::from(1);
    }
    let instances = planned.instances.clone();
    let evaluation = planned.evaluation.clone();
    // Every change is journaled as it finishes, creates before they
    // start: a journal that cannot be written stops the run here, before
    // anything changed.
    let journal = match planned.plan.has_changes() {
        false => Ok(None),
        true => backend.open_journal(&planned.refreshed.lineage),
    };
    let journal = match journal {
        Ok(journal) => journal,
        Err(error) => {
            eprintln!(
                "error: {error}\n  help: nothing was changed; make the state's directory writable (and give it free space), then run the same command again"
            );
            runtime.block_on(providers.close());
            return ExitCode::from(1);
        }
    };
    // From here on, a signal is this walk's to handle.
    let _applying = super::stop_signals::Applying::start();
    let lock = Arc::new(Mutex::new(lock));
    let working = WorkingState::journaled(planned.refreshed.clone(), journal);
    let writer = StateWriter::start(working.clone(), backend.clone(), version);
    let cancel = Cancel::default();
    let stopped_by = Arc::new(AtomicU8::new(0));
    let in_flight = Arc::new(InFlight::default());
    let mut job = ApplyJob::new(planned, &providers, parallelism);
    job.rollout_command = rollout_command;
    let report = runtime.block_on(async {
        let interrupts = tokio::spawn(watch_interrupts(
            cancel.clone(),
            stopped_by.clone(),
            events.clone(),
            in_flight.clone(),
            working.clone(),
            backend.clone(),
            lock.clone(),
        ));
        let report = apply(
            job,
            working.clone(),
            events.clone(),
            in_flight.clone(),
            &cancel,
        )
        .await;
        interrupts.abort();
        providers.close().await;
        report
    });
    let saved = writer.finish();
    backend.close_journal(saved.is_ok());
    drop(lock);
    events.close();
    let interrupted = cancel.is_cancelled();
    let problems = report_diagnostics(&report, &instances, &evaluation);
    eprint!("{}", render_all(&problems, &evaluation.sources, style));
    if !json {
        summarize(&report, destroying, interrupted);
    }
    if let Err(error) = saved {
        eprintln!("error: the state could not be saved: {error}");
        rescue(&working.snapshot().without_data_sources(), backend.as_ref());
        return ExitCode::from(1);
    }
    if interrupted {
        ExitCode::from(stopped_by.load(Ordering::SeqCst))
    } else if report.succeeded() {
        // As Terraform: the outputs the state now records, secrets hidden.
        let outputs = working.snapshot().outputs;
        if !json && !destroying && !outputs.is_empty() {
            print!("\nOutputs:\n\n{}", super::output::listed(&outputs, false));
        }
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Whether the state this run writes may hold a secret: a sensitive
/// attribute with a value (known or not) after a change, one recorded, or
/// a sensitive output.
fn holds_secrets(planned: &crate::plan::Planned) -> bool {
    let has_value = |after: &std::collections::BTreeMap<String, Value>, path: &str| {
        crate::eval::SensitivePath::parse(path)
            .find(after)
            .is_some_and(|value| !matches!(value, Value::Null))
    };
    planned.plan.changes.iter().any(|change| {
        change
            .after
            .as_ref()
            .is_some_and(|after| change.sensitive.iter().any(|name| has_value(after, name)))
    }) || planned
        .refreshed
        .resources
        .values()
        .any(|r| !r.sensitive.is_empty())
        || planned.refreshed.outputs.values().any(|o| o.sensitive)
        || planned
            .evaluation
            .config
            .declarations
            .outputs
            .values()
            .any(|o| o.sensitive)
}

/// The state could not be saved: writes it where it can (beside the state,
/// in the current directory, in the temporary directory — each written
/// atomically and read back), or else prints it whole on stderr, and says
/// how to put it back.
fn rescue(state: &crate::state::State, backend: &dyn Backend) {
    use crate::state::RESCUE_NAME as NAME;
    // Written as the backend writes it: secrets sealed.
    let state = &backend.sealed(state);
    let mut places = Vec::new();
    if let Some(path) = backend.local_path() {
        places.push(path.with_file_name(NAME));
    }
    places.push(PathBuf::from(NAME));
    places.push(
        std::env::temp_dir().join(format!("infra.state.errored.{}.json", std::process::id())),
    );
    let target = backend
        .local_path()
        .map_or_else(|| backend.describe(), |path| path.display().to_string());
    if let Some(journal) = backend
        .local_path()
        .map(crate::state::journal::journal_path)
        .filter(|journal| journal.exists())
    {
        eprintln!(
            "  note: every change that finished is also in the apply journal `{}`: the next infra run applies it to the state by itself",
            journal.display()
        );
    }
    match crate::state::write_rescue(state, &places) {
        Ok(written) => eprintln!(
            "  help: the state was written to `{}` instead; once the problem is fixed, put it back with `mv {} {target}`",
            written.display(),
            written.display()
        ),
        Err(failures) => {
            for (place, failure) in failures {
                eprintln!("  note: could not write `{}`: {failure}", place.display());
            }
            eprintln!(
                "  help: the whole state follows between the markers; save it as `{target}` once the problem is fixed"
            );
            eprintln!("----- BEGIN INFRA STATE -----");
            eprint!("{}", state.to_canonical_json());
            eprintln!("----- END INFRA STATE -----");
        }
    }
}

/// The apply's failures and the providers' warnings as diagnostics: each
/// points at the attribute the provider names (its value in the
/// configuration) or at the resource block, and keeps the provider's code.
fn report_diagnostics(
    report: &ApplyReport,
    instances: &std::collections::BTreeMap<String, PlannedInstance>,
    evaluation: &Evaluation,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for (step, failure) in report.failures() {
        diagnostics.push(failure_diagnostic(step, failure, instances, evaluation));
    }
    for (address, warning) in &report.warnings {
        let mut diagnostic =
            crate::providers::provider_diagnostic(warning.clone(), &format!("{address}: "));
        if let Some(span) = warning
            .attribute
            .as_deref()
            .and_then(|attribute| evaluation.argument_span(address, attribute))
            .or_else(|| instances.get(address).map(|i| i.span))
        {
            diagnostic = diagnostic.with_label(span, format!("in `{address}`"));
        }
        diagnostics.push(diagnostic);
    }
    diagnostics
}

/// One failed change as a diagnostic.
pub fn failure_diagnostic(
    step: &Step,
    failure: &OperationFailure,
    instances: &std::collections::BTreeMap<String, PlannedInstance>,
    evaluation: &Evaluation,
) -> Diagnostic {
    let address = &step.address;
    let mut diagnostic = Diagnostic::error(
        Code::Apply,
        format!(
            "{} of `{address}` failed: {}",
            failure.operation.as_str(),
            failure.reason()
        ),
    );
    let at_attribute = failure.attribute.as_deref().and_then(|attribute| {
        evaluation
            .argument_span(address, attribute)
            .map(|span| (span, attribute))
    });
    if let Some((span, attribute)) = at_attribute {
        diagnostic =
            diagnostic.with_label(span, format!("the provider rejected this `{attribute}`"));
    } else if let Some(instance) = instances.get(address) {
        diagnostic = diagnostic.with_label(instance.span, format!("in `{address}`"));
    }
    if let Some(code) = &failure.code {
        diagnostic = diagnostic.with_note(format!("the provider's error code is `{code}`"));
    }
    diagnostic.with_help(if failure.retryable {
        "the provider says this may pass if tried again: run the same command again; every change that finished is in the state"
    } else if at_attribute.is_some() {
        "fix this value and run the same command again; every change that finished is in the state"
    } else {
        "fix the cause above and run the same command again; every change that finished is in the state"
    })
}

/// The signal that stopped a run, as an exit code: 128 + its number.
async fn next_stop_signal(
    interrupt: &mut tokio::signal::unix::Signal,
    terminate: &mut tokio::signal::unix::Signal,
) -> u8 {
    tokio::select! {
        _ = interrupt.recv() => INTERRUPTED,
        _ = terminate.recv() => TERMINATED,
    }
}

/// First Ctrl-C (or SIGTERM, as CI sends when a job is cancelled): start
/// nothing new; `stopped_by` records the exit code. Second: save what
/// finished, release the lock and exit at once, naming what is abandoned.
async fn watch_interrupts(
    cancel: Cancel,
    stopped_by: Arc<AtomicU8>,
    events: Events,
    in_flight: Arc<InFlight>,
    working: Arc<WorkingState>,
    backend: Arc<dyn Backend>,
    lock: Arc<Mutex<Option<LockGuard>>>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let code = next_stop_signal(&mut interrupt, &mut terminate).await;
    stopped_by.store(code, Ordering::SeqCst);
    cancel.cancel();
    events.emit(crate::events::Event::Note {
        message: "Interrupt received: starting nothing new, waiting for the changes in flight to finish (Ctrl-C again to abandon them).".into(),
    });
    next_stop_signal(&mut interrupt, &mut terminate).await;
    let abandoned = in_flight.addresses();
    events.close();
    eprintln!(
        "Second interrupt: abandoning {} change(s) in flight: {}",
        abandoned.len(),
        abandoned.join(", ")
    );
    eprintln!(
        "  Their objects may exist without being in the state; the next `infra plan` refreshes and shows what is left."
    );
    let state = working.snapshot().without_data_sources();
    // The writer thread may be saving too; whichever saves last, the file
    // holds every change that finished.
    let version = backend
        .read()
        .map(|stored| stored.version)
        .unwrap_or_default();
    if let Err(error) = backend.save(&state, &version) {
        eprintln!("error: the state could not be saved: {error}");
    }
    drop(lock.lock().map(|mut held| held.take()));
    std::process::exit(i32::from(code));
}

fn summarize(report: &ApplyReport, destroying: bool, interrupted: bool) {
    let (added, changed, destroyed) = report.totals();
    let done = report.count(|o| *o == Outcome::Done);
    let failed = report.count(|o| matches!(o, Outcome::Failed(_)));
    let skipped = report.count(|o| matches!(o, Outcome::Skipped { .. }));
    let not_started = report.count(|o| *o == Outcome::NotStarted);
    println!();
    let title = if destroying { "Destroy" } else { "Apply" };
    if failed == 0 && skipped == 0 && not_started == 0 {
        if destroying {
            println!("Destroy complete! Resources: {destroyed} destroyed.");
        } else {
            println!(
                "Apply complete! Resources: {added} added, {changed} changed, {destroyed} destroyed."
            );
        }
        return;
    }
    if interrupted {
        println!(
            "{title} interrupted: {done} change(s) done, {failed} failed, {} not started.",
            not_started + skipped
        );
    } else {
        println!("{title} failed: {done} change(s) done, {failed} failed, {skipped} skipped.");
    }
    let operation = |kind: StepKind| match kind {
        StepKind::Create => "create",
        StepKind::Update => "update",
        StepKind::Destroy => "destroy",
        StepKind::Read => "read",
    };
    for (step, outcome) in &report.results {
        match outcome {
            Outcome::Failed(failure) => {
                println!(
                    "  failed   {} ({}): {failure}",
                    step.address,
                    operation(step.kind)
                );
            }
            Outcome::Skipped { because } => {
                let (cause, _) = &report.results[*because];
                println!(
                    "  skipped  {} ({}): waits for {}, which failed",
                    step.address,
                    operation(step.kind),
                    cause.address
                );
            }
            _ => {}
        }
    }
    println!(
        "The state holds every change that finished; {} `infra {}` again to finish.",
        if interrupted {
            "run"
        } else {
            "fix the errors above and run"
        },
        if destroying { "destroy" } else { "apply" }
    );
}
