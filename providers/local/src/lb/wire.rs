//! HTTP/1.1 on the wire, as the data path forwards it (RFC 9112): message
//! heads parsed with `httparse` and rewritten for the next hop, bodies read
//! whole by their framing.
//!
//! Rewriting a head drops the hop-by-hop headers (RFC 9110 §7.6.1) and the
//! ones its `Connection` header names, and the body's framing: a forwarded
//! body always goes out with a `Content-Length` (a chunked body is decoded),
//! so the next hop never has to trust a framing it did not choose — the
//! ambiguity request smuggling feeds on. A request that frames its body in
//! two ways that disagree is refused.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The longest head (request or status line and headers) taken.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers in one head.
const MAX_HEADERS: usize = 100;
/// The largest body taken, either way.
pub const MAX_BODY: usize = 64 << 20;
/// The longest chunk-size line (with its extensions) or trailer line.
const MAX_CHUNK_LINE: usize = 4096;

/// Headers that describe one hop, never forwarded.
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

/// One side's connection and the bytes read from it but not yet used.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// Reads what the peer sent next; `false` at the end of the stream.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8 * 1024);
        }
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    /// Reads a body framed by `framing` whole.
    pub async fn read_body(&mut self, framing: Framing) -> Result<Bytes, BodyError> {
        match framing {
            Framing::Empty => Ok(Bytes::new()),
            Framing::Length(length) => {
                if length > MAX_BODY {
                    return Err(BodyError::TooLarge);
                }
                while self.buf.len() < length {
                    if !self.fill().await.map_err(|_| BodyError::Broken)? {
                        return Err(BodyError::Broken);
                    }
                }
                Ok(self.buf.split_to(length).freeze())
            }
            Framing::Chunked => self.read_chunked().await,
            Framing::UntilClose => {
                while self.fill().await.map_err(|_| BodyError::Broken)? {
                    if self.buf.len() > MAX_BODY {
                        return Err(BodyError::TooLarge);
                    }
                }
                Ok(self.buf.split().freeze())
            }
        }
    }

    /// A chunked body, decoded; its trailers are read and dropped.
    async fn read_chunked(&mut self) -> Result<Bytes, BodyError> {
        let mut body = BytesMut::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .map(str::trim)
                .filter(|size| !size.is_empty() && size.len() <= 16)
                .and_then(|size| usize::from_str_radix(size, 16).ok())
                .ok_or(BodyError::Malformed)?;
            if size == 0 {
                // Trailers, up to the empty line.
                for _ in 0..MAX_HEADERS {
                    if self.read_line().await?.is_empty() {
                        return Ok(body.freeze());
                    }
                }
                return Err(BodyError::Malformed);
            }
            if body.len() + size > MAX_BODY {
                return Err(BodyError::TooLarge);
            }
            while self.buf.len() < size + 2 {
                if !self.fill().await.map_err(|_| BodyError::Broken)? {
                    return Err(BodyError::Broken);
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(BodyError::Malformed);
            }
            self.buf.advance(size + 2);
        }
    }

    /// One line (without its CRLF) of a chunked body's framing.
    async fn read_line(&mut self) -> Result<Bytes, BodyError> {
        loop {
            let searched = &self.buf[..self.buf.len().min(MAX_CHUNK_LINE + 2)];
            if let Some(end) = searched.windows(2).position(|pair| pair == b"\r\n") {
                let line = self.buf.split_to(end).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(BodyError::Malformed);
            }
            if !self.fill().await.map_err(|_| BodyError::Broken)? {
                return Err(BodyError::Broken);
            }
        }
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(usize),
    Chunked,
    /// Until the sender closes the connection (answers only).
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The connection ended or failed before the body did.
    Broken,
    /// The chunked framing is not chunked framing.
    Malformed,
    /// Larger than [`MAX_BODY`].
    TooLarge,
}

/// Why a head cannot be taken; the status the client is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: not HTTP/1.x, or a framing that cannot be trusted.
    Malformed,
    /// 431: longer than [`MAX_HEAD`] or more than 100 headers.
    TooLarge,
    /// 413: a `Content-Length` above [`MAX_BODY`].
    BodyTooLarge,
    /// 501: a transfer coding other than `chunked`.
    UnknownCoding,
    /// 405: `CONNECT` (this is not a forward proxy).
    Connect,
}

impl HeadError {
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HeadError::Malformed => (400, "Bad Request"),
            HeadError::TooLarge => (431, "Request Header Fields Too Large"),
            HeadError::BodyTooLarge => (413, "Content Too Large"),
            HeadError::UnknownCoding => (501, "Not Implemented"),
            HeadError::Connect => (405, "Method Not Allowed"),
        }
    }
}

/// A client's request head, rewritten for a backend but for the headers
/// that depend on it (see [`Request::encode`]).
pub struct Request {
    /// The request line and the forwarded headers, each line ending CRLF.
    head: Vec<u8>,
    has_host: bool,
    pub framing: Framing,
    /// Whether the request had a body framing (a backend then gets a
    /// `Content-Length`, `0` included).
    framed: bool,
    pub idempotent: bool,
    pub is_head: bool,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// HTTP/1.0: keep-alive must be said in the answer.
    pub http10: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub expects_continue: bool,
    /// The pool a route sends this request to.
    pub route: Option<String>,
}

impl Request {
    /// Parses a request head at the start of `buf`: the request and the
    /// head's length, or `None` if more bytes are needed. `route_of` picks
    /// the request's pool from its headers.
    pub fn parse<'b>(
        buf: &'b [u8],
        route_of: impl FnOnce(&dyn Fn(&str) -> Option<&'b str>) -> Option<String>,
    ) -> Result<Option<(Request, usize)>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let length = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(HeadError::TooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed),
        };
        if length > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let method = parsed.method.unwrap_or("GET");
        let target = parsed.path.unwrap_or("/");
        let http10 = parsed.version == Some(0);
        if method == "CONNECT" {
            return Err(HeadError::Connect);
        }
        let headers: &[httparse::Header<'b>] = parsed.headers;
        let connection = Connection::of(headers);
        let framing = request_framing(headers, http10)?;
        let expects_continue = !http10
            && headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("expect")
                    && h.value.eq_ignore_ascii_case(b"100-continue")
            });

        let mut head = Vec::with_capacity(length + 64);
        head.extend_from_slice(method.as_bytes());
        head.push(b' ');
        push_origin_form(&mut head, target);
        head.extend_from_slice(b" HTTP/1.1\r\n");
        let mut has_host = false;
        for header in headers {
            let name = header.name;
            if connection.drops(name)
                || name.eq_ignore_ascii_case("content-length")
                || (expects_continue && name.eq_ignore_ascii_case("expect"))
            {
                continue;
            }
            has_host |= name.eq_ignore_ascii_case("host");
            push_header(&mut head, name.as_bytes(), header.value);
        }
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        let route = route_of(&lookup);
        let request = Request {
            head,
            has_host,
            framing,
            framed: framing != Framing::Empty,
            idempotent: matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS"),
            is_head: method == "HEAD",
            keep_alive: if http10 {
                connection.keep_alive
            } else {
                !connection.close
            },
            http10,
            expects_continue,
            route,
        };
        Ok(Some((request, length)))
    }

    /// The request as sent to a backend at `authority`, with `body`.
    pub fn encode(&self, authority: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 96 + body.len());
        out.extend_from_slice(&self.head);
        if !self.has_host {
            push_header(&mut out, b"host", authority.as_bytes());
        }
        out.extend_from_slice(b"x-forwarded-for: 127.0.0.1\r\n");
        if self.framed {
            push_length(&mut out, body.len());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }
}

/// A backend's answer head, rewritten for the client but for its framing
/// and connection headers (see [`Response::encode`]).
pub struct Response {
    pub status: u16,
    /// The status line and the forwarded headers, each line ending CRLF.
    head: Vec<u8>,
    pub framing: Framing,
    /// The backend's connection can carry another request after this one.
    pub reusable: bool,
}

impl Response {
    /// Parses an answer head at the start of `buf`: the answer and the
    /// head's length, `None` if more bytes are needed, `Err` if it is not
    /// an HTTP/1.x answer. `to_head` says the request was a `HEAD`.
    pub fn parse(buf: &[u8], to_head: bool) -> Result<Option<(Response, usize)>, ()> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let length = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(length)) if length <= MAX_HEAD => length,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
            _ => return Err(()),
        };
        let status = parsed.code.unwrap_or(0);
        let headers: &[httparse::Header<'_>] = parsed.headers;
        let connection = Connection::of(headers);
        let http10 = parsed.version == Some(0);
        // RFC 9112 §6.3: no body after HEAD, 1xx, 204 and 304 whatever the
        // headers say (their Content-Length, describing the resource, is
        // passed on as it is).
        let bodiless = to_head || (100..200).contains(&status) || status == 204 || status == 304;
        let framing = if bodiless {
            Framing::Empty
        } else if let Some(coding) = last_value(headers, "transfer-encoding") {
            if last_coding(coding).eq_ignore_ascii_case("chunked") {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else {
            match content_length(headers) {
                Ok(Some(length)) => Framing::Length(length),
                Ok(None) => Framing::UntilClose,
                Err(()) => return Err(()),
            }
        };
        let mut head = Vec::with_capacity(length + 64);
        head.extend_from_slice(format!("HTTP/1.1 {status} ").as_bytes());
        head.extend_from_slice(parsed.reason.unwrap_or("").as_bytes());
        head.extend_from_slice(b"\r\n");
        for header in headers {
            let name = header.name;
            if connection.drops(name) || (!bodiless && name.eq_ignore_ascii_case("content-length"))
            {
                continue;
            }
            push_header(&mut head, name.as_bytes(), header.value);
        }
        let reusable = framing != Framing::UntilClose
            && if http10 {
                connection.keep_alive
            } else {
                !connection.close
            };
        Ok(Some((
            Response {
                status,
                head,
                framing,
                reusable,
            },
            length,
        )))
    }

    /// The answer as sent to the client, with `body` (ignored when the
    /// answer has none); `connection` is `close`, `keep-alive` (an
    /// HTTP/1.0 client that keeps the connection) or nothing.
    pub fn encode(&self, body: &[u8], connection: Option<&str>) -> Vec<u8> {
        let carries_body = self.framing != Framing::Empty;
        let mut out = Vec::with_capacity(self.head.len() + 64 + body.len());
        out.extend_from_slice(&self.head);
        if carries_body {
            push_length(&mut out, body.len());
        }
        if let Some(connection) = connection {
            push_header(&mut out, b"connection", connection.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if carries_body {
            out.extend_from_slice(body);
        }
        out
    }

    /// The head of an interim (1xx) answer, dropped: the client's body was
    /// sent whole already.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// An answer of the load balancer's own: `text` with `status`.
pub fn plain(status: u16, reason: &str, text: &str, connection: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n",
        text.len()
    )
    .into_bytes();
    if let Some(connection) = connection {
        push_header(&mut out, b"connection", connection.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(text.as_bytes());
    out
}

/// What a message's `Connection` header says.
struct Connection<'h> {
    close: bool,
    keep_alive: bool,
    /// The other names it lists: hop-by-hop too.
    named: Vec<&'h str>,
}

impl<'h> Connection<'h> {
    fn of(headers: &[httparse::Header<'h>]) -> Connection<'h> {
        let mut connection = Connection {
            close: false,
            keep_alive: false,
            named: Vec::new(),
        };
        for header in headers {
            if !header.name.eq_ignore_ascii_case("connection") {
                continue;
            }
            let Ok(value) = std::str::from_utf8(header.value) else {
                continue;
            };
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    connection.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    connection.keep_alive = true;
                } else if !token.is_empty() {
                    connection.named.push(token);
                }
            }
        }
        connection
    }

    /// Whether a header of this name stays on this hop.
    fn drops(&self, name: &str) -> bool {
        HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || self
                .named
                .iter()
                .any(|named| name.eq_ignore_ascii_case(named))
    }
}

/// A request's body framing (RFC 9112 §6.3): `Transfer-Encoding: chunked`,
/// else one `Content-Length` (repeated values must agree), else none.
fn request_framing(headers: &[httparse::Header<'_>], http10: bool) -> Result<Framing, HeadError> {
    if let Some(coding) = last_value(headers, "transfer-encoding") {
        // Only `chunked` is understood; HTTP/1.0 has no transfer codings.
        let codings = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .filter(|coding| !coding.trim_ascii().is_empty())
            .count();
        if http10 {
            return Err(HeadError::Malformed);
        }
        if codings != 1 || !last_coding(coding).eq_ignore_ascii_case("chunked") {
            return Err(HeadError::UnknownCoding);
        }
        return Ok(Framing::Chunked);
    }
    match content_length(headers) {
        Ok(Some(length)) if length > MAX_BODY => Err(HeadError::BodyTooLarge),
        Ok(Some(length)) => Ok(Framing::Length(length)),
        Ok(None) => Ok(Framing::Empty),
        Err(()) => Err(HeadError::Malformed),
    }
}

/// The `Content-Length`, if any; `Err` if a value is not a number or two
/// values disagree.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<usize>, ()> {
    let mut length = None;
    for header in headers {
        if !header.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        for value in header.value.split(|&b| b == b',') {
            let value = value.trim_ascii();
            if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let value: usize = std::str::from_utf8(value)
                .map_err(|_| ())?
                .parse()
                .map_err(|_| ())?;
            if length.is_some_and(|known| known != value) {
                return Err(());
            }
            length = Some(value);
        }
    }
    Ok(length)
}

/// The value of the last header named `name`.
fn last_value<'h>(headers: &[httparse::Header<'h>], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .rev()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| std::str::from_utf8(h.value).unwrap_or(""))
}

/// The last of a comma-separated list of transfer codings.
fn last_coding(value: &str) -> &str {
    value.rsplit(',').next().unwrap_or("").trim()
}

/// A request target in origin form, as HTTP/1.1 asks of a request to an
/// origin server: `http://host/p?q` becomes `/p?q`.
fn push_origin_form(out: &mut Vec<u8>, target: &str) {
    let path = if target.starts_with('/') || target == "*" {
        target
    } else {
        match target.split_once("://") {
            Some((_, rest)) => rest.find(['/', '?']).map_or("", |at| &rest[at..]),
            None => "",
        }
    };
    if !path.starts_with('/') && path != "*" {
        out.push(b'/');
    }
    out.extend_from_slice(path.as_bytes());
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_length(out: &mut Vec<u8>, length: usize) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(length.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Result<Option<(Request, usize)>, HeadError> {
        Request::parse(text.as_bytes(), |_| None)
    }

    fn forwarded(text: &str, body: &[u8]) -> String {
        let (request, _) = request(text).unwrap().unwrap();
        String::from_utf8(request.encode("127.0.0.1:9", body)).unwrap()
    }

    #[test]
    fn a_request_goes_on_in_origin_form_without_its_hop_by_hop_headers() {
        let sent = forwarded(
            "GET http://example.test/a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\nTE: trailers\r\nAccept: */*\r\n\r\n",
            b"",
        );
        assert_eq!(
            sent,
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nx-forwarded-for: 127.0.0.1\r\n\r\n"
        );
        let sent = forwarded("GET / HTTP/1.0\r\n\r\n", b"");
        assert_eq!(
            sent,
            "GET / HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-forwarded-for: 127.0.0.1\r\n\r\n"
        );
    }

    #[test]
    fn a_body_goes_on_with_its_length_whatever_its_framing() {
        let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
        let (chunked, length) = request(&format!("{head}5\r\nhello\r\n0\r\n\r\n"))
            .unwrap()
            .unwrap();
        assert_eq!(length, head.len());
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.expects_continue);
        assert_eq!(
            String::from_utf8(chunked.encode("a", b"hello")).unwrap(),
            "POST / HTTP/1.1\r\nHost: x\r\nx-forwarded-for: 127.0.0.1\r\ncontent-length: 5\r\n\r\nhello"
        );
        let empty = forwarded(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            b"",
        );
        assert!(empty.ends_with("content-length: 0\r\n\r\n"), "{empty}");
    }

    #[test]
    fn framings_that_cannot_be_trusted_are_refused() {
        let refused = |text: &str| request(text).err();
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Some(HeadError::Malformed)
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Some(HeadError::Malformed)
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Some(HeadError::UnknownCoding)
        );
        assert_eq!(
            refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(HeadError::Malformed)
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n"),
            Some(HeadError::BodyTooLarge)
        );
        assert_eq!(refused("GARBAGE\r\n\r\n"), Some(HeadError::Malformed));
        assert_eq!(
            refused("CONNECT a:443 HTTP/1.1\r\n\r\n"),
            Some(HeadError::Connect)
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(refused(&long), Some(HeadError::TooLarge));
        assert!(matches!(request("GET / HTTP/1.1\r\nHost"), Ok(None)));
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let keeps = |text: &str| request(text).unwrap().unwrap().0.keep_alive;
        assert!(keeps("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.0\r\n\r\n"));
        assert!(keeps("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn an_answer_is_framed_by_its_status_and_headers() {
        let framing = |text: &str, to_head: bool| {
            Response::parse(text.as_bytes(), to_head)
                .unwrap()
                .unwrap()
                .0
                .framing
        };
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(framing(ok, false), Framing::Length(3));
        assert_eq!(framing(ok, true), Framing::Empty);
        assert_eq!(
            framing(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            Framing::Empty
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\n\r\n", false),
            Framing::UntilClose
        );
        let (head, _) = Response::parse(ok.as_bytes(), true).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(head.encode(b"", Some("close"))).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nconnection: close\r\n\r\n"
        );
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        let (head, _) = Response::parse(chunked.as_bytes(), false).unwrap().unwrap();
        assert!(!head.reusable);
        assert_eq!(
            String::from_utf8(head.encode(b"abc", None)).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"
        );
    }

    #[test]
    fn origin_form_keeps_the_path_and_query() {
        let origin_form = |target: &str| {
            let mut out = Vec::new();
            push_origin_form(&mut out, target);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(origin_form("/a?b"), "/a?b");
        assert_eq!(origin_form("http://h:1/a?b"), "/a?b");
        assert_eq!(origin_form("http://h:1?b"), "/?b");
        assert_eq!(origin_form("http://h"), "/");
        assert_eq!(origin_form("*"), "*");
    }
}
