//! One request from arrival to ledger: the control API short-circuit, naming the operation,
//! drawing and applying a queued fault, dispatching, the forms of variance mode (for answers no
//! fault touched), dating the answer by the service's wall clock, and recording request and answer
//! in the request ledger.

use super::control;
use super::http::{read, respond, Dropped, Framing, Reply};
use super::routing::{dispatch, op_name, Site};
use crate::model::fault::Fault;
use crate::state::Shared;
use crate::wire::proto::{self, Outcome};
use crate::wire::request::Incoming;
use hyper::body::Incoming as Body;
use hyper::Request;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// Answers one request that arrived on `site`. `Err(Dropped)` makes hyper close the connection
/// unanswered; `reset` then asks for the close to be a TCP RST (`Fault::ConnectionReset`).
pub async fn handle(
    shared: Arc<Shared>,
    site: Site,
    reset: Arc<AtomicBool>,
    req: Request<Body>,
) -> Result<Reply, Dropped> {
    let req = read(req).await;
    if matches!(site, Site::Main) && req.path.starts_with("/_emulator/") {
        return Ok(respond(&control::handle(&shared, &req), Framing::Sized));
    }
    let op = op_name(&site, &req);
    let site_workload = match &site {
        Site::Imds(id) => Some(id.as_str()),
        Site::Main | Site::EcsAgent | Site::PodIdentityAgent => None,
    };
    let mut mutation = None;
    let mut held = None;
    let fault = shared.next_fault(&op);
    let truncate = fault == Some(Fault::TruncatedBody);
    let out = match fault.clone() {
        Some(Fault::Hang) => Outcome { hang: true, ..Outcome::default() }.workload(site_workload),
        Some(Fault::CloseConnection) => {
            record(&shared, &op, &req, &Outcome::default().workload(site_workload));
            return Err(Dropped);
        }
        Some(Fault::AnswerLost) => {
            let out = dispatch(&shared, &site, &op, &req, None);
            record(&shared, &op, &req, &out);
            return Err(Dropped);
        }
        Some(Fault::Held) => {
            held = Some(shared.hold_ticket());
            dispatch(&shared, &site, &op, &req, None)
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
    let (out, forms) = if fault.is_none() { super::variance::apply(&shared, &op, out) } else { (out, None) };
    record(&shared, &op, &req, &out);
    if let Some(mut ticket) = held {
        // Released, or the emulator is stopping (the sender is gone): answer either way.
        let _ = ticket.changed().await;
    }
    if out.hang {
        std::future::pending::<()>().await;
    }
    let framing = match forms {
        _ if truncate => Framing::Truncated,
        Some(f) if f.chunked => Framing::Chunked,
        _ => Framing::Sized,
    };
    let mut reply = respond(&out, framing);
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
