//! `aws_route_table`: routes of a VPC (`route { cidr_block, gateway_id }`
//! blocks, a set) and the subnets that use it (`subnet_ids`, a set). The
//! VPC forces a new table; routes, associations and tags change in place.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::ResourceType;
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::{Value, json};

use crate::api::Api;
use crate::values::{Found, found_by_id, id_of, required, strings, tag_specification, update_tags};

pub fn schema() -> ResourceSchema {
    let route = ResourceSchema::new(
        "a route",
        [
            ("cidr_block", Attribute::required(AttributeType::String)),
            (
                "gateway_id",
                Attribute::required(AttributeType::String)
                    .describe("an internet gateway, e.g. aws_internet_gateway.main.id"),
            ),
        ],
    )
    .as_set();
    ResourceSchema::new(
        "a route table, and the subnets associated with it",
        [
            (
                "vpc_id",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "subnet_ids",
                Attribute::optional(AttributeType::Set(Box::new(AttributeType::String))),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            (
                "association_ids",
                Attribute::computed(AttributeType::Map(Box::new(AttributeType::String)))
                    .describe("the association of each subnet"),
            ),
        ],
    )
    .with_block("route", route)
}

/// (destination, gateway) pairs.
fn routes(config: &Attributes) -> BTreeSet<(String, String)> {
    config
        .get("route")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|route| {
            Some((
                route["cidr_block"].as_str()?.to_string(),
                route["gateway_id"].as_str()?.to_string(),
            ))
        })
        .collect()
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<String, ProviderError> {
    let created = api
        .call(
            "CreateRouteTable",
            api.ec2
                .create_route_table()
                .vpc_id(required(config, "vpc_id")?)
                .tag_specifications(tag_specification(
                    ResourceType::RouteTable,
                    config,
                    identity,
                ))
                .send(),
        )
        .await?;
    let id = created
        .route_table()
        .and_then(|t| t.route_table_id())
        .ok_or_else(|| ProviderError::new("CreateRouteTable returned no id"))?
        .to_string();
    apply_changes(api, &id, &Attributes::new(), config).await?;
    Ok(id)
}

async fn apply_changes(
    api: &Api,
    id: &str,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let (had, wanted) = (routes(prior), routes(config));
    for (cidr, _) in had.difference(&wanted) {
        api.call(
            "DeleteRoute",
            api.ec2
                .delete_route()
                .route_table_id(id)
                .destination_cidr_block(cidr)
                .send(),
        )
        .await?;
    }
    for (cidr, gateway) in wanted.difference(&had) {
        api.call(
            "CreateRoute",
            api.ec2
                .create_route()
                .route_table_id(id)
                .destination_cidr_block(cidr)
                .gateway_id(gateway)
                .send(),
        )
        .await?;
    }
    // Associations: the prior state records their ids by subnet.
    let had: BTreeSet<String> = strings(prior, "subnet_ids").into_iter().collect();
    let wanted: BTreeSet<String> = strings(config, "subnet_ids").into_iter().collect();
    let associations = prior
        .get("association_ids")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for subnet in had.difference(&wanted) {
        if let Some(association) = associations.get(subnet).and_then(Value::as_str) {
            api.call(
                "DisassociateRouteTable",
                api.ec2
                    .disassociate_route_table()
                    .association_id(association)
                    .send(),
            )
            .await?;
        }
    }
    for subnet in wanted.difference(&had) {
        api.call(
            "AssociateRouteTable",
            api.ec2
                .associate_route_table()
                .route_table_id(id)
                .subnet_id(subnet)
                .send(),
        )
        .await?;
    }
    Ok(())
}

pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    let described = api
        .call(
            "DescribeRouteTables",
            api.ec2
                .describe_route_tables()
                .filters(crate::values::ids_filter("route-table-id", ids))
                .send(),
        )
        .await?;
    let found = found_by_id(
        described.route_tables(),
        |table| table.route_table_id(),
        |table| table.tags(),
        |table, state| {
            state.insert("vpc_id".into(), json!(table.vpc_id()));
            // Only routes through a gateway; the VPC's own `local` route is AWS's.
            let routes: Vec<Value> = table
        .routes()
        .iter()
        .filter_map(|route| {
            let gateway = route.gateway_id().filter(|g| *g != "local")?;
            Some(
                json!({ "cidr_block": route.destination_cidr_block()?, "gateway_id": gateway }),
            )
        })
        .collect();
            if !routes.is_empty() {
                state.insert("route".into(), Value::Array(routes));
            }
            let mut subnets = Vec::new();
            let mut associations = serde_json::Map::new();
            for association in table.associations() {
                if let (Some(subnet), Some(association)) = (
                    association.subnet_id(),
                    association.route_table_association_id(),
                ) {
                    subnets.push(subnet.to_string());
                    associations.insert(subnet.to_string(), json!(association));
                }
            }
            subnets.sort();
            if !subnets.is_empty() {
                state.insert("subnet_ids".into(), json!(subnets));
                state.insert("association_ids".into(), Value::Object(associations));
            }
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
    apply_changes(api, id, prior, config).await?;
    update_tags(api, id, prior, config).await
}

/// Disassociates its subnets, then deletes the table.
pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    let id = id_of(state)?;
    let mut without = state.clone();
    without.remove("subnet_ids");
    without.remove("route");
    apply_changes(api, id, state, &without).await?;
    api.call(
        "DeleteRouteTable",
        api.ec2.delete_route_table().route_table_id(id).send(),
    )
    .await
    .map(|_| ())
}
