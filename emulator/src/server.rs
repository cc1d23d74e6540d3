//! The HTTP side: accept loops for the main port and each IMDS port, reading a request, naming
//! its operation, applying a queued fault, dispatching, and recording the outcome in the ledger.

use crate::control;
use crate::model::fault::{Fault, TokenMutation};
use crate::services::{container, imds, license, metering, sts};
use crate::state::Shared;
use crate::wire::proto::{self, Outcome};
use crate::wire::request::Incoming;
use crate::wire::sigv4::header;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming as Body;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The emulator's HTTPS test certificate for 127.0.0.1 and localhost, issued by the test CA that the
/// gate's test flavour trusts (testdata/emulator-tls; every key there is public).
const TLS_CERT: &[u8] = include_bytes!("../../testdata/emulator-tls/server.pem");
const TLS_KEY: &[u8] = include_bytes!("../../testdata/emulator-tls/server.key");

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

/// Which listener a request arrived on.
#[derive(Debug, Clone)]
pub enum Site {
    Main,
    /// The IMDS as seen from this workload.
    Imds(String),
    /// The ECS agent's own address (169.254.170.2 in real life).
    EcsAgent,
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by injected fault")
    }
}
impl std::error::Error for Dropped {}

/// Serves `site` on `listener`; with `tls`, every connection is a TLS one (the HTTPS main port).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, site: Site, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // As any real front end: no Nagle. Over TLS 1.3 the server writes its session tickets and then
        // the answer in separate records; with Nagle on, the answer waited for the client's delayed ACK
        // of the tickets (40 ms on Linux) in some runs, which no AWS endpoint does to a client.
        let _ = stream.set_nodelay(true);
        let (shared, site, tls) = (shared.clone(), site.clone(), tls.clone());
        tokio::spawn(async move {
            // A second descriptor for the same socket keeps it open after hyper lets go, so a
            // ConnectionReset fault can set SO_LINGER 0 and turn the close into a TCP RST.
            let Ok((stream, dup)) = split_for_reset(stream) else {
                return;
            };
            let reset = Arc::new(AtomicBool::new(false));
            let flag = reset.clone();
            let svc = service_fn(move |req| handle(shared.clone(), site.clone(), flag.clone(), req));
            let http = hyper::server::conn::http1::Builder::new();
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

/// A body that announces `len` bytes, sends `first`, waits for it to be flushed, then fails:
/// hyper aborts the connection mid-body.
struct Truncated {
    first: Option<Bytes>,
    len: u64,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Truncated {
    type Data = Bytes;
    type Error = Dropped;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Dropped>>> {
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
        }
        // Pending lets hyper write out what it has before the error tears the connection down.
        std::future::Future::poll(self.pause.as_mut(), cx).map(|()| Some(Err(Dropped)))
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

type Reply = Response<Either<Full<Bytes>, Truncated>>;

async fn read(req: Request<Body>) -> Incoming {
    let (parts, body) = req.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    Incoming {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body: body.collect().await.map(|c| c.to_bytes()).unwrap_or_default(),
    }
}

/// Names the operation a main-port request is for.
fn main_op(req: &Incoming) -> String {
    if let Some(target) = header(&req.headers, "x-amz-target") {
        let op = target.strip_prefix(metering::TARGET_PREFIX).or_else(|| target.strip_prefix(license::TARGET_PREFIX));
        return op.map_or_else(|| "UnknownOperation".to_string(), str::to_string);
    }
    let p = req.path.as_str();
    if req.method == "POST" && p == "/" {
        if let Some(action) = sts::action(&req.body) {
            return action;
        }
    }
    if p.starts_with("/ecs/credentials/") {
        "EcsCredentials".into()
    } else if p.starts_with("/ecs/metadata/") {
        "EcsTaskMetadata".into()
    } else if p == "/pod-identity/credentials" {
        "PodIdentityCredentials".into()
    } else {
        "NotFound".into()
    }
}

fn dispatch(shared: &Shared, site: &Site, op: &str, req: &Incoming, m: Option<TokenMutation>) -> Outcome {
    match site {
        Site::Imds(id) => match shared.world.workload(id) {
            Some(w) => imds::handle(shared, w, op, req),
            None => proto::plain(404, ""),
        },
        Site::EcsAgent => container::agent(shared, op, &req.path),
        Site::Main => match op {
            "EcsCredentials" => {
                container::ecs_credentials(shared, req.path.trim_start_matches("/ecs/credentials/"), req)
            }
            "PodIdentityCredentials" => container::pod_identity_credentials(shared, req),
            "EcsTaskMetadata" => {
                let rest = req.path.trim_start_matches("/ecs/metadata/");
                let (w, tail) = rest.split_once('/').unwrap_or((rest, ""));
                container::task_metadata(shared, w, tail)
            }
            "UnknownOperation" => {
                proto::json_error(400, "UnknownOperationException", "The operation is not known to this service.")
            }
            "NotFound" => proto::plain(404, "not found"),
            _ if header(&req.headers, "x-amz-target").is_some_and(|t| t.starts_with(license::TARGET_PREFIX)) => {
                license::handle(shared, op, req)
            }
            _ if header(&req.headers, "x-amz-target").is_some() => metering::handle(shared, op, req, m),
            _ => sts::handle(shared, op, req),
        },
    }
}

fn respond(out: &Outcome, truncate: bool) -> Reply {
    let mut builder = Response::builder().status(out.status);
    for (k, v) in &out.headers {
        builder = builder.header(k, v);
    }
    let body = Bytes::from(out.body.clone());
    let body = if truncate {
        let len = body.len() as u64;
        builder = builder.header("content-length", len.to_string());
        let pause = Box::pin(tokio::time::sleep(std::time::Duration::from_millis(100)));
        Either::Right(Truncated { first: Some(body.slice(..body.len() / 2)), len, pause })
    } else {
        Either::Left(Full::new(body))
    };
    builder.body(body).unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))))
}

/// Applies the faults that corrupt an otherwise normal answer.
fn corrupt(mut out: Outcome, fault: Option<&Fault>) -> Outcome {
    match fault {
        Some(Fault::MalformedJson) => {
            let keep = out.body.len().div_ceil(2).max(1);
            out.body = out.body.chars().take(keep).collect();
        }
        Some(Fault::OversizedBody(n)) => out.body.push_str(&" ".repeat(*n)),
        Some(Fault::WrongContentType) => {
            out.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
            out.headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
        }
        Some(Fault::Signature(forged)) if out.status == 200 => {
            if let Some(body) = crate::model::fault::replace_signature(&out.body, forged) {
                out.body = body;
            }
        }
        _ => {}
    }
    out
}

async fn handle(shared: Arc<Shared>, site: Site, reset: Arc<AtomicBool>, req: Request<Body>) -> Result<Reply, Dropped> {
    let req = read(req).await;
    if matches!(site, Site::Main) && req.path.starts_with("/_emulator/") {
        return Ok(respond(&control::handle(&shared, &req), false));
    }
    let op = match &site {
        Site::Main => main_op(&req),
        Site::Imds(_) => imds::op(&req.method, &req.path).to_string(),
        Site::EcsAgent => container::agent_op(&req.path).to_string(),
    };
    let site_workload = match &site {
        Site::Imds(id) => Some(id.as_str()),
        Site::Main | Site::EcsAgent => None,
    };
    let mut mutation = None;
    let fault = shared.next_fault(&op);
    let truncate = fault == Some(Fault::TruncatedBody);
    let out = match fault.clone() {
        Some(Fault::Hang) => Outcome { hang: true, ..Outcome::default() }.workload(site_workload),
        Some(Fault::CloseConnection) => {
            record(&shared, &op, &req, &Outcome::default().workload(site_workload));
            return Err(Dropped);
        }
        Some(Fault::ConnectionReset) => {
            record(&shared, &op, &req, &Outcome::default().workload(site_workload));
            reset.store(true, Ordering::SeqCst);
            return Err(Dropped);
        }
        Some(Fault::Throttle) => proto::throttle(&op).workload(site_workload),
        Some(Fault::InternalError) => proto::internal(&op).workload(site_workload),
        Some(Fault::Status(status, code)) => proto::fault_error(&op, status, &code).workload(site_workload),
        other => {
            if let Some(Fault::Delay(d)) = other {
                tokio::time::sleep(d).await;
            }
            if let Some(Fault::Token(m)) = other {
                mutation = Some(m);
            }
            corrupt(dispatch(&shared, &site, &op, &req, mutation), fault.as_ref())
        }
    };
    record(&shared, &op, &req, &out);
    if out.hang {
        std::future::pending::<()>().await;
    }
    let mut reply = respond(&out, truncate);
    // Answers are dated by the service's wall clock (real time plus `set_wall_skew`), so a client can
    // be shown a skewed service clock, as `mpgate check` compares them.
    if let Ok(date) = hyper::header::HeaderValue::from_str(&httpdate::fmt_http_date(shared.wall_now())) {
        reply.headers_mut().insert(hyper::header::DATE, date);
    }
    Ok(reply)
}

fn record(shared: &Shared, op: &str, req: &Incoming, out: &Outcome) {
    let rec = crate::model::ledger::Recorded {
        op: op.to_string(),
        method: req.method.clone(),
        path: req.path.clone(),
        headers: req.headers.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: if out.hang { 0 } else { out.status },
        error_code: out.error_code.clone(),
        workload: out.workload.clone(),
        signing_region: out.signing_region.clone(),
        at_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    shared.lock().ledger.push(rec);
}
