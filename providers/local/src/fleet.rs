//! `local_deployment`: what a `deployment` block with `provider = local`
//! becomes. Each instance is a process in its own process group, started
//! from `template.command` with `{port}` replaced by a free loopback port,
//! logging to `.infra/deployments/<address>/<instance>.log`, and known by
//! pid and start time.
//!
//! - Create starts `replicas` instances, waits until each passes its health
//!   check `healthy_threshold` times in a row and then stays healthy for
//!   `min_ready`, registers them in the load balancer, and waits until the
//!   load balancer's own checks find them healthy. An instance not healthy
//!   by `healthy_deadline` fails the create, and every instance it started
//!   is stopped.
//! - Refresh keeps the instances still running (a dead process, or another
//!   process under a recorded pid, is gone) and reports as `replicas` those
//!   that are running and registered: a killed instance shows as
//!   `replicas: 2 → 3`.
//! - Every started instance is journaled at once (`Journal`): instances an
//!   interrupted apply started are taken over by the next operation, never
//!   doubled.
//! - Update starts what is missing, replaces instances of another version
//!   (template or `version` changed) as a rolling update in batches —
//!   never more than `replicas + max_surge` instances, never fewer than
//!   `replicas - max_unavailable` in service (the engine works both out
//!   from the `strategy` block), new instances healthy and registered
//!   before the old ones are drained and stopped — and retires what is
//!   too many.
//! - A rollout that fails (an instance never healthy, `progress_deadline`
//!   passed) is rolled back when `auto_rollback`: the previous version's
//!   fleet restores its instances to `replicas` in service before the new
//!   version's are drained and stopped.
//! - Delete deregisters (draining for `drain`) and stops every instance:
//!   SIGTERM to its group, then SIGKILL after a grace period.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use infra_provider_sdk::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::analysis::{Rules, Verdict};
use crate::lb::DEFAULT_WEIGHT;
use crate::lb::protocol::{HealthSettings, Registration, Route, Routes, Weights};
use crate::load_balancer::AdminApi;
use crate::runtime::http;
use crate::runtime::process::{self, Detach, ProcessId, Spawn};
use crate::runtime::{RuntimeDir, free_port};

/// How long a stopped instance gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub(crate) fn schema() -> ResourceSchema {
    let any = |description: &str| Attribute::optional(AttributeType::Any).describe(description);
    ResourceSchema::new(
        "a fleet of processes on this machine (a `deployment` with `provider = local`)",
        [
            (
                "replicas",
                Attribute::required(AttributeType::Number).describe("how many instances"),
            ),
            ("version", any("the version; a change is a new version")),
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
                "min_ready",
                any("healthy this long before an instance counts (default 10s)"),
            ),
            (
                "healthy_deadline",
                any("an instance not healthy by then fails (default 5m)"),
            ),
            (
                "progress_deadline",
                any("the whole change must finish by then (default 10m)"),
            ),
            (
                "drain",
                any("time given to requests in flight when an instance leaves (default 30s)"),
            ),
            (
                "auto_rollback",
                any("a failed rollout restores the previous version (default true)"),
            ),
            (
                "strategy",
                any("rolling: max_surge and max_unavailable as counts (the engine works them out)"),
            ),
            (
                "instances",
                Attribute::computed(AttributeType::Any)
                    .describe("the running instances: name, port, pid, start time, version"),
            ),
            (
                "id",
                Attribute::computed(AttributeType::String).describe("the deployment's address"),
            ),
        ],
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
        json
    }

    fn from_json(value: &Value) -> Option<Instance> {
        Some(Instance {
            name: value["name"].as_str()?.to_string(),
            port: u16::try_from(value["port"].as_u64()?).ok()?,
            process: ProcessId::from_json(value.get("pid"), value.get("started"))?,
            version: value["version"].as_str()?.to_string(),
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
struct Journal(PathBuf);

impl Journal {
    fn of(runtime: &RuntimeDir, address: &str) -> Journal {
        Journal(runtime.deployment(address).join("instances.json"))
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
            .map_err(|e| failed(format!("cannot write {}: {e}", self.0.display())))
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

    /// The running instances among those `recorded` and those journaled.
    fn running(&self, recorded: Vec<Instance>) -> Vec<Instance> {
        let mut all: Vec<Instance> = Vec::new();
        for instance in recorded.into_iter().chain(self.read()) {
            if instance.process.is_running() && !all.iter().any(|i| i.process == instance.process) {
                all.push(instance);
            }
        }
        all
    }
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

/// A deployment's configuration, read once per operation.
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
    /// Rolling: instances that may run beyond `replicas`, and that may be
    /// missing from it, during a rollout (the engine works them out).
    max_surge: usize,
    max_unavailable: usize,
    /// The whole change must finish by then, or it fails (and rolls back).
    progress_deadline: Duration,
    /// A failed rollout restores the previous version.
    auto_rollback: bool,
    /// Blue/green (`strategy blue_green`): how long the old version is
    /// kept after the switch. `None`: rolling.
    keep_blue: Option<Duration>,
    /// Canary (`strategy canary`): its steps and analysis.
    canary: Option<Canary>,
}

/// A canary rollout as the engine passes it: its steps, and the analysis
/// rules (none: the pauses alone).
#[derive(Debug, Clone)]
struct Canary {
    steps: Vec<CanaryStep>,
    analysis: Option<Rules>,
}

/// One step: a share of all requests (percent), or only the requests a
/// route matches; for how long.
#[derive(Debug, Clone)]
struct CanaryStep {
    weight: u32,
    route: Option<Route>,
    pause: Duration,
}

impl Canary {
    fn read(settings: &Value) -> Option<Canary> {
        let steps = settings["steps"]
            .as_array()?
            .iter()
            .map(|step| {
                Some(CanaryStep {
                    weight: u32::try_from(step["weight"].as_u64().unwrap_or(0)).ok()?,
                    route: serde_json::from_value(step["match"].clone()).ok(),
                    pause: Duration::from_millis(step["pause_ms"].as_u64().unwrap_or(0)),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let analysis = settings.get("analysis").filter(|a| a.is_object()).map(|a| {
            Rules::read(
                a,
                Duration::from_millis(a["interval_ms"].as_u64().unwrap_or(60_000)),
            )
        });
        Some(Canary { steps, analysis })
    }
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

/// `strategy.rolling.<name>`, a count of instances.
fn rolling_setting(config: &Attributes, name: &str, default: usize) -> usize {
    config
        .get("strategy")
        .and_then(|strategy| strategy.get("rolling"))
        .and_then(|rolling| rolling.get(name))
        .and_then(Value::as_u64)
        .map_or(default, |n| n as usize)
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
        // Any change of the template (or of `version`) is a new version.
        let digest = Sha256::digest(
            json!({ "template": template, "version": config.get("version") }).to_string(),
        );
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
            progress_deadline: duration(
                config.get("progress_deadline"),
                "progress_deadline",
                Duration::from_secs(600),
            )?,
            auto_rollback: config.get("auto_rollback").and_then(Value::as_bool) != Some(false),
            keep_blue: match config.get("strategy").and_then(|s| s.get("blue_green")) {
                Some(settings) => Some(duration(
                    settings.get("keep_blue"),
                    "keep_blue",
                    Duration::from_secs(30),
                )?),
                None => None,
            },
            canary: config
                .get("strategy")
                .and_then(|s| s.get("canary"))
                .and_then(Canary::read),
            max_surge: rolling_setting(config, "max_surge", 1),
            max_unavailable: rolling_setting(config, "max_unavailable", 0),
            version: digest.iter().take(6).map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// Carries out one operation on a deployment.
pub(crate) struct Fleet<'a> {
    runtime: &'a RuntimeDir,
    /// Where each step of a rollout is reported, as it happens.
    progress: Progress,
    config_dir: PathBuf,
    spec: Spec,
    admin: Option<AdminApi>,
    journal: Journal,
}

fn failed(message: String) -> ProviderError {
    ProviderError::new(message).with_code("DeploymentFailed")
}

impl<'a> Fleet<'a> {
    pub(crate) fn new(
        runtime: &'a RuntimeDir,
        config_dir: &Path,
        address: &str,
        config: &Attributes,
    ) -> Result<Fleet<'a>, ProviderError> {
        let spec = Spec::read(config, address, config_dir)?;
        let admin = spec
            .load_balancer
            .as_deref()
            .and_then(|listen| AdminApi::find(runtime, listen));
        Ok(Fleet {
            runtime,
            progress: Progress::default(),
            config_dir: config_dir.to_path_buf(),
            journal: Journal::of(runtime, address),
            spec,
            admin,
        })
    }

    /// Reports each step of its operations to `progress`.
    pub(crate) fn reporting(mut self, progress: Progress) -> Fleet<'a> {
        self.progress = progress;
        self
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
        let healthy: BTreeSet<&str> = status
            .backends()
            .filter(|b| b.healthy && !b.draining)
            .map(|b| b.id.as_str())
            .collect();
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

    fn state(&self, config: &Attributes, instances: &[Instance]) -> Attributes {
        let mut state = config.clone();
        state.insert("id".into(), json!(self.spec.address));
        state.insert(
            "instances".into(),
            Value::Array(instances.iter().map(Instance::to_json).collect()),
        );
        state
    }

    pub(crate) async fn create(&self, config: &Attributes) -> Result<Attributes, ProviderError> {
        self.runtime
            .ensure()
            .map_err(|e| failed(format!("cannot create the runtime directory .infra/: {e}")))?;
        // Instances of an interrupted create are taken over, not doubled.
        self.update(&Attributes::new(), config).await
    }

    /// Brings the deployment to `config` from `prior` (see [`Fleet::converge`])
    /// within `progress_deadline`. A rollout of a new version that fails
    /// (an instance never healthy, the deadline passed) is rolled back
    /// when `auto_rollback` (the default): the previous version is back at
    /// full strength before the new instances are stopped, and the error
    /// says so — the state keeps the previous version, so the next plan
    /// still shows the new one as pending.
    pub(crate) async fn update(
        &self,
        prior: &Attributes,
        config: &Attributes,
    ) -> Result<Attributes, ProviderError> {
        let deadline = self.spec.progress_deadline;
        let error = match tokio::time::timeout(deadline, self.converge(prior, config)).await {
            Ok(Ok(state)) => return Ok(state),
            Ok(Err(error)) => error,
            Err(_) => failed(format!(
                "the change did not finish within progress_deadline ({deadline:?})"
            )),
        };
        if !self.spec.auto_rollback || prior.is_empty() {
            return Err(error);
        }
        self.progress.report(&format!(
            "rolling back: {}",
            error.message.lines().next().unwrap_or("")
        ));
        let previous = Fleet::new(self.runtime, &self.config_dir, &self.spec.address, prior)?
            .reporting(self.progress.clone());
        if previous.spec.version == self.spec.version {
            // Not a new version: nothing to go back to.
            return Err(error);
        }
        let mut error = error;
        match previous.restore(prior).await {
            Ok(serving) => {
                error.message = format!(
                    "{}\nrolled back: {serving} instance(s) of the previous version serve again; the new version's instances are stopped",
                    error.message
                );
            }
            Err(rollback) => {
                error.message = format!(
                    "{}\nand the rollback failed: {}",
                    error.message, rollback.message
                );
            }
        }
        Err(error)
    }

    /// The rollback, run by the previous version's fleet: its instances
    /// (those recorded and those the journal knows) registered and in
    /// service, traffic sent back to them at once (after a blue/green
    /// switch), missing ones started, and only then every instance of
    /// another version drained and stopped. Returns how many serve.
    async fn restore(&self, prior: &Attributes) -> Result<usize, ProviderError> {
        let running = self.journal.running(instances_of(prior));
        let mut taken: BTreeSet<String> = running.iter().map(|i| i.name.clone()).collect();
        let (mut current, others): (Vec<Instance>, Vec<Instance>) = running
            .into_iter()
            .partition(|i| i.version == self.spec.version);
        self.register(&current).await?;
        self.wait_in_service(&current, Instant::now() + self.spec.healthy_deadline)
            .await?;
        if !current.is_empty() {
            self.route_to(&current, &others).await?;
        }
        let missing = self.spec.replicas.saturating_sub(current.len());
        let pool = current.first().and_then(|i| i.pool.clone());
        current.extend(self.add(missing, pool.as_deref(), &mut taken).await?);
        self.route_to(&current, &others).await?;
        self.remove_all(&others).await;
        Ok(current.len())
    }

    /// Sends all traffic to the pools of `serving`, none to those of
    /// `others`: one weight change, so it is atomic.
    async fn route_to(
        &self,
        serving: &[Instance],
        others: &[Instance],
    ) -> Result<(), ProviderError> {
        let Some(admin) = self.admin()? else {
            return Ok(());
        };
        let address = &self.spec.address;
        let mut weights: Weights = others
            .iter()
            .map(|i| (i.pool(address).to_string(), 0))
            .collect();
        for instance in serving {
            weights.insert(instance.pool(address).to_string(), DEFAULT_WEIGHT);
        }
        if weights.is_empty() {
            return Ok(());
        }
        // All traffic by weight: no request routed by a header any more.
        admin.set_routes(&Routes::new()).await?;
        admin.set_weights(&weights).await
    }

    /// The pool a blue/green rollout puts the new version in: the one the
    /// old version is not in (the deployment has two, named `ADDRESS` and
    /// `ADDRESS/b`).
    fn other_pool(&self, pool: &str) -> Option<String> {
        (pool == self.spec.address).then(|| format!("{}/b", self.spec.address))
    }

    /// The pool a new version starts in, beside the one the old version
    /// serves from (see [`Fleet::other_pool`]), and its name: at weight 0
    /// before any of the new version's instances exists (none, or those of
    /// an interrupted rollout already there), so none gets a request.
    async fn idle_pool(
        &self,
        serving: &str,
        new: &[Instance],
    ) -> Result<(Option<String>, String), ProviderError> {
        let pool = self.other_pool(serving);
        let name = pool.clone().unwrap_or_else(|| self.spec.address.clone());
        if let Some(admin) = self.admin()?
            && new.is_empty()
        {
            admin.set_weights(&[(name.clone(), 0)].into()).await?;
        }
        Ok((pool, name))
    }

    /// Canary: for each step, enough instances of the new version (at least
    /// one, `ceil(replicas × weight / 100)`) started in the pool the old
    /// version is not in, at weight 0, then the step's share of the
    /// traffic sent to them (set in one weight change and read back),
    /// watched for the step's pause by the analysis; then the rest of the
    /// new version started there, all traffic switched to it at once, and
    /// the old version drained and stopped. A failed analysis (or one that
    /// cannot judge) fails the rollout, whose rollback sends all traffic
    /// back to the old version at once.
    async fn canary(
        &self,
        canaries: &mut Vec<Instance>,
        stable: &[Instance],
        canary: &Canary,
        taken: &mut BTreeSet<String>,
    ) -> Result<(), ProviderError> {
        let stable_pool = stable[0].pool(&self.spec.address).to_string();
        let (canary_pool, canary_name) = self.idle_pool(&stable_pool, canaries).await?;
        let admin = self.admin()?;
        let replicas = self.spec.replicas;
        for (at, step) in canary.steps.iter().enumerate() {
            let weight = step.weight.min(100);
            let needed = (replicas * weight as usize)
                .div_ceil(100)
                .clamp(1, replicas.max(1));
            let missing = needed.saturating_sub(canaries.len());
            let number = format!("step {} of {}", at + 1, canary.steps.len());
            if missing > 0 {
                self.progress
                    .report(&format!("{number}: starting {missing} canary instance(s)"));
            }
            canaries.extend(self.add(missing, canary_pool.as_deref(), taken).await?);
            let Some(admin) = admin else { continue };
            // A route sends the requests it matches, and only those.
            let routes: Routes = step
                .route
                .iter()
                .map(|route| (canary_name.clone(), route.clone()))
                .collect();
            admin.set_routes(&routes).await?;
            let weights: Weights = [
                (canary_name.clone(), weight),
                (stable_pool.clone(), 100 - weight),
            ]
            .into();
            admin.set_weights(&weights).await?;
            let status = admin.status().await?;
            if status.pools.get(&canary_name).map(|p| p.weight) != Some(weight)
                || status.routes != routes
            {
                return Err(failed(format!(
                    "canary step {}: the load balancer did not take the weight {weight} or the route",
                    at + 1
                )));
            }
            let share = match &step.route {
                Some(route) => format!("{}: {}", route.header, route.values.join(", ")),
                None => format!("weight {weight}%"),
            };
            self.progress.report(&format!(
                "{number}: {share} to the new version, for {:?}",
                step.pause
            ));
            self.watch(admin, &canary_name, step.pause, canary.analysis.as_ref())
                .await
                .map_err(|why| failed(format!("canary step {} ({share}): {why}", at + 1)))?;
        }
        let missing = replicas.saturating_sub(canaries.len());
        self.progress.report(&format!(
            "promoting: starting the other {missing} new instance(s)"
        ));
        canaries.extend(self.add(missing, canary_pool.as_deref(), taken).await?);
        self.route_to(canaries, stable).await?;
        self.progress.report(&format!(
            "all traffic switched to the new version; retiring the {} old instance(s)",
            stable.len()
        ));
        self.remove_all(stable).await;
        Ok(())
    }

    /// Watches the canary pool for `pause`: a reading every `interval`,
    /// judged by the rules. Fails at `failure_limit` failed readings, past
    /// `inconclusive_limit` inconclusive ones or `consecutive_error_limit`
    /// readings in a row that could not be taken, and at the end of the
    /// pause when no reading passed (inconclusive is never a pass).
    async fn watch(
        &self,
        admin: &AdminApi,
        pool: &str,
        pause: Duration,
        rules: Option<&Rules>,
    ) -> Result<(), String> {
        let Some(rules) = rules else {
            tokio::time::sleep(pause).await;
            return Ok(());
        };
        let end = Instant::now() + pause;
        let (mut failures, mut inconclusive, mut errors, mut passes) = (0u32, 0u32, 0u32, 0u32);
        let mut last = String::from("no reading yet");
        let mut before = admin.totals(pool).await.ok();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(rules.interval.min(left.max(Duration::from_millis(1)))).await;
            match (admin.totals(pool).await, &before) {
                (Ok(after), Some(earlier)) => {
                    errors = 0;
                    let verdict = rules.judge(earlier, &after);
                    self.progress.report(&format!("analysis: {verdict}"));
                    match verdict {
                        Verdict::Pass(_) => passes += 1,
                        Verdict::Fail(why) => {
                            failures += 1;
                            last = why;
                            if failures >= rules.failure_limit.max(1) {
                                return Err(format!(
                                    "analysis failed ({failures} of failure_limit {}): {last}",
                                    rules.failure_limit
                                ));
                            }
                        }
                        Verdict::Inconclusive(why) => {
                            inconclusive += 1;
                            last = why;
                            if inconclusive > rules.inconclusive_limit {
                                return Err(format!(
                                    "analysis inconclusive {inconclusive} times (inconclusive_limit {}): {last}",
                                    rules.inconclusive_limit
                                ));
                            }
                        }
                    }
                    before = Some(after);
                }
                (Ok(after), None) => before = Some(after),
                (Err(error), _) => {
                    errors += 1;
                    last = error.message;
                    if errors > rules.consecutive_error_limit {
                        return Err(format!(
                            "the load balancer's counters could not be read {errors} times in a row: {last}"
                        ));
                    }
                }
            }
            if Instant::now() >= end {
                break;
            }
        }
        if passes == 0 {
            return Err(format!(
                "no analysis reading passed during the pause: {last}"
            ));
        }
        Ok(())
    }

    /// Blue/green: the new version (green) started in the pool the old one
    /// (blue) is not in, at weight 0 — healthy in the load balancer's eyes,
    /// sent nothing — then all traffic switched to it in one weight change;
    /// blue is kept for `keep_blue` while green is watched (a green
    /// instance that turns unhealthy fails the rollout, whose rollback
    /// switches back at once), then drained and stopped.
    async fn blue_green(
        &self,
        green: &mut Vec<Instance>,
        blue: &[Instance],
        keep_blue: Duration,
        taken: &mut BTreeSet<String>,
    ) -> Result<(), ProviderError> {
        let address = &self.spec.address;
        let blue_pool = blue[0].pool(address).to_string();
        let (green_pool, _) = self.idle_pool(&blue_pool, green).await?;
        let admin = self.admin()?;
        let missing = self.spec.replicas.saturating_sub(green.len());
        self.progress.report(&format!(
            "starting {missing} new instance(s) beside the old ones, sent nothing"
        ));
        green.extend(self.add(missing, green_pool.as_deref(), taken).await?);
        self.route_to(green, blue).await?;
        self.progress.report(&format!(
            "all traffic switched to the new version; the old one kept for {keep_blue:?}"
        ));
        let until = Instant::now() + keep_blue;
        while let Some(admin) = admin {
            if let Some(sick) = self.not_in_service(admin, green).await?.first() {
                return Err(failed(format!(
                    "backend {sick} of the new version turned unhealthy {:?} after the switch to it (keep_blue {keep_blue:?})",
                    keep_blue.saturating_sub(until.saturating_duration_since(Instant::now()))
                )));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_millis(50))).await;
        }
        self.progress
            .report(&format!("retiring the {} old instance(s)", blue.len()));
        self.remove_all(blue).await;
        Ok(())
    }

    /// Brings the deployment to `config` from `prior`: instances of the
    /// current version kept (and registered again if the load balancer
    /// lost them), a new version rolled out in batches, a scale change
    /// made.
    async fn converge(
        &self,
        prior: &Attributes,
        config: &Attributes,
    ) -> Result<Attributes, ProviderError> {
        // No instance starts without the load balancer it must join.
        self.admin()?;
        let running = self.journal.running(instances_of(prior));
        let mut taken: BTreeSet<String> = running.iter().map(|i| i.name.clone()).collect();
        let (mut current, mut old): (Vec<Instance>, Vec<Instance>) = running
            .into_iter()
            .partition(|i| i.version == self.spec.version);
        // Those of this version that the load balancer lost (it was
        // restarted) or whose health check changed: registered again.
        self.register(&current).await?;
        self.wait_in_service(&current, Instant::now() + self.spec.healthy_deadline)
            .await?;
        let wanted = self.spec.replicas;
        if let Some(keep_blue) = self.spec.keep_blue
            && !old.is_empty()
        {
            self.blue_green(&mut current, &old, keep_blue, &mut taken)
                .await?;
            old.clear();
        }
        if let Some(canary) = &self.spec.canary
            && !old.is_empty()
        {
            self.canary(&mut current, &old, canary, &mut taken).await?;
            old.clear();
        }
        // New instances join the pool that serves: the current version's,
        // else the old one's.
        let pool = current.first().or(old.first()).and_then(|i| i.pool.clone());
        let pool = pool.as_deref();
        // Missing instances first: capacity before anything is replaced.
        let missing = wanted.saturating_sub(current.len() + old.len());
        current.extend(self.add(missing, pool, &mut taken).await?);
        // Rolling, in batches: never more than `wanted + max_surge`
        // instances, never fewer than `wanted - max_unavailable` in service;
        // new instances are in service before the old ones they replace go.
        let floor = wanted.saturating_sub(self.spec.max_unavailable);
        let ceiling = wanted + self.spec.max_surge;
        while !old.is_empty() {
            let serving = current.len() + old.len();
            let retiring = serving.saturating_sub(floor).min(old.len());
            let rest = old.split_off(retiring);
            if retiring > 0 {
                self.progress.report(&format!(
                    "retiring {retiring} old instance(s); {} left",
                    rest.len()
                ));
            }
            self.remove_all(&std::mem::replace(&mut old, rest)).await;
            let starting = ceiling
                .saturating_sub(current.len() + old.len())
                .min(wanted.saturating_sub(current.len()));
            if starting == 0 && retiring == 0 {
                // Already `wanted` of this version: the rest are extra.
                break;
            }
            if starting > 0 {
                self.progress.report(&format!(
                    "starting {starting} new instance(s); {} of {wanted} in service so far",
                    current.len()
                ));
            }
            current.extend(self.add(starting, pool, &mut taken).await?);
        }
        self.remove_all(&old).await;
        while current.len() > wanted {
            let newest = current.pop().expect("more than wanted");
            self.remove(&newest).await;
        }
        Ok(self.state(config, &current))
    }

    pub(crate) async fn delete(&self, state: &Attributes) {
        self.remove_all(&self.journal.running(instances_of(state)))
            .await;
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

/// Refresh: the instances still running; `replicas` counts those the load
/// balancer has (all running ones when there is none).
pub(crate) async fn read(runtime: &RuntimeDir, mut state: Attributes) -> Attributes {
    let address = state
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let running = Journal::of(runtime, &address).running(instances_of(&state));
    let serving = match state.get("load_balancer").and_then(Value::as_str) {
        None => running.len(),
        Some(listen) => match AdminApi::find(runtime, listen) {
            None => 0,
            Some(admin) => match admin.status().await {
                Err(_) => 0,
                Ok(status) => {
                    let registered: BTreeSet<&str> =
                        status.backends().map(|b| b.id.as_str()).collect();
                    running
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
