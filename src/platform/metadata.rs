//! Minimal HTTP GETs, bounded by a timeout: the ECS task metadata endpoint (plain http on a
//! link-local or loopback address, never through a proxy), and `mpgate check`'s unsigned probe of an
//! AWS endpoint (https with the compiled-in roots only, through the egress proxy as the AWS calls
//! go). Uses hyper and rustls, already in the tree through the AWS SDK.
#![forbid(unsafe_code)]

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Largest document accepted; a task document is a few KiB.
const MAX_BODY: usize = 256 * 1024;

/// An answer: status, the `Date` header if any, and the body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `Date` response header.
    pub date: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// GET `url` (http only) and return the body of a 200 answer.
pub async fn get(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let answer = fetch(url, timeout, &crate::aws::proxy::Settings::direct()).await?;
    if !(200..300).contains(&answer.status) {
        return Err(format!("{url} answered HTTP {}", answer.status));
    }
    Ok(answer.body)
}

/// GET `url` (http or https; https trusts only the compiled-in roots) and return any answer; the
/// connection goes as `route` says (`tunnel::open`).
pub async fn fetch(url: &str, timeout: Duration, route: &crate::aws::proxy::Settings) -> Result<Answer, String> {
    tokio::time::timeout(timeout, fetch_inner(url, route))
        .await
        .map_err(|_| format!("no answer from {url} within {}ms", timeout.as_millis()))?
}

async fn fetch_inner(url: &str, route: &crate::aws::proxy::Settings) -> Result<Answer, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{url:?} is not an http:// or https:// URL")),
    };
    let host =
        uri.host().ok_or_else(|| format!("{url:?} has no host"))?.trim_matches(|c| c == '[' || c == ']').to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let stream = crate::aws::tunnel::open(route, &host, port).await?;
    let authority = uri.authority().map_or_else(|| host.clone(), |a| a.to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    if tls {
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {host} failed: {e}"))?;
        exchange(hyper_util::rt::TokioIo::new(stream), &authority, &path).await
    } else {
        exchange(hyper_util::rt::TokioIo::new(stream), &authority, &path).await
    }
}

async fn exchange<T>(io: T, authority: &str, path: &str) -> Result<Answer, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("{authority}: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{authority}: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("{authority}: {e}"))?;
    let status = resp.status().as_u16();
    let date = resp.headers().get(hyper::header::DATE).and_then(|d| d.to_str().ok()).map(str::to_string);
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("{authority}: reading the answer: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Answer { status, date, body })
}

/// The SDK client's TLS configuration: the same compiled-in roots, so the probe sees what a call would.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    crate::aws::tls::client_config().map_err(|e| e.to_string())
}
