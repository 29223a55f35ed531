//! `aws_eip`: an elastic (fixed public) IP address, optionally associated
//! with an instance (`instance`, changed in place).

use aws_sdk_ec2::types::{DomainType, ResourceType};
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::json;

use crate::api::Api;
use crate::values::{Found, found_by_id, id_of, tag_specification, text, update_tags};

pub fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "an elastic IP address",
        [
            ("instance", Attribute::optional(AttributeType::String)),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            ("public_ip", Attribute::computed(AttributeType::String)),
            ("association_id", Attribute::computed(AttributeType::String)),
        ],
    )
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<String, ProviderError> {
    let allocated = api
        .call(
            "AllocateAddress",
            api.ec2
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(tag_specification(ResourceType::ElasticIp, config, identity))
                .send(),
        )
        .await?;
    let id = allocated
        .allocation_id()
        .ok_or_else(|| ProviderError::new("AllocateAddress returned no allocation id"))?
        .to_string();
    if let Some(instance) = text(config, "instance") {
        associate(api, &id, instance).await?;
    }
    Ok(id)
}

async fn associate(api: &Api, id: &str, instance: &str) -> Result<(), ProviderError> {
    api.call(
        "AssociateAddress",
        api.ec2
            .associate_address()
            .allocation_id(id)
            .instance_id(instance)
            .send(),
    )
    .await
    .map(|_| ())
}

async fn disassociate(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    let Some(association) = text(state, "association_id") else {
        return Ok(());
    };
    api.call(
        "DisassociateAddress",
        api.ec2
            .disassociate_address()
            .association_id(association)
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    let described = api
        .call(
            "DescribeAddresses",
            api.ec2
                .describe_addresses()
                .filters(crate::values::ids_filter("allocation-id", ids))
                .send(),
        )
        .await?;
    let found = found_by_id(
        described.addresses(),
        |address| address.allocation_id(),
        |address| address.tags(),
        |address, state| {
            state.insert("public_ip".into(), json!(address.public_ip()));
            state.insert("instance".into(), json!(address.instance_id()));
            state.insert("association_id".into(), json!(address.association_id()));
        },
    );
    Ok(found)
}

pub async fn update(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let id = id_of(prior)?;
    if text(prior, "instance") != text(config, "instance") {
        disassociate(api, prior).await?;
        if let Some(instance) = text(config, "instance") {
            associate(api, id, instance).await?;
        }
    }
    update_tags(api, id, prior, config).await
}

pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    disassociate(api, state).await?;
    api.call(
        "ReleaseAddress",
        api.ec2
            .release_address()
            .allocation_id(id_of(state)?)
            .send(),
    )
    .await
    .map(|_| ())
}
