//! Resource schemas as the language sees them, and the checks against them.
//!
//! Providers own their schemas; the engine gathers them into a
//! [`SchemaCatalog`] and hands it to evaluation. The front end only checks a
//! resource block against its schema: known type, known arguments, required
//! ones present, values of the right type, computed attributes unknown until
//! apply. A catalog that does not cover a type's provider checks nothing
//! about it (until providers exist, the catalog is empty).

use std::collections::BTreeMap;

use crate::config::ResourceMode;

use super::types::TypeConstraint;

/// One attribute of a resource or nested block.
#[derive(Debug, Clone)]
pub struct AttributeSchema {
    pub type_constraint: TypeConstraint,
    /// Must be set in the configuration.
    pub required: bool,
    /// May be set in the configuration.
    pub optional: bool,
    /// Set by the provider (unknown until apply, unless configured).
    pub computed: bool,
    pub sensitive: bool,
    /// Changing it replaces the object.
    pub force_new: bool,
}

impl AttributeSchema {
    pub fn required(type_constraint: TypeConstraint) -> AttributeSchema {
        AttributeSchema {
            type_constraint,
            required: true,
            optional: false,
            computed: false,
            sensitive: false,
            force_new: false,
        }
    }

    pub fn optional(type_constraint: TypeConstraint) -> AttributeSchema {
        AttributeSchema {
            required: false,
            optional: true,
            ..AttributeSchema::required(type_constraint)
        }
    }

    /// Set only by the provider.
    pub fn computed(type_constraint: TypeConstraint) -> AttributeSchema {
        AttributeSchema {
            required: false,
            optional: false,
            computed: true,
            ..AttributeSchema::required(type_constraint)
        }
    }

    pub fn is_settable(&self) -> bool {
        self.required || self.optional
    }
}

/// The arguments and nested blocks of a resource type or nested block.
#[derive(Debug, Clone, Default)]
pub struct BlockSchema {
    pub attributes: BTreeMap<String, AttributeSchema>,
    pub blocks: BTreeMap<String, BlockSchema>,
    /// For a nested block: its blocks form a set (plans compare them
    /// regardless of order).
    pub set: bool,
}

/// The schemas of one provider, by type name.
#[derive(Debug, Clone, Default)]
pub struct ProviderSchemas {
    pub resources: BTreeMap<String, BlockSchema>,
    pub data_sources: BTreeMap<String, BlockSchema>,
}

/// Every provider's schemas, by provider name (the part of a type name before
/// its first `_`: `aws` for `aws_vpc`).
#[derive(Debug, Clone, Default)]
pub struct SchemaCatalog {
    pub providers: BTreeMap<String, ProviderSchemas>,
    /// When true, a type whose provider is not in the catalog is an error
    /// (the engine's catalog lists every built-in provider).
    pub complete: bool,
}

/// What the catalog says of a resource type.
pub enum SchemaLookup<'a> {
    Found(&'a BlockSchema),
    /// The provider is known but has no such type: the candidates for
    /// "did you mean".
    UnknownType(Vec<&'a str>),
    /// No provider of that name, in a complete catalog.
    UnknownProvider(Vec<&'a str>),
    /// The catalog does not cover this provider: nothing to check.
    NotCovered,
}

pub fn provider_of(type_name: &str) -> &str {
    type_name.split('_').next().unwrap_or(type_name)
}

impl SchemaCatalog {
    pub fn lookup(&self, mode: ResourceMode, type_name: &str) -> SchemaLookup<'_> {
        let provider = provider_of(type_name);
        let Some(schemas) = self.providers.get(provider) else {
            return if self.complete {
                SchemaLookup::UnknownProvider(self.providers.keys().map(String::as_str).collect())
            } else {
                SchemaLookup::NotCovered
            };
        };
        let types = match mode {
            ResourceMode::Managed => &schemas.resources,
            ResourceMode::Data => &schemas.data_sources,
        };
        match types.get(type_name) {
            Some(schema) => SchemaLookup::Found(schema),
            None => SchemaLookup::UnknownType(types.keys().map(String::as_str).collect()),
        }
    }
}
