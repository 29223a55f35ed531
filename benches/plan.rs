//! Benchmark: `plan` of generated configurations of 1,000 / 10,000 /
//! 100,000 mock resources with references — refresh of every object in the
//! state through the mock provider, evaluation, diff and the providers'
//! plan hooks — against an empty state (all create) and against the state
//! an apply would leave, with the objects existing (all no-op).
//! Run: `cargo bench --bench plan` (`INFRA_BENCH_SIZES=1000,10000` to
//! choose the sizes, `INFRA_BENCH_ONLY=applied` for the no-op case alone). Goal (issue 3): 10,000 resources in under 0.5 s and 200 MB,
//! growing linearly.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use infra::check::{CheckOptions, load};
use infra::plan::{Action, PlanOptions, Planner};
use infra::providers::ProviderRegistry;
use infra::state::{ResourceState, State};
use infra_provider_mock::MockProvider;
use infra_provider_sdk::{CreateRequest, ObjectIdentity, Provider, run_ready};
use serde_json::json;

#[path = "support/counting_allocator.rs"]
mod counting_allocator;

use counting_allocator::{allocations, peak_since, start_peak};

/// One network per 10 resources and 9 servers referring to its id (a count
/// of 9). Returns the state an apply would leave, creating its objects in
/// the mock provider.
fn generate(resources: usize, dir: &std::path::Path, mock: &MockProvider) -> State {
    let groups = resources / 10;
    let mut text = String::from("variable env {\n  default = \"bench\"\n}\n\n");
    let mut state = State::new("bench");
    let mut create = |address: String, config: serde_json::Value, dependencies: Vec<String>| {
        let request = CreateRequest {
            type_name: "mock_resource".into(),
            identity: ObjectIdentity::default(),
            config: serde_json::from_value(config).expect("attributes"),
            ..Default::default()
        };
        let created = run_ready(mock.create(request)).expect("create");
        let id = created.state["id"].as_str().expect("id").to_string();
        state.resources.insert(
            address,
            ResourceState {
                type_name: "mock_resource".into(),
                provider: "mock".into(),
                attributes: created.state,
                dependencies,
                sensitive: Vec::new(),
            },
        );
        id
    };
    for group in 0..groups {
        let _ = write!(
            text,
            "resource mock_resource n{group} {{\n  name = \"${{var.env}}-{group}\"\n}}\n\n\
             resource mock_resource s{group} {{\n  count = 9\n  name  = \"${{var.env}}-{group}-${{count.index}}\"\n  value = mock_resource.n{group}.id\n  size  = 2\n}}\n\n"
        );
        let network = create(
            format!("mock_resource.n{group}"),
            json!({ "name": format!("bench-{group}") }),
            Vec::new(),
        );
        for index in 0..9 {
            create(
                format!("mock_resource.s{group}[{index}]"),
                json!({ "name": format!("bench-{group}-{index}"), "value": network, "size": 2 }),
                vec![format!("mock_resource.n{group}")],
            );
        }
        if text.len() > 150_000 {
            std::fs::write(dir.join(format!("part{group:06}.infra")), &text).expect("write");
            text.clear();
        }
    }
    std::fs::write(dir.join("last.infra"), &text).expect("write");
    state
}

fn main() {
    let sizes: Vec<usize> = std::env::var("INFRA_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    // `INFRA_BENCH_ONLY=applied` (or `empty`) runs one of the two cases.
    let only = std::env::var("INFRA_BENCH_ONLY").ok();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{:>10} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "resources", "against", "best s", "median s", "heap MiB", "allocations"
    );
    for resources in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let mock = Arc::new(MockProvider::new());
        let providers = ProviderRegistry::new(vec![mock.clone() as Arc<dyn Provider>]);
        let applied = generate(resources, dir.path(), &mock);
        let options = CheckOptions {
            dir: dir.path().to_path_buf(),
            schemas: providers.catalog(),
            ..CheckOptions::default()
        };
        let empty = State::new("bench");
        for (label, state, expected) in [
            ("empty", &empty, Action::Create),
            ("applied", &applied, Action::NoOp),
        ] {
            if only.as_deref().is_some_and(|only| only != label) {
                continue;
            }
            let mut times = Vec::new();
            let mut peak = 0;
            let mut allocated = 0;
            for _ in 0..5 {
                let allocations_before = allocations();
                let base = start_peak();
                let started = Instant::now();
                let planner = Planner::new(&providers, PlanOptions::default());
                let planned = runtime
                    .block_on(planner.plan(load(&options), &options, state))
                    .unwrap_or_else(|_| panic!("the generated configuration must plan"));
                times.push(started.elapsed().as_secs_f64());
                allocated = allocations() - allocations_before;
                peak = peak.max(peak_since(base));
                assert_eq!(
                    planned.plan.changes.len(),
                    resources,
                    "one change per instance"
                );
                assert!(
                    planned.plan.changes.iter().all(|c| c.action == expected),
                    "{label}: every change is {expected:?}"
                );
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{resources:>10} {label:>9} {:>9.3} {:>9.3} {:>10.1} {allocated:>12}",
                times[0],
                times[times.len() / 2],
                peak as f64 / (1024.0 * 1024.0)
            );
        }
    }
}
