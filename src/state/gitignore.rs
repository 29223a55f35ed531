//! Keeps the files infra writes beside a committed state out of git: the
//! backup (the previous state, secrets included), the lock and its drafts,
//! the apply journal and the rescue copy are listed in the `.gitignore` of
//! the state's directory, when that directory is in a git work tree. Lines
//! already there are left alone; only missing ones are added.

use std::io::Write as _;
use std::path::Path;

/// The rescue copy a failed save leaves beside the state.
pub const RESCUE_NAME: &str = "infra.state.errored.json";

/// The `.gitignore` lines for the state at `state`, each anchored to the
/// state's directory.
pub fn ignored_lines(state: &Path) -> Vec<String> {
    let name = state
        .file_name()
        .map(|n| literal(&n.to_string_lossy()))
        .unwrap_or_default();
    vec![
        format!("/{name}.backup"),
        format!("/{name}.lock"),
        format!("/{name}.lock.*"),
        format!("/{name}.journal"),
        format!("/{}", literal(RESCUE_NAME)),
    ]
}

/// Adds the missing [`ignored_lines`] to the `.gitignore` beside `state`
/// when its directory is in a git work tree; whether it wrote anything.
pub fn keep_out_of_git(state: &Path) -> std::io::Result<bool> {
    let directory = match state.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::env::current_dir()?,
    };
    let directory = directory.canonicalize()?;
    if !directory.ancestors().any(|d| d.join(".git").exists()) {
        return Ok(false);
    }
    let path = directory.join(".gitignore");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    let missing: Vec<String> = ignored_lines(state)
        .into_iter()
        .filter(|line| !existing.lines().any(|l| l.trim_end() == line))
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let mut added = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        added.push('\n');
    }
    added.push_str("# infra: beside the state, never committed (the backup may hold secrets)\n");
    for line in missing {
        added.push_str(&line);
        added.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    file.write_all(added.as_bytes())?;
    Ok(true)
}

/// A file name as a `.gitignore` pattern that matches only it.
fn literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | '\\' | '!' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_lines_are_added_once_and_only_in_a_git_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("envs").join("prod[1].json");
        std::fs::create_dir_all(state.parent().unwrap()).unwrap();
        assert!(!keep_out_of_git(&state).unwrap(), "not in git");
        assert!(!state.with_file_name(".gitignore").exists());

        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let gitignore = state.with_file_name(".gitignore");
        std::fs::write(&gitignore, "/prod\\[1].json.backup\n*.log").unwrap();
        assert!(keep_out_of_git(&state).unwrap());
        assert!(!keep_out_of_git(&state).unwrap(), "nothing more to add");
        assert_eq!(
            std::fs::read_to_string(&gitignore).unwrap(),
            "/prod\\[1].json.backup\n*.log\n\
             # infra: beside the state, never committed (the backup may hold secrets)\n\
             /prod\\[1].json.lock\n/prod\\[1].json.lock.*\n/prod\\[1].json.journal\n\
             /infra.state.errored.json\n"
        );
    }
}
