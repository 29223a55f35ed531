//! Finding and opening the state file for the commands that use it
//! (`state`, `output`, `force-unlock`).

use std::path::{Path, PathBuf};

use crate::check::{CheckOptions, check};
use crate::diagnostics::{ReportStyle, render_all};
use crate::eval::Value;

/// The state file of the configuration in `dir`: `backend local { path }`
/// relative to the configuration, or `infra.state.json` there. `Err` holds
/// the message when the configuration cannot say (errors, another backend).
pub fn state_path(dir: &Path, display_dir: &Path, style: ReportStyle) -> Result<PathBuf, String> {
    let checked = check(
        &CheckOptions {
            dir: dir.to_path_buf(),
            display_dir: display_dir.to_path_buf(),
            ..CheckOptions::default()
        }
        .with_process_env(),
    );
    if checked.diagnostics.has_errors() {
        eprint!(
            "{}",
            render_all(&checked.diagnostics, &checked.sources, style)
        );
        return Err(
            "the configuration has errors; fix them so that its state file can be found".into(),
        );
    }
    path_from_backend(
        dir,
        checked.evaluated.as_ref().and_then(|e| e.backend.clone()),
    )
}

/// Where the state is, given the root module's backend (kind, settings).
pub fn path_from_backend(dir: &Path, backend: Option<(String, Value)>) -> Result<PathBuf, String> {
    match backend {
        None => Ok(dir.join("infra.state.json")),
        Some((kind, Value::Map(entries))) if kind == "local" => match entries.get("path") {
            Some(Value::String(path)) => Ok(dir.join(&**path)),
            None => Ok(dir.join("infra.state.json")),
            Some(_) => Err("`backend local { path = … }` must be a string".into()),
        },
        Some((kind, _)) if kind == "local" => Ok(dir.join("infra.state.json")),
        Some((kind, _)) => Err(format!(
            "the `{kind}` backend is not supported yet; use `backend local`"
        )),
    }
}
