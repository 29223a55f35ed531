//! The providers infra is built with, and what the engine needs of them
//! before calling them: their schemas, as the front end's
//! [`SchemaCatalog`], and their own checks of argument values.
//!
//! A run builds one [`ProviderRegistry`]: the providers, their schemas
//! read once, configured once from the `provider` blocks, every call
//! logged (`INFRA_LOG=debug`), closed when the run ends.
//!
//! Built in: `local` (files, processes, a load balancer), `random`, and
//! `aws` (with the default `aws` feature; the engine and its tests build
//! without it). The catalog is not *complete* — types of providers infra
//! does not have are reported by `plan`, not `validate`. The `mock`
//! provider (latency, failure injection) is compiled only into test builds
//! (feature `mock`) and joins them when the environment sets
//! `INFRA_MOCK_PROVIDER=1`; its objects live only as long as the process.

mod failure;
mod logged;

use std::collections::BTreeMap;
use std::sync::Arc;

use infra_provider_sdk::{Attribute, AttributeType, Presence, Provider, ResourceSchema};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};

use crate::eval::{
    AttributeSchema, BlockSchema, EvaluatedModule, ObjectField, ProviderSchemas, SchemaCatalog,
    TypeConstraint,
};
pub use failure::{Operation, OperationFailure};

/// The providers of one run, shared by its tasks: each provider once, its
/// schema read once (the [`SchemaCatalog`] the front end checks against),
/// every call through a logging wrapper.
#[derive(Clone)]
pub struct ProviderRegistry {
    providers: Arc<[Arc<dyn Provider>]>,
    catalog: Arc<SchemaCatalog>,
}

impl ProviderRegistry {
    pub fn new(providers: Vec<Arc<dyn Provider>>) -> ProviderRegistry {
        let catalog = {
            let borrowed: Vec<&dyn Provider> = providers.iter().map(AsRef::as_ref).collect();
            Arc::new(schema_catalog(&borrowed, false))
        };
        let providers: Vec<Arc<dyn Provider>> = providers
            .into_iter()
            .map(|provider| Arc::new(logged::Logged::new(provider)) as Arc<dyn Provider>)
            .collect();
        ProviderRegistry {
            providers: providers.into(),
            catalog,
        }
    }

    /// The providers compiled into infra (and `mock` in a test build, when
    /// the environment asks for it with `INFRA_MOCK_PROVIDER=1`).
    pub fn builtin() -> ProviderRegistry {
        #[allow(unused_mut)]
        let mut providers: Vec<Arc<dyn Provider>> = vec![
            Arc::new(infra_provider_local::LocalProvider::new()),
            Arc::new(infra_provider_random::RandomProvider),
        ];
        #[cfg(feature = "aws")]
        providers.push(Arc::new(infra_provider_aws::AwsProvider::new()));
        #[cfg(feature = "mock")]
        if std::env::var_os("INFRA_MOCK_PROVIDER").is_some_and(|v| v == "1") {
            providers.push(Arc::new(infra_provider_mock::MockProvider::new()));
        }
        ProviderRegistry::new(providers)
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.iter().find(|p| p.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.iter()
    }

    /// Their schemas, for the front end (read once, when the registry was
    /// built).
    pub fn catalog(&self) -> Arc<SchemaCatalog> {
        self.catalog.clone()
    }

    /// Applies the `provider NAME { … }` blocks to the providers they name,
    /// and tells the local provider (block or not) the configuration's
    /// directory, where it keeps its runtime files.
    pub async fn configure(
        &self,
        settings: &[(String, crate::eval::Value)],
        directory: &std::path::Path,
    ) -> Diagnostics {
        let mut diagnostics = Diagnostics::new();
        let mut settings = settings.to_vec();
        if !settings.iter().any(|(name, _)| name == "local") {
            settings.push(("local".into(), crate::eval::Value::Null));
        }
        for (name, value) in &settings {
            let Some(provider) = self.get(name) else {
                continue;
            };
            let config = match value.to_json() {
                serde_json::Value::Object(fields) => fields.into_iter().collect(),
                _ => BTreeMap::default(),
            };
            for problem in provider
                .configure(infra_provider_sdk::ConfigureRequest {
                    config,
                    directory: directory.to_path_buf(),
                })
                .await
            {
                diagnostics.push(provider_diagnostic(
                    problem,
                    &format!("provider `{name}`: "),
                ));
            }
        }
        diagnostics
    }

    /// Ends the run for every provider; nothing is called afterwards.
    pub async fn close(&self) {
        for provider in self.providers.iter() {
            provider.close().await;
        }
    }
}

/// A provider's diagnostic as infra shows it, its summary after `prefix`
/// (which names the resource or provider); the caller labels it.
pub fn provider_diagnostic(problem: infra_provider_sdk::Diagnostic, prefix: &str) -> Diagnostic {
    let summary = format!("{prefix}{}", problem.summary);
    let diagnostic = match problem.severity {
        infra_provider_sdk::Severity::Error => Diagnostic::error(Code::ProviderValidation, summary),
        infra_provider_sdk::Severity::Warning => {
            Diagnostic::warning(Code::ProviderValidation, summary)
        }
    };
    match problem.help {
        Some(help) => diagnostic.with_help(help),
        None => diagnostic,
    }
}

/// Asks each resource's provider to check its argument values (ranges,
/// combinations the schema cannot express). Only known values are passed.
/// A problem the provider places at an attribute is shown at its value
/// when `config` is given.
pub fn validate_with_providers(
    evaluated: &EvaluatedModule,
    config: Option<&crate::config::ModuleConfig>,
    providers: &ProviderRegistry,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for instance in evaluated.all_resources() {
        let provider_name = crate::eval::provider_of(&instance.id.type_name);
        let Some(provider) = providers.get(provider_name) else {
            continue;
        };
        let known: infra_provider_sdk::Attributes = instance
            .arguments
            .iter()
            .filter(|(_, value)| value.is_wholly_known())
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect();
        for problem in provider.validate(&instance.id.type_name, &known) {
            let at = problem.attribute.as_deref().and_then(|attribute| {
                let span = crate::plan::argument_span(config?, &instance.address, attribute)?;
                Some((span, attribute.to_string()))
            });
            let diagnostic = provider_diagnostic(problem, "");
            diagnostics.push(match at {
                Some((span, attribute)) => {
                    diagnostic.with_label(span, format!("`{attribute}` of `{}`", instance.address))
                }
                None => diagnostic.with_label(instance.span, format!("in `{}`", instance.address)),
            });
        }
    }
    diagnostics
}

/// The catalog of the given providers. `complete` says they are all the
/// providers there are: then a type of any other provider is an error.
pub fn schema_catalog(providers: &[&dyn Provider], complete: bool) -> SchemaCatalog {
    let mut catalog = SchemaCatalog {
        complete,
        ..SchemaCatalog::default()
    };
    for provider in providers {
        let schema = provider.schema();
        catalog.providers.insert(
            provider.name().to_string(),
            ProviderSchemas {
                resources: convert_all(&schema.resources),
                data_sources: convert_all(&schema.data_sources),
            },
        );
    }
    catalog
}

fn convert_all(types: &BTreeMap<String, ResourceSchema>) -> BTreeMap<String, BlockSchema> {
    types
        .iter()
        .map(|(name, schema)| (name.clone(), convert_block(schema)))
        .collect()
}

fn convert_block(schema: &ResourceSchema) -> BlockSchema {
    BlockSchema {
        attributes: schema
            .attributes
            .iter()
            .map(|(name, attribute)| (name.clone(), convert_attribute(attribute)))
            .collect(),
        blocks: schema
            .blocks
            .iter()
            .map(|(name, block)| (name.clone(), convert_block(block)))
            .collect(),
        set: schema.set,
    }
}

fn convert_attribute(attribute: &Attribute) -> AttributeSchema {
    AttributeSchema {
        type_constraint: convert_type(&attribute.kind),
        required: attribute.presence == Presence::Required,
        optional: matches!(
            attribute.presence,
            Presence::Optional | Presence::OptionalComputed
        ),
        computed: attribute.is_computed(),
        sensitive: attribute.sensitive,
        force_new: attribute.force_new,
    }
}

fn convert_type(kind: &AttributeType) -> TypeConstraint {
    match kind {
        AttributeType::String => TypeConstraint::String,
        AttributeType::Number => TypeConstraint::Number,
        AttributeType::Bool => TypeConstraint::Bool,
        AttributeType::Any => TypeConstraint::Any,
        AttributeType::List(element) => TypeConstraint::List(Box::new(convert_type(element))),
        AttributeType::Set(element) => TypeConstraint::Set(Box::new(convert_type(element))),
        AttributeType::Map(element) => TypeConstraint::Map(Box::new(convert_type(element))),
        // A provider's object attributes may be left out (null).
        AttributeType::Object(fields) => TypeConstraint::Object(
            fields
                .iter()
                .map(|(name, kind)| (name.clone(), ObjectField::optional(convert_type(kind))))
                .collect(),
        ),
    }
}
