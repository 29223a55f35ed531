//! Backends grouped in pools with weights, and the choice of a backend for
//! each request.
//!
//! Pools are chosen by smooth weighted round-robin (nginx's): over any run
//! of requests each pool's share is as close to its weight as whole
//! requests allow, with no randomness, so a 90/10 split is 90/10. Only
//! pools with a backend that can take traffic (healthy, not draining)
//! count. Inside a pool, backends take turns — or, with `balance =
//! least_outstanding`, the one with the fewest requests in flight takes
//! the next (in turn among equals), so a slow backend gets fewer. A
//! backend that fails `max_failures` requests in a row, or more than half
//! of at least 20 in 10 s, is taken out of service until its health checks
//! pass again (passive health, as Envoy's outlier detection) — unless no
//! other backend of its pool is in service.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::metrics::Series;
use super::protocol::{BackendStatus, Balance, PoolStatus, Routes, Settings, Status};

/// An active health check, as ELBv2 defines one.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy backend healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy backend unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> HealthCheck {
        HealthCheck {
            path: "/healthz".into(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

pub struct Backend {
    pub id: String,
    pub pool: String,
    pub addr: SocketAddr,
    /// `addr` as a URI authority, made once.
    pub authority: hyper::http::uri::Authority,
    pub check: HealthCheck,
    /// A new backend gets traffic only once it passed `healthy_threshold`
    /// checks.
    pub healthy: AtomicBool,
    pub draining: AtomicBool,
    /// Deregistered: its health checks stop.
    pub removed: AtomicBool,
    pub in_flight: AtomicU64,
    pub passes: AtomicU32,
    pub failures: AtomicU32,
    /// Requests in a row that failed (5xx, timeout, connection error).
    pub failed_in_a_row: AtomicU32,
    /// The current failure-rate window: when it started (ms after the
    /// process started), its requests and failures.
    window_started_ms: AtomicU64,
    window_requests: AtomicU32,
    window_failures: AtomicU32,
    /// Notified when `in_flight` drops to zero.
    pub idle: Notify,
    /// Where its answers are counted.
    pub series: Series,
}

impl Backend {
    pub fn new(
        id: String,
        pool: String,
        addr: SocketAddr,
        check: HealthCheck,
        series: Series,
    ) -> Backend {
        Backend {
            authority: addr
                .to_string()
                .parse()
                .expect("a socket address is a valid authority"),
            id,
            pool,
            addr,
            check,
            healthy: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            passes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            failed_in_a_row: AtomicU32::new(0),
            window_started_ms: AtomicU64::new(0),
            window_requests: AtomicU32::new(0),
            window_failures: AtomicU32::new(0),
            idle: Notify::new(),
            series,
        }
    }

    pub fn takes_traffic(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn start_request(self: &Arc<Backend>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Records a check's result; returns the new health if it changed.
    pub fn record_check(&self, passed: bool) -> Option<bool> {
        if passed {
            self.failures.store(0, Ordering::Relaxed);
            let passes = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
            if passes >= self.check.healthy_threshold && !self.healthy.swap(true, Ordering::AcqRel)
            {
                return Some(true);
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= self.check.unhealthy_threshold
                && self.healthy.swap(false, Ordering::AcqRel)
            {
                return Some(false);
            }
        }
        None
    }

    /// Records how a request to it ended; whether it should now be taken
    /// out of service: `max_failures` failures in a row (0: never), or
    /// over half of at least [`RATE_MIN_REQUESTS`] requests failed in the
    /// current [`RATE_WINDOW`].
    pub fn record_answer(&self, failed: bool, max_failures: u32) -> bool {
        if max_failures == 0 {
            return false;
        }
        let now = u64::try_from(process_clock().as_millis()).unwrap_or(u64::MAX);
        let started = self.window_started_ms.load(Ordering::Relaxed);
        if now.saturating_sub(started) > RATE_WINDOW.as_millis() as u64 {
            self.window_started_ms.store(now, Ordering::Relaxed);
            self.window_requests.store(0, Ordering::Relaxed);
            self.window_failures.store(0, Ordering::Relaxed);
        }
        let requests = self.window_requests.fetch_add(1, Ordering::Relaxed) + 1;
        if !failed {
            self.failed_in_a_row.store(0, Ordering::Relaxed);
            return false;
        }
        let failures = self.window_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let in_a_row = self.failed_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        let eject =
            in_a_row >= max_failures || (requests >= RATE_MIN_REQUESTS && failures * 2 > requests);
        if eject {
            self.failed_in_a_row.store(0, Ordering::Relaxed);
            self.window_requests.store(0, Ordering::Relaxed);
            self.window_failures.store(0, Ordering::Relaxed);
        }
        eject
    }

    /// A connection to it was refused: out at once (the checks bring it
    /// back when it answers again).
    pub fn mark_down(&self) {
        self.passes.store(0, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Release);
    }

    /// How `GET /status` shows it.
    pub fn status(&self) -> BackendStatus {
        BackendStatus {
            id: self.id.clone(),
            pool: self.pool.clone(),
            addr: self.addr.to_string(),
            healthy: self.healthy.load(Ordering::Relaxed),
            draining: self.draining.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// A request counted in flight at a backend until dropped.
pub struct InFlight(Arc<Backend>);

impl InFlight {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[derive(Default)]
struct Pool {
    weight: u32,
    /// Smooth weighted round-robin's running score.
    current: i64,
    backends: Vec<Arc<Backend>>,
    next: usize,
}

impl Pool {
    /// The next of its backends that can take a request, other than
    /// `except` (in turn, or the least busy in turn among equals); the
    /// request counted in flight.
    fn next_backend(&mut self, except: Option<&str>, balance: Balance) -> Option<InFlight> {
        let count = self.backends.len();
        let mut chosen: Option<(usize, u64)> = None;
        for step in 0..count {
            let at = (self.next + step) % count;
            let backend = &self.backends[at];
            if !backend.takes_traffic() || Some(backend.id.as_str()) == except {
                continue;
            }
            let busy = match balance {
                Balance::RoundRobin => 0,
                Balance::LeastOutstanding => backend.in_flight.load(Ordering::Acquire),
            };
            if chosen.is_none_or(|(_, least)| busy < least) {
                chosen = Some((at, busy));
                if busy == 0 {
                    break;
                }
            }
        }
        let (at, _) = chosen?;
        self.next = (at + 1) % count;
        Some(self.backends[at].start_request())
    }
}

/// Every pool and backend of the load balancer.
#[derive(Default)]
pub struct Pools {
    inner: Mutex<BTreeMap<String, Pool>>,
    routes: Mutex<Routes>,
    settings: std::sync::RwLock<Settings>,
}

/// The window of failure-rate ejection.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The fewest requests in a window that failure-rate ejection judges.
pub const RATE_MIN_REQUESTS: u32 = 20;

/// Time since the load balancer started.
fn process_clock() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// The weight a pool gets when its first backend registers.
pub const DEFAULT_WEIGHT: u32 = 100;

impl Pools {
    /// Adds a backend (replacing one with the same id); returns the one it
    /// replaced.
    pub fn register(&self, backend: Arc<Backend>) -> Option<Arc<Backend>> {
        let mut pools = self.inner.lock().unwrap();
        let mut replaced = None;
        for pool in pools.values_mut() {
            if let Some(at) = pool.backends.iter().position(|b| b.id == backend.id) {
                replaced = Some(pool.backends.remove(at));
            }
        }
        pools
            .entry(backend.pool.clone())
            .or_insert_with(|| Pool {
                weight: DEFAULT_WEIGHT,
                ..Pool::default()
            })
            .backends
            .push(backend);
        replaced
    }

    pub fn find(&self, id: &str) -> Option<Arc<Backend>> {
        let pools = self.inner.lock().unwrap();
        pools
            .values()
            .flat_map(|p| p.backends.iter())
            .find(|b| b.id == id)
            .cloned()
    }

    /// Takes a backend out of its pool (after draining).
    pub fn remove(&self, id: &str) -> Option<Arc<Backend>> {
        let mut pools = self.inner.lock().unwrap();
        for pool in pools.values_mut() {
            if let Some(at) = pool.backends.iter().position(|b| b.id == id) {
                let backend = pool.backends.remove(at);
                backend.removed.store(true, Ordering::Release);
                return Some(backend);
            }
        }
        None
    }

    /// Sets the weights of the pools named (creating empty pools for new
    /// names, so a weight can be set before the backends come).
    pub fn set_weights(&self, weights: &BTreeMap<String, u32>) {
        let mut pools = self.inner.lock().unwrap();
        for (name, weight) in weights {
            let pool = pools.entry(name.clone()).or_default();
            pool.weight = *weight;
            pool.current = 0;
        }
        for pool in pools.values_mut() {
            pool.current = 0;
        }
    }

    /// Replaces every route.
    pub fn set_routes(&self, routes: Routes) {
        *self.routes.lock().unwrap() = routes;
    }

    /// The pool a request is routed to by its headers (`header` looks one
    /// up by name), if a route matches.
    pub fn route_of<'h>(&self, header: impl Fn(&str) -> Option<&'h str>) -> Option<String> {
        self.routes
            .lock()
            .unwrap()
            .iter()
            .find(|(_, route)| route.matches(&header))
            .map(|(pool, _)| pool.clone())
    }

    /// The backend for a request routed to `pool` (round robin in it),
    /// other than `except`; `None` when it has none that can take it (the
    /// request is then chosen for by weight, as any other).
    pub fn choose_in(&self, pool: &str, except: Option<&str>) -> Option<InFlight> {
        let balance = self.settings().balance;
        let mut pools = self.inner.lock().unwrap();
        pools.get_mut(pool)?.next_backend(except, balance)
    }

    /// Takes `backend` out of service (its health checks bring it back)
    /// unless no other backend of its pool takes traffic: failing open
    /// beats answering every request with 503. Whether it was taken out.
    pub fn eject(&self, backend: &Backend) -> bool {
        let pools = self.inner.lock().unwrap();
        let others_serve = pools.get(&backend.pool).is_some_and(|pool| {
            pool.backends
                .iter()
                .any(|other| other.id != backend.id && other.takes_traffic())
        });
        if others_serve && backend.healthy.load(Ordering::Acquire) {
            backend.mark_down();
            return true;
        }
        false
    }

    /// How slow and failing backends are treated now.
    pub fn settings(&self) -> Settings {
        *self.settings.read().unwrap()
    }

    pub fn set_settings(&self, settings: Settings) {
        *self.settings.write().unwrap() = settings;
    }

    /// The backend for the next request, other than `except` (a retry),
    /// counted in flight before the choice is visible to anyone else: a
    /// drain that starts after this cannot miss the request.
    ///
    /// When no pool with a weight has a backend that can take it, a pool
    /// at weight 0 that has one does (failing open, as ELB does): after a
    /// blue/green switch the old set still runs at weight 0 until it is
    /// retired, and it answers if the new one fails before infra switches
    /// back.
    pub fn choose(&self, except: Option<&str>) -> Option<InFlight> {
        let balance = self.settings().balance;
        let mut pools = self.inner.lock().unwrap();
        let has_backend = |pool: &Pool| {
            pool.backends
                .iter()
                .any(|b| b.takes_traffic() && Some(b.id.as_str()) != except)
        };
        let weighted = pools
            .values()
            .any(|pool| pool.weight > 0 && has_backend(pool));
        let usable = |pool: &Pool| (pool.weight > 0 || !weighted) && has_backend(pool);
        // At weight 0, each standby pool counts as weight 1.
        let weight_of = |pool: &Pool| i64::from(pool.weight.max(1));
        // One pass: every usable pool gains its weight, the highest score
        // wins and gives back the total.
        let mut total: i64 = 0;
        let mut best: Option<&mut Pool> = None;
        for pool in pools.values_mut() {
            if !usable(pool) {
                continue;
            }
            total += weight_of(pool);
            pool.current += weight_of(pool);
            if best.as_ref().is_none_or(|b| pool.current > b.current) {
                best = Some(pool);
            }
        }
        let pool = best?;
        pool.current -= total;
        pool.next_backend(except, balance)
    }

    /// Stops new requests to a backend. Once this returns, every request
    /// that will ever reach it is counted in `in_flight`.
    pub fn start_draining(&self, backend: &Backend) {
        let _barrier = self.inner.lock().unwrap();
        backend.draining.store(true, Ordering::Release);
    }

    /// Every backend, for health checks and metrics.
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        let pools = self.inner.lock().unwrap();
        pools
            .values()
            .flat_map(|p| p.backends.iter().cloned())
            .collect()
    }

    pub fn status(&self) -> Status {
        let pools = self.inner.lock().unwrap();
        Status {
            pools: pools
                .iter()
                .map(|(name, pool)| {
                    (
                        name.clone(),
                        PoolStatus {
                            weight: pool.weight,
                            backends: pool.backends.iter().map(|b| b.status()).collect(),
                        },
                    )
                })
                .collect(),
            routes: self.routes.lock().unwrap().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::protocol::Route;
    use infra_provider_sdk::sticky_bucket;

    fn backend(id: &str, pool: &str) -> Arc<Backend> {
        let backend = Backend::new(
            id.into(),
            pool.into(),
            "127.0.0.1:1".parse().unwrap(),
            HealthCheck::default(),
            Series::default(),
        );
        backend.healthy.store(true, Ordering::Relaxed);
        Arc::new(backend)
    }

    #[test]
    fn a_sticky_route_sends_one_customer_always_the_same_way_and_its_share() {
        let pools = Pools::default();
        pools.register(backend("a", "stable"));
        pools.register(backend("c", "canary"));
        let sticky = |cookie: Option<&str>| Route {
            header: if cookie.is_some() { "Cookie" } else { "X-User" }.into(),
            values: Vec::new(),
            cookie: cookie.map(String::from),
            percent: Some(25),
        };
        pools.set_routes([("canary".to_string(), sticky(None))].into());
        let mut routed = 0;
        for user in 0..1000 {
            let value = format!("user-{user}");
            let first = pools.route_of(|name| (name == "X-User").then_some(value.as_str()));
            for _ in 0..3 {
                assert_eq!(
                    pools.route_of(|name| (name == "X-User").then_some(value.as_str())),
                    first
                );
            }
            routed += usize::from(first.is_some());
        }
        assert!(
            (200..300).contains(&routed),
            "{routed} of 1000 users, 25% wanted"
        );
        assert_eq!(pools.route_of(|_| None), None, "no header: by weight");
        // The same by a cookie among others.
        pools.set_routes([("canary".to_string(), sticky(Some("session")))].into());
        let user = (0..)
            .map(|n| format!("s{n}"))
            .find(|v| sticky_bucket(v) < 25)
            .unwrap();
        let cookies = format!("theme=dark; session={user}; lang=en");
        assert_eq!(
            pools.route_of(|name| (name == "Cookie").then_some(cookies.as_str())),
            Some("canary".to_string())
        );
        assert_eq!(
            pools.route_of(|name| (name == "Cookie").then_some("theme=dark")),
            None
        );
    }

    #[test]
    fn pools_share_requests_exactly_by_weight() {
        let pools = Pools::default();
        pools.register(backend("a1", "stable"));
        pools.register(backend("a2", "stable"));
        pools.register(backend("b1", "canary"));
        pools.set_weights(&[("stable".into(), 90), ("canary".into(), 10)].into());
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..1000 {
            *counts
                .entry(pools.choose(None).unwrap().backend().id.clone())
                .or_default() += 1;
        }
        assert_eq!(counts["a1"] + counts["a2"], 900);
        assert_eq!(counts["a1"], 450);
        assert_eq!(counts["b1"], 100);
    }

    #[test]
    fn unhealthy_draining_and_zero_weight_backends_get_nothing_while_another_can() {
        let pools = Pools::default();
        let a = backend("a", "stable");
        let b = backend("b", "stable");
        let c = backend("c", "canary");
        pools.register(a.clone());
        pools.register(b.clone());
        pools.register(c.clone());
        pools.set_weights(&[("canary".into(), 0)].into());
        b.draining.store(true, Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(pools.choose(None).unwrap().backend().id, "a");
        }
        // A retry never goes back to `a`: with no weighted pool left, the
        // standby pool at weight 0 answers (fail open).
        assert_eq!(pools.choose(Some("a")).unwrap().backend().id, "c");
        a.mark_down();
        assert_eq!(pools.choose(None).unwrap().backend().id, "c");
        c.mark_down();
        assert!(pools.choose(None).is_none(), "nothing healthy: nothing");
    }

    #[test]
    fn health_flips_after_the_thresholds() {
        let b = Backend::new(
            "b".into(),
            "p".into(),
            "127.0.0.1:1".parse().unwrap(),
            HealthCheck::default(),
            Series::default(),
        );
        assert_eq!(b.record_check(true), None);
        assert_eq!(b.record_check(true), Some(true));
        assert_eq!(b.record_check(false), None);
        assert_eq!(b.record_check(false), None);
        assert_eq!(b.record_check(true), None, "a pass resets the failures");
        assert_eq!(b.record_check(false), None);
        assert_eq!(b.record_check(false), None);
        assert_eq!(b.record_check(false), Some(false));
    }
}
