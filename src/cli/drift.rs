//! `infra drift`: refresh every resource of the state through its provider
//! and report what changed outside infra. Changes nothing. Exit 0 when
//! nothing drifted, 2 when something did, 1 on errors — for scheduled CI.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::{ReportStyle, render_all};
use crate::events::Events;
use crate::plan::{DriftReport, drift, refresh};
use crate::state::State;

use super::planning::{Opened, open};

#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// How to print the report: for people, for machines, or for a pull
    /// request or issue comment
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Same as `--format json`
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// `--format markdown`: at most this many bytes (a comment's limit),
    /// leaving out what does not fit and saying so
    #[arg(long, default_value_t = 60_000, value_name = "BYTES")]
    pub max_bytes: usize,
    /// How many refreshes run at once
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub parallelism: usize,
    /// Drift holds the state lock while it compares, so that an apply in
    /// progress is not reported as drift (`-lock-timeout` waits for it).
    #[command(flatten)]
    pub lock: super::planning::LockArgs,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

impl ReportFormat {
    /// `--json` is `--format json`.
    pub fn or_json(self, json: bool) -> ReportFormat {
        if json { ReportFormat::Json } else { self }
    }
}

pub fn run(directory: Option<PathBuf>, args: &DriftArgs, style: ReportStyle) -> ExitCode {
    let opened = match open(
        directory,
        &args.variables,
        &[],
        Some(("drift", &args.lock)),
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
    let compared = match compare(opened, args.parallelism, style) {
        Ok(compared) => compared,
        Err(code) => return code,
    };
    let (report, state, schemas) = (
        &compared.report,
        &compared.opened.state,
        &compared.opened.options.schemas,
    );
    match args.format.or_json(args.json) {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        ),
        ReportFormat::Text => print!("{}", report.render(schemas, state)),
        ReportFormat::Markdown => print!("{}", report.to_markdown(schemas, state, args.max_bytes)),
    }
    if report.has_drift() {
        ExitCode::from(super::exit::CHANGES)
    } else {
        ExitCode::SUCCESS
    }
}

/// A state compared with the real objects: what `drift` reports and
/// `-refresh-only` offers to accept.
pub(super) struct Compared {
    pub opened: Opened,
    pub refreshed: State,
    pub report: DriftReport,
}

/// Refreshes every resource of the opened state through its provider
/// (diagnostics printed; an error is exit 1).
pub(super) fn compare(
    opened: Opened,
    parallelism: usize,
    style: ReportStyle,
) -> Result<Compared, ExitCode> {
    let (mut problems, (refreshed, diagnostics)) = opened.runtime.block_on(async {
        let problems = opened
            .providers
            .configure(
                &opened.loaded.provider_settings(&opened.options),
                &opened.options.dir,
            )
            .await;
        let refreshed = refresh(&opened.state, &opened.providers, parallelism).await;
        opened.providers.close().await;
        (problems, refreshed)
    });
    problems.extend(diagnostics);
    problems.sort();
    eprint!("{}", render_all(&problems, &opened.loaded.sources, style));
    if problems.has_errors() {
        return Err(ExitCode::from(super::exit::ERROR));
    }
    let report = drift(&opened.state, &refreshed);
    Ok(Compared {
        opened,
        refreshed,
        report,
    })
}
