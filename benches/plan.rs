//! Benchmark: planning generated configurations of 1,000 / 10,000 /
//! 100,000 mock resources with references, against an empty state (all
//! create) and against the state an apply would leave (all no-op).
//! Run: `cargo bench --bench plan`. Goal (issue 3): 10,000 resources in
//! under 0.5 s and 200 MB, growing linearly. Refresh through providers is
//! not part of it yet (providers come next); this is evaluation + diff.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use infra::check::CheckOptions;
use infra::eval::{AttributeSchema, BlockSchema, ProviderSchemas, SchemaCatalog, TypeConstraint};
use infra::plan::{Action, plan};
use infra::state::{ResourceState, State};

#[path = "support/counting_allocator.rs"]
mod counting_allocator;

use counting_allocator::{allocations, peak_since, start_peak};

/// `mock_network` (a name, computed id) and `mock_server` (refers to a
/// network, computed id and address).
fn catalog() -> SchemaCatalog {
    let string = || AttributeSchema::optional(TypeConstraint::String);
    let computed = || AttributeSchema::computed(TypeConstraint::String);
    let mut network_id = AttributeSchema::required(TypeConstraint::String);
    network_id.force_new = true;
    let network = BlockSchema {
        attributes: [
            ("name".to_string(), string()),
            ("id".to_string(), computed()),
        ]
        .into(),
        blocks: Default::default(),
    };
    let server = BlockSchema {
        attributes: [
            ("name".to_string(), string()),
            ("network_id".to_string(), network_id),
            (
                "size".to_string(),
                AttributeSchema::optional(TypeConstraint::Number),
            ),
            ("id".to_string(), computed()),
            ("address".to_string(), computed()),
        ]
        .into(),
        blocks: Default::default(),
    };
    let mut catalog = SchemaCatalog::default();
    catalog.providers.insert(
        "mock".into(),
        ProviderSchemas {
            resources: [
                ("mock_network".to_string(), network),
                ("mock_server".to_string(), server),
            ]
            .into(),
            data_sources: Default::default(),
        },
    );
    catalog
}

/// One network per 10 resources and 9 servers referring to it (a count of 9).
fn generate(resources: usize, dir: &std::path::Path) -> State {
    let groups = resources / 10;
    let mut text = String::from("variable env {\n  default = \"bench\"\n}\n\n");
    let mut state = State::new("bench");
    for group in 0..groups {
        let _ = write!(
            text,
            "resource mock_network n{group} {{\n  name = \"${{var.env}}-{group}\"\n}}\n\n\
             resource mock_server s{group} {{\n  count      = 9\n  name       = \"${{var.env}}-{group}-${{count.index}}\"\n  network_id = mock_network.n{group}.id\n  size       = 2\n}}\n\n"
        );
        let network_id = format!("net-{group}");
        state.resources.insert(
            format!("mock_network.n{group}"),
            ResourceState {
                type_name: "mock_network".into(),
                provider: "mock".into(),
                attributes: [
                    ("name".to_string(), format!("bench-{group}").into()),
                    ("id".to_string(), network_id.clone().into()),
                ]
                .into(),
                dependencies: Vec::new(),
            },
        );
        for index in 0..9 {
            state.resources.insert(
                format!("mock_server.s{group}[{index}]"),
                ResourceState {
                    type_name: "mock_server".into(),
                    provider: "mock".into(),
                    attributes: [
                        ("name".to_string(), format!("bench-{group}-{index}").into()),
                        ("network_id".to_string(), network_id.clone().into()),
                        ("size".to_string(), 2.into()),
                        ("id".to_string(), format!("srv-{group}-{index}").into()),
                        (
                            "address".to_string(),
                            format!("10.0.{}.{index}", group % 250).into(),
                        ),
                    ]
                    .into(),
                    dependencies: vec![format!("mock_network.n{group}")],
                },
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
    println!(
        "{:>10} {:>12} {:>9} {:>9} {:>10} {:>12}",
        "resources", "against", "best s", "median s", "heap MiB", "allocations"
    );
    let schemas = Arc::new(catalog());
    for resources in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let applied = generate(resources, dir.path());
        let empty = State::new("bench");
        for (label, state, expected) in [
            ("empty", &empty, Action::Create),
            ("applied", &applied, Action::NoOp),
        ] {
            let options = CheckOptions {
                dir: dir.path().to_path_buf(),
                schemas: schemas.clone(),
                ..CheckOptions::default()
            };
            let mut times = Vec::new();
            let mut peak = 0;
            let mut allocated = 0;
            for _ in 0..5 {
                let allocations_before = allocations();
                let base = start_peak();
                let started = Instant::now();
                let (checked, planned) = plan(&options, state);
                times.push(started.elapsed().as_secs_f64());
                allocated = allocations() - allocations_before;
                peak = peak.max(peak_since(base));
                assert!(
                    !checked.diagnostics.has_errors(),
                    "generated configuration must be valid"
                );
                assert_eq!(planned.changes.len(), resources, "one change per instance");
                assert!(
                    planned.changes.iter().all(|c| c.action == expected),
                    "{label}: every change is {expected:?}"
                );
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{resources:>10} {label:>12} {:>9.3} {:>9.3} {:>10.1} {allocated:>12}",
                times[0],
                times[times.len() / 2],
                peak as f64 / (1024.0 * 1024.0)
            );
        }
    }
}
