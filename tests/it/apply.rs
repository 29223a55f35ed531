//! `infra apply` / `infra destroy` through the real binary: the whole
//! lifecycle, partial failure, confirmation, the lock, Ctrl-C.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Signal, both, signal, text, write};

/// `infra ARGS` in `dir`, with the mock provider.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = support::command(Some(dir), args);
    command.env("INFRA_MOCK_PROVIDER", "1");
    command
}

fn infra(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().expect("run infra")
}

fn state(dir: &Path) -> serde_json::Value {
    support::stored_state(&dir.join("infra.state.json"))
}

fn addresses(dir: &Path) -> Vec<String> {
    state(dir)["resources"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

const SITE: &str = r#"
variable pages {
  type    = list(string)
  default = ["index", "about"]
}

resource random_id suffix {
  byte_length = 4
}

resource local_file page {
  for_each = toset(var.pages)
  path     = "site-${random_id.suffix.hex}/${each.key}.html"
  content  = "<h1>${each.key}</h1>\n"
}

output site {
  value = "site-${random_id.suffix.hex}"
}
"#;

#[test]
fn apply_then_plan_is_clean_a_change_applies_exactly_and_destroy_empties_the_state() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.infra", SITE);

    let applied = infra(dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    let out = text(&applied.stdout);
    assert!(out.contains("random_id.suffix: creating…"), "{out}");
    assert!(out.contains("random_id.suffix: created in "), "{out}");
    assert!(
        out.contains("Apply complete! Resources: 3 added, 0 changed, 0 destroyed."),
        "{out}"
    );
    let site = state(dir.path())["outputs"]["site"]["value"]
        .as_str()
        .expect("the output is recorded")
        .to_string();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&site).join("about.html")).unwrap(),
        "<h1>about</h1>\n"
    );
    assert_eq!(
        state(dir.path())["resources"]["local_file.page[\"index\"]"]["dependencies"],
        serde_json::json!(["random_id.suffix"])
    );

    // Idempotence: nothing to do, and a second apply changes nothing.
    let clean = infra(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    let before = std::fs::read(dir.path().join("infra.state.json")).unwrap();
    let again = infra(dir.path(), &["apply", "--auto-approve"]);
    assert!(again.status.success(), "{}", both(&again));
    assert!(text(&again.stdout).contains("Resources: 0 added, 0 changed, 0 destroyed."));
    assert_eq!(
        std::fs::read(dir.path().join("infra.state.json")).unwrap(),
        before,
        "an apply with nothing to do rewrites nothing"
    );

    // A change shows as exactly that change, and applies.
    let pages = r#"pages=["index", "contact"]"#;
    let planned = infra(dir.path(), &["plan", "--detailed-exitcode", "-var", pages]);
    assert_eq!(planned.status.code(), Some(2));
    let shown = text(&planned.stdout);
    assert!(
        shown.contains("# local_file.page[\"contact\"] will be created"),
        "{shown}"
    );
    assert!(
        shown.contains("# local_file.page[\"about\"] will be destroyed"),
        "{shown}"
    );
    assert!(
        shown.contains("Plan: 1 to add, 0 to change, 0 to replace, 1 to destroy."),
        "{shown}"
    );
    let changed = infra(dir.path(), &["apply", "--auto-approve", "-var", pages]);
    assert!(changed.status.success(), "{}", both(&changed));
    assert!(!dir.path().join(&site).join("about.html").exists());
    assert!(dir.path().join(&site).join("contact.html").exists());
    let clean = infra(dir.path(), &["plan", "--detailed-exitcode", "-var", pages]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    let destroyed = infra(dir.path(), &["destroy", "--auto-approve", "-var", pages]);
    assert!(destroyed.status.success(), "{}", both(&destroyed));
    assert!(text(&destroyed.stdout).contains("Destroy complete! Resources: 3 destroyed."));
    assert!(addresses(dir.path()).is_empty());
    assert_eq!(state(dir.path())["outputs"], serde_json::json!({}));
    assert!(!dir.path().join(&site).join("index.html").exists());
    // The state before the destroy is the backup.
    assert!(dir.path().join("infra.state.json.backup").exists());
}

#[test]
fn a_failure_keeps_the_successes_skips_the_dependents_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    // `blocker` is a plain file, so a path under it cannot be written.
    write(dir.path(), "blocker", "not a directory\n");
    write(
        dir.path(),
        "main.infra",
        r#"
variable parent {
  default = "blocker"
}

resource random_id independent {
  byte_length = 2
}

resource local_file broken {
  path    = "${var.parent}/file.txt"
  content = "x"
}

resource local_file after {
  path    = "after-${local_file.broken.id}.txt"
  content = "y"
}
"#,
    );
    let failed = infra(dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let out = text(&failed.stdout);
    assert!(
        out.contains("Apply failed: 1 change(s) done, 1 failed, 1 skipped."),
        "{out}"
    );
    assert!(
        out.contains("failed   local_file.broken (create): "),
        "{out}"
    );
    assert!(
        out.contains(
            "skipped  local_file.after (create): waits for local_file.broken, which failed"
        ),
        "{out}"
    );
    assert_eq!(addresses(dir.path()), vec!["random_id.independent"]);
    let id = state(dir.path())["resources"]["random_id.independent"]["attributes"]["hex"].clone();

    // Fixed: the rerun creates only what is missing.
    let fixed = infra(
        dir.path(),
        &["apply", "--auto-approve", "-var", "parent=dir"],
    );
    assert!(fixed.status.success(), "{}", both(&fixed));
    assert!(text(&fixed.stdout).contains("Resources: 2 added, 0 changed, 0 destroyed."));
    assert_eq!(
        state(dir.path())["resources"]["random_id.independent"]["attributes"]["hex"],
        id,
        "the first run's success was kept, not created twice"
    );
    assert_eq!(addresses(dir.path()).len(), 3);
}

#[test]
fn without_a_terminal_apply_asks_for_auto_approve_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.infra", SITE);
    let refused = infra(dir.path(), &["apply"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("run `infra apply --auto-approve`"),
        "{}",
        both(&refused)
    );
    assert!(text(&refused.stdout).contains("Plan: 3 to add"));
    assert!(!dir.path().join("infra.state.json").exists());
}

#[test]
fn a_corrupt_state_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.infra", SITE);
    write(dir.path(), "infra.state.json", "{ not json");
    let refused = infra(dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("infra.state.json"),
        "{}",
        both(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
        "{ not json"
    );
    assert!(
        !dir.path().join("infra.state.json.lock").exists(),
        "the lock is released"
    );
}

/// A chain of slow mock objects: `a` then `b` then `c`, `latency` ms each.
fn slow_chain(dir: &Path, latency: u64) {
    write(
        dir,
        "main.infra",
        &format!(
            r#"
resource mock_resource a {{
  name       = "a"
  latency_ms = {latency}
}}

resource mock_resource b {{
  name       = "b-${{mock_resource.a.id}}"
  latency_ms = {latency}
}}

resource mock_resource c {{
  name       = "c-${{mock_resource.b.id}}"
  latency_ms = {latency}
}}
"#
        ),
    );
}

/// Waits until `path` exists (the child has got that far), at most 20 s.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child if a test fails before it is waited for.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_apply_is_stopped_by_the_lock_and_told_who_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    slow_chain(dir.path(), 400);
    let mut first = Child(
        command(dir.path(), &["apply", "--auto-approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start apply"),
    );
    wait_for(&dir.path().join("infra.state.json.lock"));
    let second = infra(dir.path(), &["apply", "--auto-approve"]);
    // 3: held by another run (a scheduled job retries instead of alerting).
    assert_eq!(second.status.code(), Some(3));
    let message = text(&second.stderr);
    assert!(message.contains("locked"), "{message}");
    assert!(
        message.contains(&format!("pid {}", first.0.id())),
        "{message}"
    );
    assert!(message.contains("apply"), "{message}");
    // With `-lock-timeout` (Terraform's flag), it says so and waits.
    let waited = infra(
        dir.path(),
        &["apply", "--auto-approve", "-lock-timeout=60s"],
    );
    assert!(waited.status.success(), "{}", both(&waited));
    assert!(
        text(&waited.stdout).contains("Waiting for the state lock, held by"),
        "{}",
        both(&waited)
    );
    assert!(first.0.wait().unwrap().success());
    assert_eq!(addresses(dir.path()).len(), 3);
    assert!(!dir.path().join("infra.state.json.lock").exists());
}

/// Starts applying a slow chain and returns once its first object has
/// been in flight for half a second.
fn apply_slow_chain(dir: &Path, latency: u64) -> Child {
    slow_chain(dir, latency);
    let apply = Child(
        command(dir, &["apply", "--auto-approve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start apply"),
    );
    wait_for(&dir.join("infra.state.json.lock"));
    std::thread::sleep(Duration::from_millis(500));
    apply
}

#[test]
fn ctrl_c_lets_the_change_in_flight_finish_saves_it_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    // `a` is in flight (it takes 1.5 s).
    let mut apply = apply_slow_chain(dir.path(), 1500);
    signal(apply.0.id() as i32, false, Signal::INT);
    let status = apply.0.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(apply.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains("Interrupt received"), "{out}");
    assert!(out.contains("mock_resource.a: created in"), "{out}");
    assert!(
        out.contains("Apply interrupted: 1 change(s) done, 0 failed, 2 not started."),
        "{out}"
    );
    assert_eq!(addresses(dir.path()), vec!["mock_resource.a"]);
    assert!(!dir.path().join("infra.state.json.lock").exists());
}

#[test]
fn a_saved_plan_applies_exactly_once_and_is_refused_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        r#"
# The state may hold the token unsealed (sealing: tests/it/state.rs).
backend local {
  encryption = "none"
}

variable greeting {
  default = "hello"
}

variable token {
  type      = string
  sensitive = true
}

resource random_id suffix {
  byte_length = 4
}

resource local_file note {
  path    = "note-${random_id.suffix.hex}.txt"
  content = "${var.greeting} ${var.token}\n"
}
"#,
    );
    let token = "token=s3cr3t-value";
    let planned = infra(
        dir.path(),
        &[
            "plan",
            "-out",
            "tomorrow.plan",
            "-var",
            "greeting=hi",
            "-var",
            token,
        ],
    );
    assert!(planned.status.success(), "{}", both(&planned));
    assert!(text(&planned.stdout).contains("infra apply tomorrow.plan"));
    let saved = std::fs::read_to_string(dir.path().join("tomorrow.plan")).unwrap();
    assert!(
        !saved.contains("s3cr3t"),
        "no sensitive plaintext:\n{saved}"
    );
    // Nor its plain digest, which a table of likely secrets would find.
    let plain_digest: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(serde_json::json!("s3cr3t-value").to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert!(!saved.contains(&plain_digest), "{saved}");
    assert!(saved.contains("\"pbkdf2_sha256\""), "{saved}");
    assert!(saved.contains("\"greeting\""), "{saved}");

    // The sensitive value must be given again; the plain one is recorded.
    let refused = infra(
        dir.path(),
        &["apply", "tomorrow.plan", "-var", "token=other"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("the sensitive variable `token` is missing or differs"),
        "{}",
        both(&refused)
    );
    assert!(!dir.path().join("infra.state.json").exists());

    let applied = infra(dir.path(), &["apply", "tomorrow.plan", "-var", token]);
    assert!(applied.status.success(), "{}", both(&applied));
    assert!(text(&applied.stdout).contains("Resources: 2 added"));
    let hex = state(dir.path())["resources"]["random_id.suffix"]["attributes"]["hex"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(format!("note-{hex}.txt"))).unwrap(),
        "hi s3cr3t-value\n",
        "the saved plan's variables were used"
    );
    // Applied once: the same file again finds a state it did not plan for.
    let again = infra(dir.path(), &["apply", "tomorrow.plan", "-var", token]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("a state was created since the plan was made"));

    // A plan made, then overtaken by another apply, is stale.
    let planned = infra(
        dir.path(),
        &[
            "plan",
            "-out",
            "old.plan",
            "-var",
            "greeting=hey",
            "-var",
            token,
        ],
    );
    assert!(planned.status.success(), "{}", both(&planned));
    let other = infra(
        dir.path(),
        &[
            "apply",
            "--auto-approve",
            "-var",
            "greeting=yo",
            "-var",
            token,
        ],
    );
    assert!(other.status.success(), "{}", both(&other));
    let before = std::fs::read(dir.path().join("infra.state.json")).unwrap();
    let stale = infra(dir.path(), &["apply", "old.plan", "-var", token]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        text(&stale.stderr)
            .contains("the state of `local_file.note` changed since the plan was made"),
        "{}",
        both(&stale)
    );
    assert_eq!(
        std::fs::read(dir.path().join("infra.state.json")).unwrap(),
        before
    );
}

#[test]
fn target_replace_and_destroy_plans_touch_only_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.infra", SITE);
    // Only one page, and the suffix it needs.
    let targeted = infra(
        dir.path(),
        &[
            "apply",
            "--auto-approve",
            "--target",
            "local_file.page[\"index\"]",
        ],
    );
    assert!(targeted.status.success(), "{}", both(&targeted));
    assert_eq!(
        addresses(dir.path()),
        vec!["local_file.page[\"index\"]", "random_id.suffix"]
    );
    let rest = infra(dir.path(), &["apply", "--auto-approve"]);
    assert!(
        text(&rest.stdout).contains("Resources: 1 added"),
        "{}",
        both(&rest)
    );

    let replace = infra(dir.path(), &["plan", "--replace", "random_id.suffix"]);
    let shown = text(&replace.stdout);
    assert!(
        shown.contains("# random_id.suffix must be replaced, as requested with --replace"),
        "{shown}"
    );
    assert!(
        shown.contains("Plan: 0 to add, 0 to change, 3 to replace"),
        "{shown}"
    );
    let unknown = infra(dir.path(), &["plan", "--target", "random_id.nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("`--target random_id.nope` matches no resource"));
    assert!(text(&unknown.stderr).contains("infra::target\n"));
    let unknown = infra(dir.path(), &["plan", "--replace", "random_id.nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("`--replace random_id.nope` matches no existing resource")
    );
    assert!(text(&unknown.stderr).contains("infra::replace\n"));

    // Destroying the suffix takes the pages that depend on it along.
    let destroy_plan = infra(
        dir.path(),
        &["plan", "--destroy", "--target", "local_file.page"],
    );
    assert!(
        text(&destroy_plan.stdout)
            .contains("Plan: 0 to add, 0 to change, 0 to replace, 2 to destroy.")
    );
    let destroyed = infra(
        dir.path(),
        &["destroy", "--auto-approve", "--target", "random_id.suffix"],
    );
    assert!(destroyed.status.success(), "{}", both(&destroyed));
    assert!(text(&destroyed.stdout).contains("Destroy complete! Resources: 3 destroyed."));
    assert!(addresses(dir.path()).is_empty());
}

#[test]
fn drift_reports_what_changed_outside_infra_and_import_adopts_an_object() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        r#"
resource local_file notes {
  path    = "notes.txt"
  content = "hello\n"
}

resource local_file motd {
  path    = "motd.txt"
  content = "welcome\n"
}
"#,
    );
    let nothing = infra(dir.path(), &["drift"]);
    assert_eq!(
        nothing.status.code(),
        Some(0),
        "no state yet: {}",
        both(&nothing)
    );

    // motd.txt exists already: import it rather than overwrite it blindly.
    write(dir.path(), "motd.txt", "made by hand\n");
    let typo = infra(dir.path(), &["import", "local_file.mtd", "motd.txt"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        text(&typo.stderr).contains("did you mean `local_file.motd`?"),
        "{}",
        both(&typo)
    );
    let imported = infra(dir.path(), &["import", "local_file.motd", "motd.txt"]);
    assert!(imported.status.success(), "{}", both(&imported));
    assert_eq!(
        state(dir.path())["resources"]["local_file.motd"]["attributes"]["content"],
        "made by hand\n"
    );
    let plan = text(&infra(dir.path(), &["plan"]).stdout);
    assert!(
        plan.contains("# local_file.motd will be updated in place"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 1 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{plan}"
    );
    let twice = infra(dir.path(), &["import", "local_file.motd", "motd.txt"]);
    assert!(text(&twice.stderr).contains("is already in the state"));

    let applied = infra(dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    let clean = infra(dir.path(), &["drift"]);
    assert_eq!(clean.status.code(), Some(0));
    assert!(text(&clean.stdout).contains("No drift: the 2 resource(s) in the state match"));

    write(dir.path(), "notes.txt", "edited\n");
    std::fs::remove_file(dir.path().join("motd.txt")).unwrap();
    let drifted = infra(dir.path(), &["drift"]);
    assert_eq!(drifted.status.code(), Some(2));
    let report = text(&drifted.stdout);
    assert!(
        report.contains("# local_file.notes was changed outside infra"),
        "{report}"
    );
    assert!(
        report.contains("~ content = \"hello\\n\" -> \"edited\\n\""),
        "{report}"
    );
    assert!(
        report.contains("# local_file.motd was deleted outside infra"),
        "{report}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&infra(dir.path(), &["drift", "--json"]).stdout).unwrap();
    assert_eq!(json["drifted"][0]["address"], "local_file.motd");
    assert_eq!(json["drifted"][0]["status"], "deleted");
    assert_eq!(
        json["drifted"][1]["attributes"],
        serde_json::json!(["content", "id"])
    );
    // drift changes nothing; apply undoes it.
    assert!(!dir.path().join("motd.txt").exists());
    assert!(
        infra(dir.path(), &["apply", "--auto-approve"])
            .status
            .success()
    );
    assert_eq!(infra(dir.path(), &["drift"]).status.code(), Some(0));
}

#[test]
fn a_second_ctrl_c_abandons_the_change_in_flight_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let mut apply = apply_slow_chain(dir.path(), 5000);
    let started = Instant::now();
    signal(apply.0.id() as i32, false, Signal::INT);
    std::thread::sleep(Duration::from_millis(300));
    signal(apply.0.id() as i32, false, Signal::INT);
    let status = apply.0.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it did not wait for `a`"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(apply.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("abandoning 1 change(s) in flight: mock_resource.a"),
        "{err}"
    );
    assert!(!dir.path().join("infra.state.json.lock").exists());
}

#[test]
fn the_quickstart_applies_plans_clean_and_destroys() {
    // A copy, so that the repository's example stays untouched.
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "infra") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let applied = infra(dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    assert!(text(&applied.stdout).contains("Apply complete! Resources: 6 added"));
    let clean = infra(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    let conf = std::fs::read_to_string(dir.path().join("out/server.conf")).unwrap();
    let name = state(dir.path())["outputs"]["server_name"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(conf.starts_with(&format!("name  = {name}\n")), "{conf}");
    let output = infra(dir.path(), &["output", "admin_password"]);
    assert_eq!(text(&output.stdout).trim(), "(sensitive)");
    let destroyed = infra(dir.path(), &["destroy", "--auto-approve"]);
    assert!(destroyed.status.success(), "{}", both(&destroyed));
    assert!(!dir.path().join("out/server.conf").exists());
}

fn on_a_terminal(dir: &Path, args: &str, input: &str) -> String {
    support::on_a_terminal(Some(dir), args, input, &[])
}

#[test]
fn on_a_terminal_apply_asks_for_yes_and_shows_changes_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.infra", SITE);
    let declined = on_a_terminal(dir.path(), "apply", "no\n");
    assert!(
        declined.contains("Only 'yes' will be accepted"),
        "{declined}"
    );
    assert!(
        declined.contains("apply cancelled; nothing was changed."),
        "{declined}"
    );
    assert!(!dir.path().join("infra.state.json").exists());

    let accepted = on_a_terminal(dir.path(), "apply", "yes\n");
    assert!(
        accepted.contains("Apply complete! Resources: 3 added"),
        "{accepted}"
    );
    // The live view: a dimmed spinner per change in flight with its
    // elapsed time, cleared and redrawn in place as changes finish.
    assert!(
        accepted.contains("\x1b[2mrandom_id.suffix: creating…\x1b[0m \x1b[2m0s\x1b[0m"),
        "{accepted:?}"
    );
    assert!(
        accepted.contains("\r\x1b[2K"),
        "the live view is redrawn: {accepted:?}"
    );
    assert!(
        accepted.contains("random_id.suffix: created in "),
        "{accepted}"
    );
    assert_eq!(addresses(dir.path()).len(), 3);
}

#[test]
fn sigterm_from_a_cancelled_ci_job_stops_as_gracefully_as_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut apply = apply_slow_chain(dir.path(), 1500);
    signal(apply.0.id() as i32, false, Signal::TERM);
    let status = apply.0.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(apply.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(143), "{out}");
    assert!(out.contains("mock_resource.a: created in"), "{out}");
    assert_eq!(addresses(dir.path()), vec!["mock_resource.a"]);
    assert!(!dir.path().join("infra.state.json.lock").exists());
}

#[test]
fn a_crash_loses_no_finished_change_and_its_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    slow_chain(dir.path(), 1500);
    let mut apply = Child(
        command(dir.path(), &["apply", "--auto-approve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start apply"),
    );
    // Read progress until `a` is reported created; `b` is then in flight.
    let stdout = apply.0.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "`a` was never created");
        let line = lines.next().expect("output").unwrap();
        if line.contains(" mock_resource.a: created in") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(apply.0.id() as i32, false, Signal::KILL);
    apply.0.wait().unwrap();
    assert_eq!(
        addresses(dir.path()),
        vec!["mock_resource.a"],
        "the finished create was saved"
    );
    assert!(dir.path().join("infra.state.json.lock").exists());

    // The dead process's lock is stale: the next run takes it over.
    let next = infra(dir.path(), &["apply", "--auto-approve", "--refresh=false"]);
    assert!(next.status.success(), "{}", both(&next));
    assert!(
        text(&next.stderr).contains("removed a stale lock"),
        "{}",
        both(&next)
    );
    assert_eq!(addresses(dir.path()).len(), 3);
}

#[test]
fn a_failed_change_is_a_diagnostic_at_the_attribute_the_provider_names() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "resource mock_resource ok {\n  name = \"ok\"\n}\n\nresource mock_resource bad {\n  name    = \"bad\"\n  fail_on = \"create\"\n}\n",
    );
    let failed = infra(dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let error = text(&failed.stderr);
    let expected = "infra::apply

  × create of `mock_resource.bad` failed: MockFailure: injected failure on create
  │   note: the provider's error code is `MockFailure`
   ╭─[main.infra:7:13]
 6 │   name    = \"bad\"
 7 │   fail_on = \"create\"
   ·             ────┬───
   ·                 ╰── the provider rejected this `fail_on`
 8 │ }
   ╰────
  help: fix this value and run the same command again; every change that finished is in the state
";
    assert!(error.contains(expected), "{error}");
    // The summary on stdout still lists it; what finished is kept.
    assert!(
        text(&failed.stdout).contains(
            "failed   mock_resource.bad (create): MockFailure: injected failure on create"
        )
    );
    assert_eq!(addresses(dir.path()), vec!["mock_resource.ok"]);
}

#[test]
fn a_failed_lookup_keeps_the_providers_code() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "data mock_lookup gone {\n  name = \"missing-one\"\n}\n",
    );
    let plan = infra(dir.path(), &["plan"]);
    assert_eq!(plan.status.code(), Some(1), "{}", both(&plan));
    let error = text(&plan.stderr);
    for expected in [
        "infra::data_source\n",
        "reading `data.mock_lookup.gone` failed: MockNotFound: no lookup named `missing-one`",
        "1 error(s); nothing was planned",
    ] {
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

#[test]
fn infra_log_debug_names_every_provider_call() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "resource mock_resource a {\n  name = \"a\"\n}\n",
    );
    let log = dir.path().join("infra.log");
    let applied = command(dir.path(), &["apply", "--auto-approve"])
        .env("INFRA_LOG", "debug")
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", both(&applied));
    let logged = text(&applied.stderr);
    for expected in [
        "infra::provider: provider configured provider=\"local\"",
        "provider call succeeded provider=\"mock\" operation=\"plan\" type_name=\"mock_resource\" address=\"mock_resource.a\"",
        "provider call succeeded provider=\"mock\" operation=\"create\" type_name=\"mock_resource\" address=\"mock_resource.a\" elapsed_ms=",
        "lock taken",
        "state saved",
        "provider closed provider=\"mock\"",
    ] {
        assert!(logged.contains(expected), "{expected}:\n{logged}");
    }
    // To a file instead, and a refresh is logged as a batch.
    let planned = command(dir.path(), &["plan"])
        .env("INFRA_LOG", "infra::provider=debug")
        .env("INFRA_LOG_FILE", &log)
        .output()
        .unwrap();
    assert!(planned.status.success(), "{}", both(&planned));
    assert!(!text(&planned.stderr).contains("provider call"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("operation=\"read_many\" type_name=\"mock_resource\" objects=1 failed=0"),
        "{logged}"
    );
    assert!(!logged.contains("lock taken"), "only the provider target");
    // A filter that is not one is a clear error.
    let bad = command(dir.path(), &["plan"])
        .env("INFRA_LOG", "debug=[")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("INFRA_LOG=debug=[ is not a log filter"));
}

#[test]
fn apply_json_streams_the_plan_and_every_change_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.infra", SITE);
    let refused = infra(dir.path(), &["apply", "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("cannot ask for confirmation"));
    let applied = infra(dir.path(), &["apply", "--json", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    let lines: Vec<serde_json::Value> = text(&applied.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "planned_change").count(),
        3,
        "{types:?}"
    );
    assert_eq!(types.iter().filter(|t| **t == "apply_start").count(), 3);
    assert_eq!(types.iter().filter(|t| **t == "apply_complete").count(), 3);
    let started = lines.iter().find(|l| l["type"] == "apply_start").unwrap();
    assert_eq!(started["hook"]["resource"]["addr"], "random_id.suffix");
    assert_eq!(started["hook"]["action"], "create");
    assert!(started["@timestamp"].as_str().unwrap().ends_with('Z'));
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "change_summary");
    assert_eq!(summary["changes"]["add"], 3);
    assert_eq!(summary["changes"]["operation"], "apply");
}

/// Ctrl-C or SIGTERM while planning (here: while a slow refresh runs,
/// under the state lock) changes nothing: infra releases the lock and exits
/// at once with 128 + the signal.
#[test]
fn a_signal_while_planning_releases_the_lock_and_exits_128_plus_it() {
    for (sent, code) in [(Signal::INT, 130), (Signal::TERM, 143)] {
        let dir = tempfile::tempdir().unwrap();
        slow_chain(dir.path(), 10);
        // An object whose refresh takes 20 s.
        let state = serde_json::json!({
            "format": "infra-state",
            "version": 1,
            "lineage": "l",
            "resources": {
                "mock_resource.a": {
                    "type": "mock_resource",
                    "provider": "mock",
                    "attributes": {"id": "a", "name": "a", "latency_ms": 20000}
                }
            }
        });
        std::fs::write(
            dir.path().join("infra.state.json"),
            serde_json::to_string_pretty(&state).unwrap(),
        )
        .unwrap();
        let started = Instant::now();
        let mut apply = Child(
            command(dir.path(), &["apply", "--auto-approve"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start apply"),
        );
        let lock = dir.path().join("infra.state.json.lock");
        wait_for(&lock);
        std::thread::sleep(Duration::from_millis(200));
        signal(apply.0.id() as i32, false, sent);
        let status = apply.0.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(apply.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(code), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "it stopped at once, not after the refresh"
        );
        assert!(!lock.exists(), "the lock is released");
        assert!(err.contains("the state lock is released"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
            serde_json::to_string_pretty(&state).unwrap(),
            "the state is untouched"
        );
    }
}

/// A create an interrupted run journaled but never recorded, of a provider
/// that cannot look objects up: the plan warns, naming the address and
/// what to do, and plans the create.
#[test]
fn a_pending_create_nobody_can_look_for_is_named() {
    let dir = tempfile::tempdir().unwrap();
    slow_chain(dir.path(), 0);
    let journal = [
        serde_json::json!({"entry": "run", "lineage": "l1", "pid": 1}),
        serde_json::json!({
            "entry": "creating",
            "address": "mock_resource.a",
            "type": "mock_resource",
            "provider": "mock",
            "config": {"name": "a"}
        }),
    ]
    .iter()
    .map(|entry| format!("{entry}\n"))
    .collect::<String>();
    std::fs::write(dir.path().join("infra.state.json.journal"), journal).unwrap();
    let plan = infra(dir.path(), &["plan"]);
    let out = both(&plan);
    assert!(plan.status.success(), "{out}");
    assert!(out.contains("infra::interrupted"), "{out}");
    assert!(
        out.contains("`mock_resource.a` was being created when an earlier run stopped"),
        "{out}"
    );
    assert!(out.contains("run `infra import"), "{out}");
    assert!(out.contains("mock_resource.a ID` before applying"), "{out}");
    assert!(out.contains("mock_resource.a will be created"), "{out}");
    // The journal stays until an apply folds it into the state.
    assert!(dir.path().join("infra.state.json.journal").exists());
    let apply = infra(dir.path(), &["apply", "--auto-approve"]);
    assert!(apply.status.success(), "{}", both(&apply));
    assert!(!dir.path().join("infra.state.json.journal").exists());
    assert_eq!(state(dir.path())["lineage"], "l1", "the journal's lineage");
}

#[test]
fn a_large_apply_saves_the_whole_state_at_intervals_not_per_change() {
    // 40 chains of 10: 400 changes finishing one after another. Each is
    // durable in the journal before its dependents start; the state file,
    // which costs what the whole state costs, is written at the end (and
    // once per interval of a long run), not once per change.
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    for chain in 0..40 {
        for link in 0..10 {
            let name = match link {
                0 => format!("\"c{chain}\""),
                _ => format!("mock_resource.c{chain}_{}.id", link - 1),
            };
            config.push_str(&format!(
                "resource mock_resource c{chain}_{link} {{\n  name       = {name}\n  latency_ms = 5\n}}\n\n"
            ));
        }
    }
    write(dir.path(), "main.infra", &config);
    let started = Instant::now();
    let applied = command(dir.path(), &["apply", "--auto-approve"])
        .env("INFRA_LOG", "infra::apply=debug")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(applied.status.success(), "{}", both(&applied));
    let saves = text(&applied.stderr).matches("state saved").count();
    let intervals = (elapsed.as_secs_f64() / 5.0).ceil() as usize;
    assert!(
        (1..=1 + intervals).contains(&saves),
        "{saves} saves of the whole state in {elapsed:?} for 400 changes"
    );
    // Everything is in the state file itself, and the journal is gone.
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["resources"].as_object().unwrap().len(), 400);
    assert!(!dir.path().join("infra.state.json.journal").exists());
}

#[test]
fn an_instance_waits_for_the_one_instance_its_key_names() {
    // `group[count.index % 3]` names one group per server: server[0] and
    // server[3] need group[0] only, so they are created while the slow
    // group[2] is still being created — and the state records one
    // dependency each, not every group.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        r#"
resource mock_resource group {
  count      = 3
  name       = "g${count.index}"
  latency_ms = count.index == 2 ? 1500 : 0
}

resource mock_resource server {
  count = 6
  name  = "s-${mock_resource.group[count.index % 3].id}"
}

resource mock_resource all {
  name = join(",", mock_resource.group[*].id)
}
"#,
    );
    let applied = infra(dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    let out = text(&applied.stdout);
    let finished = |address: &str| {
        out.find(&format!("{address}: created in"))
            .unwrap_or_else(|| panic!("{address} was not created:\n{out}"))
    };
    let slow_group = finished("mock_resource.group[2]");
    for early in ["mock_resource.server[0]", "mock_resource.server[3]"] {
        assert!(
            finished(early) < slow_group,
            "{early} waited for group[2]:\n{out}"
        );
    }
    assert!(finished("mock_resource.server[2]") > slow_group, "{out}");
    assert!(finished("mock_resource.all") > slow_group, "{out}");
    let recorded = state(dir.path());
    let dependencies = |address: &str| recorded["resources"][address]["dependencies"].clone();
    assert_eq!(
        dependencies("mock_resource.server[4]"),
        serde_json::json!(["mock_resource.group[1]"])
    );
    assert_eq!(
        dependencies("mock_resource.all"),
        serde_json::json!(["mock_resource.group"]),
        "a whole resource is recorded once"
    );
    // Destroyed in reverse, instance by instance, and nothing is left.
    let destroyed = infra(dir.path(), &["destroy", "--auto-approve"]);
    assert!(destroyed.status.success(), "{}", both(&destroyed));
    assert!(addresses(dir.path()).is_empty());
}
