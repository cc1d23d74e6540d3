//! The HTTPS client: rustls with the ring provider and the webpki root store compiled in.
//!
//! Why compiled-in roots: a FROM-scratch image has no /etc/ssl, and a buyer must not be able to add
//! a trust anchor (`SSL_CERT_FILE`, `SSL_CERT_DIR`) that would let a fake endpoint answer for AWS.
//! Why ring: aws-lc costs 30–60 ms of CPU at the first handshake and needs a C toolchain for musl
//! (build-notes §2, §6). No proxy is configured: `HTTPS_PROXY` is ignored (aws-smithy-http-client only
//! uses proxies when told to).
//!
//! Why one connector: aws-smithy-http-client builds a connector (and parses the ~150 roots into a
//! rustls config) per distinct timeout setting, i.e. once for the credential provider and again for
//! Metering. Parsing is the largest single start-up cost, so mpgate builds one connector, once, on
//! first use, with its own timeouts; per-operation deadlines still come from each client's config.
#![forbid(unsafe_code)]

use crate::error::Error;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine as _;
use std::sync::OnceLock;
use std::time::Duration;

/// TCP connect timeout for every connection mpgate makes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest silence tolerated while reading an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Build the one HTTP client used for every AWS call, credential fetch and IMDS request.
pub fn http_client() -> Result<SharedHttpClient, Error> {
    let tls = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_native_roots(false).with_pem_certificate(roots_pem()))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the TLS context: {e}")))?;
    Ok(SharedHttpClient::new(OneConnector { tls, connector: OnceLock::new() }))
}

/// An `HttpClient` that hands every operation the same lazily built connector.
#[derive(Debug)]
struct OneConnector {
    tls: TlsContext,
    connector: OnceLock<SharedHttpConnector>,
}

impl HttpClient for OneConnector {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector
            .get_or_init(|| {
                let settings = HttpConnectorSettings::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .build();
                let connector = Connector::builder()
                    .connector_settings(settings)
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .tls_context(self.tls.clone())
                    .build();
                SharedHttpConnector::new(connector)
            })
            .clone()
    }
}

/// The webpki roots as one PEM bundle (TrustStore only takes PEM).
fn roots_pem() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2048);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let body = b64.encode(cert.as_ref());
        for line in body.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}
