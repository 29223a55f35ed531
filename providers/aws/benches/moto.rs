//! Benchmark: create 100 security groups and 50 instances on moto through
//! the AWS provider, 10 at a time as apply would, then refresh them all as
//! plan would (batches of `read_batch_size`), and delete them. Prints wall
//! time and the AWS API calls of each phase.
//! Run: `scripts/bench-aws` (moto must be installed, as `scripts/test` does).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use infra_provider_aws::{AwsProvider, Settings};
use infra_provider_sdk::*;
use serde_json::json;
use tokio::task::JoinSet;

const GROUPS: usize = 100;
const INSTANCES: usize = 50;
const PARALLELISM: usize = 10;

fn identity(address: String) -> ObjectIdentity {
    ObjectIdentity {
        address,
        lineage: "bench".into(),
    }
}

/// Runs `requests` through `operation`, `PARALLELISM` at a time.
async fn in_parallel<T: Send + 'static, R: Send + 'static>(
    aws: &Arc<AwsProvider>,
    requests: Vec<R>,
    operation: fn(Arc<AwsProvider>, R) -> BoxFuture<'static, T>,
) -> Vec<T> {
    let mut pending = requests.into_iter();
    let mut running = JoinSet::new();
    let mut done = Vec::new();
    loop {
        while running.len() < PARALLELISM {
            let Some(request) = pending.next() else { break };
            running.spawn(operation(aws.clone(), request));
        }
        match running.join_next().await {
            Some(result) => done.push(result.expect("task")),
            None => return done,
        }
    }
}

fn create(aws: Arc<AwsProvider>, request: CreateRequest) -> BoxFuture<'static, Attributes> {
    Box::pin(async move {
        let address = request.identity.address.clone();
        aws.create(request)
            .await
            .unwrap_or_else(|e| panic!("{address}: {e}"))
            .state
    })
}

fn delete(aws: Arc<AwsProvider>, request: DeleteRequest) -> BoxFuture<'static, ()> {
    Box::pin(async move { aws.delete(request).await.expect("delete") })
}

fn difference(after: &BTreeMap<&'static str, u64>, before: &BTreeMap<&'static str, u64>) -> String {
    let mut parts = Vec::new();
    let mut total = 0;
    for (operation, count) in after {
        let made = count - before.get(operation).unwrap_or(&0);
        if made > 0 {
            parts.push(format!("{operation} {made}"));
            total += made;
        }
    }
    format!("{total} calls ({})", parts.join(", "))
}

fn main() {
    let moto = support::Moto::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let aws = Arc::new(AwsProvider::with_settings(Settings {
            region: Some("us-east-1".into()),
            endpoint: Some(moto.endpoint.clone()),
            max_attempts: 3,
            static_credentials: Some(("testing".into(), "testing".into())),
        }));
        let vpc = create(
            aws.clone(),
            CreateRequest {
                type_name: "aws_vpc".into(),
                identity: identity("aws_vpc.bench".into()),
                config: [("cidr_block".to_string(), json!("10.9.0.0/16"))].into(),
                ..Default::default()
            },
        )
        .await;
        let subnet = create(
            aws.clone(),
            CreateRequest {
                type_name: "aws_subnet".into(),
                identity: identity("aws_subnet.bench".into()),
                config: [
                    ("vpc_id".to_string(), vpc["id"].clone()),
                    ("cidr_block".to_string(), json!("10.9.1.0/24")),
                ]
                .into(),
                ..Default::default()
            },
        )
        .await;
        // An AMI moto knows, found the way a data source would.
        let ami = aws_sdk_ec2::Client::new(&moto.sdk_config().await)
            .describe_images()
            .owners("amazon")
            .send()
            .await
            .expect("images")
            .images()[0]
            .image_id()
            .expect("id")
            .to_string();
        println!("{GROUPS} security groups and {INSTANCES} instances on moto, parallelism {PARALLELISM}");

        let before = aws.calls().await;
        let started = Instant::now();
        let groups: Vec<CreateRequest> = (0..GROUPS)
            .map(|i| CreateRequest {
                type_name: "aws_security_group".into(),
                identity: identity(format!("aws_security_group.g[{i}]")),
                config: serde_json::from_value(json!({
                    "name": format!("g{i}"), "vpc_id": vpc["id"],
                    "ingress": [{ "protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"] }]
                }))
                .expect("config"),
                ..Default::default()
            })
            .collect();
        let groups = in_parallel(&aws, groups, create).await;
        let instances: Vec<CreateRequest> = (0..INSTANCES)
            .map(|i| CreateRequest {
                type_name: "aws_instance".into(),
                identity: identity(format!("aws_instance.i[{i}]")),
                config: serde_json::from_value(json!({
                    "ami": ami, "instance_type": "t3.micro", "subnet_id": subnet["id"],
                    "vpc_security_group_ids": [groups[i]["id"]]
                }))
                .expect("config"),
                ..Default::default()
            })
            .collect();
        let instances = in_parallel(&aws, instances, create).await;
        let after = aws.calls().await;
        println!(
            "create:  {:>7.2} s  {}",
            started.elapsed().as_secs_f64(),
            difference(&after, &before)
        );

        let before = after;
        let started = Instant::now();
        let found = refresh(
            &aws,
            &[("aws_security_group", &groups), ("aws_instance", &instances)],
        )
        .await;
        let after = aws.calls().await;
        assert_eq!(found, GROUPS + INSTANCES, "every object is found");
        println!(
            "refresh: {:>7.2} s  {}",
            started.elapsed().as_secs_f64(),
            difference(&after, &before)
        );

        let before = after;
        let started = Instant::now();
        let deletes = |type_name: &str, objects: &[Attributes]| -> Vec<DeleteRequest> {
            objects
                .iter()
                .map(|state| DeleteRequest {
                    type_name: type_name.into(),
                    identity: identity(String::new()),
                    state: state.clone(),
                })
                .collect()
        };
        in_parallel(&aws, deletes("aws_instance", &instances), delete).await;
        in_parallel(&aws, deletes("aws_security_group", &groups), delete).await;
        let after = aws.calls().await;
        println!(
            "delete:  {:>7.2} s  {}",
            started.elapsed().as_secs_f64(),
            difference(&after, &before)
        );

        network(&aws, &ami).await;
    });
}

/// Reads `objects` as plan's refresh does (batches of `read_batch_size`);
/// how many were found.
async fn refresh(aws: &AwsProvider, objects: &[(&str, &Vec<Attributes>)]) -> usize {
    let mut found = 0;
    for (type_name, objects) in objects {
        let size = aws.read_batch_size(type_name);
        for chunk in objects.chunks(size) {
            let requests = chunk
                .iter()
                .map(|state| ReadRequest {
                    type_name: type_name.to_string(),
                    identity: identity(String::new()),
                    state: state.clone(),
                })
                .collect();
            found += aws
                .read_many(requests)
                .await
                .into_iter()
                .filter(|answer| answer.as_ref().is_ok_and(|r| r.state.is_some()))
                .count();
        }
    }
    found
}

/// Part 2: a small network as a configuration would describe it — 1 VPC,
/// 4 subnets, 50 security groups of 2 rules, 20 instances across the
/// subnets — created in dependency order, 10 at a time. A script calling
/// AWS directly needs 1 + 4 + 50 × 2 + 20 = 125 calls and a few waits.
async fn network(aws: &Arc<AwsProvider>, ami: &str) {
    let request = |type_name: &str, address: String, config: serde_json::Value| CreateRequest {
        type_name: type_name.into(),
        identity: identity(address),
        config: serde_json::from_value(config).expect("config"),
        ..Default::default()
    };
    let before = aws.calls().await;
    let started = Instant::now();
    let vpc = create(
        aws.clone(),
        request(
            "aws_vpc",
            "aws_vpc.net".into(),
            json!({ "cidr_block": "10.8.0.0/16" }),
        ),
    )
    .await;
    let subnets = (0..4)
        .map(|i| {
            request(
                "aws_subnet",
                format!("aws_subnet.net[{i}]"),
                json!({ "vpc_id": vpc["id"], "cidr_block": format!("10.8.{i}.0/24") }),
            )
        })
        .collect();
    let groups = (0..50)
        .map(|i| {
            request(
                "aws_security_group",
                format!("aws_security_group.net[{i}]"),
                json!({
                    "name": format!("net{i}"), "vpc_id": vpc["id"],
                    "ingress": [
                        { "protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"] },
                        { "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"] }
                    ]
                }),
            )
        })
        .collect();
    let subnets = in_parallel(aws, subnets, create).await;
    let groups = in_parallel(aws, groups, create).await;
    let instances = (0..20)
        .map(|i| {
            request(
                "aws_instance",
                format!("aws_instance.net[{i}]"),
                json!({
                    "ami": ami, "instance_type": "t3.micro", "subnet_id": subnets[i % 4]["id"],
                    "vpc_security_group_ids": [groups[i]["id"]]
                }),
            )
        })
        .collect();
    let instances = in_parallel(aws, instances, create).await;
    let after = aws.calls().await;
    println!(
        "\n1 VPC, 4 subnets, 50 security groups of 2 rules, 20 instances, parallelism {PARALLELISM}\ncreate:  {:>7.2} s  {}",
        started.elapsed().as_secs_f64(),
        difference(&after, &before)
    );
    // What a no-op plan asks AWS.
    let before = after;
    let started = Instant::now();
    let vpcs = vec![vpc];
    let found = refresh(
        aws,
        &[
            ("aws_vpc", &vpcs),
            ("aws_subnet", &subnets),
            ("aws_security_group", &groups),
            ("aws_instance", &instances),
        ],
    )
    .await;
    assert_eq!(found, 1 + 4 + 50 + 20, "every object is found");
    let after = aws.calls().await;
    println!(
        "refresh: {:>7.2} s  {}",
        started.elapsed().as_secs_f64(),
        difference(&after, &before)
    );
}
