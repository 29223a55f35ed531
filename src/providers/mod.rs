//! The providers infra is built with, and what the engine needs of them
//! before calling them: their schemas, as the front end's
//! [`SchemaCatalog`], and their own checks of argument values.
//!
//! Built in so far: `local` (files) and `random`. The catalog is not yet
//! *complete* (aws comes next), so types of other providers are not rejected.

use std::collections::BTreeMap;
use std::sync::Arc;

use infra_provider_sdk::{Attribute, AttributeType, Presence, Provider, ResourceSchema};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::eval::{
    AttributeSchema, BlockSchema, EvaluatedModule, ProviderSchemas, SchemaCatalog, TypeConstraint,
};

/// The providers compiled into infra.
pub fn builtin() -> Vec<Box<dyn Provider>> {
    vec![
        Box::new(infra_provider_local::LocalProvider),
        Box::new(infra_provider_random::RandomProvider),
    ]
}

/// The schema catalog of the built-in providers.
pub fn builtin_catalog() -> Arc<SchemaCatalog> {
    let providers = builtin();
    let borrowed: Vec<&dyn Provider> = providers.iter().map(|p| p.as_ref()).collect();
    Arc::new(schema_catalog(&borrowed, false))
}

/// Asks each resource's provider to check its argument values (ranges,
/// combinations the schema cannot express). Only known values are passed.
pub fn validate_with_providers(
    evaluated: &EvaluatedModule,
    providers: &[Box<dyn Provider>],
) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for instance in evaluated.all_resources() {
        let provider_name = crate::eval::provider_of(&instance.id.type_name);
        let Some(provider) = providers.iter().find(|p| p.name() == provider_name) else {
            continue;
        };
        let known: infra_provider_sdk::Attributes = instance
            .arguments
            .iter()
            .filter(|(_, value)| value.is_wholly_known())
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect();
        for problem in provider.validate(&instance.id.type_name, &known) {
            let mut diagnostic = match problem.severity {
                infra_provider_sdk::Severity::Error => {
                    Diagnostic::error("infra::provider_validation", problem.summary)
                }
                infra_provider_sdk::Severity::Warning => {
                    Diagnostic::warning("infra::provider_validation", problem.summary)
                }
            }
            .with_label(instance.span, format!("in `{}`", instance.address));
            if let Some(help) = problem.help {
                diagnostic = diagnostic.with_help(help);
            }
            diagnostics.push(diagnostic);
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
