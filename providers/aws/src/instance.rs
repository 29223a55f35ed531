//! `aws_instance`: a virtual machine. Create waits until it is `running`
//! (the provider's read-back waits for it).
//! A new AMI, subnet, key or user data replaces it; a new instance type is
//! applied in place by stop → modify → start; security groups and tags
//! change in place. An instance that is terminated (or terminating) no
//! longer exists: refresh reports it gone, and the plan re-creates it.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{AttributeValue, InstanceStateName, InstanceType, ResourceType};
use base64::Engine as _;
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::json;

use crate::api::Api;
use crate::values::{
    Found, id_of, required, strings, tag_specification, tags_to_state, text, update_tags,
};

pub fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "an EC2 instance",
        [
            (
                "ami",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "instance_type",
                Attribute::required(AttributeType::String)
                    .describe("changed in place: the instance is stopped, modified and started"),
            ),
            (
                "subnet_id",
                Attribute::optional_computed(AttributeType::String).force_new(),
            ),
            (
                "vpc_security_group_ids",
                Attribute::optional_computed(AttributeType::Set(Box::new(AttributeType::String))),
            ),
            (
                "key_name",
                Attribute::optional(AttributeType::String).force_new(),
            ),
            (
                "user_data",
                Attribute::optional(AttributeType::String)
                    .force_new()
                    .describe("run at first boot (sent base64-encoded)"),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            ("private_ip", Attribute::computed(AttributeType::String)),
            ("public_ip", Attribute::computed(AttributeType::String)),
            (
                "availability_zone",
                Attribute::computed(AttributeType::String),
            ),
        ],
    )
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<String, ProviderError> {
    let mut request = api
        .ec2
        .run_instances()
        .image_id(required(config, "ami")?)
        .instance_type(InstanceType::from(required(config, "instance_type")?))
        .min_count(1)
        .max_count(1)
        .tag_specifications(tag_specification(ResourceType::Instance, config, identity));
    if let Some(subnet) = text(config, "subnet_id") {
        request = request.subnet_id(subnet);
    }
    let groups = strings(config, "vpc_security_group_ids");
    if !groups.is_empty() {
        request = request.set_security_group_ids(Some(groups));
    }
    if let Some(key) = text(config, "key_name") {
        request = request.key_name(key);
    }
    if let Some(user_data) = text(config, "user_data") {
        request = request.user_data(base64::engine::general_purpose::STANDARD.encode(user_data));
    }
    let created = api.call("RunInstances", request.send()).await?;
    let id = created
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .ok_or_else(|| ProviderError::new("RunInstances returned no instance"))?
        .to_string();
    // The provider reads it back until it is running (`describe`): one
    // Describe call serves every instance being created at the time.
    Ok(id)
}

/// Polls until the instance is in `wanted` (at most 10 minutes).
async fn wait_for(api: &Api, id: &str, wanted: InstanceStateName) -> Result<(), ProviderError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let described = api
            .call(
                "DescribeInstances",
                api.ec2.describe_instances().instance_ids(id).send(),
            )
            .await?;
        let state = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).cloned());
        if state.as_ref() == Some(&wanted) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ProviderError::new(format!(
                "instance {id} did not become {} within 10 minutes (it is {})",
                wanted.as_str(),
                state
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "gone".into())
            )));
        }
        tokio::time::sleep(api.poll).await;
    }
}

pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    Ok(describe(api, ids)
        .await?
        .into_iter()
        .map(|(id, (attributes, _))| (id, attributes))
        .collect())
}

/// The instances of `ids` that exist (not terminated or shutting down),
/// each with whether it is running.
pub async fn describe(
    api: &Api,
    ids: &[String],
) -> Result<BTreeMap<String, (Attributes, bool)>, ProviderError> {
    let mut found = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let described = api
            .call(
                "DescribeInstances",
                api.ec2
                    .describe_instances()
                    .filters(crate::values::ids_filter("instance-id", ids))
                    .set_next_token(token.clone())
                    .send(),
            )
            .await?;
        for instance in described.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = instance.instance_id() else {
                continue;
            };
            let state = instance.state().and_then(|s| s.name());
            if matches!(
                state,
                Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
            ) {
                continue;
            }
            let mut attributes = Attributes::new();
            attributes.insert("id".into(), json!(id));
            attributes.insert("ami".into(), json!(instance.image_id()));
            attributes.insert(
                "instance_type".into(),
                json!(instance.instance_type().map(|t| t.as_str())),
            );
            attributes.insert("subnet_id".into(), json!(instance.subnet_id()));
            let mut groups: Vec<&str> = instance
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id())
                .collect();
            groups.sort_unstable();
            attributes.insert("vpc_security_group_ids".into(), json!(groups));
            attributes.insert("key_name".into(), json!(instance.key_name()));
            attributes.insert("private_ip".into(), json!(instance.private_ip_address()));
            attributes.insert("public_ip".into(), json!(instance.public_ip_address()));
            attributes.insert(
                "availability_zone".into(),
                json!(instance.placement().and_then(|p| p.availability_zone())),
            );
            tags_to_state(instance.tags(), &mut attributes);
            let running = state == Some(&InstanceStateName::Running);
            found.insert(id.to_string(), (attributes, running));
        }
        token = described.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(found);
        }
    }
}

/// `user_data` is not returned by DescribeInstances: the state keeps what
/// was configured.
pub fn keep_write_only(state: &mut Attributes, like: &Attributes) {
    if let Some(user_data) = like.get("user_data") {
        state.insert("user_data".into(), user_data.clone());
    }
}

pub async fn update(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let id = id_of(prior)?;
    let wanted_type = required(config, "instance_type")?;
    if text(prior, "instance_type") != Some(wanted_type) {
        api.call(
            "StopInstances",
            api.ec2.stop_instances().instance_ids(id).send(),
        )
        .await?;
        wait_for(api, id, InstanceStateName::Stopped).await?;
        api.call(
            "ModifyInstanceAttribute",
            api.ec2
                .modify_instance_attribute()
                .instance_id(id)
                .instance_type(AttributeValue::builder().value(wanted_type).build())
                .send(),
        )
        .await?;
        api.call(
            "StartInstances",
            api.ec2.start_instances().instance_ids(id).send(),
        )
        .await?;
        wait_for(api, id, InstanceStateName::Running).await?;
    }
    let mut groups = strings(config, "vpc_security_group_ids");
    let mut had = strings(prior, "vpc_security_group_ids");
    groups.sort();
    had.sort();
    if config.contains_key("vpc_security_group_ids") && groups != had {
        api.call(
            "ModifyInstanceAttribute",
            api.ec2
                .modify_instance_attribute()
                .instance_id(id)
                .set_groups(Some(groups))
                .send(),
        )
        .await?;
    }
    update_tags(api, id, prior, config).await
}

/// Terminates the instance and waits until it is gone, so that what it
/// depends on (its subnet, its security groups) can go next.
pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    let id = id_of(state)?;
    api.call(
        "TerminateInstances",
        api.ec2.terminate_instances().instance_ids(id).send(),
    )
    .await?;
    wait_for(api, id, InstanceStateName::Terminated).await
}
