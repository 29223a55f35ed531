//! The data path: every client request goes to a backend chosen by
//! [`Pools::choose`], over pooled keep-alive connections.
//!
//! A request that got no answer from its backend is sent once more to
//! another backend when that is safe: always if the connection could not be
//! made (nothing was sent), and for idempotent methods (GET, HEAD, PUT,
//! DELETE, OPTIONS) if the backend closed the connection before answering —
//! as nginx's `proxy_next_upstream error` does. A backend that refused a
//! connection is marked down at once; its health checks bring it back.
//!
//! Bodies are read whole before they are forwarded (both ways): a request
//! can then be retried, and a backend counts a request in flight until its
//! answer has been read, which is what draining waits for.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{PathAndQuery, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::metrics::{Metrics, Series};
use super::pools::Pools;

pub type Body = Full<Bytes>;
pub type BackendClient = Client<HttpConnector, Body>;

/// What every thread of a load balancer process shares.
pub struct Shared {
    pub pools: Pools,
    pub metrics: Metrics,
    /// Where 503s for requests no backend could take are counted.
    pub unrouted: Series,
}

impl Shared {
    pub fn new() -> Shared {
        let metrics = Metrics::default();
        let unrouted = metrics.series("none", "none");
        Shared {
            pools: Pools::default(),
            metrics,
            unrouted,
        }
    }
}

/// One proxying thread: the shared pools, and its own pooled connections
/// to the backends (a thread's client and server connections never wake
/// another thread).
pub struct Proxy {
    pub shared: Arc<Shared>,
    pub client: BackendClient,
}

/// A client with keep-alive connections to backends, on the current thread.
pub fn backend_client() -> BackendClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(1)));
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
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
            *outgoing.uri_mut() = match Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(backend.authority.clone())
                .path_and_query(path.clone())
                .build()
            {
                Ok(uri) => uri,
                Err(_) => return plain(StatusCode::BAD_REQUEST, "invalid request target\n"),
            };
            *outgoing.headers_mut() = parts.headers.clone();
            outgoing
                .headers_mut()
                .append("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
            let answer = match self.client.request(outgoing).await {
                Ok(response) => {
                    let (mut response_parts, response_body) = response.into_parts();
                    match response_body.collect().await {
                        Ok(collected) => {
                            strip_hop_by_hop(&mut response_parts.headers);
                            Ok(Response::from_parts(
                                response_parts,
                                Full::new(collected.to_bytes()),
                            ))
                        }
                        // Part of the answer came: it cannot be sent again.
                        Err(_) => Err(false),
                    }
                }
                Err(error) => {
                    if error.is_connect() {
                        backend.mark_down();
                    }
                    Err(error.is_connect() || idempotent(&parts.method))
                }
            };
            drop(in_flight);
            match answer {
                Ok(response) => {
                    backend
                        .series
                        .record(response.status().as_u16(), started.elapsed());
                    return response;
                }
                Err(retry) if retry && attempt == 0 => tried = Some(backend.id.clone()),
                Err(_) => {
                    backend.series.record(502, started.elapsed());
                    return plain(StatusCode::BAD_GATEWAY, "the backend failed to answer\n");
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
