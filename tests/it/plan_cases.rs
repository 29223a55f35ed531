//! Golden tests of the whole engine with the mock provider, one directory
//! per case under `tests/plan_cases/`:
//!
//! - `before.infra` (optional): applied first, from an empty state, to make
//!   the prior state (and the real objects);
//! - `deleted_outside` (optional): addresses whose objects are deleted
//!   behind infra's back before planning (drift);
//! - `main.infra`: the configuration that is planned and applied;
//! - `modules/` (optional): the modules both call.
//!
//! Expected: `plan.txt` (the plan as `infra plan` prints it, or the
//! diagnostics that stop it), `plan.json` (`infra plan --json`) and
//! `state.json` (the state after applying it). After the apply, planning
//! again must give no changes. Parallelism 1 keeps the mock's ids stable.
//! `UPDATE_EXPECT=1 cargo test --test it plan_cases` rewrites the expected
//! files.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use infra::apply::apply_in_memory;
use infra::diagnostics::{ReportStyle, render_all};
use infra::events::Events;
use infra::plan::{RenderOptions, render, to_json};
use infra::providers::ProviderRegistry;
use infra::state::State;
use infra_provider_mock::MockProvider;
use infra_provider_sdk::Provider;
use support::{engine, runtime};

/// Plans and applies `config` against `state`; returns the rendered plan,
/// its JSON (none when it fails) and the state after.
fn plan_and_apply(
    work: &Path,
    config: &str,
    state: State,
    providers: &ProviderRegistry,
) -> (String, Option<String>, State) {
    std::fs::write(work.join("main.infra"), config).unwrap();
    let options = engine::options(work, providers);
    let runtime = runtime();
    match runtime.block_on(engine::plan(&options, &state, providers, 1, false)) {
        Err(failure) => (
            render_all(&failure.diagnostics, &failure.sources, ReportStyle::Plain),
            None,
            state,
        ),
        Ok(planned) => {
            let text = render(&planned.plan, &options.schemas, RenderOptions::default());
            let json =
                serde_json::to_string_pretty(&to_json(&planned.plan, &options.schemas)).unwrap();
            let (after, report) =
                runtime.block_on(apply_in_memory(planned, providers, 1, Events::none()));
            assert!(report.succeeded(), "{report:?}");
            (text, Some(json), after)
        }
    }
}

fn run_case(case: &Path, problems: &mut Vec<String>) {
    let work = tempfile::tempdir().unwrap();
    if case.join("modules").is_dir() {
        support::copy_dir(&case.join("modules"), &work.path().join("modules"));
    }
    let mock = Arc::new(MockProvider::new());
    let providers = ProviderRegistry::new(vec![mock.clone() as Arc<dyn Provider>]);
    let mut state = State::new("golden");
    if let Ok(before) = std::fs::read_to_string(case.join("before.infra")) {
        let (_, json, after) = plan_and_apply(work.path(), &before, state, &providers);
        assert!(
            json.is_some(),
            "{}: before.infra must apply",
            case.display()
        );
        state = after;
    }
    if let Ok(deleted) = std::fs::read_to_string(case.join("deleted_outside")) {
        for address in deleted.lines().filter(|l| !l.trim().is_empty()) {
            let id = state.resources[address.trim()].attributes["id"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(mock.remove_outside_infra(&id));
        }
    }
    let config = std::fs::read_to_string(case.join("main.infra")).unwrap();
    let (text, json, after) = plan_and_apply(work.path(), &config, state, &providers);
    support::golden(&case.join("plan.txt"), &text);
    let Some(json) = json else {
        return;
    };
    support::golden(
        &case.join("plan.json"),
        &format!(
            "{json}
"
        ),
    );
    support::golden(&case.join("state.json"), &after.to_canonical_json());
    // Idempotence: the applied configuration plans no changes.
    let (again, _, _) = plan_and_apply(work.path(), &config, after, &providers);
    if again != "No changes. The infrastructure matches the configuration.\n" {
        problems.push(format!(
            "{}: planning again after the apply is not clean:\n{again}",
            case.display()
        ));
    }
}

#[test]
fn every_plan_case_matches_its_expected_plan_json_and_state() {
    let cases = support::directories_in("tests/plan_cases");
    assert!(cases.len() >= 10, "the cases are there");
    let mut problems = Vec::new();
    for case in &cases {
        run_case(case, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every example plans, through the same `Planner` the CLI runs, against an
/// empty state with the built-in providers (nothing is called: no state to
/// refresh, no data source), and its plan is pinned in
/// `tests/examples/<example>.plan.txt`. `aws-web` and `aws-canary` read
/// AMIs and zones while planning, so they are planned (and applied)
/// against moto in `aws.rs` and `aws_rollouts.rs` instead.
#[test]
fn every_example_plans() {
    let examples = support::example_configurations();
    let planned_against_moto = ["aws-web", "aws-canary"];
    let aws_tests = std::fs::read_to_string("tests/it/aws.rs").unwrap()
        + &std::fs::read_to_string("tests/it/aws_rollouts.rs").unwrap();
    let runtime = runtime();
    for example in &examples {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        if planned_against_moto.contains(&name.as_str()) {
            assert!(aws_tests.contains(&format!("examples/{name}/")), "{name}");
            continue;
        }
        let providers = ProviderRegistry::builtin();
        let options = engine::options(example, &providers);
        let planned = runtime
            .block_on(engine::plan(
                &options,
                &State::new("example"),
                &providers,
                10,
                false,
            ))
            .unwrap_or_else(|failure| {
                panic!(
                    "{name} does not plan:\n{}",
                    render_all(&failure.diagnostics, &failure.sources, ReportStyle::Plain)
                )
            });
        assert!(planned.plan.has_changes(), "{name}");
        let text = render(&planned.plan, &options.schemas, RenderOptions::default());
        support::golden(
            &PathBuf::from("tests/examples").join(format!("{name}.plan.txt")),
            &text,
        );
    }
}
