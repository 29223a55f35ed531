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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use infra_provider_sdk::{
    Attributes, CreateRequest, DeleteRequest, ObjectIdentity, Provider, UpdateRequest,
};

use crate::eval::{EvaluatedModule, Value, provider_of};
use crate::graph::ResourceGraph;
use crate::plan::{Action, Plan};
use crate::providers::Providers;
use crate::state::{OutputState, ResourceState, State};

pub use progress::{Progress, ProgressMode, Verb, seconds};
pub use steps::{Step, StepKind, steps};
pub use walker::{Cancel, Outcome, walk};
pub use working_state::{StateWriter, WorkingState};

/// Evaluates the configuration again against a state: how values unknown
/// at plan time are learned once what they depend on is applied.
pub type Reevaluate = Arc<dyn Fn(&State) -> Result<EvaluatedModule, String> + Send + Sync>;

/// A configured instance as apply needs it.
#[derive(Debug, Clone)]
pub struct PlannedInstance {
    pub type_name: String,
    /// As evaluated at plan time; unknown values are resolved before use.
    pub arguments: Arc<BTreeMap<String, Value>>,
    pub ignore_changes: Vec<String>,
    /// Instances it depends on (recorded in the state).
    pub dependencies: Vec<String>,
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
    pub reevaluate: Option<Reevaluate>,
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
            reevaluate: job.reevaluate.clone(),
            cache: tokio::sync::Mutex::new(None),
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
    let outcomes = walk(&waits, parallelism, cancel, |index| {
        let shared = shared.clone();
        async move { shared.run_step(index).await }
    })
    .await;
    ticker.abort();
    progress.close();
    let warnings = std::mem::take(&mut *shared.warnings.lock().expect("warnings"));
    ApplyReport {
        results: shared.steps.iter().cloned().zip(outcomes).collect(),
        warnings,
    }
}

impl Shared {
    async fn run_step(&self, index: usize) -> Result<(), String> {
        let step = &self.steps[index];
        let verb = match step.kind {
            StepKind::Create => Verb::Create,
            StepKind::Update => Verb::Update,
            StepKind::Destroy => Verb::Destroy,
        };
        // Everything this step waits for is recorded by now.
        let generation = self.working.generation();
        self.progress.started(&step.address, verb);
        let result = match step.kind {
            StepKind::Destroy => self.destroy(step).await,
            StepKind::Create | StepKind::Update => self.create_or_update(step, generation).await,
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
        // new object already; otherwise the object leaves the state.
        let keeps_new_object = matches!(
            change.action,
            Action::Replace {
                create_before_destroy: true
            }
        );
        if !keeps_new_object {
            self.working.record(|state| {
                state.resources.remove(&step.address);
            });
        }
        Ok(())
    }

    async fn create_or_update(&self, step: &Step, generation: u64) -> Result<(), String> {
        let instance = self
            .job
            .instances
            .get(&step.address)
            .ok_or_else(|| format!("`{}` is not in the configuration", step.address))?;
        let arguments = if instance.arguments.values().all(Value::is_wholly_known) {
            instance.arguments.clone()
        } else {
            self.resolver
                .arguments(&step.address, generation, &self.working)
                .await?
        };
        let mut config: Attributes = arguments
            .iter()
            .filter(|(_, value)| !matches!(value, Value::Null))
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect();
        let provider = self.provider_for(&instance.type_name)?;
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
            attributes: response.state,
            dependencies: instance.dependencies.clone(),
        };
        self.working.record(|state| {
            state.resources.insert(step.address.clone(), recorded);
        });
        Ok(())
    }
}

/// Learns the arguments that were unknown at plan time by evaluating the
/// configuration again against the working state. One evaluation serves
/// every step that became ready before it started (they share it).
struct Resolver {
    reevaluate: Option<Reevaluate>,
    cache: tokio::sync::Mutex<Option<Evaluation>>,
}

struct Evaluation {
    generation: u64,
    arguments: HashMap<String, Arc<BTreeMap<String, Value>>>,
}

impl Resolver {
    async fn arguments(
        &self,
        address: &str,
        generation: u64,
        working: &Arc<WorkingState>,
    ) -> Result<Arc<BTreeMap<String, Value>>, String> {
        let Some(reevaluate) = self.reevaluate.clone() else {
            return Err("its arguments are not known and cannot be evaluated again".into());
        };
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_none_or(|c| c.generation < generation) {
            let (snapshot, at) = working.snapshot();
            let evaluated = tokio::task::spawn_blocking(move || reevaluate(&snapshot))
                .await
                .map_err(|error| format!("evaluating the configuration again failed: {error}"))??;
            *cache = Some(Evaluation {
                generation: at,
                arguments: evaluated
                    .all_resources()
                    .into_iter()
                    .map(|i| (i.address.clone(), i.arguments.clone()))
                    .collect(),
            });
        }
        let arguments = cache
            .as_ref()
            .and_then(|c| c.arguments.get(address).cloned())
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
pub fn record_outputs(state: &mut State, evaluated: &EvaluatedModule) {
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

/// After an apply, every configured instance records its current
/// dependencies (a no-op change may still have new ones).
pub fn record_dependencies(state: &mut State, instances: &BTreeMap<String, PlannedInstance>) {
    for (address, instance) in instances {
        if let Some(resource) = state.resources.get_mut(address) {
            resource.dependencies = instance.dependencies.clone();
        }
    }
}
