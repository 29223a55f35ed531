//! A run killed at any moment loses nothing: every object it made is in
//! the state after the next run, none twice. The kill comes at the worst
//! moment — a create has returned, its record is not written — through
//! the engine's crash point (`INFRA_CRASH_AFTER_CREATES`, which aborts the
//! process as `kill -9` would), and at random moments from outside
//! (`scripts/crash-trials` runs many of those).

use std::path::Path;
use std::process::Output;

use crate::support::{both, command, write};

const PAIRS: usize = 40;

/// `PAIRS` random ids, and a file named after each: a lost id record means
/// a second file (an orphan) after the next apply.
fn configuration(dir: &Path) {
    write(
        dir,
        "main.infra",
        &format!(
            r#"
resource random_id n {{
  count       = {PAIRS}
  byte_length = 6
}}

resource local_file f {{
  count   = {PAIRS}
  path    = "${{path.module}}/out/${{random_id.n[count.index].hex}}.txt"
  content = "file ${{count.index}}"
}}
"#
        ),
    );
}

fn apply(dir: &Path, crash_after: Option<usize>) -> Output {
    let mut apply = command(
        Some(dir),
        &["apply", "--auto-approve", "--parallelism", "8"],
    );
    if let Some(n) = crash_after {
        apply.env("INFRA_CRASH_AFTER_CREATES", n.to_string());
    }
    apply.output().expect("run infra")
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("out"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The files the state records, by name.
fn recorded_files(dir: &Path) -> Vec<String> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("infra.state.json")).unwrap())
            .unwrap();
    let mut names: Vec<String> = state["resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["type"] == "local_file")
        .map(|r| {
            Path::new(r["attributes"]["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Killed as a create returns, at several points of the run: the next
/// apply ends with exactly the configured objects, and a third changes
/// nothing.
#[test]
fn a_run_killed_between_a_create_and_its_record_leaves_no_orphan() {
    for crash_after in [1, 7, PAIRS, PAIRS + 3, 2 * PAIRS - 1] {
        let dir = tempfile::tempdir().unwrap();
        configuration(dir.path());
        let crashed = apply(dir.path(), Some(crash_after));
        assert!(
            !crashed.status.success(),
            "the crash point fired after {crash_after} creates:\n{}",
            both(&crashed)
        );
        assert!(
            dir.path().join("infra.state.json.journal").exists(),
            "a killed run leaves its journal"
        );
        let again = apply(dir.path(), None);
        assert!(again.status.success(), "{}", both(&again));
        assert!(
            both(&again).contains("an earlier run stopped before saving the state"),
            "the recovery is reported:\n{}",
            both(&again)
        );
        let on_disk = files(dir.path());
        assert_eq!(
            on_disk.len(),
            PAIRS,
            "after a crash at create {crash_after}: {} files for {PAIRS} resources (orphans or duplicates)",
            on_disk.len()
        );
        assert_eq!(on_disk, recorded_files(dir.path()), "every file recorded");
        assert!(
            !dir.path().join("infra.state.json.journal").exists(),
            "the journal goes once the state holds it"
        );
        let third = command(Some(dir.path()), &["plan", "--detailed-exitcode"])
            .output()
            .unwrap();
        assert_eq!(third.status.code(), Some(0), "{}", both(&third));
    }
}
