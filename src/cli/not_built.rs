//! Commands that are part of infra's surface but not built yet: they say so
//! plainly and exit 2, so that scripts never mistake them for success.

use std::process::ExitCode;

/// Accepts and ignores any arguments.
#[derive(Debug, clap::Args)]
pub struct Rest {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

pub fn run(command: &str) -> ExitCode {
    eprintln!("error: `infra {command}` is not built yet");
    eprintln!(
        "  help: this version can `validate`, `fmt`, `graph` and `plan` configurations and inspect or edit the state (`state`, `output`, `force-unlock`); see README.md for what is planned"
    );
    ExitCode::from(2)
}
