//! The AWS provider against moto, through the real AWS SDK: every object
//! is created, read, changed, drifted and deleted as AWS would see it.

mod support;

use std::collections::BTreeMap;

use infra_provider_aws::{AwsProvider, Settings};
use infra_provider_sdk::*;
use serde_json::{Value, json};
use support::Moto;

fn provider(moto: &Moto) -> AwsProvider {
    AwsProvider::with_settings(Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(moto.endpoint.clone()),
        max_attempts: 3,
        static_credentials: Some(("testing".into(), "testing".into())),
    })
}

/// A plain SDK client, to look at and change things behind infra's back.
async fn sdk(moto: &Moto) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&moto.sdk_config().await)
}

fn identity(address: &str) -> ObjectIdentity {
    ObjectIdentity {
        address: address.into(),
        lineage: "lineage-1".into(),
    }
}

fn attributes(value: Value) -> Attributes {
    serde_json::from_value(value).expect("attributes")
}

async fn create(
    provider: &AwsProvider,
    type_name: &str,
    address: &str,
    config: Value,
) -> Attributes {
    provider
        .create(CreateRequest {
            type_name: type_name.into(),
            identity: identity(address),
            config: attributes(config),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|error| panic!("create {address}: {error}"))
        .state
}

async fn read(provider: &AwsProvider, type_name: &str, state: &Attributes) -> Option<Attributes> {
    provider
        .read(ReadRequest {
            type_name: type_name.into(),
            identity: identity("x"),
            state: state.clone(),
        })
        .await
        .expect("read")
        .state
}

async fn delete(provider: &AwsProvider, type_name: &str, state: &Attributes) {
    provider
        .delete(DeleteRequest {
            type_name: type_name.into(),
            identity: identity("x"),
            state: state.clone(),
        })
        .await
        .unwrap_or_else(|error| panic!("delete {type_name}: {error}"));
}

async fn an_ami(client: &aws_sdk_ec2::Client) -> String {
    client
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("images")
        .images()
        .first()
        .and_then(|i| i.image_id())
        .expect("moto has AMIs")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_with_an_instance_is_created_read_changed_and_deleted() {
    let moto = Moto::start();
    let aws = provider(&moto);
    let client = sdk(&moto).await;

    let vpc = create(
        &aws,
        "aws_vpc",
        "aws_vpc.main",
        json!({ "cidr_block": "10.0.0.0/16", "enable_dns_hostnames": true, "tags": { "Name": "main" } }),
    )
    .await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    assert_eq!(vpc["cidr_block"], "10.0.0.0/16");
    assert_eq!(vpc["enable_dns_hostnames"], true);
    assert_eq!(
        vpc["tags"],
        json!({ "Name": "main" }),
        "infra's own tags stay out of the state"
    );
    // …but they are on the object.
    let described = client
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<&str, &str> = described.vpcs()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags["infra:address"], "aws_vpc.main");
    assert_eq!(tags["infra:lineage"], "lineage-1");

    let subnet = create(
        &aws,
        "aws_subnet",
        "aws_subnet.a",
        json!({ "vpc_id": vpc_id, "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a" }),
    )
    .await;
    assert_eq!(subnet["availability_zone"], "us-east-1a");
    assert_eq!(subnet["map_public_ip_on_launch"], false);

    let ingress = json!([
        { "protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"] },
        { "protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["10.0.0.0/8", "0.0.0.0/0"] }
    ]);
    let group = create(
        &aws,
        "aws_security_group",
        "aws_security_group.web",
        json!({ "name": "web", "vpc_id": vpc_id, "ingress": ingress,
                "egress": [{ "protocol": "-1", "cidr_blocks": ["0.0.0.0/0"] }] }),
    )
    .await;
    assert_eq!(
        group["ingress"], ingress,
        "the configuration's way of writing the rules"
    );
    assert_eq!(group["description"], "Managed by infra");

    let gateway = create(
        &aws,
        "aws_internet_gateway",
        "aws_internet_gateway.main",
        json!({ "vpc_id": vpc_id }),
    )
    .await;
    assert_eq!(gateway["vpc_id"], vpc_id.as_str());

    let ami = an_ami(&client).await;
    let instance = create(
        &aws,
        "aws_instance",
        "aws_instance.web",
        json!({ "ami": ami, "instance_type": "t3.micro", "subnet_id": subnet["id"],
                "vpc_security_group_ids": [group["id"]], "user_data": "#!/bin/sh\necho hi\n",
                "tags": { "Role": "web" } }),
    )
    .await;
    let instance_id = instance["id"].as_str().unwrap().to_string();
    assert_eq!(instance["instance_type"], "t3.micro");
    assert_eq!(instance["vpc_security_group_ids"], json!([group["id"]]));
    assert!(instance["private_ip"].is_string());
    let state = client
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let described = &state.reservations()[0].instances()[0];
    assert_eq!(
        described.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("running"),
        "create waits until the instance runs"
    );

    // Reading back gives the same state: a plan would be clean.
    for (kind, object) in [
        ("aws_vpc", &vpc),
        ("aws_subnet", &subnet),
        ("aws_security_group", &group),
        ("aws_internet_gateway", &gateway),
        ("aws_instance", &instance),
    ] {
        assert_eq!(
            read(&aws, kind, object).await.as_ref(),
            Some(object),
            "{kind}"
        );
    }

    // In place: a new instance type (stop, modify, start) and new tags.
    let mut config = instance.clone();
    config.insert("instance_type".into(), json!("t3.small"));
    config.insert("tags".into(), json!({ "Role": "api", "Team": "core" }));
    let updated = aws
        .update(UpdateRequest {
            type_name: "aws_instance".into(),
            identity: identity("aws_instance.web"),
            prior: instance.clone(),
            config,
            ..Default::default()
        })
        .await
        .expect("update")
        .state;
    assert_eq!(updated["id"], instance_id.as_str(), "the same instance");
    assert_eq!(updated["instance_type"], "t3.small");
    assert_eq!(updated["tags"], json!({ "Role": "api", "Team": "core" }));

    // Drift: a rule revoked behind infra's back shows in the next read.
    client
        .revoke_security_group_ingress()
        .group_id(group["id"].as_str().unwrap())
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let drifted = read(&aws, "aws_security_group", &group).await.unwrap();
    assert_eq!(
        drifted["ingress"],
        json!([{ "protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0", "10.0.0.0/8"] }])
    );

    // Deletes, dependents first; afterwards nothing is left.
    delete(&aws, "aws_instance", &updated).await;
    assert_eq!(
        read(&aws, "aws_instance", &updated).await,
        None,
        "terminated is gone"
    );
    delete(&aws, "aws_internet_gateway", &gateway).await;
    delete(&aws, "aws_security_group", &group).await;
    delete(&aws, "aws_subnet", &subnet).await;
    delete(&aws, "aws_vpc", &vpc).await;
    assert_eq!(read(&aws, "aws_vpc", &vpc).await, None);
    // Deleting what is already gone succeeds.
    delete(&aws, "aws_subnet", &subnet).await;
}

/// VPCs, subnets and security groups take their state from their create
/// calls' answers: no Describe call, and the state is what a read finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_are_created_without_a_read_back_and_read_as_created() {
    let moto = Moto::start();
    let aws = provider(&moto);
    let before = aws.calls().await;
    let created = [
        ("aws_vpc", json!({ "cidr_block": "10.2.0.0/16" })),
        (
            "aws_vpc",
            json!({ "cidr_block": "10.3.0.0/16", "enable_dns_support": false,
                    "enable_dns_hostnames": true, "tags": { "Name": "b", "Team": "net" } }),
        ),
    ];
    let mut objects = Vec::new();
    for (index, (kind, config)) in created.into_iter().enumerate() {
        objects.push((
            kind,
            create(&aws, kind, &format!("{kind}.v{index}"), config).await,
        ));
    }
    let vpc_id = objects[0].1["id"].clone();
    let more = [
        (
            "aws_subnet",
            json!({ "vpc_id": vpc_id, "cidr_block": "10.2.1.0/24" }),
        ),
        (
            "aws_subnet",
            json!({ "vpc_id": vpc_id, "cidr_block": "10.2.2.0/24",
                    "availability_zone": "us-east-1b", "map_public_ip_on_launch": true,
                    "tags": { "Tier": "public" } }),
        ),
        (
            "aws_security_group",
            json!({ "name": "bare", "vpc_id": vpc_id }),
        ),
        (
            "aws_security_group",
            json!({ "name": "web", "vpc_id": vpc_id, "description": "web tier",
                    "ingress": [
                        { "protocol": "6", "from_port": 443, "to_port": 443,
                          "cidr_blocks": ["0.0.0.0/0", "10.0.0.0/8"] },
                        { "protocol": "udp", "from_port": 53, "to_port": 53,
                          "cidr_blocks": ["10.0.0.0/8"] }
                    ],
                    "egress": [{ "protocol": "tcp", "from_port": 5432, "to_port": 5432,
                                 "cidr_blocks": ["10.2.0.0/16"] }],
                    "tags": { "Name": "web" } }),
        ),
    ];
    for (index, (kind, config)) in more.into_iter().enumerate() {
        objects.push((
            kind,
            create(&aws, kind, &format!("{kind}.o{index}"), config).await,
        ));
    }
    let after = aws.calls().await;
    let described: u64 = after
        .iter()
        .filter(|(operation, _)| operation.starts_with("Describe"))
        .map(|(operation, count)| count - before.get(operation).unwrap_or(&0))
        .sum();
    assert_eq!(described, 0, "no read-back: {after:?}");
    assert_eq!(objects[1].1["enable_dns_support"], false);
    assert_eq!(
        objects[2].1["availability_zone"]
            .as_str()
            .map(|z| z.starts_with("us-east-1")),
        Some(true)
    );
    assert_eq!(objects[3].1["map_public_ip_on_launch"], true);
    assert_eq!(
        objects[4].1["egress"][0]["cidr_blocks"],
        json!(["0.0.0.0/0"]),
        "AWS's default egress"
    );
    assert_eq!(
        objects[5].1["ingress"][0]["protocol"], "6",
        "the configuration's way of writing"
    );
    for (kind, object) in &objects {
        assert_eq!(
            read(&aws, kind, object).await.as_ref(),
            Some(object),
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshing_many_objects_takes_a_few_describe_calls() {
    let moto = Moto::start();
    let aws = provider(&moto);
    let client = sdk(&moto).await;
    let vpc = create(
        &aws,
        "aws_vpc",
        "aws_vpc.v",
        json!({ "cidr_block": "10.1.0.0/16" }),
    )
    .await;
    let mut groups = Vec::new();
    for index in 0..150 {
        groups.push(
            create(
                &aws,
                "aws_security_group",
                &format!("aws_security_group.g[{index}]"),
                json!({ "name": format!("g{index}"), "vpc_id": vpc["id"] }),
            )
            .await,
        );
    }
    let ami = an_ami(&client).await;
    let created = aws
        .create(CreateRequest {
            type_name: "aws_instance".into(),
            identity: identity("aws_instance.one"),
            config: attributes(json!({ "ami": ami, "instance_type": "t3.micro" })),
            ..Default::default()
        })
        .await
        .unwrap()
        .state;
    let before = aws.calls().await;
    let requests = |objects: &[Attributes], type_name: &str| -> Vec<ReadRequest> {
        objects
            .iter()
            .map(|state| ReadRequest {
                type_name: type_name.into(),
                identity: identity("x"),
                state: state.clone(),
            })
            .collect()
    };
    // As the engine does: batches of read_batch_size.
    let size = aws.read_batch_size("aws_security_group");
    assert_eq!(size, 100);
    let mut answers = Vec::new();
    for chunk in groups.chunks(size) {
        answers.extend(aws.read_many(requests(chunk, "aws_security_group")).await);
    }
    assert_eq!(answers.len(), 150);
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|r| r.state.is_some()))
    );
    let after = aws.calls().await;
    let made =
        |operation: &str| after.get(operation).unwrap_or(&0) - before.get(operation).unwrap_or(&0);
    assert_eq!(made("DescribeSecurityGroups"), 2, "150 groups in 2 calls");

    // A missing object in a batch is reported gone, the others found.
    let mut gone = created.clone();
    gone.insert("id".into(), json!("i-00000000000000000"));
    let answers = aws
        .read_many(requests(&[created.clone(), gone], "aws_instance"))
        .await;
    assert!(answers[0].as_ref().unwrap().state.is_some());
    assert!(answers[1].as_ref().unwrap().state.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_name_the_operation_code_and_message() {
    let moto = Moto::start();
    let aws = provider(&moto);
    let vpc = create(
        &aws,
        "aws_vpc",
        "aws_vpc.v",
        json!({ "cidr_block": "10.2.0.0/16" }),
    )
    .await;
    create(
        &aws,
        "aws_subnet",
        "aws_subnet.a",
        json!({ "vpc_id": vpc["id"], "cidr_block": "10.2.1.0/24" }),
    )
    .await;
    let conflict = aws
        .create(CreateRequest {
            type_name: "aws_subnet".into(),
            identity: identity("aws_subnet.b"),
            config: attributes(json!({ "vpc_id": vpc["id"], "cidr_block": "10.2.1.0/24" })),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code.as_deref(), Some("InvalidSubnet.Conflict"));
    assert!(
        conflict
            .to_string()
            .starts_with("InvalidSubnet.Conflict: CreateSubnet: "),
        "{conflict}"
    );
    assert!(conflict.to_string().contains("10.2.1.0/24"), "{conflict}");

    let unknown_ami = aws
        .create(CreateRequest {
            type_name: "aws_instance".into(),
            identity: identity("aws_instance.x"),
            config: attributes(json!({ "ami": "ami-00000000", "instance_type": "t3.micro" })),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        unknown_ami
            .code
            .as_deref()
            .is_some_and(|c| c.starts_with("InvalidAMIID")),
        "{unknown_ami:?}"
    );
    assert!(
        unknown_ami.to_string().contains("RunInstances"),
        "{unknown_ami}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_tables_key_pairs_and_elastic_ips() {
    let moto = Moto::start();
    let aws = provider(&moto);
    let client = sdk(&moto).await;
    let vpc = create(
        &aws,
        "aws_vpc",
        "aws_vpc.v",
        json!({ "cidr_block": "10.3.0.0/16" }),
    )
    .await;
    let subnet = |cidr: &str| json!({ "vpc_id": vpc["id"], "cidr_block": cidr });
    let a = create(&aws, "aws_subnet", "aws_subnet.a", subnet("10.3.1.0/24")).await;
    let b = create(&aws, "aws_subnet", "aws_subnet.b", subnet("10.3.2.0/24")).await;
    let gateway = create(
        &aws,
        "aws_internet_gateway",
        "aws_internet_gateway.g",
        json!({ "vpc_id": vpc["id"] }),
    )
    .await;

    let table = create(
        &aws,
        "aws_route_table",
        "aws_route_table.public",
        json!({ "vpc_id": vpc["id"], "subnet_ids": [a["id"]],
                "route": [{ "cidr_block": "0.0.0.0/0", "gateway_id": gateway["id"] }] }),
    )
    .await;
    assert_eq!(table["subnet_ids"], json!([a["id"]]));
    assert_eq!(
        table["route"],
        json!([{ "cidr_block": "0.0.0.0/0", "gateway_id": gateway["id"] }]),
        "the VPC's local route is not ours"
    );
    assert_eq!(
        read(&aws, "aws_route_table", &table).await.as_ref(),
        Some(&table)
    );

    // Move the association to the other subnet, in place.
    let mut config = table.clone();
    config.insert("subnet_ids".into(), json!([b["id"]]));
    let moved = aws
        .update(UpdateRequest {
            type_name: "aws_route_table".into(),
            identity: identity("aws_route_table.public"),
            prior: table.clone(),
            config,
            ..Default::default()
        })
        .await
        .expect("update")
        .state;
    assert_eq!(moved["id"], table["id"]);
    assert_eq!(moved["subnet_ids"], json!([b["id"]]));

    let key = create(
        &aws,
        "aws_key_pair",
        "aws_key_pair.deploy",
        json!({ "key_name": "deploy",
                "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFGADv3qJJpPU4RpMmCFWaRucOTx2JJkBP2nNt3FlTTT deploy@example" }),
    )
    .await;
    assert_eq!(key["id"], "deploy");
    assert!(key["fingerprint"].is_string());

    let ami = an_ami(&client).await;
    let instance = create(
        &aws,
        "aws_instance",
        "aws_instance.i",
        json!({ "ami": ami, "instance_type": "t3.micro", "subnet_id": a["id"], "key_name": "deploy" }),
    )
    .await;
    assert_eq!(instance["key_name"], "deploy");
    let address = create(
        &aws,
        "aws_eip",
        "aws_eip.ip",
        json!({ "instance": instance["id"], "tags": { "Name": "front" } }),
    )
    .await;
    assert!(address["public_ip"].is_string());
    assert_eq!(address["instance"], instance["id"]);
    assert_eq!(
        read(&aws, "aws_eip", &address).await.as_ref(),
        Some(&address)
    );

    // Everything goes, the address and table first.
    delete(&aws, "aws_eip", &address).await;
    assert_eq!(read(&aws, "aws_eip", &address).await, None);
    delete(&aws, "aws_instance", &instance).await;
    delete(&aws, "aws_key_pair", &key).await;
    assert_eq!(read(&aws, "aws_key_pair", &key).await, None);
    delete(&aws, "aws_route_table", &moved).await;
    assert_eq!(read(&aws, "aws_route_table", &moved).await, None);
    delete(&aws, "aws_internet_gateway", &gateway).await;
    delete(&aws, "aws_subnet", &a).await;
    delete(&aws, "aws_subnet", &b).await;
    delete(&aws, "aws_vpc", &vpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_splits_traffic_by_weight_and_changes_it_in_place() {
    let moto = Moto::start();
    let aws = provider(&moto);
    let vpc = create(
        &aws,
        "aws_vpc",
        "aws_vpc.v",
        json!({ "cidr_block": "10.4.0.0/16" }),
    )
    .await;
    let subnet = |cidr: &str, zone: &str| json!({ "vpc_id": vpc["id"], "cidr_block": cidr, "availability_zone": zone });
    let a = create(
        &aws,
        "aws_subnet",
        "aws_subnet.a",
        subnet("10.4.1.0/24", "us-east-1a"),
    )
    .await;
    let b = create(
        &aws,
        "aws_subnet",
        "aws_subnet.b",
        subnet("10.4.2.0/24", "us-east-1b"),
    )
    .await;
    let lb = create(
        &aws,
        "aws_lb",
        "aws_lb.web",
        json!({ "name": "web", "subnets": [a["id"], b["id"]], "tags": { "Team": "web" } }),
    )
    .await;
    assert!(lb["dns_name"].is_string());
    assert_eq!(lb["tags"], json!({ "Team": "web" }));
    let group = |name: &str| {
        json!({ "name": name, "port": 80, "vpc_id": vpc["id"], "deregistration_delay": 15,
                "health_check": [{ "path": "/healthz", "interval": 10 }] })
    };
    let blue = create(
        &aws,
        "aws_lb_target_group",
        "aws_lb_target_group.blue",
        group("blue"),
    )
    .await;
    let green = create(
        &aws,
        "aws_lb_target_group",
        "aws_lb_target_group.green",
        group("green"),
    )
    .await;
    assert_eq!(blue["deregistration_delay"], 15);
    assert_eq!(
        blue["health_check"],
        json!([{ "path": "/healthz", "interval": 10 }])
    );
    assert_eq!(
        read(&aws, "aws_lb_target_group", &blue).await.as_ref(),
        Some(&blue)
    );

    let split = |blue_weight: u32, green_weight: u32| {
        json!([
            { "target_group_arn": blue["arn"], "weight": blue_weight },
            { "target_group_arn": green["arn"], "weight": green_weight }
        ])
    };
    let listener = create(
        &aws,
        "aws_lb_listener",
        "aws_lb_listener.http",
        json!({ "load_balancer_arn": lb["arn"], "port": 80, "forward": split(90, 10) }),
    )
    .await;
    assert_eq!(listener["forward"], split(90, 10));
    assert_eq!(
        read(&aws, "aws_lb_listener", &listener).await.as_ref(),
        Some(&listener)
    );

    let mut config = listener.clone();
    config.insert("forward".into(), split(50, 50));
    let shifted = aws
        .update(UpdateRequest {
            type_name: "aws_lb_listener".into(),
            identity: identity("aws_lb_listener.http"),
            prior: listener.clone(),
            config,
            ..Default::default()
        })
        .await
        .expect("update")
        .state;
    assert_eq!(shifted["id"], listener["id"], "the same listener");
    assert_eq!(shifted["forward"], split(50, 50));

    delete(&aws, "aws_lb_listener", &shifted).await;
    assert_eq!(read(&aws, "aws_lb_listener", &shifted).await, None);
    delete(&aws, "aws_lb_target_group", &blue).await;
    delete(&aws, "aws_lb_target_group", &green).await;
    delete(&aws, "aws_lb", &lb).await;
    assert_eq!(read(&aws, "aws_lb", &lb).await, None);
}

/// A stand-in for AWS that answers a DescribeSubnets first with
/// throttling, then with a server error, then properly: the provider's
/// retries (the SDK's standard mode) get through. Counts the requests.
fn flaky_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let (status, text) = match counter.fetch_add(1, Ordering::SeqCst) {
                0 => (
                    "503 Service Unavailable",
                    "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>1</RequestID></Response>",
                ),
                1 => (
                    "500 Internal Server Error",
                    "<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred.</Message></Error></Errors><RequestID>2</RequestID></Response>",
                ),
                _ => (
                    "200 OK",
                    "<DescribeSubnetsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>3</requestId><subnetSet><item><subnetId>subnet-1</subnetId><vpcId>vpc-1</vpcId><cidrBlock>10.0.1.0/24</cidrBlock><availabilityZone>us-east-1a</availabilityZone><mapPublicIpOnLaunch>false</mapPublicIpOnLaunch></item></subnetSet></DescribeSubnetsResponse>",
                ),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (endpoint, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried() {
    let (endpoint, requests) = flaky_endpoint();
    let aws = AwsProvider::with_settings(Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        max_attempts: 5,
        static_credentials: Some(("testing".into(), "testing".into())),
    });
    let found = read(&aws, "aws_subnet", &attributes(json!({ "id": "subnet-1" })))
        .await
        .expect("read through the retries");
    assert_eq!(found["cidr_block"], "10.0.1.0/24");
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "throttled, failed, answered"
    );
    assert_eq!(
        aws.calls().await["DescribeSubnets"],
        1,
        "one call, retried inside"
    );
}

/// The object of a create an interrupted run never recorded is found by its
/// `infra:address` and `infra:lineage` tags — and only by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_create_is_found_by_its_tags() {
    let moto = Moto::start();
    let aws = provider(&moto);
    let config = json!({ "cidr_block": "10.7.0.0/16" });
    let vpc = create(&aws, "aws_vpc", "aws_vpc.lost", config.clone()).await;
    let adopt = |address: &str, lineage: &str, type_name: &str| AdoptRequest {
        type_name: type_name.into(),
        identity: ObjectIdentity {
            address: address.into(),
            lineage: lineage.into(),
        },
        config: attributes(config.clone()),
    };
    match aws
        .adopt(adopt("aws_vpc.lost", "lineage-1", "aws_vpc"))
        .await
        .unwrap()
    {
        Adoption::Found(state) => {
            assert_eq!(state["id"], vpc["id"]);
            assert_eq!(state["cidr_block"], "10.7.0.0/16");
        }
        other => panic!("not found: {other:?}"),
    }
    for (address, lineage) in [
        ("aws_vpc.other", "lineage-1"),
        ("aws_vpc.lost", "lineage-2"),
    ] {
        assert_eq!(
            aws.adopt(adopt(address, lineage, "aws_vpc")).await.unwrap(),
            Adoption::Absent,
            "{address} of {lineage}"
        );
    }
    assert_eq!(
        aws.adopt(adopt("aws_lb.x", "lineage-1", "aws_lb"))
            .await
            .unwrap(),
        Adoption::Unknown,
        "load balancers are not found by tags"
    );
    delete(&aws, "aws_vpc", &vpc).await;
    assert_eq!(
        aws.adopt(adopt("aws_vpc.lost", "lineage-1", "aws_vpc"))
            .await
            .unwrap(),
        Adoption::Absent,
        "deleted"
    );
}
