//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! The host allows only the hosts the operator listed for the plugin; a
//! request to any other host fails with [`HttpError::Denied`]. It also caps
//! how many response bytes a plugin may read ([`HttpError::TooLarge`]).
//!
//! Why not a general client crate: a plugin needs one request at a time, and
//! the raw `wasi` bindings are the whole of what is below any such crate here.

use std::time::Duration;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// The default for connect and first-byte timeouts; the job's own timeout,
/// enforced by the host, still bounds the whole call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most bytes read from the response stream in one call.
const READ_CHUNK: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(&self) -> Result<Response, HttpError> {
        send(self)
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL does not parse or is not http(s).
    InvalidUrl(String),
    /// The host refused the request: the target is not on the allow-list.
    Denied(String),
    /// Connecting or waiting for the response took too long.
    Timeout(String),
    /// The response was larger than the host allows this plugin to read.
    TooLarge(String),
    /// Any other failure to talk to the server (refused, reset, DNS, TLS).
    Transport(String),
}

impl HttpError {
    /// Whether trying again later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, HttpError::Timeout(_) | HttpError::Transport(_))
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            HttpError::Denied(m) => write!(f, "request denied by the runner: {m}"),
            HttpError::Timeout(m) => write!(f, "timed out: {m}"),
            HttpError::TooLarge(m) => write!(f, "response too large: {m}"),
            HttpError::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

fn classify(code: &ErrorCode, url: &str) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(format!("{url} is not on this plugin's allowed hosts")),
        ErrorCode::DestinationIpProhibited => HttpError::Denied(format!(
            "{url} resolves to an address this plugin may not reach (a loopback, private or link-local network not in its allowed_networks)"
        )),
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => HttpError::Timeout(format!("{url}: {code:?}")),
        ErrorCode::HttpResponseBodySize(limit) => HttpError::TooLarge(format!(
            "{url}: body over {} bytes",
            limit.map(|l| l.to_string()).unwrap_or_else(|| "the limit of".into())
        )),
        other => HttpError::Transport(format!("{url}: {other:?}")),
    }
}

/// Sends `req` and reads the whole response body.
pub fn send(req: &Request) -> Result<Response, HttpError> {
    let url = url::Url::parse(&req.url).map_err(|e| HttpError::InvalidUrl(format!("{}: {e}", req.url)))?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(HttpError::InvalidUrl(format!("unsupported scheme `{other}`"))),
    };
    let host = url.host_str().ok_or_else(|| HttpError::InvalidUrl(format!("{}: no host", req.url)))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let path_with_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };

    let fields: Vec<(String, Vec<u8>)> =
        req.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec())).collect();
    let headers = Fields::from_list(&fields).map_err(|e| HttpError::InvalidUrl(format!("bad header: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let method = match req.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| HttpError::InvalidUrl(format!("{}: invalid {what}", req.url));
    request.set_method(&method).map_err(|_| bad("method"))?;
    request.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    request.set_authority(Some(&authority)).map_err(|_| bad("authority"))?;
    request.set_path_with_query(Some(&path_with_query)).map_err(|_| bad("path"))?;

    let options = RequestOptions::new();
    let nanos = req.timeout.as_nanos().min(u64::MAX as u128) as u64;
    // Either may be refused by a host that does not support it; the job's
    // own timeout still applies then, so the refusal is harmless.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let body = request.body().map_err(|_| bad("body"))?;
    // The request goes out first and the body streams after it: the host
    // buffers only one chunk before the request is sent, so writing a larger
    // body first would wait forever.
    let future = outgoing_handler::handle(request, Some(options)).map_err(|e| classify(&e, &req.url))?;
    let written = write_body(body, &req.body);

    let pollable = future.subscribe();
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => pollable.block(),
        }
    };
    drop(pollable);
    // When the host refuses the request (a host not on the allow-list), the
    // body stream closes too: the response's error code says why, so it
    // comes before the write's.
    let response = response
        .map_err(|_| HttpError::Transport("response already taken".into()))?
        .map_err(|e| classify(&e, &req.url))?;
    // The server answered: its answer stands, even if it did so before the
    // whole body was written (a 413, or a GET answered at once).
    drop(written);

    let status = response.status();
    let headers =
        response.headers().entries().into_iter().map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned())).collect();
    let incoming = response.consume().map_err(|_| HttpError::Transport("response body already taken".into()))?;
    let body = read_body(&incoming, &req.url)?;
    drop(IncomingBody::finish(incoming));
    Ok(Response { status, headers, body })
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    if !bytes.is_empty() {
        let stream = body.write().map_err(|_| "request body stream unavailable".to_string())?;
        let mut rest = bytes;
        while !rest.is_empty() {
            let permitted = stream.check_write().map_err(|e| format!("{e:?}"))?;
            if permitted == 0 {
                stream.subscribe().block();
                continue;
            }
            let n = (permitted as usize).min(rest.len());
            stream.write(&rest[..n]).map_err(|e| format!("{e:?}"))?;
            rest = &rest[n..];
        }
        stream.blocking_flush().map_err(|e| format!("{e:?}"))?;
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))
}

fn read_body(incoming: &IncomingBody, url: &str) -> Result<Vec<u8>, HttpError> {
    let stream = incoming.stream().map_err(|_| HttpError::Transport("response stream unavailable".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasi::http::types::http_error_code(&e) {
                    Some(code) => classify(&code, url),
                    None => HttpError::Transport(format!("{url}: {}", e.to_debug_string())),
                });
            }
        }
    }
    Ok(out)
}
