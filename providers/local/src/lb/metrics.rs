//! Prometheus metrics of the load balancer, served at `/metrics` on the
//! admin port:
//!
//! - `infra_lb_requests_total{pool,backend,code}`: answers given, by pool,
//!   backend and status code (`pool="none"` for a 503 when no backend could
//!   take the request);
//! - `infra_lb_request_duration_seconds{pool}`: a latency histogram per
//!   pool, as clients saw it (retries included);
//! - `infra_lb_backend_healthy{pool,backend}`, `infra_lb_backend_in_flight`
//!   and `infra_lb_pool_weight{pool}`: gauges.
//!
//! This is what canary analysis reads, and what a Prometheus server scrapes.
//! Each backend holds its own counters (atomics: the request path takes no
//! lock for them); they stay registered after the backend leaves, so a
//! counter never goes backwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::pools::{Backend, Pools};
use super::protocol::PoolTotals;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Answers by status code (100…599).
pub struct Codes([AtomicU64; 500]);

impl Default for Codes {
    fn default() -> Codes {
        Codes(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

#[derive(Default)]
pub struct Latency {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// The counters one backend's answers go to.
#[derive(Clone, Default)]
pub struct Series {
    codes: Arc<Codes>,
    latency: Arc<Latency>,
}

impl Series {
    pub fn record(&self, code: u16, took: Duration) {
        if let Some(count) = self.codes.0.get(usize::from(code).wrapping_sub(100)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.latency.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.count.fetch_add(1, Ordering::Relaxed);
        self.latency
            .sum_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Every series, by pool and backend.
#[derive(Default)]
pub struct Metrics {
    codes: Mutex<BTreeMap<(String, String), Arc<Codes>>>,
    latency: Mutex<BTreeMap<String, Arc<Latency>>>,
}

/// A backend gauge: name, help, and how to read it.
type Gauge = (&'static str, &'static str, fn(&Backend) -> u64);

impl Metrics {
    /// The series of `backend` in `pool` (the same one if it comes back).
    pub fn series(&self, pool: &str, backend: &str) -> Series {
        let codes = self
            .codes
            .lock()
            .unwrap()
            .entry((pool.to_string(), backend.to_string()))
            .or_default()
            .clone();
        let latency = self
            .latency
            .lock()
            .unwrap()
            .entry(pool.to_string())
            .or_default()
            .clone();
        Series { codes, latency }
    }

    /// A pool's totals (see [`PoolTotals`]).
    pub fn totals(&self, pool: &str) -> PoolTotals {
        let mut totals = PoolTotals::default();
        for ((name, _), codes) in self.codes.lock().unwrap().iter() {
            if name != pool {
                continue;
            }
            for (at, count) in codes.0.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                totals.requests += count;
                if (500..600).contains(&(at + 100)) {
                    totals.errors += count;
                }
            }
        }
        if let Some(latency) = self.latency.lock().unwrap().get(pool) {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&latency.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                totals.latency.push((*bound, cumulative));
            }
            totals.timed = latency.count.load(Ordering::Relaxed);
        }
        totals
    }

    /// The text exposition format.
    pub fn render(&self, pools: &Pools) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP infra_lb_requests_total Answers given, by pool, backend and status code.\n",
        );
        out.push_str("# TYPE infra_lb_requests_total counter\n");
        for ((pool, backend), codes) in self.codes.lock().unwrap().iter() {
            for (at, count) in codes.0.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let code = at + 100;
                    let _ = writeln!(
                        out,
                        "infra_lb_requests_total{{pool=\"{pool}\",backend=\"{backend}\",code=\"{code}\"}} {count}"
                    );
                }
            }
        }
        out.push_str("# HELP infra_lb_request_duration_seconds Time to answer, per pool.\n");
        out.push_str("# TYPE infra_lb_request_duration_seconds histogram\n");
        for (pool, latency) in self.latency.lock().unwrap().iter() {
            let count = latency.count.load(Ordering::Relaxed);
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&latency.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "infra_lb_request_duration_seconds_bucket{{pool=\"{pool}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = latency.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "infra_lb_request_duration_seconds_bucket{{pool=\"{pool}\",le=\"+Inf\"}} {count}\n\
                 infra_lb_request_duration_seconds_sum{{pool=\"{pool}\"}} {sum}\n\
                 infra_lb_request_duration_seconds_count{{pool=\"{pool}\"}} {count}"
            );
        }
        let backends = pools.backends();
        let gauges: [Gauge; 2] = [
            (
                "infra_lb_backend_healthy",
                "1 if the backend passes its health checks.",
                |b| u64::from(b.healthy.load(Ordering::Relaxed)),
            ),
            (
                "infra_lb_backend_in_flight",
                "Requests the backend is answering now.",
                |b| b.in_flight.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, read) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for backend in &backends {
                let _ = writeln!(
                    out,
                    "{name}{{pool=\"{}\",backend=\"{}\"}} {}",
                    backend.pool,
                    backend.id,
                    read(backend)
                );
            }
        }
        out.push_str(
            "# HELP infra_lb_pool_weight The pool's share of traffic, relative to the others.\n",
        );
        out.push_str("# TYPE infra_lb_pool_weight gauge\n");
        for (pool, status) in pools.status().pools {
            let _ = writeln!(
                out,
                "infra_lb_pool_weight{{pool=\"{pool}\"}} {}",
                status.weight
            );
        }
        out
    }
}
