//! The command line: argument parsing (clap) and one module per command.

mod apply;
mod drift;
pub mod exit;
mod fmt;
mod graph;
mod import;
mod init;
mod logging;
mod output;
mod plan;
mod planning;
mod refresh_only;
mod rollout;
mod show;
mod state;
mod stop_signals;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diagnostics::ReportStyle;

#[derive(Debug, Parser)]
#[command(
    name = "infra",
    version,
    about = "Infrastructure as code: plan what would change, apply it safely, roll out with health checks",
    after_help = "Run `infra COMMAND --help` for the options of a command."
)]
pub struct Cli {
    /// Run in DIR, as Terraform's -chdir (relative paths are then DIR's)
    #[arg(
        short = 'C',
        long = "directory",
        visible_alias = "chdir",
        value_name = "DIR",
        global = true
    )]
    pub directory: Option<PathBuf>,

    /// `-input=false`: never ask anything (CI)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub input: bool,

    /// Never use colour (also: the NO_COLOR environment variable)
    #[arg(long, global = true)]
    pub no_color: bool,

    #[command(subcommand)]
    pub command: Command,
}

impl VariableArgs {
    /// What a command that evaluates the configuration in `dir` checks it
    /// with: these variables, `INFRA_VAR_*`, the providers' schemas.
    pub fn check_options(
        &self,
        dir: PathBuf,
        display_dir: PathBuf,
        schemas: std::sync::Arc<crate::eval::SchemaCatalog>,
    ) -> crate::check::CheckOptions {
        crate::check::CheckOptions {
            dir,
            display_dir,
            vars: self.vars.clone(),
            var_files: self.var_files.clone(),
            env_vars: Vec::new(),
            saved_values: Vec::new(),
            schemas,
        }
        .with_process_env()
    }
}

/// Variable options shared by the commands that evaluate a configuration.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct VariableArgs {
    /// Set a variable: -var NAME=VALUE (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE", global = true)]
    pub vars: Vec<String>,
    /// Read variables from a file of `name = value` lines (repeatable)
    #[arg(long = "var-file", value_name = "FILE", global = true)]
    pub var_files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record where the state is kept; after a backend change, copy the state there (--migrate-state)
    Init(init::InitArgs),
    /// Show what apply would change (refresh, then diff; changes nothing)
    Plan(plan::PlanArgs),
    /// Make the infrastructure match the configuration
    Apply(apply::ApplyArgs),
    /// Destroy everything the state tracks, in reverse dependency order
    Destroy(apply::ApplyArgs),
    /// Report what changed outside infra (exit 2 when something drifted)
    Drift(drift::DriftArgs),
    /// Check the configuration: syntax, references, types, functions
    Validate(validate::ValidateArgs),
    /// Rewrite files in the canonical layout
    Fmt(fmt::FmtArgs),
    /// Print the resource graph (Graphviz DOT, or text in dependency order)
    Graph(graph::GraphArgs),
    /// Show output values from the state
    Output(output::OutputArgs),
    /// Show a plan saved with `plan -out FILE` (text or --json), or the state
    Show(show::ShowArgs),
    /// Print a shell completion script: `infra completions bash > /etc/bash_completion.d/infra`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `infra man > infra.1 && man ./infra.1`
    Man,
    /// Print infra's version, its providers and the versions of its formats
    Version {
        /// As JSON (for CI: which formats this infra reads and writes)
        #[arg(long)]
        json: bool,
    },
    /// Inspect and edit the state: list, show, rm, mv, rekey, pull, push, merge
    State(state::StateArgs),
    /// Remove a state lock left by a run that is gone: `infra force-unlock ID`
    ForceUnlock {
        /// The lock id, as printed by the run that found the lock
        id: String,
    },
    /// Adopt an existing object into the state: `infra import ADDR ID`
    Import(import::ImportArgs),
    /// A deployment's rollout: `infra rollout status|promote|abort ADDR`
    Rollout(rollout::RolloutArgs),
    /// Run a `local_lb` load balancer (started by the local provider, which
    /// outlives infra; not for direct use)
    #[command(hide = true)]
    LocalLb {
        /// Where clients connect, e.g. 127.0.0.1:8080
        #[arg(long)]
        listen: String,
        /// Where the admin API listens (port 0: any free one)
        #[arg(long, default_value = "127.0.0.1:0")]
        admin: String,
        /// Its runtime directory: the admin token is read from it, and
        /// `admin.json` announces the process there
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Terraform-style single-dash long options (`-var`, `-var-file`, `-out`…)
/// are accepted by rewriting them to their `--` form before clap sees them.
pub fn normalize_arguments(args: impl IntoIterator<Item = String>) -> Vec<String> {
    const SINGLE_DASH_LONG: &[&str] = &[
        "var",
        "var-file",
        "out",
        "target",
        "replace",
        "refresh",
        "parallelism",
        "auto-approve",
        "detailed-exitcode",
        "json",
        "check",
        "diff",
        "no-color",
        "destroy",
        "lock",
        "lock-timeout",
        "migrate-state",
        "force-copy",
        "reconfigure",
        "show-sensitive",
        "force",
        "chdir",
        "input",
        "format",
        "max-bytes",
        "raw",
        "refresh-only",
        "recursive",
    ];
    args.into_iter()
        .map(|arg| {
            let Some(rest) = arg.strip_prefix('-') else {
                return arg;
            };
            if rest.starts_with('-') {
                return arg;
            }
            let name = rest.split('=').next().unwrap_or(rest);
            if SINGLE_DASH_LONG.contains(&name) {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

/// How to draw diagnostics on stderr.
pub fn report_style(no_color: bool) -> ReportStyle {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color || no_color_env || !std::io::stderr().is_terminal() {
        ReportStyle::Plain
    } else {
        ReportStyle::Colored
    }
}

pub fn run(cli: Cli) -> ExitCode {
    // The load balancer runs detached; its log file is its only voice.
    let default_log = matches!(cli.command, Command::LocalLb { .. }).then_some("info");
    if let Err(message) = logging::init(default_log) {
        eprintln!("error: {message}");
        return ExitCode::from(1);
    }
    let style = report_style(cli.no_color);
    // `-C DIR`: from here on DIR is the working directory, so that paths in
    // the configuration (`local_file.path`, `path.module`) and on the
    // command line mean the same whichever directory infra was started in.
    let directory = cli.directory.clone();
    if let Some(dir) = &directory
        && let Err(error) = std::env::set_current_dir(dir)
    {
        use crate::diagnostics::{Code, Diagnostic, Diagnostics, io_reason, render_all};
        let mut diagnostics = Diagnostics::new();
        diagnostics.push(
            Diagnostic::error(
                Code::NoConfiguration,
                format!(
                    "`{}` is not a directory ({})",
                    dir.display(),
                    io_reason(&error)
                ),
            )
            .with_help("-C (-chdir) takes the directory of the configuration"),
        );
        eprint!("{}", render_all(&diagnostics, &Default::default(), style));
        return ExitCode::from(exit::ERROR);
    }
    match cli.command {
        Command::Validate(args) => validate::run(directory, &args, style),
        Command::Fmt(args) => fmt::run(directory, &args, style),
        Command::Init(args) => init::run(directory, &args, style),
        Command::Plan(args) => plan::run(directory, &args, style, cli.no_color),
        Command::Apply(mut args) => {
            args.input = cli.input;
            apply::run(directory, &args, false, style, cli.no_color)
        }
        Command::Destroy(mut args) => {
            args.input = cli.input;
            apply::run(directory, &args, true, style, cli.no_color)
        }
        Command::Drift(args) => drift::run(directory, &args, style),
        Command::Graph(args) => graph::run(directory, &args, style),
        Command::Output(args) => output::run(directory, &args, style),
        Command::Show(args) => show::run(directory, &args, style),
        Command::Version { json } => version(json),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "infra", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: cannot write the manual page: {error}");
                    ExitCode::from(exit::ERROR)
                }
            }
        }
        Command::State(args) => state::run(directory, &args, style),
        Command::ForceUnlock { id } => state::force(directory, &id, style),
        Command::Import(args) => import::run(directory, &args, style),
        Command::Rollout(args) => rollout::run(directory, &args, style, cli.no_color),
        Command::LocalLb { listen, admin, dir } => {
            let options = infra_provider_local::lb::Options { listen, admin, dir };
            ExitCode::from(infra_provider_local::lb::run(options) as u8)
        }
    }
}

/// `infra version [--json]`.
fn version(json: bool) -> ExitCode {
    let providers: Vec<String> = crate::providers::ProviderRegistry::builtin()
        .iter()
        .map(|provider| provider.name().to_string())
        .collect();
    let platform = format!("{}_{}", std::env::consts::OS, std::env::consts::ARCH);
    let formats = serde_json::json!({
        "state": crate::state::FORMAT_VERSION,
        "plan": crate::plan::PLAN_FORMAT_VERSION,
        "saved_plan": crate::plan::SAVED_PLAN_VERSION,
        "drift": crate::plan::DRIFT_FORMAT_VERSION,
        "validate": validate::VALIDATE_FORMAT_VERSION,
    });
    if json {
        let report = serde_json::json!({
            "infra_version": env!("CARGO_PKG_VERSION"),
            "platform": platform,
            "providers": providers,
            "format_versions": formats,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!("infra v{} on {platform}", env!("CARGO_PKG_VERSION"));
        println!("providers: {}", providers.join(", "));
    }
    ExitCode::SUCCESS
}
