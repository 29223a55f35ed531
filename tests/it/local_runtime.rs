//! The local runtime through the real binary: `examples/local-web` (a
//! `local_lb` and a deployment of demo-app) applied, answered through the
//! load balancer, drifted by killing processes, repaired, rolled to a new
//! version under load, scaled, and destroyed. Every process a test starts
//! runs in the test's directory; whatever is left there is killed when the
//! test ends, pass or fail.

use crate::support::{self, stored_state};

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use infra_provider_local::runtime::http;
use infra_provider_local::runtime::process::ProcessId;
use serde_json::Value;
use support::*;

/// A copy of an example in a temporary directory, whose processes are
/// killed on drop.
pub(crate) struct Workspace {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        for pid in processes_under(self.dir.path()) {
            // A process running in this test's own directory.
            signal(pid, true, Signal::KILL);
            signal(pid, false, Signal::KILL);
        }
    }
}

/// The demo-app processes among [`processes_under`] `dir` (not infra
/// itself, nor its load balancer).
fn demo_apps_under(dir: &Path) -> usize {
    processes_under(dir)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == "demo-app")
        })
        .count()
}

/// Live processes whose working directory is `dir` or inside it.
pub(crate) fn processes_under(dir: &Path) -> Vec<i32> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cwd: Option<PathBuf> = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state
                .rfind(')')
                .is_some_and(|at| state[at + 2..].starts_with('Z'));
            !zombie && cwd.is_some_and(|cwd| cwd.starts_with(&dir))
        })
        .collect()
}

impl Workspace {
    pub(crate) fn new(example: &str) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(example),
            dir.path(),
        );
        // infra adds its runtime directory to .gitignore itself.
        let _ = std::fs::remove_file(dir.path().join(".gitignore"));
        Workspace {
            dir,
            port: free_port(),
        }
    }

    /// `infra ARGS` in the copy, with its demo-app and port.
    pub(crate) fn infra_command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut command = command(Some(self.dir.path()), args);
        command
            .arg("-var")
            .arg(format!("demo_app={}", *DEMO_APP))
            .arg("-var")
            .arg(format!("port={}", self.port))
            .env("NO_COLOR", "1");
        for (name, value) in vars {
            command.arg("-var").arg(format!("{name}={value}"));
        }
        command
    }

    pub(crate) fn infra(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        self.infra_command(args, vars).output().unwrap()
    }

    pub(crate) fn apply(&self, vars: &[(&str, &str)]) -> String {
        let output = self.infra(&["apply", "--auto-approve"], vars);
        let text = both(&output);
        assert!(output.status.success(), "apply failed:\n{text}");
        text
    }

    /// `infra apply` of `config` (as `main.infra`) that must fail with
    /// exit 1 and say each of `expected`; its output.
    pub(crate) fn failed_apply(&self, config: &str, expected: &[&str]) -> String {
        std::fs::write(self.dir.path().join("main.infra"), config).unwrap();
        let output = self.infra(&["apply", "--auto-approve"], &[]);
        let text = both(&output);
        assert_eq!(output.status.code(), Some(1), "{text}");
        for part in expected {
            assert!(text.contains(part), "{part}\n{text}");
        }
        text
    }

    /// Writes `main.infra`: `replicas` demo-apps with `env` (the inside of
    /// the map), quick to become ready and to drain, and `strategy`.
    pub(crate) fn write_fleet(&self, replicas: usize, env: &str, strategy: &str) {
        let settings = format!("min_ready = \"200ms\"  drain = \"200ms\"\n  {strategy}");
        let config = fleet_config(replicas, &format!("{{ {env} }}"), &settings);
        std::fs::write(self.dir.path().join("main.infra"), config).unwrap();
    }

    /// The demo-app processes running in the copy.
    pub(crate) fn demo_apps(&self) -> usize {
        demo_apps_under(self.dir.path())
    }

    pub(crate) fn plan(&self, vars: &[(&str, &str)]) -> String {
        both(&self.infra(&["plan"], vars))
    }

    pub(crate) fn state(&self) -> Value {
        stored_state(&self.dir.path().join("infra.state.json"))
    }

    pub(crate) fn instances(&self) -> Vec<(String, ProcessId)> {
        self.instances_of("deployment.web")
    }

    /// The instances the state records for the deployment at `address`.
    pub(crate) fn instances_of(&self, address: &str) -> Vec<(String, ProcessId)> {
        self.state()["resources"][address]["attributes"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    ProcessId::from_json(i.get("pid"), i.get("started")).unwrap(),
                )
            })
            .collect()
    }

    pub(crate) fn lb_process(&self) -> ProcessId {
        let lb = &self.state()["resources"]["local_lb.front"]["attributes"];
        ProcessId::from_json(lb.get("pid"), lb.get("started")).unwrap()
    }

    /// The admin API of the copy's running load balancer.
    pub(crate) fn admin(&self) -> infra_provider_local::load_balancer::AdminApi {
        let runtime = infra_provider_local::runtime::RuntimeDir::new(self.dir.path());
        infra_provider_local::load_balancer::AdminApi::find(&runtime, &self.listen())
            .expect("the load balancer runs")
    }

    pub(crate) fn listen(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

async fn get(addr: &str) -> String {
    http::get(addr, "/", Duration::from_secs(10))
        .await
        .unwrap()
        .text()
}

pub(crate) fn kill(id: ProcessId) {
    assert!(id.is_running());
    // A process this test's apply started (checked by start time).
    signal(id.pid, false, Signal::KILL);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while id.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {} survived SIGKILL",
            id.pid
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Load through `listen` in rounds of `round` requests (4 at a time)
/// until `stop` is set; bounded by the caller's rollout.
pub(crate) async fn load_until(
    listen: String,
    round: usize,
    progress: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> LoadResult {
    let mut total = LoadResult::default();
    while !stop.load(Ordering::Relaxed) {
        let part = load(&listen, "/", round, 4, progress.clone()).await;
        total.answers.extend(part.answers);
        total.errors.extend(part.errors);
    }
    total
}

pub(crate) const CLEAN: &str = "No changes. The infrastructure matches the configuration.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_web_serves_survives_kills_rolls_without_errors_and_is_destroyed() {
    let work = Workspace::new("local-web");
    let listen = work.listen();

    // Apply: a load balancer and three healthy instances behind it.
    let applied = work.apply(&[]);
    assert!(applied.contains("Resources: 2 added"), "{applied}");
    let gitignore = std::fs::read_to_string(work.dir.path().join(".gitignore")).unwrap();
    assert!(gitignore.lines().any(|l| l == ".infra/"), "{gitignore}");
    let instances = work.instances();
    assert_eq!(instances.len(), 3);
    assert!(instances.iter().all(|(_, id)| id.is_running()));
    let answers = load(&listen, "/", 30, 3, Arc::new(AtomicUsize::new(0))).await;
    assert_eq!(answers.failed(), 0);
    for (name, _) in &instances {
        assert!(answers.served_by(name) > 0, "{name} got no traffic");
    }
    assert!(get(&listen).await.starts_with("demo-app v1"));
    assert!(work.plan(&[]).contains(CLEAN));

    // Kill an instance: drift, then apply starts exactly one replacement.
    let (victim, victim_id) = instances[1].clone();
    kill(victim_id);
    let drift = work.infra(&["drift"], &[]);
    assert_eq!(drift.status.code(), Some(2), "{}", both(&drift));
    let plan = work.plan(&[]);
    assert!(plan.contains("~ deployment \"web\""), "{plan}");
    assert!(plan.contains("replicas = 2 -> 3"), "{plan}");
    work.apply(&[]);
    let repaired = work.instances();
    assert_eq!(repaired.len(), 3);
    assert!(repaired.iter().all(|(_, id)| id.is_running()));
    let kept: Vec<_> = repaired.iter().filter(|(_, id)| *id != victim_id).collect();
    assert_eq!(kept.len(), 3, "{victim} was replaced");
    for (name, id) in [&instances[0], &instances[2]] {
        assert!(
            repaired.contains(&(name.clone(), *id)),
            "{name} was left alone"
        );
    }
    assert!(work.plan(&[]).contains(CLEAN));

    // A new version under load: instances replaced one by one, 0 failures.
    let progress = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load_until(
        listen.clone(),
        200,
        progress.clone(),
        stop.clone(),
    ));
    let rolled = work.apply(&[("app_version", "v2")]);
    let served_during = progress.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let during = running.await.unwrap();
    assert!(rolled.contains("1 changed"), "{rolled}");
    assert!(
        served_during > 100,
        "only {served_during} requests during the rollout"
    );
    during.assert_none_failed("the rollout");
    let v2 = work.instances();
    assert_eq!(v2.len(), 3);
    assert!(
        repaired.iter().all(|(_, id)| !id.is_running()),
        "old instances stopped"
    );
    let after = load(&listen, "/", 30, 3, Arc::new(AtomicUsize::new(0))).await;
    assert!(
        after
            .answers
            .iter()
            .all(|(status, body)| *status == 200 && body.starts_with("demo-app v2"))
    );
    assert!(work.plan(&[("app_version", "v2")]).contains(CLEAN));

    // Scale down by one: exactly one instance stops.
    work.apply(&[("app_version", "v2"), ("replicas", "2")]);
    let scaled = work.instances();
    assert_eq!(scaled.len(), 2);
    assert!(scaled.iter().all(|kept| v2.contains(kept)));
    assert_eq!(v2.iter().filter(|(_, id)| id.is_running()).count(), 2);

    // The load balancer dies: re-created, instances registered again.
    let lb = work.lb_process();
    kill(lb);
    let plan = work.plan(&[("app_version", "v2"), ("replicas", "2")]);
    assert!(plan.contains("local_lb.front will be created"), "{plan}");
    work.apply(&[("app_version", "v2"), ("replicas", "2")]);
    assert_eq!(work.instances(), scaled, "the instances were kept");
    assert!(get(&listen).await.starts_with("demo-app v2"));
    assert!(
        work.plan(&[("app_version", "v2"), ("replicas", "2")])
            .contains(CLEAN)
    );

    // Destroy stops every process.
    let lb = work.lb_process();
    let output = work.infra(&["destroy", "--auto-approve"], &[]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(!lb.is_running());
    assert!(scaled.iter().all(|(_, id)| !id.is_running()));
    assert_eq!(processes_under(work.dir.path()), Vec::<i32>::new());
}

/// A load balancer and a deployment `web` of `replicas` demo-apps with
/// `env`, fast health checks, and `timing` (min_ready, deadlines).
fn fleet_config(replicas: usize, env: &str, timing: &str) -> String {
    format!(
        r#"
variable "demo_app" {{ type = string }}
variable "port" {{ type = number }}

resource "local_lb" "front" {{
  listen = "127.0.0.1:${{var.port}}"
}}

deployment web {{
  provider = local
  replicas = {replicas}
  template {{
    command = [var.demo_app, "--port", "{{port}}"]
    env     = {env}
  }}
  load_balancer = local_lb.front
  health {{
    path     = "/healthz"
    interval = "100ms"
  }}
  {timing}
}}
"#
    )
}

#[test]
fn an_instance_that_never_becomes_healthy_fails_the_apply_and_leaves_nothing_running() {
    let work = Workspace::new("local-web");
    work.failed_apply(
        &fleet_config(
            2,
            r#"{ NEVER_HEALTHY = "1" }"#,
            r#"min_ready = "0s"  healthy_deadline = "2s""#,
        ),
        &[
            "was not healthy within healthy_deadline",
            "GET /healthz answered 503",
        ],
    );
    // Its instances were stopped; only the load balancer runs.
    let state = work.state();
    assert!(state["resources"].get("deployment.web").is_none());
    let lb = work.lb_process();
    assert_eq!(processes_under(work.dir.path()), vec![lb.pid]);
    // The logs say what happened.
    let logs = work.dir.path().join(".infra/deployments/deployment.web");
    assert!(std::fs::read_dir(&logs).unwrap().count() >= 2);
}

#[test]
fn an_apply_killed_while_instances_start_is_taken_over_not_doubled() {
    let work = Workspace::new("local-web");
    std::fs::write(
        work.dir.path().join("main.infra"),
        fleet_config(3, "{}", r#"min_ready = "3s""#),
    )
    .unwrap();
    let mut first = work
        .infra_command(&["apply", "--auto-approve"], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the three instances run, while they wait out min_ready.
    let journal = work
        .dir
        .path()
        .join(".infra/deployments/deployment.web/instances.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let started: Vec<i64> = loop {
        let pids: Vec<i64> = std::fs::read_to_string(&journal)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|list| {
                list.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["pid"].as_i64().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        if pids.len() == 3 {
            break pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instances never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    first.kill().unwrap();
    first.wait().unwrap();
    let state = work.state();
    assert!(
        state["resources"].get("deployment.web").is_none(),
        "not recorded yet"
    );

    let plan = work.plan(&[]);
    assert!(plan.contains("deployment.web will be created"), "{plan}");
    work.apply(&[]);
    let instances = work.instances();
    assert_eq!(instances.len(), 3);
    let taken_over: Vec<i64> = instances.iter().map(|(_, id)| i64::from(id.pid)).collect();
    assert_eq!(taken_over, started, "the running instances were taken over");
    let mut running = processes_under(work.dir.path());
    running.sort();
    let mut expected: Vec<i32> = instances.iter().map(|(_, id)| id.pid).collect();
    expected.push(work.lb_process().pid);
    expected.sort();
    assert_eq!(
        running, expected,
        "one load balancer and three instances, no more"
    );
    assert!(work.plan(&[]).contains(CLEAN));
}

/// What a sampler saw during a rollout.
#[derive(Debug, Default)]
struct Extremes {
    samples: usize,
    /// The fewest backends the load balancer had healthy and not draining.
    fewest_in_service: Option<usize>,
    /// The most instance processes running at once.
    most_instances: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_in_batches_keeps_within_surge_and_unavailable_under_load() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let config = |version: &str| {
        fleet_config(
            4,
            &format!(r#"{{ APP_VERSION = "{version}" }}"#),
            r#"min_ready = "200ms"  healthy_deadline = "20s"  drain = "300ms"
  strategy rolling {
    max_surge       = 2
    max_unavailable = 1
  }"#,
        )
    };
    let main = work.dir.path().join("main.infra");
    std::fs::write(&main, config("v1")).unwrap();
    work.apply(&[]);
    let before = work.instances();
    assert_eq!(before.len(), 4);
    let admin = work.admin();

    // Load and a sampler of the load balancer's pool and of the processes,
    // for the whole rollout.
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let load_task = tokio::spawn(load_until(
        listen.clone(),
        100,
        progress.clone(),
        stop.clone(),
    ));
    let sampler = tokio::spawn({
        let (stop, dir) = (stop.clone(), work.dir.path().to_path_buf());
        async move {
            let mut seen = Extremes::default();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(status) = admin.status().await {
                    let in_service = status
                        .backends()
                        .filter(|b| b.healthy && !b.draining)
                        .count();
                    seen.fewest_in_service = Some(
                        seen.fewest_in_service
                            .map_or(in_service, |f| f.min(in_service)),
                    );
                }
                let instances = demo_apps_under(&dir);
                seen.most_instances = seen.most_instances.max(instances);
                seen.samples += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        }
    });
    std::fs::write(&main, config("v2")).unwrap();
    // The plan shows the rollout: its bounds, the least time it can take
    // (2 batches in service: a check gap of 100 ms by the fleet, min_ready
    // 200 ms, a check gap of 100 ms by the load balancer) and its steps.
    let plan = work.plan(&[]);
    let rollout: Vec<&str> = plan
        .lines()
        .filter(|line| line.trim_start().starts_with("# ") && line.contains(" → "))
        .map(str::trim)
        .collect();
    assert_eq!(
        rollout,
        [
            "# rolling update, 4 → 4 instances: at most 6 running, never fewer than 3 in service, at least 0.8s",
            "# 3 old left → 3 new in service → 0 old left → 4 new in service",
        ],
        "{plan}"
    );
    let json = work.infra(&["plan", "--json"], &[]);
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    let change = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "deployment.web")
        .unwrap();
    assert_eq!(change["rollout"]["peak"], 6, "{change}");
    assert_eq!(change["rollout"]["steps"][1]["start_new"], 3, "{change}");
    let mut apply = work.infra_command(&["apply", "--auto-approve"], &[]);
    let rolled = tokio::task::spawn_blocking(move || {
        let output = apply.output().unwrap();
        (output.status.success(), both(&output))
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let during = load_task.await.unwrap();
    let seen = sampler.await.unwrap();
    assert!(rolled.0, "{}", rolled.1);
    assert!(seen.samples > 10, "{seen:?}");
    // replicas 4, max_unavailable 1: never fewer than 3 in service;
    // max_surge 2: never more than 6 instances.
    assert!(seen.fewest_in_service.unwrap() >= 3, "{seen:?}");
    assert!(seen.most_instances <= 6, "{seen:?}");
    // The surge was used: more than one new instance at a time.
    assert!(seen.most_instances >= 5, "{seen:?}");
    assert!(progress.load(Ordering::Relaxed) > 50);
    during.assert_none_failed("the rollout");
    let after = work.instances();
    assert_eq!(after.len(), 4);
    assert!(before.iter().all(|(_, id)| !id.is_running()));
    assert!(get(&listen).await.starts_with("demo-app v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_rolls_back_to_the_previous_version_at_full_strength() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let main = work.dir.path().join("main.infra");
    let config = |env: &str, timing: &str| {
        fleet_config(
            3,
            env,
            &format!(r#"min_ready = "200ms"  drain = "200ms"  {timing}"#),
        )
    };
    let v1 = r#"{ APP_VERSION = "v1" }"#;
    let broken = r#"{ APP_VERSION = "v2", NEVER_HEALTHY = "1" }"#;
    std::fs::write(&main, config(v1, r#"healthy_deadline = "20s""#)).unwrap();
    work.apply(&[]);
    let before = work.instances();
    assert_eq!(before.len(), 3);

    // 1. One old instance may go first (max_unavailable = 1); the new one
    //    never becomes healthy: the old version is restored to 3 before
    //    anything else, under load, without a failed request.
    std::fs::write(
        &main,
        config(
            broken,
            r#"healthy_deadline = "2s"
  strategy rolling {
    max_surge       = 0
    max_unavailable = 1
  }"#,
        ),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let load_task = tokio::spawn(load_until(
        listen.clone(),
        100,
        progress.clone(),
        stop.clone(),
    ));
    let output = {
        let mut command = work.infra_command(&["apply", "--auto-approve"], &[]);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    };
    stop.store(true, Ordering::Relaxed);
    let during = load_task.await.unwrap();
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("was not healthy within healthy_deadline"),
        "{text}"
    );
    assert!(
        text.contains("rolled back: 3 instance(s) of the previous version serve again"),
        "{text}"
    );
    assert!(progress.load(Ordering::Relaxed) > 20);
    during.assert_none_failed("the failed rollout and its rollback");
    let after = load(&listen, "/", 30, 3, Arc::new(AtomicUsize::new(0))).await;
    assert!(
        after
            .answers
            .iter()
            .all(|(status, body)| *status == 200 && body.starts_with("demo-app v1")),
        "{:?}",
        after.answers
    );
    assert_eq!(work.demo_apps(), 3, "3 instances of v1, none of v2");
    // The wanted version is still pending.
    let plan = work.plan(&[]);
    assert!(plan.contains("~ deployment \"web\""), "{plan}");
    assert!(plan.contains("# rolling update, 3 → 3 instances"), "{plan}");

    // 2. The whole change must finish within progress_deadline: past it,
    //    the rollout is rolled back too.
    work.failed_apply(
        &config(
            broken,
            r#"healthy_deadline = "30s"  progress_deadline = "1s""#,
        ),
        &[
            "did not finish within progress_deadline (1s)",
            "rolled back: 3 instance(s)",
        ],
    );
    assert!(get(&listen).await.starts_with("demo-app v1"));
}

/// Requests one at a time, each on a new connection, until `stop`; the
/// answers in order (`Err` for a failed request). When `flag` is given,
/// the first answer that starts with its prefix creates its file.
async fn one_at_a_time_until(
    listen: String,
    stop: Arc<AtomicBool>,
    flag: Option<(String, PathBuf)>,
) -> Vec<Result<(u16, String), String>> {
    let mut answers = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let answer = http::get(&listen, "/", Duration::from_secs(10))
            .await
            .map(|response| (response.status, response.text()))
            .map_err(|error| error.to_string());
        if let (Ok((_, body)), Some((prefix, file))) = (&answer, &flag)
            && body.starts_with(prefix.as_str())
            && !file.exists()
        {
            std::fs::write(file, "sick").unwrap();
        }
        answers.push(answer);
    }
    answers
}

/// The backends that take traffic: healthy, not draining, in a pool whose
/// weight is above 0.
fn in_service(status: &infra_provider_local::lb::protocol::Status) -> usize {
    status
        .pools
        .values()
        .filter(|pool| pool.weight > 0)
        .flat_map(|pool| pool.backends.iter())
        .filter(|b| b.healthy && !b.draining)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_all_traffic_at_once_and_back_when_the_new_version_fails() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let main = work.dir.path().join("main.infra");
    let sick_flag = work.dir.path().join("sick");
    let config = |env: &str, keep_blue: &str| {
        fleet_config(
            3,
            env,
            &format!(
                r#"min_ready = "200ms"  drain = "200ms"  healthy_deadline = "3s"
  strategy blue_green {{ keep_blue = "{keep_blue}" }}"#
            ),
        )
    };
    std::fs::write(&main, config(r#"{ APP_VERSION = "v1" }"#, "1s")).unwrap();
    work.apply(&[]);
    let v1 = work.instances();
    assert_eq!(v1.len(), 3);
    let admin = work.admin();

    // Runs an apply of `config` under one-at-a-time requests and a sampler
    // of the load balancer and the processes; returns (exit code, output,
    // answers in order, fewest in service, most instances).
    let rollout = |env: String, keep_blue: &'static str, flag: Option<(String, PathBuf)>| {
        let mut apply = work.infra_command(&["apply", "--auto-approve"], &[]);
        let (work_dir, admin, listen, main) = (
            work.dir.path().to_path_buf(),
            admin.clone(),
            listen.clone(),
            main.clone(),
        );
        async move {
            std::fs::write(&main, config(&env, keep_blue)).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let requests = tokio::spawn(one_at_a_time_until(listen, stop.clone(), flag));
            let sampler = tokio::spawn({
                let (stop, dir) = (stop.clone(), work_dir.clone());
                async move {
                    let (mut fewest, mut most) = (usize::MAX, 0);
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(status) = admin.status().await {
                            fewest = fewest.min(in_service(&status));
                        }
                        most = most.max(demo_apps_under(&dir));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    (fewest, most)
                }
            });
            let output = tokio::task::spawn_blocking(move || apply.output().unwrap())
                .await
                .unwrap();
            stop.store(true, Ordering::Relaxed);
            let answers = requests.await.unwrap();
            let (fewest, most) = sampler.await.unwrap();
            (output.status.code(), both(&output), answers, fewest, most)
        }
    };
    // The version that answered each request, in order; a failed
    // request fails the test, with the run of answers around it.
    let versions = |answers: &[Result<(u16, String), String>]| -> Vec<String> {
        let seen: Vec<String> = answers
            .iter()
            .map(|answer| match answer {
                Ok((200, body)) => body.split_whitespace().nth(1).unwrap_or("?").to_string(),
                Ok((status, body)) => format!("{status} {}", body.trim()),
                Err(error) => format!("error {error}"),
            })
            .collect();
        if let Some(at) = seen.iter().position(|v| !v.starts_with('v')) {
            panic!(
                "request {at} of {} failed: {:?}",
                seen.len(),
                &seen[at.saturating_sub(3)..(at + 3).min(seen.len())]
            );
        }
        seen
    };

    // 1. The plan shows two whole sets and one switch.
    std::fs::write(&main, config(r#"{ APP_VERSION = "v2" }"#, "1s")).unwrap();
    let plan = work.plan(&[]);
    assert!(
        plan.contains(
            "# blue_green update, 3 → 3 instances: at most 6 running, never fewer than 3 in service, at least 1.4s"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("# 3 new ready, sent nothing → all traffic to the new version → old kept 1s → 0 old left"),
        "{plan}"
    );

    // 2. A healthy v2: no failed request; every answer before the switch
    //    is v1, every one after it v2 — never both; at most 6 instances,
    //    never fewer than 3 in service.
    let (code, text, answers, fewest, most) =
        rollout(r#"{ APP_VERSION = "v2" }"#.into(), "1s", None).await;
    assert_eq!(code, Some(0), "{text}");
    let seen = versions(&answers);
    let switch = seen.iter().position(|v| v == "v2").expect("v2 answered");
    assert!(seen[..switch].iter().all(|v| v == "v1"), "{seen:?}");
    assert!(seen[switch..].iter().all(|v| v == "v2"), "{seen:?}");
    assert!(switch > 0, "v1 answered before the switch");
    assert!(fewest >= 3, "{fewest} in service");
    assert!((5..=6).contains(&most), "{most} instances at most");
    assert!(v1.iter().all(|(_, id)| !id.is_running()), "blue stopped");
    let v2 = work.instances();
    assert_eq!(v2.len(), 3);

    // 3. A v3 that never becomes healthy: nothing was switched; rolled
    //    back, v2 served throughout.
    let (code, text, answers, fewest, _) = rollout(
        r#"{ APP_VERSION = "v3", NEVER_HEALTHY = "1" }"#.into(),
        "1s",
        None,
    )
    .await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("rolled back: 3 instance(s)"), "{text}");
    assert!(versions(&answers).iter().all(|v| v == "v2"));
    assert!(fewest >= 3, "{fewest} in service");
    assert_eq!(work.demo_apps(), 3);

    // 4. A v4 that turns unhealthy after the switch, while blue is kept:
    //    traffic switched back to v2 at once, v4 stopped, no failed request.
    let env = format!(
        r#"{{ APP_VERSION = "v4", UNHEALTHY_IF_EXISTS = "{}" }}"#,
        sick_flag.display()
    );
    let (code, text, answers, _, _) = rollout(
        env,
        "10s",
        Some(("demo-app v4".to_string(), sick_flag.clone())),
    )
    .await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("turned unhealthy"), "{text}");
    assert!(text.contains("rolled back: 3 instance(s)"), "{text}");
    let seen = versions(&answers);
    assert!(seen.iter().any(|v| v == "v4"), "v4 served after the switch");
    assert_eq!(seen.last().map(String::as_str), Some("v2"), "{seen:?}");
    assert_eq!(work.demo_apps(), 3);
    assert_eq!(work.instances(), v2, "the same v2 instances serve again");
    assert!(get(&listen).await.starts_with("demo-app v2"));
    let plan = work.plan(&[]);
    assert!(
        plan.contains("# blue_green update"),
        "v4 still pending: {plan}"
    );
}

/// `examples/local-canary`, as its comments tell a user to run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_is_rolled_back_by_its_analysis_and_a_good_one_promoted() {
    let work = Workspace::new("local-canary");
    let listen = work.listen();
    work.apply(&[]);
    assert_eq!(work.instances_of("deployment.api").len(), 4);

    // The plan: one canary for 25%, its pause analysed, then the rest.
    let plan = work.plan(&[("app_version", "v2")]);
    assert!(
        plan.contains("# canary update, 4 → 4 instances: at most 8 running, never fewer than 4 in service, at least 14s"),
        "{plan}"
    );
    assert!(
        plan.contains("# 1 new ready, sent nothing → 25% to the new version → pause 10s, analysed → 4 new ready, sent nothing → all traffic to the new version → 0 old left"),
        "{plan}"
    );

    // Applies with `vars` under load; (exit code, output, load).
    let apply_under_load = |vars: &[(&str, &str)]| {
        let mut apply = work.infra_command(&["apply", "--auto-approve"], vars);
        let listen = listen.clone();
        async move {
            let stop = Arc::new(AtomicBool::new(false));
            let progress = Arc::new(AtomicUsize::new(0));
            let load_task = tokio::spawn(load_until(listen, 100, progress, stop.clone()));
            let output = tokio::task::spawn_blocking(move || apply.output().unwrap())
                .await
                .unwrap();
            stop.store(true, Ordering::Relaxed);
            (
                output.status.code(),
                both(&output),
                load_task.await.unwrap(),
            )
        }
    };

    // 1. A v2 that fails half its requests: the analysis fails it at the
    //    first reading, traffic goes back to v1 at once, v2 is stopped.
    let bad = [("app_version", "v2"), ("fail_rate", "0.5")];
    let (code, text, during) = apply_under_load(&bad).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "canary step 1 (weight 25%): analysis failed (1 of failure_limit 1): error rate"
        ),
        "{text}"
    );
    assert!(text.contains("is above max_error_rate 0.05"), "{text}");
    assert!(text.contains("rolled back: 4 instance(s)"), "{text}");
    // The run showed each step as it happened.
    for step in [
        "deployment.api: step 1 of 1: starting 1 canary instance(s)",
        "deployment.api: step 1 of 1: weight 25% to the new version, for 10s",
        "deployment.api: analysis: failed: error rate",
        "deployment.api: rolling back: canary step 1 (weight 25%): analysis failed",
    ] {
        assert!(text.contains(step), "{step}\n{text}");
    }
    // Only the canary's share could fail: at most 1.5 × 25% × 50%.
    let total = during.answers.len() + during.errors.len();
    let failed = during.failed();
    assert!(total > 50, "{total} requests");
    assert!(
        (failed as f64) <= 1.5 * 0.25 * 0.5 * total as f64,
        "{failed} of {total} failed"
    );
    let after = load(&listen, "/", 40, 4, Arc::new(AtomicUsize::new(0))).await;
    after.assert_none_failed("after the rollback");
    assert!(
        after
            .answers
            .iter()
            .all(|(_, body)| body.starts_with("demo-app v1"))
    );
    assert_eq!(work.demo_apps(), 4);
    assert!(
        work.plan(&bad).contains("# canary update"),
        "v2 still pending"
    );

    // 2. A good v2: promoted after its analysed pause; the canary had its
    //    share of the requests meanwhile; no request failed.
    let good = [("app_version", "v2")];
    let (code, text, during) = apply_under_load(&good).await;
    assert_eq!(code, Some(0), "{text}");
    during.assert_none_failed("the canary of a good v2");
    // Each reading of the analysis was shown with what it read.
    assert!(
        text.contains("deployment.api: analysis: passed: error rate 0.000 over"),
        "{text}"
    );
    let v2 = during
        .answers
        .iter()
        .filter(|(_, body)| body.starts_with("demo-app v2"))
        .count();
    assert!(v2 > 0, "the canary got requests");
    let after = load(&listen, "/", 40, 4, Arc::new(AtomicUsize::new(0))).await;
    assert!(
        after
            .answers
            .iter()
            .all(|(_, body)| body.starts_with("demo-app v2"))
    );
    assert_eq!(work.demo_apps(), 4);
    assert!(work.plan(&good).contains(CLEAN));
}

/// Ten applies killed with SIGKILL at spread-out moments of a rollout
/// (rolling and blue/green in turn, each to a new version): every time,
/// the next apply finishes the rollout with exactly `replicas` instances of
/// the new version, registered and answering, no orphan process, no second
/// fleet, a state that loads.
#[test]
fn rollouts_killed_at_any_moment_are_finished_by_the_next_apply() {
    let work = Workspace::new("local-web");
    let main = work.dir.path().join("main.infra");
    let config = |version: usize, blue_green: bool| {
        let strategy = if blue_green {
            r#"strategy blue_green { keep_blue = "300ms" }"#
        } else {
            r#"strategy rolling { max_surge = 1  max_unavailable = 0 }"#
        };
        fleet_config(
            3,
            &format!(r#"{{ APP_VERSION = "v{version}" }}"#),
            &format!(
                r#"min_ready = "200ms"  drain = "200ms"  healthy_deadline = "10s"  {strategy}"#
            ),
        )
    };
    std::fs::write(&main, config(1, false)).unwrap();
    work.apply(&[]);
    let listen = work.listen();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut killed_mid_rollout = 0;
    for trial in 0..10 {
        let version = trial + 2;
        let blue_green = trial % 2 == 1;
        // Spread over a rollout's length (about 1.5 s here).
        let kill_after = Duration::from_millis(150 * trial as u64 + 50);
        std::fs::write(&main, config(version, blue_green)).unwrap();
        let mut apply = work
            .infra_command(&["apply", "--auto-approve"], &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(kill_after);
        if apply.try_wait().unwrap().is_none() {
            killed_mid_rollout += 1;
        }
        let _ = apply.kill();
        apply.wait().unwrap();

        // The next apply finishes it.
        let text = work.apply(&[]);
        let context = format!("trial {trial} (killed after {kill_after:?}): {text}");
        let instances = work.instances();
        assert_eq!(instances.len(), 3, "{context}");
        assert!(instances.iter().all(|(_, id)| id.is_running()), "{context}");
        assert_eq!(work.demo_apps(), 3, "no orphan, no second fleet: {context}");
        let admin = work.admin();
        let status = tokio.block_on(admin.status()).unwrap();
        assert_eq!(in_service(&status), 3, "{context}: {status:?}");
        assert_eq!(
            status.backends().count(),
            3,
            "no stale registration: {context}: {status:?}"
        );
        let answers = tokio.block_on(load(&listen, "/", 12, 3, Arc::new(AtomicUsize::new(0))));
        answers.assert_none_failed(&context);
        let wanted = format!("demo-app v{version} ");
        assert!(
            answers
                .answers
                .iter()
                .all(|(_, body)| body.starts_with(&wanted)),
            "{context}: {:?}",
            answers.answers
        );
        assert!(work.plan(&[]).contains(CLEAN), "{context}");
    }
    assert!(
        killed_mid_rollout >= 5,
        "only {killed_mid_rollout} kills landed mid-rollout"
    );
}

/// The version that answers `GET /` with `header` set (none: no header).
async fn version_with(listen: &str, header: Option<(&str, &str)>) -> String {
    let headers: Vec<(&str, &str)> = header.into_iter().collect();
    let request = http::Request {
        method: "GET",
        path: "/",
        headers: &headers,
        ..Default::default()
    };
    let answer = http::send(listen, request, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    answer.text().split_whitespace().nth(1).unwrap().to_string()
}

/// A canary for chosen customers: during the step, requests with
/// `X-Org: acme` reach only the new version, all others only the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_by_header_sends_exactly_the_chosen_customers_to_the_new_version() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let write = |version: &str| {
        work.write_fleet(
            2,
            &format!(r#"APP_VERSION = "{version}""#),
            r#"strategy canary {
    steps = [{ match = { header = "X-Org", values = ["acme", "initech"] }, pause = "4s" }]
  }"#,
        );
    };
    write("v1");
    work.apply(&[]);
    write("v2");
    let plan = work.plan(&[]);
    assert!(
        plan.contains("requests with X-Org: acme, initech to the new version → pause 4s"),
        "{plan}"
    );
    let mut apply = work.infra_command(&["apply", "--auto-approve", "--json"], &[]);
    let applying = tokio::task::spawn_blocking(move || apply.output().unwrap());

    // Once the route is in place:
    let admin = work.admin();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while admin.status().await.unwrap().routes.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no route was set");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for _ in 0..20 {
        for org in [Some("acme"), Some("initech"), Some("globex"), None] {
            *seen
                .entry((
                    org.unwrap_or("none"),
                    version_with(&listen, org.map(|org| ("X-Org", org))).await,
                ))
                .or_default() += 1;
        }
    }
    let expected: BTreeMap<(&str, String), usize> = [
        (("acme", "v2".to_string()), 20),
        (("globex", "v1".to_string()), 20),
        (("initech", "v2".to_string()), 20),
        (("none", "v1".to_string()), 20),
    ]
    .into();
    assert_eq!(seen, expected);

    let output = applying.await.unwrap();
    assert!(output.status.success(), "{}", both(&output));
    // Each step was an event of the JSON stream.
    let steps: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["type"] == "apply_step")
        .map(|event| event["hook"]["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"step 1 of 1: X-Org: acme, initech to the new version, for 4s".to_string()),
        "{steps:?}"
    );
    assert!(
        admin.status().await.unwrap().routes.is_empty(),
        "the route is gone"
    );
    assert!(get(&listen).await.starts_with("demo-app v2"));
    assert_eq!(work.demo_apps(), 2);
}

/// A canary step with `pause = "forever"` is a manual gate: apply stops
/// there with exit 0, both versions serving by weight; plan and `infra
/// rollout status` say so; `infra rollout promote` finishes it; on the
/// next version, `infra rollout abort` rolls it back and the new version
/// stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_gate_waits_for_promote_or_abort() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let write = |version: &str| {
        work.write_fleet(
            2,
            &format!(r#"APP_VERSION = "{version}""#),
            r#"strategy canary {
    steps = [{ weight = 50, pause = "forever" }]
  }"#,
        );
    };
    write("v1");
    work.apply(&[]);
    write("v2");
    assert!(
        work.plan(&[]).contains(
            "1 new ready, sent nothing → 50% to the new version → wait for `infra rollout promote`"
        ),
        "{}",
        work.plan(&[])
    );
    let paused = work.apply(&[]);
    assert!(
        paused.contains("paused at weight 50% to the new version"),
        "{paused}"
    );
    assert_eq!(work.demo_apps(), 3, "2 of v1 and the canary");
    let mut versions = BTreeMap::new();
    for _ in 0..40 {
        let answer = get(&listen).await;
        *versions
            .entry(answer.split_whitespace().nth(1).unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        versions.len(),
        2,
        "both versions serve at the gate: {versions:?}"
    );
    let plan = work.plan(&[]);
    assert!(
        plan.contains("~ deployment \"web\""),
        "still pending: {plan}"
    );
    assert!(
        plan.contains("# canary rollout paused at step 1 of 1: weight 50% to the new version"),
        "{plan}"
    );
    assert!(
        plan.contains("`infra rollout promote deployment.web` continues it"),
        "{plan}"
    );
    let status = both(&work.infra(&["rollout", "status", "deployment.web"], &[]));
    assert!(status.contains("paused at step 1 of 1"), "{status}");

    let promoted = work.infra(&["rollout", "promote", "deployment.web"], &[]);
    assert!(promoted.status.success(), "{}", both(&promoted));
    for _ in 0..10 {
        assert!(get(&listen).await.starts_with("demo-app v2"));
    }
    assert_eq!(work.demo_apps(), 2);
    assert!(work.plan(&[]).contains("No changes"), "{}", work.plan(&[]));
    let status = both(&work.infra(&["rollout", "status", "deployment.web"], &[]));
    assert!(status.contains("no rollout in progress"), "{status}");

    // v3, stopped at its gate, then aborted.
    write("v3");
    work.apply(&[]);
    assert_eq!(work.demo_apps(), 3);
    let aborted = work.infra(&["rollout", "abort", "deployment.web"], &[]);
    assert!(aborted.status.success(), "{}", both(&aborted));
    assert!(
        both(&aborted).contains("rolled back: 2 instance(s)"),
        "{}",
        both(&aborted)
    );
    for _ in 0..10 {
        assert!(get(&listen).await.starts_with("demo-app v2"));
    }
    assert_eq!(work.demo_apps(), 2);
    let plan = work.plan(&[]);
    assert!(
        plan.contains("~ deployment \"web\""),
        "v3 still pending: {plan}"
    );
    assert!(!plan.contains("rollout paused"), "{plan}");
    // Nothing to promote where no rollout is pending.
    write("v2");
    let nothing = work.infra(&["rollout", "promote", "deployment.web"], &[]);
    assert_eq!(nothing.status.code(), Some(1), "{}", both(&nothing));
    assert!(
        both(&nothing).contains("has no rollout to promote"),
        "{}",
        both(&nothing)
    );
}

/// A sticky canary step: a quarter of the customers (by the hash of
/// `X-User`) reach the new version, each always the same one; requests
/// without the header stay on the old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_canary_keeps_each_customer_on_one_version() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let write = |version: &str| {
        work.write_fleet(
            2,
            &format!(r#"APP_VERSION = "{version}""#),
            r#"strategy canary {
    steps = [{ weight = 25, sticky = "header:X-User", pause = "forever" }]
  }"#,
        );
    };
    write("v1");
    work.apply(&[]);
    write("v2");
    let plan = work.plan(&[]);
    assert!(
        plan.contains("25% of X-User values (sticky) to the new version"),
        "{plan}"
    );
    // Stopped at the gate: the sticky route stays in place to be measured.
    work.apply(&[]);
    let mut on_v2 = 0;
    for n in 0..60 {
        let user = format!("user-{n}");
        let expected = if infra_provider_sdk::sticky_bucket(&user) < 25 {
            "v2"
        } else {
            "v1"
        };
        on_v2 += usize::from(expected == "v2");
        for _ in 0..2 {
            assert_eq!(
                version_with(&listen, Some(("X-User", &user))).await,
                expected,
                "{user}"
            );
        }
    }
    assert!((5..=25).contains(&on_v2), "{on_v2} of 60 customers on v2");
    for _ in 0..10 {
        assert_eq!(
            version_with(&listen, None).await,
            "v1",
            "no header: the old version"
        );
    }
    let promoted = work.infra(&["rollout", "promote", "deployment.web"], &[]);
    assert!(promoted.status.success(), "{}", both(&promoted));
    assert_eq!(
        version_with(&listen, Some(("X-User", "user-1"))).await,
        "v2"
    );
    assert!(work.admin().status().await.unwrap().routes.is_empty());
}

/// Ctrl-C twice during a canary's second step: apply exits 130 with the
/// rollout recorded as running at that step, `plan` says so, and the next
/// apply resumes there — the first step is not repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_canary_resumes_at_its_recorded_step() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let write = |version: &str| {
        work.write_fleet(
            2,
            &format!(r#"APP_VERSION = "{version}""#),
            r#"strategy canary {
    steps = [{ weight = 25, pause = "1s" }, { weight = 50, pause = "4s" }]
  }"#,
        );
    };
    write("v1");
    work.apply(&[]);
    write("v2");
    let mut apply = work
        .infra_command(&["apply", "--auto-approve"], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let admin = work.admin();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = admin.status().await.unwrap();
        if status.pools.get("deployment.web/b").map(|p| p.weight) == Some(50) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "step 2 never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(apply.id() as i32, false, Signal::INT);
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(apply.id() as i32, false, Signal::INT);
    let status = apply.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let record = &work.state()["resources"]["deployment.web"]["attributes"]["rollout"];
    assert_eq!(record["status"], "running", "{record}");
    assert_eq!(record["step"], 1, "{record}");
    let plan = work.plan(&[]);
    assert!(
        plan.contains("# canary rollout running at step 2 of 2"),
        "{plan}"
    );
    assert!(plan.contains("# apply resumes it at that step"), "{plan}");

    let resumed = work.apply(&[]);
    assert!(resumed.contains("resuming at step 2 of 2"), "{resumed}");
    assert!(!resumed.contains("step 1 of 2"), "{resumed}");
    assert_eq!(work.demo_apps(), 2);
    for _ in 0..10 {
        assert!(get(&listen).await.starts_with("demo-app v2"));
    }
    assert!(work.plan(&[]).contains("No changes"));
}

/// Blue/green with an analysis: after the switch, a green set that fails
/// half its requests is judged on its own answers and traffic goes back
/// to blue, which was kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_analysis_switches_back_from_a_failing_new_set() {
    let work = Workspace::new("local-web");
    let listen = work.listen();
    let write = |version: &str, fail_rate: &str| {
        work.write_fleet(
            2,
            &format!(r#"APP_VERSION = "{version}", FAIL_RATE = "{fail_rate}""#),
            r#"strategy blue_green {
    keep_blue = "3s"
    analysis {
      interval       = "500ms"
      max_error_rate = 0.1
      min_requests   = 5
    }
  }"#,
        );
    };
    write("v1", "0");
    work.apply(&[]);
    // 30% errors: over the analysis's 10%, under the half of its requests
    // that would make the load balancer eject an instance itself.
    write("v2", "0.3");
    let plan = work.plan(&[]);
    assert!(plan.contains("old kept 3s, analysed"), "{plan}");
    assert!(
        plan.contains("# analysis every 500ms: error rate ≤ 0.1, at least 5 requests a reading"),
        "{plan}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let load_task = tokio::spawn(load_until(listen.clone(), 20, progress, stop.clone()));
    let mut apply = work.infra_command(&["apply", "--auto-approve"], &[]);
    let output = tokio::task::spawn_blocking(move || apply.output().unwrap())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    load_task.await.unwrap();
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("after the switch: analysis failed"), "{text}");
    assert!(text.contains("is above max_error_rate 0.1"), "{text}");
    assert!(text.contains("rolled back: 2 instance(s)"), "{text}");
    for _ in 0..10 {
        assert!(get(&listen).await.starts_with("demo-app v1"));
    }
    assert_eq!(work.demo_apps(), 2);
}

/// An instance started by an apply killed before it could journal it (a
/// stray: running, named nowhere) is found by the next rollout through
/// its environment and retired with the old version — no orphan.
#[test]
fn a_stray_instance_no_journal_names_is_found_and_retired() {
    let work = Workspace::new("local-web");
    work.write_fleet(2, r#"APP_VERSION = "v1""#, "");
    work.apply(&[]);
    let journal = infra_provider_local::runtime::RuntimeDir::new(work.dir.path())
        .deployment("deployment.web")
        .join("instances.json");
    let version =
        work.state()["resources"]["deployment.web"]["attributes"]["instances"][0]["version"]
            .as_str()
            .unwrap()
            .to_string();
    let port = infra_provider_local::runtime::free_port().unwrap();
    let mut child = Command::new(&*DEMO_APP)
        .args(["--port", &port.to_string()])
        .env("APP_VERSION", "v1")
        .env("INFRA_JOURNAL", journal.display().to_string())
        .env("INFRA_INSTANCE", "web-7")
        .env("INFRA_VERSION", &version)
        .env("INFRA_POOL", "")
        .env("PORT", port.to_string())
        .current_dir(work.dir.path())
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stray = ProcessId::of(child.id() as i32).unwrap();
    assert_eq!(work.demo_apps(), 3);
    work.write_fleet(2, r#"APP_VERSION = "v2""#, "");
    let applied = work.apply(&[]);
    assert!(!stray.is_running(), "the stray was retired: {applied}");
    assert_eq!(work.demo_apps(), 2, "{applied}");
    child.wait().unwrap();
}

/// A load balancer's settings are planned with their defaults, changed in
/// place (the same process, the new settings live), and a change made
/// behind infra's back is drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_settings_change_in_place_and_drift() {
    let work = Workspace::new("local-web");
    work.apply(&[]);
    let before = work.lb_process();
    let defaults = work.admin().settings().await.unwrap();
    assert_eq!(defaults.response_timeout_ms, 30_000);
    let main = work.dir.path().join("main.infra");
    let config = std::fs::read_to_string(&main).unwrap();
    let listen_line = config
        .lines()
        .find(|line| line.trim_start().starts_with("listen"))
        .expect("the example's local_lb sets listen")
        .to_string();
    std::fs::write(
        &main,
        config.replacen(
            &listen_line,
            &format!(
                "{listen_line}\n  response_timeout = \"2s\"\n  balance = \"least_outstanding\""
            ),
            1,
        ),
    )
    .unwrap();
    let plan = work.plan(&[]);
    assert!(
        plan.contains("local_lb.front will be updated in place"),
        "{plan}"
    );
    assert!(
        plan.contains(r#"response_timeout = "30s" -> "2s""#),
        "{plan}"
    );
    work.apply(&[]);
    assert_eq!(work.lb_process(), before, "the same process");
    let settings = work.admin().settings().await.unwrap();
    assert_eq!(settings.response_timeout_ms, 2_000);
    assert_eq!(
        settings.balance,
        infra_provider_local::lb::protocol::Balance::LeastOutstanding
    );
    assert!(work.plan(&[]).contains("No changes."));
    // Someone changes it through the admin API: drift, and apply puts it back.
    let mut changed = settings;
    changed.max_failures = 0;
    work.admin().set_settings(&changed).await.unwrap();
    let drift = work.infra(&["drift"], &[]);
    assert_eq!(drift.status.code(), Some(2), "{}", both(&drift));
    work.apply(&[]);
    assert_eq!(work.admin().settings().await.unwrap().max_failures, 5);
    work.infra(&["destroy", "--auto-approve"], &[]);
}
