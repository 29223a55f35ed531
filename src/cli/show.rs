//! `infra show [FILE] [--json]`: a plan saved by `infra plan -out FILE`,
//! as `plan` showed it (text, or `plan --json`'s document) — so a pipeline
//! can plan in one job, show the plan for review in another, and apply
//! exactly it in a third; without FILE, every resource of the state.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::ReportStyle;
use crate::plan::SavedPlan;

use super::planning::{fail, open_backend};

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A plan saved by `infra plan -out FILE` (default: the state)
    pub file: Option<PathBuf>,
    /// Print the saved plan as `infra plan --json` does
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

pub fn run(directory: Option<PathBuf>, args: &ShowArgs, style: ReportStyle) -> ExitCode {
    let Some(file) = &args.file else {
        return show_state(directory, args, style);
    };
    let saved = match SavedPlan::read(file) {
        Ok(saved) => saved,
        Err(message) => return fail(message),
    };
    let Some(shown) = &saved.shown else {
        return fail(format!(
            "{} was saved without its plan text\n  help: plan again with `infra plan -out {}`",
            file.display(),
            file.display()
        ));
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&shown.json).unwrap_or_default()
        );
    } else {
        print!("{}", shown.text);
        println!(
            "\nSaved plan {}: `infra apply {}` performs exactly these actions, or refuses if the state or the configuration moved on.",
            file.display(),
            file.display()
        );
    }
    ExitCode::SUCCESS
}

fn show_state(directory: Option<PathBuf>, args: &ShowArgs, style: ReportStyle) -> ExitCode {
    if args.json {
        return fail(
            "`infra show --json` needs a saved plan file\n  help: `infra state pull` prints the state as JSON; `infra show --json FILE` a plan saved with `infra plan -out FILE`".into(),
        );
    }
    let backend = match open_backend(directory, &args.variables, style) {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    let (state, _) = match super::state::open(backend.as_ref()) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    if state.resources.is_empty() {
        println!("The state is empty.");
    }
    for (index, (address, resource)) in state.resources.iter().enumerate() {
        if index > 0 {
            println!();
        }
        print!("{}", super::state::describe(address, resource, false));
    }
    ExitCode::SUCCESS
}
