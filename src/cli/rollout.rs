//! `infra rollout status | promote | abort ADDR`: a deployment's rollout
//! that waits at a manual gate (`auto_promote = false`, a canary step with
//! `pause = "forever"`), was interrupted, or was rolled back. `status`
//! reads the state only; `promote` and `abort` plan that deployment
//! (`-target ADDR`) and apply it under the state lock, as `apply` does,
//! without asking: the command is the decision.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::apply::{RolloutAction, RolloutCommand};
use crate::deploy::record::{RolloutRecord, Status};
use crate::diagnostics::ReportStyle;
use crate::plan::Action;

use super::planning::{PlanningArgs, make_plan, open_backend};

#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommandArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum RolloutCommandArgs {
    /// Where a deployment's rollout stands, as the state records it
    Status {
        address: String,
        /// Print it as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        variables: super::VariableArgs,
    },
    /// Let a rollout waiting at a manual gate continue (the next gate
    /// stops it again)
    Promote(ChangeArgs),
    /// Roll a rollout back: all traffic to the previous version at once,
    /// the previous version at full strength, the new one retired
    Abort(ChangeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    address: String,
    /// Stream the progress as JSON lines
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    planning: PlanningArgs,
}

pub fn run(
    directory: Option<PathBuf>,
    args: &RolloutArgs,
    style: ReportStyle,
    no_color: bool,
) -> ExitCode {
    match &args.command {
        RolloutCommandArgs::Status {
            address,
            json,
            variables,
        } => status(directory, address, *json, variables, style),
        RolloutCommandArgs::Promote(change) => {
            carry_out(directory, change, RolloutAction::Promote, style, no_color)
        }
        RolloutCommandArgs::Abort(change) => {
            carry_out(directory, change, RolloutAction::Abort, style, no_color)
        }
    }
}

fn status(
    directory: Option<PathBuf>,
    address: &str,
    json: bool,
    variables: &super::VariableArgs,
    style: ReportStyle,
) -> ExitCode {
    let backend = match open_backend(directory, variables, style) {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    let state = match super::state::open(backend.as_ref()) {
        Ok((state, _)) => state,
        Err(code) => return code,
    };
    let Some(resource) = state.resources.get(address) else {
        return super::state::unknown_address(&state, address);
    };
    let record = RolloutRecord::of(&resource.attributes);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "address": address,
                "rollout": record.as_ref().map(RolloutRecord::to_json),
            })
        );
        return ExitCode::SUCCESS;
    }
    let Some(record) = record else {
        println!("{address}: no rollout in progress");
        return ExitCode::SUCCESS;
    };
    println!("{address}: {}", record.summary());
    if !record.readings.is_empty() {
        println!("  latest analysis readings:");
        for reading in &record.readings {
            println!("    {reading}");
        }
    }
    let next = match record.status {
        Status::Paused => format!(
            "`infra rollout promote {address}` continues it; `infra rollout abort {address}` rolls it back"
        ),
        Status::Running => format!(
            "it was interrupted: `infra apply` resumes it at this step; `infra rollout abort {address}` rolls it back"
        ),
        Status::RolledBack | Status::Failed => {
            "`infra apply` starts the rollout again from its first step".to_string()
        }
    };
    println!("  next: {next}");
    ExitCode::SUCCESS
}

fn carry_out(
    directory: Option<PathBuf>,
    args: &ChangeArgs,
    action: RolloutAction,
    style: ReportStyle,
    no_color: bool,
) -> ExitCode {
    let verb = match action {
        RolloutAction::Promote => "promote",
        RolloutAction::Abort => "abort",
    };
    let events = super::apply::events_for(args.json);
    let mut planning = args.planning.clone();
    planning.targets = vec![args.address.clone()];
    let command = format!("rollout {verb}");
    let run = match make_plan(directory, &planning, false, Some(&command), &events, style) {
        Ok(run) => run,
        Err(code) => return code,
    };
    let pending = run
        .planned
        .plan
        .changes
        .iter()
        .any(|c| c.address == args.address && c.action == Action::Update);
    if !pending || !run.planned.deployments.contains_key(&args.address) {
        eprintln!(
            "error: `{}` has no rollout to {verb}: it is not a deployment whose new version is pending\n  help: `infra plan` shows what would change; `infra rollout status {}` where a rollout stands",
            args.address, args.address
        );
        return ExitCode::from(1);
    }
    if args.json {
        super::plan::print_json_lines(&run.planned.plan);
    } else {
        super::plan::show(&run.planned.plan, &run.schemas, no_color);
        println!();
    }
    let parallelism = args.planning.parallelism;
    super::apply::carry_out_with(
        run,
        parallelism,
        &events,
        args.json,
        style,
        Some(RolloutCommand {
            address: args.address.clone(),
            action,
        }),
    )
}
