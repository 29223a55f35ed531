//! Active health checks: one task per backend, `GET path` every
//! `interval`; a 2xx or 3xx within `timeout` passes. Health changes after
//! the thresholds ([`Backend::record_check`]); the task ends when the
//! backend is deregistered.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use super::pools::Backend;
use super::proxy::BackendClient;

pub fn watch(backend: Arc<Backend>, client: BackendClient) {
    tokio::spawn(async move {
        while !backend.removed.load(Ordering::Acquire) {
            let passed = check(&backend, &client).await;
            if backend.removed.load(Ordering::Acquire) {
                break;
            }
            if let Some(healthy) = backend.record_check(passed) {
                tracing::info!(
                    backend = %backend.id,
                    addr = %backend.addr,
                    healthy,
                    "backend is now {}",
                    if healthy { "healthy" } else { "unhealthy" }
                );
            }
            tokio::time::sleep(backend.check.interval).await;
        }
    });
}

async fn check(backend: &Backend, client: &BackendClient) -> bool {
    let Ok(uri) = format!("http://{}{}", backend.addr, backend.check.path).parse() else {
        return false;
    };
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = uri;
    match tokio::time::timeout(backend.check.timeout, client.request(request)).await {
        Ok(Ok(response)) => {
            let passed = response.status().is_success() || response.status().is_redirection();
            // Read the body so the connection can be reused.
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            passed
        }
        _ => false,
    }
}
