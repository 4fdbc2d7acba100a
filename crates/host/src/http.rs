//! Outgoing HTTP for plugins, through `wasi:http`, gated by the host.
//!
//! Duties:
//! 1. allow a request only to the hosts the operator listed for the plugin
//!    (`HostPattern`); any other is refused with `HttpRequestDenied` before
//!    a connection is made; then resolve the name and connect to an address
//!    that is not loopback, private, link-local or otherwise special unless
//!    the plugin's `allowed_networks` grants it (`egress`): the address
//!    checked is the one connected to;
//! 2. cap the response body at the plugin's `max_http_response_bytes`, by
//!    its Content-Length up front and by counting bytes as they arrive;
//! 3. note each request and each denial in the job's log;
//! 4. keep reading a request body the plugin is still writing when its
//!    request fails (`DrainedBody`), so the plugin hears of the failure
//!    from the response, not from a broken body.

use crate::stdio::JobLog;
use anyhow::{Result, bail};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use jobrunner_job::{LogLevel, LogSource};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One entry of a plugin's `allowed_hosts`.
///
/// `example.com` allows that host on the default ports (80, 443);
/// `example.com:8080` one port; `example.com:*` any port; `*.example.com`
/// any subdomain (not `example.com` itself). IPv6 is written `[::1]:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: PortMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// Stored with its leading dot: ".example.com".
    Subdomain(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    Default,
    Any,
    Exact(u16),
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern> {
        let t = text.trim().to_ascii_lowercase();
        if t.is_empty() {
            bail!("an empty host");
        }
        if t.contains("://") || t.contains('/') {
            bail!("`{text}`: give a host (and port), not a URL");
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let Some((h, after)) = rest.split_once(']') else {
                bail!("`{text}`: unclosed `[` in an IPv6 address");
            };
            (format!("[{h}]"), after.strip_prefix(':'))
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (t.clone(), None),
            }
        };
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(p.parse().map_err(|_| anyhow::anyhow!("`{text}`: `{p}` is not a port"))?),
        };
        let host = match host.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => HostMatch::Subdomain(format!(".{domain}")),
            _ if host.contains('*') => bail!("`{text}`: a wildcard may only be a leading `*.`"),
            _ if host.is_empty() => bail!("`{text}`: no host"),
            _ => HostMatch::Exact(host),
        };
        Ok(HostPattern { host, port })
    }

    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostMatch::Exact(h) => *h == host,
            HostMatch::Subdomain(suffix) => host.ends_with(suffix.as_str()),
        };
        let port_ok = match self.port {
            PortMatch::Default => port == 80 || port == 443,
            PortMatch::Any => true,
            PortMatch::Exact(p) => p == port,
        };
        host_ok && port_ok
    }
}

/// The `wasi:http` hooks of one job's store.
pub struct HttpGate {
    pub allowed: Arc<Vec<HostPattern>>,
    pub networks: Arc<crate::egress::NetPolicy>,
    pub max_response_bytes: u64,
    pub log: Arc<Mutex<JobLog>>,
}

impl HttpGate {
    fn allowed(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else { return false };
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        self.allowed.iter().any(|p| p.allows(host, port))
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let line = format!("{} {}", request.method(), request.uri());
        // The plugin may still be writing the body when the request fails.
        let request = request.map(|body| DrainedBody(Some(body)).boxed_unsync());
        if !self.allowed(request.uri()) {
            self.log.lock().unwrap().push(
                LogLevel::Warn,
                LogSource::Host,
                format!("http denied: {line} (host not in allowed_hosts)"),
            );
            drop(request);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        self.log.lock().unwrap().push(LogLevel::Debug, LogSource::Host, format!("http {line}"));
        let cap = self.max_response_bytes;
        let (networks, log) = (self.networks.clone(), self.log.clone());
        Box::new(async move {
            let uri = request.uri();
            let host = uri.host().unwrap_or_default().to_string();
            let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
            let addr = match crate::egress::resolve(&host, port, &networks).await {
                Ok(addr) => addr,
                Err(why) => {
                    log.lock().unwrap().push(LogLevel::Warn, LogSource::Host, format!("http denied: {line} ({why})"));
                    return Err(match why {
                        crate::egress::Unreachable::Unresolved(_) => {
                            HttpError::DnsError { rcode: None, info_code: None }
                        }
                        crate::egress::Unreachable::Refused(_) => HttpError::DestinationIpProhibited,
                    });
                }
            };
            let (response, io) = crate::egress::send(request, options, addr).await?;
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > cap) {
                return Err(HttpError::HttpResponseBodySize(Some(cap)));
            }
            let response = response.map(|body| CappedBody { inner: body.boxed_unsync(), seen: 0, cap }.boxed_unsync());
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// A request body that, dropped before its end (the host was denied, the
/// connection refused), goes on reading what the plugin writes, and throws
/// it away, until the plugin finishes or drops the body.
///
/// Why: the plugin learns of the failure from the response, and a write to
/// a body nobody reads fails first. Most guests shrug that off;
/// componentize-js 0.23's engine aborts on it, so a JavaScript plugin whose
/// POST was refused would trap instead of seeing `fetch` reject. The drain
/// ends with the job at the latest, when its store drops the body's writer.
struct DrainedBody(Option<WasiBody>);

impl Body for DrainedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match self.0.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(|b| b.size_hint()).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for DrainedBody {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take().filter(|b| !b.is_end_stream()) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
        }
    }
}

/// A response body that fails once more than `cap` bytes have arrived.
struct CappedBody {
    inner: WasiBody,
    seen: u64,
    cap: u64,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if self.seen > self.cap {
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.cap)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(pattern: &str, host: &str, port: u16) -> bool {
        HostPattern::parse(pattern).unwrap().allows(host, port)
    }

    #[test]
    fn patterns() {
        assert!(allows("example.com", "example.com", 443));
        assert!(allows("example.com", "EXAMPLE.com", 80));
        assert!(!allows("example.com", "example.com", 8080));
        assert!(!allows("example.com", "evil-example.com", 443));
        assert!(allows("example.com:8080", "example.com", 8080));
        assert!(allows("127.0.0.1:*", "127.0.0.1", 31337));
        assert!(allows("*.example.com", "api.example.com", 443));
        assert!(!allows("*.example.com", "example.com", 443));
        assert!(!allows("*.example.com", "api.example.com.evil.net", 443));
        assert!(allows("[::1]:*", "[::1]", 9));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (p, why) in [
            ("http://example.com", "not a URL"),
            ("example.com/x", "not a URL"),
            ("a.*.com", "wildcard"),
            ("example.com:http", "not a port"),
            ("", "empty"),
        ] {
            let e = HostPattern::parse(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p}: {e}");
        }
    }
}
