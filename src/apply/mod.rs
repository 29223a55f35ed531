//! Apply: carrying out a plan through the providers.
//!
//! `steps.rs` turns the plan into provider operations and what each waits
//! for; `walker.rs` runs them as soon as their dependencies finish, up to
//! `parallelism` at a time; this module runs one step (resolving values
//! that were unknown at plan time, calling the provider, recording the
//! result); `working_state.rs` keeps the state file up to date as steps
//! finish; `progress.rs` prints what happens.

mod progress;
mod steps;
mod walker;
mod working_state;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use infra_provider_sdk::{
    Attributes, CreateRequest, DeleteRequest, ObjectIdentity, Provider, UpdateRequest,
};

use crate::eval::{EvaluatedModule, Value, provider_of};
use crate::graph::{ResourceGraph, without_key};
use crate::plan::{Action, Evaluation, Plan};
use crate::providers::Providers;
use crate::state::{OutputState, ResourceState, State};

pub use progress::{Progress, ProgressMode, Verb, seconds};
pub use steps::{Step, StepKind, steps};
pub use walker::{Cancel, Outcome, walk};
pub use working_state::{StateWriter, WorkingState};

/// A configured instance as apply needs it.
#[derive(Debug, Clone)]
pub struct PlannedInstance {
    pub type_name: String,
    /// As evaluated at plan time; unknown values are resolved before use.
    pub arguments: Arc<BTreeMap<String, Value>>,
    pub ignore_changes: Vec<String>,
    /// Instances it depends on (recorded in the state).
    pub dependencies: Vec<String>,
    /// Its sensitive attributes (recorded in the state).
    pub sensitive: Vec<String>,
}

/// Everything an apply needs besides the working state.
pub struct ApplyJob {
    pub plan: Plan,
    /// The configured instances, by address (none when destroying).
    pub instances: BTreeMap<String, PlannedInstance>,
    /// The state the plan was made against (refreshed): the objects that
    /// destroys remove.
    pub prior: State,
    pub providers: Providers,
    pub parallelism: usize,
    /// The configuration, evaluated again to learn values unknown at plan
    /// time once what they depend on is applied.
    pub evaluation: Option<Arc<Evaluation>>,
}

impl ApplyJob {
    /// The instances of an evaluated configuration, with their dependencies
    /// from the resource graph.
    pub fn instances_of(evaluated: &EvaluatedModule) -> BTreeMap<String, PlannedInstance> {
        let graph = ResourceGraph::build(evaluated);
        evaluated
            .all_resources()
            .into_iter()
            .map(|instance| {
                (
                    instance.address.clone(),
                    PlannedInstance {
                        type_name: instance.id.type_name.to_string(),
                        arguments: instance.arguments.clone(),
                        ignore_changes: instance
                            .lifecycle
                            .ignore_changes
                            .iter()
                            .map(|i| i.name.clone())
                            .collect(),
                        dependencies: graph
                            .dependencies_of(&instance.address)
                            .into_iter()
                            .map(str::to_string)
                            .collect(),
                        sensitive: instance.sensitive.to_vec(),
                    },
                )
            })
            .collect()
    }
}

/// What happened to each step.
#[derive(Debug)]
pub struct ApplyReport {
    pub results: Vec<(Step, Outcome)>,
    /// Provider warnings, with the address they concern.
    pub warnings: Vec<String>,
    /// How long the walk took, from the first step started to the last
    /// finished.
    pub elapsed: std::time::Duration,
}

impl ApplyReport {
    pub fn count(&self, wanted: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|(_, o)| wanted(o)).count()
    }

    pub fn succeeded(&self) -> bool {
        self.results.iter().all(|(_, o)| *o == Outcome::Done)
    }

    /// `(added, changed, destroyed)` among the finished steps; a
    /// replacement counts as one added and one destroyed.
    pub fn totals(&self) -> (usize, usize, usize) {
        let done = |kind: StepKind| {
            self.results
                .iter()
                .filter(|(s, o)| s.kind == kind && *o == Outcome::Done)
                .count()
        };
        (
            done(StepKind::Create),
            done(StepKind::Update),
            done(StepKind::Destroy),
        )
    }
}

struct Shared {
    job: ApplyJob,
    steps: Vec<Step>,
    working: Arc<WorkingState>,
    progress: Arc<Progress>,
    resolver: Resolver,
    warnings: Mutex<Vec<String>>,
}

/// Runs the plan's changes. The working state holds every finished change
/// as it happens (a [`StateWriter`] on it saves them).
pub async fn apply(
    job: ApplyJob,
    working: Arc<WorkingState>,
    progress: Arc<Progress>,
    cancel: &Cancel,
) -> ApplyReport {
    let dependencies: BTreeMap<String, Vec<String>> = job
        .instances
        .iter()
        .map(|(address, instance)| (address.clone(), instance.dependencies.clone()))
        .collect();
    let steps = steps(&job.plan, &dependencies, &job.prior);
    let waits: Vec<Vec<usize>> = steps.iter().map(|s| s.waits_for.clone()).collect();
    let parallelism = job.parallelism;
    let shared = Arc::new(Shared {
        resolver: Resolver {
            evaluation: job.evaluation.clone(),
            cores: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            ),
        },
        job,
        steps,
        working,
        progress: progress.clone(),
        warnings: Mutex::new(Vec::new()),
    });
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                interval.tick().await;
                progress.tick();
            }
        })
    };
    let started = std::time::Instant::now();
    let outcomes = walk(&waits, parallelism, cancel, |index| {
        let shared = shared.clone();
        async move { shared.run_step(index).await }
    })
    .await;
    let elapsed = started.elapsed();
    ticker.abort();
    progress.close();
    let warnings = std::mem::take(&mut *shared.warnings.lock().expect("warnings"));
    ApplyReport {
        results: shared.steps.iter().cloned().zip(outcomes).collect(),
        warnings,
        elapsed,
    }
}

impl Shared {
    async fn run_step(&self, index: usize) -> Result<(), String> {
        let step = &self.steps[index];
        let verb = match step.kind {
            StepKind::Create => Verb::Create,
            StepKind::Update => Verb::Update,
            StepKind::Destroy => Verb::Destroy,
            StepKind::Read => Verb::Read,
        };
        self.progress.started(&step.address, verb);
        let result = match step.kind {
            StepKind::Destroy => self.destroy(step).await,
            StepKind::Create | StepKind::Update | StepKind::Read => {
                self.create_or_update(step).await
            }
        };
        self.progress.finished(
            &step.address,
            verb,
            result.as_ref().map(|_| ()).map_err(String::as_str),
        );
        result
    }

    fn provider_for(&self, type_name: &str) -> Result<Arc<dyn Provider>, String> {
        let name = provider_of(type_name);
        self.job
            .providers
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no provider `{name}` in this build"))
    }

    fn identity(&self, address: &str) -> ObjectIdentity {
        ObjectIdentity {
            address: address.to_string(),
            lineage: self.job.prior.lineage.clone(),
        }
    }

    fn warn(&self, address: &str, diagnostics: Vec<infra_provider_sdk::Diagnostic>) {
        let mut warnings = self.warnings.lock().expect("warnings");
        for diagnostic in diagnostics {
            warnings.push(format!("{address}: {}", diagnostic.summary));
        }
    }

    async fn destroy(&self, step: &Step) -> Result<(), String> {
        let change = &self.job.plan.changes[step.change];
        let Some(object) = self.job.prior.resources.get(&step.address) else {
            // Gone already (refresh found it missing): nothing to do.
            return Ok(());
        };
        let provider = self.provider_for(&object.type_name)?;
        provider
            .delete(DeleteRequest {
                type_name: object.type_name.clone(),
                identity: self.identity(&step.address),
                state: object.attributes.clone(),
            })
            .await
            .map_err(|error| error.to_string())?;
        // After a create-before-destroy replacement the address holds the
        // new object and the old one was kept as deposed: that entry goes.
        let gone = if is_create_before_destroy(change.action) {
            deposed_address(&step.address, &object.attributes)
        } else {
            step.address.clone()
        };
        self.working.record(|state| {
            state.resources.remove(&gone);
        });
        Ok(())
    }

    async fn create_or_update(&self, step: &Step) -> Result<(), String> {
        let instance = self
            .job
            .instances
            .get(&step.address)
            .ok_or_else(|| format!("`{}` is not in the configuration", step.address))?;
        let arguments = if instance.arguments.values().all(Value::is_wholly_known) {
            instance.arguments.clone()
        } else {
            self.resolver
                .arguments(&step.address, &self.job.instances, &self.working)
                .await?
        };
        let mut config: Attributes = arguments
            .iter()
            .filter(|(_, value)| !matches!(value, Value::Null))
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect();
        let provider = self.provider_for(&instance.type_name)?;
        if step.kind == StepKind::Read {
            let attributes = provider
                .read_data(infra_provider_sdk::ReadDataRequest {
                    type_name: instance.type_name.clone(),
                    config,
                })
                .await
                .map_err(|error| error.to_string())?;
            let recorded = ResourceState {
                type_name: instance.type_name.clone(),
                provider: provider.name().to_string(),
                attributes,
                dependencies: instance.dependencies.clone(),
                sensitive: Vec::new(),
            };
            // For what refers to it; never saved.
            self.working.record(|state| {
                state.resources.insert(step.address.clone(), recorded);
            });
            return Ok(());
        }
        let response = match step.kind {
            StepKind::Update => {
                let prior = self
                    .working
                    .read(|state| {
                        state
                            .resources
                            .get(&step.address)
                            .map(|r| r.attributes.clone())
                    })
                    .unwrap_or_default();
                // Ignored attributes keep the object's values.
                for name in &instance.ignore_changes {
                    match prior.get(name) {
                        Some(value) => config.insert(name.clone(), value.clone()),
                        None => config.remove(name),
                    };
                }
                provider
                    .update(UpdateRequest {
                        type_name: instance.type_name.clone(),
                        identity: self.identity(&step.address),
                        prior,
                        config,
                    })
                    .await
            }
            _ => {
                provider
                    .create(CreateRequest {
                        type_name: instance.type_name.clone(),
                        identity: self.identity(&step.address),
                        config,
                    })
                    .await
            }
        }
        .map_err(|error| error.to_string())?;
        self.warn(&step.address, response.diagnostics);
        let recorded = ResourceState {
            type_name: instance.type_name.clone(),
            provider: provider.name().to_string(),
            sensitive: held_secrets(&instance.sensitive, &response.state),
            attributes: response.state,
            dependencies: instance.dependencies.clone(),
        };
        let change = &self.job.plan.changes[step.change];
        self.working.record(|state| {
            // The old object of a create-before-destroy replacement stays in
            // the state, as deposed, until its destroy step succeeds: an
            // interrupted or failed run leaves no untracked object, and the
            // next plan destroys it.
            if is_create_before_destroy(change.action)
                && let Some(old) = state.resources.remove(&step.address)
            {
                state
                    .resources
                    .insert(deposed_address(&step.address, &old.attributes), old);
            }
            state.resources.insert(step.address.clone(), recorded);
        });
        Ok(())
    }
}

/// Learns the arguments that were unknown at plan time, once everything
/// the instance depends on is applied: the configuration is evaluated
/// again, focused on its resource and what it needs, against the state of
/// those dependencies — so the cost grows with the dependencies, not with
/// the configuration, and steps resolve in parallel.
struct Resolver {
    evaluation: Option<Arc<Evaluation>>,
    /// Evaluations are CPU work: one per core at a time, on threads the
    /// blocking pool reuses (a thread per waiting step would spend more
    /// time starting threads than evaluating).
    cores: tokio::sync::Semaphore,
}

impl Resolver {
    async fn arguments(
        &self,
        address: &str,
        instances: &BTreeMap<String, PlannedInstance>,
        working: &WorkingState,
    ) -> Result<Arc<BTreeMap<String, Value>>, String> {
        let Some(evaluation) = self.evaluation.clone() else {
            return Err("its arguments are not known and cannot be evaluated again".into());
        };
        // The instance and everything it depends on, transitively.
        let mut needed: BTreeSet<&str> = BTreeSet::new();
        let mut pending = vec![address];
        while let Some(next) = pending.pop() {
            if needed.insert(next) {
                pending.extend(
                    instances
                        .get(next)
                        .into_iter()
                        .flat_map(|i| i.dependencies.iter().map(String::as_str)),
                );
            }
        }
        let state = working.read(|state| State {
            resources: needed
                .iter()
                .filter_map(|a| state.resources.get(*a).map(|r| (a.to_string(), r.clone())))
                .collect(),
            outputs: Default::default(),
            ..State::new(state.lineage.clone())
        });
        let focus: BTreeSet<String> = [without_key(address).to_string()].into();
        let wanted = address.to_string();
        let _core = self
            .cores
            .acquire()
            .await
            .map_err(|_| "the apply is shutting down".to_string())?;
        let arguments = tokio::task::spawn_blocking(move || {
            evaluation.focused(&state, &focus).map(|evaluated| {
                evaluated
                    .all_resources()
                    .into_iter()
                    .find(|i| i.address == wanted)
                    .map(|i| i.arguments.clone())
            })
        })
        .await
        .map_err(|error| format!("evaluating the configuration again failed: {error}"))??
        .ok_or_else(|| format!("`{address}` is no longer in the configuration"))?;
        let unknown: Vec<&str> = arguments
            .iter()
            .filter(|(_, v)| !v.is_wholly_known())
            .map(|(k, _)| k.as_str())
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "{} still unknown after everything it depends on was applied",
                crate::diagnostics::code_list(unknown)
            ));
        }
        Ok(arguments)
    }
}

/// Records the root module's outputs of a final evaluation in the state:
/// known ones are set, ones no longer configured are removed, and ones
/// still unknown (after a partial failure) keep their previous value.
fn record_outputs(state: &mut State, evaluated: &EvaluatedModule) {
    state
        .outputs
        .retain(|name, _| evaluated.outputs.contains_key(name));
    for (name, output) in &evaluated.outputs {
        if output.value.is_wholly_known() {
            state.outputs.insert(
                name.clone(),
                OutputState {
                    value: output.value.to_json(),
                    sensitive: output.sensitive,
                },
            );
        }
    }
}

fn is_create_before_destroy(action: Action) -> bool {
    action
        == Action::Replace {
            create_before_destroy: true,
        }
}

/// Where the state keeps the old object of a create-before-destroy
/// replacement until it is destroyed: `random_id.x (deposed 1a2b3c4d)`,
/// named after a digest of its attributes so that each old object has its
/// own entry. Not in the configuration, so a plan destroys it.
pub fn deposed_address(address: &str, attributes: &Attributes) -> String {
    let json = serde_json::to_value(attributes).unwrap_or_default();
    let digest = crate::plan::json_digest(&json);
    format!("{address} (deposed {})", &digest[..8])
}

/// The sensitive attributes that hold a value (the ones the state records).
pub fn held_secrets(sensitive: &[String], attributes: &Attributes) -> Vec<String> {
    sensitive
        .iter()
        .filter(|name| attributes.get(*name).is_some_and(|v| !v.is_null()))
        .cloned()
        .collect()
}

/// After an apply, every configured instance records its current
/// dependencies and sensitive attributes (a no-op change may still have
/// new ones).
fn record_dependencies(state: &mut State, instances: &BTreeMap<String, PlannedInstance>) {
    for (address, instance) in instances {
        if let Some(resource) = state.resources.get_mut(address) {
            resource.dependencies = instance.dependencies.clone();
            resource.sensitive = held_secrets(&instance.sensitive, &resource.attributes);
        }
    }
}

/// A plan made without a terminal, lock or state file, with what applying
/// it takes: the engine as tests and benchmarks drive it (the CLI adds
/// those around the same steps).
pub struct HeadlessPlan {
    pub plan: Plan,
    /// The state the plan was made against (refreshed).
    pub refreshed: State,
    pub evaluation: Arc<Evaluation>,
    pub instances: BTreeMap<String, PlannedInstance>,
    pub destroying: bool,
}

/// Why a headless plan was not made: its diagnostics, and the sources
/// they point into.
pub type PlanFailure = (crate::diagnostics::Diagnostics, crate::syntax::SourceMap);

/// Refreshes `state` and plans the configuration against it (`destroying`:
/// plans to destroy everything instead), with the providers' plan hooks.
pub async fn plan_headless(
    options: &crate::check::CheckOptions,
    state: State,
    providers: &Providers,
    parallelism: usize,
    destroying: bool,
) -> Result<HeadlessPlan, PlanFailure> {
    let loaded = crate::check::load(options);
    let mut problems = providers
        .configure(&loaded.provider_settings(options), &options.dir)
        .await;
    let (mut refreshed, diagnostics) = crate::plan::refresh(&state, providers, parallelism).await;
    problems.extend(diagnostics);
    problems
        .extend(crate::plan::read_data_sources(&loaded, options, &mut refreshed, providers).await);
    let (mut checked, mut plan) = crate::plan::plan_loaded(loaded, options, &refreshed, &[]);
    checked.diagnostics.extend(problems);
    if !checked.diagnostics.has_errors() {
        let refined = crate::plan::refine_with_providers(&mut plan, &refreshed, providers).await;
        checked.diagnostics.extend(refined);
    }
    let evaluated = checked.evaluated.take().unwrap_or_default();
    if destroying {
        let (destroy, diagnostics) = crate::plan::destroy_plan(&refreshed, Some(&evaluated));
        plan = destroy;
        checked.diagnostics.extend(diagnostics);
    }
    checked.diagnostics.sort();
    let config = match checked.config.take() {
        Some(config) if !checked.diagnostics.has_errors() => config,
        _ => return Err((checked.diagnostics, checked.sources)),
    };
    Ok(HeadlessPlan {
        plan,
        refreshed,
        evaluation: Arc::new(Evaluation {
            config,
            variables: checked.variables,
            sources: checked.sources,
            schemas: options.schemas.clone(),
        }),
        instances: ApplyJob::instances_of(&evaluated),
        destroying,
    })
}

/// Applies a headless plan; returns the state afterwards.
pub async fn apply_headless(
    planned: HeadlessPlan,
    providers: &Providers,
    parallelism: usize,
) -> (State, ApplyReport) {
    let working = WorkingState::new(planned.refreshed.clone());
    let job = ApplyJob {
        plan: planned.plan,
        instances: planned.instances.clone(),
        prior: planned.refreshed,
        providers: providers.clone(),
        parallelism,
        evaluation: Some(planned.evaluation.clone()),
    };
    let progress = Arc::new(Progress::new(ProgressMode::Quiet));
    let report = apply(job, working.clone(), progress, &Cancel::default()).await;
    let mut state = working.snapshot();
    finish_state(
        &mut state,
        &planned.instances,
        &planned.evaluation,
        planned.destroying,
    );
    (state.without_data_sources(), report)
}

/// [`plan_headless`] then [`apply_headless`].
pub async fn plan_and_apply(
    options: &crate::check::CheckOptions,
    state: State,
    providers: &Providers,
    parallelism: usize,
    destroying: bool,
) -> Result<(State, ApplyReport), PlanFailure> {
    let planned = plan_headless(options, state, providers, parallelism, destroying).await?;
    Ok(apply_headless(planned, providers, parallelism).await)
}

/// The last touches after an apply: every configured instance's
/// dependencies, and the outputs as the configuration now evaluates.
pub fn finish_state(
    state: &mut State,
    instances: &BTreeMap<String, PlannedInstance>,
    evaluation: &crate::plan::Evaluation,
    destroying: bool,
) {
    record_dependencies(state, instances);
    if destroying {
        if state.resources.is_empty() {
            state.outputs.clear();
        }
    } else if let Ok(evaluated) = evaluation.against(state) {
        record_outputs(state, &evaluated);
    }
}
