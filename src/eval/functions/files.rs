//! Functions that read files, relative to the module's directory: `file`,
//! `filesha256`, `filebase64sha256`, `fileset`.

use super::*;
use crate::config::{Limited, read_limited};

/// How many files `fileset` looks at before giving up.
const MAX_FILESET_ENTRIES: usize = 100_000;

/// Where a path given to a file function is: relative to the module's
/// directory, or, when nothing is there, to the working directory — so
/// that Terraform's `"${path.module}/file"` (a path from the working
/// directory) finds the same file.
fn locate(relative: &str, context: &CallContext) -> std::path::PathBuf {
    let in_module = context.module_dir.join(relative);
    if in_module.exists() || Path::new(relative).is_absolute() {
        return in_module;
    }
    let from_working_directory = Path::new(relative);
    if from_working_directory.exists() {
        from_working_directory.to_path_buf()
    } else {
        in_module
    }
}

/// The bytes of the file named by argument `index` (`function` names the
/// caller in errors).
fn read(
    args: &[Value],
    index: usize,
    context: &CallContext,
    function: &str,
) -> Result<Vec<u8>, FunctionError> {
    let relative = string(args, index)?;
    let path = locate(relative, context);
    let cannot_read = |error: std::io::Error| {
        FunctionError::at(
            index,
            format!("cannot read `{relative}`: {}", io_reason(&error)),
        )
        .help("paths are relative to the directory of the module")
    };
    match read_limited(&path, MAX_FILE_FUNCTION_BYTES).map_err(cannot_read)? {
        Limited::Read(bytes) => Ok(bytes),
        Limited::TooLarge(size) => Err(FunctionError::at(
            index,
            format!(
                "`{relative}` is too large ({size} bytes; `{function}` reads at most {} MiB)",
                MAX_FILE_FUNCTION_BYTES >> 20
            ),
        )),
        Limited::NotAFile => Err(FunctionError::at(
            index,
            format!("`{relative}` is not a regular file (a FIFO, a device or a directory)"),
        )
        .help(format!("`{function}` reads regular files only"))),
    }
}

/// The text of a file.
pub(super) fn file(args: &[Value], context: &CallContext) -> Result<Value, FunctionError> {
    let bytes = read(args, 0, context, "file")?;
    String::from_utf8(bytes).map(Value::string).map_err(|_| {
        FunctionError::at(
            0,
            format!("`{}` is not UTF-8 text", string(args, 0).unwrap_or("")),
        )
        .help("`file` reads text files; `filebase64sha256` and `filesha256` take any bytes")
    })
}

pub(super) fn filesha256(args: &[Value], context: &CallContext) -> Result<Value, FunctionError> {
    let bytes = read(args, 0, context, "filesha256")?;
    Ok(Value::string(hex(&sha2::Sha256::digest(&bytes))))
}

pub(super) fn filebase64sha256(
    args: &[Value],
    context: &CallContext,
) -> Result<Value, FunctionError> {
    let bytes = read(args, 0, context, "filebase64sha256")?;
    Ok(Value::string(
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes)),
    ))
}

/// The files under a directory whose paths (relative to it, with `/`)
/// match a glob: `*` and `?` within a name, `**` across directories,
/// `{a,b}` and `[ab]`. Sorted; directories themselves are not listed.
pub(super) fn fileset(args: &[Value], context: &CallContext) -> Result<Value, FunctionError> {
    let relative = string(args, 0)?;
    let pattern = string(args, 1)?;
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|error| {
            FunctionError::at(1, format!("invalid pattern: {}", error.kind()))
                .help("`*` and `?` match within a name, `**` across directories")
        })?
        .compile_matcher();
    let root = locate(relative, context);
    if !root.is_dir() {
        return Err(
            FunctionError::at(0, format!("`{relative}` is not a directory"))
                .help("paths are relative to the directory of the module"),
        );
    }
    let mut found = Vec::new();
    let mut pending = vec![std::path::PathBuf::new()];
    let mut seen = 0usize;
    while let Some(below) = pending.pop() {
        let entries = std::fs::read_dir(root.join(&below)).map_err(|error| {
            FunctionError::at(
                0,
                format!("cannot read `{}`: {}", below.display(), io_reason(&error)),
            )
        })?;
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_FILESET_ENTRIES {
                return Err(FunctionError::at(
                    0,
                    format!("`{relative}` holds over {MAX_FILESET_ENTRIES} entries"),
                )
                .help("point `fileset` at a smaller directory"));
            }
            let path = below.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let text = path.to_string_lossy().replace('\\', "/");
                if matcher.is_match(&text) {
                    found.push(text);
                }
            }
        }
    }
    found.sort();
    Ok(Value::list(found.into_iter().map(Value::string).collect()))
}

/// The text of the template file `templatefile` names (its first argument).
pub(crate) fn template_text(
    args: &[Value],
    context: &CallContext,
) -> Result<String, FunctionError> {
    let bytes = read(args, 0, context, "templatefile")?;
    String::from_utf8(bytes).map_err(|_| {
        FunctionError::at(
            0,
            format!("`{}` is not UTF-8 text", string(args, 0).unwrap_or("")),
        )
        .help("a template is a text file")
    })
}
