//! Creates an interrupted run started and never saw finish (the journal's
//! pending creates, `state/journal.rs`): before planning, each provider is
//! asked whether the object exists. One that does is recorded as if its
//! create had returned it, so the plan updates it instead of creating a
//! duplicate; one the provider can rule out is forgotten (the plan creates
//! it); one it can neither find nor rule out is a warning naming its
//! address, for a person to check and `infra import`.

use infra_provider_sdk::{AdoptRequest, Adoption, ObjectIdentity};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::providers::ProviderRegistry;
use crate::state::journal::PendingCreate;
use crate::state::{ResourceState, State};

/// Looks for the object of each create in `pending` and records those
/// found in `state`. Returns the warnings and how many were adopted.
pub async fn adopt_pending(
    state: &mut State,
    pending: &[PendingCreate],
    providers: &ProviderRegistry,
) -> (Diagnostics, usize) {
    let mut warnings = Diagnostics::new();
    let mut adopted = 0;
    for create in pending {
        if state.resources.contains_key(&create.address) {
            continue;
        }
        let unknown = |why: String| {
            Diagnostic::warning(
                Code::Interrupted,
                format!(
                    "`{}` was being created when an earlier run stopped, and infra cannot tell whether it exists: {why}",
                    create.address
                ),
            )
            .with_help(format!(
                "look for the {} it would have created; if it exists, run `infra import {} ID` before applying, or apply creates another",
                create.type_name, create.address
            ))
        };
        let Some(provider) = providers.get(&create.provider) else {
            warnings.push(unknown(format!(
                "no provider `{}` in this build",
                create.provider
            )));
            continue;
        };
        let request = AdoptRequest {
            type_name: create.type_name.clone(),
            identity: ObjectIdentity {
                address: create.address.clone(),
                lineage: state.lineage.clone(),
            },
            config: create.config.clone(),
        };
        match provider.adopt(request).await {
            Ok(Adoption::Found(attributes)) => {
                tracing::info!(address = %create.address, "adopted the object of an interrupted create");
                state.resources.insert(
                    create.address.clone(),
                    ResourceState {
                        type_name: create.type_name.clone(),
                        provider: create.provider.clone(),
                        attributes,
                        dependencies: Vec::new(),
                        sensitive: Vec::new(),
                    },
                );
                adopted += 1;
            }
            Ok(Adoption::Absent) => {}
            Ok(Adoption::Unknown) => {
                warnings.push(unknown("its provider cannot look it up".into()));
            }
            Err(error) => warnings.push(unknown(error.message)),
        }
    }
    (warnings, adopted)
}
