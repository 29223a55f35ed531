//! `local_file`: a file with `content` at `path` (created with its
//! directories), `file_permission` as an octal string (`"0644"`). Its `id`
//! is the SHA-256 of the content. Refresh reads the file back: a file
//! edited outside infra shows as a changed `content` (the next apply
//! rewrites it), a deleted one as gone (re-created). Changing `path`
//! replaces it; `content` and permissions update in place.
//!
//! Relative paths are relative to the directory infra runs in.

use std::path::Path;

use infra_provider_sdk::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

fn text<'a>(attributes: &'a Attributes, name: &str) -> Option<&'a str> {
    attributes.get(name).and_then(Value::as_str)
}

fn sha256(content: &str) -> String {
    Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_permission(text: &str) -> Option<u32> {
    let digits = text.trim_start_matches("0o");
    (digits.len() == 3 || digits.len() == 4)
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .filter(|mode| *mode <= 0o7777)
}

fn io_error(action: &str, path: &str, error: std::io::Error) -> ProviderError {
    ProviderError::new(format!("cannot {action} `{path}`: {error}"))
        .with_code(format!("{:?}", error.kind()))
}

/// Writes the file (and its directories) and returns its full state.
fn write_file(config: &Attributes) -> Result<Attributes, ProviderError> {
    let path = text(config, "path").ok_or_else(|| ProviderError::new("`path` is required"))?;
    let content = text(config, "content").unwrap_or("");
    let permission = text(config, "file_permission").unwrap_or("0644");
    let mode = parse_permission(permission)
        .ok_or_else(|| ProviderError::new(format!("`{permission}` is not an octal permission")))?;
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| io_error("create the directory of", path, e))?;
    }
    std::fs::write(path, content).map_err(|e| io_error("write", path, e))?;
    set_mode(path, mode)?;
    let mut state = config.clone();
    state.insert("content".into(), json!(content));
    state.insert("file_permission".into(), json!(permission));
    state.insert("id".into(), json!(sha256(content)));
    Ok(state)
}

#[cfg(unix)]
fn set_mode(path: &str, mode: u32) -> Result<(), ProviderError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("set permissions of", path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &str, _mode: u32) -> Result<(), ProviderError> {
    Ok(())
}

#[cfg(unix)]
fn current_mode(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    format!("{:04o}", metadata.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn current_mode(_metadata: &std::fs::Metadata) -> String {
    "0644".into()
}

pub(crate) fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "a file on this machine",
        [
            (
                "path",
                Attribute::required(AttributeType::String)
                    .force_new()
                    .describe("where the file is"),
            ),
            (
                "content",
                Attribute::optional(AttributeType::String)
                    .describe("what it holds (default empty)"),
            ),
            (
                "file_permission",
                Attribute::optional_computed(AttributeType::String)
                    .describe("octal, e.g. \"0644\" (the default)"),
            ),
            (
                "id",
                Attribute::computed(AttributeType::String).describe("SHA-256 of the content"),
            ),
        ],
    )
}

pub(crate) fn validate(config: &Attributes) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if let Some(permission) = text(config, "file_permission")
        && parse_permission(permission).is_none()
    {
        problems.push(
            Diagnostic::error(format!("`{permission}` is not an octal file permission"))
                .at("file_permission")
                .help("write three or four octal digits, e.g. \"0644\" or \"0600\""),
        );
    }
    if text(config, "path").is_some_and(str::is_empty) {
        problems.push(Diagnostic::error("`path` must not be empty").at("path"));
    }
    problems
}

pub(crate) fn create(config: &Attributes) -> Result<Attributes, ProviderError> {
    write_file(config)
}

/// Reads the file back: edited content and permissions are drift; a
/// missing file is gone.
pub(crate) fn read(mut state: Attributes) -> Result<Option<Attributes>, ProviderError> {
    let path = text(&state, "path").unwrap_or_default().to_string();
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("read", &path, error)),
    };
    let content = match std::fs::read_to_string(&path) {
        Ok(content) => content,
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            // Not text any more: certainly not what infra wrote.
            String::from_utf8_lossy(&std::fs::read(&path).map_err(|e| io_error("read", &path, e))?)
                .into_owned()
        }
        Err(error) => return Err(io_error("read", &path, error)),
    };
    state.insert("content".into(), json!(content));
    state.insert("file_permission".into(), json!(current_mode(&metadata)));
    state.insert("id".into(), json!(sha256(&content)));
    Ok(Some(state))
}

pub(crate) fn update(
    prior: &Attributes,
    mut config: Attributes,
) -> Result<Attributes, ProviderError> {
    if !config.contains_key("file_permission")
        && let Some(previous) = prior.get("file_permission")
    {
        config.insert("file_permission".into(), previous.clone());
    }
    write_file(&config)
}

/// Removes the file; one already gone is fine.
pub(crate) fn delete(state: &Attributes) -> Result<(), ProviderError> {
    let path = text(state, "path").unwrap_or_default();
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("delete", path, error)),
    }
}

/// `infra import local_file.x PATH` adopts an existing file.
pub(crate) fn import(id: &str) -> Result<Attributes, ProviderError> {
    let state: Attributes = [("path".to_string(), json!(id))].into();
    read(state)?.ok_or_else(|| {
        ProviderError::new(format!("no file at `{id}` to import")).with_code("NotFound")
    })
}
