//! `infra plan`: refresh, evaluate against the refreshed state, diff, show.
//! Changes nothing anywhere.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::ReportStyle;
use crate::events::Events;
use crate::plan::{Plan, RenderOptions, render, render_markdown, to_json};

use super::drift::ReportFormat;
use super::planning::{PlanningArgs, make_plan};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Print the machine-readable plan (JSON) instead of text
    #[arg(long)]
    pub json: bool,
    /// How to print the plan: for people, for machines (as --json), or for
    /// a pull request comment
    #[arg(long, value_enum, default_value = "text", conflicts_with = "json")]
    pub format: ReportFormat,
    /// `--format markdown`: at most this many bytes (a comment's limit)
    #[arg(long, default_value_t = 60_000, value_name = "BYTES")]
    pub max_bytes: usize,
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
    if args.planning.refresh_only {
        if args.destroy || args.out.is_some() || args.json || args.format != ReportFormat::Text {
            eprintln!(
                "error: -refresh-only goes with neither --destroy, -out nor another --format\n  help: `infra plan -refresh-only` shows the drift; `infra apply -refresh-only` records it"
            );
            return ExitCode::from(super::exit::ERROR);
        }
        return super::refresh_only::plan(directory, &args.planning, args.detailed_exitcode, style);
    }
    let run = match make_plan(
        directory,
        &args.planning,
        args.destroy,
        None,
        &Events::none(),
        style,
    ) {
        Ok(run) => run,
        Err(code) => return code,
    };
    run.runtime.block_on(run.providers.close());
    let plan = &run.planned.plan;
    let format = args.format.or_json(args.json);
    match format {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(plan, &run.schemas)).unwrap_or_default()
        ),
        ReportFormat::Text => show(plan, &run.schemas, no_color),
        ReportFormat::Markdown => print!("{}", render_markdown(plan, &run.schemas, args.max_bytes)),
    }
    if let Some(path) = &args.out {
        let mut saved = run.to_saved(&args.planning, &crate::plan::new_secret_key());
        saved.shown = Some(crate::plan::ShownPlan {
            text: render(plan, &run.schemas, RenderOptions { color: false }),
            json: to_json(plan, &run.schemas),
        });
        if let Err(message) = saved.write(path) {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
        if format == ReportFormat::Text {
            println!(
                "\nSaved the plan to {0}. To perform exactly these actions: infra apply {0}",
                path.display()
            );
        }
    }
    if args.detailed_exitcode && plan.has_changes() {
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

/// The planned changes as JSON lines (`infra apply --json`), in the shape
/// of Terraform's `planned_change` messages, then a `change_summary`.
pub fn print_json_lines(plan: &Plan) {
    use std::io::Write as _;
    let now = crate::events::timestamp(std::time::SystemTime::now());
    let mut out = std::io::stdout().lock();
    for change in plan
        .changes
        .iter()
        .filter(|c| c.action != crate::plan::Action::NoOp)
    {
        let line = serde_json::json!({
            "@level": "info",
            "@message": format!("{}: plan to {}", change.address, change.action.name()),
            "@timestamp": now,
            "type": "planned_change",
            "change": { "resource": { "addr": change.address }, "action": change.action.name() },
        });
        let _ = writeln!(out, "{line}");
    }
    let count = |wanted: fn(crate::plan::Action) -> bool| {
        plan.changes.iter().filter(|c| wanted(c.action)).count()
    };
    let replace = count(|a| matches!(a, crate::plan::Action::Replace { .. }));
    let add = count(|a| a == crate::plan::Action::Create) + replace;
    let change = count(|a| a == crate::plan::Action::Update);
    let remove = count(|a| a == crate::plan::Action::Delete) + replace;
    let summary = serde_json::json!({
        "@level": "info",
        "@message": plan.summary(),
        "@timestamp": now,
        "type": "change_summary",
        "changes": { "add": add, "change": change, "remove": remove, "operation": "plan" },
    });
    let _ = writeln!(out, "{summary}");
}
