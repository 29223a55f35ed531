//! Deployments: a `deployment` block is read once into a typed
//! [`DeploymentSpec`] (`spec.rs`: checks, durations, defaults) and becomes
//! the resource instance its provider's fleet manages
//! (`deployment.NAME`, of type `<provider>_deployment`).
//!
//! Evaluation (`eval/`) knows a deployment only as a block whose value
//! references can read; [`lower`] runs after every evaluation of the
//! configuration (see `check::evaluate_with_deployments`). `rollout.rs`
//! works out what a change will do, for the plan; `executor.rs` does it,
//! driving the provider's fleet (`infra_provider_sdk::Fleet`), with the
//! canary analysis of `analysis.rs`.

pub mod analysis;
pub mod executor;
pub mod record;
pub mod rollout;
pub mod spec;
pub mod strategy;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use rollout::{Rollout, Step, rollout_of};
pub use spec::{Amount, DeploymentSpec, Health, Strategy};
pub use strategy::{Analysis, Matching};

use crate::config::ModuleConfig;
use crate::diagnostics::Diagnostics;
use crate::eval::{EvaluatedModule, Segment, SensitivePath, Value};

/// The type evaluation gives a `deployment` block's instance until
/// [`lower`] reads it.
pub const UNREAD_TYPE: &str = "deployment";

/// The deployments of a configuration, read: by address.
pub type Deployments = BTreeMap<String, DeploymentSpec>;

/// Reads every deployment of an evaluated configuration: a valid one
/// becomes its provider's resource (`<provider>_deployment`, arguments as
/// the fleet takes them); one with problems reports them and is left out.
pub fn lower(
    evaluated: &mut EvaluatedModule,
    config: &ModuleConfig,
    diagnostics: &mut Diagnostics,
) -> Deployments {
    let mut read = Deployments::new();
    evaluated.resources.retain_mut(|instance| {
        if &*instance.id.type_name != UNREAD_TYPE {
            return true;
        }
        let name = instance.id.name.to_string();
        let (Some(declared), Some(value)) = (
            config.declarations.deployments.get(&name),
            evaluated.deployments.get(&name),
        ) else {
            return false;
        };
        if let Value::Map(fields) = value
            && matches!(fields.get("provider"), Some(Value::String(p)) if &**p == "aws")
        {
            check_listener_weights(&declared.block, config, diagnostics);
        }
        let Some(spec) = spec::read(&declared.block, value, diagnostics) else {
            return false;
        };
        instance.id.type_name = format!("{}_deployment", spec.provider).into();
        instance.arguments = Arc::new(fleet_arguments(value, &spec));
        instance.sensitive = fleet_secret_paths(&instance.sensitive);
        read.insert(instance.address.clone(), spec);
        true
    });
    for (segment, child) in &mut evaluated.children {
        // `net`, or an instance of it: `net[0]`, `net["a"]`.
        let name = segment.split('[').next().unwrap_or(segment);
        if let Some(child_config) = config.children.get(name) {
            read.extend(lower(child, child_config, diagnostics));
        }
    }
    read
}

/// An aws deployment sets its listener's weights: the `aws_lb_listener` it
/// names must leave them to it (`lifecycle { ignore_changes = [forward] }`),
/// or the next apply would put back the weights as written — all traffic
/// to the target group a blue/green rollout just emptied.
fn check_listener_weights(
    block: &crate::syntax::Block,
    config: &ModuleConfig,
    diagnostics: &mut Diagnostics,
) {
    use crate::syntax::{ExprKind, Step};
    let Some(attribute) = block.attributes().find(|a| a.name.name == "load_balancer") else {
        return;
    };
    let ExprKind::Traversal { root, steps } = &attribute.value.kind else {
        return;
    };
    let (ExprKind::Variable(kind), Some(Step::Attr(name))) = (&root.kind, steps.first()) else {
        return;
    };
    if kind.name != "aws_lb_listener" {
        return;
    }
    let id = crate::config::ResourceId {
        mode: crate::config::ResourceMode::Managed,
        type_name: kind.name.as_str().into(),
        name: name.name.as_str().into(),
    };
    let Some(listener) = config.declarations.resources.get(&id) else {
        return;
    };
    if listener
        .lifecycle
        .ignore_changes
        .iter()
        .any(|ignored| ignored.name == "forward")
    {
        return;
    }
    diagnostics.push(
        crate::diagnostics::Diagnostic::error(
            crate::diagnostics::Code::ListenerWeights,
            format!("the deployment sets the weights of `{id}`, which does not leave them to it"),
        )
        .with_label(attribute.value.span, "this listener's `forward` weights change with every rollout")
        .with_label(listener.header_span, "would put its written weights back at the next apply")
        .with_help(format!(
            "add `lifecycle {{ ignore_changes = [forward] }}` to `{id}` (Terraform users know it from CodeDeploy's blue/green)"
        )),
    );
}

/// The paths of a deployment's secrets as they are in its fleet's
/// arguments: `template[0].env.KEY` is `template.env.KEY` there (see
/// [`fleet_arguments`]); a secret in `load_balancer` marks its address.
fn fleet_secret_paths(paths: &[String]) -> Arc<[String]> {
    let mut moved: Vec<String> = paths
        .iter()
        .map(|text| {
            let mut path = SensitivePath::parse(text);
            match path.attribute() {
                Some("template" | "health") if matches!(path.0.get(1), Some(Segment::Index(0))) => {
                    path.0.remove(1);
                    path.to_string()
                }
                Some("load_balancer") => "load_balancer".to_string(),
                _ => text.clone(),
            }
        })
        .collect();
    moved.sort();
    moved.dedup();
    moved.into()
}

/// The arguments a fleet takes: the block's, with `template` and `health`
/// as objects, `load_balancer` (a `local_lb`) as its `listen` address,
/// which is known at plan time. The strategy is the engine's (the
/// executor reads the spec, not these), but it is recorded in one normal
/// form — counts worked out, durations in milliseconds, defaults filled
/// in — so that the plan shows a change of strategy that changes what a
/// rollout does, and only such a change.
fn fleet_arguments(value: &Value, spec: &DeploymentSpec) -> BTreeMap<String, Value> {
    let Value::Map(fields) = value else {
        return BTreeMap::new();
    };
    let mut arguments = BTreeMap::new();
    for (name, field) in fields.iter() {
        let field = match (name.as_str(), field) {
            // (`address` is the evaluator's, for references, not written.)
            ("provider" | "address", _) => continue,
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
    // (Only when the block has a `strategy`: the fleet's defaults are the
    // same, and a configuration without one plans as it always did.)
    if fields.contains_key("strategy") {
        let (kind, settings) = match spec.strategy {
            Strategy::Rolling { .. } => {
                let (surge, unavailable) = spec.rolling_batch().unwrap_or((1, 0));
                (
                    "rolling",
                    BTreeMap::from([
                        ("max_surge".to_string(), Value::Number(surge as f64)),
                        (
                            "max_unavailable".to_string(),
                            Value::Number(unavailable as f64),
                        ),
                    ]),
                )
            }
            // As written (the spec checked it), or the default.
            Strategy::BlueGreen { .. } => {
                let written = match fields.get("strategy") {
                    Some(Value::Map(kinds)) => match kinds.get("blue_green") {
                        Some(Value::Map(settings)) => settings.get("keep_blue").cloned(),
                        _ => None,
                    },
                    _ => None,
                };
                let mut settings = BTreeMap::from([(
                    "keep_blue".to_string(),
                    written.unwrap_or_else(|| Value::string(spec::DEFAULT_KEEP_BLUE)),
                )]);
                if let Strategy::BlueGreen {
                    auto_promote,
                    ref analysis,
                    ref preview,
                    ..
                } = spec.strategy
                {
                    if let Some(preview) = preview {
                        let values = preview.matching.values.iter().map(Value::string).collect();
                        settings.insert(
                            "preview".into(),
                            Value::map(BTreeMap::from([
                                (
                                    "header".to_string(),
                                    Value::string(&preview.matching.header),
                                ),
                                ("values".to_string(), Value::list(values)),
                            ])),
                        );
                        settings.insert(
                            "preview_pause_ms".into(),
                            Value::Number(preview.pause.as_millis() as f64),
                        );
                    }
                    if !auto_promote {
                        settings.insert("auto_promote".into(), Value::Bool(false));
                    }
                    if let Some(analysis) = analysis {
                        settings.insert("analysis".into(), analysis_value(analysis));
                    }
                }
                ("blue_green", settings)
            }
            Strategy::Canary {
                ref steps,
                ref analysis,
            } => {
                let millis = |d: std::time::Duration| Value::Number(d.as_millis() as f64);
                let steps = steps
                    .iter()
                    .map(|step| {
                        let pause = if step.gate {
                            ("pause".to_string(), Value::string("forever"))
                        } else {
                            ("pause_ms".to_string(), millis(step.pause))
                        };
                        let mut fields = BTreeMap::from([
                            ("weight".to_string(), Value::Number(f64::from(step.weight))),
                            pause,
                        ]);
                        if let Some(Matching {
                            header,
                            cookie,
                            percent: Some(_),
                            ..
                        }) = &step.matching
                        {
                            let key = match cookie {
                                Some(cookie) => format!("cookie:{cookie}"),
                                None => format!("header:{header}"),
                            };
                            fields.insert("sticky".into(), Value::string(&key));
                        } else if let Some(matching) = &step.matching {
                            let values = matching.values.iter().map(Value::string).collect();
                            fields.insert(
                                "match".into(),
                                Value::map(BTreeMap::from([
                                    ("header".to_string(), Value::string(&matching.header)),
                                    ("values".to_string(), Value::list(values)),
                                ])),
                            );
                        }
                        Value::map(fields)
                    })
                    .collect();
                let mut settings = BTreeMap::from([("steps".to_string(), Value::list(steps))]);
                if let Some(analysis) = analysis {
                    settings.insert("analysis".into(), analysis_value(analysis));
                }
                ("canary", settings)
            }
        };
        arguments.insert(
            "strategy".into(),
            Value::map(BTreeMap::from([(kind.to_string(), Value::map(settings))])),
        );
    }
    arguments
}

/// An analysis as it is recorded: durations in milliseconds, defaults
/// filled in.
fn analysis_value(analysis: &Analysis) -> Value {
    let millis = |d: std::time::Duration| Value::Number(d.as_millis() as f64);
    let mut rules = BTreeMap::from([
        ("interval_ms".to_string(), millis(analysis.interval)),
        (
            "failure_limit".to_string(),
            Value::Number(f64::from(analysis.failure_limit)),
        ),
        (
            "inconclusive_limit".to_string(),
            Value::Number(f64::from(analysis.inconclusive_limit)),
        ),
        (
            "consecutive_error_limit".to_string(),
            Value::Number(f64::from(analysis.consecutive_error_limit)),
        ),
        (
            "min_requests".to_string(),
            Value::Number(analysis.min_requests as f64),
        ),
    ]);
    if let Some(rate) = analysis.max_error_rate {
        rules.insert("max_error_rate".into(), Value::Number(rate));
    }
    if let Some(p50) = analysis.max_p50_latency {
        rules.insert("max_p50_latency_ms".into(), millis(p50));
    }
    if let Some(p99) = analysis.max_p99_latency {
        rules.insert("max_p99_latency_ms".into(), millis(p99));
    }
    if !analysis.queries.is_empty() {
        let queries = analysis.queries.iter().map(|query| {
            let mut fields = BTreeMap::from([
                ("expr".to_string(), Value::string(&query.expr)),
                (
                    "prometheus".to_string(),
                    query
                        .prometheus
                        .as_deref()
                        .map_or(Value::Unknown, Value::string),
                ),
            ]);
            for (name, bound) in [("max", query.max), ("min", query.min)] {
                if let Some(bound) = bound {
                    fields.insert(name.into(), Value::Number(bound));
                }
            }
            (query.name.clone(), Value::map(fields))
        });
        rules.insert("query".into(), Value::map(queries.collect()));
    }
    Value::map(rules)
}
