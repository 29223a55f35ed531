//! `infra plan`: refresh, evaluate against the refreshed state, diff, show.
//! Changes nothing anywhere.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::{Diagnostic, ReportStyle, render_all};
use crate::plan::{RenderOptions, plan_loaded, refresh, render, to_json};
use crate::state::State;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Print the machine-readable plan (JSON) instead of text
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there are no changes, 2 when there are (1 on errors)
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Refresh the state through the providers first (default true)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    pub refresh: bool,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

pub fn run(
    directory: Option<PathBuf>,
    args: &PlanArgs,
    style: ReportStyle,
    no_color: bool,
) -> ExitCode {
    let (dir, display_dir) = super::validate::directories(directory);
    let options = args.variables.check_options(dir.clone(), display_dir);
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
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    let state = match crate::state::load(&state_path) {
        Ok(state) => state.unwrap_or_else(|| State::new("")),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let providers = crate::providers::builtin();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let (refreshed, refresh_diagnostics) = if args.refresh {
        runtime.block_on(refresh(&state, &providers))
    } else {
        (state.clone(), Default::default())
    };
    let (mut checked, planned) = plan_loaded(loaded, &options, &refreshed);
    checked.diagnostics.extend(refresh_diagnostics);
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
            if !providers.iter().any(|p| p.name() == name) {
                checked.diagnostics.push(
                    Diagnostic::error("infra::no_provider", format!("no provider `{name}` in this build for `{}`", instance.address))
                        .with_label(instance.span, "cannot be planned or applied yet")
                        .with_help("the built-in providers are `local` and `random`; `infra validate` checks other configurations"),
                );
            }
        }
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
        return ExitCode::from(1);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&planned, &options.schemas)).unwrap_or_default()
        );
    } else {
        let color = !no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stdout().is_terminal();
        print!(
            "{}",
            render(&planned, &options.schemas, RenderOptions { color })
        );
    }
    if args.detailed_exitcode && planned.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
