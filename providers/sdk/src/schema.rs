//! What a provider's resource types look like.

use std::collections::BTreeMap;

/// The types of a provider: managed resources and data sources, by name
/// (`random_id`, `aws_vpc` …; the prefix before the first `_` is the
/// provider's name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    pub resources: BTreeMap<String, ResourceSchema>,
    pub data_sources: BTreeMap<String, ResourceSchema>,
}

/// The attributes and nested blocks of a resource type (or nested block).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSchema {
    pub description: String,
    pub attributes: BTreeMap<String, Attribute>,
    /// Nested blocks (`ingress { … }`), each given as a list of objects.
    pub blocks: BTreeMap<String, ResourceSchema>,
    /// For a nested block: its blocks form a set (order does not matter,
    /// plans compare them as sets), like firewall rules.
    pub set: bool,
}

impl ResourceSchema {
    /// A type with these attributes and no nested blocks.
    pub fn new<'a>(
        description: &str,
        attributes: impl IntoIterator<Item = (&'a str, Attribute)>,
    ) -> ResourceSchema {
        ResourceSchema {
            description: description.to_string(),
            attributes: attributes
                .into_iter()
                .map(|(name, attribute)| (name.to_string(), attribute))
                .collect(),
            blocks: BTreeMap::new(),
            set: false,
        }
    }

    /// Marks a nested block as a set of blocks.
    pub fn as_set(mut self) -> ResourceSchema {
        self.set = true;
        self
    }

    /// Adds a nested block (`ingress { … }`).
    pub fn with_block(mut self, name: &str, block: ResourceSchema) -> ResourceSchema {
        self.blocks.insert(name.to_string(), block);
        self
    }
}

/// Who sets an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The configuration must set it.
    Required,
    /// The configuration may set it; unset means null.
    Optional,
    /// The configuration may set it; unset, the provider chooses.
    OptionalComputed,
    /// Only the provider sets it (ids, addresses …); unknown until created.
    Computed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttributeType {
    String,
    Number,
    Bool,
    List(Box<AttributeType>),
    /// Unordered, without duplicates (compared as sets in plans).
    Set(Box<AttributeType>),
    Map(Box<AttributeType>),
    Object(BTreeMap<String, AttributeType>),
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub kind: AttributeType,
    pub presence: Presence,
    /// Changing it replaces the object instead of updating it in place.
    pub force_new: bool,
    /// Never shown in plans or output; encrypted in the state (later).
    pub sensitive: bool,
    pub description: String,
}

impl Attribute {
    fn new(kind: AttributeType, presence: Presence) -> Attribute {
        Attribute {
            kind,
            presence,
            force_new: false,
            sensitive: false,
            description: String::new(),
        }
    }

    pub fn required(kind: AttributeType) -> Attribute {
        Attribute::new(kind, Presence::Required)
    }

    pub fn optional(kind: AttributeType) -> Attribute {
        Attribute::new(kind, Presence::Optional)
    }

    pub fn optional_computed(kind: AttributeType) -> Attribute {
        Attribute::new(kind, Presence::OptionalComputed)
    }

    pub fn computed(kind: AttributeType) -> Attribute {
        Attribute::new(kind, Presence::Computed)
    }

    pub fn force_new(mut self) -> Attribute {
        self.force_new = true;
        self
    }

    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }

    pub fn describe(mut self, description: &str) -> Attribute {
        self.description = description.to_string();
        self
    }

    /// The configuration may set it.
    pub fn is_settable(&self) -> bool {
        !matches!(self.presence, Presence::Computed)
    }

    /// The provider may set it.
    pub fn is_computed(&self) -> bool {
        matches!(
            self.presence,
            Presence::Computed | Presence::OptionalComputed
        )
    }
}
