//! Refresh: asking each provider what the objects in the state really are
//! now, before planning — up to `parallelism` provider calls at a time, each
//! reading as many objects of one type as the provider takes in one call
//! (`Provider::read_batch_size`). An object that is gone leaves the
//! refreshed state (the plan re-creates it); a changed one shows as drift in
//! the plan. Refresh changes nothing anywhere: the refreshed state is kept
//! in memory.

use std::collections::BTreeMap;

use infra_provider_sdk::{ObjectIdentity, ProviderError, ReadRequest, ReadResponse};
use tokio::task::JoinSet;

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::providers::{Operation, OperationFailure, ProviderRegistry};
use crate::state::{ResourceState, State};

/// One provider call: its addresses and what it answered for each.
type Batch = Vec<(String, Result<ReadResponse, ProviderError>)>;

pub async fn refresh(
    state: &State,
    providers: &ProviderRegistry,
    parallelism: usize,
) -> (State, Diagnostics) {
    // Every object as recorded but for its attributes, which are what the
    // provider answers (or, unanswered, the recorded ones): copied once.
    let mut refreshed = State {
        format: state.format.clone(),
        version: state.version,
        lineage: state.lineage.clone(),
        resources: BTreeMap::new(),
        outputs: state.outputs.clone(),
    };
    let mut diagnostics = Diagnostics::new();
    // Objects grouped by provider and type, then cut into batches.
    let mut groups: BTreeMap<(&str, &str), Vec<(&String, ReadRequest)>> = BTreeMap::new();
    for (address, resource) in &state.resources {
        let mut entry = ResourceState {
            type_name: resource.type_name.clone(),
            provider: resource.provider.clone(),
            attributes: BTreeMap::new(),
            dependencies: resource.dependencies.clone(),
            sensitive: resource.sensitive.clone(),
        };
        if providers.get(&resource.provider).is_none() {
            entry.attributes = resource.attributes.clone();
            refreshed.resources.insert(address.clone(), entry);
            diagnostics.push(
                Diagnostic::warning(
                    Code::NoProvider,
                    format!(
                        "`{address}` was not refreshed: no provider `{}` in this build",
                        resource.provider
                    ),
                )
                .with_help("its recorded attributes are planned against as they are"),
            );
            continue;
        }
        let request = ReadRequest {
            type_name: resource.type_name.clone(),
            identity: ObjectIdentity {
                address: address.clone(),
                lineage: state.lineage.clone(),
            },
            state: resource.attributes.clone(),
        };
        refreshed.resources.insert(address.clone(), entry);
        groups
            .entry((&resource.provider, &resource.type_name))
            .or_default()
            .push((address, request));
    }
    let mut batches = Vec::new();
    for ((provider_name, type_name), requests) in groups {
        let provider = providers.get(provider_name).expect("checked above").clone();
        let size = provider.read_batch_size(type_name).max(1);
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            let chunk: Vec<(&String, ReadRequest)> = requests.by_ref().take(size).collect();
            batches.push((provider.clone(), chunk));
        }
    }
    let mut calls: JoinSet<Batch> = JoinSet::new();
    let mut pending = batches.into_iter();
    loop {
        while calls.len() < parallelism.max(1) {
            let Some((provider, chunk)) = pending.next() else {
                break;
            };
            let (addresses, requests): (Vec<String>, Vec<ReadRequest>) = chunk
                .into_iter()
                .map(|(address, request)| (address.clone(), request))
                .unzip();
            calls.spawn(async move {
                let mut answers = provider.read_many(requests).await;
                answers.truncate(addresses.len());
                while answers.len() < addresses.len() {
                    answers.push(Err(ProviderError::new("the provider gave no answer")));
                }
                addresses.into_iter().zip(answers).collect()
            });
        }
        let Some(done) = calls.join_next().await else {
            break;
        };
        let batch = match done {
            Ok(batch) => batch,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        for (address, answer) in batch {
            match answer {
                Ok(ReadResponse {
                    state: Some(attributes),
                    ..
                }) => {
                    if let Some(entry) = refreshed.resources.get_mut(&address) {
                        entry.attributes = attributes;
                    }
                }
                Ok(ReadResponse { state: None, .. }) => {
                    refreshed.resources.remove(&address);
                }
                Err(error) => {
                    // Planned against as recorded.
                    if let (Some(entry), Some(recorded)) = (
                        refreshed.resources.get_mut(&address),
                        state.resources.get(&address),
                    ) {
                        entry.attributes = recorded.attributes.clone();
                    }
                    let failure = OperationFailure::from_provider(Operation::Read, &address, error);
                    let mut diagnostic = Diagnostic::error(
                        Code::Refresh,
                        format!("refreshing `{address}` failed: {}", failure.reason()),
                    )
                    .with_help("check that the provider can reach the object; `--refresh=false` plans against the state as recorded");
                    if let Some(code) = &failure.code {
                        diagnostic =
                            diagnostic.with_note(format!("the provider's error code is `{code}`"));
                    }
                    diagnostics.push(diagnostic);
                }
            }
        }
    }
    (refreshed, diagnostics)
}
