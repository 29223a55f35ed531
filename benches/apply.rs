//! Benchmark: applying 1,000 mock resources whose every create takes 50 ms,
//! at parallelism 10 and 100, in two shapes:
//! - `groups`: 100 groups of a network, 3 subnets referring to its id and
//!   6 servers referring to the subnets' ids (3 levels, wide);
//! - `chains`: 10 chains of 100 resources, each referring to the previous
//!   one's id (deep: the critical path dominates).
//!
//! The bound no scheduler can beat is max(critical path × 50 ms,
//! resources × 50 ms / parallelism); the goal (issue 3) is an apply within
//! 10% of it. `walk s` is the apply itself (first step started to last
//! finished); `total s` adds planning, refresh and recording the outputs.
//! Run: `cargo bench --bench apply`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use infra::apply::apply_in_memory;
use infra::check::{CheckOptions, load};
use infra::events::Events;
use infra::plan::{PlanOptions, Planner};
use infra::providers::ProviderRegistry;
use infra::state::State;
use infra_provider_mock::MockProvider;
use infra_provider_sdk::Provider;

const LATENCY_MS: u64 = 50;

/// The allocator of the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes the configuration; returns (resources, critical path length).
fn generate(shape: &str, dir: &std::path::Path) -> (usize, usize) {
    let mut text = format!("provider mock {{\n  latency_ms = {LATENCY_MS}\n}}\n\n");
    match shape {
        "groups" => {
            for group in 0..100 {
                let _ = write!(
                    text,
                    "resource mock_resource network{group} {{\n  name = \"net-{group}\"\n}}\n\n\
                     resource mock_resource subnet{group} {{\n  count = 3\n  name  = \"${{mock_resource.network{group}.id}}-${{count.index}}\"\n}}\n\n\
                     resource mock_resource server{group} {{\n  count = 6\n  name  = \"server-{group}-${{count.index}}\"\n  value = mock_resource.subnet{group}[count.index % 3].id\n}}\n\n"
                );
            }
            (1000, 3)
        }
        _ => {
            for chain in 0..10 {
                for link in 0..100 {
                    let value = if link == 0 {
                        "\"start\"".to_string()
                    } else {
                        format!("mock_resource.c{chain}_{}.id", link - 1)
                    };
                    let _ = write!(
                        text,
                        "resource mock_resource c{chain}_{link} {{\n  value = {value}\n}}\n\n"
                    );
                }
            }
            (1000, 100)
        }
    }
    .tap(|_| std::fs::write(dir.join("main.infra"), &text).expect("write"))
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&Self)) -> Self {
        f(&self);
        self
    }
}
impl<T> Tap for T {}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{:>7} {:>5} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "shape", "par", "resources", "bound s", "walk s", "total s", "ratio"
    );
    // INFRA_BENCH_ONLY=groups:100 runs one case (for profiling).
    let only = std::env::var("INFRA_BENCH_ONLY").ok();
    for shape in ["groups", "chains"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (resources, critical_path) = generate(shape, dir.path());
        for parallelism in [10usize, 100] {
            if only
                .as_ref()
                .is_some_and(|only| *only != format!("{shape}:{parallelism}"))
            {
                continue;
            }
            let mock = Arc::new(MockProvider::new());
            let providers = ProviderRegistry::new(vec![mock.clone() as Arc<dyn Provider>]);
            let options = CheckOptions {
                dir: dir.path().to_path_buf(),
                schemas: providers.catalog(),
                ..CheckOptions::default()
            };
            let started = Instant::now();
            let planner = Planner::new(
                &providers,
                PlanOptions {
                    parallelism,
                    ..PlanOptions::default()
                },
            );
            let (state, report) = runtime.block_on(async {
                let planned = planner
                    .plan(load(&options), &options, &State::new("bench"))
                    .await
                    .unwrap_or_else(|_| panic!("plan failed"));
                apply_in_memory(planned, &providers, parallelism, Events::none()).await
            });
            let total = started.elapsed().as_secs_f64();
            assert!(report.succeeded());
            assert_eq!(state.resources.len(), resources);
            assert_eq!(mock.objects().len(), resources, "one object per resource");

            let latency = LATENCY_MS as f64 / 1000.0;
            let bound = (critical_path as f64 * latency)
                .max((resources as f64 / parallelism as f64).ceil() * latency);
            let walk = report.elapsed.as_secs_f64();
            println!(
                "{shape:>7} {parallelism:>5} {resources:>9} {bound:>8.3} {walk:>8.3} {total:>8.3} {:>7.3}",
                walk / bound
            );
        }
    }
}
