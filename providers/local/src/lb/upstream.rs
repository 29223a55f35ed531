//! A worker's keep-alive connections to its backends.
//!
//! Each proxying thread owns one [`Upstream`]: idle HTTP/1.1 connections per
//! backend address, taken for one exchange and given back once the answer
//! has been read whole. The task serving a client connection writes the
//! request and reads the answer itself: a request never crosses tasks or
//! threads (nginx's model; hyper's client handed every request to the
//! connection's own task, about a sixth of the load balancer's CPU).
//!
//! A pooled connection the backend has closed is noticed before use (the
//! kernel already said its peer hung up) and dropped.
//! If it closes between that look and the write, [`Attempt::reused`] tells
//! the caller the request may go out again on a fresh connection.
//! Connections idle for longer than [`IDLE_TIMEOUT`] are closed by
//! [`Upstream::close_idle`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::wire::Conn;

/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per backend; more are closed when given back.
const MAX_IDLE_PER_BACKEND: usize = 1024;

/// Idle connections to one backend, each with the moment it became idle.
type Idle = Vec<(Conn, Instant)>;

/// A connection taken for one exchange.
pub struct Attempt {
    pub conn: Conn,
    /// It carried an exchange before (and may have been closed by the
    /// backend meanwhile).
    pub reused: bool,
}

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

    /// A connection to `addr`: the most recently used idle one that is
    /// still open, else a new one (`None` if none can be made within
    /// `connect_timeout`: nothing was sent).
    pub async fn take(&self, addr: SocketAddr) -> Option<Attempt> {
        if let Some(conn) = self.take_idle(addr) {
            return Some(Attempt { conn, reused: true });
        }
        self.connect(addr).await.map(|conn| Attempt {
            conn,
            reused: false,
        })
    }

    /// A new connection to `addr` within the current `connect_timeout`.
    pub async fn connect(&self, addr: SocketAddr) -> Option<Conn> {
        let timeout = Duration::from_millis(self.connect_timeout_ms.load(Ordering::Relaxed));
        let Ok(Ok(stream)) = tokio::time::timeout(timeout, TcpStream::connect(addr)).await else {
            return None;
        };
        let _ = stream.set_nodelay(true);
        Some(Conn::new(stream))
    }

    /// Keeps `conn` for the next request to `addr`.
    pub fn give_back(&self, addr: SocketAddr, conn: Conn) {
        if !conn.buf.is_empty() {
            // More than the answer came: the connection is out of step.
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.entry(addr).or_default();
        if kept.len() < MAX_IDLE_PER_BACKEND {
            kept.push((conn, Instant::now()));
        }
    }

    /// Closes the connections idle for longer than [`IDLE_TIMEOUT`] or
    /// closed by their backend (and forgets backends with none left).
    pub fn close_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for kept in idle.values_mut() {
            kept.retain(|(conn, since)| {
                now.duration_since(*since) < IDLE_TIMEOUT && still_open(conn)
            });
        }
        idle.retain(|_, kept| !kept.is_empty());
    }

    /// The most recently used idle connection to `addr` that is still open.
    fn take_idle(&self, addr: SocketAddr) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.get_mut(&addr)?;
        while let Some((conn, _)) = kept.pop() {
            if still_open(&conn) {
                return Some(conn);
            }
        }
        None
    }
}

/// Whether an idle connection is still open, from what the kernel last
/// said about the socket (epoll's `EPOLLRDHUP`, kept by tokio): no system
/// call, as nginx's keepalive cache, which learns of a close the same way.
/// (Bytes the backend sends unasked on an idle connection are found when
/// the next answer is read, and fail that exchange.)
fn still_open(conn: &Conn) -> bool {
    use futures_util::FutureExt as _;
    match conn.stream.ready(Interest::READABLE).now_or_never() {
        Some(Ok(ready)) => !ready.is_read_closed() && !ready.is_error(),
        Some(Err(_)) => false,
        None => true,
    }
}
