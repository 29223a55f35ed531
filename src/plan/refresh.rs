//! Refresh: asking each provider what the objects in the state really are
//! now, before planning. An object that is gone leaves the refreshed state
//! (the plan re-creates it); a changed one shows as drift in the plan.
//! Refresh changes nothing anywhere: the refreshed state is kept in memory.

use infra_provider_sdk::{ObjectIdentity, Provider, ReadRequest};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::state::State;

pub async fn refresh(state: &State, providers: &[Box<dyn Provider>]) -> (State, Diagnostics) {
    let mut refreshed = state.clone();
    let mut diagnostics = Diagnostics::new();
    for (address, resource) in &state.resources {
        let Some(provider) = providers.iter().find(|p| p.name() == resource.provider) else {
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
        match provider.read(request).await {
            Ok(response) => match response.state {
                Some(attributes) => {
                    if let Some(entry) = refreshed.resources.get_mut(address) {
                        entry.attributes = attributes;
                    }
                }
                None => {
                    refreshed.resources.remove(address);
                }
            },
            Err(error) => diagnostics.push(
                Diagnostic::error("infra::refresh", format!("refreshing `{address}` failed: {error}"))
                    .with_help("check that the provider can reach the object; `--refresh=false` plans against the state as recorded"),
            ),
        }
    }
    (refreshed, diagnostics)
}
