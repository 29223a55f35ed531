//! The one typed reading of a `deployment` block: every argument checked,
//! durations parsed and defaults filled in here, once. What is written
//! wrong is a diagnostic at the line; a strategy the provider's fleet does
//! not implement is an error, never a silent fallback.

use std::time::Duration;

use infra_provider_sdk::parse_duration;

use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::eval::Value;
use crate::syntax::{Block, Item, Span};

use super::strategy::read_strategy;
pub use super::strategy::{Amount, Analysis, CanaryStep, Matching, Strategy};

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
const PROVIDERS: &[&str] = &["local", "aws"];
pub(super) const DURATION_HELP: &str =
    "write a number with a unit: \"250ms\", \"30s\", \"5m\" or \"1h\"";

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
    /// How long blue/green's preview requests reach the new set before
    /// the switch.
    pub const PREVIEW_PAUSE: Duration = Duration::from_secs(60);
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

/// Where the value of `name` is written in `block` (the block's header
/// when it is not).
pub(super) fn attribute_span(block: &Block, name: &str) -> Span {
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
    // (On aws, the target groups' health checks decide: the provider
    // refuses a `health` block there.)
    let on_aws = matches!(object.get("provider"), Some(Value::String(p)) if &**p == "aws");
    if !on_aws && block.blocks().all(|b| b.kind.name != "health") {
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
    let (Some(provider), Some(mut strategy)) = (provider, strategy) else {
        return None;
    };
    let text = |name: &str| match object.get(name) {
        Some(Value::String(text)) => Some(text.to_string()),
        Some(Value::Number(n)) => Some(Value::Number(*n).to_string()),
        _ => None,
    };
    strategy.fill_placeholders(text("version").as_deref(), text("address").as_deref());
    if provider == "aws" {
        check_aws_strategy(block, diagnostics);
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

/// What a rollout on `aws` cannot do yet, refused at the line that asks
/// for it rather than ignored: a sticky share of requests (an ALB rule
/// matches header values, it cannot hash them), and latency bounds (CloudWatch keeps latency averages and
/// percentiles per minute, not the histogram the analysis reads).
fn check_aws_strategy(block: &Block, diagnostics: &mut Diagnostics) {
    const NOT_ON_AWS: &[(&str, &str, &str)] = &[
        (
            "sticky",
            "a sticky canary step",
            "send the canary a share of all requests with `weight`, or chosen customers with `match`",
        ),
        (
            "max_p50_latency",
            "a latency bound",
            "bound the error rate with `max_error_rate`, or ask Prometheus with a `query` block",
        ),
        (
            "max_p99_latency",
            "a latency bound",
            "bound the error rate with `max_error_rate`, or ask Prometheus with a `query` block",
        ),
    ];
    /// Where `name` is set: as an attribute of the block or of a nested
    /// one, or as a key of an object in one (`steps = [{ match = … }]`).
    fn find(block: &Block, name: &str, found: &mut Vec<Span>) {
        fn in_expr(expr: &crate::syntax::Expr, name: &str, found: &mut Vec<Span>) {
            use crate::syntax::{ExprKind, ObjectKey};
            match &expr.kind {
                ExprKind::List(items) => items.iter().for_each(|i| in_expr(i, name, found)),
                ExprKind::Object(items) => {
                    for item in items {
                        match &item.key {
                            ObjectKey::Name(key) if key.name == name => found.push(key.span),
                            _ => in_expr(&item.value, name, found),
                        }
                    }
                }
                _ => {}
            }
        }
        for attribute in block.attributes() {
            if attribute.name.name == name {
                found.push(attribute.name.span);
            } else {
                in_expr(&attribute.value, name, found);
            }
        }
        for nested in block.blocks() {
            find(nested, name, found);
        }
    }
    for strategy in block.blocks().filter(|b| b.kind.name == "strategy") {
        for (name, what, help) in NOT_ON_AWS {
            let mut found = Vec::new();
            find(strategy, name, &mut found);
            for span in found {
                diagnostics.push(
                    Diagnostic::error(
                        Code::UnsupportedStrategy,
                        format!("{what} (`{name}`) is not built for deployments on aws yet"),
                    )
                    .with_label(span, "not on aws yet")
                    .with_help(*help),
                );
            }
        }
    }
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

pub(super) fn read_duration(
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
