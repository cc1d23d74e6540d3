//! A minimal HTTP GET for the ECS task metadata endpoint (plain http on a link-local or loopback
//! address), bounded by a timeout. Uses hyper, already in the tree through the AWS SDK.
#![forbid(unsafe_code)]

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use std::time::Duration;

/// Largest metadata document accepted; a task document is a few KiB.
const MAX_BODY: usize = 256 * 1024;

/// GET `url` (http only) and return the body of a 200 answer.
pub async fn get(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    tokio::time::timeout(timeout, get_inner(url))
        .await
        .map_err(|_| format!("no answer from {url} within {}ms", timeout.as_millis()))?
}

async fn get_inner(url: &str) -> Result<Vec<u8>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url:?} is not an http:// URL"));
    }
    let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.trim_matches(|c| c == '[' || c == ']'), port))
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(conn);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or(host);
    let req = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("{url}: reading the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {}", status.as_u16()));
    }
    Ok(body.to_vec())
}
