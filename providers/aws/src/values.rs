//! Reading configuration values and writing state values, and the tags
//! every object carries.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use infra_provider_sdk::{Attributes, ObjectIdentity, ProviderError};
use serde_json::{Value, json};

/// The tags infra adds to every object it creates: its address and the
/// state's lineage, to find objects a crashed apply left behind.
pub const ADDRESS_TAG: &str = "infra:address";
pub const LINEAGE_TAG: &str = "infra:lineage";

pub fn text<'a>(config: &'a Attributes, name: &str) -> Option<&'a str> {
    config.get(name).and_then(Value::as_str)
}

pub fn required<'a>(config: &'a Attributes, name: &str) -> Result<&'a str, ProviderError> {
    text(config, name).ok_or_else(|| ProviderError::new(format!("`{name}` is required")))
}

pub fn flag(config: &Attributes, name: &str) -> Option<bool> {
    config.get(name).and_then(Value::as_bool)
}

pub fn number(config: &Attributes, name: &str) -> Option<i64> {
    config.get(name).and_then(Value::as_f64).map(|n| n as i64)
}

/// A list (or set) of strings.
pub fn strings(config: &Attributes, name: &str) -> Vec<String> {
    config
        .get(name)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A Describe filter that selects these ids (`vpc-id`, `group-id`, …):
/// unlike an id list, it answers without the missing ones instead of
/// failing the whole call.
pub fn ids_filter(name: &str, ids: &[String]) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(ids.to_vec()))
        .build()
}

/// The `id` recorded in a state.
pub fn id_of(state: &Attributes) -> Result<&str, ProviderError> {
    text(state, "id").ok_or_else(|| ProviderError::new("the state has no `id`"))
}

/// The `tags` the configuration sets.
pub fn user_tags(config: &Attributes) -> BTreeMap<String, String> {
    config
        .get("tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The tags of a new object: the configured ones and infra's own.
pub fn tag_specification(
    kind: ResourceType,
    config: &Attributes,
    identity: &ObjectIdentity,
) -> TagSpecification {
    let mut builder = TagSpecification::builder().resource_type(kind);
    for (key, value) in user_tags(config) {
        builder = builder.tags(tag(&key, &value));
    }
    builder
        .tags(tag(ADDRESS_TAG, &identity.address))
        .tags(tag(LINEAGE_TAG, &identity.lineage))
        .build()
}

/// What a create returns: the new object's id and, when the create's own
/// answers tell everything its state records, that state — then no
/// Describe call reads it back (and AWS's eventual consistency, which can
/// hide a new object from Describe for a moment, does not delay it).
pub struct Created {
    pub id: String,
    pub state: Option<Attributes>,
}

impl Created {
    /// An object whose state must be read back.
    pub fn read_back(id: String) -> Self {
        Created { id, state: None }
    }
}

/// A new object's state as its create told it: its id, and its tags
/// written as a read writes them (the configured ones, infra's own left
/// out).
pub fn created_state(id: &str, config: &Attributes) -> Attributes {
    let mut state = Attributes::new();
    state.insert("id".into(), json!(id));
    let tags: Vec<Tag> = user_tags(config)
        .iter()
        .map(|(key, value)| tag(key, value))
        .collect();
    tags_to_state(&tags, &mut state);
    state
}

/// The objects one read found among those asked for, by id.
pub type Found = Result<BTreeMap<String, Attributes>, ProviderError>;

/// What one Describe call found, by id: each of `items` named by `id`
/// (skipped without one), its state holding the id, what `describe` adds,
/// and its tags.
pub fn found_by_id<Item>(
    items: &[Item],
    id: impl for<'i> Fn(&'i Item) -> Option<&'i str>,
    tags: impl Fn(&Item) -> &[Tag],
    describe: impl Fn(&Item, &mut Attributes),
) -> BTreeMap<String, Attributes> {
    items
        .iter()
        .filter_map(|item| {
            let id = id(item)?;
            let mut state = Attributes::new();
            state.insert("id".into(), json!(id));
            describe(item, &mut state);
            tags_to_state(tags(item), &mut state);
            Some((id.to_string(), state))
        })
        .collect()
}

/// The state's `tags`: what AWS reports, without infra's own; absent when
/// there are none, as an unset `tags` is.
pub fn tags_to_state(tags: &[Tag], state: &mut Attributes) {
    let user: serde_json::Map<String, Value> = tags
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default())))
        .filter(|(key, _)| !key.starts_with("infra:"))
        .map(|(key, value)| (key, json!(value)))
        .collect();
    if !user.is_empty() {
        state.insert("tags".into(), Value::Object(user));
    }
}

/// Makes the object's tags the configured ones (infra's own stay).
pub async fn update_tags(
    api: &crate::api::Api,
    id: &str,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let before = user_tags(prior);
    let after = user_tags(config);
    let removed: Vec<Tag> = before
        .keys()
        .filter(|key| !after.contains_key(*key))
        .map(|key| Tag::builder().key(key).build())
        .collect();
    let set: Vec<Tag> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(value))
        .map(|(key, value)| tag(key, value))
        .collect();
    if !removed.is_empty() {
        api.call(
            "DeleteTags",
            api.ec2
                .delete_tags()
                .resources(id)
                .set_tags(Some(removed))
                .send(),
        )
        .await?;
    }
    if !set.is_empty() {
        api.call(
            "CreateTags",
            api.ec2
                .create_tags()
                .resources(id)
                .set_tags(Some(set))
                .send(),
        )
        .await?;
    }
    Ok(())
}
