//! Checks of a `deployment` block that need its evaluated values: known
//! arguments, one strategy of a known kind, valid durations, and the
//! contradictions DEPLOYMENTS.md rules out.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::syntax::{Block, Item, Span};

use super::value::Value;

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
const DURATIONS: &[&str] = &[
    "min_ready",
    "healthy_deadline",
    "progress_deadline",
    "drain",
];

pub use infra_provider_sdk::parse_duration;

fn attribute_span(block: &Block, name: &str) -> Span {
    block
        .attributes()
        .find(|a| a.name.name == name)
        .map(|a| a.value.span)
        .unwrap_or(block.header_span)
}

fn check_duration(
    block: &Block,
    name: &str,
    value: Option<&Value>,
    diagnostics: &mut Diagnostics,
) -> Option<Duration> {
    match value? {
        Value::String(text) => match parse_duration(text) {
            Some(duration) => Some(duration),
            None => {
                diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidDuration,
                        format!("`{name}` is not a duration: \"{text}\""),
                    )
                    .with_label(attribute_span(block, name), "not a duration")
                    .with_help("write a number with a unit: \"250ms\", \"30s\", \"5m\" or \"1h\""),
                );
                None
            }
        },
        Value::Unknown => None,
        other => {
            diagnostics.push(
                Diagnostic::error(
                    Code::InvalidDuration,
                    format!(
                        "`{name}` must be a duration string, not a {}",
                        other.type_name()
                    ),
                )
                .with_label(attribute_span(block, name), "not a duration")
                .with_help("write a number with a unit: \"250ms\", \"30s\", \"5m\" or \"1h\""),
            );
            None
        }
    }
}

pub fn check_deployment(block: &Block, value: &Value, diagnostics: &mut Diagnostics) {
    let Value::Map(object) = value else { return };
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
    if let Some(Value::String(provider)) = object.get("provider")
        && !["local", "aws"].contains(&provider.as_ref())
    {
        diagnostics.push(
            Diagnostic::error(
                Code::UnknownProvider,
                format!("unknown deployment provider `{provider}`"),
            )
            .with_label(attribute_span(block, "provider"), "not a fleet provider")
            .with_help(
                did_you_mean(provider, ["local", "aws"])
                    .unwrap_or_else(|| "use `local` or `aws`".into()),
            ),
        );
    }
    let mut durations = std::collections::HashMap::new();
    for name in DURATIONS {
        if let Some(duration) = check_duration(block, name, object.get(*name), diagnostics) {
            durations.insert(*name, duration);
        }
    }
    if let (Some(progress), Some(healthy)) = (
        durations.get("progress_deadline"),
        durations.get("healthy_deadline"),
    ) && progress <= healthy
    {
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
    // Unlabelled nested blocks evaluate to a list of objects, in order.
    if let Some(Value::List(evaluated)) = object.get("health") {
        let blocks = block.blocks().filter(|b| b.kind.name == "health");
        for (health, settings) in blocks.zip(evaluated.iter()) {
            if let Value::Map(settings) = settings {
                for name in ["interval", "timeout"] {
                    check_duration(health, name, settings.get(name), diagnostics);
                }
            }
        }
    }
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
    for strategy in strategies {
        let Some(label) = strategy.labels.first() else {
            diagnostics.push(
                Diagnostic::error(Code::BlockLabels, "missing strategy kind")
                    .with_label(strategy.header_span, "which strategy?")
                    .with_help("write `strategy rolling { … }`, `strategy blue_green { … }` or `strategy canary { … }`"),
            );
            continue;
        };
        if !STRATEGIES.contains(&label.value.as_str()) {
            diagnostics.push(
                Diagnostic::error(
                    Code::UnknownStrategy,
                    format!("unknown strategy `{}`", label.value),
                )
                .with_label(label.span, "not a strategy")
                .with_help(
                    did_you_mean(&label.value, STRATEGIES.iter().copied()).unwrap_or_else(|| {
                        "the strategies are rolling, blue_green and canary".into()
                    }),
                ),
            );
            continue;
        }
        let settings = match object.get("strategy") {
            Some(Value::Map(by_kind)) => by_kind.get(&label.value).cloned(),
            _ => None,
        };
        if label.value == "rolling"
            && let Some(Value::Map(settings)) = settings
        {
            let surge = settings
                .get("max_surge")
                .cloned()
                .unwrap_or(Value::Number(1.0));
            let unavailable = settings
                .get("max_unavailable")
                .cloned()
                .unwrap_or(Value::Number(0.0));
            if surge == Value::Number(0.0) && unavailable == Value::Number(0.0) {
                diagnostics.push(
                    Diagnostic::error(Code::InvalidStrategy, "`max_surge` and `max_unavailable` cannot both be 0")
                        .with_label(strategy.header_span, "this rollout could never make progress")
                        .with_help("allow one extra instance (`max_surge = 1`) or one missing instance (`max_unavailable = 1`)"),
                );
            }
        }
    }
}

/// The resource a checked `deployment` block becomes: the provider named
/// (whose `<provider>_deployment` type manages it) and the arguments. The
/// `template` and `health` blocks become objects, and `load_balancer` (a
/// `local_lb`) its `listen` address, which is known at plan time. `None`
/// while the provider is unknown.
pub fn deployment_resource(value: &Value) -> Option<(String, BTreeMap<String, Value>)> {
    let Value::Map(fields) = value else {
        return None;
    };
    let provider = fields.get("provider")?.as_str()?;
    let mut arguments = BTreeMap::new();
    for (name, field) in fields.iter() {
        let field = match (name.as_str(), field) {
            ("provider", _) => continue,
            ("template" | "health", Value::List(blocks)) => match blocks.first() {
                Some(block) => block.clone(),
                None => continue,
            },
            ("load_balancer", Value::Map(balancer)) => balancer
                .get("listen")
                .or_else(|| balancer.get("id"))
                .cloned()
                .unwrap_or(Value::Unknown),
            _ => field.clone(),
        };
        arguments.insert(name.clone(), field);
    }
    Some((provider.to_string(), arguments))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 minutes"), None);
    }
}
