//! The state file and its lock, against the real file system, git and
//! processes.

use std::path::Path;
use std::process::{Child, Command};

use infra::state::{
    LockError, State, StateError, StateLock, backup_path, force_unlock, load, lock_path, save,
};
use serde_json::json;

fn resource(
    type_name: &str,
    attributes: serde_json::Value,
    dependencies: &[&str],
) -> infra::state::ResourceState {
    infra::state::ResourceState {
        type_name: type_name.into(),
        provider: type_name.split('_').next().unwrap_or_default().into(),
        attributes: serde_json::from_value(attributes).expect("attribute map"),
        dependencies: dependencies.iter().map(ToString::to_string).collect(),
        sensitive: Vec::new(),
    }
}

fn sample() -> State {
    let mut state = State::new("0123456789abcdef0123456789abcdef");
    state.resources.insert(
        "random_id.b".into(),
        resource("random_id", json!({"hex": "beef", "byte_length": 4}), &[]),
    );
    state.resources.insert(
        "local_file.a".into(),
        resource(
            "local_file",
            json!({"path": "out.txt", "content": "hello\n"}),
            &["random_id.b", "random_id.a"],
        ),
    );
    state.resources.insert(
        "random_id.a".into(),
        resource("random_id", json!({"hex": "cafe", "byte_length": 2}), &[]),
    );
    state
}

#[test]
fn states_round_trip_with_canonical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("infra.state.json");
    assert_eq!(load(&path).unwrap(), None, "no file yet means no state");
    let state = sample();
    assert!(save(&path, &state).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("}\n"));
    assert!(
        text.find("\"local_file.a\"").unwrap() < text.find("\"random_id.a\"").unwrap(),
        "resources sorted by address"
    );
    assert!(
        text.contains(
            "\"dependencies\": [\n        \"random_id.a\",\n        \"random_id.b\"\n      ]"
        ),
        "dependencies sorted:\n{text}"
    );
    assert!(
        !text.contains("serial") && !text.contains("time"),
        "nothing that churns"
    );
    let mut loaded = load(&path).unwrap().expect("state");
    loaded
        .resources
        .get_mut("local_file.a")
        .unwrap()
        .dependencies
        .sort();
    let mut expected = sample();
    expected
        .resources
        .get_mut("local_file.a")
        .unwrap()
        .dependencies
        .sort();
    assert_eq!(loaded, expected);

    // Rewriting an unchanged state changes nothing, not even the backup.
    assert!(!save(&path, &load(&path).unwrap().unwrap()).unwrap());
    assert!(!backup_path(&path).exists());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    // A real change keeps the previous state as the backup.
    let mut changed = sample();
    changed.resources.remove("random_id.a");
    assert!(save(&path, &changed).unwrap());
    assert_eq!(std::fs::read_to_string(backup_path(&path)).unwrap(), text);
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"random_id.a\": {")
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
}

#[test]
fn branches_changing_different_resources_merge_with_plain_git() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, state: &State| {
        let path = dir.path().join(name);
        std::fs::write(&path, state.to_canonical_json()).unwrap();
        path
    };
    let base = sample();
    let mut ours = base.clone();
    ours.resources
        .get_mut("local_file.a")
        .unwrap()
        .attributes
        .insert("content".into(), json!("changed on main\n"));
    let mut theirs = base.clone();
    theirs
        .resources
        .get_mut("random_id.b")
        .unwrap()
        .attributes
        .insert("hex".into(), json!("f00d"));
    let base_path = write("base.json", &base);
    let ours_path = write("ours.json", &ours);
    let theirs_path = write("theirs.json", &theirs);
    let merged = Command::new("git")
        .args(["merge-file", "-p"])
        .args([&ours_path, &base_path, &theirs_path])
        .output()
        .expect("git merge-file runs");
    assert_eq!(
        merged.status.code(),
        Some(0),
        "conflicts:\n{}",
        String::from_utf8_lossy(&merged.stdout)
    );
    let mut both = ours.clone();
    both.resources
        .get_mut("random_id.b")
        .unwrap()
        .attributes
        .insert("hex".into(), json!("f00d"));
    assert_eq!(
        String::from_utf8_lossy(&merged.stdout),
        both.to_canonical_json()
    );
}

/// Runs git in `dir`; panics with its output when it fails and `ok`.
fn git(dir: &Path, args: &[&str], ok: bool) -> std::process::Output {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=infra",
            "-c",
            "user.email=infra@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    if ok {
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            crate::support::both(&output)
        );
    }
    output
}

fn infra_in(dir: &Path, args: &[&str]) -> std::process::Output {
    let output = run_in(dir, args);
    assert!(output.status.success(), "{}", crate::support::both(&output));
    output
}

/// infra run in `dir`, whatever its exit.
fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    crate::support::command(Some(dir), args)
        .output()
        .expect("infra runs")
}

/// What the README tells a team to set up: `infra state merge` as git's
/// merge driver for the state, the backup and lock kept out of git.
#[test]
fn git_merges_states_of_two_branches_with_infra_as_merge_driver() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"], true);
    let driver = format!("{} state merge %O %A %B", crate::support::INFRA);
    git(repo, &["config", "merge.infra.driver", &driver], true);
    std::fs::write(
        repo.join(".gitattributes"),
        "infra.state.json merge=infra\n",
    )
    .unwrap();
    let resource = |name: &str, length: u32| {
        format!("resource random_id {name} {{\n  byte_length = {length}\n}}\n")
    };
    std::fs::write(repo.join("b.infra"), resource("b", 4)).unwrap();
    infra_in(repo, &["apply", "--auto-approve"]);
    git(repo, &["add", "-A"], true);
    git(repo, &["commit", "-qm", "b"], true);
    let tracked = String::from_utf8(git(repo, &["ls-files"], true).stdout).unwrap();
    assert_eq!(
        tracked, ".gitattributes\n.gitignore\nb.infra\ninfra.state.json\n",
        "the lock, backup and journal stay out of git"
    );

    // Two branches add resources next to each other in sort order.
    git(repo, &["checkout", "-qb", "feature"], true);
    std::fs::write(repo.join("c.infra"), resource("c", 4)).unwrap();
    infra_in(repo, &["apply", "--auto-approve"]);
    git(repo, &["add", "-A"], true);
    git(repo, &["commit", "-qm", "c"], true);
    git(repo, &["checkout", "-q", "main"], true);
    std::fs::write(repo.join("d.infra"), resource("d", 4)).unwrap();
    infra_in(repo, &["apply", "--auto-approve"]);
    git(repo, &["add", "-A"], true);
    git(repo, &["commit", "-qm", "d"], true);
    git(repo, &["merge", "-q", "--no-edit", "feature"], true);
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("infra.state.json")).unwrap())
            .unwrap();
    let addresses: Vec<&String> = merged["resources"].as_object().unwrap().keys().collect();
    assert_eq!(addresses, ["random_id.b", "random_id.c", "random_id.d"]);
    let planned = crate::support::command(Some(repo), &["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        planned.status.code(),
        Some(0),
        "the merged state matches the merged configuration: {}",
        crate::support::both(&planned)
    );

    // Both branches replace the same resource: a conflict naming it.
    git(repo, &["checkout", "-qb", "other"], true);
    std::fs::write(repo.join("b.infra"), resource("b", 8)).unwrap();
    infra_in(repo, &["apply", "--auto-approve"]);
    git(repo, &["commit", "-qam", "b 8"], true);
    git(repo, &["checkout", "-q", "main"], true);
    std::fs::write(repo.join("b.infra"), resource("b", 6)).unwrap();
    infra_in(repo, &["apply", "--auto-approve"]);
    git(repo, &["commit", "-qam", "b 6"], true);
    let conflicted = git(repo, &["merge", "--no-edit", "other"], false);
    assert!(!conflicted.status.success());
    let both = crate::support::both(&conflicted);
    assert!(
        both.contains("conflict: resource `random_id.b`: ours changed, theirs changed"),
        "{both}"
    );
    let text = std::fs::read_to_string(repo.join("infra.state.json")).unwrap();
    assert!(
        text.contains("<<<<<<< ours: resource `random_id.b`"),
        "{text}"
    );
    assert!(
        text.contains("\"random_id.c\"") && text.contains("\"random_id.d\""),
        "the rest is merged: {text}"
    );
    let refused = crate::support::command(Some(repo), &["plan"])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a conflicted state is refused"
    );
}

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const NEW_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

/// `infra ARGS` in `dir` with `keys` as the environment's state keys.
fn with_keys(dir: &Path, args: &[&str], keys: &[(&str, &str)]) -> std::process::Output {
    let mut command = crate::support::command(Some(dir), args);
    for (name, value) in keys {
        command.env(name, value);
    }
    command.output().expect("infra runs")
}

/// Every file under `dir` (but `.git`), and what the runs printed.
fn everything_written(dir: &Path, printed: &[&std::process::Output]) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    for output in printed {
        all.push_str(&crate::support::both(output));
    }
    all
}

#[test]
fn secrets_are_sealed_in_every_file_and_open_only_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("main.infra"),
        "resource random_password db {\n  length = 20\n}\n\n\
         resource random_id tag {\n  byte_length = 4\n  keepers = { password = random_password.db.result }\n}\n\n\
         output password {\n  value     = random_password.db.result\n  sensitive = true\n}\n",
    )
    .unwrap();
    // Without a key, nothing is written in plaintext: refused before any change.
    let refused = with_keys(dir, &["apply", "--auto-approve"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let said = crate::support::both(&refused);
    assert!(said.contains("would write secrets in plaintext"), "{said}");
    assert!(said.contains("INFRA_STATE_KEY"), "{said}");
    assert!(
        !dir.join("infra.state.json").exists(),
        "nothing was changed"
    );

    let key = [("INFRA_STATE_KEY", KEY)];
    let applied = with_keys(dir, &["apply", "--auto-approve"], &key);
    assert!(
        applied.status.success(),
        "{}",
        crate::support::both(&applied)
    );
    let revealed = with_keys(dir, &["output", "--show-sensitive", "password"], &key);
    let secret = String::from_utf8(revealed.stdout.clone()).unwrap();
    let secret = secret.trim().trim_matches('"').to_string();
    assert_eq!(secret.len(), 20, "the secret opens with the key: {secret}");
    let state_path = dir.join("infra.state.json");
    let sealed = std::fs::read_to_string(&state_path).unwrap();
    assert!(sealed.contains("\"encrypted\""), "{sealed}");

    // Applied again (no change), planned, shown: nothing in clear anywhere.
    let again = with_keys(dir, &["apply", "--auto-approve"], &key);
    assert!(again.status.success(), "{}", crate::support::both(&again));
    assert_eq!(
        std::fs::read_to_string(&state_path).unwrap(),
        sealed,
        "an unchanged secret leaves the state byte for byte"
    );
    let planned = with_keys(dir, &["plan", "--json"], &key);
    let shown = with_keys(dir, &["state", "show", "random_password.db"], &key);
    let written = everything_written(dir, &[&applied, &again, &planned, &shown]);
    assert_eq!(written.matches(&secret).count(), 0, "plaintext found");

    // No key, another key, a changed envelope: refused, the state untouched.
    let refusals = [
        (vec![], "no key is configured"),
        (vec![("INFRA_STATE_KEY", NEW_KEY)], "not the configured key"),
    ];
    for (keys, expected) in refusals {
        let refused = with_keys(dir, &["apply", "--auto-approve"], &keys);
        assert_eq!(refused.status.code(), Some(1));
        let said = crate::support::both(&refused);
        assert!(said.contains(expected), "{said}");
        assert_eq!(std::fs::read_to_string(&state_path).unwrap(), sealed);
    }
    let mut state: serde_json::Value = serde_json::from_str(&sealed).unwrap();
    let envelope = state["resources"]["random_password.db"]["attributes"]["result"].clone();
    state["outputs"]["password"]["value"] = envelope;
    let moved = serde_json::to_string_pretty(&state).unwrap();
    std::fs::write(&state_path, &moved).unwrap();
    let refused = with_keys(dir, &["plan"], &key);
    assert_eq!(refused.status.code(), Some(1));
    assert!(crate::support::both(&refused).contains("does not open"));
    assert_eq!(std::fs::read_to_string(&state_path).unwrap(), moved);
    std::fs::write(&state_path, &sealed).unwrap();

    // A rotation: the old key opens, the new one seals.
    let rotated = with_keys(
        dir,
        &["state", "rekey"],
        &[
            ("INFRA_STATE_KEY", NEW_KEY),
            ("INFRA_STATE_PREVIOUS_KEY", KEY),
        ],
    );
    assert!(
        rotated.status.success(),
        "{}",
        crate::support::both(&rotated)
    );
    let told = String::from_utf8_lossy(&rotated.stdout);
    assert!(told.contains("Sealed 3 secret values"), "{told}");
    let clean = with_keys(
        dir,
        &["plan", "--detailed-exitcode"],
        &[("INFRA_STATE_KEY", NEW_KEY)],
    );
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        crate::support::both(&clean)
    );
    let old_only = with_keys(dir, &["plan"], &key);
    assert_eq!(
        old_only.status.code(),
        Some(1),
        "sealed with the new key now"
    );
}

#[test]
fn a_key_file_named_in_the_backend_block_seals_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = |key_file: &str| {
        format!(
            "backend local {{\n  key_file = \"{key_file}\"\n}}\n\nresource random_password db {{\n  length = 20\n}}\n"
        )
    };
    std::fs::write(dir.join("main.infra"), config("missing.key")).unwrap();
    let missing = with_keys(dir, &["apply", "--auto-approve"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    let said = crate::support::both(&missing);
    assert!(said.contains("cannot read the state key file"), "{said}");
    assert!(!dir.join("infra.state.json").exists());

    std::fs::write(dir.join("main.infra"), config("keys/state.key")).unwrap();
    std::fs::create_dir(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/state.key"), format!("{KEY}\n")).unwrap();
    let applied = with_keys(dir, &["apply", "--auto-approve"], &[]);
    assert!(
        applied.status.success(),
        "{}",
        crate::support::both(&applied)
    );
    let sealed = std::fs::read_to_string(dir.join("infra.state.json")).unwrap();
    assert!(sealed.contains("\"encrypted\""), "{sealed}");
    // The environment's key wins over the file: the same key opens it.
    let with_env = with_keys(
        dir,
        &["plan", "--detailed-exitcode"],
        &[("INFRA_STATE_KEY", KEY)],
    );
    assert_eq!(
        with_env.status.code(),
        Some(0),
        "{}",
        crate::support::both(&with_env)
    );
    let other = with_keys(dir, &["plan"], &[("INFRA_STATE_KEY", NEW_KEY)]);
    assert_eq!(other.status.code(), Some(1));
    assert!(crate::support::both(&other).contains("not the configured key"));
    // A file that holds no key is refused by name.
    std::fs::write(dir.join("keys/state.key"), "not a key\n").unwrap();
    let bad = with_keys(dir, &["plan"], &[]);
    assert_eq!(bad.status.code(), Some(1));
    let said = crate::support::both(&bad);
    assert!(said.contains("keys/state.key` is not base64"), "{said}");
}

#[test]
fn pull_prints_the_stored_state_and_push_refuses_what_would_lose_resources() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("main.infra"),
        "resource random_password db {\n  length = 20\n}\n\nresource random_id a {\n  byte_length = 2\n}\n\nresource random_id b {\n  byte_length = 2\n}\n",
    )
    .unwrap();
    let key = [("INFRA_STATE_KEY", KEY)];
    let applied = with_keys(dir, &["apply", "--auto-approve"], &key);
    assert!(
        applied.status.success(),
        "{}",
        crate::support::both(&applied)
    );
    let state_path = dir.join("infra.state.json");
    let stored = std::fs::read_to_string(&state_path).unwrap();

    // Pulled: the bytes the backend keeps, secrets still sealed.
    let pulled = with_keys(dir, &["state", "pull"], &key);
    assert!(pulled.status.success(), "{}", crate::support::both(&pulled));
    assert_eq!(String::from_utf8(pulled.stdout.clone()).unwrap(), stored);
    let full = dir.join("full.json");
    std::fs::write(&full, &pulled.stdout).unwrap();

    // A push that brings back what the stored state forgot is fine.
    let removed = with_keys(dir, &["state", "rm", "random_id.b"], &key);
    assert!(
        removed.status.success(),
        "{}",
        crate::support::both(&removed)
    );
    let pushed = with_keys(dir, &["state", "push", "full.json"], &key);
    assert!(pushed.status.success(), "{}", crate::support::both(&pushed));
    assert!(String::from_utf8_lossy(&pushed.stdout).contains("Pushed 3 resource(s)"));
    assert_eq!(std::fs::read_to_string(&state_path).unwrap(), stored);

    // An older file, one that would forget a resource: refused, unless forced.
    let mut older: serde_json::Value = serde_json::from_str(&stored).unwrap();
    older["resources"]
        .as_object_mut()
        .unwrap()
        .remove("random_id.a");
    std::fs::write(dir.join("older.json"), older.to_string()).unwrap();
    let refused = with_keys(dir, &["state", "push", "older.json"], &key);
    assert_eq!(refused.status.code(), Some(1));
    let said = crate::support::both(&refused);
    assert!(
        said.contains("would forget 1 resource(s)") && said.contains("random_id.a"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&state_path).unwrap(),
        stored,
        "untouched"
    );
    let forced = with_keys(dir, &["state", "push", "-force", "older.json"], &key);
    assert!(forced.status.success(), "{}", crate::support::both(&forced));
    assert!(
        !std::fs::read_to_string(&state_path)
            .unwrap()
            .contains("random_id.a")
    );

    // Another lineage, or a file sealed with another key: refused.
    let mut foreign = serde_json::from_str::<serde_json::Value>(&stored).unwrap();
    foreign["lineage"] = "0123456789abcdef0123456789abcdef".into();
    // (Its secrets would not open: their envelopes are bound to the lineage.)
    foreign["resources"]
        .as_object_mut()
        .unwrap()
        .remove("random_password.db");
    std::fs::write(dir.join("foreign.json"), foreign.to_string()).unwrap();
    let other_lineage = with_keys(dir, &["state", "push", "foreign.json"], &key);
    assert_eq!(other_lineage.status.code(), Some(1));
    let said = crate::support::both(&other_lineage);
    assert!(said.contains("is another state"), "{said}");
    let other_key = with_keys(
        dir,
        &["state", "push", "full.json"],
        &[("INFRA_STATE_KEY", NEW_KEY)],
    );
    assert_eq!(other_key.status.code(), Some(1));
    assert!(crate::support::both(&other_key).contains("not the configured key"));

    // From stdin, as `terraform state push -` reads it.
    let mut command = crate::support::command(Some(dir), &["state", "push", "-"]);
    command.env("INFRA_STATE_KEY", KEY);
    command.stdin(std::process::Stdio::piped());
    command.stdout(std::process::Stdio::piped());
    command.stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stored.as_bytes())
        .unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(
        from_stdin.status.success(),
        "{}",
        crate::support::both(&from_stdin)
    );
    assert_eq!(std::fs::read_to_string(&state_path).unwrap(), stored);
}

#[test]
fn a_changed_backend_stops_runs_until_init_migrates_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let resources = "resource random_id a {\n  byte_length = 2\n}\n\nresource random_id b {\n  byte_length = 2\n}\n";
    std::fs::write(dir.join("main.infra"), resources).unwrap();
    let applied = run_in(dir, &["apply", "--auto-approve"]);
    assert!(
        applied.status.success(),
        "{}",
        crate::support::both(&applied)
    );
    let old_state = std::fs::read_to_string(dir.join("infra.state.json")).unwrap();
    assert!(
        dir.join(".infra/backend.json").exists(),
        "the apply recorded its backend"
    );

    // The block now names another file: a run would start from nothing there.
    std::fs::write(
        dir.join("main.infra"),
        format!("backend local {{\n  path = \"states/prod.json\"\n}}\n\n{resources}"),
    )
    .unwrap();
    std::fs::create_dir(dir.join("states")).unwrap();
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"],
        &["state", "list"],
    ] {
        let refused = run_in(dir, args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        let said = crate::support::both(&refused);
        assert!(said.contains("the backend changed"), "{said}");
        assert!(said.contains("infra init --migrate-state"), "{said}");
    }
    assert!(
        !dir.join("states/prod.json").exists(),
        "nothing started there"
    );
    let plain_init = run_in(dir, &["init"]);
    assert_eq!(plain_init.status.code(), Some(1));

    let migrated = run_in(dir, &["init", "-migrate-state"]);
    assert!(
        migrated.status.success(),
        "{}",
        crate::support::both(&migrated)
    );
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("Copied the state (2 resource(s))"));
    assert_eq!(
        std::fs::read_to_string(dir.join("states/prod.json")).unwrap(),
        old_state,
        "the same state, byte for byte"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("infra.state.json")).unwrap(),
        old_state,
        "the old state is left as it was"
    );
    let clean = run_in(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        crate::support::both(&clean)
    );

    // Back to the default file, which now differs from the moved state.
    let removed = run_in(dir, &["state", "rm", "random_id.b"]);
    assert!(
        removed.status.success(),
        "{}",
        crate::support::both(&removed)
    );
    std::fs::write(dir.join("main.infra"), resources).unwrap();
    let differs = run_in(dir, &["init", "--migrate-state"]);
    assert_eq!(differs.status.code(), Some(1));
    assert!(crate::support::both(&differs).contains("already holds a state"));
    let forced = run_in(dir, &["init", "--migrate-state", "--force-copy"]);
    assert!(forced.status.success(), "{}", crate::support::both(&forced));
    let listed = run_in(dir, &["state", "list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "random_id.a\n");
}

/// The sealed form is a contract with every state already committed: a
/// fixed state sealed with a fixed key gives exactly the golden bytes
/// (`tests/state_golden/sealed.json`), which open back to the plaintext
/// with that key, and not at all with another.
#[test]
fn a_sealed_state_keeps_its_golden_bytes_and_opens_back() {
    use infra::state::sealing::{KeySource, Sealer};
    let mut plain = sample();
    let mut secret = resource(
        "random_password",
        json!({"length": 12, "result": "s3cret-Value!"}),
        &[],
    );
    secret.sensitive = vec!["result".into()];
    plain.resources.insert("random_password.db".into(), secret);
    let mut nested = resource(
        "random_id",
        json!({"byte_length": 2, "keepers": {"pw": "s3cret-Value!", "user": "app"}}),
        &["random_password.db"],
    );
    nested.sensitive = vec!["keepers.pw".into()];
    plain.resources.insert("random_id.tag".into(), nested);
    plain.outputs.insert(
        "password".into(),
        infra::state::OutputState {
            value: json!("s3cret-Value!"),
            sensitive: true,
        },
    );
    let key = |text: &str| match KeySource::parse_key(text) {
        Ok(key) => key,
        Err(problem) => panic!("{problem}"),
    };
    let sealer = Sealer::new(Some(key(KEY)), None);
    let sealed = sealer.seal(&plain);
    let text = sealed.to_canonical_json();
    assert!(!text.contains("s3cret"), "{text}");
    crate::support::golden(Path::new("tests/state_golden/sealed.json"), &text);
    let mut opened = infra::state::parse(Path::new("sealed.json"), &text).unwrap();
    sealer.open(&mut opened).unwrap();
    assert_eq!(opened.to_canonical_json(), plain.to_canonical_json());
    let mut wrong = sealed.clone();
    let error = Sealer::new(Some(key(NEW_KEY)), None)
        .open(&mut wrong)
        .unwrap_err();
    assert!(
        error.to_string().contains("not the configured key"),
        "{error}"
    );
}

/// A module that passes its settings through, so a secret crosses the
/// module boundary inside an object.
const PASS_THROUGH: &str = "variable settings {}\n\
    output password {\n  value = var.settings.password\n}\n\
    output user {\n  value = var.settings.user\n}\n";

/// The change to `address` in a `plan --json`.
fn planned_change<'p>(plan: &'p serde_json::Value, address: &str) -> &'p serde_json::Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .unwrap_or_else(|| panic!("{address} planned: {plan}"))
}

#[test]
fn a_secret_inside_a_value_is_marked_and_sealed_there_only() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::create_dir_all(dir.join("modules/db")).unwrap();
    std::fs::write(dir.join("modules/db/main.infra"), PASS_THROUGH).unwrap();
    let config = "resource random_password db {\n  length = 24\n}\n\n\
        module db {\n  source   = \"./modules/db\"\n  settings = { user = \"app\", password = random_password.db.result }\n}\n\n\
        resource random_id tag {\n  byte_length = 2\n  keepers     = { user = module.db.user, pw = module.db.password }\n}\n\n\
        output user {\n  value = module.db.user\n}\n\n\
        output connection {\n  value = \"postgres://${module.db.user}:${module.db.password}@db\"\n}\n\n\
        resource local_file dsn {\n  path    = \"out/dsn.txt\"\n  content = \"password=${module.db.password}\"\n}\n";
    std::fs::write(dir.join("main.infra"), config).unwrap();
    let key = [("INFRA_STATE_KEY", KEY)];
    let applied = with_keys(dir, &["apply", "--auto-approve"], &key);
    assert!(
        applied.status.success(),
        "{}",
        crate::support::both(&applied)
    );

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("infra.state.json")).unwrap())
            .unwrap();
    let tag = &state["resources"]["random_id.tag"];
    assert_eq!(tag["sensitive"], json!(["keepers.pw"]), "{tag}");
    assert_eq!(
        tag["attributes"]["keepers"]["user"], "app",
        "the clear part stays plain"
    );
    assert!(
        tag["attributes"]["keepers"]["pw"]["encrypted"].is_string(),
        "the secret part is sealed: {tag}"
    );
    // An output reading the clear part is not a secret; one built from the
    // secret is, though it does not say `sensitive = true`.
    assert_eq!(state["outputs"]["user"], json!({ "value": "app" }));
    assert_eq!(state["outputs"]["connection"]["sensitive"], true);

    let revealed = with_keys(
        dir,
        &["output", "--show-sensitive", "--json", "connection"],
        &key,
    );
    let connection: String = serde_json::from_slice(&revealed.stdout).unwrap();
    let secret = connection
        .strip_prefix("postgres://app:")
        .and_then(|rest| rest.strip_suffix("@db"))
        .expect("the secret round-trips")
        .to_string();
    assert_eq!(secret.len(), 24);

    let shown = with_keys(dir, &["state", "show", "random_id.tag"], &key);
    let shown_text = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown_text.contains(r#"keepers     = { pw = (sensitive value), user = "app" }"#),
        "{shown_text}"
    );
    let planned = with_keys(dir, &["plan", "--json"], &key);
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let change = planned_change(&plan, "random_id.tag");
    assert_eq!(change["action"], "no-op", "{change}");
    assert_eq!(change["sensitive"], json!(["keepers.pw"]));
    assert_eq!(
        change["before"]["keepers"],
        json!({ "pw": null, "user": "app" })
    );
    let again = with_keys(dir, &["apply", "--auto-approve"], &key);
    assert!(again.status.success(), "{}", crate::support::both(&again));
    // The provider that needs the secret gets it in clear (the file it
    // writes, outside the scanned folder), and finds it unchanged later.
    assert_eq!(
        std::fs::read_to_string(dir.join("out/dsn.txt")).unwrap(),
        format!("password={secret}")
    );
    let saved = with_keys(dir, &["plan", "-out", "saved.plan"], &key);
    assert!(saved.status.success(), "{}", crate::support::both(&saved));
    assert!(dir.join("saved.plan").exists());
    let drift = with_keys(dir, &["drift", "--json"], &key);
    assert_eq!(
        drift.status.code(),
        Some(0),
        "{}",
        crate::support::both(&drift)
    );
    let outputs = with_keys(dir, &["output", "--json"], &key);
    assert!(
        outputs.status.success(),
        "{}",
        crate::support::both(&outputs)
    );
    let written = everything_written(
        dir,
        &[&applied, &shown, &planned, &again, &saved, &drift, &outputs],
    );
    assert_eq!(written.matches(&secret).count(), 0, "plaintext found");

    // A deployment's secret is the one key of its template's env.
    std::fs::write(
        dir.join("main.infra"),
        format!(
            "{config}\nresource local_lb front {{\n  listen = \"127.0.0.1:18089\"\n}}\n\n\
             deployment web {{\n  provider = local\n  replicas = 1\n  version  = \"v1\"\n  \
             template {{\n    command = [\"/bin/true\", \"{{port}}\"]\n    \
             env     = {{ USER = module.db.user, DB_PASSWORD = module.db.password }}\n  }}\n  \
             load_balancer = local_lb.front\n  health {{\n    path = \"/healthz\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let planned = with_keys(dir, &["plan", "--json"], &key);
    assert!(planned.status.success() || planned.status.code() == Some(2));
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let web = planned_change(&plan, "deployment.web");
    assert_eq!(
        web["sensitive"],
        json!(["template.env.DB_PASSWORD"]),
        "{web}"
    );
    assert_eq!(web["after"]["template"]["env"]["USER"], "app", "{web}");
    assert_eq!(
        web["after"]["template"]["env"]["DB_PASSWORD"],
        serde_json::Value::Null
    );
}

#[test]
fn corrupt_foreign_and_newer_states_are_refused_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("infra.state.json");
    type IsExpected = fn(&StateError) -> bool;
    let cases: [(&str, IsExpected); 5] = [
        // A sloppy merge: the second `resources` would drop every object.
        (
            "{ \"format\": \"infra-state\", \"version\": 1, \"lineage\": \"x\", \"resources\": { \"a.b\": {} }, \"resources\": {} }",
            |e| matches!(e, StateError::Corrupt { detail, .. } if detail.contains("the key `resources` appears twice")),
        ),
        ("{ \"format\": \"infra-state\", \"version\": 1, ", |e| {
            matches!(e, StateError::Corrupt { .. })
        }),
        (
            "{ \"format\": \"infra-state\", \"version\": 1, \"lineage\": \"x\", \"resources\": { \"a.b\": { \"type\": 3 } } }",
            |e| matches!(e, StateError::Corrupt { .. }),
        ),
        ("{ \"terraform_version\": \"1.6.0\" }", |e| {
            matches!(e, StateError::UnknownFormat { .. })
        }),
        (
            "{ \"format\": \"infra-state\", \"version\": 3, \"lineage\": \"x\" }",
            |e| matches!(e, StateError::NewerVersion { version: 3, .. }),
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let error = load(&path).expect_err("refused");
        assert!(expected(&error), "{text}: {error}");
        assert!(error.to_string().contains("help:"), "{error}");
        let error = save(&path, &sample()).expect_err("save refuses too");
        assert!(expected(&error), "{text}: {error}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "the file is untouched"
        );
    }
}

/// A child process, killed when the test ends, also when it fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_lock(state: &Path, pid: u32, process_start: Option<u64>) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let info = json!({
        "id": "0123456789abcdef", "who": "someone", "host": host, "pid": pid,
        "process_start": process_start, "when": "2026-01-01T00:00:00Z", "operation": "apply"
    });
    std::fs::write(lock_path(state), info.to_string()).unwrap();
}

#[test]
fn a_second_run_is_stopped_with_the_holder_named() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("infra.state.json");
    let lock = StateLock::acquire(&state, "apply").expect("first lock");
    assert!(lock_path(&state).exists());
    match StateLock::acquire(&state, "plan") {
        Err(LockError::Held(holder)) => {
            assert_eq!(holder.pid, std::process::id());
            assert_eq!(holder.operation, "apply");
            let message = LockError::Held(holder.clone()).to_string();
            assert!(
                message.contains(&format!("infra force-unlock {}", holder.id)),
                "{message}"
            );
        }
        other => panic!("expected the lock to be held, got {other:?}"),
    }
    drop(lock);
    assert!(!lock_path(&state).exists(), "released on drop");
    assert!(StateLock::acquire(&state, "plan").is_ok());
}

#[test]
fn a_lock_held_by_another_live_process_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("infra.state.json");
    let holder = Guard(
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep"),
    );
    let pid = holder.0.id();
    write_lock(&state, pid, infra::state::process_start(pid));
    match StateLock::acquire(&state, "apply") {
        Err(LockError::Held(info)) => assert_eq!(info.pid, pid),
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(lock_path(&state).exists());
}

#[test]
fn a_stale_lock_of_a_dead_local_process_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("infra.state.json");
    let mut finished = Command::new("true").spawn().expect("spawn true");
    let pid = finished.id();
    finished.wait().unwrap();
    write_lock(&state, pid, Some(1));
    let lock = StateLock::acquire(&state, "apply").expect("stale lock replaced");
    assert_eq!(lock.replaced_stale.as_ref().map(|info| info.pid), Some(pid));
    // A live pid whose start time differs is another process: stale too.
    let other = Guard(
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep"),
    );
    drop(lock);
    write_lock(&state, other.0.id(), Some(1));
    assert!(
        StateLock::acquire(&state, "apply")
            .unwrap()
            .replaced_stale
            .is_some()
    );
}

#[test]
fn force_unlock_needs_the_right_id() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("infra.state.json");
    assert!(matches!(
        force_unlock(&state, "x"),
        Err(LockError::NotLocked { .. })
    ));
    let holder = Guard(
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep"),
    );
    write_lock(
        &state,
        holder.0.id(),
        infra::state::process_start(holder.0.id()),
    );
    assert!(matches!(
        force_unlock(&state, "wrong"),
        Err(LockError::WrongId { .. })
    ));
    assert_eq!(
        force_unlock(&state, "0123456789abcdef").unwrap().operation,
        "apply"
    );
    assert!(!lock_path(&state).exists());
    std::fs::write(lock_path(&state), "not json").unwrap();
    assert!(matches!(
        StateLock::acquire(&state, "apply"),
        Err(LockError::Unreadable { .. })
    ));
}

/// A lock is never seen empty: a run that finds the lock file reads its
/// holder, however the two runs interleave (it was created empty and then
/// written, and a reader in between was told to delete a live lock).
#[test]
fn a_lock_is_never_read_before_it_names_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("infra.state.json");
    let path = lock_path(&state);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, done) = (path.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut seen, mut empty) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    seen += 1;
                    if serde_json::from_str::<serde_json::Value>(&text).is_err() {
                        empty += 1;
                    }
                }
            }
            (seen, empty)
        })
    };
    for _ in 0..2000 {
        drop(StateLock::acquire(&state, "apply").expect("free"));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, empty) = reader.join().unwrap();
    assert!(
        seen > 0,
        "the reader never saw the lock: the test proved nothing"
    );
    assert_eq!(
        empty, 0,
        "{empty} of {seen} reads found a lock without its holder"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "no draft left behind: {leftovers:?}");
}

/// A lock an older build created empty and crashed before writing is taken
/// over once it has been empty for longer than writing takes; a fresh
/// empty one (being written right now) is not.
#[test]
fn an_empty_lock_left_by_a_crash_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("infra.state.json");
    let path = lock_path(&state);
    let empty = std::fs::File::create(&path).unwrap();
    assert!(
        matches!(
            StateLock::acquire(&state, "apply"),
            Err(LockError::Unreadable { .. })
        ),
        "a lock being written is left alone"
    );
    empty
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
        .unwrap();
    let lock = StateLock::acquire(&state, "apply").expect("taken over");
    assert!(lock.replaced_stale.is_some());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["pid"], std::process::id());
}

/// A FIFO (or device, or directory) where the state should be is refused
/// at once: opening a FIFO would wait for a writer for ever.
#[test]
fn a_state_that_is_not_a_regular_file_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("infra.state.json");
    let made = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(made.success());
    let error = load(&path).expect_err("refused");
    assert!(matches!(error, StateError::NotAFile { .. }), "{error}");
    assert!(error.to_string().contains("help:"), "{error}");
    let error = save(&path, &State::new("l")).expect_err("never replaced");
    assert!(matches!(error, StateError::NotAFile { .. }), "{error}");
    use std::os::unix::fs::FileTypeExt as _;
    assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
}

/// The state may hold secrets: infra creates it, its backup and its lock
/// readable by their owner only, and keeps a mode the user chose.
#[test]
fn state_files_are_private_and_keep_the_mode_a_user_set() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("infra.state.json");
    save(&path, &State::new("l")).unwrap();
    assert_eq!(mode(&path), 0o600);
    let lock = StateLock::acquire(&path, "apply").unwrap();
    assert_eq!(mode(&lock_path(&path)), 0o600);
    drop(lock);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut changed = State::new("l");
    changed.outputs.insert(
        "x".into(),
        infra::state::OutputState {
            value: json!(1),
            sensitive: false,
        },
    );
    save(&path, &changed).unwrap();
    assert_eq!(mode(&path), 0o640, "the user's mode is kept");
    assert_eq!(mode(&backup_path(&path)), 0o640);
}

/// Lock races: 200 rounds of 2 to 8 contenders released at once. Exactly
/// one holds the lock each round, and every other is told who (the
/// holder's id, never an empty or half-written lock).
#[test]
fn exactly_one_of_many_racing_runs_takes_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = std::sync::Arc::new(dir.path().join("infra.state.json"));
    let mut refusals = 0;
    for round in 0..200 {
        let contenders = 2 + round % 7;
        let start = std::sync::Arc::new(std::sync::Barrier::new(contenders));
        let threads: Vec<_> = (0..contenders)
            .map(|_| {
                let (state, start) = (state.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let result = StateLock::acquire(&state, "apply");
                    // Hold it until everyone has tried.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    result
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<&StateLock> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {} holders", winners.len());
        let holder = &winners[0].info.id;
        for result in &results {
            match result {
                Ok(_) => {}
                Err(LockError::Held(info)) => {
                    assert_eq!(
                        &info.id, holder,
                        "round {round}: the refusal names the holder"
                    );
                    refusals += 1;
                }
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        drop(results);
        assert!(!lock_path(&state).exists(), "round {round}: released");
    }
    assert_eq!(refusals, (0..200).map(|r| 1 + r % 7).sum::<usize>());
}
