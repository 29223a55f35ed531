//! The admin API, on its own loopback port. Every call but `GET /metrics`
//! needs `Authorization: Bearer TOKEN`, the token the provider keeps in the
//! runtime directory (mode 0600).
//!
//! | call | body | does |
//! |---|---|---|
//! | `GET /status` | | pools, weights, backends with health, draining, in flight |
//! | `PUT /routes` | `{"POOL": {"header": H, "values": [V, …]}}` | requests with a header value to a pool, and only those |
//! | `GET /pools/NAME/totals` | | what a pool answered so far: requests, 5xx, latency histogram |
//! | `PUT /backends/ID` | `{"pool", "addr", "health": {"path", "interval_ms", "timeout_ms", "healthy_threshold", "unhealthy_threshold"}}` | registers (the same again changes nothing) |
//! | `DELETE /backends/ID?drain_ms=N` | | no new requests; waits up to N ms for those in flight; removes |
//! | `PUT /weights` | `{"POOL": WEIGHT, …}` | sets pool weights at once, connections untouched |
//! | `GET /settings` | | how slow and failing backends are treated |
//! | `PUT /settings` | `{"connect_timeout_ms", "response_timeout_ms", "max_failures", "balance"}` | takes effect for the next request |
//! | `GET /metrics` | | Prometheus text (see `metrics.rs`) |

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use super::health;
use super::pools::Backend;
use super::protocol::{Deregistered, ErrorBody, Registration, Routes, Settings, Weights};
use super::proxy::{BackendClient, Body, Shared};

pub struct Admin {
    pub shared: Arc<Shared>,
    /// For the health checks.
    pub client: BackendClient,
    pub token: String,
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(value).expect("protocol types serialise");
    let mut response = plain(status, &format!("{text}\n"));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        &ErrorBody {
            error: message.to_string(),
        },
    )
}

/// Compares in time independent of where the first difference is.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl Admin {
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let method = request.method().clone();
        if method == Method::GET && path == "/metrics" {
            let text = self.shared.metrics.render(&self.shared.pools);
            let mut response = plain(StatusCode::OK, &text);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return response;
        }
        let authorized = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| same_token(given.as_bytes(), self.token.as_bytes()));
        if !authorized {
            return error(
                StatusCode::UNAUTHORIZED,
                "this call needs `Authorization: Bearer TOKEN` (the token is in the runtime directory)",
            );
        }
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
        };
        let pools = &self.shared.pools;
        match (&method, path.as_str()) {
            (&Method::GET, "/status") => json_response(StatusCode::OK, &pools.status()),
            (&Method::PUT, "/weights") => {
                let Ok(weights) = serde_json::from_slice::<Weights>(&body) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "weights are an object of pool names to whole numbers, e.g. {\"stable\": 90, \"canary\": 10}",
                    );
                };
                pools.set_weights(&weights);
                json_response(StatusCode::OK, &pools.status())
            }
            (&Method::GET, "/settings") => json_response(StatusCode::OK, &pools.settings()),
            (&Method::PUT, "/settings") => {
                let Ok(settings) = serde_json::from_slice::<Settings>(&body) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "settings are {\"connect_timeout_ms\": N, \"response_timeout_ms\": N, \"max_failures\": N, \"balance\": \"round_robin\" | \"least_outstanding\"}",
                    );
                };
                if settings.connect_timeout_ms == 0 || settings.response_timeout_ms == 0 {
                    return error(StatusCode::BAD_REQUEST, "timeouts must be over 0 ms");
                }
                self.shared.set_settings(settings);
                json_response(StatusCode::OK, &pools.settings())
            }
            (&Method::PUT, "/routes") => {
                let Ok(routes) = serde_json::from_slice::<Routes>(&body) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "routes are an object of pool names to {\"header\": NAME, \"values\": [VALUE, …]}",
                    );
                };
                pools.set_routes(routes);
                json_response(StatusCode::OK, &pools.status())
            }
            (&Method::GET, totals_path)
                if totals_path.starts_with("/pools/") && totals_path.ends_with("/totals") =>
            {
                let pool = &totals_path["/pools/".len()..totals_path.len() - "/totals".len()];
                json_response(StatusCode::OK, &self.shared.metrics.totals(pool))
            }
            (_, backend_path) if backend_path.starts_with("/backends/") => {
                let id = &backend_path["/backends/".len()..];
                if id.is_empty() {
                    return error(StatusCode::NOT_FOUND, "name the backend: /backends/ID");
                }
                match method {
                    Method::PUT => match serde_json::from_slice::<Registration>(&body) {
                        Ok(registration) => self.register(id, registration),
                        Err(why) => error(
                            StatusCode::BAD_REQUEST,
                            &format!(
                                "a backend needs `pool` and `addr` (\"127.0.0.1:PORT\"): {why}"
                            ),
                        ),
                    },
                    Method::DELETE => {
                        let drain = query
                            .split('&')
                            .find_map(|pair| pair.strip_prefix("drain_ms="))
                            .and_then(|n| n.parse().ok())
                            .map(Duration::from_millis)
                            .unwrap_or(Duration::from_secs(30));
                        self.deregister(id, drain).await
                    }
                    _ => error(StatusCode::METHOD_NOT_ALLOWED, "use PUT or DELETE"),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "no such call; see GET /status"),
        }
    }

    fn register(&self, id: &str, registration: Registration) -> Response<Body> {
        let Registration { pool, addr, health } = registration;
        let pool = pool.as_str();
        let check = health.check();
        let pools = &self.shared.pools;
        if let Some(existing) = pools.find(id)
            && existing.pool == pool
            && existing.addr == addr
            && existing.check == check
            && !existing.draining.load(Ordering::Acquire)
        {
            return json_response(StatusCode::OK, &existing.status());
        }
        let series = self.shared.metrics.series(pool, id);
        let backend = Arc::new(Backend::new(
            id.to_string(),
            pool.to_string(),
            addr,
            check,
            series,
        ));
        if let Some(replaced) = pools.register(backend.clone()) {
            replaced.removed.store(true, Ordering::Release);
            // The same instance with new settings keeps its health: no gap
            // in service while the checks confirm it.
            if replaced.addr == backend.addr {
                let healthy = replaced.healthy.load(Ordering::Acquire);
                backend.healthy.store(healthy, Ordering::Release);
            }
        }
        health::watch(backend.clone(), self.client.clone());
        json_response(StatusCode::CREATED, &backend.status())
    }

    async fn deregister(&self, id: &str, drain: Duration) -> Response<Body> {
        let pools = &self.shared.pools;
        let Some(backend) = pools.find(id) else {
            return error(StatusCode::NOT_FOUND, &format!("no backend `{id}`"));
        };
        pools.start_draining(&backend);
        let deadline = Instant::now() + drain;
        loop {
            let idle = backend.idle.notified();
            if backend.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, idle).await.is_err() {
                break;
            }
        }
        let abandoned = backend.in_flight.load(Ordering::Acquire);
        pools.remove(id);
        json_response(
            StatusCode::OK,
            &Deregistered {
                id: id.to_string(),
                drained: abandoned == 0,
                in_flight: abandoned,
            },
        )
    }
}
