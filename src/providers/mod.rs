//! The providers infra is built with, and what the engine needs of them
//! before calling them: their schemas, as the front end's
//! [`SchemaCatalog`]. (No provider is built in yet: local, random and mock
//! come next; until then the catalog is empty and checks nothing.)

use std::collections::BTreeMap;

use infra_provider_sdk::{Attribute, AttributeType, Presence, Provider, ResourceSchema};

use crate::eval::{AttributeSchema, BlockSchema, ProviderSchemas, SchemaCatalog, TypeConstraint};

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
