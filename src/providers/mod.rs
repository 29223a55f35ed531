//! The providers infra is built with, and what the engine needs of them
//! before calling them: their schemas, as the front end's
//! [`SchemaCatalog`], and their own checks of argument values.
//!
//! Built in: `local` (files), `random`, and `aws` (with the default `aws`
//! feature; the engine and its tests build without it). The catalog is not
//! *complete* — types of providers infra does not have are reported by
//! `plan`, not `validate`.
//! The `mock` provider (latency, failure injection) joins them when the
//! environment sets `INFRA_MOCK_PROVIDER=1`: it is for tests and
//! benchmarks, and its objects live only as long as the process.

use std::collections::BTreeMap;
use std::sync::Arc;

use infra_provider_sdk::{Attribute, AttributeType, Presence, Provider, ResourceSchema};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::eval::{
    AttributeSchema, BlockSchema, EvaluatedModule, ProviderSchemas, SchemaCatalog, TypeConstraint,
};

/// A set of providers, shared by the tasks of a run.
#[derive(Clone)]
pub struct Providers(Arc<[Arc<dyn Provider>]>);

impl Providers {
    pub fn new(providers: Vec<Arc<dyn Provider>>) -> Providers {
        Providers(providers.into())
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.0.iter().find(|p| p.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.0.iter()
    }

    /// The catalog of their schemas, for the front end.
    pub fn catalog(&self) -> SchemaCatalog {
        let borrowed: Vec<&dyn Provider> = self.0.iter().map(|p| p.as_ref()).collect();
        schema_catalog(&borrowed, false)
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
                _ => Default::default(),
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
}

/// The providers compiled into infra (and `mock` when the environment asks
/// for it with `INFRA_MOCK_PROVIDER=1`).
pub fn builtin() -> Providers {
    let mut providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(infra_provider_local::LocalProvider::new()),
        Arc::new(infra_provider_random::RandomProvider),
    ];
    #[cfg(feature = "aws")]
    providers.push(Arc::new(infra_provider_aws::AwsProvider::new()));
    if std::env::var_os("INFRA_MOCK_PROVIDER").is_some_and(|v| v == "1") {
        providers.push(Arc::new(infra_provider_mock::MockProvider::new()));
    }
    Providers::new(providers)
}

/// The schema catalog of the built-in providers.
pub fn builtin_catalog() -> Arc<SchemaCatalog> {
    Arc::new(builtin().catalog())
}

/// A provider's diagnostic as infra shows it, its summary after `prefix`
/// (which names the resource or provider); the caller labels it.
pub fn provider_diagnostic(problem: infra_provider_sdk::Diagnostic, prefix: &str) -> Diagnostic {
    let summary = format!("{prefix}{}", problem.summary);
    let diagnostic = match problem.severity {
        infra_provider_sdk::Severity::Error => {
            Diagnostic::error("infra::provider_validation", summary)
        }
        infra_provider_sdk::Severity::Warning => {
            Diagnostic::warning("infra::provider_validation", summary)
        }
    };
    match problem.help {
        Some(help) => diagnostic.with_help(help),
        None => diagnostic,
    }
}

/// Asks each resource's provider to check its argument values (ranges,
/// combinations the schema cannot express). Only known values are passed.
pub fn validate_with_providers(evaluated: &EvaluatedModule, providers: &Providers) -> Diagnostics {
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
            diagnostics.push(
                provider_diagnostic(problem, "")
                    .with_label(instance.span, format!("in `{}`", instance.address)),
            );
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
        AttributeType::Object(fields) => TypeConstraint::Object(
            fields
                .iter()
                .map(|(name, kind)| (name.clone(), convert_type(kind)))
                .collect(),
        ),
    }
}
