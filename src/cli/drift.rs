//! `infra drift`: refresh every resource of the state through its provider
//! and report what changed outside infra. Changes nothing. Exit 0 when
//! nothing drifted, 2 when something did, 1 on errors — for scheduled CI.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::{ReportStyle, render_all};
use crate::events::Events;
use crate::plan::{drift, refresh};

use super::planning::{Opened, open};

#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// How many refreshes run at once
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub parallelism: usize,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

/// Exit code when something drifted.
const DRIFTED: u8 = 2;

pub fn run(directory: Option<PathBuf>, args: &DriftArgs, style: ReportStyle) -> ExitCode {
    let opened = match open(
        directory,
        &args.variables,
        &[],
        None,
        &Events::none(),
        style,
    ) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    if !opened.version.exists() {
        eprintln!("No state yet: nothing can have drifted (apply creates the state).");
        return ExitCode::SUCCESS;
    }
    let Opened {
        options,
        loaded,
        state,
        providers,
        runtime,
        ..
    } = opened;
    let (mut problems, (refreshed, diagnostics)) = runtime.block_on(async {
        let problems = providers
            .configure(&loaded.provider_settings(&options), &options.dir)
            .await;
        let refreshed = refresh(&state, &providers, args.parallelism).await;
        providers.close().await;
        (problems, refreshed)
    });
    problems.extend(diagnostics);
    problems.sort();
    eprint!("{}", render_all(&problems, &loaded.sources, style));
    if problems.has_errors() {
        return ExitCode::from(1);
    }
    let report = drift(&state, &refreshed);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.render(&options.schemas, &state));
    }
    if report.has_drift() {
        ExitCode::from(DRIFTED)
    } else {
        ExitCode::SUCCESS
    }
}
