//! `infra plan`: refresh, evaluate against the refreshed state, diff, show.
//! Changes nothing anywhere.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::ReportStyle;
use crate::plan::{Plan, RenderOptions, render, to_json};

use super::planning::{PlanningArgs, make_plan};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Print the machine-readable plan (JSON) instead of text
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there are no changes, 2 when there are (1 on errors)
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan to destroy everything the state holds
    #[arg(long)]
    pub destroy: bool,
    /// Save the plan to FILE, to apply exactly it later with `infra apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub planning: PlanningArgs,
}

pub fn run(
    directory: Option<PathBuf>,
    args: &PlanArgs,
    style: ReportStyle,
    no_color: bool,
) -> ExitCode {
    let planned = match make_plan(directory, &args.planning, args.destroy, None, style) {
        Ok(planned) => planned,
        Err(code) => return code,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&planned.plan, &planned.schemas))
                .unwrap_or_default()
        );
    } else {
        show(&planned.plan, &planned.schemas, no_color);
    }
    if let Some(path) = &args.out {
        if let Err(message) = planned.to_saved(&args.planning, args.destroy).write(path) {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
        if !args.json {
            println!(
                "\nSaved the plan to {0}. To perform exactly these actions: infra apply {0}",
                path.display()
            );
        }
    }
    if args.detailed_exitcode && planned.plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a plan for people: colour only on a terminal that allows it.
pub fn show(plan: &Plan, schemas: &crate::eval::SchemaCatalog, no_color: bool) {
    let color = !no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    print!("{}", render(plan, schemas, RenderOptions { color }));
}
