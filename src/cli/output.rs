//! `infra output [NAME] [--json | --raw] [--show-sensitive]`: output
//! values from the state.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::{ReportStyle, did_you_mean};
use crate::eval::Value;

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// One output (default: all)
    pub name: Option<String>,
    /// Print JSON (an object of all outputs, or the one value)
    #[arg(long)]
    pub json: bool,
    /// Print one string, number or bool as it is, without quotes or a
    /// newline (for scripts: `$(infra output -raw url)`)
    #[arg(long, conflicts_with = "json", requires = "name")]
    pub raw: bool,
    /// Print sensitive values instead of `(sensitive)`
    #[arg(long)]
    pub show_sensitive: bool,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

pub fn run(directory: Option<PathBuf>, args: &OutputArgs, style: ReportStyle) -> ExitCode {
    let backend = match super::planning::open_backend(directory, &args.variables, style) {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    let state = match backend.read() {
        Ok(stored) => stored.state.unwrap_or_else(|| crate::state::State::new("")),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let shown = |value: &serde_json::Value, sensitive: bool| -> serde_json::Value {
        if sensitive && !args.show_sensitive {
            serde_json::Value::String("(sensitive)".into())
        } else {
            value.clone()
        }
    };
    if let Some(name) = &args.name {
        let Some(output) = state.outputs.get(name) else {
            let help = did_you_mean(name, state.outputs.keys().map(String::as_str))
                .unwrap_or_else(|| "`infra output` lists the outputs; outputs appear in the state after `infra apply`".into());
            eprintln!("error: no output `{name}` in the state\n  help: {help}");
            return ExitCode::from(1);
        };
        if args.raw {
            return print_raw(
                name,
                &output.value,
                output.sensitive && !args.show_sensitive,
            );
        }
        let value = shown(&output.value, output.sensitive);
        if args.json {
            println!("{value}");
        } else {
            match &value {
                serde_json::Value::String(text) => println!("{text}"),
                other => println!("{}", Value::from_json(other)),
            }
        }
        return ExitCode::SUCCESS;
    }
    if args.json {
        let all: serde_json::Map<String, serde_json::Value> = state
            .outputs
            .iter()
            .map(|(name, output)| {
                (name.clone(), serde_json::json!({ "value": shown(&output.value, output.sensitive), "sensitive": output.sensitive }))
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else if state.outputs.is_empty() {
        eprintln!("No outputs in the state (outputs are recorded by `infra apply`).");
    } else {
        print!("{}", listed(&state.outputs, args.show_sensitive));
    }
    ExitCode::SUCCESS
}

/// `name = value` lines, aligned; secrets as `(sensitive)` unless shown.
pub(super) fn listed(
    outputs: &std::collections::BTreeMap<String, crate::state::OutputState>,
    show_sensitive: bool,
) -> String {
    let width = outputs.keys().map(|k| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, output) in outputs {
        let value = if output.sensitive && !show_sensitive {
            "(sensitive)".to_string()
        } else {
            Value::from_json(&output.value).to_string()
        };
        out.push_str(&format!("{name:width$} = {value}\n"));
    }
    out
}

/// `output -raw NAME`: the value as it is, for a shell to capture. A
/// secret is refused rather than printed as `(sensitive)` (which a script
/// would take for the value) unless `--show-sensitive` says to print it.
fn print_raw(name: &str, value: &serde_json::Value, hidden: bool) -> ExitCode {
    use std::io::Write as _;
    if hidden {
        eprintln!(
            "error: the output `{name}` is sensitive\n  help: `infra output -raw --show-sensitive {name}` prints it"
        );
        return ExitCode::from(1);
    }
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        serde_json::Value::Bool(flag) => flag.to_string(),
        serde_json::Value::Null => String::new(),
        _ => {
            eprintln!(
                "error: the output `{name}` is a list or an object; -raw prints strings, numbers and bools\n  help: `infra output -json {name}` prints it as JSON"
            );
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    ExitCode::SUCCESS
}
