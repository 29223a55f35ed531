//! `infra graph`: the resource graph, as Graphviz DOT or as text.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::check::check;
use crate::diagnostics::{ReportStyle, render_all};
use crate::graph::ResourceGraph;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT, one cluster per module (`infra graph | dot -Tsvg`)
    Dot,
    /// One line per instance with what it depends on, in dependency order
    Text,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

pub fn run(directory: Option<PathBuf>, args: &GraphArgs, style: ReportStyle) -> ExitCode {
    let (dir, display_dir) = super::validate::directories(directory);
    let options = args.variables.check_options(
        dir,
        display_dir,
        crate::providers::ProviderRegistry::builtin().catalog(),
    );
    let checked = check(&options);
    eprint!(
        "{}",
        render_all(&checked.diagnostics, &checked.sources, style)
    );
    let Some(evaluated) = checked
        .evaluated
        .as_ref()
        .filter(|_| !checked.diagnostics.has_errors())
    else {
        eprintln!(
            "{} error(s); fix them to see the graph",
            checked.diagnostics.error_count()
        );
        return ExitCode::from(1);
    };
    let graph = ResourceGraph::build(evaluated);
    match args.format {
        GraphFormat::Dot => print!("{}", graph.to_dot()),
        GraphFormat::Text => {
            for instance in graph.dependency_order() {
                let dependencies = graph.dependencies_of(&instance.address);
                if dependencies.is_empty() {
                    println!("{}", instance.address);
                } else {
                    println!("{} → {}", instance.address, dependencies.join(", "));
                }
            }
        }
    }
    ExitCode::SUCCESS
}
