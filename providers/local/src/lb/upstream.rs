//! A worker's keep-alive connections to its backends.
//!
//! Each proxying thread owns one [`Upstream`]: idle HTTP/1.1 connections per
//! backend address, taken for one exchange and given back once the answer
//! has been read whole. The request is written by the connection's own task
//! on the same single-threaded runtime, so a request never crosses threads.
//! (hyper-util's pooled `Client` did the same job with a shared pool keyed
//! by URI, absolute-form URIs rewritten per request and a retry layer of its
//! own: about a tenth of the load balancer's CPU per request.)
//!
//! A pooled connection the backend has closed is noticed before use and
//! dropped; if it closes between that check and the write, the request
//! comes back unsent and goes out on a fresh connection. Connections idle
//! for longer than [`IDLE_TIMEOUT`] are closed by [`Upstream::close_idle`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::proxy::Body;

/// How long an idle connection is kept (as the pooled client did).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per backend; more are closed when given back.
const MAX_IDLE_PER_BACKEND: usize = 1024;

/// How a call failed before any answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No connection within `connect_timeout`, or refused: nothing sent.
    NoConnection,
    /// The connection broke before an answer came.
    NoAnswer,
}

/// One connection, busy with an exchange; [`Upstream::give_back`] it once
/// the answer has been read.
pub struct Connection {
    addr: SocketAddr,
    sender: SendRequest<Body>,
}

/// Idle connections to one backend, each with the moment it became idle.
type Idle = Vec<(SendRequest<Body>, Instant)>;

pub struct Upstream {
    idle: Mutex<HashMap<SocketAddr, Idle>>,
    connect_timeout_ms: Arc<AtomicU64>,
}

impl Upstream {
    pub fn new(connect_timeout_ms: Arc<AtomicU64>) -> Upstream {
        Upstream {
            idle: Mutex::new(HashMap::new()),
            connect_timeout_ms,
        }
    }

    /// Sends `request` (origin-form URI) to `addr` and waits for the
    /// answer's head; the connection comes with it.
    pub async fn call(
        &self,
        addr: SocketAddr,
        mut request: Request<Body>,
    ) -> Result<(Response<Incoming>, Connection), CallError> {
        // Pooled connections first: one that closed before our request was
        // written hands the request back.
        while let Some(mut sender) = self.take_idle(addr) {
            // Ready once its task has finished the previous exchange.
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, Connection { addr, sender })),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(CallError::NoAnswer),
                },
            }
        }
        let mut sender = self.connect(addr).await?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, Connection { addr, sender })),
            Err(_) => Err(CallError::NoAnswer),
        }
    }

    /// Keeps `connection` for the next request to its backend, unless it
    /// closed meanwhile.
    pub fn give_back(&self, connection: Connection) {
        if connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.entry(connection.addr).or_default();
        if kept.len() < MAX_IDLE_PER_BACKEND {
            kept.push((connection.sender, Instant::now()));
        }
    }

    /// Closes the connections idle for longer than [`IDLE_TIMEOUT`] (and
    /// forgets backends with none left).
    pub fn close_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for kept in idle.values_mut() {
            kept.retain(|(sender, since)| {
                !sender.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT
            });
        }
        idle.retain(|_, kept| !kept.is_empty());
    }

    /// The most recently used idle connection to `addr` that is still open.
    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.get_mut(&addr)?;
        while let Some((sender, _)) = kept.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// A new connection to `addr` within the current `connect_timeout`,
    /// its task spawned on this thread's runtime.
    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<Body>, CallError> {
        let timeout = Duration::from_millis(self.connect_timeout_ms.load(Ordering::Relaxed));
        let Ok(Ok(stream)) = tokio::time::timeout(timeout, TcpStream::connect(addr)).await else {
            return Err(CallError::NoConnection);
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| CallError::NoConnection)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
