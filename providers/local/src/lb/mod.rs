//! `local_lb`'s process: an HTTP/1.1 load balancer on tokio (its admin
//! API on hyper).
//!
//! It is started detached by the provider (`infra local-lb --listen ADDR
//! --dir DIR`) and outlives infra. It reads its admin token from
//! `DIR/token`, binds the listener and an admin port on 127.0.0.1, and
//! writes `DIR/admin.json` (`pid`, `listen`, `admin`) once both accept
//! connections. SIGTERM stops it.
//!
//! - `pools.rs`: pools with weights, backends with health and draining,
//!   the choice of a backend;
//! - `proxy.rs`: forwarding, with one retry on another backend, over
//!   `upstream.rs`: each worker's keep-alive connections to the backends,
//!   and `wire.rs`: HTTP/1.1 messages read and rewritten for the next hop;
//! - `health.rs`: active health checks;
//! - `admin.rs`: register / deregister (drain) / weights / status, and
//!   `metrics.rs`: Prometheus metrics.

mod admin;
mod health;
mod metrics;
mod pools;
pub mod protocol;
mod proxy;
mod upstream;
mod wire;

pub use pools::{DEFAULT_WEIGHT, HealthCheck};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::runtime::write_atomically;

/// What `infra local-lb` takes.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: String,
    pub admin: String,
    pub dir: PathBuf,
}

impl Options {
    /// `--listen ADDR [--admin ADDR] --dir DIR`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut listen = None;
        let mut admin = "127.0.0.1:0".to_string();
        let mut dir = None;
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--listen" => listen = Some(value()?),
                "--admin" => admin = value()?,
                "--dir" => dir = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(Options {
            listen: listen.ok_or("--listen is required")?,
            admin,
            dir: dir.ok_or("--dir is required")?,
        })
    }
}

/// Runs the load balancer until SIGTERM or SIGINT; the exit code.
///
/// Like nginx's workers, one thread per core accepts on its own listening
/// socket (SO_REUSEPORT: the kernel spreads connections) and serves them
/// on a single-threaded runtime, with its own connections to the backends.
/// The admin API and the health checks run on the main thread.
pub fn run(options: Options) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!("{error}");
            1
        }
    }
}

/// `count` sockets bound to `listen` with SO_REUSEPORT (the first one picks
/// the port if `listen` says 0).
fn bind_reuseport(listen: &str, count: usize) -> std::io::Result<Vec<TcpSocket>> {
    let mut addr: SocketAddr = listen
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an address"))?;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

async fn serve(options: Options) -> Result<(), String> {
    let token = std::fs::read_to_string(options.dir.join("token"))
        .map_err(|e| {
            format!(
                "cannot read the admin token in {}: {e}",
                options.dir.display()
            )
        })?
        .trim()
        .to_string();
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let sockets = bind_reuseport(&options.listen, workers)
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let listen_addr = sockets[0].local_addr().map_err(|e| e.to_string())?;
    let admin_listener = TcpListener::bind(&options.admin)
        .await
        .map_err(|e| format!("cannot listen on {} (admin): {e}", options.admin))?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;

    let shared = Arc::new(proxy::Shared::new());
    let admin = Arc::new(admin::Admin {
        shared: shared.clone(),
        client: shared.backend_client(),
        token,
    });
    tokio::spawn(accept(admin_listener, move |request| {
        admin.clone().handle(request)
    }));

    let (started, mut ready) = tokio::sync::mpsc::channel::<Result<(), String>>(workers);
    for (index, socket) in sockets.into_iter().enumerate() {
        let shared = shared.clone();
        let started = started.clone();
        std::thread::Builder::new()
            .name(format!("lb-worker-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.blocking_send(Err(error.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match socket.listen(1024) {
                        Ok(listener) => listener,
                        Err(error) => {
                            let _ = started.send(Err(error.to_string())).await;
                            return;
                        }
                    };
                    let upstream = shared.upstream();
                    let proxy = Arc::new(proxy::Proxy { shared, upstream });
                    let sweeping = proxy.clone();
                    tokio::spawn(async move {
                        let mut every = tokio::time::interval(upstream::IDLE_TIMEOUT / 3);
                        loop {
                            every.tick().await;
                            sweeping.upstream.close_idle();
                        }
                    });
                    let _ = started.send(Ok(())).await;
                    loop {
                        let stream = accept_one(&listener).await;
                        tokio::spawn(proxy.clone().serve(stream));
                    }
                });
            })
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
    }
    for _ in 0..workers {
        match ready.recv().await {
            Some(Ok(())) => {}
            Some(Err(error)) => return Err(format!("a worker failed to start: {error}")),
            None => return Err("a worker failed to start".into()),
        }
    }

    let announcement = protocol::Announcement {
        pid: std::process::id(),
        listen: listen_addr.to_string(),
        admin: admin_addr.to_string(),
    };
    let admin_file = options.dir.join("admin.json");
    let announced = serde_json::to_string(&announcement).expect("an announcement serialises");
    write_atomically(&admin_file, announced.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {}: {e}", admin_file.display()))?;
    tracing::info!(listen = %listen_addr, workers, admin = %admin_addr, "listening");

    wait_for_stop().await;
    let _ = std::fs::remove_file(&admin_file);
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The next connection `listener` accepts.
async fn accept_one(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(error) => {
                // Out of file descriptors and the like: wait, don't spin.
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts admin connections and serves each with hyper, HTTP/1.1
/// keep-alive.
async fn accept<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = hyper::Response<proxy::Body>> + Send + 'static,
{
    loop {
        let stream = accept_one(&listener).await;
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answer = handle(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
