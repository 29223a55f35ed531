//! `aws_key_pair`: an SSH public key instances can be started with. Its
//! name is its id; the name and the key force a new key pair.

use aws_sdk_ec2::types::ResourceType;
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::json;

use crate::api::Api;
use crate::values::{Found, found_by_id, id_of, required, tag_specification, update_tags};

pub fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "an SSH key pair (the public half)",
        [
            (
                "key_name",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "public_key",
                Attribute::required(AttributeType::String)
                    .force_new()
                    .describe("OpenSSH format: \"ssh-ed25519 AAAA…\""),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            ("fingerprint", Attribute::computed(AttributeType::String)),
        ],
    )
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<String, ProviderError> {
    let name = required(config, "key_name")?;
    api.call(
        "ImportKeyPair",
        api.ec2
            .import_key_pair()
            .key_name(name)
            .public_key_material(required(config, "public_key")?.as_bytes().to_vec().into())
            .tag_specifications(tag_specification(ResourceType::KeyPair, config, identity))
            .send(),
    )
    .await?;
    Ok(name.to_string())
}

pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    let described = api
        .call(
            "DescribeKeyPairs",
            api.ec2
                .describe_key_pairs()
                .filters(crate::values::ids_filter("key-name", ids))
                .send(),
        )
        .await?;
    let found = found_by_id(
        described.key_pairs(),
        |key| key.key_name(),
        |key| key.tags(),
        |key, state| {
            state.insert("key_name".into(), json!(key.key_name()));
            state.insert("fingerprint".into(), json!(key.key_fingerprint()));
        },
    );
    Ok(found)
}

/// AWS does not give the public key back: the state keeps the configured one.
pub fn keep_write_only(state: &mut Attributes, like: &Attributes) {
    if let Some(key) = like.get("public_key") {
        state.insert("public_key".into(), key.clone());
    }
}

pub async fn update(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let key_pair_id = key_pair_id(api, id_of(prior)?).await?;
    update_tags(api, &key_pair_id, prior, config).await
}

/// Tags are set on the key pair's own id (`key-…`), not its name.
async fn key_pair_id(api: &Api, name: &str) -> Result<String, ProviderError> {
    let described = api
        .call(
            "DescribeKeyPairs",
            api.ec2.describe_key_pairs().key_names(name).send(),
        )
        .await?;
    described
        .key_pairs()
        .first()
        .and_then(|k| k.key_pair_id())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::new(format!("key pair {name} has no id")))
}

pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    api.call(
        "DeleteKeyPair",
        api.ec2.delete_key_pair().key_name(id_of(state)?).send(),
    )
    .await
    .map(|_| ())
}
