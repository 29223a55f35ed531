//! `aws_deployment`: what a `deployment` block with `provider = aws`
//! becomes — the SDK's [`Fleet`] on EC2 instances behind an application
//! load balancer. The engine's rollout (`src/deploy/executor.rs`) drives
//! it; nothing here knows a strategy.
//!
//! - The pools are the target groups the deployment's listener forwards
//!   to (its `forward` blocks): the first is where a new deployment
//!   starts; blue/green and canary start a new version in the other one.
//!   Routing sets their weights in one `ModifyListener` and reads them
//!   back.
//! - An instance is launched by `RunInstances` already tagged with the
//!   deployment's address, the state's lineage, its version and its target
//!   group, spread over `template.subnet_ids` (their zones). The tags are
//!   its journal: an apply killed between `RunInstances` and the state
//!   save leaves instances the next operation finds (one `DescribeInstances`
//!   by tag) and takes over, never a second fleet beside them.
//! - Starting waits until the instances run, registers them, and waits
//!   until `DescribeTargetHealth` says `healthy` (then `min_ready`, and
//!   healthy still); one not healthy by `healthy_deadline` fails the start,
//!   and every instance it launched is terminated.
//! - Retiring deregisters, waits while the target group drains them (its
//!   `deregistration_delay` is the bound AWS applies), then terminates
//!   them, all in one call.
//! - A pool's counters are the load balancer's CloudWatch metrics for the
//!   target group (`RequestCount`, `HTTPCode_Target_5XX_Count`), summed
//!   from a fixed start: analysis subtracts two readings.
//! - Refresh is four calls whatever the size: the instances by tag, the
//!   listener, each target group's health. `replicas` counts the recorded
//!   version's instances registered in their target group, so an instance
//!   terminated behind infra's back is drift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::{Filter, InstanceStateName, InstanceType, ResourceType, Tag};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, HttpHeaderConditionConfig, RuleCondition,
    TargetDescription, TargetGroupTuple, TargetHealthStateEnum,
};
use base64::Engine as _;
use infra_provider_sdk::*;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api::Api;
use crate::values::{ADDRESS_TAG, LINEAGE_TAG, ids_filter};

/// The tags an instance carries beside infra's address and lineage.
const VERSION_TAG: &str = "infra:version";
const POOL_TAG: &str = "infra:pool";
const RELEASE_TAG: &str = "infra:release";

/// What `template` may set.
const TEMPLATE: &[&str] = &[
    "ami",
    "instance_type",
    "subnet_ids",
    "security_group_ids",
    "key_name",
    "user_data",
    "tags",
];

pub fn schema() -> ResourceSchema {
    let mut attributes = deployment_attributes();
    attributes.extend([
        (
            "template",
            Attribute::required(AttributeType::Any).describe(
                "one instance: ami, instance_type, subnet_ids, security_group_ids, key_name, user_data, tags",
            ),
        ),
        (
            "load_balancer",
            Attribute::optional(AttributeType::Any)
                .describe("the ARN of the aws_lb_listener whose target groups are the pools"),
        ),
        (
            "instances",
            Attribute::computed(AttributeType::Any)
                .describe("the running instances: id, version, target group, zone, address"),
        ),
    ]);
    ResourceSchema::new(
        "EC2 instances behind an application load balancer (a `deployment` with `provider = aws`)",
        attributes,
    )
}

pub fn validate(config: &Attributes) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if config.get("health").is_some_and(|h| !h.is_null()) {
        problems.push(
            Diagnostic::error("on aws, the target groups' health checks decide when an instance is healthy, not a `health` block")
                .at("health")
                .help("remove the `health` block and set `health_check { path, interval, healthy_threshold }` on the listener's `aws_lb_target_group`s"),
        );
    }
    if config.get("drain").is_some_and(|d| !d.is_null()) {
        problems.push(
            Diagnostic::error("on aws, the target group's `deregistration_delay` is how long requests drain, not `drain`")
                .at("drain")
                .help("remove `drain` and set `deregistration_delay` (seconds) on the listener's `aws_lb_target_group`s; infra waits until AWS has drained an instance before it terminates it"),
        );
    }
    // An ALB rule's conditions take 5 values in all.
    let strategy = config.get("strategy").cloned().unwrap_or(Value::Null);
    let steps = strategy["canary"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let matches = steps
        .iter()
        .map(|step| &step["match"])
        .chain([&strategy["blue_green"]["preview"]]);
    if matches
        .filter_map(|m| m["values"].as_array())
        .any(|values| values.len() > 5)
    {
        problems.push(
            Diagnostic::error("an aws listener rule matches at most 5 header values")
                .at("strategy")
                .help("route at most 5 values of the header to the new version in one step"),
        );
    }
    let Some(template) = config.get("template").and_then(Value::as_object) else {
        return problems;
    };
    for name in template.keys() {
        if !TEMPLATE.contains(&name.as_str()) {
            problems.push(
                Diagnostic::error(format!(
                    "unknown argument `{name}` in an aws deployment's `template`"
                ))
                .at("template")
                .help(format!("the arguments are {}", TEMPLATE.join(", "))),
            );
        }
    }
    for name in ["ami", "instance_type"] {
        if template.get(name).is_none() {
            problems.push(
                Diagnostic::error(format!("an aws deployment's `template` needs `{name}`"))
                    .at("template"),
            );
        }
    }
    if let Some(ami) = template.get("ami").and_then(Value::as_str)
        && !ami.starts_with("ami-")
    {
        problems.push(
            Diagnostic::error(format!("`{ami}` is not an AMI id"))
                .at("template")
                .help("AMI ids look like \"ami-0abc12345\""),
        );
    }
    match template.get("subnet_ids") {
        Some(Value::Array(subnets)) if !subnets.is_empty() => {}
        Some(Value::Array(_)) | None => problems.push(
            Diagnostic::error("an aws deployment's `template` needs `subnet_ids`: where its instances run")
                .at("template")
                .help("e.g. subnet_ids = aws_subnet.private[*].id (subnets in several zones spread the instances over them)"),
        ),
        Some(_) => {}
    }
    problems
}

/// One version of the deployment: what its instances are launched from.
#[derive(Debug, Clone)]
struct Launch {
    version: String,
    /// `version` as written, if any (tagged `infra:release`).
    release: Option<String>,
    replicas: usize,
    ami: String,
    instance_type: String,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    key_name: Option<String>,
    user_data: Option<String>,
    tags: BTreeMap<String, String>,
}

fn strings_of(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Launch {
    fn read(config: &Attributes) -> Result<Launch, ProviderError> {
        let template = config.get("template").cloned().unwrap_or(Value::Null);
        let text = |name: &str| template[name].as_str().map(String::from);
        let required = |name: &str| {
            text(name).ok_or_else(|| ProviderError::new(format!("`template.{name}` is required")))
        };
        let subnets = strings_of(&template["subnet_ids"]);
        if subnets.is_empty() {
            return Err(ProviderError::new("`template.subnet_ids` is required"));
        }
        Ok(Launch {
            version: version_of(config),
            release: match config.get("version") {
                Some(Value::String(text)) => Some(text.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
            replicas: config.get("replicas").and_then(Value::as_u64).unwrap_or(1) as usize,
            ami: required("ami")?,
            instance_type: required("instance_type")?,
            subnets,
            security_groups: strings_of(&template["security_group_ids"]),
            key_name: text("key_name"),
            user_data: text("user_data"),
            tags: template["tags"]
                .as_object()
                .map(|tags| {
                    tags.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// One instance of the fleet, as its tags and EC2 describe it.
#[derive(Debug, Clone, PartialEq)]
struct Machine {
    id: String,
    version: String,
    /// The target group's ARN; empty without a load balancer.
    pool: String,
    release: Option<String>,
    subnet: Option<String>,
    zone: Option<String>,
    private_ip: Option<String>,
}

impl Machine {
    fn to_json(&self) -> Value {
        let mut json = json!({ "id": self.id, "version": self.version });
        let optional = [
            ("pool", (!self.pool.is_empty()).then_some(&self.pool)),
            ("release", self.release.as_ref()),
            ("subnet_id", self.subnet.as_ref()),
            ("availability_zone", self.zone.as_ref()),
            ("private_ip", self.private_ip.as_ref()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                json[name] = json!(value);
            }
        }
        json
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

/// The deployment's instances that are starting or running: one
/// `DescribeInstances` by tag (a page holds 1,000).
async fn describe_fleet(
    api: &Api,
    address: &str,
    lineage: &str,
) -> Result<Vec<Machine>, ProviderError> {
    let mut machines = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let described = api
            .call(
                "DescribeInstances",
                api.ec2
                    .describe_instances()
                    .filters(filter(&format!("tag:{ADDRESS_TAG}"), &[address]))
                    .filters(filter(&format!("tag:{LINEAGE_TAG}"), &[lineage]))
                    .filters(filter("instance-state-name", &["pending", "running"]))
                    .set_next_token(token.clone())
                    .send(),
            )
            .await?;
        for instance in described.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = instance.instance_id() else {
                continue;
            };
            let tag = |key: &str| {
                instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
                    .map(String::from)
            };
            machines.push(Machine {
                id: id.to_string(),
                version: tag(VERSION_TAG).unwrap_or_default(),
                pool: tag(POOL_TAG).unwrap_or_default(),
                release: tag(RELEASE_TAG),
                subnet: instance.subnet_id().map(String::from),
                zone: instance
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .map(String::from),
                private_ip: instance.private_ip_address().map(String::from),
            });
        }
        token = described.next_token().map(str::to_string);
        if token.is_none() {
            machines.sort_by(|a, b| a.id.cmp(&b.id));
            return Ok(machines);
        }
    }
}

/// What a listener forwards to: its load balancer's ARN and the (target
/// group, weight) pairs of its default action, in order.
async fn read_listener(
    api: &Api,
    arn: &str,
) -> Result<(String, Vec<(String, i32)>), ProviderError> {
    let described = api
        .call(
            "DescribeListeners",
            api.elb.describe_listeners().listener_arns(arn).send(),
        )
        .await?;
    let listener = described
        .listeners()
        .first()
        .ok_or_else(|| ProviderError::new(format!("the listener {arn} does not exist")))?;
    Ok((
        listener.load_balancer_arn().unwrap_or_default().to_string(),
        crate::load_balancer::forwarded(listener),
    ))
}

/// The health state of each target of a target group, by instance id.
async fn target_health(api: &Api, pool: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    let described = api
        .call(
            "DescribeTargetHealth",
            api.elb
                .describe_target_health()
                .target_group_arn(pool)
                .send(),
        )
        .await?;
    Ok(described
        .target_health_descriptions()
        .iter()
        .filter_map(|d| {
            let id = d.target()?.id()?.to_string();
            let health = d.target_health();
            let state = health
                .and_then(|h| h.state())
                .map_or("unknown", TargetHealthStateEnum::as_str);
            let reason = health.and_then(|h| h.description()).unwrap_or_default();
            Some((id, format!("{state}{}", prefixed(reason))))
        })
        .collect())
}

fn prefixed(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

fn is_healthy(state: &str) -> bool {
    state == "healthy" || state.starts_with("healthy:")
}

fn is_draining(state: &str) -> bool {
    state == "draining" || state.starts_with("draining:")
}

fn failed(message: String) -> ProviderError {
    ProviderError::new(message).with_code("DeploymentFailed")
}

/// What the state records of a deployment.
fn machines_of(state: &Attributes) -> Vec<Machine> {
    state
        .get("instances")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|m| {
                    Some(Machine {
                        id: m["id"].as_str()?.to_string(),
                        version: m["version"].as_str()?.to_string(),
                        pool: m["pool"].as_str().unwrap_or_default().to_string(),
                        release: m["release"].as_str().map(String::from),
                        subnet: m["subnet_id"].as_str().map(String::from),
                        zone: m["availability_zone"].as_str().map(String::from),
                        private_ip: m["private_ip"].as_str().map(String::from),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn duration(config: &Attributes, name: &str, default: Duration) -> Duration {
    config
        .get(name)
        .and_then(Value::as_str)
        .and_then(parse_duration)
        .unwrap_or(default)
}

/// Whether the recorded strategy needs the listener's two target groups.
fn needs_two_pools(config: &Attributes) -> bool {
    config
        .get("strategy")
        .and_then(Value::as_object)
        .is_some_and(|kinds| kinds.contains_key("blue_green") || kinds.contains_key("canary"))
}

/// A deployment's fleet on AWS: the wanted version, and the one the state
/// records (which a rollback launches again).
pub(crate) struct AwsFleet<'p> {
    provider: &'p crate::AwsProvider,
    address: String,
    lineage: String,
    wanted: Launch,
    previous: Option<Launch>,
    config: Attributes,
    listener: Option<String>,
    min_ready: Duration,
    healthy_deadline: Duration,
    /// The target groups, once the listener was read.
    pools: Mutex<Vec<String>>,
    /// The load balancer's ARN, once the listener was read.
    load_balancer: Mutex<String>,
    /// Every instance seen or launched, by id.
    known: Mutex<BTreeMap<String, Machine>>,
    /// Where a pool's CloudWatch sums start: fixed for the fleet's life.
    counted_from: SystemTime,
}

impl<'p> AwsFleet<'p> {
    pub(crate) fn new(
        provider: &'p crate::AwsProvider,
        request: &FleetRequest,
    ) -> Result<AwsFleet<'p>, ProviderError> {
        let previous = if request.prior.is_empty() {
            None
        } else {
            Launch::read(&request.prior).ok()
        };
        let known = machines_of(&request.prior)
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect();
        Ok(AwsFleet {
            provider,
            address: request.identity.address.clone(),
            lineage: request.identity.lineage.clone(),
            wanted: Launch::read(&request.config)?,
            previous,
            config: request.config.clone(),
            listener: request
                .config
                .get("load_balancer")
                .and_then(Value::as_str)
                .map(String::from),
            min_ready: duration(&request.config, "min_ready", Duration::from_secs(10)),
            healthy_deadline: duration(
                &request.config,
                "healthy_deadline",
                Duration::from_secs(300),
            ),
            pools: Mutex::new(Vec::new()),
            load_balancer: Mutex::new(String::new()),
            known: Mutex::new(known),
            counted_from: SystemTime::now() - Duration::from_secs(3600),
        })
    }

    fn launch(&self, which: Version) -> Result<&Launch, ProviderError> {
        match which {
            Version::Wanted => Ok(&self.wanted),
            Version::Previous => self
                .previous
                .as_ref()
                .ok_or_else(|| failed("no previous version to launch".into())),
        }
    }

    fn machines(&self, names: &[String]) -> Vec<Machine> {
        let known = self.known.lock().expect("known");
        names.iter().filter_map(|n| known.get(n).cloned()).collect()
    }

    fn as_fleet_instance(machine: &Machine) -> FleetInstance {
        FleetInstance {
            name: machine.id.clone(),
            version: machine.version.clone(),
            pool: machine.pool.clone(),
        }
    }

    /// Reads the listener's target groups (the pools) and their weights.
    async fn read_pools(&self, api: &Api) -> Result<BTreeMap<String, u32>, ProviderError> {
        let Some(listener) = &self.listener else {
            return Ok(BTreeMap::new());
        };
        let (load_balancer, forward) = read_listener(api, listener).await?;
        let pools: Vec<String> = forward.iter().map(|(arn, _)| arn.clone()).collect();
        if pools.is_empty() {
            return Err(failed(format!(
                "the listener {listener} forwards to no target group: give it a `forward` block"
            )));
        }
        if pools.len() < 2 && needs_two_pools(&self.config) {
            return Err(failed(format!(
                "the listener {listener} forwards to one target group; blue_green and canary start the new version in a second one: add a second `forward` block (weight 0) with another aws_lb_target_group"
            )));
        }
        *self.pools.lock().expect("pools") = pools;
        *self.load_balancer.lock().expect("load balancer") = load_balancer;
        Ok(forward
            .into_iter()
            .map(|(arn, weight)| (arn, u32::try_from(weight).unwrap_or(0)))
            .collect())
    }

    /// Launches `count` instances of `launch` in `pool`, spread over its
    /// subnets (the one with the fewest of this version first), each call
    /// tagged so the instances are found again whatever happens next.
    async fn launch_instances(
        &self,
        api: &Api,
        launch: &Launch,
        pool: &str,
        count: usize,
    ) -> Result<Vec<Machine>, ProviderError> {
        let mut per_subnet: Vec<(usize, usize, &String)> = {
            let known = self.known.lock().expect("known");
            launch
                .subnets
                .iter()
                .enumerate()
                .map(|(at, subnet)| {
                    let there = known
                        .values()
                        .filter(|m| {
                            m.version == launch.version && m.subnet.as_ref() == Some(subnet)
                        })
                        .count();
                    (there, at, subnet)
                })
                .collect()
        };
        let mut counts: BTreeMap<&String, i32> = BTreeMap::new();
        for _ in 0..count {
            per_subnet.sort();
            per_subnet[0].0 += 1;
            *counts.entry(per_subnet[0].2).or_default() += 1;
        }
        let mut launched = Vec::new();
        for (subnet, count) in counts {
            match self.run_instances(api, launch, pool, subnet, count).await {
                Ok(machines) => launched.extend(machines),
                Err(error) => {
                    self.stop(api, &launched).await;
                    return Err(error);
                }
            }
        }
        Ok(launched)
    }

    async fn run_instances(
        &self,
        api: &Api,
        launch: &Launch,
        pool: &str,
        subnet: &str,
        count: i32,
    ) -> Result<Vec<Machine>, ProviderError> {
        let mut tags = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(tag(ADDRESS_TAG, &self.address))
            .tags(tag(LINEAGE_TAG, &self.lineage))
            .tags(tag(VERSION_TAG, &launch.version));
        if !launch.tags.contains_key("Name") {
            tags = tags.tags(tag("Name", &self.address));
        }
        for (key, value) in &launch.tags {
            tags = tags.tags(tag(key, value));
        }
        if !pool.is_empty() {
            tags = tags.tags(tag(POOL_TAG, pool));
        }
        if let Some(release) = &launch.release {
            tags = tags.tags(tag(RELEASE_TAG, release));
        }
        // The same token on the SDK's retries: a retried call launches
        // nothing twice.
        let token = format!(
            "{:x}",
            sticky_hash(&format!(
                "{}/{}/{subnet}/{:?}",
                self.address,
                launch.version,
                SystemTime::now()
            ))
        );
        let mut request = api
            .ec2
            .run_instances()
            .image_id(&launch.ami)
            .instance_type(InstanceType::from(launch.instance_type.as_str()))
            .min_count(count)
            .max_count(count)
            .subnet_id(subnet)
            .client_token(token)
            .tag_specifications(tags.build());
        if !launch.security_groups.is_empty() {
            request = request.set_security_group_ids(Some(launch.security_groups.clone()));
        }
        if let Some(key) = &launch.key_name {
            request = request.key_name(key);
        }
        if let Some(user_data) = &launch.user_data {
            request =
                request.user_data(base64::engine::general_purpose::STANDARD.encode(user_data));
        }
        let answer = api.call("RunInstances", request.send()).await?;
        let machines: Vec<Machine> = answer
            .instances()
            .iter()
            .filter_map(|i| {
                Some(Machine {
                    id: i.instance_id()?.to_string(),
                    version: launch.version.clone(),
                    pool: pool.to_string(),
                    release: launch.release.clone(),
                    subnet: i.subnet_id().map(String::from),
                    zone: i
                        .placement()
                        .and_then(|p| p.availability_zone())
                        .map(String::from),
                    private_ip: i.private_ip_address().map(String::from),
                })
            })
            .collect();
        api.log_change(
            "RunInstances",
            json!({
                "instances": machines.iter().map(|m| &m.id).collect::<Vec<_>>(),
                "version": launch.version,
                "subnet": subnet,
            }),
        );
        let mut known = self.known.lock().expect("known");
        for machine in &machines {
            known.insert(machine.id.clone(), machine.clone());
        }
        Ok(machines)
    }

    /// Waits until every one of `machines` runs.
    async fn wait_running(
        &self,
        api: &Api,
        machines: &[Machine],
        deadline: Instant,
    ) -> Result<(), ProviderError> {
        if machines.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = machines.iter().map(|m| m.id.clone()).collect();
        loop {
            let described = api
                .call(
                    "DescribeInstances",
                    api.ec2
                        .describe_instances()
                        .filters(ids_filter("instance-id", &ids))
                        .send(),
                )
                .await?;
            let mut waiting = Vec::new();
            let mut running = 0;
            for instance in described.reservations().iter().flat_map(|r| r.instances()) {
                let state = instance.state().and_then(|s| s.name());
                let id = instance.instance_id().unwrap_or_default();
                match state {
                    Some(InstanceStateName::Running) => running += 1,
                    Some(InstanceStateName::Pending) => waiting.push(id.to_string()),
                    other => {
                        return Err(failed(format!(
                            "instance {id} is {} instead of running{}",
                            other.map_or("gone", |s| s.as_str()),
                            prefixed(
                                instance
                                    .state_reason()
                                    .and_then(|r| r.message())
                                    .unwrap_or_default()
                            )
                        )));
                    }
                }
            }
            if running == ids.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "instances {waiting:?} did not run within healthy_deadline ({:?})",
                    self.healthy_deadline
                )));
            }
            tokio::time::sleep(api.poll).await;
        }
    }

    /// Registers `machines` in their target groups and waits until the
    /// load balancer finds every one healthy, then `min_ready`, healthy
    /// still.
    async fn bring_into_service(
        &self,
        api: &Api,
        machines: &[Machine],
        deadline: Instant,
    ) -> Result<(), ProviderError> {
        self.wait_running(api, machines, deadline).await?;
        let by_pool = by_pool(machines);
        for (pool, ids) in &by_pool {
            api.change(
                "RegisterTargets",
                json!({ "target_group": pool, "instances": ids }),
                api.elb
                    .register_targets()
                    .target_group_arn(pool)
                    .set_targets(Some(target_descriptions(ids)))
                    .send(),
            )
            .await?;
        }
        self.wait_healthy(api, &by_pool, deadline).await?;
        if !self.min_ready.is_zero() && !by_pool.is_empty() {
            tokio::time::sleep(self.min_ready).await;
            let unhealthy = self.unhealthy(api, &by_pool).await?;
            if let Some((id, state)) = unhealthy.first() {
                return Err(failed(format!(
                    "instance {id} turned {state} during min_ready ({:?})",
                    self.min_ready
                )));
            }
        }
        Ok(())
    }

    /// The instances of `by_pool` their target group does not find
    /// healthy, with what it says of them.
    async fn unhealthy(
        &self,
        api: &Api,
        by_pool: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let mut unhealthy = Vec::new();
        for (pool, ids) in by_pool {
            let health = target_health(api, pool).await?;
            for id in ids {
                match health.get(id) {
                    Some(state) if is_healthy(state) => {}
                    Some(state) => unhealthy.push((id.clone(), state.clone())),
                    None => unhealthy.push((id.clone(), "not registered".into())),
                }
            }
        }
        Ok(unhealthy)
    }

    async fn wait_healthy(
        &self,
        api: &Api,
        by_pool: &BTreeMap<String, Vec<String>>,
        deadline: Instant,
    ) -> Result<(), ProviderError> {
        loop {
            let unhealthy = self.unhealthy(api, by_pool).await?;
            let Some((id, state)) = unhealthy.first() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "instance {id} was not healthy within healthy_deadline ({:?}): the target group says {state}",
                    self.healthy_deadline
                )));
            }
            tokio::time::sleep(api.poll).await;
        }
    }

    /// Deregisters `machines`, waits while their target groups drain them,
    /// and terminates them in one call.
    async fn stop(&self, api: &Api, machines: &[Machine]) {
        if machines.is_empty() {
            return;
        }
        let by_pool = by_pool(machines);
        for (pool, ids) in &by_pool {
            let deregistered = api
                .change(
                    "DeregisterTargets",
                    json!({ "target_group": pool, "instances": ids }),
                    api.elb
                        .deregister_targets()
                        .target_group_arn(pool)
                        .set_targets(Some(target_descriptions(ids)))
                        .send(),
                )
                .await;
            if let Err(error) = deregistered {
                tracing::warn!("{}", error.message);
            }
        }
        for (pool, ids) in &by_pool {
            wait_drained(api, pool, ids).await;
        }
        let ids: Vec<String> = machines.iter().map(|m| m.id.clone()).collect();
        let terminated = api
            .change(
                "TerminateInstances",
                json!({ "instances": ids }),
                api.ec2
                    .terminate_instances()
                    .set_instance_ids(Some(ids.clone()))
                    .send(),
            )
            .await;
        match terminated {
            Ok(_) => {
                let mut known = self.known.lock().expect("known");
                for id in &ids {
                    known.remove(id);
                }
            }
            // Still tagged: the next operation finds and retires them.
            Err(error) => tracing::warn!("{}", error.message),
        }
    }
}

/// Instances as a target group's targets.
fn target_descriptions(ids: &[String]) -> Vec<TargetDescription> {
    ids.iter()
        .map(|id| TargetDescription::builder().id(id).build())
        .collect()
}

/// A listener rule that sends the requests whose `header` has one of
/// `values` to `pool`: how a route by header is made on an ALB.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct HeaderRule {
    pool: String,
    header: String,
    values: Vec<String>,
}

/// The listener's rules, each with its priority, and which of them are
/// the deployment's header routes: an `http-header` condition forwarding
/// to one of `pools`.
async fn header_rules(
    api: &Api,
    listener: &str,
    pools: &[String],
) -> Result<(BTreeSet<i32>, Vec<(String, HeaderRule)>), ProviderError> {
    let described = api
        .call(
            "DescribeRules",
            api.elb.describe_rules().listener_arn(listener).send(),
        )
        .await?;
    let mut priorities = BTreeSet::new();
    let mut ours = Vec::new();
    for rule in described.rules() {
        if rule.is_default() == Some(true) {
            continue;
        }
        if let Some(priority) = rule.priority().and_then(|p| p.parse().ok()) {
            priorities.insert(priority);
        }
        let target = rule.actions().iter().find_map(|action| {
            action.target_group_arn().map(String::from).or_else(|| {
                let groups = action.forward_config()?.target_groups();
                match groups {
                    [only] => only.target_group_arn().map(String::from),
                    _ => None,
                }
            })
        });
        let header = rule
            .conditions()
            .iter()
            .find_map(|condition| condition.http_header_config());
        if let (Some(pool), Some(header), Some(arn)) = (target, header, rule.rule_arn())
            && pools.contains(&pool)
        {
            let mut values = header.values().to_vec();
            values.sort();
            ours.push((
                arn.to_string(),
                HeaderRule {
                    pool,
                    header: header.http_header_name().unwrap_or_default().to_string(),
                    values,
                },
            ));
        }
    }
    Ok((priorities, ours))
}

/// Instance ids by target group (those without one left out).
fn by_pool(machines: &[Machine]) -> BTreeMap<String, Vec<String>> {
    let mut by_pool: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for machine in machines.iter().filter(|m| !m.pool.is_empty()) {
        by_pool
            .entry(machine.pool.clone())
            .or_default()
            .push(machine.id.clone());
    }
    by_pool
}

impl AwsFleet<'_> {
    /// Makes the listener's header rules for the deployment's pools exactly
    /// `routes`: rules no longer wanted deleted, missing ones created at
    /// the lowest free priorities, then read back.
    async fn set_header_rules(
        &self,
        api: &Api,
        listener: &str,
        routes: &BTreeMap<String, Route>,
    ) -> Result<(), ProviderError> {
        let mut wanted = Vec::new();
        for (pool, route) in routes {
            if route.cookie.is_some() || route.percent.is_some() {
                return Err(failed(
                    "sticky routes are not built for aws deployments yet".into(),
                ));
            }
            let mut values = route.values.clone();
            values.sort();
            wanted.push(HeaderRule {
                pool: pool.clone(),
                header: route.header.clone(),
                values,
            });
        }
        wanted.sort();
        let pools = self.pools.lock().expect("pools").clone();
        let (mut priorities, existing) = header_rules(api, listener, &pools).await?;
        for (arn, rule) in &existing {
            if !wanted.contains(rule) {
                api.change(
                    "DeleteRule",
                    serde_json::json!({ "rule": arn, "target_group": rule.pool }),
                    api.elb.delete_rule().rule_arn(arn).send(),
                )
                .await?;
            }
        }
        for rule in &wanted {
            if existing.iter().any(|(_, have)| have == rule) {
                continue;
            }
            let priority = (1..).find(|p| !priorities.contains(p)).unwrap_or(1);
            priorities.insert(priority);
            let condition = RuleCondition::builder()
                .field("http-header")
                .http_header_config(
                    HttpHeaderConditionConfig::builder()
                        .http_header_name(&rule.header)
                        .set_values(Some(rule.values.clone()))
                        .build(),
                )
                .build();
            let action = Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&rule.pool)
                .build();
            api.change(
                "CreateRule",
                serde_json::json!({
                    "target_group": rule.pool,
                    "header": rule.header,
                    "values": rule.values,
                    "priority": priority,
                }),
                api.elb
                    .create_rule()
                    .listener_arn(listener)
                    .priority(priority)
                    .conditions(condition)
                    .actions(action)
                    .send(),
            )
            .await?;
        }
        let (_, taken) = header_rules(api, listener, &pools).await?;
        let mut taken: Vec<HeaderRule> = taken.into_iter().map(|(_, rule)| rule).collect();
        taken.sort();
        if taken == wanted {
            Ok(())
        } else {
            Err(failed(format!(
                "the listener did not take the header routes {wanted:?}: it has {taken:?}"
            )))
        }
    }
}

/// Waits while the target group reports any of `ids` draining, up to its
/// deregistration delay (and a minute for AWS to notice).
async fn wait_drained(api: &Api, pool: &str, ids: &[String]) {
    let delay = api
        .call(
            "DescribeTargetGroupAttributes",
            api.elb
                .describe_target_group_attributes()
                .target_group_arn(pool)
                .send(),
        )
        .await
        .ok()
        .and_then(|answer| {
            answer
                .attributes()
                .iter()
                .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                .and_then(|a| a.value()?.parse::<u64>().ok())
        })
        .unwrap_or(300);
    let deadline = Instant::now() + Duration::from_secs(delay + 60);
    while Instant::now() < deadline {
        match target_health(api, pool).await {
            Ok(health) => {
                if !ids
                    .iter()
                    .any(|id| health.get(id).is_some_and(|s| is_draining(s)))
                {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!("{}", error.message);
                return;
            }
        }
        tokio::time::sleep(api.poll.max(Duration::from_millis(100))).await;
    }
}

/// FNV-1a, 64 bits: a short token that is the same on a retry.
fn sticky_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Fleet for AwsFleet<'_> {
    fn version(&self, which: Version) -> Option<VersionInfo> {
        self.launch(which).ok().map(|launch| VersionInfo {
            id: launch.version.clone(),
            replicas: launch.replicas,
        })
    }

    fn pools(&self) -> [String; 2] {
        let pools = self.pools.lock().expect("pools");
        let first = pools.first().cloned().unwrap_or_default();
        let second = pools.get(1).cloned().unwrap_or_else(|| first.clone());
        [first, second]
    }

    fn balanced(&self) -> bool {
        self.listener.is_some()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observed, ProviderError>> {
        Box::pin(async move {
            let api = self.provider.api().await;
            let weights = self.read_pools(&api).await?;
            let machines = describe_fleet(&api, &self.address, &self.lineage).await?;
            {
                let mut known = self.known.lock().expect("known");
                for machine in &machines {
                    known.insert(machine.id.clone(), machine.clone());
                }
            }
            let in_service = if self.listener.is_some() {
                let mut healthy = BTreeSet::new();
                for pool in weights.keys() {
                    for (id, state) in target_health(&api, pool).await? {
                        let member = machines.iter().any(|m| m.id == id && &m.pool == pool);
                        if member && is_healthy(&state) {
                            healthy.insert(id);
                        }
                    }
                }
                healthy
            } else {
                machines.iter().map(|m| m.id.clone()).collect()
            };
            Ok(Observed {
                instances: machines.iter().map(Self::as_fleet_instance).collect(),
                in_service,
                weights,
            })
        })
    }

    fn admit(&self, names: Vec<String>) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let api = self.provider.api().await;
            let deadline = Instant::now() + self.healthy_deadline;
            self.bring_into_service(&api, &self.machines(&names), deadline)
                .await
        })
    }

    fn start(
        &self,
        version: Version,
        pool: String,
        count: usize,
    ) -> BoxFuture<'_, Result<Vec<FleetInstance>, ProviderError>> {
        Box::pin(async move {
            let api = self.provider.api().await;
            let launch = self.launch(version)?;
            let deadline = Instant::now() + self.healthy_deadline;
            let launched = self.launch_instances(&api, launch, &pool, count).await?;
            if let Err(error) = self.bring_into_service(&api, &launched, deadline).await {
                self.stop(&api, &launched).await;
                return Err(error);
            }
            Ok(launched.iter().map(Self::as_fleet_instance).collect())
        })
    }

    fn retire(&self, names: Vec<String>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let api = self.provider.api().await;
            self.stop(&api, &self.machines(&names)).await;
        })
    }

    fn route(&self, traffic: Traffic) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let Some(listener) = &self.listener else {
                return Ok(());
            };
            let api = self.provider.api().await;
            if let Some(routes) = &traffic.routes {
                self.set_header_rules(&api, listener, routes).await?;
            }
            if traffic.weights.is_empty() {
                return Ok(());
            }
            let (_, mut forward) = read_listener(&api, listener).await?;
            for (pool, weight) in &traffic.weights {
                let entry = forward
                    .iter_mut()
                    .find(|(arn, _)| arn == pool)
                    .ok_or_else(|| {
                        failed(format!(
                            "the listener {listener} does not forward to {pool}"
                        ))
                    })?;
                entry.1 = i32::try_from(*weight).unwrap_or(i32::MAX);
            }
            let mut config = ForwardActionConfig::builder();
            for (arn, weight) in &forward {
                config = config.target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(arn)
                        .weight(*weight)
                        .build(),
                );
            }
            let action = Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(config.build())
                .build();
            let weights: BTreeMap<&String, i32> = forward.iter().map(|(a, w)| (a, *w)).collect();
            api.change(
                "ModifyListener",
                json!({ "listener": listener, "weights": weights }),
                api.elb
                    .modify_listener()
                    .listener_arn(listener)
                    .default_actions(action)
                    .send(),
            )
            .await?;
            let (_, taken) = read_listener(&api, listener).await?;
            if taken == forward {
                Ok(())
            } else {
                Err(failed(format!(
                    "the listener did not take the weights {forward:?}: it forwards {taken:?}"
                )))
            }
        })
    }

    fn totals(&self, pool: String) -> BoxFuture<'_, Result<PoolTotals, ProviderError>> {
        Box::pin(async move {
            let api = self.provider.api().await;
            let load_balancer = self.load_balancer.lock().expect("load balancer").clone();
            crate::metrics::pool_totals(&api, &load_balancer, &pool, self.counted_from).await
        })
    }

    fn record(&self, names: &[String]) -> Attributes {
        let mut state = self.config.clone();
        state.insert("id".into(), json!(self.address));
        state.insert(
            "instances".into(),
            Value::Array(self.machines(names).iter().map(Machine::to_json).collect()),
        );
        state
    }
}

/// Refresh: the instances running with the deployment's tags; `replicas`
/// counts those of the recorded version registered in their target group
/// (all running ones of it without a load balancer) — not the new
/// version's instances of a rollout that waits at a gate or was
/// interrupted.
pub(crate) async fn read(
    api: &Api,
    identity: &ObjectIdentity,
    mut state: Attributes,
) -> Result<Attributes, ProviderError> {
    let machines = describe_fleet(api, &identity.address, &identity.lineage).await?;
    let version = version_of(&state);
    let recorded: Vec<&Machine> = machines.iter().filter(|m| m.version == version).collect();
    let serving = match state.get("load_balancer").and_then(Value::as_str) {
        None => recorded.len(),
        Some(listener) => {
            let (_, forward) = read_listener(api, listener).await?;
            let mut registered = BTreeSet::new();
            for (pool, _) in &forward {
                for (id, state) in target_health(api, pool).await? {
                    if !is_draining(&state) {
                        registered.insert((pool.clone(), id));
                    }
                }
            }
            recorded
                .iter()
                .filter(|m| registered.contains(&(m.pool.clone(), m.id.clone())))
                .count()
        }
    };
    state.insert("replicas".into(), json!(serving));
    state.insert(
        "instances".into(),
        Value::Array(machines.iter().map(Machine::to_json).collect()),
    );
    Ok(state)
}

/// Deletes a deployment: every instance with its tags (and every one the
/// state records) deregistered, drained and terminated.
pub(crate) async fn delete(
    provider: &crate::AwsProvider,
    identity: &ObjectIdentity,
    state: &Attributes,
) -> Result<(), ProviderError> {
    let api = provider.api().await;
    let mut machines = describe_fleet(&api, &identity.address, &identity.lineage).await?;
    for recorded in machines_of(state) {
        if !machines.iter().any(|m| m.id == recorded.id) {
            machines.push(recorded);
        }
    }
    let request = FleetRequest {
        type_name: "aws_deployment".into(),
        identity: identity.clone(),
        config: state.clone(),
        prior: Attributes::new(),
    };
    let fleet = AwsFleet::new(provider, &request)?;
    // Instances already gone are not an error: nothing is left to stop.
    let ids: Vec<String> = machines.iter().map(|m| m.id.clone()).collect();
    let live: BTreeSet<String> = crate::instance::describe(&api, &ids)
        .await?
        .into_keys()
        .collect();
    machines.retain(|m| live.contains(&m.id));
    fleet.stop(&api, &machines).await;
    let left = describe_fleet(&api, &identity.address, &identity.lineage).await?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "{} instance(s) of {} could not be terminated: {}",
            left.len(),
            identity.address,
            left.iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_needs_an_ami_a_type_and_subnets_and_says_what_it_takes() {
        let config: Attributes = [(
            "template".to_string(),
            json!({ "ami": "ubuntu", "image": "x" }),
        )]
        .into();
        let problems: Vec<String> = validate(&config).into_iter().map(|d| d.summary).collect();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown argument `image`")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("needs `instance_type`")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`ubuntu` is not an AMI id")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("needs `subnet_ids`")),
            "{problems:?}"
        );
    }

    #[test]
    fn health_and_drain_belong_to_the_target_group_on_aws() {
        let config: Attributes = [
            ("health".to_string(), json!({ "path": "/" })),
            ("drain".to_string(), json!("30s")),
        ]
        .into();
        let at: Vec<Option<String>> = validate(&config).into_iter().map(|d| d.attribute).collect();
        assert_eq!(at, [Some("health".into()), Some("drain".into())]);
    }

    #[test]
    fn recorded_instances_read_back_as_they_were_written() {
        let machine = Machine {
            id: "i-1".into(),
            version: "abc".into(),
            pool: "arn:tg".into(),
            release: Some("v2".into()),
            subnet: Some("subnet-1".into()),
            zone: Some("us-east-1a".into()),
            private_ip: None,
        };
        let state: Attributes = [("instances".to_string(), json!([machine.to_json()]))].into();
        assert_eq!(machines_of(&state), [machine]);
    }
}
