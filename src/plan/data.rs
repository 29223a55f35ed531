//! Data sources while planning: every `data` block whose arguments are
//! known is read through its provider before the diff, so that what refers
//! to it sees real values (`ami = data.aws_ami.ubuntu.id` is known in the
//! plan). A data source that depends on another is read in a later round.
//! Those still unknown (they depend on a resource not created yet) are read
//! during apply. Results live in the planning state only: they are never
//! saved (`State::without_data_sources`).

use infra_provider_sdk::ReadDataRequest;

use crate::check::evaluate_with_deployments;
use crate::check::{CheckOptions, Loaded};
use crate::config::{ModuleConfig, ResourceMode};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::eval::provider_of;
use crate::providers::ProviderRegistry;
use crate::state::{ResourceState, State};

use super::diff::StatePlanner;

/// Rounds of reading: data sources that depend on data sources.
const MAX_ROUNDS: usize = 8;

fn declares_data_sources(config: &ModuleConfig) -> bool {
    config
        .declarations
        .resources
        .keys()
        .any(|id| id.mode == ResourceMode::Data)
        || config.children.values().any(declares_data_sources)
}

/// Reads the data sources whose arguments are known into `state`.
pub async fn read_data_sources(
    loaded: &Loaded,
    options: &CheckOptions,
    state: &mut State,
    providers: &ProviderRegistry,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    let Some(config) = loaded.config.as_ref() else {
        return diagnostics;
    };
    if !declares_data_sources(config) {
        return diagnostics;
    }
    for _ in 0..MAX_ROUNDS {
        let evaluated = {
            let planner = StatePlanner::new(state, &[]);
            let mut ignored = Diagnostics::new();
            evaluate_with_deployments(
                config,
                &loaded.variables,
                &options.schemas,
                Some(&planner),
                &loaded.sources,
                None,
                &mut ignored,
            )
            .0
        };
        let ready: Vec<_> = evaluated
            .all_resources()
            .into_iter()
            .filter(|i| i.id.mode == ResourceMode::Data)
            .filter(|i| !state.resources.contains_key(&i.address))
            .filter(|i| i.arguments.values().all(|v| v.is_wholly_known()))
            .cloned()
            .collect();
        if ready.is_empty() {
            break;
        }
        for instance in ready {
            let provider_name = provider_of(&instance.id.type_name);
            let Some(provider) = providers.get(provider_name) else {
                continue;
            };
            let config = instance
                .arguments
                .iter()
                .filter(|(_, v)| !matches!(v, crate::eval::Value::Null))
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            let request = ReadDataRequest {
                type_name: instance.id.type_name.to_string(),
                config,
            };
            match provider.read_data(request).await {
                Ok(attributes) => {
                    state.resources.insert(
                        instance.address.clone(),
                        ResourceState {
                            type_name: instance.id.type_name.to_string(),
                            provider: provider_name.to_string(),
                            attributes,
                            dependencies: Vec::new(),
                            sensitive: Vec::new(),
                        },
                    );
                }
                Err(error) => {
                    diagnostics.push(
                        Diagnostic::error(
                            Code::DataSource,
                            format!("reading `{}` failed: {error}", instance.address),
                        )
                        .with_label(instance.span, "this data source")
                        .with_help("check its arguments: the lookup must find what it describes"),
                    );
                    // Not read: a placeholder would hide the error.
                    return diagnostics;
                }
            }
        }
    }
    diagnostics
}
