//! `demo-app`: a small HTTP service to deploy with infra, made to show how
//! rollouts behave — including when the new version is bad.
//!
//! - `GET /` answers `demo-app VERSION (INSTANCE)`; `?sleep_ms=N` waits N
//!   ms first (a slow request, to see draining finish it).
//! - `GET /healthz` answers 200 `ok` (or 503 when `NEVER_HEALTHY=1`).
//! - `GET /metrics`, in the Prometheus text format: `demo_app_requests_total`
//!   and the histogram `demo_app_request_duration_seconds`, both by `code`
//!   (the status) and `version` — what a PromQL error rate or latency
//!   quantile of one version is computed from.
//!
//! Settings (environment): `APP_VERSION` (default `v1`), `FAIL_RATE` (the
//! share of `/` requests answered 500, 0…1), `LATENCY_MS` (added to every
//! `/`), `STARTUP_DELAY_MS` (listen only after this long), `NEVER_HEALTHY`.
//! The port is `--port N` (or `PORT`); with 0 the system picks one, which
//! the line `demo-app VERSION listening on 127.0.0.1:PORT` on stderr names.
//! SIGTERM stops accepting connections
//! and lets the requests in flight finish (up to 30 s).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tokio::net::TcpListener;

struct Settings {
    port: u16,
    version: String,
    instance: String,
    fail_rate: f64,
    latency: Duration,
    startup_delay: Duration,
    never_healthy: bool,
    unhealthy_if_exists: Option<std::path::PathBuf>,
}

fn env_number(name: &str) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn settings() -> Result<Settings, String> {
    let mut port = std::env::var("PORT").ok();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next(),
            "--help" | "-h" => {
                return Err("usage: demo-app --port N  (settings: APP_VERSION, FAIL_RATE, LATENCY_MS, STARTUP_DELAY_MS, NEVER_HEALTHY)".into());
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let port = port
        .ok_or("give a port: --port N")?
        .parse()
        .map_err(|_| "the port must be a number")?;
    let fail_rate = env_number("FAIL_RATE");
    if !(0.0..=1.0).contains(&fail_rate) {
        return Err(format!(
            "FAIL_RATE must be between 0 and 1, not {fail_rate}"
        ));
    }
    Ok(Settings {
        port,
        version: std::env::var("APP_VERSION").unwrap_or_else(|_| "v1".into()),
        instance: std::env::var("INFRA_INSTANCE").unwrap_or_default(),
        fail_rate,
        latency: Duration::from_millis(env_number("LATENCY_MS") as u64),
        startup_delay: Duration::from_millis(env_number("STARTUP_DELAY_MS") as u64),
        never_healthy: std::env::var("NEVER_HEALTHY").is_ok_and(|v| v == "1" || v == "true"),
        unhealthy_if_exists: std::env::var_os("UNHEALTHY_IF_EXISTS").map(Into::into),
    })
}

struct App {
    settings: Settings,
    /// Answers to `/` so far: the n-th fails if ⌊n·rate⌋ grew, so a rate of
    /// 0.1 fails exactly every tenth request.
    served: AtomicU64,
    metrics: Metrics,
}

/// What `/metrics` shows: every answer counted and timed by its status
/// code and the app's version.
struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    fn new() -> Metrics {
        let requests = IntCounterVec::new(
            Opts::new(
                "demo_app_requests_total",
                "Requests answered, by status code and version.",
            ),
            &["code", "version"],
        )
        .expect("a valid counter");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "demo_app_request_duration_seconds",
                "Time from a request's arrival to its answer, by status code and version.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["code", "version"],
        )
        .expect("a valid histogram");
        let registry = Registry::new();
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(duration.clone()))
            .expect("registered once");
        Metrics {
            registry,
            requests,
            duration,
        }
    }

    fn observe(&self, code: u16, version: &str, took: Duration) {
        let code = code.to_string();
        let labels = [code.as_str(), version];
        self.requests.with_label_values(&labels).inc();
        self.duration
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition format (0.0.4).
    fn render(&self) -> String {
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

impl App {
    async fn handle(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let arrived = Instant::now();
        let response = match request.uri().path() {
            "/healthz"
                if self.settings.never_healthy
                    || self
                        .settings
                        .unhealthy_if_exists
                        .as_ref()
                        .is_some_and(|path| path.exists()) =>
            {
                text(StatusCode::SERVICE_UNAVAILABLE, "never healthy\n".into())
            }
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.metrics.render());
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return response;
            }
            "/" => {
                let sleep = request
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("sleep_ms="))
                    .and_then(|n| n.parse().ok())
                    .map(Duration::from_millis)
                    .unwrap_or_default();
                let wait = self.settings.latency + sleep;
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let n = self.served.fetch_add(1, Ordering::Relaxed);
                let rate = self.settings.fail_rate;
                let fails = ((n + 1) as f64 * rate).floor() > (n as f64 * rate).floor();
                if fails {
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("demo-app {} failed (FAIL_RATE)\n", self.settings.version),
                    )
                } else {
                    text(
                        StatusCode::OK,
                        format!(
                            "demo-app {} ({})\n",
                            self.settings.version, self.settings.instance
                        ),
                    )
                }
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        };
        self.metrics.observe(
            response.status().as_u16(),
            &self.settings.version,
            arrived.elapsed(),
        );
        response
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("demo-app: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    tokio::time::sleep(settings.startup_delay).await;
    let listener = match TcpListener::bind(("127.0.0.1", settings.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "demo-app: cannot listen on 127.0.0.1:{}: {error}",
                settings.port
            );
            return std::process::ExitCode::from(1);
        }
    };
    // With `--port 0` the system picks a free port: the line says which
    // (tests start demo-app so, free of any race for a port).
    let port = listener
        .local_addr()
        .map_or(settings.port, |addr| addr.port());
    eprintln!(
        "demo-app {} listening on 127.0.0.1:{port}",
        settings.version
    );
    let app = Arc::new(App {
        settings,
        served: AtomicU64::new(0),
        metrics: Metrics::new(),
    });
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                // Forget the connections that ended.
                while connections.try_join_next().is_some() {}
                let app = app.clone();
                let mut stop = stop.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(request).await) }
                    });
                    let connection = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => return,
                        _ = stop.changed() => {}
                    }
                    // Idle keep-alive connections close now; a request in
                    // flight is answered first.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                });
            }
            _ = terminate.recv() => break,
        }
    }
    drop(listener);
    eprintln!("demo-app: SIGTERM, finishing requests in flight");
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    std::process::ExitCode::SUCCESS
}
