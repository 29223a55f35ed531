//! The engine with the mock provider, in process: the mock's store shows
//! how many real objects exist, so these tests prove no duplicates after a
//! retried apply and no orphans after a destroy.

use crate::support;

use std::path::Path;
use std::sync::Arc;

use infra::apply::{Outcome, StepKind};
use infra::check::CheckOptions;
use infra::diagnostics::Code;
use infra::providers::ProviderRegistry;
use infra::state::State;
use infra_provider_mock::MockProvider;
use infra_provider_sdk::Provider;
use support::{engine, runtime};

fn setup(dir: &Path, config: &str) -> (CheckOptions, Arc<MockProvider>, ProviderRegistry) {
    std::fs::write(dir.join("main.infra"), config).unwrap();
    let mock = Arc::new(MockProvider::new());
    let providers = ProviderRegistry::new(vec![mock.clone() as Arc<dyn Provider>]);
    let options = engine::options(dir, &providers);
    (options, mock, providers)
}

fn run(
    options: &CheckOptions,
    state: State,
    providers: &ProviderRegistry,
    destroying: bool,
) -> (State, infra::apply::ApplyReport) {
    runtime()
        .block_on(engine::plan_and_apply(
            options, state, providers, 10, destroying,
        ))
        .unwrap_or_else(|failure| panic!("plan failed: {:?}", failure.diagnostics.into_vec()))
}

/// Every object in the state exists in the store, and nothing else does.
fn assert_state_matches_store(state: &State, mock: &MockProvider) {
    let mut recorded: Vec<String> = state
        .resources
        .values()
        .map(|r| r.attributes["id"].as_str().unwrap().to_string())
        .collect();
    recorded.sort();
    let existing: Vec<String> = mock.objects().keys().cloned().collect();
    assert_eq!(recorded, existing, "state and real objects differ");
}

/// A network, 3 subnets in it, 2 servers in each subnet: 10 objects,
/// three levels deep, every reference to an id known only after apply.
const TREE: &str = r#"
provider mock {
  latency_ms = 5
}

resource mock_resource network {
  name = "net"
}

resource mock_resource subnet {
  count = 3
  name  = "subnet-${count.index}-in-${mock_resource.network.id}"
}

resource mock_resource server {
  count = 6
  name  = "server-${count.index}"
  value = mock_resource.subnet[count.index % 3].id
}

output first_server {
  value = mock_resource.server[0].id
}
"#;

#[test]
fn apply_creates_each_object_once_resolves_unknowns_and_destroy_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let (options, mock, providers) = setup(dir.path(), TREE);
    let (state, report) = run(&options, State::new("t"), &providers, false);
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(state.resources.len(), 10);
    assert_eq!(mock.counts().creates, 10);
    assert_state_matches_store(&state, &mock);
    // Values unknown at plan time were resolved from the applied objects.
    let network_id = state.resources["mock_resource.network"].attributes["id"].clone();
    let subnet = &state.resources["mock_resource.subnet[1]"].attributes;
    assert_eq!(
        subnet["name"].as_str().unwrap(),
        format!("subnet-1-in-{}", network_id.as_str().unwrap())
    );
    assert_eq!(
        state.resources["mock_resource.server[4]"].attributes["value"],
        state.resources["mock_resource.subnet[1]"].attributes["id"]
    );
    assert_eq!(
        state.outputs["first_server"].value,
        state.resources["mock_resource.server[0]"].attributes["id"]
    );
    assert_eq!(
        state.resources["mock_resource.server[4]"].dependencies,
        vec!["mock_resource.subnet[1]"],
        "an index computed from count.index names the one instance depended on"
    );

    // Applying again changes nothing.
    let (again, report) = run(&options, state.clone(), &providers, false);
    assert!(report.results.is_empty(), "{report:?}");
    assert_eq!(again, state);
    assert_eq!(mock.counts().creates, 10);

    let (destroyed, report) = run(&options, state, &providers, true);
    assert!(report.succeeded());
    assert!(destroyed.resources.is_empty());
    assert!(destroyed.outputs.is_empty());
    assert!(mock.objects().is_empty(), "no orphans");
    assert_eq!(mock.counts().deletes, 10);
}

#[test]
fn a_failed_create_skips_its_dependents_and_the_retry_creates_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let failing = TREE.replace(
        "  name  = \"subnet-${count.index}-in-${mock_resource.network.id}\"",
        "  name  = \"subnet-${count.index}-in-${mock_resource.network.id}\"\n  fail_on = count.index == 1 ? \"create\" : null",
    );
    let (options, mock, providers) = setup(dir.path(), &failing);
    let (state, report) = run(&options, State::new("t"), &providers, false);
    assert!(!report.succeeded());
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(s, _)| s.address.as_str())
        .collect();
    assert_eq!(failed, vec!["mock_resource.subnet[1]"]);
    // Each server depends on the one subnet its index names: the two on
    // subnet[1] are skipped; the network, two subnets and four servers
    // exist.
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Skipped { .. }))
        .map(|(s, _)| s.address.as_str())
        .collect();
    assert_eq!(
        skipped,
        vec!["mock_resource.server[1]", "mock_resource.server[4]"]
    );
    assert_eq!(state.resources.len(), 7);
    assert_state_matches_store(&state, &mock);
    assert!(
        matches!(&report.results.iter().find(|(s, _)| s.address == "mock_resource.subnet[1]").unwrap().1,
            Outcome::Failed(failure) if failure.code.as_deref() == Some("MockFailure")
                && failure.operation == infra::providers::Operation::Create),
        "the provider's error code and the operation are kept"
    );

    // Fixed: the retry creates the 3 missing objects and nothing twice.
    std::fs::write(dir.path().join("main.infra"), TREE).unwrap();
    let (state, report) = run(&options, state, &providers, false);
    assert!(report.succeeded(), "{report:?}");
    let created = report
        .results
        .iter()
        .filter(|(s, _)| s.kind == StepKind::Create)
        .count();
    assert_eq!(created, 3);
    assert_eq!(
        mock.counts().creates,
        7 + 1 + 3,
        "7 done, 1 failed, 3 on retry"
    );
    assert_eq!(state.resources.len(), 10);
    assert_state_matches_store(&state, &mock);
}

#[test]
fn replacement_and_drift_change_only_what_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let (options, mock, providers) = setup(dir.path(), TREE);
    let (state, _) = run(&options, State::new("t"), &providers, false);
    let old_network = state.resources["mock_resource.network"].attributes["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A server deleted outside infra is re-created, nothing else.
    let server = state.resources["mock_resource.server[2]"].attributes["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(mock.remove_outside_infra(&server));
    let (state, report) = run(&options, state, &providers, false);
    let steps: Vec<String> = report
        .results
        .iter()
        .map(|(s, _)| format!("{:?} {}", s.kind, s.address))
        .collect();
    assert_eq!(steps, vec!["Create mock_resource.server[2]"]);
    assert_state_matches_store(&state, &mock);

    // `generation` forces a new network; the subnets, whose names embed
    // its id, update in place onto the new one.
    std::fs::write(
        dir.path().join("main.infra"),
        TREE.replace("  name = \"net\"", "  name = \"net\"\n  generation = \"2\""),
    )
    .unwrap();
    let (state, report) = run(&options, state, &providers, false);
    assert!(report.succeeded(), "{report:?}");
    let new_network = state.resources["mock_resource.network"].attributes["id"]
        .as_str()
        .unwrap();
    assert_ne!(new_network, old_network);
    assert!(
        state.resources["mock_resource.subnet[0]"].attributes["name"]
            .as_str()
            .unwrap()
            .ends_with(new_network)
    );
    assert_eq!(mock.counts().updates, 3, "the three subnets");
    assert_state_matches_store(&state, &mock);
}

#[test]
fn values_flow_into_and_out_of_modules_during_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("net")).unwrap();
    std::fs::write(
        dir.path().join("net/main.infra"),
        r#"
variable network_id {
  type = string
}

resource mock_resource subnet {
  name = "subnet-in-${var.network_id}"
}

output subnet_id {
  value = mock_resource.subnet.id
}
"#,
    )
    .unwrap();
    let (options, mock, providers) = setup(
        dir.path(),
        r#"
resource mock_resource network {
  name = "net"
}

module net {
  source     = "./net"
  network_id = mock_resource.network.id
}

resource mock_resource server {
  name  = "server"
  value = module.net.subnet_id
}
"#,
    );
    let (state, report) = run(&options, State::new("t"), &providers, false);
    assert!(report.succeeded(), "{report:?}");
    let id = |address: &str| state.resources[address].attributes["id"].clone();
    assert_eq!(
        state.resources["module.net.mock_resource.subnet"].attributes["name"],
        format!(
            "subnet-in-{}",
            id("mock_resource.network").as_str().unwrap()
        )
    );
    assert_eq!(
        state.resources["mock_resource.server"].attributes["value"],
        id("module.net.mock_resource.subnet")
    );
    assert_state_matches_store(&state, &mock);
    let (_, again) = run(&options, state, &providers, false);
    assert!(again.results.is_empty(), "{again:?}");
}

#[test]
fn the_old_object_of_a_create_before_destroy_replacement_is_tracked_until_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let blue = r#"
resource mock_resource server {
  name       = "server"
  generation = "blue"
  fail_on    = "delete"

  lifecycle {
    create_before_destroy = true
  }
}
"#;
    let (options, mock, providers) = setup(dir.path(), blue);
    let (state, _) = run(&options, State::new("t"), &providers, false);
    let old_id = state.resources["mock_resource.server"].attributes["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The new object is created; destroying the old one fails.
    std::fs::write(
        dir.path().join("main.infra"),
        blue.replace("\"blue\"", "\"green\"")
            .replace("  fail_on    = \"delete\"\n", ""),
    )
    .unwrap();
    let (state, report) = run(&options, state, &providers, false);
    assert!(!report.succeeded());
    let deposed: Vec<String> = state
        .resources
        .keys()
        .filter(|a| a.starts_with("mock_resource.server (deposed "))
        .cloned()
        .collect();
    assert_eq!(deposed.len(), 1, "{:?}", state.resources.keys());
    assert_eq!(
        state.resources[&deposed[0]].attributes["id"]
            .as_str()
            .unwrap(),
        old_id
    );
    assert_eq!(mock.objects().len(), 2, "old and new both exist");
    assert_state_matches_store(&state, &mock);

    // Once the old object can go, the next apply destroys it, nothing else.
    assert!(mock.edit_outside_infra(&old_id, "fail_on", None));
    let (state, report) = run(&options, state, &providers, false);
    assert!(report.succeeded(), "{report:?}");
    let steps: Vec<String> = report
        .results
        .iter()
        .map(|(s, _)| format!("{:?} {}", s.kind, s.address))
        .collect();
    assert_eq!(steps, vec![format!("Destroy {}", deposed[0])]);
    assert_eq!(state.resources.len(), 1);
    assert_state_matches_store(&state, &mock);
}

#[test]
fn refresh_reads_objects_in_batches_the_provider_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (options, mock, providers) = setup(
        dir.path(),
        "resource mock_resource many {\n  count = 120\n  name  = \"n-${count.index}\"\n}\n",
    );
    let (state, _) = run(&options, State::new("t"), &providers, false);
    let before = mock.counts();
    let (_, report) = run(&options, state, &providers, false);
    assert!(report.results.is_empty());
    let after = mock.counts();
    assert_eq!(after.reads - before.reads, 120, "every object is refreshed");
    assert_eq!(
        after.read_calls - before.read_calls,
        3,
        "in calls of {} objects",
        MockProvider::READ_BATCH
    );
}

#[test]
fn a_refresh_that_fails_stops_the_plan_with_the_providers_code() {
    let flaky = "resource mock_resource flaky {\n  name    = \"flaky\"\n  fail_on = \"read\"\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let (options, _mock, providers) = setup(dir.path(), flaky);
    let (state, report) = run(&options, State::new("t"), &providers, false);
    assert!(report.succeeded(), "{report:?}");
    let Err(failure) = runtime().block_on(engine::plan(&options, &state, &providers, 10, false))
    else {
        panic!("the refresh fails, so does the plan");
    };
    let refresh: Vec<_> = failure
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::Refresh)
        .collect();
    assert_eq!(refresh.len(), 1, "{:?}", failure.diagnostics);
    assert_eq!(
        refresh[0].message,
        "refreshing `mock_resource.flaky` failed: MockFailure: injected failure on read"
    );
    assert_eq!(
        refresh[0].notes,
        ["the provider's error code is `MockFailure`"]
    );
}

/// Independent resources with more instances than one thread is worth
/// (1,100 here, then 600 that refer to them) are evaluated on several
/// threads: every instance still sees its own `count.index` and the
/// instance it refers to, and an error in one instance is reported once,
/// at its line.
#[test]
fn resources_evaluated_on_threads_see_their_own_values_and_report_each_error_once() {
    let many = r#"
variable prefix {
  default = "p"
}

resource mock_resource net {
  count = 400
  name  = "${var.prefix}-net-${count.index}"
}

resource mock_resource peer {
  count = 400
  name  = "${var.prefix}-peer-${count.index}"
}

resource mock_resource other {
  count = 300
  name  = "${var.prefix}-other-${count.index}"
  size  = count.index * 2
}

resource mock_resource server {
  count = 600
  name  = "server-${count.index}"
  value = mock_resource.net[count.index % 400].name
}
"#;
    let dir = tempfile::tempdir().unwrap();
    let (options, _mock, providers) = setup(dir.path(), many);
    let planned = runtime()
        .block_on(engine::plan(
            &options,
            &State::new("t"),
            &providers,
            10,
            false,
        ))
        .unwrap_or_else(|failure| panic!("plan failed: {:?}", failure.diagnostics.into_vec()));
    assert_eq!(planned.plan.changes.len(), 1_700);
    for index in 0..600 {
        let server = &planned.instances[&format!("mock_resource.server[{index}]")];
        assert_eq!(
            server.arguments["value"].to_string(),
            format!("\"p-net-{}\"", index % 400),
            "server[{index}]"
        );
        assert_eq!(
            server.dependencies,
            vec![format!("mock_resource.net[{}]", index % 400)],
            "server[{index}] depends on the one network it names"
        );
    }
    for index in 0..300 {
        let other = &planned.instances[&format!("mock_resource.other[{index}]")];
        assert_eq!(other.arguments["size"].to_string(), (index * 2).to_string());
    }

    // One instance of 300 fails: one error, at the argument's line.
    std::fs::write(
        dir.path().join("main.infra"),
        many.replace(
            "size  = count.index * 2",
            "size  = [1, 2][count.index == 250 ? 5 : 0]",
        ),
    )
    .unwrap();
    let Err(failure) = runtime().block_on(engine::plan(
        &options,
        &State::new("t"),
        &providers,
        10,
        false,
    )) else {
        panic!("an index out of range must fail the plan");
    };
    let errors: Vec<_> = failure
        .diagnostics
        .into_vec()
        .into_iter()
        .filter(|d| d.severity == infra::diagnostics::Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let line = failure.sources.file_line(errors[0].labels[0].span);
    assert!(line.ends_with("main.infra:19"), "{line}");
}
