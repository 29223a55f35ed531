//! Rollouts on AWS: `deployment { provider = aws }` through the `infra`
//! binary against moto, checked through the AWS SDK.
//!
//! Every change the fleet makes is written to `INFRA_AWS_CALL_LOG` (one
//! JSON line per call AWS took); the tests replay that log from what moto
//! held before the apply and check the strategy's invariants after *every*
//! call — the instances registered in a target group the listener sends
//! requests to never fewer than `replicas - max_unavailable`, blue/green
//! switching in one `ModifyListener` to a full green pool. moto reports a
//! registered running instance healthy and a deregistered one gone at
//! once, so "registered and running" is what the load balancer serves
//! from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;

use crate::aws::{client, command, elb};
use crate::moto::Moto;
use crate::support::{both, runtime, text};
use infra_provider_aws::aws_sdk_cloudwatch;

const EXAMPLE: &str = include_str!("../../examples/aws-canary/main.infra");
const ADDRESS: &str = "deployment.web";

/// The example's strategy block, to swap for another strategy.
fn canary_block() -> &'static str {
    let start = EXAMPLE.find("  strategy canary {").unwrap();
    let end = start + EXAMPLE[start..].find("\n  }\n").unwrap() + "\n  }\n".len();
    &EXAMPLE[start..end]
}

/// The example with `strategy` instead of its canary.
fn with_strategy(strategy: &str) -> String {
    EXAMPLE.replace(canary_block(), strategy)
}

/// Short pauses: moto answers at once.
const FAST: &[&str] = &[
    "-var",
    "step_pause=3s",
    "-var",
    "analysis_interval=1s",
    "-var",
    "min_ready=0s",
];

struct Project {
    moto: Moto,
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Project {
    fn new(config: &str) -> Project {
        let project = Project {
            moto: Moto::start(),
            dir: tempfile::tempdir().unwrap(),
            runtime: runtime(),
        };
        project.write(config);
        project
    }

    fn write(&self, config: &str) {
        std::fs::write(self.dir.path().join("main.infra"), config).unwrap();
    }

    fn log(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.calls.jsonl"))
    }

    /// `infra ARGS` with the fast settings, the change log in `log`.
    fn run(&self, log: &str, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        if matches!(args.first(), Some(&"apply" | &"plan" | &"rollout")) {
            all.extend(FAST);
        }
        command(&self.moto, self.dir.path(), &all)
            .env("INFRA_AWS_CALL_LOG", self.log(log))
            .output()
            .expect("run infra")
    }

    fn apply(&self, log: &str, version: &str) -> std::process::Output {
        self.run(
            log,
            &[
                "apply",
                "--auto-approve",
                "-var",
                &format!("app_version={version}"),
            ],
        )
    }

    fn state(&self) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.dir.path().join("infra.state.json")).unwrap(),
        )
        .unwrap()
    }

    fn id(&self, address: &str) -> String {
        self.state()["resources"][address]["attributes"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{address} in the state"))
            .to_string()
    }

    fn recorded_instances(&self) -> BTreeSet<String> {
        self.state()["resources"][ADDRESS]["attributes"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// The running (or starting) instances tagged with the deployment's
    /// address, by id → `infra:version` tag.
    fn running(&self) -> BTreeMap<String, String> {
        let ec2 = self.runtime.block_on(client(&self.moto));
        let described = self
            .runtime
            .block_on(
                ec2.describe_instances()
                    .filters(
                        infra_provider_aws::aws_sdk_ec2::types::Filter::builder()
                            .name("tag:infra:address")
                            .values(ADDRESS)
                            .build(),
                    )
                    .filters(
                        infra_provider_aws::aws_sdk_ec2::types::Filter::builder()
                            .name("instance-state-name")
                            .values("pending")
                            .values("running")
                            .build(),
                    )
                    .send(),
            )
            .unwrap();
        described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let version = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("infra:release"))
                    .and_then(|t| t.value())
                    .unwrap_or_default();
                (i.instance_id().unwrap().to_string(), version.to_string())
            })
            .collect()
    }

    /// The listener's weights, by target group ARN.
    fn weights(&self) -> BTreeMap<String, i64> {
        let elb = self.runtime.block_on(elb(&self.moto));
        let listener = self.id("aws_lb_listener.http");
        let described = self
            .runtime
            .block_on(elb.describe_listeners().listener_arns(listener).send())
            .unwrap();
        described.listeners()[0].default_actions()[0]
            .forward_config()
            .unwrap()
            .target_groups()
            .iter()
            .map(|t| {
                (
                    t.target_group_arn().unwrap().to_string(),
                    i64::from(t.weight().unwrap_or(1)),
                )
            })
            .collect()
    }

    /// The targets of a target group.
    fn targets(&self, group: &str) -> BTreeSet<String> {
        let elb = self.runtime.block_on(elb(&self.moto));
        let described = self
            .runtime
            .block_on(elb.describe_target_health().target_group_arn(group).send())
            .unwrap();
        described
            .target_health_descriptions()
            .iter()
            .map(|d| d.target().unwrap().id().unwrap().to_string())
            .collect()
    }

    fn groups(&self) -> (String, String) {
        (
            self.id("aws_lb_target_group.blue"),
            self.id("aws_lb_target_group.green"),
        )
    }

    /// What the load balancer holds now: the targets of each group, the
    /// weights, the running instances — where a replay starts.
    fn snapshot(&self) -> Replay {
        let (blue, green) = self.groups();
        Replay {
            registered: BTreeMap::from([
                (blue.clone(), self.targets(&blue)),
                (green.clone(), self.targets(&green)),
            ]),
            weights: self.weights(),
            running: self.running().into_keys().collect(),
            max_running: 0,
            min_serving: usize::MAX,
            switches: Vec::new(),
        }
    }
}

/// One call of a change log.
fn calls(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn ids(call: &Value) -> Vec<String> {
    call["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// The load balancer as a change log leaves it, call after call.
#[derive(Debug)]
struct Replay {
    registered: BTreeMap<String, BTreeSet<String>>,
    weights: BTreeMap<String, i64>,
    running: BTreeSet<String>,
    /// The most instances running at once.
    max_running: usize,
    /// The fewest instances serving (registered, running, in a target group
    /// with weight > 0) after any call.
    min_serving: usize,
    /// For each `ModifyListener` that changed which groups get requests:
    /// the groups that got them before, after, and how many instances
    /// each one that gets them now held.
    switches: Vec<(BTreeSet<String>, BTreeSet<String>, Vec<usize>)>,
}

impl Replay {
    fn serving_groups(&self) -> BTreeSet<String> {
        self.weights
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(g, _)| g.clone())
            .collect()
    }

    fn serving(&self) -> usize {
        self.serving_groups()
            .iter()
            .map(|g| {
                self.registered
                    .get(g)
                    .map_or(0, |t| t.intersection(&self.running).count())
            })
            .sum()
    }

    /// Applies one call, then checks `at_least` serve.
    fn step(&mut self, call: &Value, at_least: usize) {
        match call["call"].as_str().unwrap() {
            "RunInstances" => self.running.extend(ids(call)),
            "TerminateInstances" => {
                for id in ids(call) {
                    self.running.remove(&id);
                }
            }
            "RegisterTargets" => self
                .registered
                .entry(call["target_group"].as_str().unwrap().to_string())
                .or_default()
                .extend(ids(call)),
            "DeregisterTargets" => {
                let group = self
                    .registered
                    .entry(call["target_group"].as_str().unwrap().to_string())
                    .or_default();
                for id in ids(call) {
                    group.remove(&id);
                }
            }
            "ModifyListener" => {
                let before = self.serving_groups();
                self.weights = call["weights"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(g, w)| (g.clone(), w.as_i64().unwrap()))
                    .collect();
                let after = self.serving_groups();
                if before != after {
                    let sizes = after
                        .iter()
                        .map(|g| {
                            self.registered
                                .get(g)
                                .map_or(0, |t| t.intersection(&self.running).count())
                        })
                        .collect();
                    self.switches.push((before, after, sizes));
                }
            }
            // Header routes: what the canary's rule matches is checked
            // through the SDK; no capacity changes.
            "CreateRule" | "DeleteRule" => {}
            other => panic!("an unexpected call in the log: {other}"),
        }
        self.max_running = self.max_running.max(self.running.len());
        let serving = self.serving();
        self.min_serving = self.min_serving.min(serving);
        assert!(
            serving >= at_least,
            "after {call}: {serving} instance(s) serve, fewer than {at_least}\n{self:#?}"
        );
    }

    fn replay(mut self, log: &Path, at_least: usize) -> Replay {
        let calls = calls(log);
        assert!(!calls.is_empty(), "nothing in {}", log.display());
        for call in &calls {
            self.step(call, at_least);
        }
        self
    }
}

/// Puts ALB metrics for the two target groups into moto's CloudWatch
/// every 100 ms, as a load balancer under load would: 100 requests each
/// time, and for the green group `green_errors` of them 5xx.
struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(project: &Project, green_errors: Arc<AtomicU64>) -> Load {
        let (blue, green) = project.groups();
        let load_balancer = project.id("aws_lb.web");
        let stop = Arc::new(AtomicBool::new(false));
        let config = project.runtime.block_on(project.moto.sdk_config());
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = runtime();
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
            let dimension = |arn: &str, after: &str| {
                arn.split_once(after)
                    .map(|(_, rest)| rest.to_string())
                    .unwrap()
            };
            let lb = dimension(&load_balancer, ":loadbalancer/");
            while !stopping.load(Ordering::SeqCst) {
                for (group, errors) in [
                    (&blue, 0.0),
                    (&green, green_errors.load(Ordering::SeqCst) as f64),
                ] {
                    let tg = format!("targetgroup/{}", dimension(group, ":targetgroup/"));
                    let datum = |name: &str, value: f64| {
                        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
                        MetricDatum::builder()
                            .metric_name(name)
                            .dimensions(Dimension::builder().name("TargetGroup").value(&tg).build())
                            .dimensions(
                                Dimension::builder().name("LoadBalancer").value(&lb).build(),
                            )
                            .value(value)
                            .timestamp(std::time::SystemTime::now().into())
                            .build()
                    };
                    runtime
                        .block_on(
                            cloudwatch
                                .put_metric_data()
                                .namespace("AWS/ApplicationELB")
                                .metric_data(datum("RequestCount", 100.0))
                                .metric_data(datum("HTTPCode_Target_5XX_Count", errors))
                                .send(),
                        )
                        .expect("PutMetricData");
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_canary_on_aws_is_rolled_back_by_cloudwatch_and_a_good_one_promoted() {
    let project = Project::new(EXAMPLE);
    let first = project.apply("v1", "v1");
    assert!(first.status.success(), "{}", both(&first));
    let (blue, green) = project.groups();
    let v1: BTreeSet<String> = project.running().into_keys().collect();
    assert_eq!(v1.len(), 4, "{}", both(&first));
    assert_eq!(project.targets(&blue), v1, "v1 serves from the first group");
    assert_eq!(project.recorded_instances(), v1);
    // The instances are spread over both subnets (both zones).
    let zones: BTreeSet<String> = project.state()["resources"][ADDRESS]["attributes"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["availability_zone"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(zones.len(), 2, "{zones:?}");
    let clean = project.run("v1", &["plan", "-detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    let plan = project.run("plan", &["plan", "-var", "app_version=v2"]);
    assert!(
        text(&plan.stdout).contains("25%") && text(&plan.stdout).contains("50%"),
        "the plan shows the canary's steps:\n{}",
        both(&plan)
    );

    // A bad v2: half of the canary's answers are 5xx in CloudWatch.
    let green_errors = Arc::new(AtomicU64::new(50));
    let load = Load::start(&project, green_errors.clone());
    let before = project.snapshot();
    let bad = project.apply("bad", "v2");
    assert_eq!(bad.status.code(), Some(1), "{}", both(&bad));
    let said = both(&bad);
    assert!(
        said.contains("is above max_error_rate 0.01") && said.contains("rolled back"),
        "{said}"
    );
    let replay = before.replay(&project.log("bad"), 4);
    // The canary took a quarter of the requests, then all went back.
    assert_eq!(
        replay.switches.first().map(|s| s.1.clone()),
        Some(BTreeSet::from([blue.clone(), green.clone()])),
        "{replay:#?}"
    );
    assert_eq!(
        project.weights(),
        BTreeMap::from([(blue.clone(), 100), (green.clone(), 0)]),
        "the weights are back to 100/0"
    );
    assert!(
        project.targets(&green).is_empty(),
        "the canary group is empty"
    );
    assert_eq!(
        project.running().into_keys().collect::<BTreeSet<_>>(),
        v1,
        "the canary instances are terminated, v1 serves"
    );
    assert_eq!(project.recorded_instances(), v1);

    // A good v2: promoted, step after step.
    green_errors.store(0, Ordering::SeqCst);
    let before = project.snapshot();
    let good = project.apply("good", "v2");
    assert!(good.status.success(), "{}", both(&good));
    drop(load);
    let replay = before.replay(&project.log("good"), 4);
    let weights: Vec<i64> = calls(&project.log("good"))
        .iter()
        .filter(|c| c["call"] == "ModifyListener")
        .map(|c| c["weights"][&green].as_i64().unwrap())
        .collect();
    assert_eq!(weights, [0, 25, 50, 100], "{replay:#?}");
    assert!(replay.max_running <= 8, "{replay:#?}");
    let running = project.running();
    assert_eq!(running.len(), 4);
    assert!(running.values().all(|v| v == "v2"), "{running:?}");
    assert_eq!(
        project.targets(&green),
        running.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert!(project.targets(&blue).is_empty());
    assert_eq!(project.weights(), BTreeMap::from([(blue, 0), (green, 100)]));
    assert_eq!(
        project.recorded_instances(),
        running.into_keys().collect::<BTreeSet<_>>()
    );
    let clean = project.run(
        "after",
        &["plan", "-detailed-exitcode", "-var", "app_version=v2"],
    );
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));

    let destroyed = project.run("destroy", &["destroy", "--auto-approve"]);
    assert!(destroyed.status.success(), "{}", both(&destroyed));
    assert!(project.running().is_empty(), "destroy terminates the fleet");
}

#[test]
fn rolling_and_blue_green_on_aws_keep_capacity_at_every_call() {
    let rolling = "  strategy rolling {\n    max_surge       = 1\n    max_unavailable = 0\n  }\n";
    let project = Project::new(&with_strategy(rolling));
    let first = project.apply("v1", "v1");
    assert!(first.status.success(), "{}", both(&first));
    let (blue, green) = project.groups();
    let v1: BTreeSet<String> = project.running().into_keys().collect();
    assert_eq!(v1.len(), 4);

    // Rolling: one new instance at a time, registered before an old one
    // goes; never fewer than 4 serving, never more than 5 running.
    let before = project.snapshot();
    let v2 = project.apply("rolling", "v2");
    assert!(v2.status.success(), "{}", both(&v2));
    let replay = before.replay(&project.log("rolling"), 4);
    assert_eq!(replay.max_running, 5, "{replay:#?}");
    assert!(
        replay.switches.is_empty(),
        "rolling does not touch the listener"
    );
    let running = project.running();
    assert!(running.values().all(|v| v == "v2") && running.len() == 4);
    assert_eq!(
        project.targets(&blue),
        running.keys().cloned().collect::<BTreeSet<_>>()
    );
    let launches: Vec<usize> = calls(&project.log("rolling"))
        .iter()
        .filter(|c| c["call"] == "RunInstances")
        .map(|c| ids(c).len())
        .collect();
    assert_eq!(launches, [1, 1, 1, 1], "one at a time (max_surge 1)");

    // Blue/green: green filled and healthy at weight 0, then all requests
    // switched in one call, then blue deregistered.
    project.write(&with_strategy(
        "  strategy blue_green {\n    keep_blue = \"1s\"\n  }\n",
    ));
    let before = project.snapshot();
    let v3 = project.apply("blue_green", "v3");
    assert!(v3.status.success(), "{}", both(&v3));
    let replay = before.replay(&project.log("blue_green"), 4);
    assert_eq!(
        replay.switches,
        [(
            BTreeSet::from([blue.clone()]),
            BTreeSet::from([green.clone()]),
            vec![4]
        )],
        "one switch, to a full green group"
    );
    let log = calls(&project.log("blue_green"));
    let switch = log
        .iter()
        .position(|c| c["call"] == "ModifyListener" && c["weights"][&green] == 100)
        .unwrap();
    let deregistered = log
        .iter()
        .position(|c| c["call"] == "DeregisterTargets")
        .unwrap();
    assert!(
        switch < deregistered,
        "blue stays registered until the switch"
    );
    let running = project.running();
    assert!(running.values().all(|v| v == "v3") && running.len() == 4);
    assert_eq!(
        project.targets(&green),
        running.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert!(project.targets(&blue).is_empty());
    let clean = project.run(
        "after",
        &["plan", "-detailed-exitcode", "-var", "app_version=v3"],
    );
    assert_eq!(clean.status.code(), Some(0), "{}", both(&clean));
}

#[test]
fn a_fleet_on_aws_survives_out_of_band_terminations_and_kill_9() {
    let rolling = "  strategy rolling {\n    max_surge = 2\n  }\n";
    let project = Project::new(&with_strategy(rolling));
    let first = project.apply("v1", "v1");
    assert!(first.status.success(), "{}", both(&first));
    let v1: BTreeSet<String> = project.running().into_keys().collect();

    // One instance terminated behind infra's back: drift, and the next
    // apply launches exactly one.
    let victim = v1.iter().next().unwrap().clone();
    let ec2 = project.runtime.block_on(client(&project.moto));
    project
        .runtime
        .block_on(ec2.terminate_instances().instance_ids(&victim).send())
        .unwrap();
    let drift = project.run("drift", &["drift", "-var", "app_version=v1"]);
    assert_eq!(drift.status.code(), Some(2), "{}", both(&drift));
    assert!(text(&drift.stdout).contains(ADDRESS), "{}", both(&drift));
    let repaired = project.apply("repair", "v1");
    assert!(repaired.status.success(), "{}", both(&repaired));
    let launched: Vec<Vec<String>> = calls(&project.log("repair"))
        .iter()
        .filter(|c| c["call"] == "RunInstances")
        .map(ids)
        .collect();
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert_eq!(launched[0].len(), 1, "{launched:?}");
    let now: BTreeSet<String> = project.running().into_keys().collect();
    let kept: BTreeSet<String> = v1.iter().filter(|i| **i != victim).cloned().collect();
    assert!(now.is_superset(&kept) && now.len() == 4, "{now:?}");
    assert_eq!(project.recorded_instances(), now);

    // kill -9 in the middle of a rollout: once it has launched new
    // instances and registered them. The next apply finishes it, with no
    // instance doubled or orphaned.
    let log = project.log("killed");
    let mut child = command(
        &project.moto,
        project.dir.path(),
        &[
            "apply",
            "--auto-approve",
            "-var",
            "app_version=v2",
            "-var",
            "min_ready=2s",
        ],
    )
    .env("INFRA_AWS_CALL_LOG", &log)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !calls(&log).iter().any(|c| c["call"] == "RegisterTargets") {
        assert!(std::time::Instant::now() < deadline, "no rollout started");
        assert!(child.try_wait().unwrap().is_none(), "the apply ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let launched: usize = calls(&log)
        .iter()
        .filter(|c| c["call"] == "RunInstances")
        .map(|c| ids(c).len())
        .sum();
    assert!(launched > 0);
    let resumed = project.apply("resumed", "v2");
    assert!(resumed.status.success(), "{}", both(&resumed));
    let running = project.running();
    assert_eq!(running.len(), 4, "{running:?}");
    assert!(running.values().all(|v| v == "v2"), "{running:?}");
    assert_eq!(
        project.recorded_instances(),
        running.keys().cloned().collect::<BTreeSet<_>>(),
        "every running instance with the deployment's tag is in the state"
    );
    // The instances the killed apply launched were taken over, not
    // launched again beside them.
    let relaunched: usize = calls(&project.log("resumed"))
        .iter()
        .filter(|c| c["call"] == "RunInstances")
        .map(|c| ids(c).len())
        .sum();
    assert_eq!(
        launched + relaunched,
        4,
        "launched {launched}, then {relaunched}"
    );
}

#[test]
fn refresh_of_a_hundred_instance_fleet_takes_a_handful_of_calls() {
    let config = with_strategy("").replace("replicas      = 4", "replicas      = 100");
    let project = Project::new(&config);
    let applied = project.apply("v1", "v1");
    assert!(applied.status.success(), "{}", both(&applied));
    assert_eq!(project.running().len(), 100);

    let state = project.state();
    let lineage = state["lineage"].as_str().unwrap().to_string();
    let recorded = state["resources"][ADDRESS]["attributes"]
        .as_object()
        .unwrap()
        .clone()
        .into_iter()
        .collect();
    let provider = infra_provider_aws::AwsProvider::with_settings(infra_provider_aws::Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(project.moto.endpoint.clone()),
        max_attempts: 1,
        static_credentials: Some(("testing".into(), "testing".into())),
    });
    use infra_provider_sdk::Provider as _;
    let read = project
        .runtime
        .block_on(provider.read(infra_provider_sdk::ReadRequest {
            type_name: "aws_deployment".into(),
            identity: infra_provider_sdk::ObjectIdentity {
                address: ADDRESS.into(),
                lineage,
            },
            state: recorded,
        }));
    let refreshed = read.unwrap().state.unwrap();
    assert_eq!(refreshed["replicas"], 100);
    assert_eq!(refreshed["instances"].as_array().unwrap().len(), 100);
    let calls = project.runtime.block_on(provider.calls());
    let total: u64 = calls.values().sum();
    eprintln!("refresh of a 100-instance fleet: {total} calls {calls:?}");
    assert!(total <= 5, "{calls:?}");
}

#[test]
fn a_canary_step_for_chosen_customers_is_a_listener_rule_on_aws() {
    let strategy = "  strategy canary {\n    steps = [{ match = { header = \"X-Org\", values = [\"initech\", \"acme\"] }, pause = \"forever\" }]\n  }\n";
    let project = Project::new(&with_strategy(strategy));
    let first = project.apply("v1", "v1");
    assert!(first.status.success(), "{}", both(&first));
    let (blue, green) = project.groups();
    let listener = project.id("aws_lb_listener.http");
    let elb = project.runtime.block_on(elb(&project.moto));
    let rules = || {
        let described = project
            .runtime
            .block_on(elb.describe_rules().listener_arn(&listener).send())
            .unwrap();
        described
            .rules()
            .iter()
            .filter(|r| r.is_default() != Some(true))
            .map(|r| {
                let header = r.conditions()[0].http_header_config().unwrap();
                let mut values = header.values().to_vec();
                values.sort();
                (
                    header.http_header_name().unwrap().to_string(),
                    values,
                    r.actions()[0].target_group_arn().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(rules().is_empty());

    // At the gate: a rule sends X-Org: acme or initech to the canary's
    // group, and no share by weight.
    let gated = project.apply("gated", "v2");
    assert!(gated.status.success(), "{}", both(&gated));
    assert_eq!(
        rules(),
        [(
            "X-Org".to_string(),
            vec!["acme".to_string(), "initech".to_string()],
            green.clone()
        )]
    );
    assert_eq!(
        project.weights(),
        BTreeMap::from([(blue.clone(), 100), (green.clone(), 0)])
    );
    assert!(
        !project.targets(&green).is_empty(),
        "the canary serves its customers"
    );

    // Promoted: the rule is gone, all requests to the new version.
    let promoted = project.run(
        "promote",
        &["rollout", "promote", ADDRESS, "-var", "app_version=v2"],
    );
    assert!(promoted.status.success(), "{}", both(&promoted));
    assert!(rules().is_empty(), "{:?}", rules());
    assert_eq!(project.weights(), BTreeMap::from([(blue, 0), (green, 100)]));
    let running = project.running();
    assert!(
        running.len() == 4 && running.values().all(|v| v == "v2"),
        "{running:?}"
    );
}
