//! Data sources: `aws_ami` (the image that filters and owners select, the
//! newest with `most_recent`), `aws_availability_zones` (the region's zones
//! in a state), `aws_vpc` (one VPC found by id, CIDR, tags or `default`).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use infra_provider_sdk::{Attribute, AttributeType, Attributes, ProviderError, ResourceSchema};
use serde_json::{Value, json};

use crate::api::Api;
use crate::values::{flag, strings, tags_to_state, text, user_tags};

fn list_of_strings() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::String))
}

pub fn schemas() -> BTreeMap<String, ResourceSchema> {
    let filter = ResourceSchema::new(
        "a Describe filter",
        [
            ("name", Attribute::required(AttributeType::String)),
            ("values", Attribute::required(list_of_strings())),
        ],
    );
    let ami = ResourceSchema::new(
        "an AMI, looked up",
        [
            (
                "owners",
                Attribute::optional(list_of_strings())
                    .describe("account ids, or \"amazon\", \"self\""),
            ),
            (
                "most_recent",
                Attribute::optional(AttributeType::Bool)
                    .describe("when several match, take the newest (else it is an error)"),
            ),
            ("id", Attribute::computed(AttributeType::String)),
            ("name", Attribute::computed(AttributeType::String)),
            ("creation_date", Attribute::computed(AttributeType::String)),
            ("owner_id", Attribute::computed(AttributeType::String)),
            ("architecture", Attribute::computed(AttributeType::String)),
        ],
    )
    .with_block("filter", filter.clone());
    let zones = ResourceSchema::new(
        "the availability zones of the region",
        [
            (
                "state",
                Attribute::optional(AttributeType::String).describe("default \"available\""),
            ),
            ("names", Attribute::computed(list_of_strings())),
            ("zone_ids", Attribute::computed(list_of_strings())),
        ],
    );
    let vpc = ResourceSchema::new(
        "one VPC, looked up",
        [
            ("id", Attribute::optional_computed(AttributeType::String)),
            (
                "cidr_block",
                Attribute::optional_computed(AttributeType::String),
            ),
            ("default", Attribute::optional(AttributeType::Bool)),
            (
                "tags",
                Attribute::optional_computed(AttributeType::Map(Box::new(AttributeType::String))),
            ),
            ("owner_id", Attribute::computed(AttributeType::String)),
        ],
    );
    [
        ("aws_ami".to_string(), ami),
        ("aws_availability_zones".to_string(), zones),
        ("aws_vpc".to_string(), vpc),
    ]
    .into()
}

fn filters(config: &Attributes) -> Vec<Filter> {
    config
        .get("filter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|filter| {
            let values: Vec<String> = filter["values"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            Some(
                Filter::builder()
                    .name(filter["name"].as_str()?)
                    .set_values(Some(values))
                    .build(),
            )
        })
        .collect()
}

pub async fn read(
    api: &Api,
    type_name: &str,
    config: &Attributes,
) -> Result<Attributes, ProviderError> {
    match type_name {
        "aws_ami" => ami(api, config).await,
        "aws_availability_zones" => zones(api, config).await,
        "aws_vpc" => vpc(api, config).await,
        other => Err(ProviderError::new(format!(
            "the aws provider has no data source `{other}`"
        ))),
    }
}

async fn ami(api: &Api, config: &Attributes) -> Result<Attributes, ProviderError> {
    let owners = strings(config, "owners");
    let described = api
        .call(
            "DescribeImages",
            api.ec2
                .describe_images()
                .set_owners((!owners.is_empty()).then_some(owners))
                .set_filters(Some(filters(config)))
                .send(),
        )
        .await?;
    let mut images: Vec<_> = described.images().iter().collect();
    images.sort_by(|a, b| a.creation_date().cmp(&b.creation_date()));
    let image = match images.len() {
        0 => {
            return Err(ProviderError::new(
                "no AMI matches the filters and owners".to_string(),
            ));
        }
        1 => images[0],
        n if flag(config, "most_recent") == Some(true) => images[n - 1],
        n => {
            return Err(ProviderError::new(format!(
                "{n} AMIs match: narrow the filters, or set `most_recent = true` to take the newest"
            )));
        }
    };
    let mut state = config.clone();
    state.insert("id".into(), json!(image.image_id()));
    state.insert("name".into(), json!(image.name()));
    state.insert("creation_date".into(), json!(image.creation_date()));
    state.insert("owner_id".into(), json!(image.owner_id()));
    state.insert(
        "architecture".into(),
        json!(image.architecture().map(|a| a.as_str())),
    );
    Ok(state)
}

async fn zones(api: &Api, config: &Attributes) -> Result<Attributes, ProviderError> {
    let wanted = text(config, "state").unwrap_or("available");
    let described = api
        .call(
            "DescribeAvailabilityZones",
            api.ec2
                .describe_availability_zones()
                .filters(Filter::builder().name("state").values(wanted).build())
                .send(),
        )
        .await?;
    let mut zones: Vec<(&str, &str)> = described
        .availability_zones()
        .iter()
        .filter_map(|z| Some((z.zone_name()?, z.zone_id().unwrap_or_default())))
        .collect();
    zones.sort();
    let mut state = config.clone();
    state.insert(
        "names".into(),
        json!(zones.iter().map(|(name, _)| *name).collect::<Vec<_>>()),
    );
    state.insert(
        "zone_ids".into(),
        json!(zones.iter().map(|(_, id)| *id).collect::<Vec<_>>()),
    );
    Ok(state)
}

async fn vpc(api: &Api, config: &Attributes) -> Result<Attributes, ProviderError> {
    let mut request = api.ec2.describe_vpcs();
    if let Some(id) = text(config, "id") {
        request = request.filters(Filter::builder().name("vpc-id").values(id).build());
    }
    if let Some(cidr) = text(config, "cidr_block") {
        request = request.filters(Filter::builder().name("cidr").values(cidr).build());
    }
    if let Some(default) = flag(config, "default") {
        request = request.filters(
            Filter::builder()
                .name("is-default")
                .values(default.to_string())
                .build(),
        );
    }
    for (key, value) in user_tags(config) {
        request = request.filters(
            Filter::builder()
                .name(format!("tag:{key}"))
                .values(value)
                .build(),
        );
    }
    let described = api.call("DescribeVpcs", request.send()).await?;
    let vpcs = described.vpcs();
    let [vpc] = vpcs else {
        return Err(ProviderError::new(format!(
            "{} VPCs match; the lookup must find exactly one",
            vpcs.len()
        )));
    };
    let mut state = config.clone();
    state.insert("id".into(), json!(vpc.vpc_id()));
    state.insert("cidr_block".into(), json!(vpc.cidr_block()));
    state.insert("owner_id".into(), json!(vpc.owner_id()));
    state.remove("tags");
    tags_to_state(vpc.tags(), &mut state);
    Ok(state)
}
