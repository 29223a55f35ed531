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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::pools::{Backend, Pools};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A backend gauge: name, help, and how to read it.
type Gauge = (&'static str, &'static str, fn(&Backend) -> u64);

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Counts {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl Metrics {
    pub fn record(&self, pool: &str, backend: &str, code: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut counts = self.counts.lock().unwrap();
        // Look up before inserting: no allocation on the usual path.
        let key = (pool.to_string(), backend.to_string(), code);
        *counts.requests.entry(key).or_default() += 1;
        let histogram = match counts.latency.get_mut(pool) {
            Some(histogram) => histogram,
            None => counts.latency.entry(pool.to_string()).or_default(),
        };
        histogram.count += 1;
        histogram.sum += seconds;
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.counts[bucket] += 1;
        }
    }

    /// The text exposition format.
    pub fn render(&self, pools: &Pools) -> String {
        let (requests, latency) = {
            let counts = self.counts.lock().unwrap();
            (counts.requests.clone(), counts.latency.clone())
        };
        let mut out = String::new();
        out.push_str(
            "# HELP infra_lb_requests_total Answers given, by pool, backend and status code.\n",
        );
        out.push_str("# TYPE infra_lb_requests_total counter\n");
        for ((pool, backend, code), count) in &requests {
            let _ = writeln!(
                out,
                "infra_lb_requests_total{{pool=\"{pool}\",backend=\"{backend}\",code=\"{code}\"}} {count}"
            );
        }
        out.push_str("# HELP infra_lb_request_duration_seconds Time to answer, per pool.\n");
        out.push_str("# TYPE infra_lb_request_duration_seconds histogram\n");
        for (pool, histogram) in &latency {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "infra_lb_request_duration_seconds_bucket{{pool=\"{pool}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "infra_lb_request_duration_seconds_bucket{{pool=\"{pool}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "infra_lb_request_duration_seconds_sum{{pool=\"{pool}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "infra_lb_request_duration_seconds_count{{pool=\"{pool}\"}} {}",
                histogram.count
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
        if let Some(status) = pools.status()["pools"].as_object() {
            for (pool, value) in status {
                let _ = writeln!(
                    out,
                    "infra_lb_pool_weight{{pool=\"{pool}\"}} {}",
                    value["weight"]
                );
            }
        }
        out
    }
}
