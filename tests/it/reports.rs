//! The reports CI posts and reads, pinned whole in `tests/reports/`
//! (`UPDATE_EXPECT=1` to rewrite): `drift --format markdown` (what a bot
//! comments on an issue or pull request) and `drift --json` (a versioned
//! format, docs/json-formats.md) — updates, deletions, sensitive values,
//! nested values, and a report too large for one comment.

use std::collections::BTreeMap;
use std::path::Path;

use infra::plan::drift;
use infra::providers::ProviderRegistry;
use infra::state::{ResourceState, State};
use serde_json::{Value, json};

use crate::support::{self, text, write};

fn resource(type_name: &str, attributes: Value, sensitive: &[&str]) -> ResourceState {
    let attributes: BTreeMap<String, Value> =
        serde_json::from_value(attributes).expect("an object");
    ResourceState {
        type_name: type_name.into(),
        provider: type_name.split('_').next().unwrap_or_default().into(),
        attributes,
        dependencies: Vec::new(),
        sensitive: sensitive.iter().map(|s| s.to_string()).collect(),
    }
}

/// A state and what a refresh found: a file edited by hand, a file
/// deleted, a password changed (sensitive by its schema), a value with a
/// secret inside changed (sensitive by its recorded path), tags (a map)
/// changed, and one resource untouched.
fn recorded_and_refreshed() -> (State, State) {
    let mut recorded = State::new("lineage");
    let mut refreshed = State::new("lineage");
    let mut both = |address: &str, before: ResourceState, after: Option<ResourceState>| {
        recorded.resources.insert(address.into(), before);
        if let Some(after) = after {
            refreshed.resources.insert(address.into(), after);
        }
    };
    both(
        "local_file.motd",
        resource(
            "local_file",
            json!({"path": "motd", "content": "hello\n", "id": "1"}),
            &[],
        ),
        Some(resource(
            "local_file",
            json!({"path": "motd", "content": "edited by hand\n", "id": "2"}),
            &[],
        )),
    );
    both(
        "local_file.gone",
        resource(
            "local_file",
            json!({"path": "gone", "content": "x", "id": "3"}),
            &[],
        ),
        None,
    );
    both(
        "random_password.db",
        resource(
            "random_password",
            json!({"length": 8, "result": "s3cr3t-1", "id": "none"}),
            &[],
        ),
        Some(resource(
            "random_password",
            json!({"length": 8, "result": "s3cr3t-2", "id": "none"}),
            &[],
        )),
    );
    both(
        "random_id.keyed[\"a|b\"]",
        resource(
            "random_id",
            json!({"keepers": {"pw": "hunter2", "user": "app"}, "tags": {"team": "web"}, "hex": "aa"}),
            &["keepers.pw"],
        ),
        Some(resource(
            "random_id",
            json!({"keepers": {"pw": "hunter3", "user": "app"}, "tags": {"team": "web", "cost": "42"}, "hex": "aa"}),
            &["keepers.pw"],
        )),
    );
    let same = resource(
        "local_file",
        json!({"path": "same", "content": "y", "id": "4"}),
        &[],
    );
    both("local_file.same", same.clone(), Some(same));
    (recorded, refreshed)
}

#[test]
fn drift_reports_are_pinned_in_markdown_and_json() {
    let schemas = ProviderRegistry::builtin().catalog();
    let (recorded, refreshed) = recorded_and_refreshed();
    let report = drift(&recorded, &refreshed);
    let markdown = report.to_markdown(&schemas, &recorded, 60_000);
    support::golden(Path::new("tests/reports/drift.md"), &markdown);
    for secret in ["s3cr3t", "hunter"] {
        assert!(!markdown.contains(secret), "{secret} leaked:\n{markdown}");
    }
    let json = serde_json::to_string_pretty(&report.to_json()).unwrap() + "\n";
    support::golden(Path::new("tests/reports/drift.json"), &json);

    let clean = drift(&recorded, &recorded).to_markdown(&schemas, &recorded, 60_000);
    support::golden(Path::new("tests/reports/no_drift.md"), &clean);
}

/// 1,000 drifted resources do not fit in one comment: the report stays
/// within the limit, shows resources in order (a table row each, then the
/// details of the first of those), and ends with a note that counts exactly
/// what it left out.
#[test]
fn a_thousand_drifted_resources_fit_a_comment_and_say_what_is_left_out() {
    let schemas = ProviderRegistry::builtin().catalog();
    let mut recorded = State::new("lineage");
    let mut refreshed = State::new("lineage");
    for i in 0..1000 {
        let address = format!("local_file.f[{i}]");
        let file = |content: &str| {
            resource(
                "local_file",
                json!({"path": format!("f{i}"), "content": content, "id": "x"}),
                &[],
            )
        };
        recorded
            .resources
            .insert(address.clone(), file(&"a".repeat(40)));
        refreshed.resources.insert(address, file(&"b".repeat(40)));
    }
    let report = drift(&recorded, &refreshed);
    let markdown = report.to_markdown(&schemas, &recorded, 60_000);
    assert!(markdown.len() <= 60_000, "{} bytes", markdown.len());
    let rows = markdown
        .lines()
        .filter(|l| l.starts_with("| `local_file.f["))
        .count();
    let sections = markdown.matches("<details>").count();
    assert!(rows > 100 && rows < 1000, "{rows} rows");
    assert!(sections > 0 && sections <= rows, "{sections} sections");
    assert!(
        markdown.contains(&format!(
            "{} resource(s) and {} detail section(s) not shown",
            1000 - rows,
            rows - sections
        )),
        "{}",
        &markdown[markdown.len() - 600..]
    );
    assert!(
        markdown.starts_with("### infra drift: 1000 of 1000 resource(s) changed outside infra")
    );
}

/// `validate --json` as CI reads it (docs/schemas/validate.schema.json).
#[test]
fn validate_json_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "resource local_file f {\n  path    = \"f.txt\"\n  content = var.missing\n}\n",
    );
    let output = support::command(Some(dir.path()), &["validate", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    support::golden(
        Path::new("tests/reports/validate.json"),
        &text(&output.stdout),
    );
}

/// Through the binary, as a scheduled job runs it: exit 2 and a report
/// naming the edited attribute; after repair, exit 0.
#[test]
fn the_drift_command_prints_markdown_and_exits_2_until_repaired() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  encryption = \"none\"\n}\n\nresource local_file motd {\n  path    = \"motd\"\n  content = \"hello\\n\"\n}\n",
    );
    let infra = |args: &[&str]| support::command(Some(dir.path()), args).output().unwrap();
    assert!(infra(&["apply", "-auto-approve"]).status.success());
    write(dir.path(), "motd", "edited by hand\n");
    let drifted = infra(&["drift", "-format=markdown"]);
    assert_eq!(drifted.status.code(), Some(2), "{}", text(&drifted.stderr));
    let shown = text(&drifted.stdout);
    assert!(
        shown.contains("| `local_file.motd` | changed | `content`, `id` |"),
        "{shown}"
    );
    assert!(
        shown.contains("- content = \"hello\\n\"\n+ content = \"edited by hand\\n\""),
        "{shown}"
    );
    assert!(infra(&["apply", "-auto-approve"]).status.success());
    let repaired = infra(&["drift", "--format", "markdown"]);
    assert_eq!(repaired.status.code(), Some(0));
    assert!(text(&repaired.stdout).starts_with("### infra drift: no drift"));
}

/// `plan --format markdown`, what a pull request job posts: pinned whole,
/// secrets hidden; a saved plan alongside (`-out`) applies as reviewed.
#[test]
fn plan_markdown_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  encryption = \"none\"\n}\n\nvariable token {\n  default   = \"hunter2\"\n  sensitive = true\n}\n\nresource local_file motd {\n  path    = \"motd\"\n  content = \"hello\\nworld\\n\"\n}\n\nresource local_file token {\n  path    = \"token\"\n  content = var.token\n}\n\noutput motd {\n  value = local_file.motd.path\n}\n",
    );
    let infra = |args: &[&str]| support::command(Some(dir.path()), args).output().unwrap();
    let planned = infra(&["plan", "--format", "markdown", "-out", "pr.plan"]);
    assert!(planned.status.success(), "{}", text(&planned.stderr));
    let markdown = text(&planned.stdout);
    assert!(!markdown.contains("hunter2"));
    support::golden(Path::new("tests/reports/plan.md"), &markdown);
    assert!(infra(&["apply", "pr.plan"]).status.success());
    let clean = infra(&["plan", "--format", "markdown"]);
    assert_eq!(
        text(&clean.stdout),
        "### infra plan: no changes\n\nThe infrastructure matches the configuration.\n"
    );
}
