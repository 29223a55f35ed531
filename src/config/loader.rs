//! Reading a configuration: a directory of `*.infra` files (in name order),
//! and recursively the directories of its `module` blocks.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::declarations::ModuleDeclarations;
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::syntax::{File, FileId, SourceMap, Span, parse_file};

/// One module directory, parsed and checked for shape, with its children.
#[derive(Debug)]
pub struct ModuleConfig {
    /// The directory the files were read from.
    pub dir: PathBuf,
    /// The module's address: empty for the root, `["network"]` for `module.network`.
    pub path: Vec<String>,
    pub files: Vec<FileId>,
    pub declarations: ModuleDeclarations,
    /// Child modules by call name (a call whose directory failed to load is absent).
    pub children: BTreeMap<String, ModuleConfig>,
}

impl ModuleConfig {
    /// `module.a.module.b`, or `root`.
    pub fn display_path(&self) -> String {
        if self.path.is_empty() {
            "root".into()
        } else {
            self.path
                .iter()
                .map(|name| format!("module.{name}"))
                .collect::<Vec<_>>()
                .join(".")
        }
    }
}

/// Lists the `*.infra` files of a directory in name order.
pub fn infra_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "infra") && path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one file into the source map and parses it.
pub fn read_and_parse(
    path: &Path,
    display_name: String,
    sources: &mut SourceMap,
    diagnostics: &mut Diagnostics,
) -> Option<(FileId, File)> {
    let id = read_source(path, display_name, sources, diagnostics)?;
    let (file, parse_diagnostics) = parse_file(id, &sources.file(id).text);
    for diagnostic in parse_diagnostics {
        diagnostics.push(diagnostic);
    }
    Some((id, file))
}

/// Reads the file at `path` into `sources` (at most `MAX_FILE_BYTES` of
/// UTF-8 text, or a diagnostic).
fn read_source(
    path: &Path,
    display_name: String,
    sources: &mut SourceMap,
    diagnostics: &mut Diagnostics,
) -> Option<FileId> {
    use crate::config::{Limited, read_limited};
    let max = crate::syntax::MAX_FILE_BYTES as u64;
    let bytes = match read_limited(path, max) {
        Ok(Limited::Read(bytes)) => bytes,
        Ok(Limited::TooLarge(size)) => {
            diagnostics.push(
                Diagnostic::error(
                    Code::FileTooLarge,
                    format!("`{display_name}` is too large ({size} bytes)"),
                )
                .with_help(format!(
                    "split the configuration into several files of at most {} MiB",
                    max >> 20
                )),
            );
            return None;
        }
        Ok(Limited::NotAFile) => {
            diagnostics.push(
                Diagnostic::error(Code::Io, format!("`{display_name}` is not a regular file"))
                    .with_help("configuration files must be regular files, not FIFOs or devices"),
            );
            return None;
        }
        Err(error) => {
            diagnostics.push(
                Diagnostic::error(
                    Code::Io,
                    format!(
                        "cannot read `{display_name}`: {}",
                        crate::diagnostics::io_reason(&error)
                    ),
                )
                .with_help("check that the file exists and is readable"),
            );
            return None;
        }
    };
    let (text, bad_utf8_at) = match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(error) => {
            let at = error.utf8_error().valid_up_to();
            (
                String::from_utf8_lossy(error.as_bytes()).into_owned(),
                Some(at),
            )
        }
    };
    let id = sources.add(display_name.clone(), path.to_path_buf(), text);
    if let Some(at) = bad_utf8_at {
        diagnostics.push(
            Diagnostic::error(Code::NotUtf8, format!("`{display_name}` is not UTF-8 text"))
                .with_label(Span::new(id, at, at + 1), "invalid UTF-8 starts here")
                .with_help("`.infra` files must be UTF-8; is this a binary file?"),
        );
        return None;
    }
    Some(id)
}

/// Below this much text a module's files are parsed on the calling
/// thread: starting threads would cost more than it saves.
const PARALLEL_PARSE_BYTES: usize = 256 << 10;

/// The stack of a parsing thread, as large as the main thread's: the
/// scanner bounds nesting, the parser recurses into it.
const PARSE_STACK_BYTES: usize = 256 << 20;

/// Parses the files `ids` of `sources`, on one thread per core when there
/// is much text (a large configuration is many files); the files and their
/// diagnostics in the order of `ids`.
/// A parsed file and the problems found in it.
type Parsed = (File, Vec<Diagnostic>);

fn parse_files(sources: &SourceMap, ids: &[FileId]) -> Vec<Parsed> {
    let text_of = |id: FileId| sources.file(id).text.as_str();
    let total: usize = ids.iter().map(|&id| text_of(id).len()).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(ids.len());
    if total < PARALLEL_PARSE_BYTES || threads < 2 {
        return ids.iter().map(|&id| parse_file(id, text_of(id))).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let parsed: Vec<std::sync::Mutex<Option<Parsed>>> =
        ids.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || {
        loop {
            let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&id) = ids.get(at) else { break };
            *parsed[at].lock().expect("parsed") = Some(parse_file(id, text_of(id)));
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            let spawned = std::thread::Builder::new()
                .stack_size(PARSE_STACK_BYTES)
                .spawn_scoped(scope, work);
            if spawned.is_err() {
                break;
            }
        }
        work();
    });
    parsed
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("parsed")
                .expect("every file parsed")
        })
        .collect()
}

/// Joins and normalises a display path lexically (`./a/../b` → `b`).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Loads the configuration in `dir`. `display_dir` prefixes file names in
/// diagnostics (what the user typed after `-C`, or empty).
pub fn load_root(
    dir: &Path,
    display_dir: &Path,
    sources: &mut SourceMap,
    diagnostics: &mut Diagnostics,
) -> Option<ModuleConfig> {
    if !dir.is_dir() {
        diagnostics.push(
            Diagnostic::error(
                Code::NoConfiguration,
                format!("`{}` is not a directory", dir.display()),
            )
            .with_help("run infra in a configuration directory, or point to one with `-C DIR`"),
        );
        return None;
    }
    let mut stack = Vec::new();
    let mut loaded = 0;
    let module = load_module(
        dir,
        display_dir,
        Vec::new(),
        &mut stack,
        &mut loaded,
        None,
        sources,
        diagnostics,
    )?;
    if module.files.is_empty() && !diagnostics.has_errors() {
        diagnostics.push(
            Diagnostic::error(
                Code::NoConfiguration,
                format!("no `.infra` files in `{}`", dir.display()),
            )
            .with_help("create a `main.infra`, or point to a configuration with `-C DIR`"),
        );
    }
    Some(module)
}

/// The most module instances one configuration loads (every call of every
/// module that is itself loaded): a tree where each module calls the next
/// twice doubles at every level.
pub const MAX_MODULE_INSTANCES: usize = 10_000;

#[allow(clippy::too_many_arguments)]
fn load_module(
    dir: &Path,
    display_dir: &Path,
    path: Vec<String>,
    stack: &mut Vec<PathBuf>,
    loaded: &mut usize,
    called_from: Option<Span>,
    sources: &mut SourceMap,
    diagnostics: &mut Diagnostics,
) -> Option<ModuleConfig> {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let file_paths = match infra_files(dir) {
        Ok(files) => files,
        Err(error) => {
            let mut diagnostic = Diagnostic::error(
                Code::ModuleSource,
                format!("cannot read module directory `{}`: {}", display_dir.display(), crate::diagnostics::io_reason(&error)),
            )
            .with_help("`source` is a directory relative to the module that calls it, e.g. \"./modules/network\"");
            if let Some(span) = called_from {
                diagnostic = diagnostic.with_label(span, "this directory");
            }
            diagnostics.push(diagnostic);
            return None;
        }
    };
    if let Some(call_span) = called_from
        && file_paths.is_empty()
    {
        diagnostics.push(
            Diagnostic::error(
                Code::ModuleSource,
                format!(
                    "no `.infra` files in module directory `{}`",
                    display_dir.display()
                ),
            )
            .with_label(call_span, "this directory")
            .with_help("point `source` at a directory that holds the module's `.infra` files"),
        );
    }
    let mut ids = Vec::new();
    for file_path in file_paths {
        let file_name = file_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let display_name = normalize(&display_dir.join(&file_name))
            .to_string_lossy()
            .into_owned();
        if let Some(id) = read_source(&file_path, display_name, sources, diagnostics) {
            ids.push(id);
        }
    }
    let mut files = Vec::with_capacity(ids.len());
    for (&id, (file, parse_diagnostics)) in ids.iter().zip(parse_files(sources, &ids)) {
        for diagnostic in parse_diagnostics {
            diagnostics.push(diagnostic);
        }
        files.push((id, file));
    }
    let declarations =
        ModuleDeclarations::from_files(files.into_iter().map(|(_, file)| file), diagnostics);
    stack.push(canonical);
    let mut children = BTreeMap::new();
    for (name, call) in &declarations.module_calls {
        if !(call.source.starts_with("./") || call.source.starts_with("../")) {
            diagnostics.push(
                Diagnostic::error(
                    Code::ModuleSource,
                    format!("module source `{}` is not a local path", call.source),
                )
                .with_label(
                    call.source_span,
                    "expected a path starting with `./` or `../`",
                )
                .with_help(
                    "modules are directories next to the configuration, e.g. \"./modules/network\"",
                ),
            );
            continue;
        }
        let child_dir = dir.join(&call.source);
        let child_canonical = child_dir
            .canonicalize()
            .unwrap_or_else(|_| child_dir.clone());
        if let Some(position) = stack.iter().position(|p| *p == child_canonical) {
            let chain: Vec<String> = stack[position..]
                .iter()
                .map(|p| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .chain(std::iter::once(
                    child_canonical
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ))
                .collect();
            diagnostics.push(
                Diagnostic::error(
                    Code::ModuleCycle,
                    format!("module `{name}` includes itself: {}", chain.join(" → ")),
                )
                .with_label(
                    call.source_span,
                    "this source leads back to a module that is already being loaded",
                )
                .with_help("modules must form a tree; move what both need into a third module"),
            );
            continue;
        }
        if *loaded >= MAX_MODULE_INSTANCES {
            if *loaded == MAX_MODULE_INSTANCES {
                *loaded += 1;
                diagnostics.push(
                    Diagnostic::error(
                        Code::EvaluationTooLarge,
                        format!(
                            "the configuration loads more than {MAX_MODULE_INSTANCES} module instances"
                        ),
                    )
                    .with_label(call.source_span, "the module over the limit")
                    .with_help("modules that call other modules several times multiply at each level; flatten the tree"),
                );
            }
            continue;
        }
        *loaded += 1;
        let mut child_path = path.clone();
        child_path.push(name.clone());
        let child_display = normalize(&display_dir.join(&call.source));
        if let Some(child) = load_module(
            &child_dir,
            &child_display,
            child_path,
            stack,
            loaded,
            Some(call.source_span),
            sources,
            diagnostics,
        ) {
            children.insert(name.clone(), child);
        }
    }
    stack.pop();
    Some(ModuleConfig {
        dir: dir.to_path_buf(),
        path,
        files: ids,
        declarations,
        children,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_files_parsed_in_parallel_keep_their_order_and_their_errors() {
        // Over PARALLEL_PARSE_BYTES in all: parsed on several threads.
        let dir = tempfile::tempdir().unwrap();
        let block = |file: usize, i: usize| {
            format!("resource random_id f{file}_{i} {{\n  byte_length = 4\n}}\n\n")
        };
        for file in 0..8 {
            let mut text: String = (0..1000).map(|i| block(file, i)).collect();
            if file == 5 {
                text.push_str("resource random_id broken {\n  byte_length = = 4\n}\n");
            }
            std::fs::write(dir.path().join(format!("part{file}.infra")), text).unwrap();
        }
        let mut sources = SourceMap::new();
        let mut diagnostics = Diagnostics::new();
        let config = load_root(dir.path(), Path::new("."), &mut sources, &mut diagnostics)
            .expect("the module loads");
        let names: Vec<&str> = config
            .files
            .iter()
            .map(|&id| sources.file(id).name.as_str())
            .collect();
        let expected: Vec<String> = (0..8).map(|file| format!("part{file}.infra")).collect();
        assert_eq!(names, expected);
        assert_eq!(config.declarations.resources.len(), 8000);
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| sources.file_line(d.labels.first().expect("a label").span))
            .collect();
        assert_eq!(errors, vec!["part5.infra:4002"]);
    }
}
