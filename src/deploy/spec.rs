//! The one typed reading of a `deployment` block: every argument checked,
//! durations parsed and defaults filled in here, once. What is written
//! wrong is a diagnostic at the line; a strategy the provider's fleet does
//! not implement is an error, never a silent fallback.

use std::collections::BTreeMap;
use std::time::Duration;

use infra_provider_sdk::parse_duration;

use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::eval::Value;
use crate::syntax::{Block, Item, Span};

const ARGUMENTS: &[&str] = &[
    "provider",
    "replicas",
    "version",
    "load_balancer",
    "min_ready",
    "healthy_deadline",
    "progress_deadline",
    "drain",
    "auto_rollback",
];
const BLOCKS: &[&str] = &["template", "health", "strategy"];
const STRATEGIES: &[&str] = &["rolling", "blue_green", "canary"];
const PROVIDERS: &[&str] = &["local", "aws"];
const DURATION_HELP: &str = "write a number with a unit: \"250ms\", \"30s\", \"5m\" or \"1h\"";

/// The defaults, in one place (the anchors: Nomad's min_healthy_time,
/// healthy_deadline and progress_deadline; Kubernetes' maxSurge and
/// maxUnavailable as infra's examples use them; ELBv2's deregistration
/// delay).
pub mod defaults {
    use std::time::Duration;

    pub const REPLICAS: usize = 1;
    pub const MIN_READY: Duration = Duration::from_secs(10);
    pub const HEALTHY_DEADLINE: Duration = Duration::from_secs(5 * 60);
    pub const PROGRESS_DEADLINE: Duration = Duration::from_secs(10 * 60);
    pub const DRAIN: Duration = Duration::from_secs(30);
    pub const MAX_SURGE: u32 = 1;
    pub const MAX_UNAVAILABLE: u32 = 0;
    /// ELBv2's health check: every 10 s, healthy after 2 passes.
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
    pub const HEALTHY_THRESHOLD: u32 = 2;
    /// Argo Rollouts' scale-down delay.
    pub const KEEP_BLUE: Duration = Duration::from_secs(30);
    /// Analysis: a reading a minute; the first failure aborts; more than 3
    /// inconclusive or 4 unreadable in a row abort (Argo Rollouts'
    /// consecutiveErrorLimit); 100 requests for a reading to count
    /// (Flagger's threshold of the same idea).
    pub const ANALYSIS_INTERVAL: Duration = Duration::from_secs(60);
    pub const FAILURE_LIMIT: u32 = 1;
    pub const INCONCLUSIVE_LIMIT: u32 = 3;
    pub const CONSECUTIVE_ERROR_LIMIT: u32 = 4;
    pub const MIN_REQUESTS: u64 = 100;
}

/// [`defaults::KEEP_BLUE`] as written in a configuration.
pub const DEFAULT_KEEP_BLUE: &str = "30s";

/// A `deployment` block, read.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    /// Which fleet runs the instances: `local` or `aws`.
    pub provider: String,
    pub replicas: usize,
    pub min_ready: Duration,
    pub healthy_deadline: Duration,
    pub progress_deadline: Duration,
    pub drain: Duration,
    pub auto_rollback: bool,
    pub health: Health,
    pub strategy: Strategy,
}

/// What the `health` block says about how soon an instance can count as
/// healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub interval: Duration,
    pub healthy_threshold: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            interval: defaults::HEALTH_INTERVAL,
            healthy_threshold: defaults::HEALTHY_THRESHOLD,
        }
    }
}

impl Health {
    /// The least time from a start to healthy: `healthy_threshold` passing
    /// checks, `interval` apart (the first at once).
    pub fn time_to_healthy(&self) -> Duration {
        self.interval * self.healthy_threshold.saturating_sub(1)
    }

    /// The least time from a start to in service: healthy by the fleet's
    /// checks, then by the load balancer's own (it checks a backend from
    /// its registration), `min_ready` aside.
    pub fn time_to_in_service(&self) -> Duration {
        self.time_to_healthy() * 2
    }
}

/// How a new version replaces the old one.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Batches of new instances in service before as many old ones leave.
    Rolling {
        max_surge: Amount,
        max_unavailable: Amount,
    },
    /// A second full set of the new version, sent nothing until one
    /// atomic switch; the old set kept for `keep_blue`, then retired.
    BlueGreen { keep_blue: Duration },
    /// A few instances of the new version given a share of the traffic,
    /// step by step, watched by the analysis; then promoted.
    Canary {
        steps: Vec<CanaryStep>,
        analysis: Option<Analysis>,
    },
}

/// One step of a canary: its share of the traffic, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryStep {
    /// Percent of the requests, 1 to 100 (0 with `matching`).
    pub weight: u32,
    /// Only the requests whose header has one of the values — chosen
    /// customers — and none by weight.
    pub matching: Option<Matching>,
    pub pause: Duration,
}

/// `match = { header = "X-Org", values = ["acme"] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    pub header: String,
    pub values: Vec<String>,
}

/// A canary's analysis: the canary pool's answers judged every
/// `interval` during each pause (Argo Rollouts' and Flagger's anchors).
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub interval: Duration,
    pub failure_limit: u32,
    pub inconclusive_limit: u32,
    pub consecutive_error_limit: u32,
    pub min_requests: u64,
    pub max_error_rate: Option<f64>,
    pub max_p99_latency: Option<Duration>,
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Rolling { .. } => "rolling",
            Strategy::BlueGreen { .. } => "blue_green",
            Strategy::Canary { .. } => "canary",
        }
    }
}

impl DeploymentSpec {
    /// A rolling strategy's (max surge, max unavailable) in instances: as
    /// Kubernetes does, a share of `replicas` rounds up for the surge and
    /// down for what may be unavailable, and when both come to 0 one
    /// instance may be unavailable, so that a rollout always progresses.
    pub fn rolling_batch(&self) -> Option<(usize, usize)> {
        let Strategy::Rolling {
            max_surge,
            max_unavailable,
        } = self.strategy
        else {
            return None;
        };
        let surge = max_surge.of(self.replicas, true);
        let unavailable = max_unavailable.of(self.replicas, false);
        Some(if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        })
    }
}

/// A number of instances, or a share of `replicas` (`"25%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

impl Amount {
    /// How many instances of `replicas` this is: a share rounds up for a
    /// surge (`round_up`), down for what may be unavailable — as
    /// Kubernetes does, so that a rollout always makes progress.
    pub fn of(self, replicas: usize, round_up: bool) -> usize {
        match self {
            Amount::Count(count) => count as usize,
            Amount::Percent(percent) => {
                let share = replicas * percent as usize;
                if round_up {
                    share.div_ceil(100)
                } else {
                    share / 100
                }
            }
        }
    }
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::Rolling {
            max_surge: Amount::Count(defaults::MAX_SURGE),
            max_unavailable: Amount::Count(defaults::MAX_UNAVAILABLE),
        }
    }
}

/// The strategies each provider's fleet implements; any other is an
/// error at `validate`.
fn implemented(provider: &str, strategy: &Strategy) -> bool {
    provider == "local"
        && matches!(
            strategy,
            Strategy::Rolling { .. } | Strategy::BlueGreen { .. } | Strategy::Canary { .. }
        )
}

/// Where the value of `name` is written in `block` (the block's header
/// when it is not).
fn attribute_span(block: &Block, name: &str) -> Span {
    block
        .attributes()
        .find(|a| a.name.name == name)
        .map(|a| a.value.span)
        .unwrap_or(block.header_span)
}

/// Reads one evaluated `deployment` block; `None` after reporting what is
/// wrong with it. Values unknown at plan time take their defaults here;
/// they are read again once known.
pub fn read(block: &Block, value: &Value, diagnostics: &mut Diagnostics) -> Option<DeploymentSpec> {
    let Value::Map(object) = value else {
        return None;
    };
    let errors = diagnostics.error_count();
    check_names(block, diagnostics);
    let provider = match object.get("provider") {
        Some(Value::String(provider)) if PROVIDERS.contains(&provider.as_ref()) => {
            Some(provider.to_string())
        }
        Some(Value::String(provider)) => {
            diagnostics.push(
                Diagnostic::error(
                    Code::UnknownProvider,
                    format!("unknown deployment provider `{provider}`"),
                )
                .with_label(attribute_span(block, "provider"), "not a fleet provider")
                .with_help(
                    did_you_mean(provider, PROVIDERS.iter().copied())
                        .unwrap_or_else(|| "use `local` or `aws`".into()),
                ),
            );
            None
        }
        Some(Value::Unknown) => None,
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    Code::MissingArgument,
                    "a deployment needs `provider`: which fleet runs its instances",
                )
                .with_label(block.header_span, "no `provider`")
                .with_help("add `provider = local` (processes behind a `local_lb`)"),
            );
            None
        }
    };
    let replicas = match object.get("replicas") {
        Some(Value::Number(n)) if n.fract() == 0.0 && *n >= 0.0 => *n as usize,
        _ => defaults::REPLICAS,
    };
    let mut duration = |name: &str, default: Duration| {
        read_duration(block, name, object.get(name), diagnostics).unwrap_or(default)
    };
    let min_ready = duration("min_ready", defaults::MIN_READY);
    let healthy_deadline = duration("healthy_deadline", defaults::HEALTHY_DEADLINE);
    let progress_deadline = duration("progress_deadline", defaults::PROGRESS_DEADLINE);
    let drain = duration("drain", defaults::DRAIN);
    if progress_deadline <= healthy_deadline {
        diagnostics.push(
            Diagnostic::warning(
                Code::Deadlines,
                "`progress_deadline` should be longer than `healthy_deadline`",
            )
            .with_label(
                attribute_span(block, "progress_deadline"),
                "not longer than `healthy_deadline`",
            )
            .with_help("a rollout step can never finish in time; raise `progress_deadline`"),
        );
    }
    if block.blocks().all(|b| b.kind.name != "health") {
        diagnostics.push(
            Diagnostic::warning(
                Code::NoHealthCheck,
                "this deployment has no `health` block: its instances are checked with `GET /healthz` every 10s",
            )
            .with_label(block.header_span, "no health check written")
            .with_help("write `health { path = \"…\" }` with the path your service answers when it can take requests: a rollout trusts it"),
        );
    }
    // Unlabelled nested blocks evaluate to a list of objects, in order.
    let mut health = Health::default();
    if let Some(Value::List(evaluated)) = object.get("health") {
        let blocks = block.blocks().filter(|b| b.kind.name == "health");
        for (block, settings) in blocks.zip(evaluated.iter()) {
            if let Value::Map(settings) = settings {
                if let Some(interval) =
                    read_duration(block, "interval", settings.get("interval"), diagnostics)
                {
                    health.interval = interval;
                }
                read_duration(block, "timeout", settings.get("timeout"), diagnostics);
                if let Some(Value::Number(n)) = settings.get("healthy_threshold")
                    && n.fract() == 0.0
                    && *n >= 1.0
                {
                    health.healthy_threshold = *n as u32;
                }
            }
        }
    }
    let strategy = read_strategy(block, object, diagnostics);
    let (Some(provider), Some(strategy)) = (provider, strategy) else {
        return None;
    };
    if provider != "local" {
        diagnostics.push(
            Diagnostic::error(
                Code::UnsupportedFleet,
                format!("deployments on `{provider}` are not built yet"),
            )
            .with_label(
                attribute_span(block, "provider"),
                "no fleet for this provider yet",
            )
            .with_help("use `provider = local` (instances as processes behind a `local_lb`)"),
        );
    } else if !implemented(&provider, &strategy) {
        let strategy_block = block.blocks().find(|b| b.kind.name == "strategy");
        let span = strategy_block
            .and_then(|b| b.labels.first())
            .map(|l| l.span)
            .unwrap_or(block.header_span);
        diagnostics.push(
            Diagnostic::error(
                Code::UnsupportedStrategy,
                format!(
                    "the `{}` strategy is not built yet for `{provider}` deployments",
                    strategy.name()
                ),
            )
            .with_label(span, "not implemented by this fleet yet")
            .with_help("use `strategy rolling { … }` (max_surge, max_unavailable): infra never falls back to another strategy in silence"),
        );
    }
    let auto_rollback = !matches!(object.get("auto_rollback"), Some(Value::Bool(false)));
    (diagnostics.error_count() == errors).then_some(DeploymentSpec {
        provider,
        replicas,
        min_ready,
        healthy_deadline,
        progress_deadline,
        drain,
        auto_rollback,
        health,
        strategy,
    })
}

/// Unknown arguments and blocks, with the names that exist.
fn check_names(block: &Block, diagnostics: &mut Diagnostics) {
    for item in &block.body.items {
        match item {
            Item::Attribute(attribute) if !ARGUMENTS.contains(&attribute.name.name.as_str()) => {
                diagnostics.push(
                    Diagnostic::error(
                        Code::UnknownArgument,
                        format!(
                            "unknown argument `{}` in a `deployment` block",
                            attribute.name.name
                        ),
                    )
                    .with_label(attribute.name.span, "not an argument of a deployment")
                    .with_help(
                        did_you_mean(&attribute.name.name, ARGUMENTS.iter().copied())
                            .unwrap_or_else(|| {
                                format!("the arguments are {}", ARGUMENTS.join(", "))
                            }),
                    ),
                );
            }
            Item::Block(nested) if !BLOCKS.contains(&nested.kind.name.as_str()) => diagnostics
                .push(
                    Diagnostic::error(
                        Code::UnexpectedBlock,
                        format!(
                            "unexpected block `{}` in a `deployment` block",
                            nested.kind.name
                        ),
                    )
                    .with_label(nested.kind.span, "not a block of a deployment")
                    .with_help(
                        did_you_mean(&nested.kind.name, BLOCKS.iter().copied()).unwrap_or_else(
                            || "the blocks are template, health and strategy".into(),
                        ),
                    ),
                ),
            _ => {}
        }
    }
}

fn read_duration(
    block: &Block,
    name: &str,
    value: Option<&Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Duration> {
    let problem = match value? {
        Value::String(text) => match parse_duration(text) {
            Some(duration) => return Some(duration),
            None => format!("`{name}` is not a duration: \"{text}\""),
        },
        Value::Unknown | Value::Null => return None,
        other => format!(
            "`{name}` must be a duration string, not a {}",
            other.type_name()
        ),
    };
    diagnostics.push(
        Diagnostic::error(Code::InvalidDuration, problem)
            .with_label(attribute_span(block, name), "not a duration")
            .with_help(DURATION_HELP),
    );
    None
}

/// The one `strategy` block (rolling by default).
fn read_strategy(
    block: &Block,
    object: &BTreeMap<String, Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Strategy> {
    let strategies: Vec<&Block> = block
        .blocks()
        .filter(|b| b.kind.name == "strategy")
        .collect();
    if strategies.len() > 1 {
        diagnostics.push(
            Diagnostic::error(Code::Duplicate, "a deployment has one `strategy` block")
                .with_label(strategies[1].header_span, "second strategy here")
                .with_label(strategies[0].header_span, "first strategy here")
                .with_help("keep one of them"),
        );
    }
    let mut read = None;
    let mut failed = false;
    for strategy in strategies {
        let Some(label) = strategy.labels.first() else {
            diagnostics.push(
                Diagnostic::error(Code::BlockLabels, "missing strategy kind")
                    .with_label(strategy.header_span, "which strategy?")
                    .with_help("write `strategy rolling { … }`, `strategy blue_green { … }` or `strategy canary { … }`"),
            );
            failed = true;
            continue;
        };
        let settings = match object.get("strategy") {
            Some(Value::Map(by_kind)) => match by_kind.get(&label.value) {
                Some(Value::Map(settings)) => (**settings).clone(),
                _ => BTreeMap::new(),
            },
            _ => BTreeMap::new(),
        };
        read = match label.value.as_str() {
            "rolling" => read_rolling(strategy, &settings, diagnostics),
            "blue_green" => read_blue_green(strategy, &settings, diagnostics),
            "canary" => read_canary(strategy, &settings, diagnostics),
            other => {
                diagnostics.push(
                    Diagnostic::error(Code::UnknownStrategy, format!("unknown strategy `{other}`"))
                        .with_label(label.span, "not a strategy")
                        .with_help(
                            did_you_mean(other, STRATEGIES.iter().copied()).unwrap_or_else(|| {
                                "the strategies are rolling, blue_green and canary".into()
                            }),
                        ),
                );
                None
            }
        };
        failed |= read.is_none();
    }
    (!failed).then(|| read.unwrap_or_default())
}

/// `strategy rolling { max_surge = …  max_unavailable = … }`; `None` after
/// reporting what is wrong.
fn read_rolling(
    strategy: &Block,
    settings: &BTreeMap<String, Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Strategy> {
    let max_surge = read_amount(strategy, "max_surge", settings, diagnostics);
    let max_unavailable = read_amount(strategy, "max_unavailable", settings, diagnostics);
    let max_surge = max_surge?.unwrap_or(Amount::Count(defaults::MAX_SURGE));
    let max_unavailable = max_unavailable?.unwrap_or(Amount::Count(defaults::MAX_UNAVAILABLE));
    if max_surge.of(100, true) == 0 && max_unavailable.of(100, false) == 0 {
        diagnostics.push(
            Diagnostic::error(Code::InvalidStrategy, "`max_surge` and `max_unavailable` cannot both be 0")
                .with_label(strategy.header_span, "this rollout could never make progress")
                .with_help("allow one extra instance (`max_surge = 1`) or one missing instance (`max_unavailable = 1`)"),
        );
        return None;
    }
    Some(Strategy::Rolling {
        max_surge,
        max_unavailable,
    })
}

/// Reports `problem` at `name` in `block`, with `help`.
fn bad(
    diagnostics: &mut Diagnostics,
    code: Code,
    block: &Block,
    name: &str,
    problem: String,
    help: &str,
) {
    diagnostics.push(
        Diagnostic::error(code, problem)
            .with_label(attribute_span(block, name), "here")
            .with_help(help.to_string()),
    );
}

/// `strategy canary { steps = [{ weight = 10, pause = "1m" }, …]  analysis { … } }`;
/// `None` after reporting what is wrong. A pause of `"forever"` (a manual
/// gate) and routing by customer (`match`, `sticky`) are not built yet:
/// errors, never ignored.
fn read_canary(
    strategy: &Block,
    settings: &BTreeMap<String, Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Strategy> {
    let errors = diagnostics.error_count();
    let step_help =
        "write steps = [{ weight = 10, pause = \"1m\" }, { weight = 50, pause = \"1m\" }]";
    let mut steps = Vec::new();
    match settings.get("steps") {
        Some(Value::List(written)) if !written.is_empty() => {
            for (at, step) in written.iter().enumerate() {
                let number = at + 1;
                let Value::Map(step) = step else {
                    bad(
                        diagnostics,
                        Code::InvalidStrategy,
                        strategy,
                        "steps",
                        format!("canary step {number} is not an object"),
                        step_help,
                    );
                    continue;
                };
                for key in step.keys() {
                    match key.as_str() {
                        "weight" | "pause" => {}
                        "match" => {}
                        "sticky" => bad(
                            diagnostics,
                            Code::UnsupportedStrategy,
                            strategy,
                            "steps",
                            format!(
                                "canary step {number}: sticky routing (`{key}`) is not built yet"
                            ),
                            "give the step a `weight` (a share of all requests) or a `match` (chosen customers)",
                        ),
                        other => bad(
                            diagnostics,
                            Code::UnknownArgument,
                            strategy,
                            "steps",
                            format!("canary step {number}: unknown setting `{other}`"),
                            "a step has `weight` and `pause`",
                        ),
                    }
                }
                let matching = match step.get("match") {
                    None => None,
                    Some(written) => match read_matching(written) {
                        Some(matching) => Some(matching),
                        None => {
                            bad(
                                diagnostics,
                                Code::InvalidStrategy,
                                strategy,
                                "steps",
                                format!(
                                    "canary step {number}: `match` needs a `header` and a list of `values`"
                                ),
                                "write match = { header = \"X-Org\", values = [\"acme\"] }",
                            );
                            continue;
                        }
                    },
                };
                let weight = match (step.get("weight"), &matching) {
                    (None, Some(_)) => 0,
                    (Some(_), Some(_)) => {
                        bad(
                            diagnostics,
                            Code::InvalidStrategy,
                            strategy,
                            "steps",
                            format!("canary step {number} has both `weight` and `match`"),
                            "a step sends either a share of all requests (`weight`) or the requests of chosen customers (`match`)",
                        );
                        continue;
                    }
                    (Some(Value::Number(n)), None)
                        if n.fract() == 0.0 && (1.0..=100.0).contains(n) =>
                    {
                        *n as u32
                    }
                    _ => {
                        bad(
                            diagnostics,
                            Code::InvalidStrategy,
                            strategy,
                            "steps",
                            format!(
                                "canary step {number} needs a `weight` from 1 to 100 (percent of the requests)"
                            ),
                            step_help,
                        );
                        continue;
                    }
                };
                let pause = match step.get("pause") {
                    None => Duration::ZERO,
                    Some(Value::String(text)) if &**text == "forever" => {
                        bad(
                            diagnostics,
                            Code::UnsupportedStrategy,
                            strategy,
                            "steps",
                            format!(
                                "canary step {number}: a pause \"forever\" (a manual gate) is not built yet"
                            ),
                            "give the pause a duration, e.g. \"5m\"",
                        );
                        continue;
                    }
                    Some(Value::String(text)) => match parse_duration(text) {
                        Some(pause) => pause,
                        None => {
                            bad(
                                diagnostics,
                                Code::InvalidDuration,
                                strategy,
                                "steps",
                                format!(
                                    "canary step {number}: `pause` is not a duration: \"{text}\""
                                ),
                                DURATION_HELP,
                            );
                            continue;
                        }
                    },
                    Some(_) => {
                        bad(
                            diagnostics,
                            Code::InvalidDuration,
                            strategy,
                            "steps",
                            format!("canary step {number}: `pause` must be a duration string"),
                            DURATION_HELP,
                        );
                        continue;
                    }
                };
                steps.push(CanaryStep {
                    weight,
                    matching,
                    pause,
                });
            }
        }
        _ => bad(
            diagnostics,
            Code::InvalidStrategy,
            strategy,
            "steps",
            "a canary needs `steps`, a list of { weight, pause }".into(),
            step_help,
        ),
    }
    let analysis = match settings.get("analysis") {
        Some(Value::List(blocks)) => match blocks.first() {
            Some(Value::Map(written)) => {
                let block = strategy
                    .blocks()
                    .find(|b| b.kind.name == "analysis")
                    .unwrap_or(strategy);
                Some(read_analysis(block, written, diagnostics))
            }
            _ => None,
        },
        _ => None,
    };
    for name in settings.keys() {
        if !["steps", "analysis"].contains(&name.as_str()) {
            bad(
                diagnostics,
                Code::UnknownArgument,
                strategy,
                name,
                format!("unknown argument `{name}` in a `canary` strategy"),
                "a canary has `steps` and an `analysis` block",
            );
        }
    }
    (diagnostics.error_count() == errors).then_some(Strategy::Canary { steps, analysis })
}

/// `{ header = "X-Org", values = ["acme", "initech"] }`.
fn read_matching(written: &Value) -> Option<Matching> {
    let Value::Map(fields) = written else {
        return None;
    };
    let header = fields.get("header")?.as_str()?.to_string();
    let Value::List(values) = fields.get("values")? else {
        return None;
    };
    let values: Vec<String> = values
        .iter()
        .map(|v| v.as_str().map(String::from))
        .collect::<Option<_>>()?;
    (!header.is_empty() && !values.is_empty() && fields.len() == 2)
        .then_some(Matching { header, values })
}

/// A canary's `analysis { … }` block.
fn read_analysis(
    block: &Block,
    written: &BTreeMap<String, Value>,
    diagnostics: &mut Diagnostics,
) -> Analysis {
    let mut analysis = Analysis {
        interval: read_duration(block, "interval", written.get("interval"), diagnostics)
            .unwrap_or(defaults::ANALYSIS_INTERVAL),
        failure_limit: defaults::FAILURE_LIMIT,
        inconclusive_limit: defaults::INCONCLUSIVE_LIMIT,
        consecutive_error_limit: defaults::CONSECUTIVE_ERROR_LIMIT,
        min_requests: defaults::MIN_REQUESTS,
        max_error_rate: None,
        max_p99_latency: read_duration(
            block,
            "max_p99_latency",
            written.get("max_p99_latency"),
            diagnostics,
        ),
    };
    for (name, value) in written {
        let count = match value {
            Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 => Some(*n as u64),
            _ => None,
        };
        let limit = |diagnostics: &mut Diagnostics| {
            if count.is_none() {
                bad(
                    diagnostics,
                    Code::TypeMismatch,
                    block,
                    name,
                    format!("`{name}` must be a whole number"),
                    "write e.g. `failure_limit = 2`",
                );
            }
            count.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        match name.as_str() {
            "interval" | "max_p99_latency" => {}
            "failure_limit" => analysis.failure_limit = limit(diagnostics).max(1),
            "inconclusive_limit" => analysis.inconclusive_limit = limit(diagnostics),
            "consecutive_error_limit" => analysis.consecutive_error_limit = limit(diagnostics),
            "min_requests" => analysis.min_requests = u64::from(limit(diagnostics)),
            "max_error_rate" => match value {
                Value::Number(rate) if (0.0..=1.0).contains(rate) => {
                    analysis.max_error_rate = Some(*rate);
                }
                _ => bad(
                    diagnostics,
                    Code::TypeMismatch,
                    block,
                    name,
                    "`max_error_rate` must be a share from 0 to 1 (0.01 is 1%)".into(),
                    "write e.g. `max_error_rate = 0.01`",
                ),
            },
            "query" => bad(
                diagnostics,
                Code::UnsupportedStrategy,
                block,
                name,
                "PromQL analysis (`query`) is not built yet".into(),
                "use max_error_rate and max_p99_latency, read from the load balancer",
            ),
            other => bad(
                diagnostics,
                Code::UnknownArgument,
                block,
                other,
                format!("unknown argument `{other}` in an `analysis` block"),
                "the arguments are interval, failure_limit, inconclusive_limit, consecutive_error_limit, min_requests, max_error_rate and max_p99_latency",
            ),
        }
    }
    analysis
}

/// `strategy blue_green { keep_blue = "30s"  auto_promote = true }`;
/// `None` after reporting what is wrong (a manual promotion is not built
/// yet: an error, not a silent automatic one).
fn read_blue_green(
    strategy: &Block,
    settings: &BTreeMap<String, Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Strategy> {
    let errors = diagnostics.error_count();
    let keep_blue = read_duration(
        strategy,
        "keep_blue",
        settings.get("keep_blue"),
        diagnostics,
    )
    .unwrap_or(defaults::KEEP_BLUE);
    for (name, value) in settings {
        match (name.as_str(), value) {
            ("keep_blue", _) | ("auto_promote", Value::Bool(true) | Value::Unknown) => {}
            ("auto_promote", Value::Bool(false)) => diagnostics.push(
                Diagnostic::error(
                    Code::UnsupportedStrategy,
                    "`auto_promote = false` (a manual promotion) is not built yet",
                )
                .with_label(attribute_span(strategy, name), "not built yet")
                .with_help("remove it: the switch happens as soon as the new version is healthy"),
            ),
            ("auto_promote", other) => diagnostics.push(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!(
                        "`auto_promote` must be true or false, not a {}",
                        other.type_name()
                    ),
                )
                .with_label(attribute_span(strategy, name), "not a bool")
                .with_help("write `auto_promote = true`"),
            ),
            (other, _) => diagnostics.push(
                Diagnostic::error(
                    Code::UnknownArgument,
                    format!("unknown argument `{other}` in a `blue_green` strategy"),
                )
                .with_label(
                    attribute_span(strategy, other),
                    "not a setting of blue_green",
                )
                .with_help(
                    did_you_mean(other, ["keep_blue", "auto_promote"])
                        .unwrap_or_else(|| "the settings are keep_blue and auto_promote".into()),
                ),
            ),
        }
    }
    (diagnostics.error_count() == errors).then_some(Strategy::BlueGreen { keep_blue })
}

/// `max_surge = 2` or `max_surge = "25%"`; `Some(None)` when not set,
/// `None` after reporting a bad value.
fn read_amount(
    block: &Block,
    name: &str,
    settings: &BTreeMap<String, Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Option<Amount>> {
    let amount = match settings.get(name) {
        None | Some(Value::Null | Value::Unknown) => return Some(None),
        Some(Value::Number(n)) if n.fract() == 0.0 && *n >= 0.0 && *n <= f64::from(u32::MAX) => {
            Some(Amount::Count(*n as u32))
        }
        Some(Value::String(text)) => text
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|p| *p <= 100)
            .map(Amount::Percent),
        Some(_) => None,
    };
    if amount.is_none() {
        diagnostics.push(
            Diagnostic::error(
                Code::InvalidStrategy,
                format!("`{name}` must be a whole number of instances or a percentage"),
            )
            .with_label(attribute_span(block, name), "not a count or a percentage")
            .with_help(format!("write e.g. `{name} = 1` or `{name} = \"25%\"`")),
        );
        return None;
    }
    Some(amount)
}

#[cfg(test)]
mod tests {
    use super::Amount;

    #[test]
    fn shares_round_up_for_a_surge_and_down_for_what_may_be_unavailable() {
        assert_eq!(Amount::Percent(25).of(10, true), 3);
        assert_eq!(Amount::Percent(25).of(10, false), 2);
        assert_eq!(Amount::Percent(100).of(4, true), 4);
        assert_eq!(Amount::Percent(1).of(4, false), 0);
        assert_eq!(Amount::Count(2).of(10, true), 2);
    }
}
