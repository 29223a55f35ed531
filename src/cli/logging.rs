//! Logs for people debugging a run: `INFRA_LOG=debug` (or any
//! `tracing-subscriber` filter, e.g. `INFRA_LOG=infra::provider=debug`)
//! writes every provider call with its duration, the walker's decisions,
//! state saves and lock traffic to stderr, or to the file
//! `INFRA_LOG_FILE` names. Without `INFRA_LOG`, nothing is logged.

use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber `INFRA_LOG` asks for; without it, `default`
/// (the load balancer logs at `info` to its log file), or nothing.
pub fn init(default: Option<&str>) -> Result<(), String> {
    let filter = match std::env::var_os("INFRA_LOG").filter(|v| !v.is_empty()) {
        Some(filter) => filter.to_string_lossy().into_owned(),
        None => match default {
            Some(default) => default.to_string(),
            None => return Ok(()),
        },
    };
    let filter = EnvFilter::try_new(&filter)
        .map_err(|error| format!("INFRA_LOG={filter} is not a log filter: {error}\n  help: write a level (`debug`, `info`) or `target=level` pairs, e.g. `INFRA_LOG=infra::provider=debug`"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let installed = match std::env::var_os("INFRA_LOG_FILE").filter(|v| !v.is_empty()) {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|error| {
                    format!(
                        "cannot open INFRA_LOG_FILE `{}`: {error}",
                        std::path::Path::new(&path).display()
                    )
                })?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
    };
    installed.map_err(|error| format!("cannot start logging: {error}"))
}
