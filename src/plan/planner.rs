//! The planning pipeline, the one `infra plan`, `apply`, `destroy`, the
//! tests and the benchmarks all run: configure the providers, refresh the
//! state, read the data sources, evaluate against the refreshed state,
//! diff, let the providers refine and check it, then `--destroy`,
//! `--replace` and `--target`. The result is a [`Planned`]: the plan and
//! everything applying it takes. Nothing is changed anywhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::check::{CheckOptions, Loaded};
use crate::deploy::Deployments;
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::eval::{EvaluatedModule, Value, provider_of};
use crate::events::{Event, Events};
use crate::graph::instance_dependencies;
use crate::providers::{ProviderRegistry, validate_with_providers};
use crate::state::journal::PendingCreate;
use crate::state::{State, named_by};
use crate::syntax::{SourceMap, Span};

use super::data::read_data_sources;
use super::diff::{Plan, plan_loaded, refine_with_providers};
use super::modes::{Evaluation, check_replacements, destroy_plan, restrict_to_targets};
use super::recovery::adopt_pending;
use super::refresh::refresh;

/// What shapes a plan (the options of `infra plan`).
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Refresh the state through the providers first.
    pub refresh: bool,
    /// `--target`: only these and what they need.
    pub targets: Vec<String>,
    /// `--replace`: replaced although nothing forces it.
    pub replacements: Vec<String>,
    /// Provider calls at once while refreshing.
    pub parallelism: usize,
    /// `--destroy`: everything in the state goes.
    pub destroy: bool,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            refresh: true,
            targets: Vec::new(),
            replacements: Vec::new(),
            parallelism: 10,
            destroy: false,
        }
    }
}

/// A configured instance as apply needs it.
#[derive(Debug, Clone)]
pub struct PlannedInstance {
    pub type_name: Arc<str>,
    /// As evaluated at plan time; unknown values are resolved before use.
    pub arguments: Arc<BTreeMap<String, Value>>,
    pub ignore_changes: Vec<String>,
    /// Instances it depends on.
    pub dependencies: Vec<String>,
    /// What it depends on as the configuration names it (a whole resource
    /// once): what the state records.
    pub recorded_dependencies: Arc<[String]>,
    /// The paths of its secrets (recorded in the state).
    pub sensitive: Arc<[String]>,
    /// The block's header, where its problems point.
    pub span: Span,
}

/// The instances of an evaluated configuration, with their dependencies
/// from the resource graph.
pub fn planned_instances(evaluated: &EvaluatedModule) -> BTreeMap<String, PlannedInstance> {
    instance_dependencies(evaluated)
        .into_iter()
        .map(|(instance, dependencies)| {
            (
                instance.address.clone(),
                PlannedInstance {
                    type_name: instance.id.type_name.clone(),
                    arguments: instance.arguments.clone(),
                    ignore_changes: instance
                        .lifecycle
                        .ignore_changes
                        .iter()
                        .map(|i| i.name.clone())
                        .collect(),
                    dependencies: dependencies.into_iter().map(str::to_string).collect(),
                    recorded_dependencies: instance.dependencies.clone(),
                    sensitive: instance.sensitive.clone(),
                    span: instance.span,
                },
            )
        })
        .collect()
}

/// A plan and what it takes to apply it.
pub struct Planned {
    pub plan: Plan,
    /// The state the plan was made against (refreshed, with the data
    /// sources read while planning).
    pub refreshed: State,
    /// The configuration, to evaluate again while applying.
    pub evaluation: Arc<Evaluation>,
    /// The configured instances, by address.
    pub instances: BTreeMap<String, PlannedInstance>,
    /// Whether this is a `--destroy` plan.
    pub destroying: bool,
    /// The deployments, read: how apply rolls each one out.
    pub deployments: Deployments,
    /// Warnings found while planning (errors make a [`PlanFailure`]).
    pub warnings: Diagnostics,
    /// The root module's variables, and which are sensitive.
    pub variables: BTreeMap<String, Value>,
    pub sensitive_variables: Vec<String>,
}

/// Why no plan was made: every problem found, and the sources they point
/// into.
#[derive(Debug)]
pub struct PlanFailure {
    pub diagnostics: Diagnostics,
    pub sources: SourceMap,
}

/// Makes plans with one run's providers.
pub struct Planner<'r> {
    providers: &'r ProviderRegistry,
    options: PlanOptions,
    events: Events,
    /// Creates an interrupted run left pending (its journal).
    pending: Vec<PendingCreate>,
}

impl<'r> Planner<'r> {
    pub fn new(providers: &'r ProviderRegistry, options: PlanOptions) -> Planner<'r> {
        Planner {
            providers,
            options,
            events: Events::none(),
            pending: Vec::new(),
        }
    }

    /// Looks for the objects of these creates, which an interrupted run
    /// started and never recorded, before planning (`recovery.rs`).
    pub fn with_pending(mut self, pending: Vec<PendingCreate>) -> Planner<'r> {
        self.pending = pending;
        self
    }

    /// Reports refresh progress to `events`.
    pub fn with_events(mut self, events: Events) -> Planner<'r> {
        self.events = events;
        self
    }

    /// Plans `loaded` (read with `options`) against `state`: configures the
    /// providers from its `provider` blocks, then the whole pipeline.
    pub async fn plan(
        &self,
        loaded: Loaded,
        options: &CheckOptions,
        state: &State,
    ) -> Result<Planned, PlanFailure> {
        let providers = self.providers;
        let mut problems = providers
            .configure(&loaded.provider_settings(options), &options.dir)
            .await;
        let adopted;
        let state = if self.pending.is_empty() {
            state
        } else {
            let mut recovered = state.clone();
            let (warnings, count) = adopt_pending(&mut recovered, &self.pending, providers).await;
            problems.extend(warnings);
            tracing::debug!(
                pending = self.pending.len(),
                adopted = count,
                "pending creates looked for"
            );
            adopted = recovered;
            &adopted
        };
        let mut refreshed = if self.options.refresh {
            self.events.emit(Event::RefreshStarted {
                objects: state.resources.len(),
            });
            let (refreshed, diagnostics) =
                refresh(state, providers, self.options.parallelism).await;
            self.events.emit(Event::RefreshFinished {
                objects: state.resources.len(),
                gone: state
                    .resources
                    .keys()
                    .filter(|address| !refreshed.resources.contains_key(*address))
                    .count(),
            });
            problems.extend(diagnostics);
            refreshed
        } else {
            state.clone()
        };
        problems.extend(read_data_sources(&loaded, options, &mut refreshed, providers).await);
        let (mut checked, mut plan) =
            plan_loaded(loaded, options, &refreshed, &self.options.replacements);
        checked.diagnostics.extend(problems);
        if !checked.diagnostics.has_errors() {
            let refined = refine_with_providers(&mut plan, &refreshed, providers).await;
            checked.diagnostics.extend(refined);
        }
        if let Some(evaluated) = &checked.evaluated {
            if !checked.diagnostics.has_errors() {
                checked.diagnostics.extend(validate_with_providers(
                    evaluated,
                    checked.config.as_ref(),
                    providers,
                ));
            }
            checked
                .diagnostics
                .extend(missing_providers(evaluated, providers));
        }
        let mut evaluated = checked.evaluated.take().unwrap_or_default();
        let instances = planned_instances(&evaluated);
        if self.options.destroy {
            let (destroy, diagnostics) = destroy_plan(&refreshed, Some(&evaluated));
            plan = destroy;
            checked.diagnostics.extend(diagnostics);
        }
        checked
            .diagnostics
            .extend(check_replacements(&plan, &self.options.replacements));
        if !self.options.targets.is_empty() {
            let mut dependencies: BTreeMap<String, Vec<String>> = instances
                .iter()
                .map(|(address, i)| (address.clone(), i.dependencies.clone()))
                .collect();
            // Objects no longer configured depend on what the state says.
            for (address, resource) in &refreshed.resources {
                dependencies.entry(address.clone()).or_insert_with(|| {
                    resource
                        .dependencies
                        .iter()
                        .flat_map(|recorded| named_by(&refreshed.resources, recorded))
                        .map(|(address, _)| address.clone())
                        .collect()
                });
            }
            checked.diagnostics.extend(restrict_to_targets(
                &mut plan,
                &self.options.targets,
                &dependencies,
                self.options.destroy,
            ));
        }
        // Outputs as apply will record them; a destroy or a targeted plan
        // leaves them as they are (as Terraform's does).
        if !self.options.destroy && self.options.targets.is_empty() {
            plan.outputs = super::outputs::output_changes(&evaluated, &refreshed);
        }
        checked.diagnostics.sort();
        let config = match checked.config.take() {
            Some(config) if !checked.diagnostics.has_errors() => config,
            _ => {
                return Err(PlanFailure {
                    diagnostics: checked.diagnostics,
                    sources: checked.sources,
                });
            }
        };
        Ok(Planned {
            plan,
            refreshed,
            evaluation: Arc::new(Evaluation {
                config,
                variables: checked.variables,
                sources: checked.sources,
                schemas: options.schemas.clone(),
                expansions: Default::default(),
            }),
            instances,
            destroying: self.options.destroy,
            deployments: std::mem::take(&mut checked.deployments),
            warnings: checked.diagnostics,
            variables: std::mem::take(&mut evaluated.variables),
            sensitive_variables: std::mem::take(&mut evaluated.sensitive_variables),
        })
    }
}

/// A plan must be able to apply: every resource needs its provider.
fn missing_providers(evaluated: &EvaluatedModule, providers: &ProviderRegistry) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for instance in evaluated.all_resources() {
        let name = provider_of(&instance.id.type_name);
        if providers.get(name).is_none() {
            diagnostics.push(
                Diagnostic::error(Code::NoProvider, format!("no provider `{name}` in this build for `{}`", instance.address))
                    .with_label(instance.span, "cannot be planned or applied yet")
                    .with_help("the built-in providers are `local`, `random` and `aws`; `infra validate` checks configurations of other providers without them"),
            );
        }
    }
    diagnostics
}
