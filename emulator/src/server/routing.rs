//! Which service answers a request: the listener it came in on (`Site`), the operation it names
//! (the `X-Amz-Target` header, the STS `Action`, or the container endpoint's path), and the
//! dispatch to that service.

use crate::model::fault::TokenMutation;
use crate::services::{container, imds, license, metering, sts};
use crate::state::Shared;
use crate::wire::proto::{self, Outcome};
use crate::wire::request::Incoming;
use crate::wire::sigv4::header;

/// Which listener a request arrived on.
#[derive(Debug, Clone)]
pub enum Site {
    Main,
    /// The IMDS as seen from this workload.
    Imds(String),
    /// The ECS agent's own address (169.254.170.2 in real life).
    EcsAgent,
    /// The EKS Pod Identity agent's own address (169.254.170.23 or fd00:ec2::23 in real life).
    PodIdentityAgent,
}

/// The operation a request on `site` is for: the name the ledger and the fault queues use.
pub fn op_name(site: &Site, req: &Incoming) -> String {
    match site {
        Site::Main => main_op(req),
        Site::Imds(_) => imds::op(&req.method, &req.path).to_string(),
        Site::EcsAgent => container::agent_op(&req.path).to_string(),
        Site::PodIdentityAgent if req.path == "/v1/credentials" => "PodIdentityCredentials".into(),
        Site::PodIdentityAgent => "NotFound".into(),
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

pub fn dispatch(shared: &Shared, site: &Site, op: &str, req: &Incoming, m: Option<TokenMutation>) -> Outcome {
    match site {
        Site::Imds(id) => match shared.world.workload(id) {
            Some(w) => imds::handle(shared, w, op, req),
            None => proto::plain(404, ""),
        },
        Site::EcsAgent => container::agent(shared, op, &req.path),
        Site::PodIdentityAgent => match op {
            "PodIdentityCredentials" => container::pod_identity_credentials(shared, req),
            _ => proto::plain(404, "not found"),
        },
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
