//! A small HTTP/1.1 client for loopback, on hyper: one request per
//! connection (`Connection: close`). The provider talks to its load
//! balancer's admin API and checks instances' health with it; tests use it
//! as a load generator that, like the rollout tests demand, never reuses
//! connections.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a [u8]>,
    /// Other headers, as (name, value).
    pub headers: &'a [(&'a str, &'a str)],
}

/// Sends `request` to `addr` (`127.0.0.1:8080`) and reads the whole answer,
/// all within `timeout`.
pub async fn send(
    addr: &str,
    request: Request<'_>,
    timeout: Duration,
) -> std::io::Result<Response> {
    match tokio::time::timeout(timeout, exchange(addr, request)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from {addr} within {timeout:?}"),
        )),
    }
}

/// `GET path`.
pub async fn get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<Response> {
    let request = Request {
        method: "GET",
        path,
        ..Request::default()
    };
    send(addr, request, timeout).await
}

fn invalid(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}

async fn exchange(addr: &str, request: Request<'_>) -> std::io::Result<Response> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(invalid)?;
    let mut builder = hyper::Request::builder()
        .method(request.method)
        .uri(request.path)
        .header(HOST, addr)
        .header(CONNECTION, "close");
    if let Some(token) = request.token {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in request.headers {
        builder = builder.header(*name, *value);
    }
    if request.body.is_some() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    let body = Full::new(Bytes::copy_from_slice(request.body.unwrap_or_default()));
    let request = builder.body(body).map_err(invalid)?;
    let answer = async {
        let response = sender.send_request(request).await.map_err(invalid)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(invalid)?
            .to_bytes()
            .to_vec();
        Ok::<_, std::io::Error>(Response {
            status,
            headers,
            body,
        })
    };
    // The connection ends after the answer (`Connection: close`): drive it
    // until then, beside the request.
    let (answer, _closed) = tokio::join!(answer, connection);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A server that answers one connection with `answer`, whatever it
    /// is asked.
    async fn answering(answer: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = stream.read(&mut request).await;
            stream.write_all(answer).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn reads_plain_and_chunked_answers() {
        let addr = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let plain = get(&addr, "/", Duration::from_secs(5)).await.unwrap();
        assert_eq!((plain.status, plain.text()), (200, "ok".to_string()));
        let addr = answering(
            b"HTTP/1.1 503 x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .await;
        let chunked = get(&addr, "/", Duration::from_secs(5)).await.unwrap();
        assert_eq!((chunked.status, chunked.text()), (503, "abcde".to_string()));
        assert_eq!(chunked.header("Transfer-Encoding"), Some("chunked"));
        let addr = answering(b"HTTP/1.1 200 OK\r\n").await;
        assert!(get(&addr, "/", Duration::from_secs(5)).await.is_err());
    }
}
