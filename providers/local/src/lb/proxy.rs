//! The data path: every client request goes to a backend chosen by
//! [`Pools::choose`], over pooled keep-alive connections. Each client
//! connection is one task that reads a request (`wire.rs`), sends it on a
//! backend connection of its thread (`upstream.rs`), reads the answer and
//! writes it back: HTTP/1.1 keep-alive and pipelining on both sides.
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
//!
//! A client connection is closed after [`KEEP_ALIVE`] without a request
//! (nginx's `keepalive_timeout`), and when a request's head or body stops
//! coming for [`CLIENT_TIMEOUT`] (answered 408).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::metrics::{Metrics, Series};
use super::pools::Pools;
use super::protocol::Settings;
use super::upstream::Upstream;
use super::wire::{self, BodyError, Conn, Request};

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

/// How long a client connection may wait for its next request.
pub const KEEP_ALIVE: Duration = Duration::from_secs(75);
/// How long a started request may pause before the rest of it comes.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One proxying thread: the shared pools, and its own pooled connections
/// to the backends (a thread's client and server connections never wake
/// another thread).
pub struct Proxy {
    pub shared: Arc<Shared>,
    pub upstream: Upstream,
}

/// How a call to a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection within `connect_timeout`, or refused: nothing sent.
    NoConnection,
    /// The connection broke before an answer came.
    NoAnswer,
    /// The answer broke off after it started, or is not HTTP.
    PartAnswer,
    /// No whole answer within `response_timeout`.
    TimedOut,
}

/// A backend's whole answer.
struct Answer {
    head: wire::Response,
    body: Bytes,
}

/// What a client connection waits for next.
enum Next {
    Request(Request),
    /// The client is gone, or idle for too long: close quietly.
    Close,
    /// Answer this and close.
    Refuse(u16, &'static str),
}

impl Proxy {
    /// Serves one client connection until it closes.
    pub async fn serve(self: Arc<Self>, stream: TcpStream) {
        let mut client = Conn::new(stream);
        loop {
            let request = match self.next_request(&mut client).await {
                Next::Request(request) => request,
                Next::Close => return,
                Next::Refuse(status, reason) => return refuse(client, status, reason).await,
            };
            if request.expects_continue && client.buf.is_empty() {
                let continuing = client.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                if continuing.await.is_err() {
                    return;
                }
            }
            let body = match tokio::time::timeout(CLIENT_TIMEOUT, client.read_body(request.framing))
                .await
            {
                Ok(Ok(body)) => body,
                Ok(Err(BodyError::Broken)) => return,
                Ok(Err(BodyError::TooLarge)) => {
                    return refuse(client, 413, "Content Too Large").await;
                }
                Ok(Err(BodyError::Malformed)) => return refuse(client, 400, "Bad Request").await,
                Err(_) => return refuse(client, 408, "Request Timeout").await,
            };
            let connection = if !request.keep_alive {
                Some("close")
            } else if request.http10 {
                Some("keep-alive")
            } else {
                None
            };
            let answer = self.forward(&request, &body, connection).await;
            if client.stream.write_all(&answer).await.is_err() || !request.keep_alive {
                return;
            }
        }
    }

    /// The next request's head from `client`.
    async fn next_request(&self, client: &mut Conn) -> Next {
        let waited = Instant::now();
        loop {
            let pools = &self.shared.pools;
            match Request::parse(&client.buf, |header| pools.route_of(header)) {
                Ok(Some((request, length))) => {
                    bytes::Buf::advance(&mut client.buf, length);
                    return Next::Request(request);
                }
                Ok(None) => {}
                Err(error) => {
                    let (status, reason) = error.status();
                    return Next::Refuse(status, reason);
                }
            }
            // Between requests the client may idle for KEEP_ALIVE; once a
            // request has started, it may pause for CLIENT_TIMEOUT.
            let started = !client.buf.is_empty();
            let limit = if started { CLIENT_TIMEOUT } else { KEEP_ALIVE };
            let Some(left) = limit.checked_sub(waited.elapsed()) else {
                return if started {
                    Next::Refuse(408, "Request Timeout")
                } else {
                    Next::Close
                };
            };
            match tokio::time::timeout(left, client.fill()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false) | Err(_)) => return Next::Close,
                Err(_) if started => return Next::Refuse(408, "Request Timeout"),
                Err(_) => return Next::Close,
            }
        }
    }

    /// The answer to `request`, as bytes for the client: the backend's,
    /// or the load balancer's own 502/503/504.
    async fn forward(&self, request: &Request, body: &[u8], connection: Option<&str>) -> Vec<u8> {
        let started = Instant::now();
        let mut tried: Option<String> = None;
        let pools = &self.shared.pools;
        let settings = pools.settings();
        let response_timeout = Duration::from_millis(settings.response_timeout_ms);
        for attempt in 0..2 {
            let chosen = request
                .route
                .as_deref()
                .and_then(|pool| pools.choose_in(pool, tried.as_deref()))
                .or_else(|| pools.choose(tried.as_deref()));
            let Some(in_flight) = chosen else {
                break;
            };
            let backend = in_flight.backend().clone();
            let outgoing = request.encode(backend.authority.as_str(), body);
            let answer = tokio::time::timeout(
                response_timeout,
                self.exchange(backend.addr, &outgoing, request),
            )
            .await
            .unwrap_or(Err(Failure::TimedOut));
            // Dropping the exchange on a timeout closed its connection.
            drop(in_flight);
            let failed = answer
                .as_ref()
                .map_or(true, |answer| answer.head.status >= 500);
            if backend.record_answer(failed, settings.max_failures) && pools.eject(&backend) {
                tracing::warn!(
                    backend = %backend.id,
                    max_failures = settings.max_failures,
                    "backend taken out of service: too many failed requests"
                );
            }
            match answer {
                Ok(answer) => {
                    backend.series.record(answer.head.status, started.elapsed());
                    return answer.head.encode(&answer.body, connection);
                }
                Err(failure) => {
                    if failure == Failure::NoConnection {
                        backend.mark_down();
                    }
                    let retry = match failure {
                        // Nothing was sent.
                        Failure::NoConnection => true,
                        Failure::NoAnswer | Failure::TimedOut => request.idempotent,
                        // Part of the answer came: it cannot be sent again.
                        Failure::PartAnswer => false,
                    };
                    if retry && attempt == 0 {
                        tried = Some(backend.id.clone());
                        continue;
                    }
                    let (status, reason, text) = match failure {
                        Failure::TimedOut => (
                            504,
                            "Gateway Timeout",
                            "the backend did not answer in time\n",
                        ),
                        _ => (502, "Bad Gateway", "the backend failed to answer\n"),
                    };
                    backend.series.record(status, started.elapsed());
                    return wire::plain(status, reason, text, connection);
                }
            }
        }
        self.shared.unrouted.record(503, started.elapsed());
        wire::plain(
            503,
            "Service Unavailable",
            "no healthy backend can take this request\n",
            connection,
        )
    }

    /// Sends `outgoing` to `addr` and reads the whole answer. A pooled
    /// connection the backend closed before it took the request is
    /// replaced by a fresh one, once.
    async fn exchange(
        &self,
        addr: SocketAddr,
        outgoing: &[u8],
        request: &Request,
    ) -> Result<Answer, Failure> {
        let mut attempt = self
            .upstream
            .take(addr)
            .await
            .ok_or(Failure::NoConnection)?;
        loop {
            match send_and_read(&mut attempt.conn, outgoing, request.is_head).await {
                Ok(answer) => {
                    if answer.head.reusable {
                        self.upstream.give_back(addr, attempt.conn);
                    }
                    return Ok(answer);
                }
                // A kept connection that ends before any answer was most
                // likely closed by its backend as the request went out.
                Err(Sent::Unanswered { written })
                    if attempt.reused && (!written || request.idempotent) =>
                {
                    let conn = self
                        .upstream
                        .connect(addr)
                        .await
                        .ok_or(Failure::NoConnection)?;
                    attempt = super::upstream::Attempt {
                        conn,
                        reused: false,
                    };
                }
                Err(Sent::Unanswered { .. }) => return Err(Failure::NoAnswer),
                Err(Sent::PartAnswer) => return Err(Failure::PartAnswer),
            }
        }
    }
}

/// Answers `status` and closes the connection. What the client still
/// sends is read and dropped for a while first (nginx's lingering close):
/// closing a socket with unread input resets the connection, and the client
/// could lose the answer before it read it.
async fn refuse(mut client: Conn, status: u16, reason: &str) {
    let refusal = wire::plain(status, reason, &format!("{reason}\n"), Some("close"));
    if client.stream.write_all(&refusal).await.is_err() || client.stream.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            client.buf.clear();
            match client.fill().await {
                Ok(true) => dropped += client.buf.len(),
                _ => return,
            }
        }
    })
    .await;
}

/// How long, and how many bytes, a refused client's input is read and
/// dropped before its connection is closed.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

/// How an exchange on one connection failed.
enum Sent {
    /// No byte of an answer came; `written`: the request went out whole.
    Unanswered {
        written: bool,
    },
    PartAnswer,
}

/// Writes `outgoing` on `conn` and reads the answer whole (interim 1xx
/// answers skipped).
async fn send_and_read(conn: &mut Conn, outgoing: &[u8], is_head: bool) -> Result<Answer, Sent> {
    if conn.stream.write_all(outgoing).await.is_err() {
        return Err(Sent::Unanswered { written: false });
    }
    let mut answered = false;
    loop {
        match wire::Response::parse(&conn.buf, is_head) {
            Ok(Some((head, length))) => {
                bytes::Buf::advance(&mut conn.buf, length);
                answered = true;
                if head.is_interim() {
                    if head.status == 101 {
                        // No upgrade was asked for (the header is not
                        // forwarded): not an answer to this request.
                        return Err(Sent::PartAnswer);
                    }
                    continue;
                }
                let body = conn
                    .read_body(head.framing)
                    .await
                    .map_err(|_| Sent::PartAnswer)?;
                return Ok(Answer { head, body });
            }
            Ok(None) => {}
            Err(()) => return Err(Sent::PartAnswer),
        }
        match conn.fill().await {
            Ok(true) => {}
            _ if answered || !conn.buf.is_empty() => return Err(Sent::PartAnswer),
            _ => return Err(Sent::Unanswered { written: true }),
        }
    }
}
