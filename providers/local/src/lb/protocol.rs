//! The load balancer's admin protocol: the JSON both sides speak, as types
//! (the server in `admin.rs`, the provider's client in
//! `load_balancer.rs`'s `AdminApi`). Field names are the wire format; tests
//! speak it as raw JSON from outside.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pools::HealthCheck;

/// `admin.json` in the runtime directory: what a started load balancer
/// announces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    pub pid: u32,
    pub listen: String,
    pub admin: String,
}

/// How the load balancer treats slow and failing backends (`GET` and
/// `PUT /settings`; `local_lb`'s arguments of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How long a connection to a backend may take.
    pub connect_timeout_ms: u64,
    /// How long a backend may take to answer a request whole.
    pub response_timeout_ms: u64,
    /// Consecutive failures (a 5xx, a timeout, a refused or broken
    /// connection) that take a backend out of service until its health
    /// checks pass again; 0: never.
    pub max_failures: u32,
    pub balance: Balance,
}

/// How a pool picks the backend for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// In turn.
    RoundRobin,
    /// The one with the fewest requests in flight (in turn among equals):
    /// a slow backend gets fewer.
    LeastOutstanding,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            connect_timeout_ms: 1_000,
            response_timeout_ms: 30_000,
            max_failures: 5,
            balance: Balance::RoundRobin,
        }
    }
}

/// A backend's health check as registered; a missing field (or a
/// threshold of 0) takes the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
}

impl HealthSettings {
    /// The settings of `check`, every field given.
    pub fn of(check: &HealthCheck) -> HealthSettings {
        HealthSettings {
            path: Some(check.path.clone()),
            interval_ms: Some(u64::try_from(check.interval.as_millis()).unwrap_or(u64::MAX)),
            timeout_ms: Some(u64::try_from(check.timeout.as_millis()).unwrap_or(u64::MAX)),
            healthy_threshold: Some(check.healthy_threshold),
            unhealthy_threshold: Some(check.unhealthy_threshold),
        }
    }

    /// The check these settings describe, defaults filled in.
    pub fn check(&self) -> HealthCheck {
        let defaults = HealthCheck::default();
        let threshold =
            |given: Option<u32>, default: u32| given.filter(|n| *n > 0).unwrap_or(default);
        HealthCheck {
            path: self.path.clone().unwrap_or(defaults.path),
            interval: self
                .interval_ms
                .map_or(defaults.interval, Duration::from_millis),
            timeout: self
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            healthy_threshold: threshold(self.healthy_threshold, defaults.healthy_threshold),
            unhealthy_threshold: threshold(self.unhealthy_threshold, defaults.unhealthy_threshold),
        }
    }
}

/// `PUT /backends/ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub pool: String,
    pub addr: SocketAddr,
    #[serde(default)]
    pub health: HealthSettings,
}

/// One backend in `GET /status` (and the answer to a registration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub id: String,
    pub pool: String,
    pub addr: String,
    pub healthy: bool,
    pub draining: bool,
    pub in_flight: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub weight: u32,
    pub backends: Vec<BackendStatus>,
}

/// `GET /status` (and the answer to `PUT /weights`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub pools: BTreeMap<String, PoolStatus>,
    /// Pools that requests with a header value go to (see [`Route`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: Routes,
}

/// A route: requests whose header has one of the values go to its pool
/// (the SDK's type: the fleet interface and this API share it).
pub use infra_provider_sdk::Route;

/// `GET /pools/NAME/totals`: what a pool has answered since the load
/// balancer started (the SDK's type, which a fleet returns).
pub use infra_provider_sdk::PoolTotals;

/// `PUT /routes`: pool name → the requests routed to it; replaces every
/// route (`{}` removes them).
pub type Routes = BTreeMap<String, Route>;

impl Status {
    /// Every backend of every pool.
    pub fn backends(&self) -> impl Iterator<Item = &BackendStatus> {
        self.pools.values().flat_map(|pool| pool.backends.iter())
    }

    /// The ids of the backends that are healthy and not draining: those
    /// that take requests.
    pub fn in_service(&self) -> std::collections::BTreeSet<&str> {
        self.backends()
            .filter(|b| b.healthy && !b.draining)
            .map(|b| b.id.as_str())
            .collect()
    }
}

/// `PUT /weights`: pool name → weight.
pub type Weights = BTreeMap<String, u32>;

/// The answer to `DELETE /backends/ID?drain_ms=N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deregistered {
    pub id: String,
    /// Whether every request in flight finished within the drain time.
    pub drained: bool,
    pub in_flight: u64,
}

/// The body of every answer with a 4xx status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_reads_partial_health_settings_with_defaults() {
        let registration: Registration = serde_json::from_str(
            r#"{"pool": "stable", "addr": "127.0.0.1:9000", "health": {"path": "/up", "healthy_threshold": 0}}"#,
        )
        .unwrap();
        let check = registration.health.check();
        assert_eq!(check.path, "/up");
        assert_eq!(
            check.healthy_threshold,
            HealthCheck::default().healthy_threshold
        );
        assert_eq!(check.interval, HealthCheck::default().interval);
        assert_eq!(HealthSettings::of(&check).check(), check);
    }
}
