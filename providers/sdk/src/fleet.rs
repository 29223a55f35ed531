//! The [`Fleet`] interface: a deployment's instances as the coarse,
//! idempotent primitives the engine's rollouts drive — observe, start N of
//! a version, retire, route traffic, read a pool's counters.
//!
//! A provider whose deployments can be rolled out returns one from
//! [`crate::Provider::fleet`]. The strategies (rolling, blue/green,
//! canary), the deadlines, the analysis and the rollback are the engine's:
//! a fleet knows nothing of them, so the same rollout runs on processes
//! behind `local_lb` and on EC2 instances behind an ALB.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::protocol::{Attributes, ObjectIdentity, ProviderError};
use crate::provider::BoxFuture;
use crate::schema::{Attribute, AttributeType};

/// What the engine asks a fleet for: the deployment as configured now and
/// as the state last recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRequest {
    pub type_name: String,
    pub identity: ObjectIdentity,
    /// The wanted deployment: the arguments the engine evaluated.
    pub config: Attributes,
    /// What the state records (empty for a new deployment): the previous
    /// version, which a rollback restores.
    pub prior: Attributes,
}

/// Which of the two versions a fleet knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The one the configuration asks for.
    Wanted,
    /// The one the state records.
    Previous,
}

/// A version of the deployment: its identity (instances carry it) and how
/// many instances it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub id: String,
    pub replicas: usize,
}

/// One instance of a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetInstance {
    /// Unique within the deployment.
    pub name: String,
    /// The [`VersionInfo::id`] it runs.
    pub version: String,
    /// The load balancer pool (target group) it is registered in.
    pub pool: String,
}

/// The fleet as it is now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Every instance that runs, whatever its version — those an
    /// interrupted operation started included.
    pub instances: Vec<FleetInstance>,
    /// The names of those the load balancer finds healthy and sends
    /// requests to (all running ones without a load balancer).
    pub in_service: BTreeSet<String>,
    /// The pools' weights.
    pub weights: BTreeMap<String, u32>,
}

/// The requests a route sends to its pool, and only those: a canary for
/// chosen customers (`values`), or a sticky share of them (`percent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The request header read (`Cookie` with `cookie`).
    pub header: String,
    /// A request matches when the value is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Read this cookie of the `Cookie` header instead of the whole
    /// header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// Sticky: a request matches when its value hashes into the first
    /// `percent` of 100 buckets (FNV-1a), so one value — one customer —
    /// always lands on the same side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
}

impl Route {
    /// The requests whose `header` has one of `values`.
    pub fn values(header: &str, values: Vec<String>) -> Route {
        Route {
            header: header.to_string(),
            values,
            cookie: None,
            percent: None,
        }
    }

    /// Whether a request matches, `header` looking its headers up by name.
    pub fn matches<'h>(&self, header: impl Fn(&str) -> Option<&'h str>) -> bool {
        let Some(mut value) = header(&self.header) else {
            return false;
        };
        if let Some(cookie) = &self.cookie {
            let found = value.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == cookie).then_some(value)
            });
            match found {
                Some(found) => value = found,
                None => return false,
            }
        }
        match self.percent {
            Some(percent) => sticky_bucket(value) < percent,
            None => self.values.iter().any(|v| v == value),
        }
    }
}

/// The bucket (0 to 99) a sticky route puts a value in: FNV-1a, the same
/// in every process and every run.
pub fn sticky_bucket(value: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 100) as u32
}

/// Where requests go: the weights of the named pools (pools not named keep
/// theirs), and the header routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub weights: BTreeMap<String, u32>,
    /// Pool name → the requests routed to it, replacing every route;
    /// `None` keeps the routes as they are.
    pub routes: Option<BTreeMap<String, Route>>,
}

/// What a pool has answered since its load balancer started: counters,
/// which analysis reads twice and subtracts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolTotals {
    /// Answers given.
    pub requests: u64,
    /// Of those, 5xx answers.
    pub errors: u64,
    /// The latency histogram: (upper bound in seconds, answers at most
    /// that slow), cumulative, as Prometheus writes buckets; slower ones
    /// count only in `timed`.
    pub latency: Vec<(f64, u64)>,
    /// Answers timed (every one, retries included).
    pub timed: u64,
}

/// A deployment's instances, driven by the engine. Every operation is
/// idempotent or safe to repeat after an interruption: instances are
/// journaled as they start, so a second operation finds them.
pub trait Fleet: Send + Sync {
    /// The wanted version, or the previous one (`None` for a new
    /// deployment).
    fn version(&self, which: Version) -> Option<VersionInfo>;

    /// The deployment's two pools: the first is where a new deployment
    /// starts; a blue/green or canary rollout starts the new version in
    /// the one the old version is not in.
    fn pools(&self) -> [String; 2];

    /// Whether a load balancer sends the requests (routes, weights and
    /// counters exist only then).
    fn balanced(&self) -> bool;

    fn observe(&self) -> BoxFuture<'_, Result<Observed, ProviderError>>;

    /// Makes sure running instances are registered in their pools (the
    /// load balancer may have lost them) and in service.
    fn admit(&self, names: Vec<String>) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Starts `count` instances of `version` in `pool` and brings them into
    /// service: healthy by the deployment's checks, registered, healthy in
    /// the load balancer's eyes. On failure every instance it started is
    /// stopped again.
    fn start(
        &self,
        version: Version,
        pool: String,
        count: usize,
    ) -> BoxFuture<'_, Result<Vec<FleetInstance>, ProviderError>>;

    /// Drains (deregistered, requests in flight finished within the
    /// deployment's `drain`) and stops the named instances, together.
    fn retire(&self, names: Vec<String>) -> BoxFuture<'_, ()>;

    /// Sets where requests go, in one change, and reads it back: an error
    /// when the load balancer did not take it.
    fn route(&self, traffic: Traffic) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// A pool's counters.
    fn totals(&self, pool: String) -> BoxFuture<'_, Result<PoolTotals, ProviderError>>;

    /// The state to record for the deployment at its wanted version, served
    /// by the named instances.
    fn record(&self, names: &[String]) -> Attributes;
}

/// A deployment's version id, which its instances carry: any change of its
/// `template` (or of `version`) is a new version; the order a map is
/// written in is not. Twelve hex digits of a SHA-256, the same for every
/// fleet.
pub fn version_of(config: &Attributes) -> String {
    let template = config
        .get("template")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let digest = Sha256::digest(
        serde_json::json!({ "template": template, "version": config.get("version") }).to_string(),
    );
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The arguments every fleet's deployment resource takes, as the engine
/// passes them (see `src/deploy/mod.rs`): a provider adds its `template`,
/// `load_balancer` and what else its instances need.
pub fn deployment_attributes() -> Vec<(&'static str, Attribute)> {
    let any = |description: &str| Attribute::optional(AttributeType::Any).describe(description);
    vec![
        (
            "replicas",
            Attribute::required(AttributeType::Number).describe("how many instances"),
        ),
        ("version", any("the version; a change is a new version")),
        (
            "min_ready",
            any("healthy this long before an instance counts (default 10s)"),
        ),
        (
            "healthy_deadline",
            any("an instance not healthy by then fails (default 5m)"),
        ),
        (
            "progress_deadline",
            any("the whole change must finish by then (default 10m)"),
        ),
        (
            "auto_rollback",
            any("a failed rollout restores the previous version (default true)"),
        ),
        (
            "strategy",
            any("how the engine rolls a new version out (the engine reads it)"),
        ),
        (
            "id",
            Attribute::computed(AttributeType::String).describe("the deployment's address"),
        ),
    ]
}
