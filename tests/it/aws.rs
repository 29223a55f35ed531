//! The `infra` binary with the AWS provider against moto: apply a network
//! (VPC, two subnets, gateway, route table, security group) with two
//! instances, plan again (clean), change an instance type and a tag
//! (exactly those updates), drift a firewall rule behind infra's back (the
//! plan shows it), destroy (moto keeps none of our objects). Checked
//! through the AWS SDK, not through infra.

use std::path::Path;
use std::process::{Command, Output};

use crate::moto::Moto;
use crate::support::{self, both, runtime, text};
use infra::state::Backend as _;
use infra_provider_aws::aws_sdk_ec2;

/// `infra ARGS` in `dir`, talking to `moto`.
pub(crate) fn command(moto: &Moto, dir: &Path, args: &[&str]) -> Command {
    let mut command = support::command(Some(dir), args);
    command.envs(moto.environment());
    command
}

pub(crate) fn infra(moto: &Moto, dir: &Path, args: &[&str]) -> Output {
    command(moto, dir, args).output().expect("run infra")
}

pub(crate) async fn elb(moto: &Moto) -> infra_provider_aws::aws_sdk_elasticloadbalancingv2::Client {
    infra_provider_aws::aws_sdk_elasticloadbalancingv2::Client::new(&moto.sdk_config().await)
}

pub(crate) async fn client(moto: &Moto) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&moto.sdk_config().await)
}

const NETWORK: &str = include_str!("../../examples/aws-web/main.infra");

#[test]
fn a_network_applies_plans_clean_changes_exactly_drifts_and_destroys() {
    let moto = Moto::start();
    let runtime = runtime();
    let ec2 = runtime.block_on(client(&moto));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.infra"), NETWORK).unwrap();
    let run = |args: &[&str]| infra(&moto, dir.path(), args);

    // The AMI is looked up while planning: the plan shows it.
    let images = runtime
        .block_on(ec2.describe_images().owners("amazon").send())
        .unwrap();
    let newest = images
        .images()
        .iter()
        .max_by_key(|i| i.creation_date().unwrap_or_default().to_string())
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    let plan = run(&["plan"]);
    assert!(
        text(&plan.stdout).contains(&format!("+ ami                    = \"{newest}\"")),
        "{}",
        both(&plan)
    );

    let applied = run(&["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    assert!(
        text(&applied.stdout)
            .contains("Apply complete! Resources: 13 added, 0 changed, 0 destroyed."),
        "{}",
        both(&applied)
    );

    // Everything exists as declared, tagged with its address.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["outputs"]["vpc_cidr"]["value"], "10.0.0.0/16",
        "read during apply"
    );
    assert!(
        state["resources"]
            .as_object()
            .unwrap()
            .keys()
            .all(|address| !address.starts_with("data.")),
        "data sources are not saved"
    );
    let id = |address: &str| {
        state["resources"][address]["attributes"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{address} in the state"))
            .to_string()
    };
    let vpcs = runtime
        .block_on(ec2.describe_vpcs().vpc_ids(id("aws_vpc.main")).send())
        .unwrap();
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    assert!(
        vpc.tags()
            .iter()
            .any(|t| t.key() == Some("infra:address") && t.value() == Some("aws_vpc.main"))
    );
    let subnets = runtime
        .block_on(
            ec2.describe_subnets()
                .subnet_ids(id("aws_subnet.public[1]"))
                .send(),
        )
        .unwrap();
    assert_eq!(subnets.subnets()[0].cidr_block(), Some("10.0.1.0/24"));
    assert_eq!(subnets.subnets()[0].availability_zone(), Some("us-east-1b"));
    let instances = runtime
        .block_on(
            ec2.describe_instances()
                .instance_ids(id("aws_instance.web[0]"))
                .instance_ids(id("aws_instance.web[1]"))
                .send(),
        )
        .unwrap();
    let instances: Vec<_> = instances
        .reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .collect();
    assert_eq!(instances.len(), 2);
    for instance in &instances {
        assert_eq!(
            instance
                .instance_type()
                .map(aws_sdk_ec2::types::InstanceType::as_str),
            Some("t3.micro")
        );
        assert_eq!(
            instance
                .state()
                .and_then(|s| s.name())
                .map(aws_sdk_ec2::types::InstanceStateName::as_str),
            Some("running")
        );
        assert_eq!(
            instance.security_groups()[0].group_id(),
            Some(id("aws_security_group.web").as_str())
        );
    }

    // The load balancer forwards to the target group, both instances in it.
    let elb = runtime.block_on(elb(&moto));
    let health = runtime
        .block_on(
            elb.describe_target_health()
                .target_group_arn(id("aws_lb_target_group.web"))
                .send(),
        )
        .unwrap();
    let mut targets: Vec<&str> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target().and_then(|t| t.id()))
        .collect();
    targets.sort_unstable();
    let mut expected = vec![id("aws_instance.web[0]"), id("aws_instance.web[1]")];
    expected.sort();
    assert_eq!(targets, expected);
    let listeners = runtime
        .block_on(
            elb.describe_listeners()
                .load_balancer_arn(id("aws_lb.web"))
                .send(),
        )
        .unwrap();
    let forward = listeners.listeners()[0].default_actions()[0]
        .forward_config()
        .map(|f| f.target_groups()[0].target_group_arn().unwrap().to_string())
        .or_else(|| {
            listeners.listeners()[0].default_actions()[0]
                .target_group_arn()
                .map(str::to_string)
        });
    assert_eq!(forward, Some(id("aws_lb_target_group.web")));
    assert!(
        state["outputs"]["url"]["value"]
            .as_str()
            .unwrap()
            .starts_with("http://web-"),
        "{}",
        state["outputs"]["url"]
    );

    // Idempotent: the next plan is clean.
    let clean = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    // A new instance type and tag: exactly those two updates per instance.
    let changed = run(&[
        "plan",
        "--detailed-exitcode",
        "-var",
        "web_type=t3.small",
        "-var",
        "team=api",
    ]);
    assert_eq!(changed.status.code(), Some(2), "{}", both(&changed));
    let plan = text(&changed.stdout);
    assert!(
        plan.contains("~ instance_type = \"t3.micro\" -> \"t3.small\""),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 0 to add, 2 to change, 0 to replace, 0 to destroy."),
        "{plan}"
    );
    let applied = run(&[
        "apply",
        "--auto-approve",
        "-var",
        "web_type=t3.small",
        "-var",
        "team=api",
    ]);
    assert!(applied.status.success(), "{}", both(&applied));
    let described = runtime
        .block_on(
            ec2.describe_instances()
                .instance_ids(id("aws_instance.web[0]"))
                .send(),
        )
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(
        instance
            .instance_type()
            .map(aws_sdk_ec2::types::InstanceType::as_str),
        Some("t3.small")
    );
    assert!(
        instance
            .tags()
            .iter()
            .any(|t| t.key() == Some("Team") && t.value() == Some("api"))
    );
    let clean = run(&[
        "plan",
        "--detailed-exitcode",
        "-var",
        "web_type=t3.small",
        "-var",
        "team=api",
    ]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    // A rule deleted behind infra's back: the plan shows that update.
    runtime
        .block_on(
            ec2.revoke_security_group_ingress()
                .group_id(id("aws_security_group.web"))
                .ip_permissions(
                    aws_sdk_ec2::types::IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(22)
                        .to_port(22)
                        .ip_ranges(
                            aws_sdk_ec2::types::IpRange::builder()
                                .cidr_ip("10.0.0.0/8")
                                .build(),
                        )
                        .build(),
                )
                .send(),
        )
        .unwrap();
    let drift = run(&["drift", "-var", "web_type=t3.small"]);
    assert_eq!(drift.status.code(), Some(2), "{}", both(&drift));
    assert!(text(&drift.stdout).contains("# aws_security_group.web was changed outside infra"));
    let plan = run(&["plan", "-var", "web_type=t3.small", "-var", "team=api"]);
    let shown = text(&plan.stdout);
    assert!(
        shown.contains("# aws_security_group.web will be updated in place"),
        "{shown}"
    );
    assert!(
        shown.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{shown}"
    );

    // A tag changed and an instance terminated behind infra's back: the
    // plan shows exactly that update and that re-create (with its target
    // group attachment, which went with it), and apply repairs them.
    runtime
        .block_on(
            ec2.create_tags()
                .resources(id("aws_vpc.main"))
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value("renamed")
                        .build(),
                )
                .send(),
        )
        .unwrap();
    runtime
        .block_on(
            ec2.terminate_instances()
                .instance_ids(id("aws_instance.web[1]"))
                .send(),
        )
        .unwrap();
    let plan = run(&["plan", "-var", "web_type=t3.small", "-var", "team=api"]);
    let shown = text(&plan.stdout);
    assert!(
        shown.contains("# aws_vpc.main will be updated in place"),
        "{shown}"
    );
    assert!(shown.contains("\"renamed\""), "{shown}");
    assert!(
        shown.contains("# aws_instance.web[1] will be created"),
        "{shown}"
    );
    // A terminated instance leaves its target group: the attachment is
    // gone too, and is made again.
    assert!(
        shown.contains("# aws_lb_target_group_attachment.web[1] will be created"),
        "{shown}"
    );
    assert!(!shown.contains("aws_instance.web[0] will"), "{shown}");
    let repaired = run(&[
        "apply",
        "--auto-approve",
        "-var",
        "web_type=t3.small",
        "-var",
        "team=api",
    ]);
    assert!(repaired.status.success(), "{}", both(&repaired));
    let clean = run(&[
        "plan",
        "--detailed-exitcode",
        "-var",
        "web_type=t3.small",
        "-var",
        "team=api",
    ]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    // Destroy: moto keeps none of our objects.
    let destroyed = run(&[
        "destroy",
        "--auto-approve",
        "-var",
        "web_type=t3.small",
        "-var",
        "team=api",
    ]);
    assert!(destroyed.status.success(), "{}", both(&destroyed));
    assert!(text(&destroyed.stdout).contains("Destroy complete! Resources: 13 destroyed."));
    // Objects infra made carry the `infra:address` tag.
    let tagged = || {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag-key")
            .values("infra:address")
            .build()
    };
    let vpcs = runtime
        .block_on(ec2.describe_vpcs().filters(tagged()).send())
        .unwrap();
    assert!(vpcs.vpcs().is_empty(), "{:?}", vpcs.vpcs());
    let groups = runtime
        .block_on(ec2.describe_security_groups().filters(tagged()).send())
        .unwrap();
    assert!(groups.security_groups().is_empty());
    let running = runtime
        .block_on(
            ec2.describe_instances()
                .filters(tagged())
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("instance-state-name")
                        .values("pending")
                        .values("running")
                        .values("stopped")
                        .build(),
                )
                .send(),
        )
        .unwrap();
    assert!(running.reservations().is_empty());
}

const ONE_INSTANCE: &str = r#"
variable ami {
  type = string
}

resource aws_vpc main {
  cidr_block = "10.5.0.0/16"
}

resource aws_subnet a {
  vpc_id     = aws_vpc.main.id
  cidr_block = "10.5.1.0/24"
}

resource aws_instance web {
  ami           = var.ami
  instance_type = "t3.micro"
  subnet_id     = aws_subnet.a.id
}
"#;

#[test]
fn an_unknown_ami_fails_that_instance_and_keeps_the_rest_in_the_state() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.infra"), ONE_INSTANCE).unwrap();
    let failed = infra(
        &moto,
        dir.path(),
        &["apply", "--auto-approve", "-var", "ami=ami-00000000"],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let out = text(&failed.stdout);
    assert!(
        out.contains("failed   aws_instance.web (create): InvalidAMIID.NotFound: RunInstances: "),
        "the address, the operation, AWS's code and message:\n{out}"
    );
    // On stderr, a diagnostic at the value of `ami`, with AWS's code.
    let error = text(&failed.stderr);
    for expected in [
        "infra::apply\n",
        "create of `aws_instance.web` failed: InvalidAMIID.NotFound: RunInstances:",
        "note: the provider's error code is `InvalidAMIID.NotFound`",
        "╭─[main.infra:16:19]",
        "16 │   ami           = var.ami",
        "╰── the provider rejected this `ami`",
        "help: fix this value and run the same command again",
    ] {
        assert!(error.contains(expected), "{expected}:\n{error}");
    }
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap(),
    )
    .unwrap();
    let recorded: Vec<&String> = state["resources"].as_object().unwrap().keys().collect();
    assert_eq!(
        recorded,
        ["aws_subnet.a", "aws_vpc.main"],
        "what was created is kept"
    );
    // The next plan wants only the instance.
    let plan = infra(&moto, dir.path(), &["plan", "-var", "ami=ami-00000000"]);
    assert!(
        text(&plan.stdout).contains("Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy.")
    );
}

#[test]
fn bad_credentials_are_a_clear_error_and_change_nothing() {
    let moto = Moto::start_checking_credentials();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.infra"), ONE_INSTANCE).unwrap();
    let mut command = command(
        &moto,
        dir.path(),
        &["apply", "--auto-approve", "-var", "ami=ami-12c6146b"],
    );
    command
        .env("AWS_ACCESS_KEY_ID", "AKIANOTAREALKEY")
        .env("AWS_SECRET_ACCESS_KEY", "wrong");
    let refused = command.output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", both(&refused));
    let out = both(&refused);
    assert!(
        out.contains("failed   aws_vpc.main (create): AuthFailure: CreateVpc: "),
        "{out}"
    );
    assert!(
        out.contains("skipped  aws_subnet.a (create): waits for aws_vpc.main"),
        "{out}"
    );
    let state = std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap_or_default();
    assert!(
        !state.contains("aws_vpc.main"),
        "nothing was recorded: {state}"
    );
}

#[test]
fn existing_objects_are_imported_and_the_plan_shows_only_real_differences() {
    let moto = Moto::start();
    let runtime = runtime();
    let ec2 = runtime.block_on(client(&moto));
    // Made by hand, outside infra.
    let vpc = runtime
        .block_on(ec2.create_vpc().cidr_block("10.7.0.0/16").send())
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let subnet = runtime
        .block_on(
            ec2.create_subnet()
                .vpc_id(&vpc)
                .cidr_block("10.7.1.0/24")
                .availability_zone("us-east-1a")
                .send(),
        )
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.infra"),
        r#"
resource aws_vpc main {
  cidr_block = "10.7.0.0/16"
  tags       = { Name = "adopted" }
}

resource aws_subnet a {
  vpc_id            = aws_vpc.main.id
  cidr_block        = "10.7.1.0/24"
  availability_zone = "us-east-1a"
}
"#,
    )
    .unwrap();
    for (address, object) in [("aws_vpc.main", &vpc), ("aws_subnet.a", &subnet)] {
        let imported = infra(&moto, dir.path(), &["import", address, object]);
        assert!(imported.status.success(), "{}", both(&imported));
    }
    let plan = infra(&moto, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", both(&plan));
    let shown = text(&plan.stdout);
    assert!(
        shown.contains("# aws_vpc.main will be updated in place"),
        "{shown}"
    );
    assert!(
        !shown.contains("aws_subnet.a"),
        "the subnet matches: {shown}"
    );
    assert!(
        shown.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{shown}"
    );
    let applied = infra(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    let described = runtime
        .block_on(ec2.describe_vpcs().vpc_ids(&vpc).send())
        .unwrap();
    assert!(
        described.vpcs()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("Name") && t.value() == Some("adopted")),
        "the same VPC, now tagged"
    );
    let clean = infra(&moto, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    // An id that does not exist is a clear error.
    assert!(
        infra(&moto, dir.path(), &["state", "rm", "aws_subnet.a"])
            .status
            .success()
    );
    let unknown = infra(
        &moto,
        dir.path(),
        &["import", "aws_subnet.a", "subnet-00000000"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    let error = text(&unknown.stderr);
    for expected in [
        "infra::import",
        "importing `aws_subnet.a` from `subnet-00000000` failed: NotFound: no aws_subnet with id",
        "resource aws_subnet a {",
        "imported into this resource",
    ] {
        assert!(error.contains(expected), "{expected}: {}", both(&unknown));
    }
}

/// A bucket on moto, through the SDK as a user would make it.
fn bucket(moto: &Moto, name: &str) {
    use infra_provider_aws::aws_sdk_s3;
    let runtime = runtime();
    runtime.block_on(async {
        let config = moto.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("bucket");
    });
}

const S3_STATE: &str = r#"
backend s3 {
  bucket = "team-states"
  key    = "prod/infra.state.json"
  region = "us-east-1"
}

resource random_id a {
  byte_length = 4
}
"#;

/// `backend s3` through the binary: the state lives in the bucket, a lock
/// held by another run stops an apply and names its holder, force-unlock
/// removes it; through the engine, a save from a stale read is refused and
/// of 20 runs locking at once exactly one gets the lock.
#[test]
fn a_state_in_s3_is_locked_by_conditional_writes_and_saved_compare_and_swap() {
    let moto = Moto::start();
    bucket(&moto, "team-states");
    let dir = tempfile::tempdir().unwrap();
    support::write(dir.path(), "main.infra", S3_STATE);
    let applied = infra(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    assert!(
        !dir.path().join("infra.state.json").exists(),
        "no local state"
    );
    let listed = infra(&moto, dir.path(), &["state", "list"]);
    assert_eq!(text(&listed.stdout), "random_id.a\n", "{}", both(&listed));
    let clean = infra(&moto, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    // The engine's backend, as another run (on another machine) has it.
    let backend = || {
        infra::state::s3::S3Backend::with_settings(
            infra::state::s3::S3Location {
                bucket: "team-states".into(),
                key: "prod/infra.state.json".into(),
                region: Some("us-east-1".into()),
                endpoint: Some(moto.endpoint.clone()),
            },
            &infra_provider_aws::Settings {
                region: Some("us-east-1".into()),
                endpoint: Some(moto.endpoint.clone()),
                max_attempts: 3,
                static_credentials: Some(("testing".into(), "testing".into())),
            },
            infra::state::sealing::Sealer::plaintext(),
            false,
        )
        .expect("an S3 backend")
    };
    let other = backend();
    let wait = infra::state::LockWait {
        timeout: std::time::Duration::ZERO,
        waiting: &|_| {},
    };
    let held = other.lock("apply", &wait).expect("the lock");
    let stopped = infra(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(stopped.status.code(), Some(3), "{}", both(&stopped));
    let said = both(&stopped);
    assert!(
        said.contains("the state is locked by") && said.contains(&held.info.id),
        "{said}"
    );
    let unlocked = infra(&moto, dir.path(), &["force-unlock", &held.info.id]);
    assert!(unlocked.status.success(), "{}", both(&unlocked));
    drop(held);
    let again = infra(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert!(again.status.success(), "{}", both(&again));

    // Compare-and-swap: a save based on a stale read is refused.
    let first = backend();
    let second = backend();
    let read_first = first.read().unwrap();
    let read_second = second.read().unwrap();
    let mut changed = read_first.state.clone().unwrap();
    changed.resources.clear();
    first.save(&changed, &read_first.version).expect("saved");
    let mut theirs = read_second.state.unwrap();
    theirs.outputs.insert(
        "changed".into(),
        infra::state::OutputState {
            value: serde_json::json!(true),
            sensitive: false,
        },
    );
    let refused = second.save(&theirs, &read_second.version).unwrap_err();
    assert!(
        matches!(refused, infra::state::StateError::Changed { .. }),
        "{refused}"
    );

    // 20 runs lock at once: exactly one holds it.
    let contenders: Vec<_> = (0..20).map(|_| backend()).collect();
    let holders = std::thread::scope(|scope| {
        let attempts: Vec<_> = contenders
            .iter()
            .map(|contender| scope.spawn(|| contender.lock("apply", &wait).ok()))
            .collect();
        // Each holder keeps its lock until all have tried.
        attempts
            .into_iter()
            .filter_map(|attempt| attempt.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(holders.len(), 1, "{holders:?}");
}

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// `infra ARGS` in `dir` against moto, with the state key set.
fn keyed(moto: &Moto, dir: &Path, args: &[&str]) -> Output {
    command(moto, dir, args)
        .env("INFRA_STATE_KEY", KEY)
        .output()
        .expect("run infra")
}

/// A state moved from its local file to S3 and back with `infra init
/// --migrate-state` keeps every resource and its sealed secrets; a run
/// after the backend block changed, before the move, is refused.
#[test]
fn a_state_migrates_from_a_local_file_to_s3_and_back_without_losing_a_resource() {
    let moto = Moto::start();
    bucket(&moto, "team-states");
    let dir = tempfile::tempdir().unwrap();
    let resources = "resource random_password db {\n  length = 20\n}\n\nresource random_id a {\n  byte_length = 2\n  count       = 3\n}\n";
    let s3 = "backend s3 {\n  bucket = \"team-states\"\n  key    = \"moved/infra.state.json\"\n  region = \"us-east-1\"\n}\n\n";
    support::write(dir.path(), "main.infra", resources);
    let applied = keyed(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    let listed = |moto: &Moto| text(&keyed(moto, dir.path(), &["state", "list"]).stdout);
    let before = listed(&moto);
    assert_eq!(before.lines().count(), 4, "{before}");

    support::write(dir.path(), "main.infra", &format!("{s3}{resources}"));
    let refused = keyed(&moto, dir.path(), &["plan"]);
    assert_eq!(refused.status.code(), Some(1), "{}", both(&refused));
    assert!(both(&refused).contains("the backend changed"));
    let migrated = keyed(&moto, dir.path(), &["init", "--migrate-state"]);
    assert!(migrated.status.success(), "{}", both(&migrated));
    assert!(
        text(&migrated.stdout)
            .contains("to the S3 state `s3://team-states/moved/infra.state.json`")
    );
    assert_eq!(listed(&moto), before, "every resource is in S3");
    let clean = keyed(&moto, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    let revealed = keyed(
        &moto,
        dir.path(),
        &["state", "show", "--show-sensitive", "random_password.db"],
    );
    assert!(
        text(&revealed.stdout).contains("result"),
        "{}",
        both(&revealed)
    );

    // A change made while the state is in S3, then back to the local file,
    // which is now older: refused unless forced, then everything is there.
    support::write(
        dir.path(),
        "main.infra",
        &format!("{s3}{resources}\nresource random_id b {{\n  byte_length = 2\n}}\n"),
    );
    let grown = keyed(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert!(grown.status.success(), "{}", both(&grown));
    let in_s3 = listed(&moto);
    assert_eq!(in_s3.lines().count(), 5, "{in_s3}");
    support::write(
        dir.path(),
        "main.infra",
        &format!("{resources}\nresource random_id b {{\n  byte_length = 2\n}}\n"),
    );
    let older = keyed(&moto, dir.path(), &["init", "--migrate-state"]);
    assert_eq!(older.status.code(), Some(1), "{}", both(&older));
    assert!(
        both(&older).contains("already holds a state"),
        "{}",
        both(&older)
    );
    let back = keyed(
        &moto,
        dir.path(),
        &["init", "--migrate-state", "--force-copy"],
    );
    assert!(back.status.success(), "{}", both(&back));
    assert_eq!(
        listed(&moto),
        in_s3,
        "every resource is back in the local file"
    );
    let local = std::fs::read_to_string(dir.path().join("infra.state.json")).unwrap();
    assert!(
        local.contains("random_id.b") && local.contains("\"encrypted\""),
        "{local}"
    );
    let clean = keyed(&moto, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
}

/// Two `apply` processes started together on one S3 state: exactly one
/// takes the lock and applies; the other stops at once, naming the holder.
#[test]
fn two_applies_racing_on_an_s3_state_one_wins_the_other_names_it() {
    let moto = Moto::start();
    bucket(&moto, "team-states");
    let dir = tempfile::tempdir().unwrap();
    // Enough work that the winner still holds the lock when the other asks.
    let config = S3_STATE.replace("byte_length = 4", "byte_length = 4\n  count       = 400");
    support::write(dir.path(), "main.infra", &config);
    let start = || {
        command(&moto, dir.path(), &["apply", "--auto-approve"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("infra starts")
    };
    let (first, second) = (start(), start());
    let outcomes = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let winners = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        winners,
        1,
        "{}\n---\n{}",
        both(&outcomes[0]),
        both(&outcomes[1])
    );
    let loser = outcomes.iter().find(|o| !o.status.success()).unwrap();
    // 3: the lock is another run's (docs/ci.md), so a job can retry.
    assert_eq!(loser.status.code(), Some(3), "{}", both(loser));
    let said = both(loser);
    assert!(said.contains("the state is locked by"), "{said}");
    assert!(said.contains("`apply`") || said.contains("apply"), "{said}");
    // The winner's work is whole: nothing left to do.
    let clean = infra(&moto, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    let listed = infra(&moto, dir.path(), &["state", "list"]);
    assert_eq!(text(&listed.stdout).lines().count(), 400);
}

/// A KMS HMAC key (`HMAC_256`, `GENERATE_VERIFY_MAC`) with `alias`, made
/// through the SDK.
fn hmac_key(moto: &Moto, alias: &str) {
    use infra_provider_aws::aws_sdk_kms::{self, types};
    let runtime = runtime();
    runtime.block_on(async {
        let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
        let created = kms
            .create_key()
            .key_spec(types::KeySpec::Hmac256)
            .key_usage(types::KeyUsageType::GenerateVerifyMac)
            .send()
            .await
            .expect("an HMAC key");
        let id = created.key_metadata().unwrap().key_id().to_string();
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(id)
            .send()
            .await
            .expect("an alias");
    });
}

/// `backend local { kms_key_id = … }`: the state is sealed with the key
/// KMS gives (no INFRA_STATE_KEY anywhere), opens on the next run, is
/// refused under another KMS key, and moves to a new KMS key with
/// `previous_kms_key_id` and `infra state rekey`.
#[test]
fn secrets_are_sealed_with_a_key_from_kms() {
    let moto = Moto::start();
    hmac_key(&moto, "alias/infra-state");
    hmac_key(&moto, "alias/infra-state-2");
    let dir = tempfile::tempdir().unwrap();
    let config = |backend: &str| {
        format!(
            "backend local {{\n{backend}}}\n\nresource random_password db {{\n  length = 20\n}}\n\noutput password {{\n  value = random_password.db.result\n}}\n"
        )
    };
    support::write(
        dir.path(),
        "main.infra",
        &config("  kms_key_id = \"alias/infra-state\"\n"),
    );
    let applied = infra(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", both(&applied));
    let state_path = dir.path().join("infra.state.json");
    let sealed = std::fs::read_to_string(&state_path).unwrap();
    assert!(sealed.contains("\"encrypted\""), "{sealed}");
    let revealed = infra(
        &moto,
        dir.path(),
        &["output", "--show-sensitive", "--json", "password"],
    );
    let secret: String =
        serde_json::from_slice(&revealed.stdout).unwrap_or_else(|_| panic!("{}", both(&revealed)));
    assert_eq!(secret.len(), 20);
    assert!(!sealed.contains(&secret));
    let clean = infra(&moto, dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
    let again = infra(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert!(again.status.success(), "{}", both(&again));
    assert_eq!(
        std::fs::read_to_string(&state_path).unwrap(),
        sealed,
        "same key, same bytes"
    );

    // Another KMS key does not open it, and nothing is written.
    support::write(
        dir.path(),
        "main.infra",
        &config("  kms_key_id = \"alias/infra-state-2\"\n"),
    );
    let refused = infra(&moto, dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        both(&refused).contains("not the configured key"),
        "{}",
        both(&refused)
    );
    assert_eq!(std::fs::read_to_string(&state_path).unwrap(), sealed);

    // Rotation: the old KMS key as the previous one, then rekey.
    support::write(
        dir.path(),
        "main.infra",
        &config(
            "  kms_key_id          = \"alias/infra-state-2\"\n  previous_kms_key_id = \"alias/infra-state\"\n",
        ),
    );
    let rekeyed = infra(&moto, dir.path(), &["state", "rekey"]);
    assert!(rekeyed.status.success(), "{}", both(&rekeyed));
    support::write(
        dir.path(),
        "main.infra",
        &config("  kms_key_id = \"alias/infra-state-2\"\n"),
    );
    let opened = infra(
        &moto,
        dir.path(),
        &["output", "--show-sensitive", "--json", "password"],
    );
    let after: String =
        serde_json::from_slice(&opened.stdout).unwrap_or_else(|_| panic!("{}", both(&opened)));
    assert_eq!(after, secret, "the same secret, under the new key");
    assert_ne!(std::fs::read_to_string(&state_path).unwrap(), sealed);

    // A key that is not an HMAC key is a clear error.
    support::write(
        dir.path(),
        "main.infra",
        &config("  kms_key_id = \"alias/missing\"\n"),
    );
    let missing = infra(&moto, dir.path(), &["plan"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        both(&missing).contains("KMS GenerateMac with `alias/missing`"),
        "{}",
        both(&missing)
    );
}

/// The example GitHub pipelines with an AWS configuration, against moto:
/// the main job applies the saved plan and pushes the state, a tag changed
/// in the console makes the drift job exit 2 with a report naming `tags`,
/// and the next apply repairs it.
#[test]
fn the_github_pipelines_apply_and_catch_drift_on_moto() {
    use crate::pipelines::{Repository, all_passed, load, read, run_github_job};
    let moto = Moto::start();
    let runtime = runtime();
    let ec2 = runtime.block_on(client(&moto));
    let config = "backend local {\n  encryption = \"none\"\n}\n\nresource aws_vpc main {\n  cidr_block = \"10.20.0.0/16\"\n  tags       = { Name = \"ci\", Team = \"platform\" }\n}\n";
    let environment = moto
        .environment()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let repository = Repository::with(config, environment);
    let apply = load("examples/ci/github/infra-apply.yml");
    let drift = load("examples/ci/github/infra-drift.yml");
    for job in ["plan", "apply"] {
        let steps = run_github_job(&apply, job, &repository);
        assert!(all_passed(&steps), "{job}: {steps:#?}");
    }
    let state = repository.pushed_state();
    let vpc = state["resources"]["aws_vpc.main"]["attributes"]["id"]
        .as_str()
        .expect("the VPC in the pushed state")
        .to_string();
    assert!(all_passed(&run_github_job(&drift, "drift", &repository)));

    runtime
        .block_on(
            ec2.create_tags()
                .resources(&vpc)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Team")
                        .value("someone-else")
                        .build(),
                )
                .send(),
        )
        .unwrap();
    let drifted = run_github_job(&drift, "drift", &repository);
    assert_eq!(drifted.last().unwrap().code, 2, "{drifted:#?}");
    let report = read(&repository.temp.join("drift.md"));
    assert!(
        report.contains("| `aws_vpc.main` | changed | `tags`"),
        "{report}"
    );
    assert!(
        report.contains("- tags.Team = \"platform\"\n+ tags.Team = \"someone-else\""),
        "{report}"
    );

    for job in ["plan", "apply"] {
        assert!(all_passed(&run_github_job(&apply, job, &repository)));
    }
    let repaired = run_github_job(&drift, "drift", &repository);
    assert!(all_passed(&repaired), "{repaired:#?}");
}
