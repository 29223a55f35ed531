//! `infra apply` and `infra destroy`: plan (under the state lock), show the
//! plan, ask for `yes`, then carry it out and keep the state file up to
//! date as changes finish. Ctrl-C (or SIGTERM) starts nothing new and
//! lets changes in flight finish; a second one abandons them.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::apply::{
    ApplyJob, ApplyReport, Cancel, Outcome, Progress, ProgressMode, StateWriter, StepKind,
    WorkingState, apply,
};
use crate::diagnostics::ReportStyle;
use crate::eval::Value;
use crate::plan::{SavedPlan, SavedVariable};
use crate::state::StateLock;

use super::planning::{Planned, PlanningArgs, make_plan};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A plan saved by `infra plan -out FILE`: apply exactly it (no prompt),
    /// or refuse if it is stale
    #[arg(value_name = "FILE")]
    pub plan_file: Option<PathBuf>,
    /// Apply without asking for confirmation
    #[arg(long)]
    pub auto_approve: bool,
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
    if let Some(path) = &args.plan_file {
        if destroying {
            eprintln!(
                "error: `infra destroy` takes no plan file\n  help: save a destroy plan with `infra plan --destroy -out {0}` and run `infra apply {0}`",
                path.display()
            );
            return ExitCode::from(2);
        }
        return apply_saved(directory, args, path, style);
    }
    let planned = match make_plan(directory, &args.planning, destroying, Some(command), style) {
        Ok(planned) => planned,
        Err(code) => return code,
    };
    super::plan::show(&planned.plan, &planned.schemas, no_color);
    if planned.plan.has_changes() && !args.auto_approve {
        match confirm(command) {
            Ok(()) => {}
            Err(code) => return code,
        }
    }
    println!();
    carry_out(planned, args.planning.parallelism, destroying)
}

/// `infra apply FILE`: plans again with the saved plan's options and
/// variables, and applies only if that gives the very same plan.
fn apply_saved(
    directory: Option<PathBuf>,
    args: &ApplyArgs,
    path: &std::path::Path,
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
        return ExitCode::from(2);
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
            SavedVariable::Sha256(_) => None,
        })
        .collect();
    let planned = match make_plan(directory, &planning, saved.destroy, Some("apply"), style) {
        Ok(planned) => planned,
        Err(code) => return code,
    };
    let problems = saved.differences(&planned.to_saved(&planning, saved.destroy));
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
    println!("Applying the saved plan {}.", path.display());
    carry_out(planned, planning.parallelism, saved.destroy)
}

/// Asks for `yes` on a terminal; refuses without one.
fn confirm(command: &str) -> Result<(), ExitCode> {
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

fn carry_out(planned: Planned, parallelism: usize, destroying: bool) -> ExitCode {
    let Planned {
        plan,
        refreshed,
        state_path,
        lock,
        providers,
        instances,
        evaluation,
        runtime,
        ..
    } = planned;
    let lock = Arc::new(Mutex::new(lock));
    let working = WorkingState::new(refreshed.clone());
    let writer = StateWriter::start(working.clone(), state_path.clone());
    let mode = if std::io::stdout().is_terminal() {
        ProgressMode::Live
    } else {
        ProgressMode::Plain
    };
    let progress = Arc::new(Progress::new(mode));
    let cancel = Cancel::default();
    let stopped_by = Arc::new(AtomicU8::new(0));
    let job = ApplyJob {
        plan,
        instances: instances.clone(),
        prior: refreshed,
        providers,
        parallelism,
        evaluation: Some(evaluation.clone()),
    };
    let report = runtime.block_on(async {
        let interrupts = tokio::spawn(watch_interrupts(
            cancel.clone(),
            stopped_by.clone(),
            progress.clone(),
            working.clone(),
            state_path.clone(),
            lock.clone(),
        ));
        let report = apply(job, working.clone(), progress.clone(), &cancel).await;
        interrupts.abort();
        report
    });
    // Outputs and dependencies as the configuration now evaluates.
    let mut finished = working.snapshot();
    crate::apply::finish_state(&mut finished, &instances, &evaluation, destroying);
    working.record(|state| *state = finished);
    let saved = writer.finish();
    drop(lock);
    let interrupted = cancel.is_cancelled();
    summarize(&report, destroying, interrupted);
    if let Err(error) = saved {
        eprintln!("error: the state could not be saved: {error}");
        let rescue = std::path::Path::new("infra.state.errored.json");
        let state = working.snapshot().without_data_sources();
        if std::fs::write(rescue, state.to_canonical_json()).is_ok() {
            eprintln!(
                "  help: the state was written to {} instead; move it to {} once the problem is fixed",
                rescue.display(),
                state_path.display()
            );
        }
        return ExitCode::from(1);
    }
    if interrupted {
        ExitCode::from(stopped_by.load(Ordering::SeqCst))
    } else if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
    progress: Arc<Progress>,
    working: Arc<WorkingState>,
    state_path: PathBuf,
    lock: Arc<Mutex<Option<StateLock>>>,
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
    progress.note(
        "Interrupt received: starting nothing new, waiting for the changes in flight to finish (Ctrl-C again to abandon them).",
    );
    next_stop_signal(&mut interrupt, &mut terminate).await;
    let abandoned = progress.in_flight();
    progress.close();
    eprintln!(
        "Second interrupt: abandoning {} change(s) in flight: {}",
        abandoned.len(),
        abandoned.join(", ")
    );
    eprintln!(
        "  Their objects may exist without being in the state; the next `infra plan` refreshes and shows what is left."
    );
    let state = working.snapshot().without_data_sources();
    if let Err(error) = crate::state::save_with(&state_path, &state, false) {
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
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
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
            Outcome::Failed(message) => {
                println!(
                    "  failed   {} ({}): {message}",
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
