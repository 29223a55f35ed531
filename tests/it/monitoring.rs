//! Monitoring as code with the real Prometheus (Debian's `prometheus`
//! package; `scripts/test` installs it): a `local_prometheus` scrapes the
//! load balancer and every instance of a deployment, follows a rollout
//! through file-based discovery without a restart, evaluates alert rules,
//! and answers the PromQL queries of a canary's analysis.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use infra_provider_local::runtime::http;
use infra_provider_local::runtime::process::ProcessId;
use serde_json::Value;

use crate::local_runtime::{CLEAN, Workspace, kill, load_until, processes_under};
use crate::support::*;

/// `GET path` on Prometheus's API, as JSON.
async fn api(prometheus: &str, path: &str) -> Value {
    let answer = http::get(prometheus, path, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("Prometheus at {prometheus}: {e}"));
    serde_json::from_slice(&answer.body).unwrap_or_else(|_| panic!("{}", answer.text()))
}

/// The active targets: (job, address, health).
async fn targets(prometheus: &str) -> BTreeSet<(String, String, String)> {
    let answer = api(prometheus, "/api/v1/targets?state=active").await;
    answer["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["labels"]["job"].as_str().unwrap().to_string(),
                t["labels"]["instance"].as_str().unwrap().to_string(),
                t["health"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits up to `within` for `check` to hold, polling every 250 ms; the
/// last thing seen when it never does.
async fn eventually<T: std::fmt::Debug, F: Future<Output = T>>(
    within: Duration,
    mut probe: impl FnMut() -> F,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let seen = probe().await;
        if check(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "never happened; last seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A webhook receiver on loopback, as Alertmanager posts to: its URL and
/// the JSON bodies it received (each answered 200).
async fn webhook_receiver() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let bodies = received.clone();
    // Ends with the test's runtime.
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    if let Ok(json) = serde_json::from_str::<Value>(&body[..length]) {
                        bodies.lock().unwrap().push(json);
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, received)
}

/// The instances' addresses the state records for `deployment.web`.
fn instance_addrs(work: &Workspace) -> BTreeSet<String> {
    work.state()["resources"]["deployment.web"]["attributes"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("127.0.0.1:{}", i["port"]))
        .collect()
}

fn prometheus_process(work: &Workspace) -> ProcessId {
    let prometheus = &work.state()["resources"]["local_prometheus.main"]["attributes"];
    ProcessId::from_json(prometheus.get("pid"), prometheus.get("started")).unwrap()
}

/// A load balancer, two demo-apps (rolling updates) whose version answers
/// `fail_rate` of its requests with a 500, a Prometheus scraping both
/// every second with an alert on the 5xx rate, and an Alertmanager that
/// posts the alerts to `webhook`.
fn monitored_fleet(prometheus_port: u16, alertmanager_port: u16, webhook: &str) -> String {
    format!(
        r#"
variable "demo_app" {{ type = string }}
variable "port" {{ type = number }}
variable "app_version" {{ default = "v1" }}
variable "fail_rate" {{ default = "0" }}

resource "local_lb" "front" {{
  listen = "127.0.0.1:${{var.port}}"
}}

deployment web {{
  provider = local
  replicas = 2
  version  = var.app_version
  template {{
    command = [var.demo_app, "--port", "{{port}}"]
    env     = {{ APP_VERSION = var.app_version, FAIL_RATE = var.fail_rate }}
  }}
  load_balancer = local_lb.front
  health {{
    path     = "/healthz"
    interval = "100ms"
  }}
  min_ready = "200ms"
  drain     = "200ms"
}}

resource "local_alertmanager" "main" {{
  listen     = "127.0.0.1:{alertmanager_port}"
  webhooks   = ["{webhook}"]
  group_wait = "1s"
}}

resource "local_prometheus" "main" {{
  listen          = "127.0.0.1:{prometheus_port}"
  scrape          = [local_lb.front, deployment.web]
  scrape_interval = "1s"
  alertmanagers   = [local_alertmanager.main]

  alert {{
    name     = "HighErrorRate"
    expr     = "sum(rate(demo_app_requests_total{{code=~\"5..\"}}[5s])) > 0"
    for      = "1s"
    severity = "page"
    summary  = "demo-app answers 5xx"
  }}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_finds_every_instance_follows_a_rollout_fires_alerts_and_is_drift_when_dead() {
    let work = Workspace::new("local-web");
    let prometheus_port = free_port();
    let prometheus = format!("127.0.0.1:{prometheus_port}");
    let (webhook, notifications) = webhook_receiver().await;
    std::fs::write(
        work.dir.path().join("main.infra"),
        monitored_fleet(prometheus_port, free_port(), &webhook),
    )
    .unwrap();
    let applied = work.apply(&[("fail_rate", "0.5")]);
    assert!(applied.contains("Resources: 4 added"), "{applied}");
    assert!(work.plan(&[("fail_rate", "0.5")]).contains(CLEAN));

    // The load balancer (its admin port's /metrics) and both instances,
    // found and up.
    let lb_admin = work.admin().addr;
    let v1 = instance_addrs(&work);
    let mut wanted: BTreeSet<(String, String, String)> = v1
        .iter()
        .map(|addr| ("deployment.web".into(), addr.clone(), "up".into()))
        .collect();
    wanted.insert((
        format!("local_lb/{}", work.listen()),
        lb_admin.clone(),
        "up".into(),
    ));
    eventually(
        Duration::from_secs(30),
        || targets(&prometheus),
        |seen| *seen == wanted,
    )
    .await;
    let up = api(&prometheus, "/api/v1/query?query=sum(up)").await;
    assert_eq!(up["data"]["result"][0]["value"][1], "3", "{up}");

    // v1 fails half its requests: the alert on the 5xx rate fires.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load_until(
        work.listen(),
        20,
        Arc::new(AtomicUsize::new(0)),
        stop.clone(),
    ));
    let alerts = eventually(
        Duration::from_secs(40),
        || api(&prometheus, "/api/v1/alerts"),
        |seen| {
            seen["data"]["alerts"]
                .as_array()
                .is_some_and(|alerts| alerts.iter().any(|a| a["state"] == "firing"))
        },
    )
    .await;
    let alert = &alerts["data"]["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "HighErrorRate", "{alerts}");
    assert_eq!(alert["labels"]["severity"], "page", "{alerts}");
    assert_eq!(alert["annotations"]["summary"], "demo-app answers 5xx");
    // …and Alertmanager posts it to the webhook.
    let posted = eventually(
        Duration::from_secs(30),
        || async { notifications.lock().unwrap().clone() },
        |seen| {
            seen.iter().any(|n| {
                n["status"] == "firing" && n["alerts"][0]["labels"]["alertname"] == "HighErrorRate"
            })
        },
    )
    .await;
    assert_eq!(posted[0]["receiver"], "infra", "{posted:?}");

    // A rolling update to v2: the new instances are scraped and the old
    // ones gone, by the same Prometheus process (no restart).
    let server = prometheus_process(&work);
    let applied = work.apply(&[("app_version", "v2")]);
    assert!(
        applied.contains("Resources: 0 added, 1 changed"),
        "{applied}"
    );
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let v2 = instance_addrs(&work);
    assert!(v1.is_disjoint(&v2), "{v1:?} {v2:?}");
    let mut wanted: BTreeSet<(String, String, String)> = v2
        .iter()
        .map(|addr| ("deployment.web".into(), addr.clone(), "up".into()))
        .collect();
    wanted.insert((format!("local_lb/{}", work.listen()), lb_admin, "up".into()));
    eventually(
        Duration::from_secs(30),
        || targets(&prometheus),
        |seen| *seen == wanted,
    )
    .await;
    assert!(server.is_running());
    assert_eq!(prometheus_process(&work), server, "the same server");
    let by_version = api(
        &prometheus,
        "/api/v1/query?query=count%20by%20(version)(demo_app_requests_total)",
    )
    .await;
    assert!(by_version.to_string().contains("\"v2\""), "{by_version}");
    // The targets carry the deployment's version as written (the old
    // ones' last `up` was 0: they stopped before they left discovery).
    let up = api(
        &prometheus,
        "/api/v1/query?query=sum%20by%20(infra_version)(up%7Bjob%3D%22deployment.web%22%7D%20%3D%3D%201)",
    )
    .await;
    assert_eq!(
        up["data"]["result"][0]["metric"]["infra_version"], "v2",
        "{up}"
    );
    assert_eq!(up["data"]["result"][0]["value"][1], "2", "{up}");

    // A dead server is drift; apply starts it again.
    kill(server);
    let drift = work.infra(&["drift"], &[("app_version", "v2")]);
    assert_eq!(drift.status.code(), Some(2), "{}", both(&drift));
    assert!(
        both(&drift).contains("local_prometheus.main"),
        "{}",
        both(&drift)
    );
    let applied = work.apply(&[("app_version", "v2")]);
    assert!(
        applied.contains("Resources: 1 added, 0 changed"),
        "{applied}"
    );
    assert!(prometheus_process(&work).is_running());
    eventually(
        Duration::from_secs(30),
        || targets(&prometheus),
        |seen| seen.len() == 3 && seen.iter().all(|(_, _, health)| health == "up"),
    )
    .await;

    // Destroy stops it with everything else.
    let restarted = prometheus_process(&work);
    let output = work.infra(&["destroy", "--auto-approve"], &[("app_version", "v2")]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(!restarted.is_running());
    assert_eq!(processes_under(work.dir.path()), Vec::<i32>::new());
}

/// Fails, showing `text`, unless it says `part`.
#[track_caller]
fn says(text: &str, part: impl AsRef<str>) {
    assert!(text.contains(part.as_ref()), "{}\n{text}", part.as_ref());
}

/// `examples/local-monitoring`'s `main.infra` with `from` replaced by `to`.
fn edit_config(work: &Workspace, from: &str, to: &str) {
    let path = work.dir.path().join("main.infra");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// `infra apply` with `vars` that must fail; its output.
fn failed_apply(work: &Workspace, vars: &[(&str, &str)]) -> String {
    let output = work.infra(&["apply", "--auto-approve"], vars);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    text
}

/// Which versions answer `/` through the load balancer.
async fn versions_serving(listen: &str) -> BTreeSet<String> {
    let answers = load(listen, "/", 40, 4, Arc::new(AtomicUsize::new(0))).await;
    assert_eq!(answers.failed(), 0, "{:?}", answers.errors);
    answers
        .answers
        .iter()
        .filter_map(|(_, body)| body.split_whitespace().nth(1).map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_is_judged_by_its_promql_query_and_bad_queries_never_promote() {
    let work = Workspace::new("local-monitoring");
    let prometheus_port = free_port().to_string();
    let port = [("prometheus_port", prometheus_port.as_str())];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        port.iter().chain(extra).copied().collect()
    };
    work.apply(&with(&[]));
    let listen = work.listen();
    assert_eq!(
        versions_serving(&listen).await,
        BTreeSet::from(["v1".to_string()])
    );

    // Traffic all along: the analysis needs answers to judge.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(load_until(
        listen.clone(),
        20,
        Arc::new(AtomicUsize::new(0)),
        stop.clone(),
    ));

    // A bad v2 (half its answers 500): the query fails the canary — the
    // analysis has no built-in error bound — and it is rolled back.
    let text = failed_apply(&work, &with(&[("app_version", "v2"), ("fail_rate", "0.5")]));
    says(&text, "analysis failed");
    says(&text, "query error_rate = ");
    says(&text, "is above max 0.05");
    says(&text, "rolled back: 4 instance(s)");
    assert!(!text.contains("max_error_rate"), "{text}");

    // A query that matches nothing (an empty vector) is inconclusive:
    // never promoted, rolled back past inconclusive_limit.
    edit_config(
        &work,
        "expr       = local.error_rate",
        "expr       = \"sum(rate(no_such_metric_total[10s]))\"",
    );
    let text = failed_apply(&work, &with(&[("app_version", "v2")]));
    says(&text, "returned an empty vector");
    says(&text, "inconclusive 4 times (inconclusive_limit 3)");
    says(&text, "rolled back");

    // An unreachable Prometheus: unreadable readings, then rolled back.
    edit_config(
        &work,
        "expr       = \"sum(rate(no_such_metric_total[10s]))\"",
        "expr       = local.error_rate",
    );
    let dead = format!("http://127.0.0.1:{}", free_port());
    edit_config(
        &work,
        "prometheus = \"http://${local.prometheus}\"",
        &format!("prometheus = \"{dead}\""),
    );
    let text = failed_apply(&work, &with(&[("app_version", "v2")]));
    says(&text, format!("Prometheus at {dead} does not answer"));
    // (Four unreadable readings in the 8 s pause: none passed.)
    says(&text, "analysis: unreadable: query error_rate");
    says(&text, "no analysis reading passed");
    says(&text, "rolled back: 4 instance(s)");
    assert_eq!(
        versions_serving(&listen).await,
        BTreeSet::from(["v1".to_string()])
    );

    // A good v2 passes the query and is promoted.
    edit_config(
        &work,
        &format!("prometheus = \"{dead}\""),
        "prometheus = \"http://${local.prometheus}\"",
    );
    let text = work.apply(&with(&[("app_version", "v2")]));
    says(&text, "analysis: passed");
    says(&text, "error_rate = 0");
    stop.store(true, Ordering::Relaxed);
    let load = traffic.await.unwrap();
    // No request lost across four rollouts: the only failures are the
    // bad canary's own 500s.
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    assert!(
        load.answers
            .iter()
            .filter(|(status, _)| *status != 200)
            .all(|(status, body)| *status == 500 && body.starts_with("demo-app v2 failed")),
        "an answer other than the bad canary's 500"
    );
    assert_eq!(
        versions_serving(&listen).await,
        BTreeSet::from(["v2".to_string()])
    );
    assert!(work.plan(&with(&[("app_version", "v2")])).contains(CLEAN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_prometheus_refuses_changes_nothing_and_promtool_points_at_its_line() {
    let work = Workspace::new("local-monitoring");
    let prometheus_port = free_port();
    let vars = [];
    std::fs::write(
        work.dir.path().join("main.infra"),
        monitored_fleet(prometheus_port, free_port(), "http://127.0.0.1:9/alerts"),
    )
    .unwrap();
    work.apply(&vars);
    let prometheus = format!("127.0.0.1:{prometheus_port}");
    let server = prometheus_process(&work);

    // A server the state does not know (an apply killed after it started
    // it) is adopted by the next create, not started twice.
    let forgot = work.infra(&["state", "rm", "local_prometheus.main"], &vars);
    assert!(forgot.status.success(), "{}", both(&forgot));
    let applied = work.apply(&vars);
    assert!(applied.contains("Resources: 1 added"), "{applied}");
    assert_eq!(
        prometheus_process(&work),
        server,
        "the running server, adopted"
    );
    assert!(work.plan(&vars).contains(CLEAN));
    let bad = "expr     = \"sum(rate(demo_app_requests_total{code=~\\\"5..\\\"}[5s]) > 0\"";
    edit_config(
        &work,
        "expr     = \"sum(rate(demo_app_requests_total{code=~\\\"5..\\\"}[5s])) > 0\"",
        bad,
    );

    // With promtool, `validate` points at the expression.
    let output = work.infra(&["validate"], &vars);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    says(&text, "alert `HighErrorRate`: could not parse expression");
    says(&text, "`alert.0.expr` of `local_prometheus.main`");
    assert!(text.contains(bad), "the `expr` line is shown: {text}");

    // Without it, Prometheus itself refuses the rules at apply: the
    // previous files are put back, the server keeps its rule, the state
    // is unchanged (the update is still to do).
    let output = work
        .infra_command(&["apply", "--auto-approve"], &vars)
        .env("PROMTOOL", "/nonexistent/promtool")
        .output()
        .unwrap();
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    says(
        &text,
        "refused the new configuration (the previous one is kept)",
    );
    assert!(server.is_running());
    let rules = api(&prometheus, "/api/v1/rules").await;
    let rule = &rules["data"]["groups"][0]["rules"][0];
    assert_eq!(
        rule["query"], "sum(rate(demo_app_requests_total{code=~\"5..\"}[5s])) > 0",
        "{rules}"
    );
    let plan = work
        .infra_command(&["plan"], &vars)
        .env("PROMTOOL", "/nonexistent/promtool")
        .output()
        .unwrap();
    assert!(
        both(&plan).contains("local_prometheus.main will be updated in place"),
        "{}",
        both(&plan)
    );
}

#[test]
fn an_apply_killed_while_prometheus_starts_is_taken_over_not_doubled() {
    let work = Workspace::new("local-web");
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        work.dir.path().join("main.infra"),
        format!(
            r#"
variable "demo_app" {{ type = string }}
variable "port" {{ type = number }}

resource "local_prometheus" "main" {{
  listen = "{listen}"
}}
"#
        ),
    )
    .unwrap();
    let mut first = work
        .infra_command(&["apply", "--auto-approve"], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed the moment the server is started, before it is ready and
    // long before the state records it.
    let started = work.dir.path().join(format!(
        ".infra/prometheus/{}/process.json",
        listen.replace(':', "_")
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "Prometheus never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        work.state()["resources"]
            .get("local_prometheus.main")
            .is_none()
    );
    let orphan: Value = serde_json::from_str(&std::fs::read_to_string(&started).unwrap()).unwrap();
    let orphan = ProcessId::from_json(orphan.get("pid"), orphan.get("started")).unwrap();

    let applied = work.apply(&[]);
    assert!(applied.contains("Resources: 1 added"), "{applied}");
    assert_eq!(
        prometheus_process(&work),
        orphan,
        "the started server, adopted"
    );
    let prometheus_processes = processes_under(work.dir.path())
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == "prometheus")
        })
        .count();
    assert_eq!(prometheus_processes, 1);
    assert!(work.plan(&[]).contains(CLEAN));
    let output = work.infra(&["destroy", "--auto-approve"], &[]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(processes_under(work.dir.path()), Vec::<i32>::new());
}
