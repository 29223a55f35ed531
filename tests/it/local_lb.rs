//! infra's load balancer (`infra local-lb`) as a real process in front of
//! real demo-app processes, under load from a client that opens a new
//! connection per request.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use infra_provider_local::runtime::http;
use serde_json::json;
use support::*;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Starts `total` requests (16 at a time) and returns once `started` of
/// them were answered; the handle gives all the answers.
async fn load_in_background(
    listen: &str,
    total: usize,
    started: usize,
) -> tokio::task::JoinHandle<LoadResult> {
    let progress = counter();
    let listen = listen.to_string();
    let running = tokio::spawn({
        let progress = progress.clone();
        async move { load(&listen, "/", total, 16, progress).await }
    });
    while progress.load(Ordering::Relaxed) < started {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_split_traffic_by_weight_and_metrics_count_every_request() {
    let lb = load_balancer();
    let a1 = demo_app("a1", &[("APP_VERSION", "v1")]);
    let a2 = demo_app("a2", &[("APP_VERSION", "v1")]);
    let b1 = demo_app("b1", &[("APP_VERSION", "v2")]);
    lb.register("stable", &a1).await;
    lb.register("stable", &a2).await;
    lb.register("canary", &b1).await;
    for name in ["a1", "a2", "b1"] {
        lb.wait_health(name, true).await;
    }
    let (status, _) = lb
        .call("PUT", "/weights", Some(json!({"stable": 90, "canary": 10})))
        .await;
    assert_eq!(status, 200);

    let first = load(&lb.listen, "/", 10_000, 32, counter()).await;
    assert_eq!(
        first.failed(),
        0,
        "errors: {:?}",
        &first.errors[..first.errors.len().min(5)]
    );
    let canary = first.served_by("b1") as f64 / 10_000.0;
    assert!(
        (0.07..=0.13).contains(&canary),
        "canary share {canary}, weight 10%"
    );
    assert_eq!(
        first.served_by("a1") + first.served_by("a2") + first.served_by("b1"),
        10_000
    );

    // Weights change under load without dropping anything.
    let running = load_in_background(&lb.listen, 4_000, 1_000).await;
    lb.call("PUT", "/weights", Some(json!({"stable": 50, "canary": 50})))
        .await;
    let second = running.await.unwrap();
    assert_eq!(second.failed(), 0);
    let after_shift = load(&lb.listen, "/", 2_000, 16, counter()).await;
    let canary = after_shift.served_by("b1") as f64 / 2_000.0;
    assert!(
        (0.47..=0.53).contains(&canary),
        "canary share {canary}, weight 50%"
    );

    // /metrics counts exactly what the clients saw, backend by backend.
    let metrics = lb.metrics().await;
    let total = 16_000.0;
    assert_eq!(
        metric_sum(&metrics, "infra_lb_requests_total", "code=\"200\""),
        total
    );
    for name in ["a1", "a2", "b1"] {
        let seen = first.served_by(name) + second.served_by(name) + after_shift.served_by(name);
        assert_eq!(
            metric_sum(
                &metrics,
                "infra_lb_requests_total",
                &format!("backend=\"{name}\"")
            ),
            seen as f64,
            "{name}"
        );
    }
    assert_eq!(
        metric_sum(
            &metrics,
            "infra_lb_request_duration_seconds_count",
            "pool=\"canary\""
        ) + metric_sum(
            &metrics,
            "infra_lb_request_duration_seconds_count",
            "pool=\"stable\""
        ),
        total
    );
    assert!(metrics.contains("infra_lb_backend_healthy{pool=\"canary\",backend=\"b1\"} 1"));
    assert!(metrics.contains("infra_lb_pool_weight{pool=\"canary\"} 50"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_backend_gets_nothing_and_comes_back_when_it_recovers() {
    let lb = load_balancer();
    let sick_file = tempfile::NamedTempFile::new().unwrap();
    let sick_path = sick_file.path().to_str().unwrap().to_string();
    let well = demo_app("well", &[]);
    let flaky = demo_app("flaky", &[("UNHEALTHY_IF_EXISTS", &sick_path)]);
    let never = demo_app("never", &[("NEVER_HEALTHY", "1")]);
    for backend in [&well, &flaky, &never] {
        lb.register("web", backend).await;
    }
    // The file exists: `flaky` starts sick, like `never`.
    lb.wait_health("well", true).await;
    let result = load(&lb.listen, "/", 500, 8, counter()).await;
    assert_eq!(result.failed(), 0);
    assert_eq!(
        result.served_by("well"),
        500,
        "only the healthy backend serves"
    );

    // It recovers: back in rotation after healthy_threshold checks.
    std::fs::remove_file(&sick_path).unwrap();
    lb.wait_health("flaky", true).await;
    let result = load(&lb.listen, "/", 500, 8, counter()).await;
    assert_eq!(result.failed(), 0);
    assert!(
        result.served_by("flaky") >= 200,
        "{}",
        result.served_by("flaky")
    );
    assert_eq!(result.served_by("never"), 0);

    // It falls sick: out after unhealthy_threshold failed checks.
    std::fs::write(&sick_path, "").unwrap();
    lb.wait_health("flaky", false).await;
    let result = load(&lb.listen, "/", 500, 8, counter()).await;
    assert_eq!(result.failed(), 0);
    assert_eq!(result.served_by("well"), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backend_finishes_its_slow_requests_and_gets_no_new_ones() {
    let lb = load_balancer();
    let leaving = demo_app("leaving", &[]);
    let staying = demo_app("staying", &[]);
    lb.register("web", &leaving).await;
    lb.wait_health("leaving", true).await;
    // Slow requests, all to `leaving` (the only backend yet).
    let listen = lb.listen.clone();
    let slow =
        tokio::spawn(async move { load(&listen, "/?sleep_ms=1500", 10, 10, counter()).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lb.backend_status("leaving").await["in_flight"] != json!(10) {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lb.register("web", &staying).await;
    lb.wait_health("staying", true).await;
    let drain = {
        let admin = (lb.admin.clone(), lb.token.clone());
        tokio::spawn(async move {
            http::send(
                &admin.0,
                http::Request {
                    method: "DELETE",
                    path: "/backends/leaving?drain_ms=10000",
                    token: Some(&admin.1),
                    ..Default::default()
                },
                Duration::from_secs(30),
            )
            .await
            .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lb.backend_status("leaving").await["draining"], json!(true));
    let during = load(&lb.listen, "/", 300, 8, counter()).await;
    assert_eq!(during.failed(), 0);
    assert_eq!(
        during.served_by("staying"),
        300,
        "no new request reaches a draining backend"
    );
    let slow = slow.await.unwrap();
    assert_eq!(slow.failed(), 0, "{:?}", slow.errors);
    assert_eq!(
        slow.served_by("leaving"),
        10,
        "every slow request was finished by its backend"
    );
    let drained = drain.await.unwrap();
    assert_eq!(drained.status, 200);
    let drained: serde_json::Value = serde_json::from_slice(&drained.body).unwrap();
    assert_eq!(drained["drained"], json!(true), "{drained}");
    assert_eq!(lb.backend_status("leaving").await, serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_costs_no_client_error() {
    let lb = load_balancer();
    let mut victim = demo_app("victim", &[]);
    let others = [demo_app("b", &[]), demo_app("c", &[])];
    lb.register("web", &victim).await;
    for backend in &others {
        lb.register("web", backend).await;
    }
    for name in ["victim", "b", "c"] {
        lb.wait_health(name, true).await;
    }
    let running = load_in_background(&lb.listen, 4_000, 1_000).await;
    victim.process.kill();
    let result = running.await.unwrap();
    assert_eq!(
        result.failed(),
        0,
        "errors: {:?}, non-2xx: {:?}",
        &result.errors[..result.errors.len().min(5)],
        result
            .answers
            .iter()
            .filter(|(s, _)| *s >= 300)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        result.served_by("victim") > 0,
        "the victim served before it died"
    );
    lb.wait_health("victim", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_wants_the_token_and_metrics_do_not() {
    let lb = load_balancer();
    let anonymous = http::get(&lb.admin, "/status", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(anonymous.status, 401);
    let mut wrong = http::Request {
        method: "PUT",
        path: "/weights",
        token: Some("not-the-token"),
        body: Some(br#"{"web": 0}"#),
        ..Default::default()
    };
    let refused = http::send(&lb.admin, wrong.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(refused.status, 401);
    wrong.token = Some(&lb.token);
    assert_eq!(
        http::send(&lb.admin, wrong, Duration::from_secs(5))
            .await
            .unwrap()
            .status,
        200
    );
    let metrics = lb.metrics().await;
    assert!(
        metrics.contains("infra_lb_pool_weight{pool=\"web\"} 0"),
        "{metrics}"
    );
    // No backend: a clear 503, counted.
    let answer = http::get(&lb.listen, "/", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 503);
    assert_eq!(
        metric_sum(
            &lb.metrics().await,
            "infra_lb_requests_total",
            "code=\"503\""
        ),
        1.0
    );
}

/// One of three backends hangs (SIGSTOP: it accepts connections and never
/// answers) for 4 s under load. With `response_timeout` 1 s no request
/// waits for the hang: the ones sent to it are tried again on the others
/// after the timeout (GETs are idempotent), none fails, and after
/// `max_failures` timeouts in a row it gets no more until its checks pass
/// again, which they do once it runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_backend_costs_a_timeout_not_a_failed_request() {
    let lb = load_balancer();
    let hung = demo_app("hung", &[]);
    let others = [demo_app("b", &[]), demo_app("c", &[])];
    for backend in std::iter::once(&hung).chain(&others) {
        lb.register("web", backend).await;
    }
    for name in ["hung", "b", "c"] {
        lb.wait_health(name, true).await;
    }
    let (status, settings) = lb
        .call(
            "PUT",
            "/settings",
            Some(
                json!({"connect_timeout_ms": 500, "response_timeout_ms": 1000,
                        "max_failures": 3, "balance": "round_robin"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{settings}");

    // 8 clients, each sending GETs one after another for 6 s.
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let listen = lb.listen.clone();
        clients.spawn(async move {
            let mut seen = Vec::new();
            while tokio::time::Instant::now() < until {
                let sent = std::time::Instant::now();
                let answer = http::get(&listen, "/", Duration::from_secs(20)).await;
                seen.push((answer.map(|a| (a.status, a.text())), sent.elapsed()));
            }
            seen
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(hung.process.pid(), false, Signal::STOP);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = lb.backend_status("hung").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(hung.process.pid(), false, Signal::CONT);

    let mut answers = Vec::new();
    while let Some(seen) = clients.join_next().await {
        answers.extend(seen.unwrap());
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(answer, _)| !matches!(answer, Ok((200, _))))
        .collect();
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
    assert!(answers.len() > 100, "{} requests", answers.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(3)]
    );
    // The timeout, a retry, and scheduling: far from the 4 s hang.
    assert!(
        slowest < Duration::from_millis(2500),
        "a request waited {slowest:?} for the hung backend"
    );
    assert_eq!(
        during["healthy"],
        json!(false),
        "out of service while hung: {during}"
    );
    lb.wait_health("hung", true).await;
}
