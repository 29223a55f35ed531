//! Integration tests that run the real `infra` binary.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{self, text, write};

fn infra(args: &[&str], dir: Option<&Path>) -> Output {
    support::command(dir, args)
        .env("INFRA_VAR_from_env", "env-value")
        .output()
        .expect("run infra")
}

/// `--help` of infra and of its main commands, and a usage error, pinned
/// whole in `tests/cli_output/` (`UPDATE_EXPECT=1` to rewrite): a command
/// or an option that disappears or changes shows as a diff.
#[test]
fn help_and_usage_errors_are_pinned_whole() {
    for (name, args, code) in [
        ("help", &["--help"][..], 0),
        ("plan_help", &["plan", "--help"], 0),
        ("apply_help", &["apply", "--help"], 0),
        ("state_help", &["state", "--help"], 0),
        // A usage error is an error (1), never "changes" or "drift" (2).
        ("unknown_option", &["plan", "--bogus"], 1),
        ("unknown_command", &["plna"], 1),
    ] {
        let output = infra(args, None);
        assert_eq!(output.status.code(), Some(code), "{name}");
        let shown = if code == 0 {
            text(&output.stdout)
        } else {
            text(&output.stderr)
        };
        support::golden(Path::new(&format!("tests/cli_output/{name}.txt")), &shown);
    }
}

#[test]
fn version_prints_the_crate_version() {
    let output = infra(&["--version"], None);
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout).trim(),
        format!("infra {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn validate_accepts_every_example() {
    let examples = support::example_configurations();
    assert!(examples.len() >= 4, "{examples:?}");
    for example in examples {
        let example = example.to_string_lossy().into_owned();
        let output = infra(&["-C", &example, "validate"], None);
        assert!(
            output.status.success(),
            "{example}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stdout).contains("The configuration is valid ("),
            "{example}"
        );
    }
}

#[test]
fn validate_reports_all_errors_with_exit_code_1_and_no_colour_off_a_tty() {
    let output = infra(&["-C", "tests/fixtures/unknown_names", "validate"], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI colour when stderr is not a terminal"
    );
    assert!(
        stderr.contains("tests/fixtures/unknown_names/main.infra:7:12"),
        "paths are shown as the user typed them:\n{stderr}"
    );
    assert!(stderr.contains("did you mean `var.region`?"));
    assert!(stderr.ends_with("11 error(s), 0 warning(s)\n"), "{stderr}");
}

#[test]
fn validate_json_is_machine_readable() {
    let output = infra(&["-C", "tests/fixtures/cycle", "validate", "--json"], None);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(report["valid"], false);
    assert_eq!(report["error_count"], 2);
    assert_eq!(report["warning_count"], 0);
    let first = &report["diagnostics"][0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["file"], "tests/fixtures/cycle/main.infra");
    assert_eq!(first["line"], 2);
    assert_eq!(first["column"], 7);
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("dependency cycle: `local.a` → `local.b`")
    );
    assert!(first["help"].is_string());
    assert!(first["span"]["start"].is_number());

    let valid = infra(
        &["-C", "examples/language-tour", "validate", "--json"],
        None,
    );
    assert!(valid.status.success());
    let report: serde_json::Value = serde_json::from_slice(&valid.stdout).expect("valid JSON");
    assert_eq!(report["valid"], true);
    assert_eq!(report["diagnostics"].as_array().map(Vec::len), Some(0));
}

#[test]
fn variables_come_from_flags_files_and_environment_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "main.infra",
        "variable a {}\nvariable b {}\nvariable from_env {}\nvariable n {\n  type = number\n}\noutput all {\n  value = \"${var.a}/${var.b}/${var.from_env}/${var.n + 1}\"\n}\n",
    );
    write(
        dir.path(),
        "values.infravars",
        "a = \"file\"\nb = \"file\"\n",
    );
    let output = infra(
        &[
            "validate",
            "--show",
            "-var-file",
            "values.infravars",
            "-var",
            "b=flag",
            "-var",
            "n=41",
        ],
        Some(dir.path()),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("output.all = \"file/flag/env-value/42\""),
        "{}",
        text(&output.stdout)
    );

    let missing = infra(&["validate"], Some(dir.path()));
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no value for required variable `a`"));

    let undeclared = infra(
        &[
            "validate", "-var", "a=1", "-var", "b=2", "-var", "n=1", "-var", "nope=1",
        ],
        Some(dir.path()),
    );
    assert_eq!(undeclared.status.code(), Some(1));
    assert!(text(&undeclared.stderr).contains("`-var nope` sets a variable that is not declared"));

    let missing_file = infra(
        &["validate", "-var-file", "nope.infravars"],
        Some(dir.path()),
    );
    assert_eq!(missing_file.status.code(), Some(1));
    assert!(
        text(&missing_file.stderr).contains("cannot read `nope.infravars`: no such file"),
        "{}",
        text(&missing_file.stderr)
    );
    assert!(text(&missing_file.stderr).contains("infra::io\n"));

    write(
        dir.path(),
        "block.infravars",
        "a = \"x\"\nlocals {\n  b = 1\n}\n",
    );
    let block_in_file = infra(
        &["validate", "-var-file", "block.infravars"],
        Some(dir.path()),
    );
    assert_eq!(block_in_file.status.code(), Some(1));
    assert!(
        text(&block_in_file.stderr).contains("a variable file holds only `name = value` lines")
    );
    assert!(text(&block_in_file.stderr).contains("infra::var_file\n"));

    let malformed = infra(&["validate", "-var", "a"], Some(dir.path()));
    assert_eq!(malformed.status.code(), Some(1));
    assert!(text(&malformed.stderr).contains("`-var a` is not NAME=VALUE"));
    assert!(text(&malformed.stderr).contains("infra::var_syntax\n"));

    let bad_number = infra(
        &["validate", "-var", "a=1", "-var", "b=2", "-var", "n=many"],
        Some(dir.path()),
    );
    assert_eq!(bad_number.status.code(), Some(1));
    assert!(text(&bad_number.stderr).contains(
        "invalid value for variable `n`: a number is required, but `many` is not a number"
    ));
}

#[test]
fn fmt_check_diff_and_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let messy = "locals {\nx=1\n  longer = 2 # keep me\n}\n";
    write(dir.path(), "main.infra", messy);
    write(dir.path(), "tidy.infra", "locals {\n  y = 1\n}\n");

    let check = infra(&["fmt", "--check"], Some(dir.path()));
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(text(&check.stdout), "main.infra\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main.infra")).unwrap(),
        messy,
        "--check changes nothing"
    );

    let diff = infra(&["fmt", "--diff"], Some(dir.path()));
    assert!(diff.status.success());
    let diff_text = text(&diff.stdout);
    assert!(
        diff_text.contains("-x=1\n") && diff_text.contains("+  x      = 1\n"),
        "{diff_text}"
    );

    let write_run = infra(&["fmt"], Some(dir.path()));
    assert!(write_run.status.success());
    assert_eq!(text(&write_run.stdout), "formatted main.infra\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main.infra")).unwrap(),
        "locals {\n  x      = 1\n  longer = 2 # keep me\n}\n"
    );
    let again = infra(&["fmt", "--check"], Some(dir.path()));
    assert!(again.status.success(), "formatted files pass --check");
}

#[test]
fn fmt_recursive_reaches_subdirectories_and_check_lists_each_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let messy = "locals {\nx=1\n}\n";
    write(dir.path(), "main.infra", messy);
    std::fs::create_dir_all(dir.path().join("modules/net")).unwrap();
    write(&dir.path().join("modules/net"), "main.infra", messy);
    std::fs::create_dir_all(dir.path().join(".infra")).unwrap();
    write(&dir.path().join(".infra"), "cache.infra", messy);

    let shallow = infra(&["fmt", "-check"], Some(dir.path()));
    assert_eq!(shallow.status.code(), Some(1));
    assert_eq!(text(&shallow.stdout), "main.infra\n");

    let deep = infra(&["fmt", "-check", "-recursive"], Some(dir.path()));
    assert_eq!(deep.status.code(), Some(1));
    assert_eq!(
        text(&deep.stdout),
        "main.infra\nmodules/net/main.infra\n",
        "hidden directories are skipped"
    );

    // A directory named on the command line is formatted like `-C` would.
    let named = infra(&["fmt", "modules"], Some(dir.path()));
    assert!(named.status.success());
    assert_eq!(text(&named.stdout), "", "modules/ itself holds no file");
    let named = infra(&["fmt", "-recursive", "modules"], Some(dir.path()));
    assert_eq!(text(&named.stdout), "formatted modules/net/main.infra\n");
    let again = infra(
        &["fmt", "-check", "-recursive", "modules"],
        Some(dir.path()),
    );
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".infra/cache.infra")).unwrap(),
        messy
    );
}

#[test]
fn fmt_refuses_files_with_syntax_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = "locals {\n  x = \n}\n";
    write(dir.path(), "main.infra", broken);
    let output = infra(&["fmt"], Some(dir.path()));
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("syntax error"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main.infra")).unwrap(),
        broken
    );
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let output = infra(&["-C", "/nonexistent/infra-config", "validate"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("`/nonexistent/infra-config` is not a directory"));
    assert!(text(&output.stderr).contains("infra::no_configuration\n"));
}

/// `infra ARGS` on a pseudo-terminal; what it showed.
fn on_a_terminal(args: &str, no_color_env: bool) -> String {
    let env: &[(&str, &str)] = if no_color_env {
        &[("NO_COLOR", "1")]
    } else {
        &[]
    };
    support::on_a_terminal(None, args, "", env)
}

#[test]
fn colour_only_on_a_terminal_and_never_when_disabled() {
    let coloured = on_a_terminal("-C tests/fixtures/cycle validate", false);
    assert!(coloured.contains("dependency cycle"), "{coloured}");
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets ANSI colour:\n{coloured}"
    );
    let flag = on_a_terminal("--no-color -C tests/fixtures/cycle validate", false);
    assert!(
        flag.contains("dependency cycle") && !flag.contains("\u{1b}["),
        "--no-color:\n{flag}"
    );
    let env = on_a_terminal("-C tests/fixtures/cycle validate", true);
    assert!(
        env.contains("dependency cycle") && !env.contains("\u{1b}["),
        "NO_COLOR:\n{env}"
    );
}

#[test]
fn graph_prints_instances_and_dependencies_clustered_by_module() {
    let dot = infra(&["-C", "tests/fixtures/dependencies", "graph"], None);
    assert!(dot.status.success(), "{}", text(&dot.stderr));
    let dot = text(&dot.stdout);
    assert!(dot.starts_with("digraph infra {"));
    assert!(dot.contains("subgraph \"cluster_module.net\""), "{dot}");
    for edge in [
        "\"cloud_subnet.direct\" -> \"cloud_vpc.main\";",
        "\"module.net.cloud_subnet.inner\" -> \"cloud_vpc.main\";",
        "\"cloud_instance.web\" -> \"module.net.cloud_subnet.inner\";",
    ] {
        assert!(dot.contains(edge), "missing {edge} in\n{dot}");
    }
    let listing = infra(
        &[
            "-C",
            "tests/fixtures/dependencies",
            "graph",
            "--format",
            "text",
        ],
        None,
    );
    let listing = text(&listing.stdout);
    let position = |address: &str| {
        listing
            .lines()
            .position(|l| l.starts_with(address))
            .unwrap_or_else(|| panic!("{address} in {listing}"))
    };
    assert!(position("cloud_vpc.main") < position("module.net.cloud_subnet.inner"));
    assert!(position("module.net.cloud_subnet.inner") < position("cloud_instance.web"));

    let counted = infra(
        &[
            "-C",
            "tests/fixtures/multi_file",
            "graph",
            "-var",
            "env=prod",
            "-var",
            "subnet_count=3",
        ],
        None,
    );
    let counted = text(&counted.stdout);
    for index in 0..3 {
        assert!(
            counted.contains(&format!(
                "\"cloud_subnet.public[{index}]\" -> \"cloud_vpc.main\";"
            )),
            "{counted}"
        );
    }

    let broken = infra(&["-C", "tests/fixtures/cycle", "graph"], None);
    assert_eq!(broken.status.code(), Some(1));
    assert!(text(&broken.stderr).contains("dependency cycle"));
}

const STATE: &str = r#"{
  "format": "infra-state",
  "version": 1,
  "lineage": "abc",
  "resources": {
    "aws_subnet.a": { "type": "aws_subnet", "provider": "aws", "attributes": { "id": "subnet-1" }, "dependencies": ["aws_vpc.main"] },
    "aws_vpc.main": { "type": "aws_vpc", "provider": "aws", "attributes": { "cidr_block": "10.0.0.0/16", "id": "vpc-1" } }
  },
  "outputs": { "db_password": { "value": "hunter2", "sensitive": true }, "vpc_id": { "value": "vpc-1" } }
}
"#;

fn configuration_with_state() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  path = \"prod.json\"\n}\n",
    );
    write(dir.path(), "prod.json", STATE);
    dir
}

/// A module called with `for_each` (and one with `count`), as a user drives
/// it: instances addressed by key in the plan, the state, `--target` and
/// `state mv`; renaming a key after moving its state plans nothing.
#[test]
fn module_instances_are_addressed_by_key_in_plan_state_target_and_mv() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("modules/site")).unwrap();
    write(
        dir.path(),
        "modules/site/main.infra",
        "variable name {\n  type = string\n}\n\nresource random_id suffix {\n  byte_length = 4\n  keepers     = { name = var.name }\n}\n\noutput hex {\n  value = random_id.suffix.hex\n}\n",
    );
    let config = |keys: &str, workers: u32| {
        format!(
            "module site {{\n  for_each = toset([{keys}])\n  source   = \"./modules/site\"\n  name     = each.key\n}}\n\nmodule worker {{\n  count  = {workers}\n  source = \"./modules/site\"\n  name   = \"worker-${{count.index}}\"\n}}\n\noutput hexes {{\n  value = {{ for key, site in module.site : key => site.hex }}\n}}\n"
        )
    };
    write(dir.path(), "main.infra", &config("\"a\", \"b\"", 2));
    let applied = infra(&["apply", "--auto-approve"], Some(dir.path()));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let list = text(&infra(&["state", "list"], Some(dir.path())).stdout);
    assert_eq!(
        list,
        "module.site[\"a\"].random_id.suffix\nmodule.site[\"b\"].random_id.suffix\nmodule.worker[0].random_id.suffix\nmodule.worker[1].random_id.suffix\n"
    );
    let clean = infra(&["plan", "--detailed-exitcode"], Some(dir.path()));
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stdout));

    // New keys and fewer workers; `--target` one instance of the module.
    write(
        dir.path(),
        "main.infra",
        &config("\"a\", \"b\", \"c\", \"d\"", 1),
    );
    let targeted = infra(
        &["plan", "--target", "module.site[\"c\"]"],
        Some(dir.path()),
    );
    let plan = text(&targeted.stdout);
    assert!(
        plan.contains("# module.site[\"c\"].random_id.suffix will be created"),
        "{plan}"
    );
    assert!(
        !plan.contains("module.site[\"d\"]") && !plan.contains("module.worker"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy."),
        "{plan}"
    );
    let whole = text(&infra(&["plan", "--target", "module.site"], Some(dir.path())).stdout);
    assert!(
        whole.contains("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy."),
        "{whole}"
    );
    let all = text(&infra(&["plan"], Some(dir.path())).stdout);
    assert!(
        all.contains("# module.worker[1].random_id.suffix will be destroyed")
            && all.contains(
                "Plan: 2 to add, 0 to change, 0 to replace, 1 to destroy, 1 output to change."
            ),
        "{all}"
    );

    // Key `b` renamed `bee`: its state moves with `state mv` of the module
    // instance (the keeper follows the name, so it is replaced).
    write(dir.path(), "main.infra", &config("\"a\", \"bee\"", 2));
    let moved = infra(
        &["state", "mv", "module.site[\"b\"]", "module.site[\"bee\"]"],
        Some(dir.path()),
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    assert_eq!(
        text(&moved.stdout),
        "Moved module.site[\"b\"].random_id.suffix to module.site[\"bee\"].random_id.suffix\n"
    );
    let after = text(&infra(&["plan"], Some(dir.path())).stdout);
    assert!(
        after.contains("# module.site[\"bee\"].random_id.suffix must be replaced")
            && after.contains("Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy,"),
        "{after}"
    );
    let unknown = infra(
        &["state", "mv", "module.site[\"zz\"]", "module.x"],
        Some(dir.path()),
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("is not in the state"));
}

#[test]
fn state_show_hides_sensitive_values_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  encryption = \"none\"\n}\n\nresource random_password db {\n  length = 24\n}\n",
    );
    let applied = infra(&["apply", "--auto-approve"], Some(dir.path()));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
    )
    .unwrap();
    let secret = state["resources"]["random_password.db"]["attributes"]["result"]
        .as_str()
        .expect("a password")
        .to_string();
    let shown = infra(&["state", "show", "random_password.db"], Some(dir.path()));
    let shown = text(&shown.stdout);
    assert!(!shown.contains(&secret), "{shown}");
    assert!(
        shown.contains("result") && shown.contains("(sensitive value)"),
        "{shown}"
    );
    let asked = infra(
        &["state", "show", "--show-sensitive", "random_password.db"],
        Some(dir.path()),
    );
    assert!(text(&asked.stdout).contains(&secret));
}

#[test]
fn moving_one_instance_of_a_resource_recorded_whole_keeps_both_dependencies() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "main.infra", "");
    write(
        dir.path(),
        "infra.state.json",
        r#"{ "format": "infra-state", "version": 1, "lineage": "abc", "resources": {
  "aws_subnet.net[0]": { "type": "aws_subnet", "provider": "aws", "attributes": { "id": "subnet-0" } },
  "aws_subnet.net[1]": { "type": "aws_subnet", "provider": "aws", "attributes": { "id": "subnet-1" } },
  "aws_instance.web": { "type": "aws_instance", "provider": "aws", "attributes": { "id": "i-1" },
                        "dependencies": ["aws_subnet.net"] } } }"#,
    );
    let moved = infra(
        &["state", "mv", "aws_subnet.net[1]", "aws_subnet.edge"],
        Some(dir.path()),
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["resources"]["aws_instance.web"]["dependencies"],
        serde_json::json!(["aws_subnet.edge", "aws_subnet.net"]),
        "the moved instance is still destroyed after the instance"
    );
    assert_eq!(state["version"], 2, "written in the current format");
}

#[test]
fn state_commands_list_show_move_and_remove_under_the_lock() {
    let dir = configuration_with_state();
    let list = infra(&["state", "list"], Some(dir.path()));
    assert_eq!(text(&list.stdout), "aws_subnet.a\naws_vpc.main\n");
    let show = infra(&["state", "show", "aws_vpc.main"], Some(dir.path()));
    assert!(
        text(&show.stdout).contains("cidr_block = \"10.0.0.0/16\""),
        "{}",
        text(&show.stdout)
    );
    let typo = infra(&["state", "show", "aws_vpc.mian"], Some(dir.path()));
    assert_eq!(typo.status.code(), Some(1));
    assert!(text(&typo.stderr).contains("did you mean `aws_vpc.main`?"));

    let moved = infra(
        &["state", "mv", "aws_vpc.main", "aws_vpc.primary"],
        Some(dir.path()),
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("prod.json")).unwrap())
            .unwrap();
    assert!(state["resources"]["aws_vpc.primary"].is_object());
    assert_eq!(
        state["resources"]["aws_subnet.a"]["dependencies"],
        serde_json::json!(["aws_vpc.primary"])
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("prod.json.backup")).unwrap(),
        STATE,
        "the previous state is kept"
    );
    assert!(
        !dir.path().join("prod.json.lock").exists(),
        "the lock is released"
    );

    let removed = infra(&["state", "rm", "aws_subnet.a"], Some(dir.path()));
    assert!(removed.status.success());
    assert_eq!(
        text(&infra(&["state", "list"], Some(dir.path())).stdout),
        "aws_vpc.primary\n"
    );
}

#[test]
fn a_held_lock_stops_state_edits_until_force_unlocked() {
    let dir = configuration_with_state();
    let holder = LockHolder::new(dir.path(), "prod.json.lock", "feedc0de");
    let pid = holder.pid();
    let host = hostname();
    let refused = infra(&["state", "rm", "aws_subnet.a"], Some(dir.path()));
    let waited = infra(
        &["state", "rm", "-lock-timeout=1s", "aws_subnet.a"],
        Some(dir.path()),
    );
    drop(holder);
    // Its own exit code: a scheduled job can retry instead of alerting.
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    assert_eq!(waited.status.code(), Some(3), "{}", text(&waited.stderr));
    assert!(
        text(&waited.stderr).contains("Waiting for the state lock"),
        "{}",
        text(&waited.stderr)
    );
    let message = text(&refused.stderr);
    assert!(
        message.contains(&format!("locked by ci (pid {pid} on {host})")),
        "{message}"
    );
    assert!(message.contains("infra force-unlock feedc0de"), "{message}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("prod.json")).unwrap(),
        STATE,
        "nothing changed"
    );

    let wrong = infra(&["force-unlock", "nope"], Some(dir.path()));
    assert_eq!(wrong.status.code(), Some(1));
    let unlocked = infra(&["force-unlock", "feedc0de"], Some(dir.path()));
    assert!(unlocked.status.success(), "{}", text(&unlocked.stderr));
    assert!(
        infra(&["state", "rm", "aws_subnet.a"], Some(dir.path()))
            .status
            .success()
    );
}

#[test]
fn outputs_come_from_the_state_with_secrets_redacted() {
    let dir = configuration_with_state();
    let all = infra(&["output"], Some(dir.path()));
    assert_eq!(
        text(&all.stdout),
        "db_password = (sensitive)\nvpc_id      = \"vpc-1\"\n"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&infra(&["output", "--json"], Some(dir.path())).stdout).unwrap();
    assert_eq!(json["db_password"]["value"], "(sensitive)");
    assert_eq!(json["vpc_id"]["value"], "vpc-1");
    assert_eq!(
        text(&infra(&["output", "vpc_id"], Some(dir.path())).stdout),
        "vpc-1\n"
    );
    assert_eq!(
        text(
            &infra(
                &["output", "db_password", "--show-sensitive"],
                Some(dir.path())
            )
            .stdout
        ),
        "hunter2\n"
    );
    let missing = infra(&["output", "vpcid"], Some(dir.path()));
    assert!(text(&missing.stderr).contains("did you mean `vpc_id`?"));
}

#[test]
fn a_corrupt_state_is_refused_by_every_state_command() {
    let dir = configuration_with_state();
    write(dir.path(), "prod.json", "{ not json");
    for args in [
        &["state", "list"][..],
        &["state", "rm", "aws_vpc.main"],
        &["output"],
    ] {
        let output = infra(args, Some(dir.path()));
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            text(&output.stderr).contains("is corrupt"),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("prod.json")).unwrap(),
        "{ not json"
    );
}

#[test]
fn validate_checks_resources_of_built_in_providers() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "main.infra",
        "resource random_idd a {\n  byte_length = 4\n}\n\nresource random_id b {}\n",
    );
    let output = infra(&["validate"], Some(dir.path()));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("unknown resource type `random_idd`")
            && stderr.contains("did you mean `random_id`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing required argument `byte_length` for `random_id`"),
        "{stderr}"
    );

    write(
        dir.path(),
        "main.infra",
        "resource random_integer c {\n  min = 9\n  max = 1\n}\n",
    );
    let output = infra(&["validate"], Some(dir.path()));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("`min` (9) is greater than `max` (1)"),
        "{}",
        text(&output.stderr)
    );
    assert!(text(&output.stderr).contains("infra::provider_validation\n"));

    write(
        dir.path(),
        "main.infra",
        "resource random_password db {\n  length  = 24\n  special = false\n}\n\noutput pw {\n  value     = random_password.db.result\n  sensitive = true\n}\n",
    );
    let output = infra(&["validate", "--show"], Some(dir.path()));
    assert!(output.status.success(), "{}", text(&output.stderr));

    // --show prints what evaluation made, secrets (or their parts) hidden.
    write(
        dir.path(),
        "main.infra",
        "variable token {\n  default   = \"tok-123456\"\n  sensitive = true\n}\n\n\
         locals {\n  env = { user = \"app\", token = var.token }\n}\n\n\
         resource local_file f {\n  path    = \"f.txt\"\n  content = \"Bearer ${local.env.token}\"\n}\n",
    );
    let output = infra(&["validate", "--show"], Some(dir.path()));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let shown = text(&output.stdout);
    assert!(!shown.contains("tok-123456"), "{shown}");
    assert!(
        shown.contains(r#"local.env = { token = (sensitive value), user = "app" }"#),
        "{shown}"
    );
    assert!(shown.contains("content = (sensitive value)"), "{shown}");
}

const PLAN_CONFIG: &str = "resource random_id suffix {\n  byte_length = 4\n}\n\nresource local_file greeting {\n  path    = \"out/hello-${random_id.suffix.hex}.txt\"\n  content = \"hello\\n\"\n}\n";

/// The state an apply of PLAN_CONFIG would leave, and the file it wrote.
fn applied_plan_config(dir: &Path) {
    write(dir, "main.infra", PLAN_CONFIG);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    write(dir, "out/hello-a1b2c3d4.txt", "hello\n");
    let state = serde_json::json!({
        "format": "infra-state", "version": 1, "lineage": "l",
        "resources": {
            "random_id.suffix": { "type": "random_id", "provider": "random", "attributes": {
                "byte_length": 4, "hex": "a1b2c3d4", "b64_std": "obLD1A==", "b64_url": "obLD1A", "dec": "2712847316", "id": "obLD1A" } },
            "local_file.greeting": { "type": "local_file", "provider": "local", "attributes": {
                "path": "out/hello-a1b2c3d4.txt", "content": "hello\n", "file_permission": "0644",
                "id": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" },
                "dependencies": ["random_id.suffix"] }
        }
    });
    write(
        dir,
        "infra.state.json",
        &serde_json::to_string_pretty(&state).unwrap(),
    );
}

#[test]
fn plan_shows_creates_for_an_empty_state() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.infra", PLAN_CONFIG);
    let output = infra(&["plan"], Some(dir.path()));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let shown = text(&output.stdout);
    assert!(
        shown.contains("# random_id.suffix will be created"),
        "{shown}"
    );
    assert!(
        shown.contains("+ path            = (known after apply)"),
        "the path waits for the random hex:\n{shown}"
    );
    assert!(
        shown.ends_with("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy.\n"),
        "{shown}"
    );
    assert_eq!(
        infra(&["plan", "--detailed-exitcode"], Some(dir.path()))
            .status
            .code(),
        Some(2)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&infra(&["plan", "--json"], Some(dir.path())).stdout).unwrap();
    assert_eq!(json["summary"]["add"], 2);
    assert!(
        !dir.path().join("out").exists() && !dir.path().join("infra.state.json").exists(),
        "plan changes nothing"
    );
}

#[test]
fn plan_against_the_applied_state_is_clean_until_something_drifts() {
    let dir = tempfile::tempdir().unwrap();
    applied_plan_config(dir.path());
    let clean = infra(&["plan", "--detailed-exitcode"], Some(dir.path()));
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}{}",
        text(&clean.stdout),
        text(&clean.stderr)
    );
    assert_eq!(
        text(&clean.stdout),
        "No changes. The infrastructure matches the configuration.\n"
    );

    write(dir.path(), "out/hello-a1b2c3d4.txt", "edited by hand\n");
    let drift = infra(&["plan", "--detailed-exitcode"], Some(dir.path()));
    assert_eq!(drift.status.code(), Some(2));
    let shown = text(&drift.stdout);
    assert!(
        shown.contains("# local_file.greeting will be updated in place"),
        "{shown}"
    );
    assert!(
        shown.contains("- edited by hand") && shown.contains("+ hello"),
        "{shown}"
    );
    let unrefreshed = infra(
        &["plan", "--detailed-exitcode", "--refresh=false"],
        Some(dir.path()),
    );
    assert_eq!(
        unrefreshed.status.code(),
        Some(0),
        "without refresh the recorded state stands"
    );

    std::fs::remove_file(dir.path().join("out/hello-a1b2c3d4.txt")).unwrap();
    let gone = text(&infra(&["plan"], Some(dir.path())).stdout);
    assert!(
        gone.contains("# local_file.greeting will be created"),
        "a deleted file is re-created:\n{gone}"
    );
    assert!(gone.contains("Plan: 1 to add"), "{gone}");
}

#[test]
fn plan_refuses_resources_without_a_built_in_provider() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "resource cloud_network main {\n  cidr_block = \"10.0.0.0/16\"\n}\n",
    );
    let output = infra(&["plan"], Some(dir.path()));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("no provider `cloud` in this build for `cloud_network.main`")
    );
    assert!(text(&output.stderr).contains("infra::no_provider\n"));
}

#[test]
fn what_aws_deployments_cannot_do_yet_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        r#"resource aws_lb_listener http {
  load_balancer_arn = "arn:lb"
  port              = 80
  forward {
    target_group_arn = "arn:blue"
  }
}

deployment web {
  provider      = aws
  replicas      = 2
  load_balancer = aws_lb_listener.http
  template {
    ami           = "ami-12345678"
    instance_type = "t3.micro"
    subnet_ids    = ["subnet-1"]
  }
  strategy canary {
    steps = [
      { weight = 10, pause = "1m" },
      { weight = 50, sticky = "header:X-User", pause = "1m" },
    ]
    analysis {
      max_p99_latency = "500ms"
    }
  }
}
"#,
    );
    let output = infra(&["validate", "--no-color"], Some(dir.path()));
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    for (code, says, line) in [
        (
            "infra::unsupported_strategy",
            "a sticky canary step (`sticky`) is not built for deployments on aws yet",
            "main.infra:21",
        ),
        (
            "infra::unsupported_strategy",
            "a latency bound (`max_p99_latency`) is not built for deployments on aws yet",
            "main.infra:24",
        ),
        (
            "infra::listener_weights",
            "the deployment sets the weights of `aws_lb_listener.http`, which does not leave them to it",
            "main.infra:12",
        ),
    ] {
        let at = error
            .find(says)
            .unwrap_or_else(|| panic!("no `{says}` in:\n{error}"));
        let report = &error[at.saturating_sub(200)..(at + says.len() + 400).min(error.len())];
        assert!(report.contains(code), "{code} for `{says}`:\n{error}");
        assert!(error[at..].contains(line), "`{says}` at {line}:\n{error}");
    }
    assert!(
        error.contains("add `lifecycle { ignore_changes = [forward] }` to `aws_lb_listener.http`"),
        "{error}"
    );
    // No warning about a missing `health` block: on aws the target groups check.
    assert!(!error.contains("no_health_check"), "{error}");
}

#[test]
fn health_and_drain_of_an_aws_deployment_are_errors_at_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "deployment web {\n  provider = aws\n  replicas = 2\n  template {\n    ami           = \"ami-12345678\"\n    instance_type = \"t3.micro\"\n    subnet_ids    = [\"subnet-1\"]\n  }\n  health {\n    path = \"/up\"\n  }\n  drain = \"5s\"\n}\n",
    );
    let output = infra(&["validate"], Some(dir.path()));
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    for (says, at) in [
        ("not a `health`", "main.infra:9:3"),
        (
            "is how long requests drain, not `drain`",
            "main.infra:12:11",
        ),
    ] {
        let found = error
            .find(says)
            .unwrap_or_else(|| panic!("{says}:\n{error}"));
        assert!(error[found..].contains(at), "{says} at {at}:\n{error}");
    }
}

/// `-C DIR` is Terraform's `-chdir`: relative paths in the configuration
/// (`local_file.path`, `path.module`) and the state mean the same whether
/// infra runs from the parent with `-C` or from inside the directory — a
/// scheduled drift job started elsewhere must not report false drift.
#[test]
fn dash_c_switches_directory_so_paths_do_not_depend_on_where_infra_runs() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("stack");
    std::fs::create_dir(&config).unwrap();
    write(
        &config,
        "main.infra",
        r#"
backend local {
  encryption = "none"
}

resource local_file plain {
  path    = "out/plain.txt"
  content = "relative to the configuration"
}

resource local_file moduled {
  path    = "${path.module}/out/moduled.txt"
  content = "path.module is the configuration's directory"
}
"#,
    );
    let applied = infra(
        &["-C", "stack", "apply", "--auto-approve", "-input=false"],
        Some(root.path()),
    );
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert!(config.join("out/plain.txt").exists());
    assert!(config.join("out/moduled.txt").exists());
    assert!(
        !root.path().join("out").exists(),
        "nothing lands in the cwd"
    );

    // From inside the directory, and through `-chdir=` from the parent.
    for (cwd, args) in [
        (config.as_path(), &["drift"][..]),
        (root.path(), &["-chdir=stack", "drift"]),
    ] {
        let drift = infra(args, Some(cwd));
        assert_eq!(
            drift.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&drift.stdout)
        );
    }
    let plan = infra(&["plan", "--detailed-exitcode"], Some(&config));
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
    let state = std::fs::read_to_string(config.join("infra.state.json"))
        .expect("the state is in the configuration's directory");
    assert!(
        !state.contains("stack/"),
        "no directory name in the state:\n{state}"
    );

    let missing = infra(&["-C", "nowhere", "plan"], Some(root.path()));
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("`nowhere` is not a directory"),
        "{}",
        text(&missing.stderr)
    );
}

/// Terraform's CI options mean what they mean there: `-input=false` never
/// asks (an apply that would ask is an error saying how to answer),
/// `-lock=false` takes no lock, `-lock-timeout=5m` waits; a typo in an
/// option is exit 1, not the 2 of "drift".
#[test]
fn terraform_ci_options_are_accepted_and_usage_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  encryption = \"none\"\n}\n\nresource local_file f {\n  path    = \"f.txt\"\n  content = \"x\"\n}\n",
    );
    let asked = infra(&["apply", "-input=false"], Some(dir.path()));
    assert_eq!(asked.status.code(), Some(1));
    assert!(
        text(&asked.stderr).contains("-input=false forbids asking"),
        "{}",
        text(&asked.stderr)
    );
    assert!(!dir.path().join("f.txt").exists(), "nothing applied");

    let plan = infra(
        &[
            "plan",
            "-input=false",
            "-lock=false",
            "-lock-timeout=5m",
            "-detailed-exitcode",
        ],
        Some(dir.path()),
    );
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stderr));
    // A lock held by a live process: apply waits for it (and gives up
    // with 3), unless told not to lock.
    let holder = LockHolder::new(dir.path(), "infra.state.json.lock", "c1c1c1");
    let locked = infra(
        &["apply", "-auto-approve", "-lock-timeout=1s"],
        Some(dir.path()),
    );
    let unlocked = infra(
        &["apply", "-auto-approve", "-input=false", "-lock=false"],
        Some(dir.path()),
    );
    drop(holder);
    assert_eq!(locked.status.code(), Some(3), "{}", text(&locked.stderr));
    assert!(unlocked.status.success(), "{}", text(&unlocked.stderr));
    assert!(dir.path().join("f.txt").exists());

    for typo in [
        &["drift", "--jsn"][..],
        &["plan", "-lock=maybe"],
        &["plan", "-input"],
    ] {
        let refused = infra(typo, Some(dir.path()));
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{typo:?}: {}",
            text(&refused.stderr)
        );
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A state lock file held by a live process of this host (a `sleep`, killed
/// when this is dropped), as another run's would be.
struct LockHolder(std::process::Child);

impl LockHolder {
    fn new(dir: &Path, lock_file: &str, id: &str) -> LockHolder {
        let holder = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = holder.id();
        let lock = serde_json::json!({
            "id": id, "who": "ci", "host": hostname(), "pid": pid,
            "process_start": infra::state::process_start(pid),
            "when": "2026-11-26T10:00:00Z", "operation": "apply"
        });
        write(dir, lock_file, &lock.to_string());
        LockHolder(holder)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pipeline plans in one job, shows the saved plan for review in
/// another (text and JSON), and applies exactly it in a third; `show`
/// without a file shows the state, secrets hidden.
#[test]
fn show_prints_a_saved_plan_as_plan_did_and_the_state() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  encryption = \"none\"\n}\n\nresource random_password pw {\n  length = 12\n}\n\nresource local_file f {\n  path    = \"f.txt\"\n  content = \"x\"\n}\n",
    );
    let planned = infra(&["plan", "-out", "review.plan"], Some(dir.path()));
    assert!(planned.status.success(), "{}", text(&planned.stderr));
    let plan_text = text(&planned.stdout);
    let shown = infra(&["show", "review.plan"], Some(dir.path()));
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    let plan_part = plan_text.split("\nSaved the plan").next().unwrap();
    assert!(shown.starts_with(plan_part), "{shown}\n---\n{plan_text}");
    assert!(shown.contains("infra apply review.plan"), "{shown}");

    let plan_json: serde_json::Value =
        serde_json::from_slice(&infra(&["plan", "--json"], Some(dir.path())).stdout).unwrap();
    let shown_json: serde_json::Value =
        serde_json::from_slice(&infra(&["show", "--json", "review.plan"], Some(dir.path())).stdout)
            .unwrap();
    assert_eq!(shown_json["format"], "infra-plan");
    assert_eq!(shown_json, plan_json, "show --json is plan --json");

    assert!(
        infra(&["apply", "review.plan"], Some(dir.path()))
            .status
            .success()
    );
    let state = infra(&["show"], Some(dir.path()));
    let state = text(&state.stdout);
    assert!(
        state.contains("# local_file.f (local_file, provider local)"),
        "{state}"
    );
    assert!(
        state.contains("result") && state.contains("(sensitive"),
        "{state}"
    );
    let secret = std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap();
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    let password = secret["resources"]["random_password.pw"]["attributes"]["result"]
        .as_str()
        .expect("the password in the unsealed state")
        .to_string();
    assert!(!state.contains(&password), "{state}");

    let nothing = infra(&["show", "--json"], Some(dir.path()));
    assert_eq!(nothing.status.code(), Some(1));
    assert!(text(&nothing.stderr).contains("infra state pull"));
}

#[test]
fn output_raw_prints_the_bare_value_and_refuses_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  encryption = \"none\"\n}\n\nresource random_password pw {\n  length = 12\n}\n\noutput url {\n  value = \"http://127.0.0.1:8080/\"\n}\n\noutput port {\n  value = 8080\n}\n\noutput list {\n  value = [1, 2]\n}\n\noutput secret {\n  value     = random_password.pw.result\n  sensitive = true\n}\n",
    );
    assert!(
        infra(&["apply", "-auto-approve"], Some(dir.path()))
            .status
            .success()
    );
    let url = infra(&["output", "-raw", "url"], Some(dir.path()));
    assert!(url.status.success());
    assert_eq!(
        text(&url.stdout),
        "http://127.0.0.1:8080/",
        "no quotes, no newline"
    );
    assert_eq!(
        text(&infra(&["output", "-raw", "port"], Some(dir.path())).stdout),
        "8080"
    );
    let list = infra(&["output", "-raw", "list"], Some(dir.path()));
    assert_eq!(list.status.code(), Some(1));
    assert!(text(&list.stderr).contains("infra output -json list"));
    let hidden = infra(&["output", "-raw", "secret"], Some(dir.path()));
    assert_eq!(hidden.status.code(), Some(1));
    assert!(text(&hidden.stdout).is_empty());
    let shown = infra(
        &["output", "-raw", "--show-sensitive", "secret"],
        Some(dir.path()),
    );
    assert!(shown.status.success());
    assert_eq!(text(&shown.stdout).len(), 12);
}

#[test]
fn version_json_names_the_formats_this_infra_reads_and_writes() {
    let output = infra(&["version", "--json"], None);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["infra_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        report["format_versions"]["state"],
        infra::state::FORMAT_VERSION
    );
    assert_eq!(
        report["format_versions"]["plan"],
        infra::plan::PLAN_FORMAT_VERSION
    );
    let providers = report["providers"].as_array().unwrap();
    assert!(providers.iter().any(|p| p == "local") && providers.iter().any(|p| p == "random"));
}

/// Outputs are part of the plan: a changed output is shown, counts as a
/// change for `--detailed-exitcode`, is recorded by apply, and then the
/// plan is clean; a removed one is a delete.
#[test]
fn plans_show_changes_to_outputs_and_apply_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = |port: u32, extra: bool| {
        let extra = if extra {
            "output old {\n  value = \"x\"\n}\n"
        } else {
            ""
        };
        format!(
            "backend local {{\n  encryption = \"none\"\n}}\n\nresource random_id r {{\n  byte_length = 2\n}}\n\noutput hex {{\n  value = random_id.r.hex\n}}\n\noutput port {{\n  value = {port}\n}}\n{extra}"
        )
    };
    write(dir.path(), "main.infra", &config(8080, true));
    let first = text(&infra(&["plan"], Some(dir.path())).stdout);
    assert!(
        first.contains("Changes to Outputs:\n  + hex  = (known after apply)\n  + old  = \"x\"\n  + port = 8080\n"),
        "{first}"
    );
    assert!(
        infra(&["apply", "-auto-approve"], Some(dir.path()))
            .status
            .success()
    );

    write(dir.path(), "main.infra", &config(8081, false));
    let changed = infra(&["plan", "-detailed-exitcode"], Some(dir.path()));
    assert_eq!(changed.status.code(), Some(2));
    let shown = text(&changed.stdout);
    assert!(
        shown.contains("Changes to Outputs:\n  - old  = \"x\" -> null\n  ~ port = 8080 -> 8081\n"),
        "{shown}"
    );
    assert!(
        shown.contains("0 to destroy, 2 outputs to change."),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&infra(&["plan", "--json"], Some(dir.path())).stdout).unwrap();
    assert_eq!(json["output_changes"][1]["name"], "port");
    assert_eq!(json["output_changes"][1]["before"], 8080);
    assert_eq!(json["output_changes"][1]["after"], 8081);

    let applied = infra(&["apply", "-auto-approve"], Some(dir.path()));
    assert!(applied.status.success());
    // As Terraform, apply ends with the outputs the state now records.
    assert!(
        text(&applied.stdout).contains("\nOutputs:\n\nhex  = \""),
        "{}",
        text(&applied.stdout)
    );
    assert!(
        text(&applied.stdout).ends_with("port = 8081\n"),
        "{}",
        text(&applied.stdout)
    );
    let clean = infra(&["plan", "-detailed-exitcode"], Some(dir.path()));
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stdout));
    assert_eq!(
        text(&infra(&["output", "-raw", "port"], Some(dir.path())).stdout),
        "8081"
    );
}

/// Completions and the manual page come from the parser's own definitions:
/// every command is in them, and the bash script is valid bash.
#[test]
fn completions_and_the_man_page_cover_every_command() {
    let bash = infra(&["completions", "bash"], None);
    assert!(bash.status.success());
    let script = text(&bash.stdout);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "infra.bash", &script);
    let checked = Command::new("bash")
        .args(["-n", "infra.bash"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let man = text(&infra(&["man"], None).stdout);
    assert!(
        man.starts_with(".ie") && man.contains(".TH infra 1"),
        "{man}"
    );
    for command in [
        "plan", "apply", "drift", "show", "state", "output", "version",
    ] {
        assert!(
            script.contains(&format!("infra__subcmd__{command}")),
            "bash: {command}"
        );
        assert!(
            man.contains(&format!("infra\\-{command}")) || man.contains(command),
            "man: {command}"
        );
    }
    for shell in ["zsh", "fish"] {
        let output = infra(&["completions", shell], None);
        assert!(
            output.status.success() && !output.stdout.is_empty(),
            "{shell}"
        );
    }
    assert_eq!(infra(&["completions", "tcsh"], None).status.code(), Some(1));
}

/// `-refresh-only` accepts drift into the state on purpose: the plan shows
/// it (exit 2 with `-detailed-exitcode`), the apply asks, then records it
/// and changes no object; afterwards nothing has drifted.
#[test]
fn refresh_only_records_drift_without_touching_objects() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "main.infra",
        "backend local {\n  encryption = \"none\"\n}\n\nresource local_file a {\n  path    = \"a.txt\"\n  content = \"hello\\n\"\n}\n\nresource local_file b {\n  path    = \"b.txt\"\n  content = \"bye\"\n}\n",
    );
    assert!(
        infra(&["apply", "-auto-approve"], Some(dir.path()))
            .status
            .success()
    );
    write(dir.path(), "a.txt", "edited\n");
    std::fs::remove_file(dir.path().join("b.txt")).unwrap();
    let state_before = std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap();

    let planned = infra(
        &["plan", "-refresh-only", "-detailed-exitcode"],
        Some(dir.path()),
    );
    assert_eq!(planned.status.code(), Some(2));
    let shown = text(&planned.stdout);
    assert!(
        shown.contains("~ content = \"hello\\n\" -> \"edited\\n\""),
        "{shown}"
    );
    assert!(
        shown.contains("# local_file.b was deleted outside infra"),
        "{shown}"
    );
    let refused = infra(
        &["apply", "-refresh-only", "-input=false"],
        Some(dir.path()),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
        state_before,
        "not confirmed: the state is untouched"
    );

    let applied = infra(
        &["apply", "-refresh-only", "-auto-approve"],
        Some(dir.path()),
    );
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "edited\n"
    );
    assert!(!dir.path().join("b.txt").exists(), "no object was changed");
    assert_eq!(infra(&["drift"], Some(dir.path())).status.code(), Some(0));
    let listed = text(&infra(&["state", "list"], Some(dir.path())).stdout);
    assert_eq!(listed, "local_file.a\n");
    let conflicting = infra(&["plan", "-refresh-only", "-out", "p"], Some(dir.path()));
    assert_eq!(conflicting.status.code(), Some(1));
}

/// `timestamp()` and `uuid()` are unknown while planning and known during
/// apply: the file gets real values, and the next plan shows a change
/// again, as Terraform's does.
#[test]
fn values_of_each_run_are_known_at_apply_and_change_every_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "main.infra",
        "resource local_file stamp {\n  path    = \"stamp.txt\"\n  content = \"${timestamp()} ${uuid()}\"\n}\n",
    );
    let plan = infra(&["plan", "-no-color"], Some(dir.path()));
    assert!(
        text(&plan.stdout).contains("+ content         = (known after apply)"),
        "{}",
        text(&plan.stdout)
    );
    let apply = infra(&["apply", "--auto-approve"], Some(dir.path()));
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    let written = std::fs::read_to_string(dir.path().join("stamp.txt")).expect("written");
    let (stamp, uuid) = written.split_once(' ').expect("two values");
    assert!(
        stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "an RFC 3339 UTC timestamp: {stamp}"
    );
    assert!(
        uuid.len() == 36 && uuid.as_bytes()[14] == b'4',
        "a version 4 UUID: {uuid}"
    );
    let again = infra(
        &["plan", "-detailed-exitcode", "-no-color"],
        Some(dir.path()),
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stdout));
    assert!(text(&again.stdout).contains("-> (known after apply)"));
}
