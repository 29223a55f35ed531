//! A rollout as a list of steps, worked out from the spec alone: what
//! `plan` shows (the batches, the peak instance count, the fewest in
//! service, the least time it can take) and the order a fleet follows.
//!
//! Steps say what must be true after them ("3 new instances in service",
//! "1 old one left"), not what to do, so that a rollout resumed after an
//! interruption repeats none of its work.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::record::RolloutRecord;
use super::spec::{Analysis, CanaryStep, DeploymentSpec, Strategy};
use super::strategy::Preview;
use crate::eval::Value;

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `total` instances of the new version in service: started, healthy
    /// for `min_ready`, registered.
    StartNew { total: usize },
    /// At most `remaining` instances of the old version: the others
    /// deregistered, drained and stopped.
    RetireOld { remaining: usize },
    /// `total` instances of the new version healthy and registered where
    /// no request reaches them yet (blue/green's green set).
    StartIdle { total: usize },
    /// All traffic to the new version, none to the old, in one change.
    Switch,
    /// The old version kept (idle) this long, to switch back at once if
    /// the new one fails — watched by the analysis when `analysed`.
    Hold { duration: Duration, analysed: bool },
    /// `weight` percent of the requests to the new version, the rest to
    /// the old.
    Shift { weight: u32 },
    /// The requests whose `header` has one of `values` to the new version,
    /// and only those.
    Route { header: String, values: Vec<String> },
    /// `percent` of the customers (by the hash of `key`: a header, or
    /// `cookie NAME`) to the new version, each always to the same side.
    Sticky { key: String, percent: u32 },
    /// Wait this long, the new version watched by the analysis when
    /// `analysed`.
    Pause { duration: Duration, analysed: bool },
    /// Wait for `infra rollout promote`: apply ends here, the rollout
    /// recorded as paused.
    Gate,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::StartNew { total } => write!(f, "{total} new in service"),
            Step::RetireOld { remaining } => write!(f, "{remaining} old left"),
            Step::StartIdle { total } => write!(f, "{total} new ready, sent nothing"),
            Step::Switch => write!(f, "all traffic to the new version"),
            Step::Hold { duration, analysed } => write!(
                f,
                "old kept {}{}",
                short_duration(*duration),
                if *analysed { ", analysed" } else { "" }
            ),
            Step::Shift { weight } => write!(f, "{weight}% to the new version"),
            Step::Route { header, values } => {
                write!(
                    f,
                    "requests with {header}: {} to the new version",
                    values.join(", ")
                )
            }
            Step::Gate => write!(f, "wait for `infra rollout promote`"),
            Step::Sticky { key, percent } => {
                write!(f, "{percent}% of {key} values (sticky) to the new version")
            }
            Step::Pause { duration, analysed } => write!(
                f,
                "pause {}{}",
                short_duration(*duration),
                if *analysed { ", analysed" } else { "" }
            ),
        }
    }
}

/// A rollout from `from` instances of the old version to the spec's
/// `replicas` of the new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub strategy: &'static str,
    pub from: usize,
    pub to: usize,
    pub steps: Vec<Step>,
    /// The most instances running at once.
    pub peak: usize,
    /// The fewest instances in service at any moment.
    pub fewest_in_service: usize,
    /// The least time it can take: each batch healthy (`healthy_threshold`
    /// checks by the fleet, `min_ready`, `healthy_threshold` checks by the
    /// load balancer), each pause and `keep_blue`. Drains end as soon as no
    /// request is in flight (`drain` is their limit), so they count nothing.
    pub least_duration: Duration,
    /// Where the last rollout of this deployment stands, as the state
    /// recorded it (running when interrupted, paused at a gate, rolled
    /// back): the next apply resumes a running or paused one at its step.
    pub recorded: Option<RolloutRecord>,
    /// What the analysis judges, when the strategy has one.
    pub analysis: Option<Analysis>,
}

impl Rollout {
    /// No step yet: `from` old instances, all in service.
    fn starting(spec: &DeploymentSpec, from: usize) -> Rollout {
        Rollout {
            strategy: spec.strategy.name(),
            from,
            to: spec.replicas,
            steps: Vec::new(),
            peak: from,
            fewest_in_service: from,
            least_duration: Duration::ZERO,
            recorded: None,
            analysis: spec.strategy.analysis().cloned(),
        }
    }
}

impl fmt::Display for Rollout {
    /// Two lines, as `plan` shows them: the bounds, then the steps (the
    /// first few of a long list).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        writeln!(
            f,
            "{} update, {} → {} instances: at most {} running, never fewer than {} in service, at least {}",
            self.strategy,
            self.from,
            self.to,
            self.peak,
            self.fewest_in_service,
            short_duration(self.least_duration)
        )?;
        let steps: Vec<String> = self
            .steps
            .iter()
            .take(SHOWN)
            .map(ToString::to_string)
            .collect();
        write!(f, "{}", steps.join(" → "))?;
        if self.steps.len() > SHOWN {
            write!(f, " → … ({} steps in all)", self.steps.len())?;
        }
        if let Some(analysis) = &self.analysis {
            write!(f, "\n{analysis}")?;
        }
        Ok(())
    }
}

/// `10.5s`, `2m30s`.
fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        let text = format!("{seconds:.1}");
        format!("{}s", text.trim_end_matches(".0"))
    } else {
        let whole = duration.as_secs();
        match (whole / 60, whole % 60) {
            (minutes, 0) => format!("{minutes}m"),
            (minutes, rest) => format!("{minutes}m{rest}s"),
        }
    }
}

/// The rollout of `spec` from `from` old instances; `None` for a
/// strategy not built yet (see `spec.rs`).
pub fn plan(spec: &DeploymentSpec, from: usize) -> Option<Rollout> {
    match spec.strategy {
        Strategy::Rolling { .. } => rolling(spec, from),
        Strategy::BlueGreen {
            keep_blue,
            auto_promote,
            ref preview,
            ..
        } => Some(blue_green(
            spec,
            from,
            keep_blue,
            auto_promote,
            preview.as_ref(),
        )),
        Strategy::Canary {
            ref steps,
            ref analysis,
        } => Some(canary(spec, from, steps, analysis.is_some())),
    }
}

/// Blue/green: the whole new set started where no request reaches it,
/// one switch, the old set kept for `keep_blue`, then retired. In service
/// is always one whole set: the old one until the switch, then the new.
fn blue_green(
    spec: &DeploymentSpec,
    from: usize,
    keep_blue: Duration,
    auto_promote: bool,
    preview: Option<&Preview>,
) -> Rollout {
    let to = spec.replicas;
    let mut steps = vec![Step::StartIdle { total: to }];
    let analysed = spec.strategy.analysis().is_some();
    if let Some(preview) = preview {
        steps.push(Step::Route {
            header: preview.matching.header.clone(),
            values: preview.matching.values.clone(),
        });
        steps.push(Step::Pause {
            duration: preview.pause,
            analysed,
        });
    }
    if !auto_promote {
        steps.push(Step::Gate);
    }
    steps.extend([
        Step::Switch,
        Step::Hold {
            duration: keep_blue,
            analysed,
        },
        Step::RetireOld { remaining: 0 },
    ]);
    Rollout {
        strategy: spec.strategy.name(),
        from,
        to,
        steps,
        peak: from + to,
        fewest_in_service: from.min(to),
        least_duration: spec.health.time_to_in_service()
            + spec.min_ready
            + preview.map_or(Duration::ZERO, |p| p.pause)
            + keep_blue,
        recorded: None,
        analysis: spec.strategy.analysis().cloned(),
    }
}

/// Canary: for each step, enough new instances for its share started
/// (sent nothing until the shift), the share shifted, the pause watched;
/// then the rest of the new version started, one switch, the old retired.
/// The old version stays whole until the switch: in service never drops.
fn canary(spec: &DeploymentSpec, from: usize, steps: &[CanaryStep], analysed: bool) -> Rollout {
    let to = spec.replicas;
    let batch = spec.health.time_to_in_service() + spec.min_ready;
    let mut rollout = Rollout::starting(spec, from);
    let mut started = 0;
    for step in steps {
        let needed = canary_instances(to, step.weight);
        if needed > started {
            started = needed;
            rollout.steps.push(Step::StartIdle { total: started });
            rollout.least_duration += batch;
        }
        rollout.steps.push(match &step.matching {
            Some(matching) => match matching.percent {
                Some(percent) => Step::Sticky {
                    key: matching.key(),
                    percent,
                },
                None => Step::Route {
                    header: matching.header.clone(),
                    values: matching.values.clone(),
                },
            },
            None => Step::Shift {
                weight: step.weight,
            },
        });
        rollout.steps.push(if step.gate {
            Step::Gate
        } else {
            Step::Pause {
                duration: step.pause,
                analysed,
            }
        });
        rollout.least_duration += step.pause;
    }
    if to > started {
        rollout.steps.push(Step::StartIdle { total: to });
        rollout.least_duration += batch;
    }
    rollout.steps.push(Step::Switch);
    rollout.steps.push(Step::RetireOld { remaining: 0 });
    rollout.peak = from + to;
    rollout.fewest_in_service = from.min(to);
    rollout
}

/// One round of a rolling update, from `new` instances of the new version
/// and `old` of the old one: how many old ones may leave first (never
/// fewer than `replicas - unavailable` in service), then how many new ones
/// may start (never more than `replicas + surge` running). The plan and
/// the executor both decide with it.
pub fn rolling_round(
    replicas: usize,
    (surge, unavailable): (usize, usize),
    new: usize,
    old: usize,
) -> (usize, usize) {
    let floor = replicas.saturating_sub(unavailable);
    let ceiling = replicas + surge;
    let retire = (old + new).saturating_sub(floor).min(old);
    let start = ceiling
        .saturating_sub(old - retire + new)
        .min(replicas.saturating_sub(new));
    (retire, start)
}

/// How many instances of the new version a canary step with `weight`
/// percent needs: at least one, `ceil(replicas × weight / 100)`.
pub fn canary_instances(replicas: usize, weight: u32) -> usize {
    (replicas * weight.min(100) as usize)
        .div_ceil(100)
        .clamp(1, replicas.max(1))
}

/// Rolling, in batches.
///
/// Each round first retires what may go (never fewer than `replicas -
/// max_unavailable` in service), then starts what fits (never more than
/// `replicas + max_surge` instances) — so with `max_unavailable = 0` new
/// instances are in service before any old one leaves.
fn rolling(spec: &DeploymentSpec, from: usize) -> Option<Rollout> {
    let batch = spec.rolling_batch()?;
    let to = spec.replicas;
    let (mut old, mut new) = (from, 0usize);
    let mut rollout = Rollout::starting(spec, from);
    while old > 0 || new < to {
        let (retiring, starting) = rolling_round(to, batch, new, old);
        if retiring > 0 {
            old -= retiring;
            rollout.steps.push(Step::RetireOld { remaining: old });
        }
        if starting > 0 {
            new += starting;
            rollout.steps.push(Step::StartNew { total: new });
            rollout.least_duration += spec.health.time_to_in_service() + spec.min_ready;
        }
        rollout.peak = rollout.peak.max(old + new);
        rollout.fewest_in_service = rollout.fewest_in_service.min(old + new - starting);
        if retiring == 0 && starting == 0 {
            break;
        }
    }
    Some(rollout)
}

/// The rollout an update of a deployment makes: when its template or
/// `version` changes (a new version), from the instances it runs now to
/// the wanted ones. `None` when no new version is rolled out (scaling,
/// other settings) or the strategy is not built yet.
pub fn rollout_of(
    spec: &DeploymentSpec,
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
) -> Option<Rollout> {
    let new_version = ["template", "version"]
        .iter()
        .any(|name| before.get(*name) != after.get(*name));
    if !new_version {
        return None;
    }
    let from = match before.get("replicas") {
        Some(Value::Number(n)) if *n >= 0.0 => *n as usize,
        _ => 0,
    };
    plan(spec, from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::spec::{Amount, Health};

    fn rolling(replicas: usize, surge: Amount, unavailable: Amount) -> DeploymentSpec {
        DeploymentSpec {
            provider: "local".into(),
            replicas,
            min_ready: Duration::from_secs(1),
            healthy_deadline: Duration::from_secs(30),
            progress_deadline: Duration::from_secs(60),
            drain: Duration::from_secs(2),
            auto_rollback: true,
            health: Health {
                interval: Duration::from_millis(500),
                healthy_threshold: 2,
            },
            strategy: Strategy::Rolling {
                max_surge: surge,
                max_unavailable: unavailable,
            },
        }
    }

    /// Replays the steps, checking the bounds at every moment: a start
    /// counts in service only once done, a retirement at once.
    fn replay(spec: &DeploymentSpec, from: usize, rollout: &Rollout) -> (usize, usize) {
        let (surge, unavailable) = spec.rolling_batch().unwrap();
        let (mut old, mut new) = (from, 0);
        for step in &rollout.steps {
            match *step {
                Step::StartNew { total } => {
                    assert!(total > new, "{step} starts nothing");
                    new = total;
                    assert!(
                        old + new <= spec.replicas + surge,
                        "surge exceeded at {step}"
                    );
                }
                Step::StartIdle { .. }
                | Step::Switch
                | Step::Hold { .. }
                | Step::Shift { .. }
                | Step::Route { .. }
                | Step::Sticky { .. }
                | Step::Pause { .. }
                | Step::Gate => {
                    unreachable!("not a rolling step: {step}")
                }
                Step::RetireOld { remaining } => {
                    assert!(remaining < old, "{step} retires nothing");
                    old = remaining;
                    assert!(
                        old + new >= spec.replicas.saturating_sub(unavailable).min(from),
                        "too few in service at {step}"
                    );
                }
            }
        }
        (old, new)
    }

    #[test]
    fn one_extra_none_missing_is_one_new_then_one_old_at_a_time() {
        let spec = rolling(3, Amount::Count(1), Amount::Count(0));
        let rollout = plan(&spec, 3).unwrap();
        let steps: Vec<String> = rollout.steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            steps,
            [
                "1 new in service",
                "2 old left",
                "2 new in service",
                "1 old left",
                "3 new in service",
                "0 old left"
            ]
        );
        assert_eq!((rollout.peak, rollout.fewest_in_service), (4, 3));
        // 3 batches × (2 checks 0.5 s apart by the fleet, 1 s min_ready,
        // 2 checks by the load balancer); drains end when nothing is in
        // flight, so they add nothing certain.
        assert_eq!(rollout.least_duration, Duration::from_secs(6));
    }

    #[test]
    fn surge_and_unavailable_make_bigger_batches_within_their_bounds() {
        let spec = rolling(4, Amount::Count(2), Amount::Count(1));
        let rollout = plan(&spec, 4).unwrap();
        assert_eq!(
            rollout.steps,
            [
                Step::RetireOld { remaining: 3 },
                Step::StartNew { total: 3 },
                Step::RetireOld { remaining: 0 },
                Step::StartNew { total: 4 },
            ]
        );
        assert_eq!((rollout.peak, rollout.fewest_in_service), (6, 3));
        assert_eq!(replay(&spec, 4, &rollout), (0, 4));
    }

    #[test]
    fn no_surge_retires_first() {
        let spec = rolling(2, Amount::Count(0), Amount::Count(1));
        let rollout = plan(&spec, 2).unwrap();
        assert_eq!(rollout.steps[0], Step::RetireOld { remaining: 1 });
        assert_eq!((rollout.peak, rollout.fewest_in_service), (2, 1));
        assert_eq!(replay(&spec, 2, &rollout), (0, 2));
    }

    #[test]
    fn every_combination_ends_with_only_new_instances_within_the_bounds() {
        for replicas in 0..8 {
            for from in 0..8 {
                for surge in 0..4 {
                    for unavailable in 0..4 {
                        if surge == 0 && unavailable == 0 {
                            continue;
                        }
                        let spec =
                            rolling(replicas, Amount::Count(surge), Amount::Count(unavailable));
                        let rollout = plan(&spec, from).unwrap();
                        assert_eq!(replay(&spec, from, &rollout), (0, replicas));
                        assert!(rollout.peak <= (replicas + surge as usize).max(from));
                    }
                }
            }
        }
    }

    #[test]
    fn blue_green_runs_two_whole_sets_and_serves_one() {
        let mut spec = rolling(3, Amount::Count(1), Amount::Count(0));
        spec.strategy = Strategy::BlueGreen {
            keep_blue: Duration::from_secs(30),
            auto_promote: true,
            analysis: None,
            preview: None,
        };
        let rollout = plan(&spec, 3).unwrap();
        assert_eq!(
            rollout.to_string(),
            "blue_green update, 3 → 3 instances: at most 6 running, never fewer than 3 in service, at least 32s\n\
             3 new ready, sent nothing → all traffic to the new version → old kept 30s → 0 old left"
        );
    }

    #[test]
    fn a_blue_green_preview_comes_before_the_switch() {
        let mut spec = rolling(3, Amount::Count(1), Amount::Count(0));
        spec.strategy = Strategy::BlueGreen {
            keep_blue: Duration::from_secs(30),
            auto_promote: false,
            analysis: None,
            preview: Some(Preview {
                matching: crate::deploy::Matching {
                    header: "X-Preview".into(),
                    values: vec!["1".into()],
                    cookie: None,
                    percent: None,
                },
                pause: Duration::from_secs(60),
            }),
        };
        let rollout = plan(&spec, 3).unwrap();
        assert_eq!(
            rollout.to_string(),
            "blue_green update, 3 → 3 instances: at most 6 running, never fewer than 3 in service, at least 1m32s\n\
             3 new ready, sent nothing → requests with X-Preview: 1 to the new version → pause 1m → wait for `infra rollout promote` → all traffic to the new version → old kept 30s → 0 old left"
        );
    }

    #[test]
    fn a_canary_grows_its_instances_with_its_share_then_switches() {
        let mut spec = rolling(4, Amount::Count(1), Amount::Count(0));
        spec.strategy = Strategy::Canary {
            steps: vec![
                CanaryStep {
                    weight: 10,
                    matching: None,
                    pause: Duration::from_secs(5),
                    gate: false,
                },
                CanaryStep {
                    weight: 50,
                    matching: None,
                    pause: Duration::from_secs(5),
                    gate: false,
                },
            ],
            analysis: None,
        };
        let rollout = plan(&spec, 4).unwrap();
        assert_eq!(
            rollout.to_string(),
            "canary update, 4 → 4 instances: at most 8 running, never fewer than 4 in service, at least 16s\n\
             1 new ready, sent nothing → 10% to the new version → pause 5s → 2 new ready, sent nothing → \
             50% to the new version → pause 5s → 4 new ready, sent nothing → all traffic to the new version \
             → … (9 steps in all)"
        );
    }

    #[test]
    fn shares_of_replicas_are_worked_out_first() {
        let spec = rolling(10, Amount::Percent(25), Amount::Percent(25));
        let rollout = plan(&spec, 10).unwrap();
        // 25% of 10: a surge of 3 (rounded up), 2 unavailable (down).
        assert_eq!(rollout.peak, 13);
        assert_eq!(rollout.fewest_in_service, 8);
    }
}
