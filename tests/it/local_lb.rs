//! infra's load balancer (`infra local-lb`) as a real process in front of
//! real demo-app processes, under load from a client that opens a new
//! connection per request; and its HTTP/1.1 byte by byte, between a client
//! and a backend that speak raw bytes.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

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

/// The requests a scripted backend was sent: head, body.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A backend that answers each path with fixed bytes (whatever its
/// framing) and keeps every request it was sent (head, body) but its
/// health checks'.
struct ScriptedBackend {
    addr: String,
    seen: Seen,
    serving: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// What the scripted backend answers to `method path`, and when it closes
/// the connection after it (`None`: it keeps it).
fn scripted_answer(
    method: &str,
    path: &str,
    body: &[u8],
    head: &str,
) -> (Vec<u8>, Option<Duration>) {
    let length_seen = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .unwrap_or("none")
        .to_string();
    let answer: Vec<u8> = match (method, path) {
        ("GET", "/healthz") => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n".to_vec(),
        ("HEAD", "/echo") => b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n".to_vec(),
        (_, "/echo") => {
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-length-seen: {length_seen}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(body);
            answer
        }
        (_, "/chunked") => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: keep-alive, x-hop\r\nx-hop: secret\r\nx-kept: yes\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n".to_vec(),
        (_, "/nothing") => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        (_, "/interim") => {
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal".to_vec()
        }
        (_, "/until-close") => {
            return (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nthe whole rest".to_vec(),
                Some(Duration::ZERO),
            );
        }
        (_, "/garbage") => return (b"SMTP ready\r\n\r\n".to_vec(), Some(Duration::ZERO)),
        // As a backend whose keep-alive timeout is short: the connection
        // is closed while idle, without a word.
        (_, "/idle-close") => {
            return (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                Some(Duration::from_millis(100)),
            );
        }
        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
    };
    (answer, None)
}

async fn scripted_backend() -> ScriptedBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let serving = tokio::spawn({
        let seen = seen.clone();
        async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_scripted(stream, seen.clone()));
            }
        }
    });
    ScriptedBackend {
        addr,
        seen,
        serving,
    }
}

/// Serves one connection of the scripted backend: requests framed by a
/// `content-length` (the load balancer sends no other framing).
async fn serve_scripted(mut stream: TcpStream, seen: Seen) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_until_blank_line(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < length {
            let mut more = [0u8; 4096];
            match stream.read(&mut more).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&more[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let mut words = head.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let (answer, close_after) = scripted_answer(method, path, &body, &head);
        if path != "/healthz" {
            seen.lock().unwrap().push((head.clone(), body));
        }
        if stream.write_all(&answer).await.is_err() {
            return;
        }
        if let Some(delay) = close_after {
            tokio::time::sleep(delay).await;
            return;
        }
    }
}

/// Reads until `buf` holds a blank line; where it starts.
async fn read_until_blank_line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end);
        }
        let mut more = [0u8; 4096];
        match stream.read(&mut more).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&more[..n]),
        }
    }
}

/// One answer as a client reads it: status, headers (lowercase names),
/// body (by its `content-length`; none after HEAD, 1xx, 204, 304).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the next answer from `stream` (`buf` keeps what came after it).
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, to_head: bool) -> Answer {
    let end = read_until_blank_line(stream, buf).await.unwrap_or_else(|| {
        panic!(
            "the connection closed; it sent {:?}",
            String::from_utf8_lossy(buf)
        )
    });
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    buf.drain(..end + 4);
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let bodiless = to_head || status < 200 || status == 204 || status == 304;
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let length = if bodiless { 0 } else { length };
    while buf.len() < length {
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await.unwrap();
        assert!(n > 0, "the body broke off");
        buf.extend_from_slice(&more[..n]);
    }
    let body = String::from_utf8(buf.drain(..length).collect()).unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

/// Whether the peer closed `stream` (after what it sent).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    )
}

async fn lb_with_scripted_backend() -> (LoadBalancer, ScriptedBackend) {
    let lb = load_balancer();
    let backend = scripted_backend().await;
    lb.register_addr("web", "scripted", &backend.addr).await;
    lb.wait_health("scripted", true).await;
    (lb, backend)
}

/// Six requests pipelined on one connection, each framed differently both
/// ways: every answer comes back whole, in order, framed by its length,
/// and the backend gets every body with a `content-length` and no
/// hop-by-hop header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framing_is_forwarded_whole_in_order_on_one_connection() {
    let (lb, backend) = lb_with_scripted_backend().await;
    let mut client = TcpStream::connect(&lb.listen).await.unwrap();
    let pipelined = concat!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: x-mine\r\nX-Mine: 1\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nx-trailer: 1\r\n\r\n",
        "GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n",
        "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /interim HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /until-close HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    client.write_all(pipelined.as_bytes()).await.unwrap();
    let mut buf = Vec::new();

    let echo = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(
        (echo.status, echo.body.as_str()),
        (200, "abcdefg"),
        "{echo:?}"
    );
    assert_eq!(echo.header("x-length-seen"), Some("7"));
    let chunked = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(
        (chunked.status, chunked.body.as_str()),
        (200, "hello world")
    );
    assert_eq!(chunked.header("content-length"), Some("11"));
    assert_eq!(chunked.header("transfer-encoding"), None);
    assert_eq!(
        chunked.header("x-hop"),
        None,
        "named by Connection: hop-by-hop"
    );
    assert_eq!(chunked.header("x-kept"), Some("yes"));
    let head = read_answer(&mut client, &mut buf, true).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some("42"),
        "HEAD keeps its length"
    );
    let nothing = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((nothing.status, nothing.body.as_str()), (204, ""));
    let interim = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((interim.status, interim.body.as_str()), (200, "final"));
    let last = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((last.status, last.body.as_str()), (200, "the whole rest"));
    assert_eq!(last.header("connection"), Some("close"));
    assert!(
        buf.is_empty(),
        "nothing more: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(closed(&mut client).await, "closed after Connection: close");

    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "{seen:?}");
    let (head, body) = &seen[0];
    assert_eq!(body, b"abcdefg");
    assert!(head.starts_with("POST /echo HTTP/1.1\r\n"), "{head}");
    for absent in ["transfer-encoding", "x-mine", "connection", "x-trailer"] {
        assert!(
            !head.to_ascii_lowercase().contains(absent),
            "{absent} sent on: {head}"
        );
    }
    assert!(
        head.contains("Host: t\r\n") && head.contains("x-forwarded-for: 127.0.0.1"),
        "{head}"
    );
    assert!(head.contains("content-length: 7"), "{head}");
    assert!(
        !seen[1].0.contains("content-length"),
        "a GET has no body: {}",
        seen[1].0
    );
}

/// What a client gets for a request that cannot be forwarded as it is,
/// and that the load balancer serves on afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_be_forwarded_are_refused_with_the_status_that_says_why() {
    let (lb, backend) = lb_with_scripted_backend().await;
    let refused = |request: Vec<u8>| {
        let listen = lb.listen.clone();
        async move {
            let mut client = TcpStream::connect(&listen).await.unwrap();
            // The LB may answer before it read everything: ignore a reset.
            let _ = client.write_all(&request).await;
            let mut buf = Vec::new();
            let answer = read_answer(&mut client, &mut buf, false).await;
            assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
            assert!(closed(&mut client).await, "closed after {}", answer.status);
            answer.status
        }
    };
    let long_line = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(70_000));
    assert_eq!(refused(long_line.into_bytes()).await, 431);
    let smuggling = b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc";
    assert_eq!(refused(smuggling.to_vec()).await, 400);
    let coding = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(refused(coding.to_vec()).await, 501);
    assert_eq!(refused(b"hello\r\n\r\n".to_vec()).await, 400);
    let bad_chunk = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert_eq!(refused(bad_chunk.to_vec()).await, 400);
    let huge = b"POST /echo HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n";
    assert_eq!(refused(huge.to_vec()).await, 413);
    assert!(
        backend.seen.lock().unwrap().is_empty(),
        "none reached the backend"
    );

    // A backend that answers with something else than HTTP: 502.
    let mut client = TcpStream::connect(&lb.listen).await.unwrap();
    client
        .write_all(b"GET /garbage HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_answer(&mut client, &mut buf, false).await.status, 502);

    // `Expect: 100-continue`: the body is asked for, then forwarded.
    client
        .write_all(
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await
        .unwrap();
    let go_on = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(go_on.status, 100);
    client.write_all(b"hello").await.unwrap();
    let echo = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((echo.status, echo.body.as_str()), (200, "hello"));
    let expect_seen = backend
        .seen
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .0
        .to_ascii_lowercase();
    assert!(!expect_seen.contains("expect:"), "{expect_seen}");

    // A POST cannot be sent twice: after the backend closed an idle kept
    // connection, it goes out on a fresh one, not on the closed one.
    client
        .write_all(b"GET /idle-close HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut client, &mut buf, false).await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..3 {
        client
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nonce")
            .await
            .unwrap();
        let echo = read_answer(&mut client, &mut buf, false).await;
        assert_eq!((echo.status, echo.body.as_str()), (200, "once"));
    }

    // HTTP/1.0 keeps the connection only when it asks to.
    let mut old = TcpStream::connect(&lb.listen).await.unwrap();
    old.write_all(
        b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let kept = read_answer(&mut old, &mut buf, false).await;
    assert_eq!(kept.header("connection"), Some("keep-alive"));
    let last = read_answer(&mut old, &mut buf, false).await;
    assert_eq!(
        (last.status, last.header("connection")),
        (200, Some("close"))
    );
    assert!(closed(&mut old).await);
}

/// `promtool check metrics` (Prometheus's own linter) on `text`: whether
/// it passed, and what it said.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write as _;
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run `{promtool}` ({error}): install Prometheus's promtool (Debian: `apt-get install prometheus`; scripts/test does it)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.success(), both(&output))
}

/// The load balancer's and demo-app's `/metrics`, after traffic of two
/// versions and both answer codes, pass `promtool check metrics`: names
/// with their unit and `_total`, help and type for every family; demo-app
/// times each answer by code and version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_time_answers_by_code_and_version() {
    let lb = load_balancer();
    let stable = demo_app("m1", &[("APP_VERSION", "v1")]);
    let canary = demo_app("m2", &[("APP_VERSION", "v2"), ("FAIL_RATE", "0.5")]);
    lb.register("stable", &stable).await;
    lb.register("canary", &canary).await;
    for name in ["m1", "m2"] {
        lb.wait_health(name, true).await;
    }
    let served = load(&lb.listen, "/", 200, 8, counter()).await;
    assert_eq!(served.answers.len() + served.errors.len(), 200);

    let lb_metrics = lb.metrics().await;
    let (passed, said) = promtool_check_metrics(&lb_metrics);
    assert!(passed && said.trim().is_empty(), "{said}\n{lb_metrics}");
    let app_metrics = http::get(&canary.addr, "/metrics", Duration::from_secs(5))
        .await
        .unwrap()
        .text();
    let (passed, said) = promtool_check_metrics(&app_metrics);
    assert!(passed && said.trim().is_empty(), "{said}\n{app_metrics}");
    for family in [
        "# TYPE demo_app_requests_total counter",
        "# TYPE demo_app_request_duration_seconds histogram",
        "demo_app_request_duration_seconds_bucket{code=\"500\",version=\"v2\",le=\"0.005\"}",
        "demo_app_request_duration_seconds_sum{code=\"200\",version=\"v2\"}",
    ] {
        assert!(app_metrics.contains(family), "{family}\n{app_metrics}");
    }
    // The canary failed half of its share: its 500s are the clients'.
    let failed = metric_sum(&app_metrics, "demo_app_requests_total", "code=\"500\"");
    assert!(failed > 0.0, "{app_metrics}");
    assert_eq!(failed as usize, served.failed(), "{app_metrics}");

    // A linter that finds nothing wrong in anything is no check.
    let (passed, said) =
        promtool_check_metrics("# HELP requests Requests.\n# TYPE requests counter\nrequests 3\n");
    assert!(!passed && said.contains("_total"), "{said}");
}
