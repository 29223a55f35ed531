//! `local_deployment`: what a `deployment` block with `provider = local`
//! becomes — the primitives of the SDK's [`Fleet`] on this machine. The
//! engine's rollout (`src/deploy/executor.rs`) drives them; nothing here
//! knows a strategy.
//!
//! - An instance is a process in its own process group, started from
//!   `template.command` with `{port}` replaced by a free loopback port,
//!   logging to `.infra/deployments/<address>/<instance>.log`, and known by
//!   pid and start time. Starting one ([`Fleet::start`]) waits until it
//!   passes its health check `healthy_threshold` times in a row and then
//!   stays healthy for `min_ready`, registers it in its pool of the load
//!   balancer, and waits until the load balancer's own checks find it
//!   healthy; one not healthy by `healthy_deadline` fails the start, and
//!   every instance it started is stopped.
//! - Every started instance is journaled at once (`Journal`): instances an
//!   interrupted apply started are observed by the next one, never doubled.
//! - A deployment has two pools in the load balancer, `ADDRESS` and
//!   `ADDRESS/b`; routing sets their weights and header routes through the
//!   admin API and reads them back; a pool's counters come from it too.
//! - Retiring deregisters (draining for `drain`) and stops an instance:
//!   SIGTERM to its group, then SIGKILL after a grace period. Delete
//!   retires every instance.
//! - Refresh keeps the instances still running (a dead process, or another
//!   process under a recorded pid, is gone) and reports as `replicas` those
//!   that are running and registered: a killed instance shows as
//!   `replicas: 2 → 3`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use infra_provider_sdk::*;
use serde_json::{Value, json};

use crate::lb::protocol::{HealthSettings, Registration};
use crate::load_balancer::AdminApi;
use crate::runtime::http;
use crate::runtime::process::{self, Detach, ProcessId, Spawn};
use crate::runtime::{RuntimeDir, free_port};

/// How long a stopped instance gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub(crate) fn schema() -> ResourceSchema {
    let any = |description: &str| Attribute::optional(AttributeType::Any).describe(description);
    let mut attributes = deployment_attributes();
    attributes.extend([
        (
            "template",
            Attribute::required(AttributeType::Any).describe(
                "one instance: `command` (list, `{port}` replaced), `env` (map), `workdir`",
            ),
        ),
        (
            "health",
            any("path, interval, timeout, healthy_threshold, unhealthy_threshold"),
        ),
        (
            "load_balancer",
            any("the `listen` address of the local_lb the instances join"),
        ),
        (
            "drain",
            any("time given to requests in flight when an instance leaves (default 30s)"),
        ),
        (
            "instances",
            Attribute::computed(AttributeType::Any)
                .describe("the running instances: name, port, pid, start time, version"),
        ),
    ]);
    ResourceSchema::new(
        "a fleet of processes on this machine (a `deployment` with `provider = local`)",
        attributes,
    )
}

pub(crate) fn validate(config: &Attributes) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let command = config
        .get("template")
        .and_then(|t| t.get("command"))
        .and_then(Value::as_array);
    match command {
        Some(words) if !words.is_empty() && words.iter().all(Value::is_string) => {}
        Some(_) | None if config.get("template").is_some_and(|t| !t.is_null()) => problems.push(
            Diagnostic::error("`template.command` must be a non-empty list of strings")
                .at("template")
                .help("e.g. command = [\"./server\", \"--port\", \"{port}\"]"),
        ),
        _ => {}
    }
    if let Some(replicas) = config.get("replicas").and_then(Value::as_f64)
        && (replicas < 0.0 || replicas.fract() != 0.0)
    {
        problems.push(
            Diagnostic::error(format!(
                "`replicas` must be a whole number ≥ 0, not {replicas}"
            ))
            .at("replicas"),
        );
    }
    problems
}

/// One running instance, as the state records it.
#[derive(Debug, Clone, PartialEq)]
struct Instance {
    name: String,
    port: u16,
    process: ProcessId,
    version: String,
    /// The deployment's `version` as written (`v2`), when it sets one: the
    /// `infra_version` label Prometheus gives its metrics.
    release: Option<String>,
    /// The load balancer's pool it is registered in, when not the
    /// deployment's first one (named by its address): blue/green puts a
    /// new version in the other pool (see [`Fleet::other_pool`]).
    pool: Option<String>,
}

impl Instance {
    fn addr(&self) -> String {
        self.socket_addr().to_string()
    }

    fn socket_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn to_json(&self) -> Value {
        let (pid, started) = self.process.to_json();
        let mut json = json!({
            "name": self.name,
            "port": self.port,
            "pid": pid,
            "started": started,
            "version": self.version,
        });
        if let Some(pool) = &self.pool {
            json["pool"] = json!(pool);
        }
        if let Some(release) = &self.release {
            json["release"] = json!(release);
        }
        json
    }

    fn from_json(value: &Value) -> Option<Instance> {
        Some(Instance {
            name: value["name"].as_str()?.to_string(),
            port: u16::try_from(value["port"].as_u64()?).ok()?,
            process: ProcessId::from_json(value.get("pid"), value.get("started"))?,
            version: value["version"].as_str()?.to_string(),
            release: value["release"].as_str().map(String::from),
            pool: value["pool"].as_str().map(String::from),
        })
    }

    /// Its pool's name: `address` for the first pool.
    fn pool<'a>(&'a self, address: &'a str) -> &'a str {
        self.pool.as_deref().unwrap_or(address)
    }
}

fn instances_of(state: &Attributes) -> Vec<Instance> {
    state
        .get("instances")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Instance::from_json).collect())
        .unwrap_or_default()
}

/// Every instance a deployment's operations started and have not stopped,
/// in `.infra/deployments/<address>/instances.json`, written as soon as a
/// process starts or stops. An apply killed before it could save its state
/// leaves instances the state does not know: the next operation finds them
/// here and takes them over (or retires them) instead of starting a second
/// fleet beside them.
///
/// Each write also rewrites the deployment's Prometheus targets file
/// (`targets.json`, file-based service discovery): every running
/// instance, labelled with the deployment, its version and pool, so a
/// `local_prometheus` that scrapes the deployment follows a rollout
/// without a restart.
struct Journal(PathBuf, String);

impl Journal {
    fn of(runtime: &RuntimeDir, address: &str) -> Journal {
        Journal(
            runtime.deployment(address).join("instances.json"),
            address.to_string(),
        )
    }

    /// The targets file beside the journal.
    fn targets(&self) -> PathBuf {
        self.0.with_file_name("targets.json")
    }

    /// `[{"targets": [...], "labels": {...}}]`, one group per version (as
    /// written, else its id) and pool.
    fn write_targets(&self, instances: &[Instance]) -> Result<(), ProviderError> {
        let mut groups: std::collections::BTreeMap<(&str, &str), Vec<String>> =
            std::collections::BTreeMap::new();
        for instance in instances {
            let version = instance.release.as_deref().unwrap_or(&instance.version);
            groups
                .entry((version, instance.pool(&self.1)))
                .or_default()
                .push(instance.addr());
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|((version, pool), targets)| {
                json!({
                    "targets": targets,
                    "labels": {
                        "deployment": self.1,
                        "infra_version": version,
                        "infra_pool": pool,
                    },
                })
            })
            .collect();
        let path = self.targets();
        crate::runtime::write_atomically(&path, Value::Array(groups).to_string().as_bytes(), 0o644)
            .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
    }

    fn read(&self) -> Vec<Instance> {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|value| {
                value
                    .as_array()
                    .map(|list| list.iter().filter_map(Instance::from_json).collect())
            })
            .unwrap_or_default()
    }

    fn write(&self, instances: &[Instance]) -> Result<(), ProviderError> {
        let text = Value::Array(instances.iter().map(Instance::to_json).collect()).to_string();
        if let Some(dir) = self.0.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        crate::runtime::write_atomically(&self.0, text.as_bytes(), 0o644)
            .map_err(|e| failed(format!("cannot write {}: {e}", self.0.display())))?;
        self.write_targets(instances)
    }

    fn add(&self, instance: &Instance) -> Result<(), ProviderError> {
        let mut all = self.read();
        all.retain(|i| i.process.is_running());
        all.push(instance.clone());
        self.write(&all)
    }

    fn remove(&self, instance: &Instance) {
        let mut all = self.read();
        all.retain(|i| i.process != instance.process && i.process.is_running());
        let _ = self.write(&all);
    }

    /// The targets file without `instance`, which is about to stop (it
    /// stays journaled until it has).
    fn leaving(&self, instance: &Instance) {
        let mut all = self.read();
        all.retain(|i| i.process != instance.process && i.process.is_running());
        let _ = self.write_targets(&all);
    }

    /// The running instances among those `recorded` and those journaled.
    fn running(&self, recorded: Vec<Instance>) -> Vec<Instance> {
        let mut all: Vec<Instance> = Vec::new();
        for instance in recorded.into_iter().chain(self.read()).chain(self.strays()) {
            if instance.process.is_running()
                && !all
                    .iter()
                    .any(|i| i.process == instance.process || i.name == instance.name)
            {
                all.push(instance);
            }
        }
        all
    }

    /// Instances started for this journal that it does not name: infra
    /// was killed between starting the process and writing the journal.
    /// Each carries the journal's path, its name, port, version and pool
    /// in its environment; only the process infra started (its group's
    /// leader) counts, not what it forked.
    fn strays(&self) -> Vec<Instance> {
        let marker = format!("{JOURNAL_ENV}={}", self.0.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
                if !vars.contains(&marker.as_bytes()) || !leads_its_group(pid) {
                    return None;
                }
                let var = |name: &str| {
                    vars.iter().find_map(|v| {
                        std::str::from_utf8(v)
                            .ok()?
                            .strip_prefix(name)?
                            .strip_prefix('=')
                            .map(String::from)
                    })
                };
                Some(Instance {
                    name: var("INFRA_INSTANCE")?,
                    port: var("PORT")?.parse().ok()?,
                    process: ProcessId::of(pid)?,
                    version: var("INFRA_VERSION")?,
                    release: var("INFRA_RELEASE"),
                    pool: var("INFRA_POOL").filter(|pool| !pool.is_empty()),
                })
            })
            .collect()
    }
}

/// The environment variable that ties an instance to its journal.
const JOURNAL_ENV: &str = "INFRA_JOURNAL";

/// Whether `pid` leads its process group (`/proc/PID/stat`, field 5).
fn leads_its_group(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').and_then(|at| stat.get(at + 2..)) else {
        return false;
    };
    // `rest` starts at field 3 (state), then ppid, then pgrp.
    rest.split_whitespace().nth(2) == Some(pid.to_string().as_str())
}

/// The health check a deployment asks for, with ELBv2-like defaults.
#[derive(Debug, Clone)]
struct Health {
    path: String,
    interval: Duration,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

/// A version of a deployment, as its configuration describes it.
struct Spec {
    address: String,
    replicas: usize,
    command: Vec<String>,
    env: Vec<(String, String)>,
    workdir: PathBuf,
    health: Health,
    load_balancer: Option<String>,
    min_ready: Duration,
    healthy_deadline: Duration,
    drain: Duration,
    version: String,
    /// `version` as written, if any.
    release: Option<String>,
}

fn duration(
    value: Option<&Value>,
    name: &str,
    default: Duration,
) -> Result<Duration, ProviderError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(text)) => parse_duration(text).ok_or_else(|| {
            ProviderError::new(format!(
                "`{name}` = \"{text}\" is not a duration like \"30s\""
            ))
        }),
        Some(other) => Err(ProviderError::new(format!(
            "`{name}` must be a duration, not {other}"
        ))),
    }
}

impl Spec {
    fn read(config: &Attributes, address: &str, config_dir: &Path) -> Result<Spec, ProviderError> {
        let template = config.get("template").cloned().unwrap_or(Value::Null);
        let command: Vec<String> = template["command"]
            .as_array()
            .map(|words| {
                words
                    .iter()
                    .filter_map(|w| w.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if command.is_empty() {
            return Err(ProviderError::new("`template.command` is required"));
        }
        let env = template["env"]
            .as_object()
            .map(|vars| {
                vars.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let workdir = match template["workdir"].as_str() {
            Some(dir) => config_dir.join(dir),
            None => config_dir.to_path_buf(),
        };
        let health = config.get("health").cloned().unwrap_or(Value::Null);
        let health_duration =
            |name: &str, default: Duration| duration(health.get(name), name, default);
        let threshold = |name: &str, default: u32| {
            health[name]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let health = Health {
            path: health["path"].as_str().unwrap_or("/healthz").to_string(),
            interval: health_duration("interval", Duration::from_secs(10))?,
            timeout: health_duration("timeout", Duration::from_secs(2))?,
            healthy_threshold: threshold("healthy_threshold", 2),
            unhealthy_threshold: threshold("unhealthy_threshold", 3),
        };
        Ok(Spec {
            address: address.to_string(),
            replicas: config.get("replicas").and_then(Value::as_u64).unwrap_or(1) as usize,
            command,
            env,
            workdir,
            health,
            load_balancer: config
                .get("load_balancer")
                .and_then(Value::as_str)
                .map(String::from),
            min_ready: duration(
                config.get("min_ready"),
                "min_ready",
                Duration::from_secs(10),
            )?,
            healthy_deadline: duration(
                config.get("healthy_deadline"),
                "healthy_deadline",
                Duration::from_secs(300),
            )?,
            drain: duration(config.get("drain"), "drain", Duration::from_secs(30))?,
            version: version_of(config),
            release: match config.get("version") {
                Some(Value::String(text)) => Some(text.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
        })
    }
}

/// One version of a deployment on this machine: its spec, its load
/// balancer's admin API, its journal.
struct Release {
    runtime: RuntimeDir,
    spec: Spec,
    admin: Option<AdminApi>,
    journal: Journal,
}

fn failed(message: String) -> ProviderError {
    ProviderError::new(message).with_code("DeploymentFailed")
}

impl Release {
    fn new(
        runtime: &RuntimeDir,
        config_dir: &Path,
        address: &str,
        config: &Attributes,
    ) -> Result<Release, ProviderError> {
        let spec = Spec::read(config, address, config_dir)?;
        let admin = spec
            .load_balancer
            .as_deref()
            .and_then(|listen| AdminApi::find(runtime, listen));
        Ok(Release {
            runtime: runtime.clone(),
            journal: Journal::of(runtime, address),
            spec,
            admin,
        })
    }

    /// The admin API of the deployment's load balancer (`None` without
    /// one); an error if it has one that is not running.
    fn admin(&self) -> Result<Option<&AdminApi>, ProviderError> {
        match (&self.spec.load_balancer, &self.admin) {
            (Some(listen), None) => Err(failed(format!(
                "the load balancer on {listen} is not running (no {}/admin.json)",
                self.runtime.load_balancer(listen).display()
            ))),
            (_, admin) => Ok(admin.as_ref()),
        }
    }

    fn log_of(&self, name: &str) -> PathBuf {
        self.runtime
            .deployment(&self.spec.address)
            .join(format!("{name}.log"))
    }

    /// Starts `count` instances and brings them into service; on failure
    /// stops all of them.
    async fn add(
        &self,
        count: usize,
        pool: Option<&str>,
        taken: &mut BTreeSet<String>,
    ) -> Result<Vec<Instance>, ProviderError> {
        let mut started = Vec::new();
        for _ in 0..count {
            match self.start(pool, taken) {
                Ok(instance) => started.push(instance),
                Err(error) => {
                    self.remove_all(&started).await;
                    return Err(error);
                }
            }
        }
        if let Err(error) = self.bring_into_service(&started).await {
            self.remove_all(&started).await;
            return Err(error);
        }
        Ok(started)
    }

    fn start(
        &self,
        pool: Option<&str>,
        taken: &mut BTreeSet<String>,
    ) -> Result<Instance, ProviderError> {
        let base = self.spec.address.rsplit('.').next().unwrap_or("instance");
        let name = (0..)
            .map(|n| format!("{base}-{n}"))
            .find(|name| !taken.contains(name))
            .unwrap_or_default();
        taken.insert(name.clone());
        let port = free_port().map_err(|e| failed(format!("no free port: {e}")))?;
        let fill = |text: &str| text.replace("{port}", &port.to_string());
        let words: Vec<String> = self.spec.command.iter().map(|w| fill(w)).collect();
        let mut env: Vec<(String, String)> = self
            .spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), fill(v)))
            .collect();
        env.push(("PORT".into(), port.to_string()));
        env.push(("INFRA_INSTANCE".into(), name.clone()));
        // What finds it again if infra dies before the journal names it.
        env.push((JOURNAL_ENV.into(), self.journal.0.display().to_string()));
        env.push(("INFRA_VERSION".into(), self.spec.version.clone()));
        if let Some(release) = &self.spec.release {
            env.push(("INFRA_RELEASE".into(), release.clone()));
        }
        env.push(("INFRA_POOL".into(), pool.unwrap_or_default().to_string()));
        let log = self.log_of(&name);
        let program = resolve_program(&words[0], &self.spec.workdir);
        let process = process::spawn(Spawn {
            program: &program,
            args: &words[1..],
            env: &env,
            workdir: &self.spec.workdir,
            log: &log,
            detach: Detach::Group,
        })
        .map_err(|e| failed(format!("cannot start `{}` for {name}: {e}", words[0])))?;
        let instance = Instance {
            name,
            port,
            process,
            version: self.spec.version.clone(),
            release: self.spec.release.clone(),
            pool: pool.map(String::from),
        };
        if let Err(error) = self.journal.add(&instance) {
            // Not recorded anywhere: it must not outlive this call.
            process::signal(instance.process.pid, true, rustix::process::Signal::KILL);
            return Err(error);
        }
        Ok(instance)
    }

    /// Healthy `healthy_threshold` times in a row, still healthy after
    /// `min_ready`, registered, and healthy in the load balancer's eyes.
    async fn bring_into_service(&self, instances: &[Instance]) -> Result<(), ProviderError> {
        if instances.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.spec.healthy_deadline;
        // A process still starting has not opened its port: checking it
        // then would only cost a whole `interval`.
        for instance in instances {
            while tokio::net::TcpStream::connect(instance.socket_addr())
                .await
                .is_err()
                && instance.process.is_running()
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let health = &self.spec.health;
        let mut passes = vec![0u32; instances.len()];
        let mut last_problem = vec![String::from("not checked yet"); instances.len()];
        loop {
            for (at, instance) in instances.iter().enumerate() {
                if passes[at] >= health.healthy_threshold {
                    continue;
                }
                if !instance.process.is_running() {
                    return Err(failed(format!(
                        "instance {} exited before it became healthy; its log ends with:\n{}",
                        instance.name,
                        process::log_tail(&self.log_of(&instance.name), 5)
                    )));
                }
                match self.check(instance).await {
                    Ok(()) => passes[at] += 1,
                    Err(problem) => {
                        passes[at] = 0;
                        last_problem[at] = problem;
                    }
                }
            }
            if passes.iter().all(|p| *p >= health.healthy_threshold) {
                break;
            }
            if Instant::now() >= deadline {
                let at = passes
                    .iter()
                    .position(|p| *p < health.healthy_threshold)
                    .unwrap_or(0);
                return Err(failed(format!(
                    "instance {} was not healthy within healthy_deadline ({:?}): {}",
                    instances[at].name, self.spec.healthy_deadline, last_problem[at]
                )));
            }
            tokio::time::sleep(health.interval.min(Duration::from_secs(1))).await;
        }
        if !self.spec.min_ready.is_zero() {
            tokio::time::sleep(self.spec.min_ready).await;
            for instance in instances {
                if self.check(instance).await.is_err() {
                    return Err(failed(format!(
                        "instance {} failed its health check during min_ready ({:?})",
                        instance.name, self.spec.min_ready
                    )));
                }
            }
        }
        self.register(instances).await?;
        self.wait_in_service(instances, deadline).await
    }

    /// One health check of `instance`: a 2xx or 3xx within the timeout, or
    /// what went wrong.
    async fn check(&self, instance: &Instance) -> Result<(), String> {
        let health = &self.spec.health;
        match http::get(&instance.addr(), &health.path, health.timeout).await {
            Ok(answer) if (200..400).contains(&answer.status) => Ok(()),
            Ok(answer) => Err(format!("GET {} answered {}", health.path, answer.status)),
            Err(error) => Err(format!("GET {}: {error}", health.path)),
        }
    }

    async fn register(&self, instances: &[Instance]) -> Result<(), ProviderError> {
        let Some(admin) = self.admin()? else {
            return Ok(());
        };
        let health = HealthSettings {
            path: Some(self.spec.health.path.clone()),
            interval_ms: Some(millis(self.spec.health.interval)),
            timeout_ms: Some(millis(self.spec.health.timeout)),
            healthy_threshold: Some(self.spec.health.healthy_threshold),
            unhealthy_threshold: Some(self.spec.health.unhealthy_threshold),
        };
        for instance in instances {
            let registration = Registration {
                pool: instance.pool(&self.spec.address).to_string(),
                addr: instance.socket_addr(),
                health: health.clone(),
            };
            admin
                .register(
                    &backend_id(&self.spec.address, &instance.name),
                    &registration,
                )
                .await?;
        }
        Ok(())
    }

    /// The backend ids of `instances` the load balancer does not have
    /// healthy and taking requests.
    async fn not_in_service(
        &self,
        admin: &AdminApi,
        instances: &[Instance],
    ) -> Result<Vec<String>, ProviderError> {
        let status = admin.status().await?;
        let healthy = status.in_service();
        Ok(instances
            .iter()
            .map(|i| backend_id(&self.spec.address, &i.name))
            .filter(|id| !healthy.contains(id.as_str()))
            .collect())
    }

    /// Waits until the load balancer reports every instance healthy.
    async fn wait_in_service(
        &self,
        instances: &[Instance],
        deadline: Instant,
    ) -> Result<(), ProviderError> {
        let Some(admin) = self.admin()? else {
            return Ok(());
        };
        loop {
            let missing = self.not_in_service(admin, instances).await?;
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "the load balancer did not find {missing:?} healthy within healthy_deadline ({:?})",
                    self.spec.healthy_deadline
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deregisters (letting requests in flight finish, up to `drain`) and
    /// stops an instance.
    async fn remove(&self, instance: &Instance) {
        // Out of Prometheus's targets first: it stops scraping while the
        // instance drains, rather than finding it down.
        self.journal.leaving(instance);
        if let Some(admin) = &self.admin {
            let id = backend_id(&self.spec.address, &instance.name);
            // A load balancer that is gone sends it nothing anyway.
            let _ = admin.deregister(&id, self.spec.drain).await;
        }
        process::stop(instance.process, true, STOP_GRACE).await;
        self.journal.remove(instance);
    }

    /// Removes instances together: they drain at the same time.
    async fn remove_all(&self, instances: &[Instance]) {
        futures_util::future::join_all(instances.iter().map(|i| self.remove(i))).await;
    }

    async fn delete(&self, state: &Attributes) {
        self.remove_all(&self.journal.running(instances_of(state)))
            .await;
    }
}

/// Deletes a deployment: every instance it runs retired (without a load
/// balancer any more, the instances are still stopped).
pub(crate) async fn delete(
    runtime: &RuntimeDir,
    config_dir: &Path,
    address: &str,
    state: &Attributes,
) -> Result<(), ProviderError> {
    Release::new(runtime, config_dir, address, state)?
        .delete(state)
        .await;
    Ok(())
}

/// A deployment's fleet on this machine: the wanted version, and the one
/// the state records (which a rollback starts again).
pub(crate) struct LocalFleet {
    wanted: Release,
    previous: Option<Release>,
    /// The wanted configuration, recorded with the instances.
    config: Attributes,
    /// The instances the state records.
    recorded: Vec<Instance>,
}

impl LocalFleet {
    pub(crate) fn new(
        runtime: &RuntimeDir,
        config_dir: &Path,
        request: &FleetRequest,
    ) -> Result<LocalFleet, ProviderError> {
        let address = &request.identity.address;
        runtime
            .ensure()
            .map_err(|e| failed(format!("cannot create the runtime directory .infra/: {e}")))?;
        let previous = if request.prior.is_empty() {
            None
        } else {
            Release::new(runtime, config_dir, address, &request.prior).ok()
        };
        Ok(LocalFleet {
            wanted: Release::new(runtime, config_dir, address, &request.config)?,
            previous,
            config: request.config.clone(),
            recorded: instances_of(&request.prior),
        })
    }

    fn release(&self, which: Version) -> Result<&Release, ProviderError> {
        match which {
            Version::Wanted => Ok(&self.wanted),
            Version::Previous => self
                .previous
                .as_ref()
                .ok_or_else(|| failed("no previous version to start".into())),
        }
    }

    /// The release an instance belongs to (the wanted one for a version
    /// neither knows: it only needs retiring).
    fn release_of(&self, instance: &Instance) -> &Release {
        match &self.previous {
            Some(previous) if previous.spec.version == instance.version => previous,
            _ => &self.wanted,
        }
    }

    /// Every running instance: recorded or journaled.
    fn running(&self) -> Vec<Instance> {
        self.wanted.journal.running(self.recorded.clone())
    }

    fn named(&self, names: &[String]) -> Vec<Instance> {
        self.running()
            .into_iter()
            .filter(|i| names.contains(&i.name))
            .collect()
    }

    fn address(&self) -> &str {
        &self.wanted.spec.address
    }

    fn as_fleet_instance(&self, instance: &Instance) -> FleetInstance {
        FleetInstance {
            name: instance.name.clone(),
            version: instance.version.clone(),
            pool: instance.pool(self.address()).to_string(),
        }
    }
}

impl Fleet for LocalFleet {
    fn version(&self, which: Version) -> Option<VersionInfo> {
        self.release(which).ok().map(|release| VersionInfo {
            id: release.spec.version.clone(),
            replicas: release.spec.replicas,
        })
    }

    fn pools(&self) -> [String; 2] {
        let address = self.address();
        [address.to_string(), format!("{address}/b")]
    }

    fn balanced(&self) -> bool {
        self.wanted.spec.load_balancer.is_some()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observed, ProviderError>> {
        Box::pin(async move {
            // Nothing starts without the load balancer it must join.
            let admin = self.wanted.admin()?;
            let running = self.running();
            let mut observed = Observed {
                instances: running.iter().map(|i| self.as_fleet_instance(i)).collect(),
                ..Observed::default()
            };
            match admin {
                None => observed.in_service = running.iter().map(|i| i.name.clone()).collect(),
                Some(admin) => {
                    let status = admin.status().await?;
                    let healthy = status.in_service();
                    observed.in_service = running
                        .iter()
                        .filter(|i| healthy.contains(backend_id(self.address(), &i.name).as_str()))
                        .map(|i| i.name.clone())
                        .collect();
                    observed.weights = status
                        .pools
                        .iter()
                        .map(|(name, pool)| (name.clone(), pool.weight))
                        .collect();
                }
            }
            Ok(observed)
        })
    }

    fn admit(&self, names: Vec<String>) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            // Each version's instances registered, then waited for together
            // (not one wait after another).
            let (previous, wanted): (Vec<Instance>, Vec<Instance>) = self
                .named(&names)
                .into_iter()
                .partition(|i| !std::ptr::eq(self.release_of(i), &self.wanted));
            for instances in [wanted, previous] {
                let Some(first) = instances.first() else {
                    continue;
                };
                let release = self.release_of(first);
                release.register(&instances).await?;
                release
                    .wait_in_service(&instances, Instant::now() + release.spec.healthy_deadline)
                    .await?;
            }
            Ok(())
        })
    }

    fn start(
        &self,
        version: Version,
        pool: String,
        count: usize,
    ) -> BoxFuture<'_, Result<Vec<FleetInstance>, ProviderError>> {
        Box::pin(async move {
            let release = self.release(version)?;
            let mut taken: BTreeSet<String> = self.running().into_iter().map(|i| i.name).collect();
            let pool = (pool != self.address()).then_some(pool);
            let started = release.add(count, pool.as_deref(), &mut taken).await?;
            Ok(started.iter().map(|i| self.as_fleet_instance(i)).collect())
        })
    }

    fn retire(&self, names: Vec<String>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let instances = self.named(&names);
            futures_util::future::join_all(instances.iter().map(|i| self.release_of(i).remove(i)))
                .await;
        })
    }

    fn route(&self, traffic: Traffic) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let Some(admin) = self.wanted.admin()? else {
                return Ok(());
            };
            if let Some(routes) = &traffic.routes {
                admin.set_routes(routes).await?;
            }
            admin.set_weights(&traffic.weights).await?;
            let status = admin.status().await?;
            let weights_taken = traffic
                .weights
                .iter()
                .all(|(pool, weight)| status.pools.get(pool).map(|p| p.weight) == Some(*weight));
            let routes_taken = traffic.routes.as_ref().is_none_or(|r| *r == status.routes);
            if weights_taken && routes_taken {
                Ok(())
            } else {
                Err(failed(format!(
                    "the load balancer did not take the weights {:?} or the routes",
                    traffic.weights
                )))
            }
        })
    }

    fn totals(&self, pool: String) -> BoxFuture<'_, Result<PoolTotals, ProviderError>> {
        Box::pin(async move {
            match self.wanted.admin()? {
                Some(admin) => admin.totals(&pool).await,
                None => Err(failed(
                    "no load balancer counts this deployment's requests".into(),
                )),
            }
        })
    }

    fn record(&self, names: &[String]) -> Attributes {
        let mut state = self.config.clone();
        state.insert("id".into(), json!(self.address()));
        state.insert(
            "instances".into(),
            Value::Array(self.named(names).iter().map(Instance::to_json).collect()),
        );
        state
    }
}

/// The load balancer's name for an instance.
fn backend_id(address: &str, instance: &str) -> String {
    format!("{}.{instance}", crate::runtime::file_name(address))
}

/// A duration in whole milliseconds, as the admin protocol writes it.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `./bin/app` relative to the instance's working directory; a bare name
/// is looked up on the PATH by the OS.
fn resolve_program(program: &str, workdir: &Path) -> String {
    if program.contains('/') && !Path::new(program).is_absolute() {
        workdir.join(program).to_string_lossy().into_owned()
    } else {
        program.to_string()
    }
}

/// Refresh: the instances still running; `replicas` counts those of the
/// recorded version that the load balancer has (all running ones of it
/// when there is none) — not the new version's instances of a rollout
/// that waits at a gate or was interrupted.
pub(crate) async fn read(runtime: &RuntimeDir, mut state: Attributes) -> Attributes {
    let address = state
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let running = Journal::of(runtime, &address).running(instances_of(&state));
    let version = version_of(&state);
    let recorded: Vec<&Instance> = running.iter().filter(|i| i.version == version).collect();
    let serving = match state.get("load_balancer").and_then(Value::as_str) {
        None => recorded.len(),
        Some(listen) => match AdminApi::find(runtime, listen) {
            None => 0,
            Some(admin) => match admin.status().await {
                Err(_) => 0,
                Ok(status) => {
                    let registered: BTreeSet<&str> =
                        status.backends().map(|b| b.id.as_str()).collect();
                    recorded
                        .iter()
                        .filter(|i| registered.contains(backend_id(&address, &i.name).as_str()))
                        .count()
                }
            },
        },
    };
    state.insert("replicas".into(), json!(serving));
    state.insert(
        "instances".into(),
        Value::Array(running.iter().map(Instance::to_json).collect()),
    );
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_change_is_a_new_version_and_env_order_is_not() {
        let dir = Path::new("/tmp");
        let config = |env: Value, command: &str| -> Attributes {
            [
                ("replicas".to_string(), json!(2)),
                (
                    "template".to_string(),
                    json!({"command": [command], "env": env}),
                ),
            ]
            .into()
        };
        let a = Spec::read(
            &config(json!({"A": "1", "B": "2"}), "app"),
            "deployment.x",
            dir,
        )
        .unwrap();
        let b = Spec::read(
            &config(json!({"B": "2", "A": "1"}), "app"),
            "deployment.x",
            dir,
        )
        .unwrap();
        let c = Spec::read(
            &config(json!({"A": "1", "B": "2"}), "app2"),
            "deployment.x",
            dir,
        )
        .unwrap();
        assert_eq!(a.version, b.version);
        assert_ne!(a.version, c.version);
    }
}
