//! `infra fmt`: rewrite files in the canonical layout, or check/diff them.

use std::path::{Path, PathBuf};
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
    /// Also format the `*.infra` files of every subdirectory (hidden ones
    /// excepted), as Terraform's `fmt -recursive`
    #[arg(long)]
    pub recursive: bool,
    /// Files or directories to format (default: every `*.infra` file of the
    /// directory)
    pub files: Vec<PathBuf>,
}

/// The `*.infra` files of `dir` (shown as `display`), in name order, then
/// with `recursive` those of its subdirectories, hidden ones (`.git`,
/// `.infra`) excepted.
fn files_in(
    dir: &Path,
    display: &Path,
    recursive: bool,
    out: &mut Vec<(PathBuf, String)>,
) -> std::io::Result<()> {
    for path in infra_files(dir)? {
        let name = display.join(path.file_name().unwrap_or_default());
        out.push((path, name.to_string_lossy().into_owned()));
    }
    if !recursive {
        return Ok(());
    }
    let mut subdirectories: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_dir()
                && !path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        })
        .collect();
    subdirectories.sort();
    for subdirectory in subdirectories {
        let name = display.join(subdirectory.file_name().unwrap_or_default());
        files_in(&subdirectory, &name, true, out)?;
    }
    Ok(())
}

pub fn run(directory: Option<PathBuf>, args: &FmtArgs, style: ReportStyle) -> ExitCode {
    let (dir, display_dir) = super::validate::directories(directory);
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let named: Vec<(PathBuf, PathBuf)> = if args.files.is_empty() {
        vec![(dir.clone(), display_dir.clone())]
    } else {
        args.files
            .iter()
            .map(|f| (dir.join(f), f.clone()))
            .collect()
    };
    for (path, shown) in named {
        if !path.is_dir() {
            files.push((path, shown.to_string_lossy().into_owned()));
            continue;
        }
        if let Err(error) = files_in(&path, &shown, args.recursive, &mut files) {
            eprintln!(
                "error: cannot read `{}`: {}",
                shown.display(),
                crate::diagnostics::io_reason(&error)
            );
            return ExitCode::from(1);
        }
    }
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
