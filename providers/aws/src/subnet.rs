//! `aws_subnet`: a range of a VPC in one availability zone. The VPC, CIDR
//! block and zone force a new subnet; `map_public_ip_on_launch` and tags
//! change in place.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet};
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::json;

use crate::api::Api;
use crate::values::{
    Created, Found, created_state, flag, found_by_id, id_of, required, tag_specification, text,
    update_tags,
};

pub fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "a subnet of a VPC",
        [
            (
                "vpc_id",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "cidr_block",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "availability_zone",
                Attribute::optional_computed(AttributeType::String)
                    .force_new()
                    .describe("AWS chooses one when unset"),
            ),
            (
                "map_public_ip_on_launch",
                Attribute::optional_computed(AttributeType::Bool).describe("default false"),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
        ],
    )
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<Created, ProviderError> {
    let mut request = api
        .ec2
        .create_subnet()
        .vpc_id(required(config, "vpc_id")?)
        .cidr_block(required(config, "cidr_block")?)
        .tag_specifications(tag_specification(ResourceType::Subnet, config, identity));
    if let Some(zone) = text(config, "availability_zone") {
        request = request.availability_zone(zone);
    }
    let created = api.call("CreateSubnet", request.send()).await?;
    let subnet = created
        .subnet()
        .ok_or_else(|| ProviderError::new("CreateSubnet returned no subnet"))?;
    let id = subnet
        .subnet_id()
        .ok_or_else(|| ProviderError::new("CreateSubnet returned no id"))?
        .to_string();
    set_public_ip(api, &id, &Attributes::new(), config).await?;
    // What a read would find: the answer's subnet, with the public IP
    // setting just made.
    let mut state = created_state(&id, config);
    describe(subnet, &mut state);
    if let Some(wanted) = flag(config, "map_public_ip_on_launch") {
        state.insert("map_public_ip_on_launch".into(), json!(wanted));
    }
    Ok(Created {
        id,
        state: Some(state),
    })
}

async fn set_public_ip(
    api: &Api,
    id: &str,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let Some(wanted) = flag(config, "map_public_ip_on_launch") else {
        return Ok(());
    };
    if flag(prior, "map_public_ip_on_launch").unwrap_or(false) == wanted {
        return Ok(());
    }
    api.call(
        "ModifySubnetAttribute",
        api.ec2
            .modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(wanted).build())
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    let described = api
        .call(
            "DescribeSubnets",
            api.ec2
                .describe_subnets()
                .filters(crate::values::ids_filter("subnet-id", ids))
                .send(),
        )
        .await?;
    let found = found_by_id(
        described.subnets(),
        |subnet| subnet.subnet_id(),
        |subnet| subnet.tags(),
        describe,
    );
    Ok(found)
}

/// A subnet's state as AWS describes it, tags and id aside.
fn describe(subnet: &Subnet, state: &mut Attributes) {
    state.insert("vpc_id".into(), json!(subnet.vpc_id()));
    state.insert("cidr_block".into(), json!(subnet.cidr_block()));
    state.insert(
        "availability_zone".into(),
        json!(subnet.availability_zone()),
    );
    state.insert(
        "map_public_ip_on_launch".into(),
        json!(subnet.map_public_ip_on_launch().unwrap_or(false)),
    );
}

pub async fn update(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let id = id_of(prior)?;
    set_public_ip(api, id, prior, config).await?;
    update_tags(api, id, prior, config).await
}

pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    let id = id_of(state)?;
    api.call("DeleteSubnet", api.ec2.delete_subnet().subnet_id(id).send())
        .await
        .map(|_| ())
}
