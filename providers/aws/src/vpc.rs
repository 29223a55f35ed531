//! `aws_vpc`: a virtual network. The CIDR block forces a new VPC; DNS
//! settings and tags change in place.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::json;

use crate::api::Api;
use crate::values::{
    Created, Found, created_state, flag, found_by_id, id_of, required, tag_specification,
    update_tags,
};

pub fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "a virtual private cloud",
        [
            (
                "cidr_block",
                Attribute::required(AttributeType::String)
                    .force_new()
                    .describe("the IPv4 range, e.g. \"10.0.0.0/16\""),
            ),
            (
                "enable_dns_support",
                Attribute::optional_computed(AttributeType::Bool).describe("default true"),
            ),
            (
                "enable_dns_hostnames",
                Attribute::optional_computed(AttributeType::Bool).describe("default false"),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            ("owner_id", Attribute::computed(AttributeType::String)),
        ],
    )
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<Created, ProviderError> {
    let created = api
        .call(
            "CreateVpc",
            api.ec2
                .create_vpc()
                .cidr_block(required(config, "cidr_block")?)
                .tag_specifications(tag_specification(ResourceType::Vpc, config, identity))
                .send(),
        )
        .await?;
    let vpc = created
        .vpc()
        .ok_or_else(|| ProviderError::new("CreateVpc returned no VPC"))?;
    let id = vpc
        .vpc_id()
        .ok_or_else(|| ProviderError::new("CreateVpc returned no id"))?
        .to_string();
    set_dns(api, &id, &Attributes::new(), config).await?;
    // What a read would find: the answer's VPC, and the DNS settings as
    // configured or AWS's defaults for a new VPC.
    let mut state = created_state(&id, config);
    state.insert("cidr_block".into(), json!(vpc.cidr_block()));
    state.insert("owner_id".into(), json!(vpc.owner_id()));
    state.insert(
        "enable_dns_support".into(),
        json!(flag(config, "enable_dns_support").unwrap_or(true)),
    );
    state.insert(
        "enable_dns_hostnames".into(),
        json!(flag(config, "enable_dns_hostnames").unwrap_or(false)),
    );
    Ok(Created {
        id,
        state: Some(state),
    })
}

async fn set_dns(
    api: &Api,
    id: &str,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    // One attribute per call, as the API requires.
    for name in ["enable_dns_support", "enable_dns_hostnames"] {
        let Some(wanted) = flag(config, name) else {
            continue;
        };
        if flag(prior, name) == Some(wanted) {
            continue;
        }
        let value = AttributeBooleanValue::builder().value(wanted).build();
        let request = api.ec2.modify_vpc_attribute().vpc_id(id);
        let request = if name == "enable_dns_support" {
            request.enable_dns_support(value)
        } else {
            request.enable_dns_hostnames(value)
        };
        api.call("ModifyVpcAttribute", request.send()).await?;
    }
    Ok(())
}

/// The VPCs that exist among `ids`, by id: one DescribeVpcs for all, then
/// the DNS settings, which the API gives one attribute per call.
pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    let described = api
        .call(
            "DescribeVpcs",
            api.ec2
                .describe_vpcs()
                .filters(crate::values::ids_filter("vpc-id", ids))
                .send(),
        )
        .await?;
    let mut found = found_by_id(
        described.vpcs(),
        |vpc| vpc.vpc_id(),
        |vpc| vpc.tags(),
        |vpc, state| {
            state.insert("cidr_block".into(), json!(vpc.cidr_block()));
            state.insert("owner_id".into(), json!(vpc.owner_id()));
        },
    );
    for (id, state) in &mut found {
        for (name, attribute) in [
            ("enable_dns_support", VpcAttributeName::EnableDnsSupport),
            ("enable_dns_hostnames", VpcAttributeName::EnableDnsHostnames),
        ] {
            let answer = api
                .call(
                    "DescribeVpcAttribute",
                    api.ec2
                        .describe_vpc_attribute()
                        .vpc_id(id.as_str())
                        .attribute(attribute)
                        .send(),
                )
                .await?;
            let value = if name == "enable_dns_support" {
                answer.enable_dns_support().and_then(|v| v.value())
            } else {
                answer.enable_dns_hostnames().and_then(|v| v.value())
            };
            state.insert(name.into(), json!(value.unwrap_or(false)));
        }
    }
    Ok(found)
}

pub async fn update(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let id = id_of(prior)?;
    set_dns(api, id, prior, config).await?;
    update_tags(api, id, prior, config).await
}

pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    let id = id_of(state)?;
    api.call("DeleteVpc", api.ec2.delete_vpc().vpc_id(id).send())
        .await
        .map(|_| ())
}
