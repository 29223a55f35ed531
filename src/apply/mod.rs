//! Apply: carrying out a plan through the providers.
//!
//! `steps.rs` turns the plan into provider operations and what each waits
//! for; `walker.rs` runs them as soon as their dependencies finish, up to
//! `parallelism` at a time; this module runs one step (resolving values
//! that were unknown at plan time, calling the provider, recording the
//! result) and reports each as an event; `working_state.rs` keeps the state
//! saved through the backend as steps finish.

mod steps;
mod walker;
mod working_state;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infra_provider_sdk::{
    Attributes, CreateRequest, DeleteRequest, FleetRequest, ObjectIdentity, Provider, UpdateRequest,
};

use crate::deploy::record::RolloutRecord;
use crate::deploy::{DeploymentSpec, Deployments, executor};
use crate::eval::{EvaluatedModule, Value, provider_of};
use crate::events::{Event, Events, Verb};
use crate::plan::{Action, Evaluation, Plan, Planned, PlannedInstance, Records};
use crate::providers::{Operation, OperationFailure, ProviderRegistry};
use crate::state::{OutputState, ResourceState, State};

pub use steps::{Step, StepKind, steps};
pub use walker::{Cancel, Outcome, walk};
pub use working_state::{StateWriter, WorkingState};

/// Everything an apply needs besides the working state.
pub struct ApplyJob {
    pub plan: Plan,
    /// The configured instances, by address (none when destroying).
    pub instances: BTreeMap<String, PlannedInstance>,
    /// The state the plan was made against (refreshed): the objects that
    /// destroys remove.
    pub prior: State,
    pub providers: ProviderRegistry,
    pub parallelism: usize,
    /// The configuration, evaluated again to learn values unknown at plan
    /// time once what they depend on is applied, and at the end for the
    /// outputs.
    pub evaluation: Arc<Evaluation>,
    pub destroying: bool,
    /// The deployments, read: a deployment's create or update is a rollout
    /// the engine drives on its provider's fleet.
    pub deployments: Deployments,
    /// `infra rollout promote|abort ADDR`: what to do with that
    /// deployment's rollout.
    pub rollout_command: Option<RolloutCommand>,
}

/// `infra rollout promote|abort ADDR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutCommand {
    pub address: String,
    pub action: RolloutAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    /// Through the manual gate the rollout waits at.
    Promote,
    /// Back to the previous version.
    Abort,
}

impl ApplyJob {
    /// The job of carrying out `planned` with `providers`.
    pub fn new(planned: Planned, providers: &ProviderRegistry, parallelism: usize) -> ApplyJob {
        ApplyJob {
            plan: planned.plan,
            instances: planned.instances,
            prior: planned.refreshed,
            providers: providers.clone(),
            parallelism,
            evaluation: planned.evaluation,
            destroying: planned.destroying,
            deployments: planned.deployments,
            rollout_command: None,
        }
    }
}

/// The changes in flight, with when each started: what the progress ticker
/// reports on, and what a second Ctrl-C abandons.
#[derive(Default)]
pub struct InFlight {
    running: Mutex<BTreeMap<String, (Verb, Instant, u64)>>,
}

impl InFlight {
    fn start(&self, address: &str, verb: Verb) {
        self.running
            .lock()
            .expect("in flight")
            .insert(address.to_string(), (verb, Instant::now(), 0));
    }

    /// Removes `address`; how long it ran.
    fn finish(&self, address: &str) -> Duration {
        self.running
            .lock()
            .expect("in flight")
            .remove(address)
            .map(|(_, since, _)| since.elapsed())
            .unwrap_or_default()
    }

    /// The addresses in flight now.
    pub fn addresses(&self) -> Vec<String> {
        self.running
            .lock()
            .expect("in flight")
            .keys()
            .cloned()
            .collect()
    }

    /// A `Progress` event for each change that has run another `every`.
    fn report(&self, events: &Events, every: Duration) {
        let mut due = Vec::new();
        for (address, (verb, since, reported)) in self.running.lock().expect("in flight").iter_mut()
        {
            let periods = since.elapsed().as_secs() / every.as_secs().max(1);
            if periods > *reported {
                *reported = periods;
                due.push(Event::Progress {
                    address: address.clone(),
                    verb: *verb,
                    elapsed: every * u32::try_from(periods).unwrap_or(u32::MAX),
                });
            }
        }
        for event in due {
            events.emit(event);
        }
    }
}

/// How often a long operation is reported still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What happened to each step.
#[derive(Debug)]
pub struct ApplyReport {
    pub results: Vec<(Step, Outcome<OperationFailure>)>,
    /// Provider warnings, with the address they concern.
    pub warnings: Vec<(String, infra_provider_sdk::Diagnostic)>,
    /// How long the walk took, from the first step started to the last
    /// finished.
    pub elapsed: Duration,
}

impl ApplyReport {
    pub fn count(&self, wanted: impl Fn(&Outcome<OperationFailure>) -> bool) -> usize {
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

    /// The failures, in step order.
    pub fn failures(&self) -> impl Iterator<Item = (&Step, &OperationFailure)> {
        self.results
            .iter()
            .filter_map(|(step, outcome)| match outcome {
                Outcome::Failed(failure) => Some((step, failure)),
                _ => None,
            })
    }
}

struct Shared {
    job: ApplyJob,
    steps: Vec<Step>,
    working: Arc<WorkingState>,
    events: Events,
    in_flight: Arc<InFlight>,
    resolver: Resolver,
    warnings: Mutex<Vec<(String, infra_provider_sdk::Diagnostic)>>,
}

fn verb_of(kind: StepKind) -> Verb {
    match kind {
        StepKind::Create => Verb::Create,
        StepKind::Update => Verb::Update,
        StepKind::Destroy => Verb::Destroy,
        StepKind::Read => Verb::Read,
    }
}

fn operation_of(kind: StepKind) -> Operation {
    match kind {
        StepKind::Create => Operation::Create,
        StepKind::Update => Operation::Update,
        StepKind::Destroy => Operation::Delete,
        StepKind::Read => Operation::ReadData,
    }
}

/// Runs the plan's changes, then records the outputs and dependencies as
/// the configuration now evaluates. The working state holds every finished
/// change as it happens (a [`StateWriter`] on it saves them); each change
/// is reported to `events`; `in_flight` shows what runs now.
pub async fn apply(
    job: ApplyJob,
    working: Arc<WorkingState>,
    events: Events,
    in_flight: Arc<InFlight>,
    cancel: &Cancel,
) -> ApplyReport {
    let dependencies: BTreeMap<String, Vec<String>> = job
        .instances
        .iter()
        .map(|(address, instance)| (address.clone(), instance.dependencies.clone()))
        .collect();
    let steps = steps(&job.plan, &dependencies, &job.prior);
    tracing::debug!(
        steps = steps.len(),
        parallelism = job.parallelism,
        "apply: walking the steps"
    );
    let waits: Vec<Vec<usize>> = steps.iter().map(|s| s.waits_for.clone()).collect();
    let parallelism = job.parallelism;
    events.emit(Event::ApplyStarted {
        changes: steps.len(),
    });
    let shared = Arc::new(Shared {
        resolver: Resolver {
            evaluation: job.evaluation.clone(),
        },
        job,
        steps,
        working,
        events: events.clone(),
        in_flight: in_flight.clone(),
        warnings: Mutex::new(Vec::new()),
    });
    let ticker = {
        let (events, in_flight) = (events.clone(), in_flight.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(250));
            loop {
                interval.tick().await;
                in_flight.report(&events, PROGRESS_EVERY);
            }
        })
    };
    let started = Instant::now();
    let outcomes = walk(&waits, parallelism, cancel, |index| {
        let shared = shared.clone();
        async move { shared.run_step(index).await }
    })
    .await;
    let elapsed = started.elapsed();
    ticker.abort();
    for (index, outcome) in outcomes.iter().enumerate() {
        if let Outcome::Skipped { because } = outcome {
            let step = &shared.steps[index];
            events.emit(Event::Skipped {
                address: step.address.clone(),
                verb: verb_of(step.kind),
                because: shared.steps[*because].address.clone(),
            });
        }
    }
    shared.finish();
    let warnings = std::mem::take(&mut *shared.warnings.lock().expect("warnings"));
    let report = ApplyReport {
        results: shared.steps.iter().cloned().zip(outcomes).collect(),
        warnings,
        elapsed,
    };
    let (added, changed, destroyed) = report.totals();
    events.emit(Event::ApplyFinished {
        added,
        changed,
        destroyed,
        failed: report.count(|o| matches!(o, Outcome::Failed(_))),
        skipped: report.count(|o| matches!(o, Outcome::Skipped { .. })),
        not_started: report.count(|o| *o == Outcome::NotStarted),
        elapsed,
    });
    report
}

impl Shared {
    async fn run_step(&self, index: usize) -> Result<(), OperationFailure> {
        let step = &self.steps[index];
        let verb = verb_of(step.kind);
        self.in_flight.start(&step.address, verb);
        self.events.emit(Event::Started {
            address: step.address.clone(),
            verb,
        });
        let result = match step.kind {
            StepKind::Destroy => self.destroy(step).await,
            StepKind::Create | StepKind::Update | StepKind::Read => {
                self.create_or_update(step).await
            }
        };
        let elapsed = self.in_flight.finish(&step.address);
        let address = step.address.clone();
        match &result {
            Ok(()) => self.events.emit(Event::Finished {
                address,
                verb,
                elapsed,
            }),
            Err(failure) => self.events.emit(Event::Failed {
                address,
                verb,
                elapsed,
                failure: failure.clone(),
            }),
        }
        result
    }

    fn provider_for(
        &self,
        step: &Step,
        type_name: &str,
    ) -> Result<Arc<dyn Provider>, OperationFailure> {
        let name = provider_of(type_name);
        self.job.providers.get(name).cloned().ok_or_else(|| {
            OperationFailure::engine(
                operation_of(step.kind),
                &step.address,
                format!("no provider `{name}` in this build"),
            )
        })
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
            warnings.push((address.to_string(), diagnostic));
        }
    }

    async fn destroy(&self, step: &Step) -> Result<(), OperationFailure> {
        let change = &self.job.plan.changes[step.change];
        let Some(object) = self.job.prior.resources.get(&step.address) else {
            // Gone already (refresh found it missing): nothing to do.
            return Ok(());
        };
        let provider = self.provider_for(step, &object.type_name)?;
        provider
            .delete(DeleteRequest {
                type_name: object.type_name.clone(),
                identity: self.identity(&step.address),
                state: object.attributes.clone(),
            })
            .await
            .map_err(|error| {
                OperationFailure::from_provider(Operation::Delete, &step.address, error)
            })?;
        // After a create-before-destroy replacement the address holds the
        // new object and the old one was kept as deposed: that entry goes.
        let gone = if is_create_before_destroy(change.action) {
            deposed_address(&step.address, &object.attributes)
        } else {
            step.address.clone()
        };
        let recorded = self.working.record_at(&[&gone], |state| {
            state.resources.remove(&gone);
        });
        self.durable(step, recorded).await
    }

    async fn create_or_update(&self, step: &Step) -> Result<(), OperationFailure> {
        let operation = operation_of(step.kind);
        let instance = self.job.instances.get(&step.address).ok_or_else(|| {
            OperationFailure::engine(
                operation,
                &step.address,
                format!("`{}` is not in the configuration", step.address),
            )
        })?;
        let arguments = if instance.arguments.values().all(Value::is_wholly_known) {
            instance.arguments.clone()
        } else {
            self.resolver
                .arguments(&step.address, &self.working)
                .map_err(|message| OperationFailure::engine(operation, &step.address, message))?
        };
        let mut config: Attributes = arguments
            .iter()
            .filter(|(_, value)| !matches!(value, Value::Null))
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect();
        let provider = self.provider_for(step, &instance.type_name)?;
        let failed = |error| OperationFailure::from_provider(operation, &step.address, error);
        if step.kind == StepKind::Read {
            let attributes = provider
                .read_data(infra_provider_sdk::ReadDataRequest {
                    type_name: instance.type_name.to_string(),
                    config,
                })
                .await
                .map_err(failed)?;
            let recorded = ResourceState {
                type_name: instance.type_name.to_string(),
                provider: provider.name().to_string(),
                attributes,
                dependencies: instance.recorded_dependencies.to_vec(),
                sensitive: Vec::new(),
            };
            // For what refers to it; never saved.
            self.working.record(|state| {
                state.resources.insert(step.address.clone(), recorded);
            });
            return Ok(());
        }
        // What the provider says it is doing shows beside the change.
        let progress = {
            let (events, address) = (self.events.clone(), step.address.clone());
            infra_provider_sdk::Progress::new(move |message| {
                events.emit(Event::Step {
                    address: address.clone(),
                    message: message.to_string(),
                });
            })
        };
        let prior = match step.kind {
            StepKind::Update => self
                .working
                .read(|state| {
                    state
                        .resources
                        .get(&step.address)
                        .map(|r| r.attributes.clone())
                })
                .unwrap_or_default(),
            _ => Attributes::new(),
        };
        if step.kind == StepKind::Update {
            // Ignored attributes keep the object's values.
            for name in &instance.ignore_changes {
                match prior.get(name) {
                    Some(value) => config.insert(name.clone(), value.clone()),
                    None => config.remove(name),
                };
            }
        }
        // A deployment is rolled out by the engine, on its provider's fleet.
        let fleet = self.job.deployments.get(&step.address).and_then(|spec| {
            let request = FleetRequest {
                type_name: instance.type_name.to_string(),
                identity: self.identity(&step.address),
                config: config.clone(),
                prior: prior.clone(),
            };
            Some((spec, provider.fleet(request)?))
        });
        let response = match (fleet, step.kind) {
            (Some((spec, fleet)), _) => match fleet {
                Ok(fleet) => self
                    .roll_out(&step.address, spec, fleet.as_ref(), prior, &progress)
                    .await
                    .map(infra_provider_sdk::ObjectResponse::from),
                Err(error) => Err(error),
            },
            (None, StepKind::Update) => {
                provider
                    .update(UpdateRequest {
                        type_name: instance.type_name.to_string(),
                        identity: self.identity(&step.address),
                        prior,
                        config,
                        progress,
                    })
                    .await
            }
            (None, _) => {
                self.working
                    .creating(&step.address, &instance.type_name, provider.name(), &config)
                    .await
                    .map_err(|message| {
                        OperationFailure::engine(
                            operation,
                            &step.address,
                            format!("{message}; nothing was created"),
                        )
                    })?;
                provider
                    .create(CreateRequest {
                        type_name: instance.type_name.to_string(),
                        identity: self.identity(&step.address),
                        config,
                        progress,
                    })
                    .await
            }
        }
        .map_err(failed)?;
        crash_point::after_create();
        self.warn(&step.address, response.diagnostics);
        let recorded = ResourceState {
            type_name: instance.type_name.to_string(),
            provider: provider.name().to_string(),
            sensitive: held_secrets(&instance.sensitive, &response.state),
            attributes: response.state,
            dependencies: instance.recorded_dependencies.to_vec(),
        };
        let change = &self.job.plan.changes[step.change];
        // The old object of a create-before-destroy replacement stays in the
        // state, as deposed, until its destroy step succeeds: an interrupted
        // or failed run leaves no untracked object, and the next plan
        // destroys it.
        let deposed = self.working.read(|state| {
            let old = state
                .resources
                .get(&step.address)
                .filter(|_| is_create_before_destroy(change.action))?;
            Some(deposed_address(&step.address, &old.attributes))
        });
        let mut changed = vec![step.address.as_str()];
        changed.extend(deposed.as_deref());
        let recorded = self.working.record_at(&changed, |state| {
            if let Some(deposed) = &deposed
                && let Some(old) = state.resources.remove(&step.address)
            {
                state.resources.insert(deposed.clone(), old);
            }
            state.resources.insert(step.address.clone(), recorded);
        });
        self.durable(step, recorded).await
    }

    /// Waits until the change just recorded is durable: its dependents
    /// start only then.
    async fn durable(&self, step: &Step, sequence: Option<u64>) -> Result<(), OperationFailure> {
        self.working.durable(sequence).await.map_err(|message| {
            OperationFailure::engine(
                operation_of(step.kind),
                &step.address,
                format!("the change was made, but could not be journaled: {message}; the state keeps it if it can still be saved"),
            )
        })
    }

    /// A deployment's create or update: the engine's rollout on the
    /// provider's fleet, its record kept in the working state as it goes
    /// (a paused rollout is recorded on the previous version's object, so
    /// that the next plan still shows the new version pending). Returns
    /// the attributes to record.
    async fn roll_out(
        &self,
        address: &str,
        spec: &DeploymentSpec,
        fleet: &dyn infra_provider_sdk::Fleet,
        prior: Attributes,
        progress: &infra_provider_sdk::Progress,
    ) -> Result<Attributes, infra_provider_sdk::ProviderError> {
        let action = self
            .job
            .rollout_command
            .as_ref()
            .filter(|command| command.address == address)
            .map(|command| command.action);
        let without_record = |mut attributes: Attributes| {
            attributes.remove(RolloutRecord::ATTRIBUTE);
            attributes
        };
        if action == Some(RolloutAction::Abort) {
            let serving = executor::abort(spec, fleet, progress).await?;
            progress.report(&format!(
                "rolled back: {serving} instance(s) of the previous version serve"
            ));
            return Ok(without_record(prior));
        }
        let on_record = {
            let (working, address) = (self.working.clone(), address.to_string());
            move |record: &RolloutRecord| {
                working.record_at(&[&address], |state| {
                    if let Some(object) = state.resources.get_mut(&address) {
                        object
                            .attributes
                            .insert(RolloutRecord::ATTRIBUTE.into(), record.to_json());
                    }
                });
            }
        };
        let control = executor::Control {
            recorded: RolloutRecord::of(&prior),
            promote: action == Some(RolloutAction::Promote),
            on_record: &on_record,
            queries: &crate::deploy::analysis::PrometheusApi,
        };
        match executor::execute(spec, fleet, progress, &control).await? {
            executor::Outcome::Done(state) => Ok(without_record(state)),
            executor::Outcome::Paused(record) => {
                let mut attributes = prior;
                attributes.insert(RolloutRecord::ATTRIBUTE.into(), record.to_json());
                Ok(attributes)
            }
        }
    }

    /// The last touches after the walk: every configured instance's
    /// dependencies, and the outputs as the configuration now evaluates.
    fn finish(&self) {
        // In place: the walk is over, nothing else reads the working state
        // but the writer, which waits.
        self.working.record(|state| {
            finish_state(
                state,
                &self.job.instances,
                &self.job.evaluation,
                self.job.destroying,
            );
        });
    }
}

/// Fault injection for the crash tests, off unless asked for:
/// `INFRA_CRASH_AFTER_CREATES=N` aborts the process (no destructor runs, no
/// buffer is flushed: what `kill -9` does) as the Nth create returns, in the
/// window between the provider's answer and its record.
mod crash_point {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub fn after_create() {
        static LIMIT: OnceLock<Option<usize>> = OnceLock::new();
        static CREATED: AtomicUsize = AtomicUsize::new(0);
        let limit = LIMIT.get_or_init(|| {
            std::env::var("INFRA_CRASH_AFTER_CREATES")
                .ok()
                .and_then(|n| n.parse().ok())
        });
        if let Some(limit) = limit
            && CREATED.fetch_add(1, Ordering::SeqCst) + 1 >= *limit
        {
            std::process::abort();
        }
    }
}

/// Applies `planned` with no stored state around it (tests, benchmarks):
/// the same [`apply`] the CLI runs, without a state writer or signal
/// handling; returns the state afterwards (without data sources, as it
/// would be saved).
pub async fn apply_in_memory(
    planned: Planned,
    providers: &ProviderRegistry,
    parallelism: usize,
    events: Events,
) -> (State, ApplyReport) {
    let working = WorkingState::new(planned.refreshed.clone());
    let job = ApplyJob::new(planned, providers, parallelism);
    let report = apply(
        job,
        working.clone(),
        events,
        Arc::new(InFlight::default()),
        &Cancel::default(),
    )
    .await;
    (working.take().without_data_sources(), report)
}

/// Learns the arguments that were unknown at plan time, once everything
/// the instance depends on is applied: the configuration is evaluated
/// again, focused on the instance, reading what it refers to from the
/// working state — so the cost grows with its direct dependencies, not
/// with the configuration or the chain behind them.
///
/// The evaluation runs on the walk's own thread: a focused evaluation
/// takes tens of microseconds (and is bounded by the evaluation budget),
/// less than handing it to another thread and waking the walk again
/// costs — measured with `benches/apply.rs`, zero latency, the walk took
/// twice as long on the blocking pool.
struct Resolver {
    evaluation: Arc<Evaluation>,
}

impl Records for WorkingState {
    fn with_record<T>(&self, address: &str, look: impl FnOnce(Option<&ResourceState>) -> T) -> T {
        self.read(|state| look(state.resources.get(address)))
    }
}

impl Resolver {
    fn arguments(
        &self,
        address: &str,
        working: &Arc<WorkingState>,
    ) -> Result<Arc<BTreeMap<String, Value>>, String> {
        let focus: BTreeSet<String> = [address.to_string()].into();
        let arguments = self
            .evaluation
            .focused(&**working, &focus)?
            .all_resources()
            .into_iter()
            .find(|i| i.address == address)
            .map(|i| i.arguments.clone())
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
        .filter(|path| {
            crate::eval::SensitivePath::parse(path)
                .find_json(attributes)
                .is_some_and(|v| !v.is_null())
        })
        .cloned()
        .collect()
}

/// After an apply, every configured instance records its current
/// dependencies and sensitive attributes (a no-op change may still have
/// new ones).
fn record_dependencies(state: &mut State, instances: &BTreeMap<String, PlannedInstance>) {
    for (address, instance) in instances {
        if let Some(resource) = state.resources.get_mut(address) {
            resource.dependencies = instance.recorded_dependencies.to_vec();
            resource.sensitive = held_secrets(&instance.sensitive, &resource.attributes);
        }
    }
}

/// The last touches after an apply: every configured instance's
/// dependencies, and the outputs as the configuration now evaluates —
/// only the outputs, reading the resources they refer to from the state
/// (a focused evaluation), so that finishing costs what the outputs need.
fn finish_state(
    state: &mut State,
    instances: &BTreeMap<String, PlannedInstance>,
    evaluation: &Evaluation,
    destroying: bool,
) {
    record_dependencies(state, instances);
    if destroying {
        if state.resources.is_empty() {
            state.outputs.clear();
        }
        return;
    }
    let outputs: BTreeSet<String> = evaluation
        .config
        .declarations
        .outputs
        .keys()
        .map(|name| format!("output.{name}"))
        .collect();
    if outputs.is_empty() {
        state.outputs.clear();
    } else if let Ok(evaluated) = evaluation.focused(&*state, &outputs) {
        record_outputs(state, &evaluated);
    }
}
