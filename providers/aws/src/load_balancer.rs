//! Elastic Load Balancing v2: `aws_lb` (an application load balancer),
//! `aws_lb_target_group` (health check settings, deregistration delay),
//! `aws_lb_listener` (forward to one target group, or weighted to several
//! — the traffic split rollouts will use) and
//! `aws_lb_target_group_attachment` (an instance in a target group).
//! Their ids are ARNs; an attachment's id is `TARGET_GROUP_ARN|INSTANCE`.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
    ProtocolEnum, Tag, TargetDescription, TargetGroupAttribute, TargetGroupTuple, TargetTypeEnum,
};
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::{Value, json};

use crate::api::{Api, is_not_found};
use crate::values::{
    ADDRESS_TAG, Found, LINEAGE_TAG, flag, id_of, number, required, strings, text, user_tags,
};

fn strings_set() -> AttributeType {
    AttributeType::Set(Box::new(AttributeType::String))
}

pub fn lb_schema() -> ResourceSchema {
    ResourceSchema::new(
        "an application load balancer",
        [
            (
                "name",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "internal",
                Attribute::optional_computed(AttributeType::Bool)
                    .force_new()
                    .describe("default false (internet-facing)"),
            ),
            ("subnets", Attribute::required(strings_set())),
            (
                "security_groups",
                Attribute::optional_computed(strings_set()),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            ("arn", Attribute::computed(AttributeType::String)),
            ("dns_name", Attribute::computed(AttributeType::String)),
            ("vpc_id", Attribute::computed(AttributeType::String)),
        ],
    )
}

pub fn target_group_schema() -> ResourceSchema {
    let health_check = ResourceSchema::new(
        "how the load balancer checks targets",
        [
            ("path", Attribute::optional(AttributeType::String)),
            (
                "interval",
                Attribute::optional(AttributeType::Number).describe("seconds"),
            ),
            (
                "timeout",
                Attribute::optional(AttributeType::Number).describe("seconds"),
            ),
            (
                "healthy_threshold",
                Attribute::optional(AttributeType::Number),
            ),
            (
                "unhealthy_threshold",
                Attribute::optional(AttributeType::Number),
            ),
        ],
    );
    ResourceSchema::new(
        "a target group",
        [
            (
                "name",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "port",
                Attribute::required(AttributeType::Number).force_new(),
            ),
            (
                "protocol",
                Attribute::optional_computed(AttributeType::String)
                    .force_new()
                    .describe("default \"HTTP\""),
            ),
            (
                "vpc_id",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "deregistration_delay",
                Attribute::optional_computed(AttributeType::Number)
                    .describe("seconds a deregistered target drains (default 300)"),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            ("arn", Attribute::computed(AttributeType::String)),
        ],
    )
    .with_block("health_check", health_check)
}

pub fn listener_schema() -> ResourceSchema {
    let forward = ResourceSchema::new(
        "a target group the listener forwards to, with its weight",
        [
            (
                "target_group_arn",
                Attribute::required(AttributeType::String),
            ),
            (
                "weight",
                Attribute::optional(AttributeType::Number)
                    .describe("share of the traffic, 0–999 (default 1)"),
            ),
        ],
    )
    .as_set();
    ResourceSchema::new(
        "a listener: a port of a load balancer and where its traffic goes",
        [
            (
                "load_balancer_arn",
                Attribute::required(AttributeType::String).force_new(),
            ),
            ("port", Attribute::required(AttributeType::Number)),
            (
                "protocol",
                Attribute::optional_computed(AttributeType::String).describe("default \"HTTP\""),
            ),
            ("id", Attribute::computed(AttributeType::String)),
            ("arn", Attribute::computed(AttributeType::String)),
        ],
    )
    .with_block("forward", forward)
}

pub fn attachment_schema() -> ResourceSchema {
    ResourceSchema::new(
        "an instance registered in a target group",
        [
            (
                "target_group_arn",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "target_id",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "port",
                Attribute::optional(AttributeType::Number).force_new(),
            ),
            ("id", Attribute::computed(AttributeType::String)),
        ],
    )
}

fn elb_tags(config: &Attributes, identity: &ObjectIdentity) -> Vec<Tag> {
    let mut tags: Vec<Tag> = user_tags(config)
        .into_iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    tags.push(
        Tag::builder()
            .key(ADDRESS_TAG)
            .value(&identity.address)
            .build(),
    );
    tags.push(
        Tag::builder()
            .key(LINEAGE_TAG)
            .value(&identity.lineage)
            .build(),
    );
    tags
}

/// The user tags of each ARN (DescribeTags takes 20 at a time).
async fn read_tags(api: &Api, arns: &[String]) -> Result<BTreeMap<String, Value>, ProviderError> {
    let mut found = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let described = api
            .call(
                "DescribeTags",
                api.elb
                    .describe_tags()
                    .set_resource_arns(Some(chunk.to_vec()))
                    .send(),
            )
            .await?;
        for description in described.tag_descriptions() {
            let Some(arn) = description.resource_arn() else {
                continue;
            };
            let tags: serde_json::Map<String, Value> = description
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), json!(t.value().unwrap_or_default()))))
                .filter(|(key, _)| !key.starts_with("infra:"))
                .collect();
            if !tags.is_empty() {
                found.insert(arn.to_string(), Value::Object(tags));
            }
        }
    }
    Ok(found)
}

async fn update_elb_tags(
    api: &Api,
    arn: &str,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let (before, after) = (user_tags(prior), user_tags(config));
    let removed: Vec<String> = before
        .keys()
        .filter(|key| !after.contains_key(*key))
        .cloned()
        .collect();
    if !removed.is_empty() {
        api.call(
            "RemoveTags",
            api.elb
                .remove_tags()
                .resource_arns(arn)
                .set_tag_keys(Some(removed))
                .send(),
        )
        .await?;
    }
    let set: Vec<Tag> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(value))
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    if !set.is_empty() {
        api.call(
            "AddTags",
            api.elb
                .add_tags()
                .resource_arns(arn)
                .set_tags(Some(set))
                .send(),
        )
        .await?;
    }
    Ok(())
}

/// Describes by ARN; AWS fails the whole call if one is missing, so then
/// each is described alone and the missing ones left out.
async fn describe_each<T, F, Fut>(ids: &[String], describe: F) -> Result<Vec<T>, ProviderError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, ProviderError>>,
{
    match describe(ids.to_vec()).await {
        Ok(found) => Ok(found),
        Err(error) if is_not_found(&error) && ids.len() > 1 => {
            let mut found = Vec::new();
            for id in ids {
                match describe(vec![id.clone()]).await {
                    Ok(one) => found.extend(one),
                    Err(error) if is_not_found(&error) => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(found)
        }
        Err(error) if is_not_found(&error) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

// aws_lb

pub async fn create_lb(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<String, ProviderError> {
    let scheme = if flag(config, "internal") == Some(true) {
        LoadBalancerSchemeEnum::Internal
    } else {
        LoadBalancerSchemeEnum::InternetFacing
    };
    let groups = strings(config, "security_groups");
    let created = api
        .call(
            "CreateLoadBalancer",
            api.elb
                .create_load_balancer()
                .name(required(config, "name")?)
                .r#type(LoadBalancerTypeEnum::Application)
                .scheme(scheme)
                .set_subnets(Some(strings(config, "subnets")))
                .set_security_groups((!groups.is_empty()).then_some(groups))
                .set_tags(Some(elb_tags(config, identity)))
                .send(),
        )
        .await?;
    created
        .load_balancers()
        .first()
        .and_then(|lb| lb.load_balancer_arn())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::new("CreateLoadBalancer returned no ARN"))
}

pub async fn read_lbs(api: &Api, ids: &[String]) -> Found {
    let balancers = describe_each(ids, |arns| async move {
        api.call(
            "DescribeLoadBalancers",
            api.elb
                .describe_load_balancers()
                .set_load_balancer_arns(Some(arns))
                .send(),
        )
        .await
        .map(|answer| answer.load_balancers().to_vec())
    })
    .await?;
    let arns: Vec<String> = balancers
        .iter()
        .filter_map(|lb| lb.load_balancer_arn().map(str::to_string))
        .collect();
    let mut tags = read_tags(api, &arns).await?;
    let mut found = BTreeMap::new();
    for lb in &balancers {
        let Some(arn) = lb.load_balancer_arn() else {
            continue;
        };
        let mut subnets: Vec<&str> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id())
            .collect();
        subnets.sort_unstable();
        let mut groups: Vec<&str> = lb.security_groups().iter().map(String::as_str).collect();
        groups.sort_unstable();
        let mut state = Attributes::new();
        state.insert("id".into(), json!(arn));
        state.insert("arn".into(), json!(arn));
        state.insert("name".into(), json!(lb.load_balancer_name()));
        state.insert(
            "internal".into(),
            json!(lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal)),
        );
        state.insert("subnets".into(), json!(subnets));
        state.insert("security_groups".into(), json!(groups));
        state.insert("dns_name".into(), json!(lb.dns_name()));
        state.insert("vpc_id".into(), json!(lb.vpc_id()));
        if let Some(tags) = tags.remove(arn) {
            state.insert("tags".into(), tags);
        }
        found.insert(arn.to_string(), state);
    }
    Ok(found)
}

pub async fn update_lb(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let arn = id_of(prior)?;
    let sorted = |attributes: &Attributes, name: &str| {
        let mut values = strings(attributes, name);
        values.sort();
        values
    };
    if sorted(prior, "subnets") != sorted(config, "subnets") {
        api.call(
            "SetSubnets",
            api.elb
                .set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(strings(config, "subnets")))
                .send(),
        )
        .await?;
    }
    if config.contains_key("security_groups")
        && sorted(prior, "security_groups") != sorted(config, "security_groups")
    {
        api.call(
            "SetSecurityGroups",
            api.elb
                .set_security_groups()
                .load_balancer_arn(arn)
                .set_security_groups(Some(strings(config, "security_groups")))
                .send(),
        )
        .await?;
    }
    update_elb_tags(api, arn, prior, config).await
}

pub async fn delete_lb(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    api.call(
        "DeleteLoadBalancer",
        api.elb
            .delete_load_balancer()
            .load_balancer_arn(id_of(state)?)
            .send(),
    )
    .await
    .map(|_| ())
}

// aws_lb_target_group

fn health_check(config: &Attributes) -> serde_json::Map<String, Value> {
    config
        .get("health_check")
        .and_then(Value::as_array)
        .and_then(|blocks| blocks.first())
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub async fn create_target_group(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<String, ProviderError> {
    let check = health_check(config);
    let seconds = |name: &str| check.get(name).and_then(Value::as_f64).map(|n| n as i32);
    let created = api
        .call(
            "CreateTargetGroup",
            api.elb
                .create_target_group()
                .name(required(config, "name")?)
                .port(number(config, "port").unwrap_or(80) as i32)
                .protocol(ProtocolEnum::from(
                    text(config, "protocol").unwrap_or("HTTP"),
                ))
                .vpc_id(required(config, "vpc_id")?)
                .target_type(TargetTypeEnum::Instance)
                .set_health_check_path(
                    check
                        .get("path")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                )
                .set_health_check_interval_seconds(seconds("interval"))
                .set_health_check_timeout_seconds(seconds("timeout"))
                .set_healthy_threshold_count(seconds("healthy_threshold"))
                .set_unhealthy_threshold_count(seconds("unhealthy_threshold"))
                .set_tags(Some(elb_tags(config, identity)))
                .send(),
        )
        .await?;
    let arn = created
        .target_groups()
        .first()
        .and_then(|tg| tg.target_group_arn())
        .ok_or_else(|| ProviderError::new("CreateTargetGroup returned no ARN"))?
        .to_string();
    set_deregistration_delay(api, &arn, &Attributes::new(), config).await?;
    Ok(arn)
}

async fn set_deregistration_delay(
    api: &Api,
    arn: &str,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let Some(delay) = number(config, "deregistration_delay") else {
        return Ok(());
    };
    if number(prior, "deregistration_delay") == Some(delay) {
        return Ok(());
    }
    api.call(
        "ModifyTargetGroupAttributes",
        api.elb
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(delay.to_string())
                    .build(),
            )
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn read_target_groups(api: &Api, ids: &[String]) -> Found {
    let groups = describe_each(ids, |arns| async move {
        api.call(
            "DescribeTargetGroups",
            api.elb
                .describe_target_groups()
                .set_target_group_arns(Some(arns))
                .send(),
        )
        .await
        .map(|answer| answer.target_groups().to_vec())
    })
    .await?;
    let arns: Vec<String> = groups
        .iter()
        .filter_map(|tg| tg.target_group_arn().map(str::to_string))
        .collect();
    let mut tags = read_tags(api, &arns).await?;
    let mut found = BTreeMap::new();
    for group in &groups {
        let Some(arn) = group.target_group_arn() else {
            continue;
        };
        let attributes = api
            .call(
                "DescribeTargetGroupAttributes",
                api.elb
                    .describe_target_group_attributes()
                    .target_group_arn(arn)
                    .send(),
            )
            .await?;
        let delay = attributes
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(300);
        let mut state = Attributes::new();
        state.insert("id".into(), json!(arn));
        state.insert("arn".into(), json!(arn));
        state.insert("name".into(), json!(group.target_group_name()));
        state.insert("port".into(), json!(group.port()));
        state.insert(
            "protocol".into(),
            json!(group.protocol().map(|p| p.as_str())),
        );
        state.insert("vpc_id".into(), json!(group.vpc_id()));
        state.insert("deregistration_delay".into(), json!(delay));
        state.insert(
            "health_check".into(),
            json!([{
                "path": group.health_check_path(),
                "interval": group.health_check_interval_seconds(),
                "timeout": group.health_check_timeout_seconds(),
                "healthy_threshold": group.healthy_threshold_count(),
                "unhealthy_threshold": group.unhealthy_threshold_count(),
            }]),
        );
        if let Some(tags) = tags.remove(arn) {
            state.insert("tags".into(), tags);
        }
        found.insert(arn.to_string(), state);
    }
    Ok(found)
}

/// The configured health check settings; the ones it leaves unset keep
/// AWS's values in the state.
pub fn keep_health_check(state: &mut Attributes, like: &Attributes) {
    let configured = health_check(like);
    let Some(read) = state
        .get_mut("health_check")
        .and_then(Value::as_array_mut)
        .and_then(|blocks| blocks.first_mut())
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if like.contains_key("health_check") {
        read.retain(|name, _| configured.contains_key(name));
    } else {
        state.remove("health_check");
    }
}

pub async fn update_target_group(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let arn = id_of(prior)?;
    let (before, after) = (health_check(prior), health_check(config));
    if before != after {
        let seconds = |name: &str| after.get(name).and_then(Value::as_f64).map(|n| n as i32);
        api.call(
            "ModifyTargetGroup",
            api.elb
                .modify_target_group()
                .target_group_arn(arn)
                .set_health_check_path(
                    after
                        .get("path")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                )
                .set_health_check_interval_seconds(seconds("interval"))
                .set_health_check_timeout_seconds(seconds("timeout"))
                .set_healthy_threshold_count(seconds("healthy_threshold"))
                .set_unhealthy_threshold_count(seconds("unhealthy_threshold"))
                .send(),
        )
        .await?;
    }
    set_deregistration_delay(api, arn, prior, config).await?;
    update_elb_tags(api, arn, prior, config).await
}

pub async fn delete_target_group(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    api.call(
        "DeleteTargetGroup",
        api.elb
            .delete_target_group()
            .target_group_arn(id_of(state)?)
            .send(),
    )
    .await
    .map(|_| ())
}

// aws_lb_listener

/// (target group, weight) pairs of the `forward` blocks.
fn forwards(config: &Attributes) -> Vec<(String, i32)> {
    let mut pairs: Vec<(String, i32)> = config
        .get("forward")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                f["target_group_arn"].as_str()?.to_string(),
                f["weight"].as_i64().unwrap_or(1) as i32,
            ))
        })
        .collect();
    pairs.sort();
    pairs
}

fn forward_action(config: &Attributes) -> Action {
    let mut forward = ForwardActionConfig::builder();
    for (arn, weight) in forwards(config) {
        forward = forward.target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(weight)
                .build(),
        );
    }
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(forward.build())
        .build()
}

pub async fn create_listener(api: &Api, config: &Attributes) -> Result<String, ProviderError> {
    let created = api
        .call(
            "CreateListener",
            api.elb
                .create_listener()
                .load_balancer_arn(required(config, "load_balancer_arn")?)
                .port(number(config, "port").unwrap_or(80) as i32)
                .protocol(ProtocolEnum::from(
                    text(config, "protocol").unwrap_or("HTTP"),
                ))
                .default_actions(forward_action(config))
                .send(),
        )
        .await?;
    created
        .listeners()
        .first()
        .and_then(|l| l.listener_arn())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::new("CreateListener returned no ARN"))
}

pub async fn read_listeners(api: &Api, ids: &[String]) -> Found {
    let listeners = describe_each(ids, |arns| async move {
        api.call(
            "DescribeListeners",
            api.elb
                .describe_listeners()
                .set_listener_arns(Some(arns))
                .send(),
        )
        .await
        .map(|answer| answer.listeners().to_vec())
    })
    .await?;
    let mut found = BTreeMap::new();
    for listener in &listeners {
        let Some(arn) = listener.listener_arn() else {
            continue;
        };
        let mut pairs = forwarded(listener);
        pairs.sort();
        let mut state = Attributes::new();
        state.insert("id".into(), json!(arn));
        state.insert("arn".into(), json!(arn));
        state.insert(
            "load_balancer_arn".into(),
            json!(listener.load_balancer_arn()),
        );
        state.insert("port".into(), json!(listener.port()));
        state.insert(
            "protocol".into(),
            json!(listener.protocol().map(|p| p.as_str())),
        );
        state.insert(
            "forward".into(),
            Value::Array(
                pairs
                    .into_iter()
                    .map(|(arn, weight)| json!({ "target_group_arn": arn, "weight": weight }))
                    .collect(),
            ),
        );
        found.insert(arn.to_string(), state);
    }
    Ok(found)
}

/// The (target group, weight) pairs a listener's default actions forward
/// to, in order: a weighted forward's groups, or a plain forward's one
/// group at weight 1.
pub fn forwarded(listener: &aws_sdk_elasticloadbalancingv2::types::Listener) -> Vec<(String, i32)> {
    let mut pairs = Vec::new();
    for action in listener.default_actions() {
        match action.forward_config() {
            Some(forward) if !forward.target_groups().is_empty() => {
                for tuple in forward.target_groups() {
                    if let Some(group) = tuple.target_group_arn() {
                        pairs.push((group.to_string(), tuple.weight().unwrap_or(1)));
                    }
                }
            }
            _ => {
                if let Some(group) = action.target_group_arn() {
                    pairs.push((group.to_string(), 1));
                }
            }
        }
    }
    pairs
}

/// A `forward` block without `weight` means weight 1, as AWS reports it:
/// keep the configuration's way of writing it when the pairs are the same.
pub fn keep_forward(state: &mut Attributes, like: &Attributes) {
    if forwards(state) == forwards(like)
        && let Some(written) = like.get("forward")
    {
        state.insert("forward".into(), written.clone());
    }
}

pub async fn update_listener(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    api.call(
        "ModifyListener",
        api.elb
            .modify_listener()
            .listener_arn(id_of(prior)?)
            .port(number(config, "port").unwrap_or(80) as i32)
            .protocol(ProtocolEnum::from(
                text(config, "protocol").unwrap_or("HTTP"),
            ))
            .default_actions(forward_action(config))
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn delete_listener(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    api.call(
        "DeleteListener",
        api.elb.delete_listener().listener_arn(id_of(state)?).send(),
    )
    .await
    .map(|_| ())
}

// aws_lb_target_group_attachment

fn target(config: &Attributes) -> Result<TargetDescription, ProviderError> {
    let mut target = TargetDescription::builder().id(required(config, "target_id")?);
    if let Some(port) = number(config, "port") {
        target = target.port(port as i32);
    }
    Ok(target.build())
}

pub async fn create_attachment(api: &Api, config: &Attributes) -> Result<String, ProviderError> {
    let group = required(config, "target_group_arn")?;
    api.call(
        "RegisterTargets",
        api.elb
            .register_targets()
            .target_group_arn(group)
            .targets(target(config)?)
            .send(),
    )
    .await?;
    Ok(format!("{group}|{}", required(config, "target_id")?))
}

/// One DescribeTargetHealth per target group, for all its attachments.
pub async fn read_attachments(api: &Api, ids: &[String]) -> Found {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for id in ids {
        if let Some((group, target)) = id.split_once('|') {
            by_group.entry(group).or_default().push(target);
        }
    }
    let mut found = BTreeMap::new();
    for (group, wanted) in by_group {
        let health = match api
            .call(
                "DescribeTargetHealth",
                api.elb
                    .describe_target_health()
                    .target_group_arn(group)
                    .send(),
            )
            .await
        {
            Ok(health) => health,
            Err(error) if is_not_found(&error) => continue,
            Err(error) => return Err(error),
        };
        for description in health.target_health_descriptions() {
            let Some(registered) = description.target() else {
                continue;
            };
            let Some(target) = registered.id() else {
                continue;
            };
            if !wanted.contains(&target) {
                continue;
            }
            let mut state = Attributes::new();
            state.insert("id".into(), json!(format!("{group}|{target}")));
            state.insert("target_group_arn".into(), json!(group));
            state.insert("target_id".into(), json!(target));
            state.insert("port".into(), json!(registered.port()));
            found.insert(format!("{group}|{target}"), state);
        }
    }
    Ok(found)
}

/// An attachment without `port` uses the group's: keep it unset.
pub fn keep_port(state: &mut Attributes, like: &Attributes) {
    if !like.contains_key("port") {
        state.remove("port");
    }
}

pub async fn delete_attachment(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    api.call(
        "DeregisterTargets",
        api.elb
            .deregister_targets()
            .target_group_arn(required(state, "target_group_arn")?)
            .targets(target(state)?)
            .send(),
    )
    .await
    .map(|_| ())
}
