//! Where a plugin's HTTP request really goes: the name is resolved here,
//! each address checked against the networks the operator allowed, and the
//! connection made to the address that passed, so that no second lookup
//! (a DNS-rebinding name that answers a public address to the check and
//! 127.0.0.1 to the connection) can send it elsewhere.
//!
//! Refused unless a plugin's `allowed_networks` lists them: loopback,
//! private ranges (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
//! (169.254/16, fe80::/10, the cloud metadata address among them), shared
//! address space (100.64/10), "this network" (0/8), unspecified, broadcast
//! and multicast; IPv4 inside IPv6 (`::ffff:127.0.0.1`) counts as the IPv4
//! address. An IP literal in any notation (`2130706433`, `0x7f.1`) goes
//! through the same resolver and so meets the same check.
//!
//! `send` is wasmtime-wasi-http's `default_send_request` (48.x) with one
//! change, the address: that function takes a name and resolves it itself
//! (`TcpStream::connect(authority)`), which is the second lookup this
//! module exists to avoid. TLS still verifies the certificate against the
//! name in the URL.

use anyhow::{Result, bail};
use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::Body;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions};

/// The special-purpose networks a plugin may reach: the CIDR blocks the
/// operator listed (`allowed_networks`), or every address (`"any"`, for
/// development).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    allowed: Vec<IpNet>,
    any: bool,
}

impl NetPolicy {
    /// From `allowed_networks`: CIDR blocks (`10.1.0.0/16`, `::1/128`), a
    /// bare address (one host), or `any`.
    pub fn parse(entries: &[String]) -> Result<NetPolicy> {
        let mut policy = NetPolicy::default();
        for e in entries {
            let e = e.trim();
            if e.eq_ignore_ascii_case("any") {
                policy.any = true;
            } else if let Ok(net) = e.parse::<IpNet>() {
                policy.allowed.push(net);
            } else if let Ok(ip) = e.parse::<IpAddr>() {
                policy.allowed.push(IpNet::from(ip));
            } else {
                bail!("`{e}` is not a network: give a CIDR block (`10.0.0.0/8`, `::1/128`), an address, or `any`");
            }
        }
        Ok(policy)
    }

    /// Why `ip` may not be reached, or None if it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        let kind = special(ip)?;
        if self.any || self.allowed.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        Some(kind)
    }
}

/// An IPv4 address carried in IPv6 (mapped or compatible) as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => match v6.segments() {
                // `::a.b.c.d`, the deprecated compatible form (not `::` or `::1`).
                [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => {
                    IpAddr::V4(std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
                }
                _ => ip,
            },
        },
        v4 => v4,
    }
}

/// Which special-purpose range `ip` is in, if any.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_unspecified() || a == 0 {
                Some("unspecified (\"this network\", 0.0.0.0/8)")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared address space (100.64.0.0/10)")
            } else if v4.is_broadcast() {
                Some("broadcast")
            } else if v4.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local, fc00::/7)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// Why a request found no address to go to.
#[derive(Debug)]
pub enum Unreachable {
    /// The name did not resolve.
    Unresolved(String),
    /// It resolved only to addresses the plugin may not reach.
    Refused(String),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::Unresolved(s) | Unreachable::Refused(s) => f.write_str(s),
        }
    }
}

/// Resolves `host` and picks the first address the policy allows; the
/// refusal names what the name resolved to and why it may not be reached.
pub async fn resolve(host: &str, port: u16, policy: &NetPolicy) -> Result<SocketAddr, Unreachable> {
    // `[::1]` in a URL is `::1` to the resolver.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((bare, port)).await {
        Ok(a) => a.collect(),
        Err(e) => return Err(Unreachable::Unresolved(format!("cannot resolve `{host}`: {e}"))),
    };
    let mut refused = Vec::new();
    for addr in &addrs {
        match policy.refuses(addr.ip()) {
            None => return Ok(*addr),
            Some(kind) => refused.push(format!("{} ({kind})", addr.ip())),
        }
    }
    if refused.is_empty() {
        return Err(Unreachable::Unresolved(format!("`{host}` resolves to no address")));
    }
    Err(Unreachable::Refused(format!(
        "`{host}` resolves to {}, which the plugin may not reach: add the network to its `allowed_networks` to allow it",
        refused.join(", ")
    )))
}

/// Sends `req` over a connection to `addr` (see the module's comment).
pub async fn send(
    mut req: Request<impl Body<Data = Bytes, Error = Error> + Send + 'static>,
    options: Option<RequestOptions>,
    addr: SocketAddr,
) -> Result<(Response<impl Body<Data = Bytes, Error = Error>>, impl Future<Output = Result<(), Error>> + Send), Error> {
    use core::task::Poll;
    use tokio::io::{AsyncRead, AsyncWrite};
    trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
    impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

    let uri = req.uri();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let connect_timeout = options.and_then(|r| r.connect_timeout).unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options.and_then(|r| r.first_byte_timeout).unwrap_or(Duration::from_secs(600));
    let between_bytes_timeout = options.and_then(|r| r.between_bytes_timeout).unwrap_or(Duration::from_secs(600));

    let stream = match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(..) => return Err(Error::ConnectionTimeout),
    };
    let stream: Box<dyn Stream> = if use_tls {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        // The certificate is checked against the name in the URL.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = match bare.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(bare.to_string()).map_err(Error::InvalidDnsNameError)?,
        };
        Box::new(connector.connect(name, stream).await.map_err(Error::Tls)?)
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The request line carries the path only (scheme and authority are for
    // proxies); the Host header keeps the name.
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .build()
        .expect("comes from a valid request");

    let send = async move {
        let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        // Tokio panics on a zero interval.
        let between = between_bytes_timeout.max(Duration::new(0, 1));
        let mut timeout = tokio::time::interval(between);
        timeout.reset();
        Ok::<_, Error>(res.map(|incoming| IncomingBody { incoming, timeout }))
    };
    let mut send = std::pin::pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let res = core::future::poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else { return Poll::Pending };
            let done = std::task::ready!(std::pin::Pin::new(fut).poll(cx));
            conn = None;
            match done {
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(Error::from(err))),
            }
        }
    })
    .await?;
    Ok((res, async move {
        let Some(conn) = conn.take() else { return Ok(()) };
        match conn.await {
            Err(err) if err.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(err) => Err(err.into()),
            Ok(()) => Ok(()),
        }
    }))
}

/// A response body with the between-bytes timeout of the request's options.
struct IncomingBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Some(Err(if err.is_timeout() { Error::HttpResponseTimeout } else { Error::from(err) })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                std::task::ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &[&str], ip: &str) -> bool {
        let p = NetPolicy::parse(&policy.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.refuses(ip.parse().unwrap()).is_some()
    }

    #[test]
    fn special_ranges_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(refused(&[], ip), "{ip}");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700::1111", "172.32.0.1", "100.128.0.1"] {
            assert!(!refused(&[], ip), "{ip}");
        }
        assert!(!refused(&["127.0.0.0/8"], "127.0.0.1"));
        assert!(!refused(&["127.0.0.0/8"], "::ffff:127.0.0.1"), "mapped IPv4 counts as IPv4");
        assert!(refused(&["127.0.0.0/8"], "::1"));
        assert!(!refused(&["10.0.0.5"], "10.0.0.5"));
        assert!(refused(&["10.0.0.5"], "10.0.0.6"));
        assert!(!refused(&["any"], "169.254.169.254"));
    }

    #[test]
    fn bad_networks_say_why() {
        let e = NetPolicy::parse(&["10.0.0.0/33".into()]).unwrap_err().to_string();
        assert!(e.contains("not a network"), "{e}");
    }

    /// An IP literal in another notation resolves as what it is.
    #[tokio::test]
    async fn numeric_notations_meet_the_check() {
        let policy = NetPolicy::default();
        for host in ["2130706433", "0x7f000001", "127.1", "localhost", "[::1]"] {
            let e = resolve(host, 80, &policy).await.unwrap_err().to_string();
            assert!(e.contains("loopback") && e.contains("allowed_networks"), "{host}: {e}");
        }
        let loopback = NetPolicy::parse(&["127.0.0.0/8".into(), "::1/128".into()]).unwrap();
        assert!(resolve("2130706433", 80, &loopback).await.unwrap().ip().is_loopback());
    }
}
