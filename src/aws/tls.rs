//! The HTTP(S) client every AWS call, credential fetch and IMDS request goes through: hyper 1 with
//! rustls (ring provider) and the Mozilla root store compiled in as ready-made trust anchors.
//!
//! Why compiled-in roots: a FROM-scratch image has no /etc/ssl, and a buyer must not be able to add
//! a trust anchor (`SSL_CERT_FILE`, `SSL_CERT_DIR`) that would let a fake endpoint answer for AWS.
//! Why ring: aws-lc costs far more CPU at the first handshake and needs a C toolchain for musl
//! (docs/building.md §2, §6). Each client is built with its proxy settings (`proxy`): the AWS
//! clients' from the environment, the metadata clients' always direct; `tunnel` opens the TCP
//! stream either way, and TLS to the AWS host runs on top of it here, with the same roots.
//!
//! Why not aws-smithy-http-client's connector: its `TrustStore` only takes PEM, so every start would
//! base64-encode the ~150 webpki roots and parse them back, a large share of a start's work
//! (numbers in docs/performance.md). `webpki-roots` ships the same Mozilla roots as `TrustAnchor`
//! constants, which rustls takes as they are, and smithy offers no way to hand it a rustls config.
//! So this module is the small connector smithy would have built: one hyper client, built once,
//! HTTP/1.1, TCP_NODELAY, connect and read timeouts, hyper errors mapped to the SDK's connector error
//! kinds (so aws-config's credential providers classify them as they would smithy's). Signing,
//! credentials and retries stay the SDK's (retries are off; the entitlement code owns them).
//! Must not: read the environment or the filesystem (no native roots; the caller hands in the
//! proxy settings).
#![forbid(unsafe_code)]

use super::proxy::Settings;
use super::tunnel::{self, Tunnel};
use crate::error::Error;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// TCP connect timeout for every connection mpgate makes.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait from sending a request to the answer's headers (what smithy calls the read timeout).
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

type Https = hyper_rustls::HttpsConnector<Tunnel>;

/// rustls with the ring provider, TLS 1.2/1.3, and only the compiled-in Mozilla roots.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = crate::flavour::test_ca() {
        add_test_ca(&mut roots, pem)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("cannot build the TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The test flavour's extra root (`flavour::test_ca`: the emulator's HTTPS test CA, so the TLS path
/// can be tested and measured on loopback, bench/run).
fn add_test_ca(roots: &mut rustls::RootCertStore, pem: &[u8]) -> Result<(), Error> {
    use rustls::pki_types::pem::PemObject;
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(pem)
        .map_err(|e| Error::Internal(format!("emulator test CA: {e}")))?;
    roots.add(cert).map_err(|e| Error::Internal(format!("emulator test CA: {e}")))
}

/// Build an HTTP client whose connections go as `settings` route them (`Settings::direct()` for the
/// metadata endpoints). The hyper client itself is built on first use, inside the tokio runtime.
pub fn http_client(settings: Settings) -> Result<SharedHttpClient, Error> {
    let mut tls = Arc::unwrap_or_clone(client_config()?);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(SharedHttpClient::new(OneConnector { tls, settings: Arc::new(settings), connector: OnceLock::new() }))
}

/// An `HttpClient` that hands every operation the same connector, whatever its settings: the timeouts
/// are this module's, per-operation deadlines still come from each client's config.
#[derive(Debug)]
struct OneConnector {
    tls: rustls::ClientConfig,
    settings: Arc<Settings>,
    connector: OnceLock<SharedHttpConnector>,
}

impl HttpClient for OneConnector {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector
            .get_or_init(|| SharedHttpConnector::new(Hyper::new(self.tls.clone(), Arc::clone(&self.settings))))
            .clone()
    }
}

/// hyper's pooled client over TCP or rustls, either straight or through the proxy's tunnel.
#[derive(Clone)]
struct Hyper {
    client: Client<Https, SdkBody>,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for Hyper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hyper").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Hyper {
    fn new(tls: rustls::ClientConfig, settings: Arc<Settings>) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        // As smithy: a small request written in pieces must not wait for a delayed ACK.
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = Https::from((Tunnel::new(tcp, Arc::clone(&settings)), tls));
        let client = Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(https);
        Hyper { client, settings }
    }
}

impl HttpConnector for Hyper {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // Failures name where mpgate was connecting to: the host and port the URI gives.
        let endpoint = Endpoint::of(request.uri());
        let via = tunnel::via(&self.settings, &endpoint);
        let answer = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match tokio::time::timeout(READ_TIMEOUT, answer).await {
                Err(elapsed) => Err(ConnectorError::timeout(
                    format!("no answer from {endpoint} within {} s: {elapsed}", READ_TIMEOUT.as_secs()).into(),
                )),
                Ok(Err(e)) => Err(connector_error(e, &endpoint, via)),
                Ok(Ok(response)) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
            }
        })
    }
}

/// The host and port a request goes to, as its failures name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The host name or IP address (an IPv6 address without its brackets).
    pub(crate) host: String,
    /// The URI's port, else the scheme's (443 for https, 80 otherwise).
    pub(crate) port: u16,
}

impl Endpoint {
    pub(crate) fn of(uri: &hyper::Uri) -> Endpoint {
        let host = uri.host().unwrap_or_default().trim_matches(|c| c == '[' || c == ']').to_string();
        let default = if uri.scheme_str() == Some("https") { 443 } else { 80 };
        Endpoint { host, port: uri.port_u16().unwrap_or(default) }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A connection to `endpoint` that could not be made (DNS, TCP or a TLS handshake failure other than
/// a refused certificate): hyper's error names neither host nor port, and the operator needs both.
#[derive(Debug)]
pub(crate) struct ConnectFailed {
    pub(crate) endpoint: Endpoint,
    source: Box<dyn std::error::Error + Send + Sync>,
}

#[cfg(test)]
impl ConnectFailed {
    pub(crate) fn for_test(host: &str, port: u16, source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        ConnectFailed { endpoint: Endpoint { host: host.to_string(), port }, source }
    }
}

impl std::fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot connect to {}", self.endpoint)
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The SDK's classification of a hyper failure (as aws-smithy-http-client's): connecting (DNS, TCP,
/// TLS, including a connect timeout) and broken connections are I/O errors, hyper's own timeouts are
/// timeouts, a message cut short is transient; anything else is unclassified. A failure to connect
/// is wrapped in [`ConnectFailed`] naming `endpoint`; a server certificate that did not verify is
/// still an I/O error to the SDK, but wrapped in [`CertificateRejected`] with the host it was
/// presented for (and the proxy it came through, `via`), which the entitlement triage turns into a
/// final refusal. A proxy's own failure travels inside [`ConnectFailed`] (`tunnel::refusal` finds
/// the final ones).
fn connector_error(e: hyper_util::client::legacy::Error, endpoint: &Endpoint, via: Option<String>) -> ConnectorError {
    if e.is_connect() {
        if certificate_error(&e).is_some() {
            let host = endpoint.host.clone();
            return ConnectorError::io(Box::new(CertificateRejected { host, via, source: e.into() }));
        }
        return ConnectorError::io(Box::new(ConnectFailed { endpoint: endpoint.clone(), source: e.into() }));
    }
    let chain = || std::iter::successors(e.source(), |&s| s.source());
    let hyper = chain().find_map(|s| s.downcast_ref::<hyper::Error>());
    let io = chain().any(|s| s.is::<std::io::Error>());
    match hyper {
        Some(h) if h.is_timeout() => ConnectorError::timeout(e.into()),
        Some(h) if h.is_user() => ConnectorError::user(e.into()),
        Some(h) if h.is_closed() || h.is_canceled() => ConnectorError::io(e.into()),
        Some(h) if h.is_incomplete_message() => ConnectorError::other(e.into(), Some(ErrorKind::TransientError)),
        _ if io => ConnectorError::io(e.into()),
        _ => ConnectorError::other(e.into(), None),
    }
}

/// A connection refused because the server's certificate did not verify against the compiled-in
/// roots: rustls's error does not say which host presented it, and the operator needs the name.
#[derive(Debug)]
pub(crate) struct CertificateRejected {
    /// The host name (or IP address) mpgate asked for.
    pub(crate) host: String,
    /// The proxy whose tunnel the TLS ran in (`http://host:port (VARIABLE)`), if any.
    pub(crate) via: Option<String>,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl CertificateRejected {
    /// rustls's reason, found in the wrapped error.
    pub(crate) fn problem(&self) -> Option<&rustls::CertificateError> {
        certificate_error(&*self.source)
    }
}

#[cfg(test)]
impl CertificateRejected {
    pub(crate) fn for_test(host: &str, source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        CertificateRejected { host: host.to_string(), via: None, source }
    }
}

impl std::fmt::Display for CertificateRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the TLS certificate presented for {} did not verify", self.host)
    }
}

impl std::error::Error for CertificateRejected {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The connector's [`CertificateRejected`] somewhere in `e`'s `source()` chain, when it carries
/// rustls's verdict: a failure no retry can change.
pub(crate) fn rejection<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a CertificateRejected> {
    // Bounded: a chain is a handful of links; 16 guards against a cycle a buggy error type could make.
    std::iter::successors(Some(e), |&e| e.source())
        .take(16)
        .find_map(|e| e.downcast_ref::<CertificateRejected>())
        .filter(|r| r.problem().is_some())
}

/// rustls's certificate verdict somewhere in `e`'s chain. hyper-rustls wraps rustls's error in an
/// `io::Error` inside another, and `io::Error::source` skips the error it wraps, so the walk also
/// looks inside each `io::Error`. Any other TLS failure (EOF or reset mid-handshake, a protocol
/// alert, a timeout) is not a certificate verdict and gives `None`.
pub(crate) fn certificate_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::CertificateError> {
    let next = |e: &'a (dyn std::error::Error + 'static)| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => e.source(),
    };
    // Bounded: a chain is a handful of links; 16 guards against a cycle a buggy error type could make.
    std::iter::successors(Some(e), |&e| next(e)).take(16).find_map(|e| match e.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(c)) => Some(c),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As hyper-rustls hands it to hyper: rustls's error in tokio-rustls's io::Error in another.
    fn wrapped(e: rustls::Error) -> std::io::Error {
        std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn a_certificate_verdict_is_found_inside_nested_io_errors() {
        let e = wrapped(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        assert_eq!(certificate_error(&e), Some(&rustls::CertificateError::UnknownIssuer));
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        let rejected = CertificateRejected::for_test("h", boxed);
        assert_eq!(rejected.problem(), Some(&rustls::CertificateError::UnknownIssuer));
    }

    #[test]
    fn other_tls_failures_are_not_certificate_verdicts() {
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(certificate_error(&eof), None);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(certificate_error(&reset), None);
        let alert = wrapped(rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure));
        assert_eq!(certificate_error(&alert), None);
    }

    #[test]
    fn an_endpoint_is_named_with_its_port_or_the_scheme_s() {
        let named = |uri: &str| Endpoint::of(&uri.parse().expect("uri")).to_string();
        assert_eq!(
            named("https://metering.marketplace.us-east-1.amazonaws.com/"),
            "metering.marketplace.us-east-1.amazonaws.com:443"
        );
        assert_eq!(named("http://169.254.170.2/v2/credentials/x"), "169.254.170.2:80");
        assert_eq!(named("http://127.0.0.1:4567/"), "127.0.0.1:4567");
        assert_eq!(named("http://[fd00:ec2::23]/latest/api/token"), "[fd00:ec2::23]:80");
    }

    /// The trust anchors are the compiled-in Mozilla set, not empty and not the machine's.
    #[test]
    fn roots_are_the_compiled_in_mozilla_set() {
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
        assert!(client_config().is_ok());
    }
}
