//! `infra validate`: parse and evaluate, report every diagnostic.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::check::check;
use crate::diagnostics::{ReportStyle, render_all, to_json};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Print a JSON report for editors and CI instead of text
    #[arg(long)]
    pub json: bool,
    /// Also print the evaluated configuration (values unknown until apply
    /// show as `(known after apply)`)
    #[arg(long)]
    pub show: bool,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

/// `format_version` of `validate --json` (docs/json-formats.md).
pub const VALIDATE_FORMAT_VERSION: u32 = 1;

/// The directory to read and the prefix to show in file names.
pub fn directories(directory: Option<PathBuf>) -> (PathBuf, PathBuf) {
    // `-C DIR` made DIR the working directory; messages still name files
    // as `DIR/main.infra`, which opens from where the command was typed.
    match directory {
        Some(dir) => (PathBuf::from("."), dir),
        None => (PathBuf::from("."), PathBuf::new()),
    }
}

pub fn run(directory: Option<PathBuf>, args: &ValidateArgs, style: ReportStyle) -> ExitCode {
    let (dir, display_dir) = directories(directory);
    let providers = crate::providers::ProviderRegistry::builtin();
    let options = args
        .variables
        .check_options(dir, display_dir, providers.catalog());
    let mut checked = check(&options);
    if !checked.diagnostics.has_errors()
        && let Some(evaluated) = &checked.evaluated
    {
        let problems = crate::providers::validate_with_providers(
            evaluated,
            checked.config.as_ref(),
            &providers,
        );
        checked.diagnostics.extend(problems);
        checked.diagnostics.sort();
    }
    let diagnostics = &checked.diagnostics;
    if args.json {
        let report = serde_json::json!({
            "format": "infra-validate",
            "format_version": VALIDATE_FORMAT_VERSION,
            "valid": !diagnostics.has_errors(),
            "error_count": diagnostics.error_count(),
            "warning_count": diagnostics.warning_count(),
            "diagnostics": diagnostics.iter().map(|d| to_json(d, &checked.sources)).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        if args.show
            && let Some(evaluated) = &checked.evaluated
        {
            print!("{}", evaluated.render());
        }
        eprint!("{}", render_all(diagnostics, &checked.sources, style));
        if diagnostics.has_errors() {
            eprintln!(
                "{} error(s), {} warning(s)",
                diagnostics.error_count(),
                diagnostics.warning_count()
            );
        } else {
            let resources = checked
                .evaluated
                .as_ref()
                .map(|e| e.all_resources().len())
                .unwrap_or(0);
            println!(
                "The configuration is valid ({resources} resource instance(s), {} warning(s)).",
                diagnostics.warning_count()
            );
        }
    }
    if diagnostics.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
