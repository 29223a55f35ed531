//! The strategies on a fake fleet with a paused clock: no process, no
//! sleep, exact durations. The fake starts an instance in `start_time`,
//! counts what runs and what serves after every change, and answers
//! `totals` from the traffic its weights gave each pool since the last
//! change (`rps` requests a second, failing at the rate set for their
//! version).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_provider_sdk::{
    Attributes, BoxFuture, Fleet, FleetInstance, Observed, PoolTotals, Progress, ProviderError,
    Traffic, Version, VersionInfo,
};
use serde_json::json;
use tokio::time::Instant;

use super::{Control, Outcome, abort, execute};
use crate::deploy::analysis::{Answer, Queries};
use crate::deploy::record::{RolloutRecord, Status};
use crate::deploy::spec::{DeploymentSpec, Health};
use crate::deploy::strategy::{Amount, Analysis, CanaryStep, Matching, Preview, Query, Strategy};

const V1: &str = "v1";
const V2: &str = "v2";

#[derive(Default)]
struct World {
    instances: Vec<FleetInstance>,
    /// Names of instances out of service (not healthy).
    sick: BTreeSet<String>,
    weights: BTreeMap<String, u32>,
    routes: BTreeMap<String, infra_provider_sdk::Route>,
    /// Every `route` call, in order.
    traffic: Vec<Traffic>,
    started: usize,
    retired: usize,
    /// The most instances running at once, and the fewest in service once
    /// the rollout began.
    peak: usize,
    fewest_in_service: usize,
    totals: BTreeMap<String, PoolTotals>,
    counted_until: Option<Instant>,
    next_name: usize,
}

struct FakeFleet {
    wanted: VersionInfo,
    previous: Option<VersionInfo>,
    start_time: Duration,
    /// Versions whose instances never become healthy: `start` fails after
    /// `healthy_deadline`.
    never_healthy: BTreeSet<String>,
    /// The share of failed answers by version (from `bad_from` on, when
    /// set).
    error_rate: BTreeMap<String, f64>,
    bad_from: Option<Instant>,
    rps: f64,
    /// Requests a second that header routes send to their pool.
    routed_rps: f64,
    /// `totals` fails (the load balancer cannot be read).
    unreadable: bool,
    /// A new instance falls out of service this long after it started.
    sick_after: Option<Duration>,
    healthy_deadline: Duration,
    world: Mutex<World>,
    born: Mutex<BTreeMap<String, Instant>>,
    /// What the analysis's PromQL queries return.
    queries: ScriptedQueries,
}

/// A Prometheus that answers every query with the same answer, and
/// remembers what it was asked.
#[derive(Default)]
struct ScriptedQueries {
    answer: Option<Result<Answer, String>>,
    asked: Mutex<Vec<(String, String)>>,
}

impl Queries for ScriptedQueries {
    fn instant<'a>(&'a self, url: &'a str, expr: &'a str) -> BoxFuture<'a, Result<Answer, String>> {
        self.asked
            .lock()
            .unwrap()
            .push((url.to_string(), expr.to_string()));
        let answer = self.answer.clone().unwrap_or(Ok(Answer::Empty));
        Box::pin(async move { answer })
    }
}

impl FakeFleet {
    /// `replicas` of v1 serving from the first pool, v2 wanted.
    fn running_v1(replicas: usize, wanted_replicas: usize) -> FakeFleet {
        let fleet = FakeFleet {
            wanted: VersionInfo {
                id: V2.into(),
                replicas: wanted_replicas,
            },
            previous: Some(VersionInfo {
                id: V1.into(),
                replicas,
            }),
            start_time: Duration::from_secs(10),
            never_healthy: BTreeSet::new(),
            error_rate: BTreeMap::new(),
            bad_from: None,
            rps: 100.0,
            routed_rps: 20.0,
            unreadable: false,
            sick_after: None,
            healthy_deadline: Duration::from_secs(60),
            world: Mutex::new(World::default()),
            born: Mutex::new(BTreeMap::new()),
            queries: ScriptedQueries::default(),
        };
        {
            let mut world = fleet.world.lock().unwrap();
            for _ in 0..replicas {
                let name = format!("i{}", world.next_name);
                world.next_name += 1;
                world.instances.push(FleetInstance {
                    name,
                    version: V1.into(),
                    pool: "web".into(),
                });
            }
            world.weights.insert("web".into(), 100);
            world.peak = replicas;
            world.fewest_in_service = replicas;
        }
        fleet
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    fn versions_serving(&self) -> BTreeMap<String, usize> {
        let world = self.world();
        let mut count = BTreeMap::new();
        for i in &world.instances {
            *count.entry(i.version.clone()).or_insert(0) += 1;
        }
        count
    }

    /// Counts the requests each pool answered since the last count, by
    /// the weights in force (header routes take no weighted share).
    fn count_traffic(&self, world: &mut World) {
        let now = Instant::now();
        let since = world.counted_until.replace(now).unwrap_or(now);
        let seconds = (now - since).as_secs_f64();
        let total: u32 = world
            .weights
            .iter()
            .filter(|(pool, _)| world.instances.iter().any(|i| &i.pool == *pool))
            .map(|(_, w)| *w)
            .sum();
        let mut shares: Vec<(String, f64)> = if total == 0 {
            Vec::new()
        } else {
            world
                .weights
                .iter()
                .map(|(pool, w)| (pool.clone(), self.rps * f64::from(*w) / f64::from(total)))
                .collect()
        };
        shares.extend(
            world
                .routes
                .keys()
                .map(|pool| (pool.clone(), self.routed_rps)),
        );
        for (pool, rate_a_second) in shares {
            let Some(version) = world
                .instances
                .iter()
                .find(|i| i.pool == pool)
                .map(|i| i.version.clone())
            else {
                continue;
            };
            let requests = (rate_a_second * seconds).round() as u64;
            let rate = match self.bad_from {
                Some(from) if now < from => 0.0,
                _ => self.error_rate.get(&version).copied().unwrap_or(0.0),
            };
            let totals = world.totals.entry(pool).or_default();
            totals.requests += requests;
            totals.errors += (requests as f64 * rate).round() as u64;
            totals.timed += requests;
            totals.latency = vec![(0.01, totals.timed)];
        }
    }

    fn note_counts(world: &mut World) {
        let running = world.instances.len();
        let serving = world
            .instances
            .iter()
            .filter(|i| !world.sick.contains(&i.name))
            .count();
        world.peak = world.peak.max(running);
        world.fewest_in_service = world.fewest_in_service.min(serving);
    }

    /// Marks instances that have been up longer than `sick_after`.
    fn fall_sick(&self) {
        let Some(after) = self.sick_after else { return };
        let born = self.born.lock().unwrap();
        let mut world = self.world();
        for (name, at) in born.iter() {
            if at.elapsed() >= after {
                world.sick.insert(name.clone());
            }
        }
    }
}

impl Fleet for FakeFleet {
    fn version(&self, which: Version) -> Option<VersionInfo> {
        match which {
            Version::Wanted => Some(self.wanted.clone()),
            Version::Previous => self.previous.clone(),
        }
    }

    fn pools(&self) -> [String; 2] {
        ["web".into(), "web/b".into()]
    }

    fn balanced(&self) -> bool {
        true
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observed, ProviderError>> {
        Box::pin(async move {
            self.fall_sick();
            let world = self.world();
            Ok(Observed {
                instances: world.instances.clone(),
                in_service: world
                    .instances
                    .iter()
                    .filter(|i| !world.sick.contains(&i.name))
                    .map(|i| i.name.clone())
                    .collect(),
                weights: world.weights.clone(),
            })
        })
    }

    fn admit(&self, _names: Vec<String>) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn start(
        &self,
        version: Version,
        pool: String,
        count: usize,
    ) -> BoxFuture<'_, Result<Vec<FleetInstance>, ProviderError>> {
        Box::pin(async move {
            let id = self.version(version).expect("a known version").id;
            let started: Vec<FleetInstance> = {
                let mut world = self.world();
                let started: Vec<FleetInstance> = (0..count)
                    .map(|n| FleetInstance {
                        name: format!("i{}", world.next_name + n),
                        version: id.clone(),
                        pool: pool.clone(),
                    })
                    .collect();
                world.next_name += count;
                world.started += count;
                // Running, not yet in service.
                for instance in &started {
                    world.sick.insert(instance.name.clone());
                }
                world.instances.extend(started.clone());
                Self::note_counts(&mut world);
                started
            };
            if self.never_healthy.contains(&id) {
                tokio::time::sleep(self.healthy_deadline).await;
                let mut world = self.world();
                world
                    .instances
                    .retain(|i| !started.iter().any(|s| s.name == i.name));
                world.retired += started.len();
                return Err(ProviderError::new(format!(
                    "instance {} was not healthy within healthy_deadline",
                    started[0].name
                )));
            }
            tokio::time::sleep(self.start_time).await;
            let mut world = self.world();
            for instance in &started {
                world.sick.remove(&instance.name);
                self.born
                    .lock()
                    .unwrap()
                    .insert(instance.name.clone(), Instant::now());
            }
            Ok(started)
        })
    }

    fn retire(&self, names: Vec<String>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut world = self.world();
            // Out of service first (deregistered), then gone.
            for name in &names {
                world.sick.insert(name.clone());
            }
            Self::note_counts(&mut world);
            world.instances.retain(|i| !names.contains(&i.name));
            world.retired += names.len();
        })
    }

    fn route(&self, traffic: Traffic) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut world = self.world();
            self.count_traffic(&mut world);
            world.weights.extend(traffic.weights.clone());
            if let Some(routes) = &traffic.routes {
                world.routes = routes.clone();
            }
            world.traffic.push(traffic);
            Ok(())
        })
    }

    fn totals(&self, pool: String) -> BoxFuture<'_, Result<PoolTotals, ProviderError>> {
        Box::pin(async move {
            if self.unreadable {
                return Err(ProviderError::new("connection refused"));
            }
            let mut world = self.world();
            self.count_traffic(&mut world);
            Ok(world.totals.get(&pool).cloned().unwrap_or_default())
        })
    }

    fn record(&self, names: &[String]) -> Attributes {
        Attributes::from([
            ("version".to_string(), json!(self.wanted.id)),
            ("instances".to_string(), json!(names)),
        ])
    }
}

fn spec(replicas: usize, strategy: Strategy) -> DeploymentSpec {
    DeploymentSpec {
        provider: "fake".into(),
        replicas,
        min_ready: Duration::ZERO,
        healthy_deadline: Duration::from_secs(60),
        progress_deadline: Duration::from_secs(3600),
        drain: Duration::ZERO,
        auto_rollback: true,
        health: Health::default(),
        strategy,
    }
}

fn rolling(surge: Amount, unavailable: Amount) -> Strategy {
    Strategy::Rolling {
        max_surge: surge,
        max_unavailable: unavailable,
    }
}

fn analysis() -> Analysis {
    Analysis {
        interval: Duration::from_secs(10),
        failure_limit: 1,
        inconclusive_limit: 1,
        consecutive_error_limit: 2,
        min_requests: 100,
        max_error_rate: Some(0.05),
        max_p50_latency: None,
        max_p99_latency: None,
        queries: Vec::new(),
    }
}

fn canary(steps: &[(u32, u64)], analysis: Option<Analysis>) -> Strategy {
    Strategy::Canary {
        steps: steps
            .iter()
            .map(|(weight, pause)| CanaryStep {
                weight: *weight,
                matching: None,
                pause: Duration::from_secs(*pause),
                gate: false,
            })
            .collect(),
        analysis,
    }
}

fn assert_says(error: &ProviderError, part: &str) {
    assert!(error.message.contains(part), "{}", error.message);
}

/// What a rollout did: its result, the progress lines, the records it
/// made, and how long it took on the paused clock.
struct Ran {
    result: Result<Attributes, ProviderError>,
    paused: Option<RolloutRecord>,
    lines: Vec<String>,
    records: Vec<RolloutRecord>,
    took: Duration,
}

/// Runs the rollout as an apply would, with `recorded` as the state's
/// record and `promote` as `infra rollout promote` asks.
async fn run_with(
    spec: &DeploymentSpec,
    fleet: &FakeFleet,
    recorded: Option<RolloutRecord>,
    promote: bool,
) -> Ran {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let lines = lines.clone();
        Progress::new(move |line| lines.lock().unwrap().push(line.to_string()))
    };
    let records = Arc::new(Mutex::new(Vec::new()));
    let on_record = {
        let records = records.clone();
        move |record: &RolloutRecord| records.lock().unwrap().push(record.clone())
    };
    let control = Control {
        recorded,
        promote,
        on_record: &on_record,
        queries: &fleet.queries,
    };
    let started = Instant::now();
    let outcome = execute(spec, fleet, &progress, &control).await;
    let took = started.elapsed();
    let (result, paused) = match outcome {
        Ok(Outcome::Done(state)) => (Ok(state), None),
        Ok(Outcome::Paused(record)) => (Ok(Attributes::new()), Some(record)),
        Err(error) => (Err(error), None),
    };
    Ran {
        result,
        paused,
        lines: lines.lock().unwrap().clone(),
        records: records.lock().unwrap().clone(),
        took,
    }
}

/// Runs the rollout and returns its result, the progress lines and how
/// long it took on the paused clock.
async fn run(
    spec: &DeploymentSpec,
    fleet: &FakeFleet,
) -> (Result<Attributes, ProviderError>, Vec<String>, Duration) {
    let ran = run_with(spec, fleet, None, false).await;
    assert_eq!(ran.paused, None, "no gate in this rollout");
    (ran.result, ran.lines, ran.took)
}

#[tokio::test(start_paused = true)]
async fn rolling_with_surge_never_drops_below_replicas() {
    let fleet = FakeFleet::running_v1(4, 4);
    let spec = spec(4, rolling(Amount::Count(1), Amount::Count(0)));
    let (result, _, took) = run(&spec, &fleet).await;
    result.unwrap();
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 4)]));
    let world = fleet.world();
    assert_eq!(world.peak, 5, "replicas + max_surge");
    assert_eq!(world.fewest_in_service, 4, "replicas - max_unavailable");
    assert_eq!((world.started, world.retired), (4, 4));
    // Four batches of one, each a start.
    assert_eq!(took, Duration::from_secs(40));
}

#[tokio::test(start_paused = true)]
async fn rolling_with_unavailable_only_never_exceeds_replicas() {
    let fleet = FakeFleet::running_v1(4, 4);
    let spec = spec(4, rolling(Amount::Count(0), Amount::Count(2)));
    let (result, _, took) = run(&spec, &fleet).await;
    result.unwrap();
    let world = fleet.world();
    assert_eq!(world.peak, 4);
    assert_eq!(world.fewest_in_service, 2);
    assert_eq!(took, Duration::from_secs(20), "two batches of two");
}

#[tokio::test(start_paused = true)]
async fn rolling_shares_of_replicas_round_as_kubernetes_does() {
    // 50% of 5: a surge of 3 (up), 2 unavailable (down).
    let fleet = FakeFleet::running_v1(5, 5);
    let spec = spec(5, rolling(Amount::Percent(50), Amount::Percent(50)));
    let (result, _, took) = run(&spec, &fleet).await;
    result.unwrap();
    let world = fleet.world();
    assert_eq!(world.peak, 8);
    assert_eq!(world.fewest_in_service, 3);
    assert_eq!(
        took,
        Duration::from_secs(10),
        "one batch: 5 started at once"
    );
    drop(world);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 5)]));
}

#[tokio::test(start_paused = true)]
async fn rolling_zero_surge_and_unavailable_still_progresses() {
    let fleet = FakeFleet::running_v1(2, 2);
    let spec = spec(2, rolling(Amount::Count(0), Amount::Count(0)));
    let (result, _, _) = run(&spec, &fleet).await;
    result.unwrap();
    assert_eq!(fleet.world().fewest_in_service, 1, "one may be unavailable");
}

#[tokio::test(start_paused = true)]
async fn a_scale_change_starts_or_retires_the_difference_only() {
    let fleet = FakeFleet::running_v1(2, 5);
    // Same version: only a scale change.
    let fleet = FakeFleet {
        wanted: VersionInfo {
            id: V1.into(),
            replicas: 5,
        },
        ..fleet
    };
    let (result, _, took) = run(&spec(5, Strategy::default()), &fleet).await;
    result.unwrap();
    let counts = {
        let world = fleet.world();
        (world.started, world.retired)
    };
    assert_eq!(counts, (3, 0));
    assert_eq!(took, Duration::from_secs(10));
    let (result, _, _) = run(&spec(1, Strategy::default()), &fleet).await;
    result.unwrap();
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 1)]));
}

#[tokio::test(start_paused = true)]
async fn a_never_healthy_version_stops_at_the_first_batch_and_rolls_back() {
    let mut fleet = FakeFleet::running_v1(3, 3);
    fleet.never_healthy.insert(V2.into());
    let spec = spec(3, rolling(Amount::Count(1), Amount::Count(0)));
    let (result, lines, took) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert!(
        error
            .message
            .contains("not healthy within healthy_deadline"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("rolled back: 3 instance(s) of the previous version serve again"),
        "{}",
        error.message
    );
    assert!(
        lines.iter().any(|l| l.starts_with("rolling back:")),
        "{lines:?}"
    );
    let world = fleet.world();
    assert_eq!(world.started, 1, "one batch only");
    assert_eq!(
        world.fewest_in_service, 3,
        "no old instance left before the new was healthy"
    );
    assert_eq!(took, Duration::from_secs(60), "the healthy_deadline");
    drop(world);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 3)]));
}

#[tokio::test(start_paused = true)]
async fn without_auto_rollback_a_failure_is_left_as_it_is() {
    let mut fleet = FakeFleet::running_v1(3, 3);
    fleet.never_healthy.insert(V2.into());
    let mut spec = spec(3, rolling(Amount::Count(1), Amount::Count(0)));
    spec.auto_rollback = false;
    let (result, lines, _) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert!(!error.message.contains("rolled back"), "{}", error.message);
    assert!(
        !lines.iter().any(|l| l.starts_with("rolling back")),
        "{lines:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_progress_deadline_cuts_a_slow_rollout_and_rolls_it_back() {
    let mut fleet = FakeFleet::running_v1(4, 4);
    fleet.start_time = Duration::from_secs(30);
    let mut spec = spec(4, rolling(Amount::Count(1), Amount::Count(0)));
    spec.progress_deadline = Duration::from_secs(75);
    let (result, _, took) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert!(
        error
            .message
            .contains("did not finish within progress_deadline (75s)"),
        "{}",
        error.message
    );
    assert_says(&error, "rolled back: 4 instance(s)");
    // Cut at 75 s; the rollback starts the 2 old instances replaced by then
    // (30 s), and retires the new.
    assert_eq!(took, Duration::from_secs(105));
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 4)]));
    assert_eq!(fleet.world().fewest_in_service, 4);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_rollout_is_finished_not_doubled() {
    // A crash left 2 of v2 beside 2 of v1 (of 3 wanted).
    let fleet = FakeFleet::running_v1(2, 3);
    {
        let mut world = fleet.world();
        for name in ["n1", "n2"] {
            world.instances.push(FleetInstance {
                name: name.into(),
                version: V2.into(),
                pool: "web".into(),
            });
        }
    }
    let spec = spec(3, rolling(Amount::Count(1), Amount::Count(0)));
    let (result, _, _) = run(&spec, &fleet).await;
    let recorded = result.unwrap();
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 3)]));
    assert_eq!(fleet.world().started, 1, "only the missing one");
    let names = recorded["instances"].as_array().unwrap();
    assert!(
        names.contains(&json!("n1")) && names.contains(&json!("n2")),
        "{names:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn blue_green_switches_once_and_keeps_blue_for_keep_blue() {
    let fleet = FakeFleet::running_v1(3, 3);
    let spec = spec(
        3,
        Strategy::BlueGreen {
            keep_blue: Duration::from_secs(30),
            auto_promote: true,
            analysis: None,
            preview: None,
        },
    );
    let (result, lines, took) = run(&spec, &fleet).await;
    result.unwrap();
    let world = fleet.world();
    // The idle pool set to 0 before anything starts in it, then one switch.
    assert_eq!(world.traffic.len(), 2, "{:?}", world.traffic);
    assert_eq!(
        world.traffic[0].weights,
        BTreeMap::from([("web/b".into(), 0)])
    );
    assert_eq!(
        world.traffic[1].weights,
        BTreeMap::from([("web".into(), 0), ("web/b".into(), 100)])
    );
    assert_eq!(world.peak, 6);
    assert_eq!(world.fewest_in_service, 3);
    assert!(world.instances.iter().all(|i| i.pool == "web/b"));
    // All green at once (10 s), then blue kept 30 s.
    assert_eq!(took, Duration::from_secs(40));
    assert!(
        lines.iter().any(|l| l.contains("kept for 30s")),
        "{lines:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn blue_green_switches_back_when_green_turns_unhealthy() {
    let mut fleet = FakeFleet::running_v1(3, 3);
    fleet.sick_after = Some(Duration::from_secs(12));
    let spec = spec(
        3,
        Strategy::BlueGreen {
            keep_blue: Duration::from_secs(30),
            auto_promote: true,
            analysis: None,
            preview: None,
        },
    );
    let (result, _, _) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert_says(&error, "turned unhealthy");
    assert_says(&error, "rolled back: 3 instance(s)");
    let world = fleet.world();
    let last = world.traffic.last().unwrap();
    assert_eq!(
        last.weights,
        BTreeMap::from([("web".into(), 100), ("web/b".into(), 0)]),
        "all traffic back to blue"
    );
    // Blue was never retired: nothing had to be started again.
    assert_eq!(world.started, 3);
    assert!(world.instances.iter().all(|i| i.version == V1));
}

#[tokio::test(start_paused = true)]
async fn a_good_canary_goes_through_every_step_then_is_promoted() {
    let fleet = FakeFleet::running_v1(4, 4);
    let spec = spec(4, canary(&[(25, 30), (50, 30)], Some(analysis())));
    let (result, lines, took) = run(&spec, &fleet).await;
    result.unwrap();
    let world = fleet.world();
    let weights: Vec<_> = world.traffic.iter().map(|t| t.weights.clone()).collect();
    assert_eq!(
        weights,
        vec![
            BTreeMap::from([("web/b".into(), 0)]),
            BTreeMap::from([("web".into(), 75), ("web/b".into(), 25)]),
            BTreeMap::from([("web".into(), 50), ("web/b".into(), 50)]),
            BTreeMap::from([("web".into(), 0), ("web/b".into(), 100)]),
        ]
    );
    drop(world);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 4)]));
    let passed = lines
        .iter()
        .filter(|l| l.starts_with("analysis: passed"))
        .count();
    assert_eq!(passed, 6, "three readings a pause: {lines:?}");
    // 1 canary (10 s) + 30 s + 1 more (10 s) + 30 s + the other 2 (10 s).
    assert_eq!(took, Duration::from_secs(90));
}

#[tokio::test(start_paused = true)]
async fn a_bad_canary_fails_at_the_first_reading_and_rolls_back() {
    let mut fleet = FakeFleet::running_v1(4, 4);
    fleet.error_rate.insert(V2.into(), 0.2);
    let spec = spec(4, canary(&[(25, 60), (50, 60)], Some(analysis())));
    let (result, _, took) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert_says(&error, "canary step 1 (weight 25%)");
    assert_says(&error, "error rate 0.200");
    assert_says(&error, "max_error_rate 0.05");
    assert_says(&error, "rolled back: 4 instance(s)");
    // The canary start (10 s) and one interval.
    assert_eq!(took, Duration::from_secs(20));
    let world = fleet.world();
    assert_eq!(
        world.traffic.last().unwrap().weights,
        BTreeMap::from([("web".into(), 100), ("web/b".into(), 0)])
    );
    assert_eq!(world.fewest_in_service, 4);
    drop(world);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 4)]));
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_the_second_step_rolls_back_too() {
    let mut fleet = FakeFleet::running_v1(4, 4);
    fleet.error_rate.insert(V2.into(), 0.2);
    // Good through step 1 (10 s start + 20 s pause), bad from then on.
    fleet.bad_from = Some(Instant::now() + Duration::from_secs(31));
    let spec = spec(4, canary(&[(25, 20), (50, 60)], Some(analysis())));
    let (result, lines, _) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert_says(&error, "canary step 2 (weight 50%)");
    assert_says(&error, "rolled back: 4 instance(s)");
    assert!(
        lines.iter().any(|l| l.starts_with("analysis: passed")),
        "{lines:?}"
    );
    let world = fleet.world();
    assert_eq!(world.started, 2, "the canaries of steps 1 and 2");
    assert_eq!(world.fewest_in_service, 4);
    drop(world);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 4)]));
}

#[tokio::test(start_paused = true)]
async fn too_few_requests_are_inconclusive_and_never_promote() {
    let mut fleet = FakeFleet::running_v1(4, 4);
    // 2 requests a second: 5 in a 10 s reading at 25%.
    fleet.rps = 2.0;
    let spec = spec(4, canary(&[(25, 60)], Some(analysis())));
    let (result, lines, _) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert!(
        error
            .message
            .contains("analysis inconclusive 2 times (inconclusive_limit 1)"),
        "{}",
        error.message
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("analysis: inconclusive")),
        "{lines:?}"
    );
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 4)]));
}

#[tokio::test(start_paused = true)]
async fn unreadable_counters_abort_after_the_consecutive_error_limit() {
    let mut fleet = FakeFleet::running_v1(2, 2);
    fleet.unreadable = true;
    let spec = spec(2, canary(&[(50, 600)], Some(analysis())));
    let (result, _, took) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert_says(&error, "could not be read 3 times in a row");
    // Start (10 s) and three intervals, not the whole pause.
    assert_eq!(took, Duration::from_secs(40));
}

#[tokio::test(start_paused = true)]
async fn a_header_routed_canary_routes_then_clears_the_route() {
    let fleet = FakeFleet::running_v1(2, 2);
    let spec = spec(
        2,
        Strategy::Canary {
            steps: vec![CanaryStep {
                weight: 0,
                matching: Some(Matching {
                    header: "X-Org".into(),
                    values: vec!["acme".into()],
                    cookie: None,
                    percent: None,
                }),
                pause: Duration::from_secs(5),
                gate: false,
            }],
            analysis: None,
        },
    );
    let (result, _, _) = run(&spec, &fleet).await;
    result.unwrap();
    let world = fleet.world();
    let step = &world.traffic[1];
    assert_eq!(
        step.weights,
        BTreeMap::from([("web".into(), 100), ("web/b".into(), 0)])
    );
    let routes = step.routes.as_ref().unwrap();
    assert_eq!(routes["web/b"].values, vec!["acme".to_string()]);
    assert_eq!(world.traffic.last().unwrap().routes, Some(BTreeMap::new()));
    assert!(world.routes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_new_deployment_starts_its_replicas_in_the_first_pool() {
    let fleet = FakeFleet {
        previous: None,
        ..FakeFleet::running_v1(0, 3)
    };
    let (result, _, took) = run(&spec(3, Strategy::default()), &fleet).await;
    result.unwrap();
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 3)]));
    assert!(fleet.world().instances.iter().all(|i| i.pool == "web"));
    assert_eq!(took, Duration::from_secs(10));
    // Nothing to go back to when a new deployment fails.
    let mut fleet = FakeFleet {
        previous: None,
        ..FakeFleet::running_v1(0, 3)
    };
    fleet.never_healthy.insert(V2.into());
    let (result, _, _) = run(&spec(3, Strategy::default()), &fleet).await;
    assert!(!result.unwrap_err().message.contains("rolled back"));
}

fn gated_canary() -> Strategy {
    let mut strategy = canary(&[(25, 20), (50, 0), (75, 20)], None);
    if let Strategy::Canary { steps, .. } = &mut strategy {
        steps[1].gate = true;
    }
    strategy
}

#[tokio::test(start_paused = true)]
async fn a_canary_waits_at_its_gate_until_promoted_and_resumes_there() {
    let fleet = FakeFleet::running_v1(4, 4);
    let spec = spec(4, gated_canary());
    // The first apply: step 1, then the gate at step 2 (50%).
    let first = run_with(&spec, &fleet, None, false).await;
    let paused = first.paused.clone().expect("paused at the gate");
    assert_eq!(
        (paused.status, paused.step, paused.steps),
        (Status::Paused, 1, 3)
    );
    assert_eq!(paused.at, "weight 50% to the new version");
    assert_eq!(
        first.took,
        Duration::from_secs(40),
        "2 starts, one 20 s pause"
    );
    assert!(
        first
            .lines
            .iter()
            .any(|l| l.contains("infra rollout promote")),
        "{:?}",
        first.lines
    );
    assert_eq!(
        fleet.world().weights,
        BTreeMap::from([("web".into(), 50), ("web/b".into(), 50)])
    );
    assert_eq!(
        fleet.versions_serving(),
        BTreeMap::from([(V1.into(), 4), (V2.into(), 2)])
    );
    // Another apply: back at the gate at once, step 1 not repeated.
    let again = run_with(&spec, &fleet, Some(paused.clone()), false).await;
    assert_eq!(again.paused.as_ref().map(|r| r.step), Some(1));
    assert_eq!(again.took, Duration::ZERO);
    assert_eq!(fleet.world().started, 2, "no instance started twice");
    // Promoted: through the gate, step 3 (75%, 20 s), then the switch.
    let promoted = run_with(&spec, &fleet, Some(paused), true).await;
    promoted.result.unwrap();
    assert_eq!(promoted.paused, None);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 4)]));
    // 1 more canary for 75% (10 s), 20 s, the last one (10 s).
    assert_eq!(promoted.took, Duration::from_secs(40));
    let steps: Vec<usize> = promoted.records.iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![2], "recorded as running at step 3");
}

#[tokio::test(start_paused = true)]
async fn promote_opens_one_gate_only() {
    let fleet = FakeFleet::running_v1(2, 2);
    let mut strategy = canary(&[(50, 0), (100, 0)], None);
    if let Strategy::Canary { steps, .. } = &mut strategy {
        steps[0].gate = true;
        steps[1].gate = true;
    }
    let spec = spec(2, strategy);
    let ran = run_with(&spec, &fleet, None, true).await;
    let paused = ran.paused.expect("stopped at the second gate");
    assert_eq!(paused.step, 1);
}

#[tokio::test(start_paused = true)]
async fn blue_green_without_auto_promote_waits_with_green_idle() {
    let fleet = FakeFleet::running_v1(3, 3);
    let spec = spec(
        3,
        Strategy::BlueGreen {
            keep_blue: Duration::from_secs(30),
            auto_promote: false,
            analysis: None,
            preview: None,
        },
    );
    let first = run_with(&spec, &fleet, None, false).await;
    let paused = first.paused.expect("paused before the switch");
    assert_eq!((paused.status, paused.step), (Status::Paused, 0));
    assert_eq!(
        fleet.world().weights,
        BTreeMap::from([("web".into(), 100), ("web/b".into(), 0)]),
        "green sent nothing"
    );
    assert_eq!(
        fleet.versions_serving(),
        BTreeMap::from([(V1.into(), 3), (V2.into(), 3)])
    );
    let promoted = run_with(&spec, &fleet, Some(paused), true).await;
    promoted.result.unwrap();
    assert_eq!(
        promoted.took,
        Duration::from_secs(30),
        "the switch, then keep_blue"
    );
    assert_eq!(fleet.world().started, 3, "green kept, not started again");
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 3)]));
}

#[tokio::test(start_paused = true)]
async fn abort_at_a_gate_restores_the_previous_version() {
    let fleet = FakeFleet::running_v1(4, 4);
    let spec = spec(4, gated_canary());
    let first = run_with(&spec, &fleet, None, false).await;
    assert!(first.paused.is_some());
    let progress = Progress::default();
    let serving = abort(&spec, &fleet, &progress).await.unwrap();
    assert_eq!(serving, 4);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 4)]));
    let world = fleet.world();
    assert_eq!(
        world.traffic.last().unwrap().weights,
        BTreeMap::from([("web".into(), 100), ("web/b".into(), 0)])
    );
    assert_eq!(world.fewest_in_service, 4);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_canary_resumes_at_its_recorded_step() {
    let fleet = FakeFleet::running_v1(4, 4);
    let spec = spec(4, canary(&[(25, 600), (50, 20)], None));
    let recorded = RolloutRecord {
        status: Status::Running,
        strategy: "canary".into(),
        to: V2.into(),
        step: 1,
        steps: 2,
        at: "weight 50% to the new version".into(),
        readings: Vec::new(),
    };
    let ran = run_with(&spec, &fleet, Some(recorded.clone()), false).await;
    ran.result.unwrap();
    // Not the 600 s pause of step 1: 2 canaries, 20 s, 2 more.
    assert_eq!(ran.took, Duration::from_secs(40));
    // A record of another version is not resumed.
    let fleet = FakeFleet::running_v1(4, 4);
    let other = RolloutRecord {
        to: "v0".into(),
        ..recorded
    };
    let ran = run_with(&spec, &fleet, Some(other), false).await;
    ran.result.unwrap();
    // 1 canary (10 s), 600 s, 1 more (10 s), 20 s, the other 2 (10 s).
    assert_eq!(ran.took, Duration::from_secs(650));
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_rollout_is_recorded_with_its_step_and_readings() {
    let mut fleet = FakeFleet::running_v1(4, 4);
    fleet.error_rate.insert(V2.into(), 0.2);
    let spec = spec(4, canary(&[(25, 60)], Some(analysis())));
    let ran = run_with(&spec, &fleet, None, false).await;
    assert!(ran.result.is_err());
    let last = ran.records.last().expect("records");
    assert_eq!((last.status, last.step), (Status::RolledBack, 0));
    assert!(last.at.contains("max_error_rate"), "{}", last.at);
    assert_eq!(last.readings.len(), 1);
    assert!(
        last.readings[0].starts_with("failed: error rate 0.200"),
        "{:?}",
        last.readings
    );
}

#[tokio::test(start_paused = true)]
async fn a_sticky_step_routes_its_share_of_customers_and_nothing_by_weight() {
    let fleet = FakeFleet::running_v1(4, 4);
    let spec = spec(
        4,
        Strategy::Canary {
            steps: vec![CanaryStep {
                weight: 50,
                matching: Some(Matching {
                    header: "Cookie".into(),
                    values: Vec::new(),
                    cookie: Some("session".into()),
                    percent: Some(50),
                }),
                pause: Duration::from_secs(5),
                gate: false,
            }],
            analysis: None,
        },
    );
    let (result, lines, _) = run(&spec, &fleet).await;
    result.unwrap();
    let world = fleet.world();
    let step = &world.traffic[1];
    assert_eq!(
        step.weights,
        BTreeMap::from([("web".into(), 100), ("web/b".into(), 0)])
    );
    let route = &step.routes.as_ref().unwrap()["web/b"];
    assert_eq!(
        (route.cookie.as_deref(), route.percent),
        (Some("session"), Some(50))
    );
    // Half the customers: two canaries of four, started before the step.
    assert_eq!(world.started, 4);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("50% of cookie session (sticky)")),
        "{lines:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_pause_says_how_long_is_left() {
    let fleet = FakeFleet::running_v1(2, 2);
    let spec = spec(2, canary(&[(50, 35)], None));
    let (result, lines, took) = run(&spec, &fleet).await;
    result.unwrap();
    let left: Vec<&String> = lines
        .iter()
        .filter(|l| l.ends_with("left in the pause"))
        .collect();
    assert_eq!(
        left,
        ["25s left in the pause", "15s left in the pause"],
        "{lines:?}"
    );
    assert_eq!(
        took,
        Duration::from_secs(55),
        "2 starts and the pause, no more"
    );
}

#[tokio::test(start_paused = true)]
async fn blue_green_analysis_judges_green_after_the_switch_and_switches_back() {
    let blue_green = |analysis| {
        spec(
            3,
            Strategy::BlueGreen {
                keep_blue: Duration::from_secs(30),
                auto_promote: true,
                analysis,
                preview: None,
            },
        )
    };
    // A good green: three readings pass while blue is kept.
    let fleet = FakeFleet::running_v1(3, 3);
    let (result, lines, took) = run(&blue_green(Some(analysis())), &fleet).await;
    result.unwrap();
    assert_eq!(took, Duration::from_secs(40));
    let passed = lines
        .iter()
        .filter(|l| l.starts_with("analysis: passed"))
        .count();
    assert_eq!(passed, 3, "{lines:?}");
    // A bad one: the first reading fails, traffic goes back to blue.
    let mut fleet = FakeFleet::running_v1(3, 3);
    fleet.error_rate.insert(V2.into(), 0.2);
    let (result, _, took) = run(&blue_green(Some(analysis())), &fleet).await;
    let error = result.unwrap_err();
    assert_says(&error, "after the switch: analysis failed");
    assert_says(&error, "rolled back: 3 instance(s)");
    assert_eq!(took, Duration::from_secs(20), "the start, one interval");
    assert_eq!(fleet.world().started, 3, "blue kept: nothing started again");
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 3)]));
}

#[tokio::test(start_paused = true)]
async fn a_newer_version_retires_an_abandoned_canary_first() {
    // v2 waited at a gate (2 canaries at 50% in the other pool); the
    // configuration now asks for v3.
    let mut fleet = FakeFleet::running_v1(4, 4);
    fleet.wanted.id = "v3".into();
    {
        let mut world = fleet.world();
        for name in ["c1", "c2"] {
            world.instances.push(FleetInstance {
                name: name.into(),
                version: V2.into(),
                pool: "web/b".into(),
            });
        }
        world.weights = BTreeMap::from([("web".into(), 50), ("web/b".into(), 50)]);
    }
    let spec = spec(4, canary(&[(25, 10)], None));
    let (result, lines, _) = run(&spec, &fleet).await;
    result.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l == "retiring 2 instance(s) of an abandoned version first"),
        "{lines:?}"
    );
    let world = fleet.world();
    // All traffic back on v1 before the abandoned canaries went.
    assert_eq!(
        world.traffic[0].weights,
        BTreeMap::from([("web".into(), 100), ("web/b".into(), 0)])
    );
    assert!(
        world
            .instances
            .iter()
            .all(|i| i.version == "v3" && i.pool == "web/b")
    );
    assert_eq!(world.instances.len(), 4);
}

fn previewed(analysis: Option<Analysis>) -> DeploymentSpec {
    spec(
        3,
        Strategy::BlueGreen {
            keep_blue: Duration::from_secs(30),
            auto_promote: true,
            analysis,
            preview: Some(Preview {
                matching: Matching {
                    header: "X-Preview".into(),
                    values: vec!["1".into()],
                    cookie: None,
                    percent: None,
                },
                pause: Duration::from_secs(20),
            }),
        },
    )
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_preview_reaches_green_before_the_switch() {
    let fleet = FakeFleet::running_v1(3, 3);
    let (result, lines, took) = run(&previewed(Some(analysis())), &fleet).await;
    result.unwrap();
    let world = fleet.world();
    // Green idle, then the preview route, then the switch (routes cleared).
    let preview = world.traffic[1].routes.as_ref().unwrap();
    assert_eq!(preview["web/b"].header, "X-Preview");
    assert!(world.traffic[1].weights.is_empty(), "no share by weight");
    assert_eq!(world.traffic[2].routes, Some(BTreeMap::new()));
    let passed = lines
        .iter()
        .filter(|l| l.starts_with("analysis: passed"))
        .count();
    // 200 preview requests in 10 s pass twice; then 3 readings after.
    assert_eq!(passed, 5, "{lines:?}");
    assert_eq!(took, Duration::from_secs(60), "start, preview, keep_blue");
}

#[tokio::test(start_paused = true)]
async fn a_green_failing_its_preview_never_gets_the_traffic() {
    let mut fleet = FakeFleet::running_v1(3, 3);
    fleet.error_rate.insert(V2.into(), 0.2);
    let (result, _, _) = run(&previewed(Some(analysis())), &fleet).await;
    let error = result.unwrap_err();
    assert_says(&error, "before the switch (preview): analysis failed");
    assert_says(&error, "rolled back: 3 instance(s)");
    let world = fleet.world();
    assert!(
        world
            .traffic
            .iter()
            .all(|t| t.weights.get("web/b").is_none_or(|w| *w == 0)),
        "green never weighted: {:?}",
        world.traffic
    );
    assert_eq!(world.fewest_in_service, 3);
    drop(world);
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 3)]));
}

/// The analysis of `analysis()` without the load balancer's error rate,
/// and one PromQL query bounded by `max = 0.01`.
fn query_analysis() -> Analysis {
    Analysis {
        max_error_rate: None,
        queries: vec![Query {
            name: "error_rate".into(),
            prometheus: Some("http://127.0.0.1:9090".into()),
            expr: "sum(rate(errors_total{version=\"v2\"}[1m]))".into(),
            max: Some(0.01),
            min: None,
        }],
        ..analysis()
    }
}

#[tokio::test(start_paused = true)]
async fn a_canary_whose_query_breaches_its_bound_is_rolled_back() {
    let mut fleet = FakeFleet::running_v1(4, 4);
    // The load balancer sees no errors: only the query can fail it.
    fleet.queries.answer = Some(Ok(Answer::Value(0.5)));
    let spec = spec(4, canary(&[(25, 60)], Some(query_analysis())));
    let (result, _, took) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert_says(&error, "query error_rate = 0.5 is above max 0.01");
    assert_says(&error, "rolled back: 4 instance(s)");
    assert_eq!(took, Duration::from_secs(20), "the first reading fails it");
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 4)]));
    let asked = fleet.queries.asked.lock().unwrap();
    assert_eq!(asked[0].0, "http://127.0.0.1:9090");
}

#[tokio::test(start_paused = true)]
async fn a_query_that_passes_lets_the_canary_through() {
    let mut fleet = FakeFleet::running_v1(4, 4);
    fleet.queries.answer = Some(Ok(Answer::Value(0.001)));
    let spec = spec(4, canary(&[(25, 20)], Some(query_analysis())));
    let (result, lines, _) = run(&spec, &fleet).await;
    result.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("analysis: passed") && l.contains("error_rate = 0.001")),
        "{lines:?}"
    );
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V2.into(), 4)]));
}

#[tokio::test(start_paused = true)]
async fn an_empty_vector_or_nan_is_inconclusive_and_never_promotes() {
    for answer in [Answer::Empty, Answer::Value(f64::NAN)] {
        let mut fleet = FakeFleet::running_v1(4, 4);
        fleet.queries.answer = Some(Ok(answer));
        let spec = spec(4, canary(&[(25, 60)], Some(query_analysis())));
        let (result, lines, _) = run(&spec, &fleet).await;
        let error = result.unwrap_err();
        assert_says(
            &error,
            "analysis inconclusive 2 times (inconclusive_limit 1)",
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("inconclusive: query error_rate returned")),
            "{lines:?}"
        );
        assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 4)]));
    }
}

#[tokio::test(start_paused = true)]
async fn a_query_that_cannot_be_asked_counts_toward_the_consecutive_error_limit() {
    let mut fleet = FakeFleet::running_v1(2, 2);
    fleet.queries.answer = Some(Err(
        "Prometheus at http://127.0.0.1:9090 does not answer".into()
    ));
    let spec = spec(2, canary(&[(50, 600)], Some(query_analysis())));
    let (result, lines, took) = run(&spec, &fleet).await;
    let error = result.unwrap_err();
    assert_says(
        &error,
        "could not be read 3 times in a row (consecutive_error_limit 2)",
    );
    assert_says(
        &error,
        "query error_rate: Prometheus at http://127.0.0.1:9090 does not answer",
    );
    assert!(
        lines.iter().any(|l| l.starts_with("analysis: unreadable")),
        "{lines:?}"
    );
    // Start (10 s) and three intervals, not the whole pause.
    assert_eq!(took, Duration::from_secs(40));
    assert_eq!(fleet.versions_serving(), BTreeMap::from([(V1.into(), 2)]));
}
