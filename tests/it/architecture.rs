//! The invariants ARCHITECTURE.md states about the code's structure,
//! checked on the sources and manifests: layers that must not know of each
//! other, serde only where the formats are, unsafe code only where it says
//! why, one planning pipeline, the mock provider out of release builds.

use std::path::{Path, PathBuf};

use crate::support;

fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    support::files_under(dir, ".rs")
}

/// The code of a file without its `#[cfg(test)]` module (tests may use
/// anything).
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

fn violations(dir: &str, forbidden: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(dir) {
        for (number, line) in without_tests(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) && !allowed.iter().any(|a| line.contains(a)) {
                    found.push(format!(
                        "{}:{}: {}",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn parsing_and_evaluation_know_nothing_of_providers_state_files_or_tokio() {
    let forbidden = [
        "tokio",
        "infra_provider",
        "crate::providers",
        "crate::state",
        "crate::plan",
        "crate::apply",
        "crate::events",
        "crate::cli",
    ];
    let allowed: [&str; 0] = [];
    for layer in ["src/syntax", "src/config", "src/eval"] {
        let found = violations(layer, &forbidden, &allowed);
        assert!(
            found.is_empty(),
            "{layer} reaches outside its layer:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn evaluation_knows_no_fleet_strategy_or_load_balancer_of_a_deployment() {
    // `deploy/` reads deployments; evaluation only evaluates their blocks.
    // (`"local"` is also the `local.NAME` namespace, so it is not listed.)
    let forbidden = [
        "\"aws\"",
        "_deployment\"",
        "\"listen\"",
        "\"strategy\"",
        "\"rolling\"",
    ];
    let found = violations("src/eval", &forbidden, &[]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn providers_know_no_rollout_strategy() {
    // The engine's `deploy/executor.rs` owns the strategies, deadlines,
    // analysis and rollback; a fleet supplies primitives only.
    let forbidden = [
        "canary",
        "blue_green",
        "max_surge",
        "max_unavailable",
        "failure_limit",
    ];
    // (An example of pool names in the load balancer's admin API.)
    let allowed = ["weights are an object of pool names"];
    for dir in ["providers/local/src", "providers/sdk/src"] {
        let found = violations(dir, &forbidden, &allowed);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}

#[test]
fn the_syntax_layer_knows_no_block_kinds_and_config_knows_no_values() {
    let kinds = [
        "\"resource\"",
        "\"data\"",
        "\"variable\"",
        "\"locals\"",
        "\"output\"",
        "\"module\"",
        "\"provider\"",
        "\"backend\"",
        "\"deployment\"",
    ];
    let found = violations("src/syntax", &kinds, &[]);
    assert!(
        found.is_empty(),
        "block kinds in the syntax layer:\n{}",
        found.join("\n")
    );
    let found = violations("src/config", &["crate::eval", "Value"], &[]);
    assert!(found.is_empty(), "values in config:\n{}", found.join("\n"));
}

#[test]
fn only_the_state_format_and_the_saved_plan_derive_serde() {
    let found: Vec<String> = sources("src")
        .into_iter()
        .filter(|(path, _)| {
            !path.starts_with("src/state") && path != Path::new("src/plan/saved.rs")
        })
        .filter(|(_, text)| text.contains("Serialize") || text.contains("Deserialize"))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        found.is_empty(),
        "serde derives outside the formats: {found:?}"
    );
}

#[test]
fn unsafe_code_is_denied_and_each_exception_says_why() {
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap();
    assert!(manifest.contains("unsafe_code = \"deny\""));
    let mut exceptions = 0;
    for dir in ["src", "providers", "tests", "benches", "demo-app"] {
        for (path, text) in sources(dir) {
            let lines: Vec<&str> = text.lines().collect();
            for (number, line) in lines.iter().enumerate() {
                if line.trim() == "#[allow(unsafe_code)]" {
                    exceptions += 1;
                    let before = &lines[number.saturating_sub(4)..number];
                    assert!(
                        before.iter().any(|l| l.contains("SAFETY:")),
                        "{}:{}: an unsafe exception without a `SAFETY:` comment",
                        path.display(),
                        number + 1
                    );
                }
            }
        }
    }
    // SIGPIPE in main, setsid between fork and exec, the benchmarks'
    // counting allocator.
    assert_eq!(
        exceptions, 3,
        "a new unsafe exception: list it here and say why"
    );
}

#[test]
fn plan_apply_and_destroy_plan_only_through_the_planner() {
    let pipeline = [
        "refresh(",
        "plan_loaded(",
        "refine_with_providers(",
        "read_data_sources(",
        "destroy_plan(",
        "restrict_to_targets(",
    ];
    for file in ["src/cli/plan.rs", "src/cli/apply.rs", "src/cli/planning.rs"] {
        let text = std::fs::read_to_string(file).unwrap();
        for step in pipeline {
            assert!(!text.contains(step), "{file} runs `{step}` itself");
        }
    }
    let tests_and_benches: Vec<(PathBuf, String)> = sources("tests")
        .into_iter()
        .chain(sources("benches"))
        .collect();
    // The second, shorter pipeline the tests once had is gone; the tests'
    // helpers call the `Planner`.
    for (path, text) in tests_and_benches {
        if path.ends_with("architecture.rs") {
            continue;
        }
        for gone in ["plan_headless", "apply_headless", "apply::plan_and_apply"] {
            assert!(!text.contains(gone), "{} uses `{gone}`", path.display());
        }
    }
    let support = std::fs::read_to_string("tests/it/support.rs").unwrap();
    assert!(support.contains("Planner::new("));
}

#[test]
fn the_mock_provider_and_hyper_stay_out_of_the_engine_and_the_release_binary() {
    let manifest: String = std::fs::read_to_string("Cargo.toml").unwrap();
    let dependencies = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    assert!(
        dependencies
            .lines()
            .any(|l| l.starts_with("infra-provider-mock") && l.contains("optional = true")),
        "{dependencies}"
    );
    assert!(
        !dependencies.lines().any(|l| l.starts_with("hyper")),
        "the engine does not depend on hyper (demo-app has its own crate)"
    );
    let features = manifest.split("\n[features]\n").nth(1).unwrap();
    let default = features.lines().find(|l| l.starts_with("default")).unwrap();
    assert!(!default.contains("mock"), "{default}");
    // The provider SDK depends on nothing of infra.
    let sdk = std::fs::read_to_string("providers/sdk/Cargo.toml").unwrap();
    let sdk_dependencies = sdk.split("\n[dependencies]\n").nth(1).unwrap();
    assert!(!sdk_dependencies.contains("infra"), "{sdk_dependencies}");
}
