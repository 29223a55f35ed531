//! `aws_security_group`: a firewall of a VPC, with `ingress` and `egress`
//! rule blocks compared as sets. Name, description and VPC force a new
//! group; rules and tags change in place (only the rules that differ are
//! authorized or revoked).
//!
//! Rules are compared as sets of atoms — (protocol, from port, to port,
//! one CIDR) — because AWS groups and orders them its own way. The state
//! keeps the configuration's grouping whenever the atoms are the same, so
//! an unchanged group plans no changes.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};
use infra_provider_sdk::{
    Attribute, AttributeType, Attributes, ObjectIdentity, ProviderError, ResourceSchema,
};
use serde_json::{Value, json};

use crate::api::Api;
use crate::values::{
    Created, Found, created_state, found_by_id, id_of, required, tag_specification, text,
    update_tags,
};

pub const DEFAULT_DESCRIPTION: &str = "Managed by infra";

fn rule_schema() -> ResourceSchema {
    ResourceSchema::new(
        "a rule",
        [
            (
                "protocol",
                Attribute::required(AttributeType::String)
                    .describe("\"tcp\", \"udp\", \"icmp\", or \"-1\" for all"),
            ),
            ("from_port", Attribute::optional(AttributeType::Number)),
            ("to_port", Attribute::optional(AttributeType::Number)),
            (
                "cidr_blocks",
                Attribute::required(AttributeType::Set(Box::new(AttributeType::String))),
            ),
        ],
    )
    .as_set()
}

pub fn schema() -> ResourceSchema {
    ResourceSchema::new(
        "a security group",
        [
            (
                "name",
                Attribute::required(AttributeType::String).force_new(),
            ),
            (
                "description",
                Attribute::optional_computed(AttributeType::String)
                    .force_new()
                    .describe("default \"Managed by infra\""),
            ),
            (
                "vpc_id",
                Attribute::required(AttributeType::String).force_new(),
            ),
            ("tags", crate::tags_attribute()),
            ("id", Attribute::computed(AttributeType::String)),
            ("arn", Attribute::computed(AttributeType::String)),
        ],
    )
    .with_block("ingress", rule_schema())
    .with_block("egress", rule_schema())
}

/// One rule for one CIDR.
type Atom = (String, i64, i64, String);

/// A protocol as AWS reports it: by name where it has one.
fn protocol(text: &str) -> String {
    match text.to_ascii_lowercase().as_str() {
        "all" | "-1" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        other => other.into(),
    }
}

/// The atoms of a list of rule objects (configuration or state).
fn atoms(rules: Option<&Value>) -> BTreeSet<Atom> {
    let mut out = BTreeSet::new();
    for rule in rules.and_then(Value::as_array).into_iter().flatten() {
        let protocol = protocol(rule["protocol"].as_str().unwrap_or("-1"));
        let all = protocol == "-1";
        let from = if all {
            0
        } else {
            rule["from_port"].as_i64().unwrap_or(0)
        };
        let to = if all {
            0
        } else {
            rule["to_port"].as_i64().unwrap_or(0)
        };
        for cidr in rule["cidr_blocks"].as_array().into_iter().flatten() {
            if let Some(cidr) = cidr.as_str() {
                out.insert((protocol.clone(), from, to, cidr.to_string()));
            }
        }
    }
    out
}

fn atoms_of_permissions(permissions: &[IpPermission]) -> BTreeSet<Atom> {
    let mut out = BTreeSet::new();
    for permission in permissions {
        let protocol = protocol(permission.ip_protocol().unwrap_or("-1"));
        let all = protocol == "-1";
        let from = if all {
            0
        } else {
            permission.from_port().unwrap_or(0).into()
        };
        let to = if all {
            0
        } else {
            permission.to_port().unwrap_or(0).into()
        };
        for range in permission.ip_ranges() {
            if let Some(cidr) = range.cidr_ip() {
                out.insert((protocol.clone(), from, to, cidr.to_string()));
            }
        }
    }
    out
}

/// Atoms as rule objects, one per (protocol, ports) with its CIDRs.
fn rules_of(atoms: &BTreeSet<Atom>) -> Value {
    let mut grouped: BTreeMap<(String, i64, i64), Vec<String>> = BTreeMap::new();
    for (protocol, from, to, cidr) in atoms {
        grouped
            .entry((protocol.clone(), *from, *to))
            .or_default()
            .push(cidr.clone());
    }
    Value::Array(
        grouped
            .into_iter()
            .map(|((protocol, from, to), cidrs)| {
                json!({ "protocol": protocol, "from_port": from, "to_port": to, "cidr_blocks": cidrs })
            })
            .collect(),
    )
}

fn permissions(atoms: &BTreeSet<Atom>) -> Vec<IpPermission> {
    atoms
        .iter()
        .map(|(protocol, from, to, cidr)| {
            let mut permission = IpPermission::builder()
                .ip_protocol(protocol)
                .ip_ranges(IpRange::builder().cidr_ip(cidr).build());
            if protocol != "-1" {
                permission = permission.from_port(*from as i32).to_port(*to as i32);
            }
            permission.build()
        })
        .collect()
}

pub async fn create(
    api: &Api,
    identity: &ObjectIdentity,
    config: &Attributes,
) -> Result<Created, ProviderError> {
    let created = api
        .call(
            "CreateSecurityGroup",
            api.ec2
                .create_security_group()
                .group_name(required(config, "name")?)
                .description(text(config, "description").unwrap_or(DEFAULT_DESCRIPTION))
                .vpc_id(required(config, "vpc_id")?)
                .tag_specifications(tag_specification(
                    ResourceType::SecurityGroup,
                    config,
                    identity,
                ))
                .send(),
        )
        .await?;
    let id = created
        .group_id()
        .ok_or_else(|| ProviderError::new("CreateSecurityGroup returned no id"))?
        .to_string();
    // AWS gives a new group an allow-all egress rule.
    let mut prior = Attributes::new();
    prior.insert(
        "egress".into(),
        json!([{ "protocol": "-1", "cidr_blocks": ["0.0.0.0/0"] }]),
    );
    set_rules(api, &id, &prior, config).await?;
    // What a read would find: the rules are those just set (each call
    // succeeded whole), written as a read writes them. Without the ARN in
    // the answer, the group is read back.
    let state = created.security_group_arn().map(|arn| {
        let mut state = created_state(&id, config);
        state.insert("name".into(), json!(required(config, "name").ok()));
        state.insert(
            "description".into(),
            json!(text(config, "description").unwrap_or(DEFAULT_DESCRIPTION)),
        );
        state.insert("vpc_id".into(), json!(required(config, "vpc_id").ok()));
        state.insert("arn".into(), json!(arn));
        for direction in ["ingress", "egress"] {
            let rules = config.get(direction).or_else(|| prior.get(direction));
            state.insert(direction.into(), rules_of(&atoms(rules)));
        }
        state
    });
    Ok(Created { id, state })
}

/// Authorizes and revokes what differs between the prior rules and the
/// configured ones. A direction the configuration does not mention is left
/// as it is.
async fn set_rules(
    api: &Api,
    id: &str,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    for direction in ["ingress", "egress"] {
        let Some(wanted) = config.get(direction) else {
            continue;
        };
        let wanted = atoms(Some(wanted));
        let had = atoms(prior.get(direction));
        let revoke: BTreeSet<Atom> = had.difference(&wanted).cloned().collect();
        let grant: BTreeSet<Atom> = wanted.difference(&had).cloned().collect();
        let ingress = direction == "ingress";
        if !revoke.is_empty() {
            let call = if ingress {
                api.call(
                    "RevokeSecurityGroupIngress",
                    api.ec2
                        .revoke_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(Some(permissions(&revoke)))
                        .send(),
                )
                .await
                .map(|_| ())
            } else {
                api.call(
                    "RevokeSecurityGroupEgress",
                    api.ec2
                        .revoke_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(Some(permissions(&revoke)))
                        .send(),
                )
                .await
                .map(|_| ())
            };
            call?;
        }
        if !grant.is_empty() {
            let call = if ingress {
                api.call(
                    "AuthorizeSecurityGroupIngress",
                    api.ec2
                        .authorize_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(Some(permissions(&grant)))
                        .send(),
                )
                .await
                .map(|_| ())
            } else {
                api.call(
                    "AuthorizeSecurityGroupEgress",
                    api.ec2
                        .authorize_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(Some(permissions(&grant)))
                        .send(),
                )
                .await
                .map(|_| ())
            };
            call?;
        }
    }
    Ok(())
}

pub async fn read_many(api: &Api, ids: &[String]) -> Found {
    let described = api
        .call(
            "DescribeSecurityGroups",
            api.ec2
                .describe_security_groups()
                .filters(crate::values::ids_filter("group-id", ids))
                .send(),
        )
        .await?;
    let found = found_by_id(
        described.security_groups(),
        |group| group.group_id(),
        |group| group.tags(),
        |group, state| {
            state.insert("name".into(), json!(group.group_name()));
            state.insert("description".into(), json!(group.description()));
            state.insert("vpc_id".into(), json!(group.vpc_id()));
            state.insert("arn".into(), json!(group.security_group_arn()));
            state.insert(
                "ingress".into(),
                rules_of(&atoms_of_permissions(group.ip_permissions())),
            );
            state.insert(
                "egress".into(),
                rules_of(&atoms_of_permissions(group.ip_permissions_egress())),
            );
        },
    );
    Ok(found)
}

/// Keeps `like`'s way of writing the rules (grouping, order) where the rules
/// are the same: what was read then equals what was configured.
pub fn keep_grouping(state: &mut Attributes, like: &Attributes) {
    for direction in ["ingress", "egress"] {
        let (Some(read), Some(written)) = (state.get(direction), like.get(direction)) else {
            continue;
        };
        if atoms(Some(read)) == atoms(Some(written)) {
            let written = written.clone();
            state.insert(direction.into(), written);
        }
    }
}

pub async fn update(
    api: &Api,
    prior: &Attributes,
    config: &Attributes,
) -> Result<(), ProviderError> {
    let id = id_of(prior)?;
    set_rules(api, id, prior, config).await?;
    update_tags(api, id, prior, config).await
}

pub async fn delete(api: &Api, state: &Attributes) -> Result<(), ProviderError> {
    let id = id_of(state)?;
    api.call(
        "DeleteSecurityGroup",
        api.ec2.delete_security_group().group_id(id).send(),
    )
    .await
    .map(|_| ())
}
