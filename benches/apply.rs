//! Benchmark: apply through the engine (the `Planner`, then `apply`) with
//! the mock provider, in two parts.
//!
//! 1. Latency-bound: 1,000 mock resources whose every create takes 50 ms,
//!    at parallelism 10 and 100, in two shapes — `groups` (100 groups of a
//!    network, 3 subnets referring to its id and 6 servers referring to
//!    the subnets' ids: 3 levels, wide) and `chains` (10 chains of 100
//!    resources, each referring to the previous one's id: the critical path
//!    dominates). The bound no scheduler can beat is max(critical path ×
//!    50 ms, resources × 50 ms / parallelism); `walk s` is the apply itself,
//!    `total s` adds planning, refresh and recording the outputs.
//! 2. Zero latency: the `groups` and `chains` shapes, `modules` (the
//!    groups as instances of one module called with `for_each`) and `keyed`
//!    (one resource whose `for_each` makes every instance), at 1,000 /
//!    2,000 / 4,000 / 10,000
//!    resources (`INFRA_BENCH_SIZES`) with operations that take no time, so
//!    that what is measured is the engine's own cost — and how it grows:
//!    `growth` is the exponent between two sizes (log of the time ratio
//!    over log of the size ratio): 1 is linear, 2 quadratic.
//!
//! Run: `cargo bench --bench apply` (`--no-default-features` builds it
//! without the AWS SDK).

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

/// Writes the configuration of about `resources` resources; returns
/// (resources, critical path length).
fn generate(
    shape: &str,
    resources: usize,
    latency_ms: u64,
    dir: &std::path::Path,
) -> (usize, usize) {
    let mut text = format!("provider mock {{\n  latency_ms = {latency_ms}\n}}\n\n");
    match shape {
        "groups" => {
            for group in 0..resources / 10 {
                let _ = write!(
                    text,
                    "resource mock_resource network{group} {{\n  name = \"net-{group}\"\n}}\n\n\
                     resource mock_resource subnet{group} {{\n  count = 3\n  name  = \"${{mock_resource.network{group}.id}}-${{count.index}}\"\n}}\n\n\
                     resource mock_resource server{group} {{\n  count = 6\n  name  = \"server-{group}-${{count.index}}\"\n  value = mock_resource.subnet{group}[count.index % 3].id\n}}\n\n"
                );
            }
            (resources / 10 * 10, 3)
        }
        "modules" => {
            // The `groups` shape, each group an instance of one module
            // called with `for_each`.
            let module_dir = dir.join("modules/group");
            std::fs::create_dir_all(&module_dir).expect("create the module directory");
            std::fs::write(
                module_dir.join("main.infra"),
                "variable index {\n  type = number\n}\n\n\
                 resource mock_resource network {\n  name = \"net-${var.index}\"\n}\n\n\
                 resource mock_resource subnet {\n  count = 3\n  name  = \"${mock_resource.network.id}-${count.index}\"\n}\n\n\
                 resource mock_resource server {\n  count = 6\n  name  = \"server-${var.index}-${count.index}\"\n  value = mock_resource.subnet[count.index % 3].id\n}\n",
            )
            .expect("write");
            let _ = write!(
                text,
                "module group {{\n  for_each = {{ for i in range({}) : \"g${{i}}\" => i }}\n  source   = \"./modules/group\"\n  index    = each.value\n}}\n",
                resources / 10
            );
            (resources / 10 * 10, 3)
        }
        "keyed" => {
            // One resource with a `for_each` of every instance.
            let _ = write!(
                text,
                "resource mock_resource item {{\n  for_each = {{ for i in range({resources}) : \"k${{i}}\" => i }}\n  name     = \"item-${{each.value}}\"\n}}\n"
            );
            (resources, 1)
        }
        _ => {
            for chain in 0..10 {
                for link in 0..resources / 10 {
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
            (resources / 10 * 10, resources / 10)
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

/// Plans and applies the configuration in `dir` from an empty state;
/// returns (total seconds, walk seconds).
fn plan_and_apply(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    parallelism: usize,
    resources: usize,
) -> (f64, f64) {
    let mock = Arc::new(MockProvider::new());
    let providers = ProviderRegistry::new(vec![mock.clone() as Arc<dyn Provider>]);
    let options = CheckOptions {
        dir: dir.to_path_buf(),
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
    (total, report.elapsed.as_secs_f64())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // INFRA_BENCH_ONLY=groups:100 runs one latency-bound case (for
    // profiling); INFRA_BENCH_ONLY=zero runs only the zero-latency part.
    let only = std::env::var("INFRA_BENCH_ONLY").ok();
    if only.as_deref() != Some("zero") {
        println!(
            "{:>7} {:>5} {:>9} {:>8} {:>8} {:>8} {:>7}",
            "shape", "par", "resources", "bound s", "walk s", "total s", "ratio"
        );
        for shape in ["groups", "chains"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (resources, critical_path) = generate(shape, 1000, LATENCY_MS, dir.path());
            for parallelism in [10usize, 100] {
                if only
                    .as_ref()
                    .is_some_and(|only| *only != format!("{shape}:{parallelism}"))
                {
                    continue;
                }
                let (total, walk) = plan_and_apply(&runtime, dir.path(), parallelism, resources);
                let latency = LATENCY_MS as f64 / 1000.0;
                let bound = (critical_path as f64 * latency)
                    .max((resources as f64 / parallelism as f64).ceil() * latency);
                println!(
                    "{shape:>7} {parallelism:>5} {resources:>9} {bound:>8.3} {walk:>8.3} {total:>8.3} {:>7.3}",
                    walk / bound
                );
            }
        }
    }
    if only.as_ref().is_some_and(|only| only != "zero") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("INFRA_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 2_000, 4_000, 10_000]);
    for shape in ["groups", "chains", "modules", "keyed"] {
        zero_latency(&runtime, shape, &sizes);
    }
}

/// Part 2 for one shape: the engine's own cost at each size, and its growth.
fn zero_latency(runtime: &tokio::runtime::Runtime, shape: &str, sizes: &[usize]) {
    println!();
    println!(
        "zero latency, {shape}, parallelism 10\n{:>9} {:>8} {:>8} {:>12} {:>14}",
        "resources", "walk s", "total s", "µs/resource", "growth"
    );
    let mut previous: Option<(usize, f64)> = None;
    for &size in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let (resources, _) = generate(shape, size, 0, dir.path());
        let (total, walk) = plan_and_apply(runtime, dir.path(), 10, resources);
        let growth = previous.map_or(String::from("-"), |(size, time)| {
            let cost = total / time;
            let scale = resources as f64 / size as f64;
            format!("{:.2}", cost.ln() / scale.ln())
        });
        println!(
            "{resources:>9} {walk:>8.3} {total:>8.3} {:>12.1} {growth:>14}",
            total * 1e6 / resources as f64
        );
        previous = Some((resources, total));
    }
}
