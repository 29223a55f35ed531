//! Refresh: asking each provider what the objects in the state really are
//! now, before planning — up to `parallelism` reads at a time. An object
//! that is gone leaves the refreshed state (the plan re-creates it); a
//! changed one shows as drift in the plan. Refresh changes nothing
//! anywhere: the refreshed state is kept in memory.

use infra_provider_sdk::{ObjectIdentity, ReadRequest};
use tokio::task::JoinSet;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::providers::Providers;
use crate::state::State;

/// What one read found.
enum Found {
    Now(infra_provider_sdk::Attributes),
    Gone,
    Failed(String),
}

pub async fn refresh(
    state: &State,
    providers: &Providers,
    parallelism: usize,
) -> (State, Diagnostics) {
    let mut refreshed = state.clone();
    let mut diagnostics = Diagnostics::new();
    let mut reads: JoinSet<(String, Found)> = JoinSet::new();
    let mut pending = state.resources.iter();
    loop {
        while reads.len() < parallelism.max(1) {
            let Some((address, resource)) = pending.next() else {
                break;
            };
            let Some(provider) = providers.get(&resource.provider).cloned() else {
                diagnostics.push(
                    Diagnostic::warning(
                        "infra::no_provider",
                        format!(
                            "`{address}` was not refreshed: no provider `{}` in this build",
                            resource.provider
                        ),
                    )
                    .with_help("its recorded attributes are planned against as they are"),
                );
                continue;
            };
            let request = ReadRequest {
                type_name: resource.type_name.clone(),
                identity: ObjectIdentity {
                    address: address.clone(),
                    lineage: state.lineage.clone(),
                },
                state: resource.attributes.clone(),
            };
            let address = address.clone();
            reads.spawn(async move {
                let found = match provider.read(request).await {
                    Ok(response) => match response.state {
                        Some(attributes) => Found::Now(attributes),
                        None => Found::Gone,
                    },
                    Err(error) => Found::Failed(error.to_string()),
                };
                (address, found)
            });
        }
        let Some(done) = reads.join_next().await else {
            break;
        };
        let (address, found) = match done {
            Ok(pair) => pair,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        match found {
            Found::Now(attributes) => {
                if let Some(entry) = refreshed.resources.get_mut(&address) {
                    entry.attributes = attributes;
                }
            }
            Found::Gone => {
                refreshed.resources.remove(&address);
            }
            Found::Failed(error) => diagnostics.push(
                Diagnostic::error("infra::refresh", format!("refreshing `{address}` failed: {error}"))
                    .with_help("check that the provider can reach the object; `--refresh=false` plans against the state as recorded"),
            ),
        }
    }
    (refreshed, diagnostics)
}
