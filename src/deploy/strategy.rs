//! The `strategy` block of a deployment, read: how a new version replaces
//! the old one (`rolling`, `blue_green`, `canary` with its steps and
//! analysis), with the settings' defaults and every mistake reported at
//! its line. What a provider's fleet implements is decided in `spec.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use infra_provider_sdk::parse_duration;

use super::spec::{DURATION_HELP, attribute_span, defaults, read_duration};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::eval::Value;
use crate::syntax::Block;

const STRATEGIES: &[&str] = &["rolling", "blue_green", "canary"];

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
    BlueGreen {
        keep_blue: Duration,
        /// `false`: the new set waits, ready and sent nothing, until
        /// `infra rollout promote` (a manual gate before the switch).
        auto_promote: bool,
        /// Judges the new set's answers: on the preview requests before
        /// the switch, and on all the traffic while the old set is kept;
        /// a failure before the switch stops the rollout with nothing
        /// moved, after it switches back.
        analysis: Option<Analysis>,
        /// Requests that reach the new set before the switch, for
        /// `pause` (smoke tests, people trying it).
        preview: Option<Preview>,
    },
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
    /// `pause = "forever"`: a manual gate — the rollout waits at this step
    /// until `infra rollout promote` (or `abort`).
    pub gate: bool,
}

/// Blue/green's preview: `preview = { header = "X-Preview", values =
/// ["1"] }` and `preview_pause = "1m"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub matching: Matching,
    pub pause: Duration,
}

/// Which requests a canary step sends to the new version, and only those:
/// `match = { header = "X-Org", values = ["acme"] }` (chosen customers), or
/// `sticky = "header:X-User"` / `"cookie:session"` with a `weight` (that
/// share of the customers, each always on the same side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    /// The header read (`Cookie` for a cookie).
    pub header: String,
    /// `match`: the values that go to the new version.
    pub values: Vec<String>,
    /// `sticky = "cookie:NAME"`: the cookie read from `Cookie`.
    pub cookie: Option<String>,
    /// `sticky`: the share of the values (hashed) that go to the new
    /// version.
    pub percent: Option<u32>,
}

impl Matching {
    /// `sticky = "header:X-User"` or `"cookie:session"`, before its share
    /// is known.
    fn sticky(written: &str) -> Option<Matching> {
        let (kind, name) = written.split_once(':')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let (header, cookie) = match kind.trim() {
            "header" => (name.to_string(), None),
            "cookie" => ("Cookie".to_string(), Some(name.to_string())),
            _ => return None,
        };
        Some(Matching {
            header,
            values: Vec::new(),
            cookie,
            percent: None,
        })
    }

    /// What a request carries that decides, for people: `X-User`,
    /// `cookie session`.
    pub fn key(&self) -> String {
        match &self.cookie {
            Some(cookie) => format!("cookie {cookie}"),
            None => self.header.clone(),
        }
    }
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
    pub max_p50_latency: Option<Duration>,
    pub max_p99_latency: Option<Duration>,
    /// PromQL queries asked at each reading, beside the load balancer's
    /// counters.
    pub queries: Vec<Query>,
}

/// `query "error_rate" { prometheus = "http://…"  expr = "…"  max = 0.01 }`
/// in an `analysis` block: a PromQL instant query whose one number must
/// stay within `min`/`max`. `{version}` in `expr` is the version being
/// rolled out and `{deployment}` the deployment's address.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub name: String,
    /// The server's base URL; `None` while it is known only after apply.
    pub prometheus: Option<String>,
    pub expr: String,
    pub max: Option<f64>,
    pub min: Option<f64>,
}

impl Strategy {
    /// Fills `{version}` and `{deployment}` in the analysis queries.
    pub(super) fn fill_placeholders(&mut self, version: Option<&str>, address: Option<&str>) {
        let analysis = match self {
            Strategy::Rolling { .. } => None,
            Strategy::BlueGreen { analysis, .. } | Strategy::Canary { analysis, .. } => {
                analysis.as_mut()
            }
        };
        for query in analysis.into_iter().flat_map(|a| a.queries.iter_mut()) {
            if let Some(version) = version {
                query.expr = query.expr.replace("{version}", version);
            }
            if let Some(address) = address {
                query.expr = query.expr.replace("{deployment}", address);
            }
        }
    }
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Rolling { .. } => "rolling",
            Strategy::BlueGreen { .. } => "blue_green",
            Strategy::Canary { .. } => "canary",
        }
    }

    /// The analysis a rollout of this strategy runs, if any.
    pub fn analysis(&self) -> Option<&Analysis> {
        match self {
            Strategy::Rolling { .. } => None,
            Strategy::BlueGreen { analysis, .. } | Strategy::Canary { analysis, .. } => {
                analysis.as_ref()
            }
        }
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

/// The one `strategy` block (rolling by default).
pub(super) fn read_strategy(
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
/// `None` after reporting what is wrong. A pause of `"forever"` is a
/// manual gate; `match` and `sticky` route by customer.
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
                        "weight" | "pause" | "match" | "sticky" => {}
                        other => bad(
                            diagnostics,
                            Code::UnknownArgument,
                            strategy,
                            "steps",
                            format!("canary step {number}: unknown setting `{other}`"),
                            "a step has `weight`, `pause`, and `match` or `sticky`",
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
                let sticky = match step.get("sticky") {
                    None => None,
                    Some(written) => match written.as_str().and_then(Matching::sticky) {
                        Some(_) if matching.is_some() => {
                            bad(
                                diagnostics,
                                Code::InvalidStrategy,
                                strategy,
                                "steps",
                                format!("canary step {number} has both `match` and `sticky`"),
                                "a step sends either chosen customers (`match`) or a sticky share of them (`sticky` with a `weight`)",
                            );
                            continue;
                        }
                        Some(sticky) => Some(sticky),
                        None => {
                            bad(
                                diagnostics,
                                Code::InvalidStrategy,
                                strategy,
                                "steps",
                                format!(
                                    "canary step {number}: `sticky` must be \"header:NAME\" or \"cookie:NAME\""
                                ),
                                "write sticky = \"header:X-User\" (or \"cookie:session\") with a weight: that share of the customers, each always on the same version",
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
                let gate =
                    matches!(step.get("pause"), Some(Value::String(text)) if &**text == "forever");
                let pause = match step.get("pause") {
                    None => Duration::ZERO,
                    Some(_) if gate => Duration::ZERO,
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
                // A sticky share: `weight` percent of the customers.
                let matching = matching.or(sticky.map(|sticky| Matching {
                    percent: Some(weight),
                    ..sticky
                }));
                steps.push(CanaryStep {
                    weight,
                    matching,
                    pause,
                    gate,
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
    let analysis = analysis_block(strategy, settings, diagnostics);
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
    (!header.is_empty() && !values.is_empty() && fields.len() == 2).then_some(Matching {
        header,
        values,
        cookie: None,
        percent: None,
    })
}

/// The strategy's `analysis { … }` block, read, if it has one.
fn analysis_block(
    strategy: &Block,
    settings: &BTreeMap<String, Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Analysis> {
    match settings.get("analysis") {
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
    }
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
        max_p50_latency: read_duration(
            block,
            "max_p50_latency",
            written.get("max_p50_latency"),
            diagnostics,
        ),
        max_p99_latency: read_duration(
            block,
            "max_p99_latency",
            written.get("max_p99_latency"),
            diagnostics,
        ),
        queries: Vec::new(),
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
            "interval" | "max_p50_latency" | "max_p99_latency" => {}
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
            "query" => {
                analysis.queries = read_queries(block, value, diagnostics);
            }
            other => bad(
                diagnostics,
                Code::UnknownArgument,
                block,
                other,
                format!("unknown argument `{other}` in an `analysis` block"),
                "the arguments are interval, failure_limit, inconclusive_limit, consecutive_error_limit, min_requests, max_error_rate, max_p50_latency and max_p99_latency; PromQL queries are `query \"NAME\" { … }` blocks",
            ),
        }
    }
    analysis
}

/// The `query "NAME" { … }` blocks of an `analysis` block (a map by
/// name, as labelled blocks evaluate).
fn read_queries(analysis: &Block, written: &Value, diagnostics: &mut Diagnostics) -> Vec<Query> {
    let Value::Map(by_name) = written else {
        if !matches!(written, Value::Unknown) {
            bad(
                diagnostics,
                Code::TypeMismatch,
                analysis,
                "query",
                "a PromQL query is a `query \"NAME\" { … }` block".into(),
                "write query \"error_rate\" { prometheus = local_prometheus.main.url  expr = \"…\"  max = 0.01 }",
            );
        }
        return Vec::new();
    };
    let mut queries = Vec::new();
    for (name, settings) in by_name.iter() {
        let block = analysis
            .blocks()
            .find(|b| b.kind.name == "query" && b.labels.first().is_some_and(|l| l.value == *name))
            .unwrap_or(analysis);
        let Value::Map(settings) = settings else {
            continue;
        };
        let mut query = Query {
            name: name.clone(),
            prometheus: None,
            expr: String::new(),
            max: None,
            min: None,
        };
        let mut ok = true;
        for (argument, value) in settings.iter() {
            match (argument.as_str(), value) {
                (_, Value::Unknown) => {}
                ("prometheus", Value::String(url)) if url.starts_with("http://") => {
                    query.prometheus = Some(url.trim_end_matches('/').to_string());
                }
                ("prometheus", _) => {
                    ok = false;
                    bad(
                        diagnostics,
                        Code::TypeMismatch,
                        block,
                        argument,
                        "`prometheus` must be the server's http:// URL".into(),
                        "e.g. prometheus = local_prometheus.main.url, or \"http://127.0.0.1:9090\"",
                    );
                }
                ("expr", Value::String(expr)) if !expr.trim().is_empty() => {
                    query.expr = expr.to_string();
                }
                ("max" | "min", Value::Number(bound)) => {
                    if argument == "max" {
                        query.max = Some(*bound);
                    } else {
                        query.min = Some(*bound);
                    }
                }
                ("expr" | "max" | "min", _) => {
                    ok = false;
                    bad(
                        diagnostics,
                        Code::TypeMismatch,
                        block,
                        argument,
                        format!(
                            "`{argument}` of query `{name}` must be a {}",
                            if argument == "expr" {
                                "PromQL expression (a string)"
                            } else {
                                "number"
                            }
                        ),
                        "e.g. expr = \"sum(rate(errors_total[1m]))\", max = 0.01",
                    );
                }
                (other, _) => {
                    ok = false;
                    bad(
                        diagnostics,
                        Code::UnknownArgument,
                        block,
                        other,
                        format!("unknown argument `{other}` in a `query` block"),
                        "the arguments are prometheus, expr, max and min",
                    );
                }
            }
        }
        let mut missing: Vec<(String, &str)> = Vec::new();
        for (required, help) in [
            (
                "prometheus",
                "say which server: prometheus = local_prometheus.main.url",
            ),
            (
                "expr",
                "the PromQL query, e.g. expr = \"sum(rate(errors_total[1m]))\"",
            ),
        ] {
            if !settings.contains_key(required) {
                missing.push((format!("query `{name}` needs `{required}`"), help));
            }
        }
        if !settings.contains_key("max") && !settings.contains_key("min") {
            missing.push((
                format!("query `{name}` has no bound"),
                "give `max` (the value must stay at or below it), `min`, or both",
            ));
        }
        for (problem, help) in missing {
            ok = false;
            diagnostics.push(
                Diagnostic::error(Code::MissingArgument, problem)
                    .with_label(block.header_span, "in this query")
                    .with_help(help),
            );
        }
        if ok
            && !query.expr.is_empty()
            && let Some(problem) = infra_provider_local::prometheus::check_expression(
                &query
                    .expr
                    .replace("{version}", "v")
                    .replace("{deployment}", "d"),
            )
        {
            ok = false;
            bad(
                diagnostics,
                Code::InvalidQuery,
                block,
                "expr",
                format!("query `{name}`: {problem}"),
                "fix the PromQL expression (promtool rejects it)",
            );
        }
        if ok {
            queries.push(query);
        }
    }
    queries
}

/// `strategy blue_green { keep_blue = "30s"  auto_promote = true }`;
/// `None` after reporting what is wrong.
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
            ("keep_blue" | "analysis" | "preview_pause", _)
            | ("auto_promote", Value::Bool(_) | Value::Unknown) => {}
            ("preview", written) => {
                if read_matching(written).is_none() {
                    bad(
                        diagnostics,
                        Code::InvalidStrategy,
                        strategy,
                        name,
                        "`preview` needs a `header` and a list of `values`".into(),
                        "write preview = { header = \"X-Preview\", values = [\"1\"] }: those requests reach the new set before the switch",
                    );
                }
            }
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
                    did_you_mean(
                        other,
                        ["keep_blue", "auto_promote", "analysis", "preview", "preview_pause"],
                    )
                    .unwrap_or_else(|| {
                        "the settings are keep_blue, auto_promote, preview, preview_pause and an analysis block".into()
                    }),
                ),
            ),
        }
    }
    let auto_promote = !matches!(settings.get("auto_promote"), Some(Value::Bool(false)));
    let analysis = analysis_block(strategy, settings, diagnostics);
    let preview_pause = read_duration(
        strategy,
        "preview_pause",
        settings.get("preview_pause"),
        diagnostics,
    );
    let preview = settings.get("preview").and_then(read_matching);
    if preview.is_none() && preview_pause.is_some() {
        bad(
            diagnostics,
            Code::InvalidStrategy,
            strategy,
            "preview_pause",
            "`preview_pause` without a `preview`: no request would reach the new set".into(),
            "add preview = { header = \"X-Preview\", values = [\"1\"] }, or remove preview_pause",
        );
    }
    let preview = preview.map(|matching| Preview {
        matching,
        pause: preview_pause.unwrap_or(defaults::PREVIEW_PAUSE),
    });
    (diagnostics.error_count() == errors).then_some(Strategy::BlueGreen {
        keep_blue,
        auto_promote,
        analysis,
        preview,
    })
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
