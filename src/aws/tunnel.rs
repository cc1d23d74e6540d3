//! The TCP half of every connection mpgate makes: straight to the host, or through an HTTP proxy's
//! `CONNECT` tunnel (`proxy::Settings` decides which). TLS runs on top of either, in `tls`, with the
//! compiled-in roots and the AWS host's name, so a proxy relays bytes it can neither read nor forge.
//!
//! Through a proxy, mpgate resolves only the proxy's name; the AWS host's name goes to the proxy
//! in the `CONNECT` line (in a private subnet it may not resolve locally). Every connection is
//! tunnelled, also the test flavour's plain-HTTP emulator URLs, so tests exercise the same path.
//! A 407 (or 401) or 403 answer is the proxy's policy and final ([`refusal`]); no answer, a refused
//! connection or another status is a network failure, retried by the caller under its deadline.
//! Must not: read the environment, or write the proxy's credentials anywhere but the
//! `Proxy-Authorization` header.
#![forbid(unsafe_code)]

use super::proxy::{Proxy, Route, Settings};
use super::tls::Endpoint;
use crate::error::Error;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The longest a proxy may take to answer `CONNECT` (it connects to the AWS host meanwhile). With
/// the TCP connect to the proxy it stays under the connector's read timeout, which bounds the whole
/// attempt: a proxy that accepts the connection and then says nothing is named as such, and counts
/// as an attempt that never reached AWS, rather than ending in the connector's "no answer from
/// <AWS host>".
const CONNECT_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
const _: () = assert!(
    CONNECT_ANSWER_TIMEOUT.as_secs() + super::tls::CONNECT_TIMEOUT.as_secs() < super::tls::READ_TIMEOUT.as_secs()
);
/// The largest `CONNECT` answer head read; proxies send a few hundred bytes.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// hyper's connector service: a TCP stream to the URI's host, directly or through the proxy.
#[derive(Clone)]
pub(crate) struct Tunnel {
    tcp: TcpConnector,
    settings: Arc<Settings>,
}

impl Tunnel {
    pub(crate) fn new(tcp: TcpConnector, settings: Arc<Settings>) -> Self {
        Tunnel { tcp, settings }
    }
}

impl tower_service::Service<hyper::Uri> for Tunnel {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The TCP connector is always ready; it is cloned into each call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let settings = Arc::clone(&self.settings);
        Box::pin(async move {
            let target = Endpoint::of(&uri);
            let proxy = match settings.route(&target.host, target.port) {
                Route::Via(proxy) => proxy.clone(),
                Route::Direct | Route::Exempted(_) => {
                    return tower_service::Service::call(&mut tcp, uri).await.map_err(Into::into)
                }
            };
            let at: hyper::Uri =
                proxy.url().parse().map_err(|e| failed(&proxy, &target, Failure::Connect(Box::new(e))))?;
            let io = tower_service::Service::call(&mut tcp, at)
                .await
                .map_err(|e| failed(&proxy, &target, Failure::Connect(e.into())))?;
            let mut stream = io.into_inner();
            match tokio::time::timeout(CONNECT_ANSWER_TIMEOUT, connect(&mut stream, &proxy, &target)).await {
                Err(_) => Err(failed(&proxy, &target, Failure::Silent)),
                Ok(Err(why)) => Err(failed(&proxy, &target, why)),
                Ok(Ok(())) => Ok(TokioIo::new(stream)),
            }
        })
    }
}

fn failed(proxy: &Proxy, target: &Endpoint, what: Failure) -> BoxError {
    Box::new(ProxyFailed {
        proxy: proxy.to_string(),
        credentials: proxy.has_credentials(),
        target: target.clone(),
        what,
    })
}

/// Ask the proxy on `stream` for a tunnel to `target` and read its answer's head (and nothing after
/// it: the tunnel's first bytes belong to TLS).
async fn connect(stream: &mut TcpStream, proxy: &Proxy, target: &Endpoint) -> Result<(), Failure> {
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(authorization) = proxy.authorization() {
        request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| Failure::Broken(Box::new(e)))?;
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_ANSWER_HEAD {
            return Err(Failure::Garbled);
        }
        // One byte at a time: the head is short, and a read past it would take the server's bytes.
        let byte = stream.read_u8().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Failure::Closed,
            _ => Failure::Broken(Box::new(e)),
        })?;
        head.push(byte);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.trim_end().splitn(3, ' ');
    let (version, status, reason) = (words.next(), words.next(), words.next().unwrap_or_default());
    let status: u16 = match (version, status.and_then(|s| s.parse().ok())) {
        (Some(v), Some(s)) if v.starts_with("HTTP/1.") && (100..600).contains(&s) => s,
        _ => return Err(Failure::Garbled),
    };
    if (200..300).contains(&status) {
        return Ok(());
    }
    Err(Failure::Answered { status, reason: crate::error::one_line(reason).chars().take(80).collect() })
}

/// A tunnel through the proxy that could not be opened.
#[derive(Debug)]
pub(crate) struct ProxyFailed {
    /// The proxy as messages name it: `http://host:port (VARIABLE)`, never its credentials.
    proxy: String,
    /// Whether the variable carried a user name and password.
    credentials: bool,
    target: Endpoint,
    what: Failure,
}

#[derive(Debug)]
enum Failure {
    /// No TCP connection to the proxy (refused, unreachable, its name did not resolve, timeout).
    Connect(BoxError),
    /// The connection broke while asking.
    Broken(BoxError),
    /// The proxy closed the connection without an answer.
    Closed,
    /// No answer in time.
    Silent,
    /// An answer that is not HTTP.
    Garbled,
    /// An answer other than 2xx.
    Answered { status: u16, reason: String },
}

impl std::fmt::Display for ProxyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (proxy, target) = (&self.proxy, &self.target);
        match &self.what {
            Failure::Connect(e) => {
                write!(f, "cannot connect to the proxy {proxy} to reach {target}: {}", crate::error::causes(&**e))
            }
            Failure::Broken(e) => write!(
                f,
                "the connection to the proxy {proxy} broke while asking it to CONNECT {target}: {}",
                crate::error::causes(&**e)
            ),
            Failure::Closed => write!(f, "the proxy {proxy} closed the connection without answering CONNECT {target}"),
            Failure::Silent => write!(
                f,
                "the proxy {proxy} did not answer CONNECT {target} within {} s",
                CONNECT_ANSWER_TIMEOUT.as_secs()
            ),
            Failure::Garbled => {
                write!(f, "the proxy {proxy} answered CONNECT {target} with something that is not HTTP")
            }
            Failure::Answered { status, reason } => {
                let reason = if reason.is_empty() { String::new() } else { format!(" {reason}") };
                write!(f, "the proxy {proxy} answered {status}{reason} to CONNECT {target}")
            }
        }
    }
}

impl std::error::Error for ProxyFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.what {
            Failure::Connect(e) | Failure::Broken(e) => Some(&**e),
            _ => None,
        }
    }
}

impl ProxyFailed {
    /// What to do about a final answer; `None` when the failure is worth another attempt.
    fn advice(&self) -> Option<String> {
        let Failure::Answered { status, .. } = self.what else { return None };
        let host = &self.target.host;
        match status {
            // 401 is what some proxies (tinyproxy) answer to a wrong password.
            401 | 407 if self.credentials => Some(
                "the proxy did not accept the user name and password in the proxy variable: correct them (percent-encode reserved characters)".to_string(),
            ),
            401 | 407 => Some(
                "the proxy requires authentication: put its user name and password in the proxy variable (http://user:password@host:port), or let this container through without it".to_string(),
            ),
            403 => Some(format!(
                "the proxy's policy forbids this tunnel: allow CONNECT to {host}:{} on the proxy (docs/operating.md, Behind an HTTP proxy), or list {host} in NO_PROXY if it is reachable without the proxy",
                self.target.port
            )),
            _ => None,
        }
    }
}

/// The final refusal when `call` failed because the proxy refused its tunnel by policy (407 or
/// 401: authentication; 403: forbidden): the same configuration gets the same answer, so waiting out the deadline would only delay
/// the operator. Found by walking `e`'s `source()` chain; any other proxy failure gives `None`.
pub(crate) fn refusal(e: &(dyn std::error::Error + 'static), call: &str) -> Option<Error> {
    // Bounded like the other chain walks: a chain is a handful of links.
    let failed =
        std::iter::successors(Some(e), |&e| e.source()).take(32).find_map(|e| e.downcast_ref::<ProxyFailed>())?;
    let advice = failed.advice()?;
    Some(Error::Proxy(format!("{call} did not reach AWS: {failed}; {advice}")))
}

/// The proxy `settings` send `endpoint` through, as messages name it.
pub(crate) fn via(settings: &Settings, endpoint: &Endpoint) -> Option<String> {
    match settings.route(&endpoint.host, endpoint.port) {
        Route::Via(proxy) => Some(proxy.to_string()),
        Route::Direct | Route::Exempted(_) => None,
    }
}

/// A TCP stream to `host:port` as [`Tunnel`] opens it (for `mpgate check`'s endpoint probe, which
/// speaks HTTP itself): directly, or through the proxy `settings` name. The error is one line.
pub(crate) async fn open(settings: &Settings, host: &str, port: u16) -> Result<TcpStream, String> {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(super::tls::CONNECT_TIMEOUT));
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let uri: hyper::Uri =
        format!("http://{authority}/").parse().map_err(|e| format!("{authority} is not a host and port: {e}"))?;
    let mut tunnel = Tunnel::new(tcp, Arc::new(settings.clone()));
    match tower_service::Service::call(&mut tunnel, uri).await {
        Ok(io) => Ok(io.into_inner()),
        Err(e) => Err(format!("cannot connect to {authority}: {}", crate::error::causes(&*e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, credentials: bool) -> ProxyFailed {
        ProxyFailed {
            proxy: "http://proxy.corp:3128 (HTTPS_PROXY)".into(),
            credentials,
            target: Endpoint { host: "metering.marketplace.us-east-1.amazonaws.com".into(), port: 443 },
            what: Failure::Answered { status, reason: "Reason".into() },
        }
    }

    #[test]
    fn only_407_and_403_are_final_and_each_says_what_to_do() {
        for (status, credentials, needle) in [
            (407, false, "put its user name and password"),
            (407, true, "did not accept the user name and password"),
            (401, true, "did not accept the user name and password"),
            (403, false, "allow CONNECT to metering.marketplace.us-east-1.amazonaws.com:443"),
        ] {
            let e = refusal(&answer(status, credentials), "RegisterUsage").expect("final");
            let line = e.to_string();
            assert!(line.starts_with("misconfigured: RegisterUsage did not reach AWS: the proxy http://proxy.corp:3128 (HTTPS_PROXY) answered "), "{line}");
            assert!(
                line.contains(&format!(
                    "answered {status} Reason to CONNECT metering.marketplace.us-east-1.amazonaws.com:443; "
                )),
                "{line}"
            );
            assert!(line.contains(needle), "{line}");
        }
        for status in [400, 404, 500, 502, 503, 504] {
            assert!(refusal(&answer(status, false), "RegisterUsage").is_none(), "{status} was final");
        }
        let silent = ProxyFailed { what: Failure::Silent, ..answer(407, false) };
        assert!(refusal(&silent, "RegisterUsage").is_none());
    }

    #[test]
    fn a_tunnel_that_did_not_open_sent_nothing_to_aws() {
        use crate::entitlement::triage::never_sent;
        let closed = ProxyFailed { what: Failure::Closed, ..answer(502, false) };
        for failed in [answer(502, false), answer(503, false), closed] {
            assert!(never_sent(&failed), "{failed}");
        }
    }

    #[test]
    fn a_final_answer_is_found_inside_the_connectors_wrappers() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let wrapped = ConnectorError::io(Box::new(answer(403, false)));
        assert!(refusal(&wrapped, "MeterUsage").is_some());
    }
}
