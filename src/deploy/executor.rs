//! Carrying out a deployment's change on its fleet: the engine's side of
//! a rollout. The strategy the spec names decides what the fleet does
//! next (rolling batches within surge and unavailable; blue/green's idle
//! pool and one switch; a canary's steps, watched by the analysis), the
//! whole change runs within `progress_deadline`, and a failed rollout is
//! rolled back: traffic to the previous version at once, the previous
//! version at full strength, and only then the new version's instances
//! retired. The fleet ([`Fleet`], in the provider SDK) supplies the
//! primitives; every wait here is a tokio timer, so the tests drive the
//! strategies on a fake fleet with a paused clock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use infra_provider_sdk::{
    Attributes, Fleet, FleetInstance, Progress, ProviderError, Route, Traffic, Version, VersionInfo,
};
use tokio::time::{Instant, sleep, timeout};

use super::analysis::{Analysis, PrometheusApi, Queries, Verdict, combine};
use super::record::{RolloutRecord, Status};
use super::rollout::{canary_instances, rolling_round};
use super::spec::DeploymentSpec;
use super::strategy::{CanaryStep, Preview, Strategy};

/// The weight of a pool that takes all the traffic.
const FULL: u32 = 100;

/// How often a long pause without analysis says how long is left.
const PAUSE_REPORT_EVERY: Duration = Duration::from_secs(10);

/// How often blue/green looks at the new version while it keeps the old.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// How a run treats the rollout's record and its manual gates.
pub struct Control<'a> {
    /// The rollout as the state last recorded it: a rollout of the same
    /// version that was running (interrupted) or paused resumes at its
    /// step.
    pub recorded: Option<RolloutRecord>,
    /// `infra rollout promote`: the first manual gate this run reaches
    /// lets it through.
    pub promote: bool,
    /// Called with each new record, for the state.
    pub on_record: &'a (dyn Fn(&RolloutRecord) + Send + Sync),
    /// Where the analysis asks its PromQL queries
    /// ([`super::analysis::PrometheusApi`]).
    pub queries: &'a dyn Queries,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The wanted version serves: the state to record.
    Done(Attributes),
    /// Waiting at a manual gate, both versions running.
    Paused(RolloutRecord),
}

/// Brings the fleet to the wanted version as `spec` says, reporting each
/// step to `progress` and recording where it stands through `control`.
/// A failure after which the rollback succeeded still fails, and says
/// what serves now.
pub async fn execute(
    spec: &DeploymentSpec,
    fleet: &dyn Fleet,
    progress: &Progress,
    control: &Control<'_>,
) -> Result<Outcome, ProviderError> {
    let run = Run::new(spec, fleet, progress, control);
    let deadline = spec.progress_deadline;
    let error = match timeout(deadline, run.converge()).await {
        Ok(Ok(Some(serving))) => return Ok(Outcome::Done(fleet.record(&names(&serving)))),
        Ok(Ok(None)) => return Ok(Outcome::Paused(run.record())),
        Ok(Err(error)) => error,
        Err(_) => failed(format!(
            "the change did not finish within progress_deadline ({deadline:?})"
        )),
    };
    let wanted = fleet.version(Version::Wanted);
    let previous = match fleet.version(Version::Previous) {
        Some(previous)
            if spec.auto_rollback && Some(&previous.id) != wanted.map(|w| w.id).as_ref() =>
        {
            previous
        }
        // Nothing to go back to: a new deployment, or not a new version.
        _ => {
            run.finish(Status::Failed, &error);
            return Err(error);
        }
    };
    progress.report(&format!(
        "rolling back: {}",
        error.message.lines().next().unwrap_or("")
    ));
    let mut error = error;
    match run.rollback(&previous).await {
        Ok(serving) => {
            error.message = format!(
                "{}\nrolled back: {serving} instance(s) of the previous version serve again; the new version's instances are stopped",
                error.message
            );
            run.finish(Status::RolledBack, &error);
        }
        Err(rollback) => {
            error.message = format!(
                "{}\nand the rollback failed: {}",
                error.message, rollback.message
            );
            run.finish(Status::Failed, &error);
        }
    }
    Err(error)
}

/// `infra rollout abort`: all traffic back to the previous version at
/// once, the previous version at full strength, every other instance
/// retired. Returns how many instances serve.
pub async fn abort(
    spec: &DeploymentSpec,
    fleet: &dyn Fleet,
    progress: &Progress,
) -> Result<usize, ProviderError> {
    let on_record = |_: &RolloutRecord| {};
    let control = Control {
        recorded: None,
        promote: false,
        on_record: &on_record,
        queries: &PrometheusApi,
    };
    let run = Run::new(spec, fleet, progress, &control);
    let previous = fleet
        .version(Version::Previous)
        .ok_or_else(|| failed("the state records no previous version to go back to".into()))?;
    progress.report("aborting: traffic back to the previous version");
    run.rollback(&previous).await
}

fn failed(message: String) -> ProviderError {
    ProviderError::new(message).with_code("DeploymentFailed")
}

fn names(instances: &[FleetInstance]) -> Vec<String> {
    instances.iter().map(|i| i.name.clone()).collect()
}

/// A blue/green rollout's settings, as the executor reads them.
struct BlueGreen<'a> {
    keep_blue: Duration,
    auto_promote: bool,
    analysis: Option<&'a Analysis>,
    preview: Option<&'a Preview>,
}

/// How a strategy's part of a rollout ended.
enum Through {
    /// The new version serves, the old one is retired.
    Done,
    /// Waiting at a manual gate.
    AtGate,
    /// Nothing done yet: the rolling batches do it all.
    Rolling,
}

/// One change of one deployment.
struct Run<'a> {
    spec: &'a DeploymentSpec,
    fleet: &'a dyn Fleet,
    progress: &'a Progress,
    control: &'a Control<'a>,
    /// Where the rollout stands now.
    record: Mutex<RolloutRecord>,
    /// Whether `promote` has let this run through a gate already.
    promoted: AtomicBool,
}

impl<'a> Run<'a> {
    fn new(
        spec: &'a DeploymentSpec,
        fleet: &'a dyn Fleet,
        progress: &'a Progress,
        control: &'a Control<'a>,
    ) -> Run<'a> {
        let steps = match &spec.strategy {
            Strategy::Canary { steps, .. } => steps.len(),
            Strategy::BlueGreen { .. } => 2,
            Strategy::Rolling { .. } => 1,
        };
        Run {
            spec,
            fleet,
            progress,
            control,
            record: Mutex::new(RolloutRecord {
                status: Status::Running,
                strategy: spec.strategy.name().to_string(),
                to: fleet
                    .version(Version::Wanted)
                    .map(|v| v.id)
                    .unwrap_or_default(),
                step: 0,
                steps,
                at: "starting".into(),
                readings: Vec::new(),
            }),
            promoted: AtomicBool::new(false),
        }
    }

    fn report(&self, message: &str) {
        self.progress.report(message);
    }

    fn record(&self) -> RolloutRecord {
        self.record.lock().expect("record").clone()
    }

    /// Records that the rollout is at `step`, doing `at`.
    fn note(&self, status: Status, step: usize, at: &str) {
        let record = {
            let mut record = self.record.lock().expect("record");
            record.status = status;
            record.step = step;
            record.at = at.to_string();
            record.clone()
        };
        (self.control.on_record)(&record);
    }

    /// Records an analysis reading.
    fn note_reading(&self, reading: String) {
        let record = {
            let mut record = self.record.lock().expect("record");
            record.readings.push(reading);
            let extra = record
                .readings
                .len()
                .saturating_sub(RolloutRecord::READINGS);
            record.readings.drain(..extra);
            record.clone()
        };
        (self.control.on_record)(&record);
    }

    /// Records how a failed rollout ended.
    fn finish(&self, status: Status, error: &ProviderError) {
        let step = self.record().step;
        self.note(status, step, error.message.lines().next().unwrap_or(""));
    }

    /// The step a rollout of this version resumes at: where the record
    /// says it was running (interrupted) or paused.
    fn resume_step(&self) -> usize {
        match &self.control.recorded {
            Some(recorded)
                if recorded.to == self.record().to
                    && matches!(recorded.status, Status::Running | Status::Paused) =>
            {
                recorded.step
            }
            _ => 0,
        }
    }

    /// A manual gate at `step`: through it when `promote` has not been
    /// used yet in this run (`true`), or the rollout recorded as paused
    /// there (`false`).
    fn pass_gate(&self, step: usize, at: &str) -> bool {
        if self.control.promote && !self.promoted.swap(true, Ordering::SeqCst) {
            self.report(&format!("promoted: past the gate at {at}"));
            return true;
        }
        self.note(Status::Paused, step, at);
        self.report(&format!(
            "paused at {at}: `infra rollout promote` continues, `infra rollout abort` rolls back"
        ));
        false
    }

    async fn start(
        &self,
        version: Version,
        pool: &str,
        count: usize,
    ) -> Result<Vec<FleetInstance>, ProviderError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        self.fleet.start(version, pool.to_string(), count).await
    }

    async fn retire(&self, instances: &[FleetInstance]) {
        if !instances.is_empty() {
            self.fleet.retire(names(instances)).await;
        }
    }

    /// The wanted version's instances, in service: those already running
    /// kept (and admitted again), a new version rolled out by the
    /// strategy, a scale change made.
    /// `None`: stopped at a manual gate.
    async fn converge(&self) -> Result<Option<Vec<FleetInstance>>, ProviderError> {
        let wanted = self
            .fleet
            .version(Version::Wanted)
            .ok_or_else(|| failed("the fleet does not know the wanted version".into()))?;
        let observed = self.fleet.observe().await?;
        let (mut current, mut old): (Vec<FleetInstance>, Vec<FleetInstance>) = observed
            .instances
            .into_iter()
            .partition(|i| i.version == wanted.id);
        if !current.is_empty() {
            self.fleet.admit(names(&current)).await?;
        }
        if !old.is_empty() && !matches!(self.spec.strategy, Strategy::Rolling { .. }) {
            self.retire_abandoned(&mut old).await?;
        }
        if !old.is_empty() {
            let serving_pool = old[0].pool.clone();
            let through = match &self.spec.strategy {
                Strategy::BlueGreen {
                    keep_blue,
                    auto_promote,
                    analysis,
                    preview,
                } => {
                    let plan = BlueGreen {
                        keep_blue: *keep_blue,
                        auto_promote: *auto_promote,
                        analysis: analysis.as_ref(),
                        preview: preview.as_ref(),
                    };
                    self.blue_green(&mut current, &old, &serving_pool, &plan)
                        .await?
                }
                Strategy::Canary { steps, analysis } => {
                    self.canary(&mut current, &old, &serving_pool, steps, analysis.as_ref())
                        .await?
                }
                Strategy::Rolling { .. } => Through::Rolling,
            };
            match through {
                Through::AtGate => return Ok(None),
                Through::Done => old.clear(),
                Through::Rolling => {}
            }
        }
        let replicas = self.spec.replicas;
        // New instances join the pool that serves: the current version's,
        // else the old one's.
        let pool = current
            .first()
            .or(old.first())
            .map_or_else(|| self.fleet.pools()[0].clone(), |i| i.pool.clone());
        // Missing instances first: capacity before anything is replaced.
        let missing = replicas.saturating_sub(current.len() + old.len());
        current.extend(self.start(Version::Wanted, &pool, missing).await?);
        self.rolling(&mut current, old, &pool).await?;
        if current.len() > replicas {
            let extra = current.split_off(replicas);
            self.retire(&extra).await;
        }
        Ok(Some(current))
    }

    /// Before a blue/green or canary rollout: instances of neither the
    /// wanted version nor the recorded one — a rollout abandoned for a
    /// newer version, e.g. one paused at a gate — get no more traffic and
    /// are retired, so that the other pool is free and the old version is
    /// the one the state records.
    async fn retire_abandoned(&self, old: &mut Vec<FleetInstance>) -> Result<(), ProviderError> {
        let Some(previous) = self.fleet.version(Version::Previous) else {
            return Ok(());
        };
        let (recorded, abandoned): (Vec<FleetInstance>, Vec<FleetInstance>) =
            old.drain(..).partition(|i| i.version == previous.id);
        *old = recorded;
        if abandoned.is_empty() {
            return Ok(());
        }
        if old.is_empty() {
            // Nothing of the recorded version left: they are the old ones.
            *old = abandoned;
            return Ok(());
        }
        self.report(&format!(
            "retiring {} instance(s) of an abandoned version first",
            abandoned.len()
        ));
        self.route_to(old, &abandoned).await?;
        self.retire(&abandoned).await;
        Ok(())
    }

    /// Rolling, in batches: never more than `replicas + max_surge`
    /// instances, never fewer than `replicas - max_unavailable` in
    /// service; new instances are in service before the old ones they
    /// replace go.
    async fn rolling(
        &self,
        current: &mut Vec<FleetInstance>,
        mut old: Vec<FleetInstance>,
        pool: &str,
    ) -> Result<(), ProviderError> {
        let replicas = self.spec.replicas;
        let batch = self.spec.rolling_batch().unwrap_or((1, 0));
        while !old.is_empty() {
            let (retiring, starting) = rolling_round(replicas, batch, current.len(), old.len());
            let rest = old.split_off(retiring);
            if retiring > 0 {
                self.report(&format!(
                    "retiring {retiring} old instance(s); {} left",
                    rest.len()
                ));
            }
            self.retire(&std::mem::replace(&mut old, rest)).await;
            if starting == 0 && retiring == 0 {
                // Already `replicas` of this version: the rest are extra.
                break;
            }
            if starting > 0 {
                self.report(&format!(
                    "starting {starting} new instance(s); {} of {replicas} in service so far",
                    current.len()
                ));
            }
            current.extend(self.start(Version::Wanted, pool, starting).await?);
        }
        self.retire(&old).await;
        Ok(())
    }

    /// The pool a new version starts in beside the one the old version
    /// serves from: the deployment's other pool, set to weight 0 before
    /// any new instance is in it (none yet, or those of an interrupted
    /// rollout there already), so that none gets a request.
    async fn idle_pool(
        &self,
        serving: &str,
        new: &[FleetInstance],
    ) -> Result<String, ProviderError> {
        let [first, second] = self.fleet.pools();
        let pool = if serving == first { second } else { first };
        if self.fleet.balanced() && new.is_empty() {
            self.fleet
                .route(Traffic {
                    weights: BTreeMap::from([(pool.clone(), 0)]),
                    routes: None,
                })
                .await?;
        }
        Ok(pool)
    }

    /// All traffic to the pools of `serving`, none to those of `others`,
    /// no header routes: one change, so it is atomic.
    async fn route_to(
        &self,
        serving: &[FleetInstance],
        others: &[FleetInstance],
    ) -> Result<(), ProviderError> {
        if !self.fleet.balanced() {
            return Ok(());
        }
        let mut weights: BTreeMap<String, u32> =
            others.iter().map(|i| (i.pool.clone(), 0)).collect();
        for instance in serving {
            weights.insert(instance.pool.clone(), FULL);
        }
        if weights.is_empty() {
            return Ok(());
        }
        self.fleet
            .route(Traffic {
                weights,
                routes: Some(BTreeMap::new()),
            })
            .await
    }

    /// Blue/green: the new version (green) started in the pool the old one
    /// (blue) is not in, at weight 0 — healthy in the load balancer's
    /// eyes, sent nothing — then all traffic switched to it in one change;
    /// blue is kept for `keep_blue` while green is watched (a green
    /// instance out of service fails the rollout, whose rollback switches
    /// back at once), then drained and stopped.
    async fn blue_green(
        &self,
        green: &mut Vec<FleetInstance>,
        blue: &[FleetInstance],
        blue_pool: &str,
        plan: &BlueGreen<'_>,
    ) -> Result<Through, ProviderError> {
        let (keep_blue, analysis) = (plan.keep_blue, plan.analysis);
        let green_pool = self.idle_pool(blue_pool, green).await?;
        let missing = self.spec.replicas.saturating_sub(green.len());
        self.note(Status::Running, 0, "the new version starting, sent nothing");
        if missing > 0 {
            self.report(&format!(
                "starting {missing} new instance(s) beside the old ones, sent nothing"
            ));
        }
        green.extend(self.start(Version::Wanted, &green_pool, missing).await?);
        if let Some(preview) = plan.preview.filter(|_| self.fleet.balanced()) {
            // Pre-promotion: the preview requests, and only those, reach
            // green; the analysis judges its answers to them.
            let matching = &preview.matching;
            let route = Route::values(&matching.header, matching.values.clone());
            self.fleet
                .route(Traffic {
                    weights: BTreeMap::new(),
                    routes: Some(BTreeMap::from([(green_pool.clone(), route)])),
                })
                .await?;
            let doing = format!(
                "requests with {}: {} to the new version (preview)",
                matching.header,
                matching.values.join(", ")
            );
            self.note(Status::Running, 0, &doing);
            self.report(&format!("{doing}, for {:?}", preview.pause));
            self.watch(&green_pool, preview.pause, analysis)
                .await
                .map_err(|why| failed(format!("before the switch (preview): {why}")))?;
        }
        if !plan.auto_promote && !self.pass_gate(0, "the new version ready, sent nothing") {
            return Ok(Through::AtGate);
        }
        self.route_to(green, blue).await?;
        self.note(
            Status::Running,
            1,
            "all traffic on the new version, the old one kept",
        );
        self.report(&format!(
            "all traffic switched to the new version; the old one kept for {keep_blue:?}"
        ));
        let health = self.keep_watching(green, keep_blue);
        match analysis.filter(|_| self.fleet.balanced()) {
            // The new set's answers, judged while the old one waits.
            Some(analysis) => {
                let judged = async {
                    self.watch(&green_pool, keep_blue, Some(analysis))
                        .await
                        .map_err(|why| failed(format!("after the switch: {why}")))
                };
                tokio::try_join!(health, judged)?;
            }
            None => health.await?,
        }
        self.report(&format!("retiring the {} old instance(s)", blue.len()));
        self.retire(blue).await;
        Ok(Through::Done)
    }

    /// Watches the new set for `keep_blue` after the switch: one of its
    /// instances out of service fails the rollout.
    async fn keep_watching(
        &self,
        green: &[FleetInstance],
        keep_blue: Duration,
    ) -> Result<(), ProviderError> {
        let switched = Instant::now();
        let until = switched + keep_blue;
        while self.fleet.balanced() {
            let observed = self.fleet.observe().await?;
            if let Some(sick) = green
                .iter()
                .find(|i| !observed.in_service.contains(&i.name))
            {
                return Err(failed(format!(
                    "instance {} of the new version turned unhealthy {:?} after the switch to it (keep_blue {keep_blue:?})",
                    sick.name,
                    switched.elapsed()
                )));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sleep(left.min(WATCH_EVERY)).await;
        }
        Ok(())
    }

    /// Canary: for each step, enough instances of the new version (at
    /// least one, `ceil(replicas × weight / 100)`) started in the pool the
    /// old version is not in, at weight 0, then the step's share of the
    /// traffic (or the requests its route matches) sent to them in one
    /// change, read back, and watched for the step's pause by the
    /// analysis; then the rest of the new version started there, all
    /// traffic switched to it at once, and the old version retired. A
    /// failed analysis (or one that cannot judge) fails the rollout.
    async fn canary(
        &self,
        canaries: &mut Vec<FleetInstance>,
        stable: &[FleetInstance],
        stable_pool: &str,
        steps: &[CanaryStep],
        analysis: Option<&Analysis>,
    ) -> Result<Through, ProviderError> {
        let stable_pool = stable_pool.to_string();
        let canary_pool = self.idle_pool(&stable_pool, canaries).await?;
        let replicas = self.spec.replicas;
        let resume = self.resume_step().min(steps.len());
        if resume > 0 {
            self.report(&format!(
                "resuming at step {} of {}, where the state left it",
                resume + 1,
                steps.len()
            ));
        }
        for (at, step) in steps.iter().enumerate().skip(resume) {
            let weight = step.weight.min(FULL);
            let needed = canary_instances(replicas, weight);
            let missing = needed.saturating_sub(canaries.len());
            let number = format!("step {} of {}", at + 1, steps.len());
            if missing > 0 {
                self.report(&format!("{number}: starting {missing} canary instance(s)"));
            }
            canaries.extend(self.start(Version::Wanted, &canary_pool, missing).await?);
            if !self.fleet.balanced() {
                continue;
            }
            // A route sends the requests it matches, and only those: the
            // canary pool takes no share by weight then.
            let routes: BTreeMap<String, Route> = step
                .matching
                .iter()
                .map(|matching| {
                    let route = Route {
                        header: matching.header.clone(),
                        values: matching.values.clone(),
                        cookie: matching.cookie.clone(),
                        percent: matching.percent,
                    };
                    (canary_pool.clone(), route)
                })
                .collect();
            let by_weight = if routes.is_empty() { weight } else { 0 };
            self.fleet
                .route(Traffic {
                    weights: BTreeMap::from([
                        (canary_pool.clone(), by_weight),
                        (stable_pool.clone(), FULL - by_weight),
                    ]),
                    routes: Some(routes),
                })
                .await
                .map_err(|error| failed(format!("canary step {}: {}", at + 1, error.message)))?;
            let share = match &step.matching {
                Some(matching) => match matching.percent {
                    Some(percent) => format!("{percent}% of {} (sticky)", matching.key()),
                    None => format!("{}: {}", matching.header, matching.values.join(", ")),
                },
                None => format!("weight {weight}%"),
            };
            let doing = format!("{share} to the new version");
            if step.gate {
                if self.pass_gate(at, &doing) {
                    continue;
                }
                return Ok(Through::AtGate);
            }
            self.note(Status::Running, at, &doing);
            self.report(&format!("{number}: {doing}, for {:?}", step.pause));
            self.watch(&canary_pool, step.pause, analysis)
                .await
                .map_err(|why| failed(format!("canary step {} ({share}): {why}", at + 1)))?;
        }
        let missing = replicas.saturating_sub(canaries.len());
        self.report(&format!(
            "promoting: starting the other {missing} new instance(s)"
        ));
        canaries.extend(self.start(Version::Wanted, &canary_pool, missing).await?);
        self.route_to(canaries, stable).await?;
        self.report(&format!(
            "all traffic switched to the new version; retiring the {} old instance(s)",
            stable.len()
        ));
        self.retire(stable).await;
        Ok(Through::Done)
    }

    /// Watches the canary pool for `pause`: a reading every `interval`,
    /// judged by the analysis. Fails at `failure_limit` failed readings,
    /// past `inconclusive_limit` inconclusive ones or
    /// `consecutive_error_limit` readings in a row that could not be
    /// taken, and at the end of the pause when no reading passed
    /// (inconclusive is never a pass).
    async fn watch(
        &self,
        pool: &str,
        pause: Duration,
        analysis: Option<&Analysis>,
    ) -> Result<(), String> {
        let Some(rules) = analysis else {
            // Waited out, saying every so often how long is left.
            let end = Instant::now() + pause;
            loop {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(());
                }
                if left < pause && left >= PAUSE_REPORT_EVERY {
                    self.report(&format!("{}s left in the pause", left.as_secs()));
                }
                sleep(left.min(PAUSE_REPORT_EVERY)).await;
            }
        };
        let end = Instant::now() + pause;
        let (mut failures, mut inconclusive, mut errors, mut passes) = (0u32, 0u32, 0u32, 0u32);
        let mut last = String::from("no reading yet");
        let mut before = self.fleet.totals(pool.to_string()).await.ok();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            sleep(rules.interval.min(left.max(Duration::from_millis(1)))).await;
            match (self.fleet.totals(pool.to_string()).await, &before) {
                (Ok(after), Some(earlier)) => {
                    let verdict = match self.ask(rules).await {
                        Ok(answers) => {
                            let mut verdicts = vec![rules.judge(earlier, &after)];
                            verdicts.extend(answers);
                            combine(verdicts)
                        }
                        // A query that could not be asked: unreadable, as
                        // counters that could not be read.
                        Err(why) => {
                            errors += 1;
                            self.report(&format!("analysis: unreadable: {why}"));
                            last = why;
                            if errors > rules.consecutive_error_limit {
                                return Err(format!(
                                    "the analysis could not be read {errors} times in a row (consecutive_error_limit {}): {last}",
                                    rules.consecutive_error_limit
                                ));
                            }
                            before = Some(after);
                            if Instant::now() >= end {
                                break;
                            }
                            continue;
                        }
                    };
                    errors = 0;
                    self.report(&format!("analysis: {verdict}"));
                    self.note_reading(verdict.to_string());
                    match verdict {
                        Verdict::Pass(_) => passes += 1,
                        Verdict::Fail(why) => {
                            failures += 1;
                            last = why;
                            if failures >= rules.failure_limit.max(1) {
                                return Err(format!(
                                    "analysis failed ({failures} of failure_limit {}): {last}",
                                    rules.failure_limit
                                ));
                            }
                        }
                        Verdict::Inconclusive(why) => {
                            inconclusive += 1;
                            last = why;
                            if inconclusive > rules.inconclusive_limit {
                                return Err(format!(
                                    "analysis inconclusive {inconclusive} times (inconclusive_limit {}): {last}",
                                    rules.inconclusive_limit
                                ));
                            }
                        }
                    }
                    before = Some(after);
                }
                (Ok(after), None) => before = Some(after),
                (Err(error), _) => {
                    errors += 1;
                    last = error.message;
                    if errors > rules.consecutive_error_limit {
                        return Err(format!(
                            "the load balancer's counters could not be read {errors} times in a row: {last}"
                        ));
                    }
                }
            }
            if Instant::now() >= end {
                break;
            }
        }
        if passes == 0 {
            return Err(format!(
                "no analysis reading passed during the pause: {last}"
            ));
        }
        Ok(())
    }

    /// The analysis's PromQL queries, each asked once and judged; an error
    /// says which query could not be asked and why.
    async fn ask(&self, rules: &Analysis) -> Result<Vec<Verdict>, String> {
        let mut verdicts = Vec::new();
        for query in &rules.queries {
            let url = query
                .prometheus
                .as_deref()
                .ok_or_else(|| format!("query {}: its Prometheus URL is not known", query.name))?;
            let answer = self
                .control
                .queries
                .instant(url, &query.expr)
                .await
                .map_err(|why| format!("query {}: {why}", query.name))?;
            verdicts.push(query.judge(&answer));
        }
        Ok(verdicts)
    }

    /// The rollback: the previous version's running instances admitted,
    /// all traffic sent back to them at once, missing ones started, and
    /// only then every instance of another version retired. Returns how
    /// many serve.
    async fn rollback(&self, previous: &VersionInfo) -> Result<usize, ProviderError> {
        let observed = self.fleet.observe().await?;
        let (mut serving, others): (Vec<FleetInstance>, Vec<FleetInstance>) = observed
            .instances
            .into_iter()
            .partition(|i| i.version == previous.id);
        if !serving.is_empty() {
            self.fleet.admit(names(&serving)).await?;
            self.route_to(&serving, &others).await?;
        }
        let pool = serving
            .first()
            .map_or_else(|| self.fleet.pools()[0].clone(), |i| i.pool.clone());
        let missing = previous.replicas.saturating_sub(serving.len());
        serving.extend(self.start(Version::Previous, &pool, missing).await?);
        self.route_to(&serving, &others).await?;
        self.retire(&others).await;
        Ok(serving.len())
    }
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
