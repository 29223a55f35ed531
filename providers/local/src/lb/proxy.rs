//! The data path: every client request goes to a backend chosen by
//! [`Pools::choose`], over pooled keep-alive connections.
//!
//! Every backend call is bounded: the connection by `connect_timeout`, the
//! whole answer by `response_timeout` (the load balancer's [`Settings`],
//! changed live through the admin API). A request that got no answer from
//! its backend is sent once more to another backend when that is safe:
//! always if the connection could not be made (nothing was sent), and for
//! idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) if the backend
//! closed the connection or did not answer in time — as nginx's
//! `proxy_next_upstream error timeout` does. Otherwise the client gets 502
//! (504 on a timeout). A backend that refused a connection is marked down
//! at once; one that fails too many requests (5xx answers count: see
//! `pools.rs`) too; its health checks bring it back.
//!
//! Bodies are read whole before they are forwarded (both ways): a request
//! can then be retried, and a backend counts a request in flight until its
//! answer has been read, which is what draining waits for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::metrics::{Metrics, Series};
use super::pools::Pools;
use super::protocol::Settings;
use super::upstream::{CallError, Upstream};

pub type Body = Full<Bytes>;
pub type BackendClient = Client<TimedConnector, Body>;

/// What every thread of a load balancer process shares.
pub struct Shared {
    pub pools: Pools,
    pub metrics: Metrics,
    /// Where 503s for requests no backend could take are counted.
    pub unrouted: Series,
    /// `connect_timeout`, read by every connector at each connection.
    connect_timeout_ms: Arc<AtomicU64>,
}

impl Shared {
    pub fn new() -> Shared {
        let metrics = Metrics::default();
        let unrouted = metrics.series("none", "none");
        let settings = Settings::default();
        Shared {
            pools: Pools::default(),
            metrics,
            unrouted,
            connect_timeout_ms: Arc::new(AtomicU64::new(settings.connect_timeout_ms)),
        }
    }

    /// Takes new settings; requests that start from now on follow them.
    pub fn set_settings(&self, settings: Settings) {
        self.connect_timeout_ms
            .store(settings.connect_timeout_ms, Ordering::Relaxed);
        self.pools.set_settings(settings);
    }

    /// A proxying thread's connections to the backends, connecting within
    /// the current `connect_timeout`.
    pub fn upstream(&self) -> Upstream {
        Upstream::new(self.connect_timeout_ms.clone())
    }

    /// A client with keep-alive connections to backends, for health checks
    /// (on the admin thread), connecting within the current
    /// `connect_timeout`.
    pub fn backend_client(&self) -> BackendClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let connector = TimedConnector {
            inner: connector,
            timeout_ms: self.connect_timeout_ms.clone(),
        };
        Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector)
    }
}

/// hyper's connector, given up on after the current `connect_timeout`
/// (a backend that accepts no connection — stopped, its backlog full —
/// costs that long, not the kernel's minutes).
#[derive(Clone)]
pub struct TimedConnector {
    inner: HttpConnector,
    timeout_ms: Arc<AtomicU64>,
}

type Connecting<T> =
    Pin<Box<dyn Future<Output = Result<T, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

impl tower_service::Service<Uri> for TimedConnector {
    type Response = <HttpConnector as tower_service::Service<Uri>>::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting<Self::Response>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed));
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(format!("no connection within {timeout:?}").into()),
            }
        })
    }
}

/// One proxying thread: the shared pools, and its own pooled connections
/// to the backends (a thread's client and server connections never wake
/// another thread).
pub struct Proxy {
    pub shared: Arc<Shared>,
    pub upstream: Upstream,
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: look before removing (each removal hashes).
    let any = headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(&name.as_str()));
    if !any {
        return;
    }
    // Headers the `Connection` header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// How a call to a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection within `connect_timeout`, or refused: nothing sent.
    NoConnection,
    /// The connection broke before an answer came.
    NoAnswer,
    /// The answer broke off after it started.
    PartAnswer,
    /// No whole answer within `response_timeout`.
    TimedOut,
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}

impl Proxy {
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable request body\n"),
        };
        strip_hop_by_hop(&mut parts.headers);
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut tried: Option<String> = None;
        let pools = &self.shared.pools;
        let settings = pools.settings();
        let response_timeout = Duration::from_millis(settings.response_timeout_ms);
        let routed = pools.route_of(|name| parts.headers.get(name).and_then(|v| v.to_str().ok()));
        for attempt in 0..2 {
            let chosen = routed
                .as_deref()
                .and_then(|pool| pools.choose_in(pool, tried.as_deref()))
                .or_else(|| pools.choose(tried.as_deref()));
            let Some(in_flight) = chosen else {
                break;
            };
            let backend = in_flight.backend().clone();
            let mut outgoing = Request::new(Full::new(body.clone()));
            *outgoing.method_mut() = parts.method.clone();
            // Origin-form, as HTTP/1.1 asks of a request to an origin server.
            *outgoing.uri_mut() = Uri::from(path.clone());
            let headers = outgoing.headers_mut();
            *headers = parts.headers.clone();
            if !headers.contains_key(hyper::header::HOST) {
                headers.insert(
                    hyper::header::HOST,
                    HeaderValue::from_str(backend.authority.as_str())
                        .expect("an authority is a valid header value"),
                );
            }
            headers.append("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
            let exchange = async {
                let (response, connection) =
                    self.upstream.call(backend.addr, outgoing).await.map_err(
                        |error| match error {
                            CallError::NoConnection => Failure::NoConnection,
                            CallError::NoAnswer => Failure::NoAnswer,
                        },
                    )?;
                let (mut response_parts, response_body) = response.into_parts();
                let collected = response_body
                    .collect()
                    .await
                    .map_err(|_| Failure::PartAnswer)?;
                self.upstream.give_back(connection);
                strip_hop_by_hop(&mut response_parts.headers);
                Ok(Response::from_parts(
                    response_parts,
                    Full::new(collected.to_bytes()),
                ))
            };
            let answer = tokio::time::timeout(response_timeout, exchange)
                .await
                .unwrap_or(Err(Failure::TimedOut));
            // Dropping the exchange on a timeout closed its connection.
            drop(in_flight);
            let failed = answer
                .as_ref()
                .map_or(true, |response| response.status().is_server_error());
            if backend.record_answer(failed, settings.max_failures) && pools.eject(&backend) {
                tracing::warn!(
                    backend = %backend.id,
                    max_failures = settings.max_failures,
                    "backend taken out of service: too many failed requests"
                );
            }
            match answer {
                Ok(response) => {
                    backend
                        .series
                        .record(response.status().as_u16(), started.elapsed());
                    return response;
                }
                Err(failure) => {
                    if failure == Failure::NoConnection {
                        backend.mark_down();
                    }
                    let retry = match failure {
                        // Nothing was sent.
                        Failure::NoConnection => true,
                        Failure::NoAnswer | Failure::TimedOut => idempotent(&parts.method),
                        // Part of the answer came: it cannot be sent again.
                        Failure::PartAnswer => false,
                    };
                    if retry && attempt == 0 {
                        tried = Some(backend.id.clone());
                        continue;
                    }
                    let (status, text) = match failure {
                        Failure::TimedOut => (
                            StatusCode::GATEWAY_TIMEOUT,
                            "the backend did not answer in time\n",
                        ),
                        _ => (StatusCode::BAD_GATEWAY, "the backend failed to answer\n"),
                    };
                    backend.series.record(status.as_u16(), started.elapsed());
                    return plain(status, text);
                }
            }
        }
        self.shared.unrouted.record(503, started.elapsed());
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy backend can take this request\n",
        )
    }
}
