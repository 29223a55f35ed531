//! `aws_internet_gateway`: a VPC's way to the internet. Attached to
//! `vpc_id` (changing it detaches and attaches in place).

use aws_sdk_ec2::types::ResourceType;
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::json;

use crate::api::Api;
use crate::values::{Found, found_by_id, id_of, tag_specification, text, update_tags};

pub fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "an internet gateway, attached to a VPC",
        [
            ("vpc_id", Attribute::optional(AttributeType::String)),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
        ],
    )
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<String, ProviderError> {
    let created = api
        .call(
            "CreateInternetGateway",
            api.ec2
                .create_internet_gateway()
                .tag_specifications(tag_specification(
                    ResourceType::InternetGateway,
                    config,
                    identity,
                ))
                .send(),
        )
        .await?;
    let id = created
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .ok_or_else(|| ProviderError::new("CreateInternetGateway returned no id"))?
        .to_string();
    if let Some(vpc) = text(config, "vpc_id") {
        attach(api, &id, vpc).await?;
    }
    Ok(id)
}

async fn attach(api: &Api, id: &str, vpc: &str) -> Result<(), ProviderError> {
    api.call(
        "AttachInternetGateway",
        api.ec2
            .attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send(),
    )
    .await
    .map(|_| ())
}

async fn detach(api: &Api, id: &str, vpc: &str) -> Result<(), ProviderError> {
    api.call(
        "DetachInternetGateway",
        api.ec2
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    let described = api
        .call(
            "DescribeInternetGateways",
            api.ec2
                .describe_internet_gateways()
                .filters(crate::values::ids_filter("internet-gateway-id", ids))
                .send(),
        )
        .await?;
    let found = found_by_id(
        described.internet_gateways(),
        |gateway| gateway.internet_gateway_id(),
        |gateway| gateway.tags(),
        |gateway, state| {
            let vpc = gateway.attachments().iter().find_map(|a| a.vpc_id());
            state.insert("vpc_id".into(), json!(vpc));
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
    let (before, after) = (text(prior, "vpc_id"), text(config, "vpc_id"));
    if before != after {
        if let Some(vpc) = before {
            detach(api, id, vpc).await?;
        }
        if let Some(vpc) = after {
            attach(api, id, vpc).await?;
        }
    }
    update_tags(api, id, prior, config).await
}

pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    let id = id_of(state)?;
    if let Some(vpc) = text(state, "vpc_id") {
        match detach(api, id, vpc).await {
            Err(error) if !crate::api::is_not_found(&error) => return Err(error),
            _ => {}
        }
    }
    api.call(
        "DeleteInternetGateway",
        api.ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send(),
    )
    .await
    .map(|_| ())
}
