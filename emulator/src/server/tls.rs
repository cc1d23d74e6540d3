//! The HTTPS form of the main port (`Listen::tls_main`): the test certificate and the rustls
//! acceptor that wraps each accepted connection.

use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The emulator's HTTPS test certificate for 127.0.0.1 and localhost, issued by the test CA that the
/// gate's test flavour trusts (testdata/emulator-tls; every key there is public).
const TLS_CERT: &[u8] = include_bytes!("../../../testdata/emulator-tls/server.pem");
const TLS_KEY: &[u8] = include_bytes!("../../../testdata/emulator-tls/server.key");

/// TLS 1.2 and 1.3 with the ring provider, HTTP/1.1 only (as the main port).
pub fn tls_acceptor() -> std::io::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| std::io::Error::other(format!("emulator TLS {what}: {e}"));
    let certs =
        CertificateDer::pem_slice_iter(TLS_CERT).collect::<Result<Vec<_>, _>>().map_err(|e| bad("certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(TLS_KEY).map_err(|e| bad("key", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
