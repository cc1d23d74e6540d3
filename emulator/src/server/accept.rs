//! The accept loop of each listener and the HTTP/1.1 connection it serves: no Nagle, optional TLS,
//! and the second descriptor that lets `Fault::ConnectionReset` turn the close into a TCP RST.

use super::handle::handle;
use super::routing::Site;
use crate::state::Shared;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves `site` on `listener`; with `tls`, every connection is a TLS one (the HTTPS main port).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, site: Site, tls: Option<TlsAcceptor>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // A failed accept (a connection reset before it was accepted, or no descriptor left)
            // leaves the listener usable; pausing keeps a lasting one (EMFILE) from spinning a core.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // As any real front end: no Nagle. Over TLS 1.3 the server writes its session tickets and then
        // the answer in separate records; with Nagle on, the answer can wait for the client's delayed
        // ACK of the tickets, a stall no AWS endpoint imposes on a client.
        let _ = stream.set_nodelay(true);
        let (shared, site, tls) = (shared.clone(), site.clone(), tls.clone());
        let shared_for_case = shared.clone();
        tokio::spawn(async move {
            // A second descriptor for the same socket keeps it open after hyper lets go, so a
            // ConnectionReset fault can set SO_LINGER 0 and turn the close into a TCP RST.
            let Ok((stream, dup)) = split_for_reset(stream) else {
                return;
            };
            let reset = Arc::new(AtomicBool::new(false));
            let flag = reset.clone();
            let svc = service_fn(move |req| handle(shared.clone(), site.clone(), flag.clone(), req));
            let mut http = hyper::server::conn::http1::Builder::new();
            // Variance mode: header names in Title-Case on some connections (HTTP header names are
            // case-insensitive, RFC 9110 §5.1).
            http.title_case_headers(shared_for_case.title_case_connection());
            // Errors here are client disconnects, failed handshakes or our own Dropped; nothing to report.
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
            if reset.load(Ordering::SeqCst) {
                let _ = socket2::SockRef::from(&dup).set_linger(Some(std::time::Duration::ZERO));
            }
        });
    }
}

fn split_for_reset(stream: tokio::net::TcpStream) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let dup = std_stream.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(std_stream)?, dup))
}
