//! `infra fmt`: rewrite files in the canonical layout, or check/diff them.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::infra_files;
use crate::diagnostics::{Diagnostics, ReportStyle, render_all};
use crate::format::format_source;
use crate::syntax::SourceMap;

#[derive(Debug, clap::Args)]
pub struct FmtArgs {
    /// Change nothing; exit 1 and list the files that are not formatted
    #[arg(long)]
    pub check: bool,
    /// Show a unified diff of the changes instead of writing them
    #[arg(long)]
    pub diff: bool,
    /// Files to format (default: every `*.infra` file of the directory)
    pub files: Vec<PathBuf>,
}

pub fn run(directory: Option<PathBuf>, args: &FmtArgs, style: ReportStyle) -> ExitCode {
    let (dir, display_dir) = super::validate::directories(directory);
    let files: Vec<(PathBuf, String)> = if args.files.is_empty() {
        match infra_files(&dir) {
            Ok(paths) => paths
                .into_iter()
                .map(|path| {
                    let name = display_dir.join(path.file_name().unwrap_or_default());
                    (path, name.to_string_lossy().into_owned())
                })
                .collect(),
            Err(error) => {
                eprintln!(
                    "error: cannot read `{}`: {}",
                    dir.display(),
                    crate::diagnostics::io_reason(&error)
                );
                return ExitCode::from(1);
            }
        }
    } else {
        args.files
            .iter()
            .map(|f| (dir.join(f), f.to_string_lossy().into_owned()))
            .collect()
    };
    let mut sources = SourceMap::new();
    let mut diagnostics = Diagnostics::new();
    let mut changed = Vec::new();
    let mut failed = false;
    for (path, name) in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!(
                    "error: cannot read `{name}`: {}",
                    crate::diagnostics::io_reason(&error)
                );
                failed = true;
                continue;
            }
        };
        let id = sources.add(name.clone(), path.clone(), text);
        let text = &sources.file(id).text;
        let formatted = match format_source(id, text) {
            Ok(formatted) => formatted,
            Err(errors) => {
                errors.into_iter().for_each(|d| diagnostics.push(d));
                continue;
            }
        };
        if formatted == *text {
            continue;
        }
        changed.push(name.clone());
        if args.diff {
            let diff = similar::TextDiff::from_lines(text.as_str(), formatted.as_str());
            print!(
                "{}",
                diff.unified_diff()
                    .context_radius(3)
                    .header(&name, &format!("{name} (formatted)"))
            );
        }
        if !args.check
            && !args.diff
            && let Err(error) = std::fs::write(&path, &formatted)
        {
            eprintln!("error: cannot write `{name}`: {error}");
            failed = true;
        }
    }
    if !diagnostics.is_empty() {
        eprint!("{}", render_all(&diagnostics, &sources, style));
        eprintln!("fmt: files with syntax errors were left unchanged");
        failed = true;
    }
    if args.check {
        for name in &changed {
            println!("{name}");
        }
        if !changed.is_empty() {
            eprintln!(
                "{} file(s) are not formatted; run `infra fmt` to fix them",
                changed.len()
            );
            return ExitCode::from(1);
        }
    } else if !args.diff {
        for name in &changed {
            println!("formatted {name}");
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
