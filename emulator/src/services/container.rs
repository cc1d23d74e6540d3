//! The container endpoints: ECS task-role credentials (agent at 169.254.170.2 in real life),
//! EKS Pod Identity credentials (169.254.170.23) and ECS task metadata v4. Each answers only the
//! token the emulator issued to that workload. Two forms of the ECS agent: on the main port under
//! `/ecs/...` with an authorization token (a FULL_URI any user can point at loopback), and on the
//! agent's own listener with the real paths, `/v2/credentials/<id>` (the RELATIVE_URI: the path
//! is the secret, no header) and `/v4/<container id>[/task]`.

use crate::model::world::{Platform, Workload};
use crate::state::{IssuedCred, Principal, PrincipalKind, Shared};
use crate::wire::proto::{container_error, Outcome};
use crate::wire::request::Incoming;
use crate::wire::sigv4::header;
use serde_json::json;
use std::time::{Duration, SystemTime};

fn creds_json(cred: &IssuedCred, role_arn: &str) -> Outcome {
    let exp = crate::model::clock::rfc3339(SystemTime::now() + Duration::from_secs(6 * 3600));
    let body = json!({
        "AccessKeyId": cred.access_key_id,
        "SecretAccessKey": cred.secret,
        "Token": cred.session_token,
        "Expiration": exp,
        "RoleArn": role_arn,
        "AccountId": cred.principal.account,
    });
    Outcome::new(200, "application/json", body.to_string()).workload(Some(&cred.principal.workload))
}

fn principal(w: &Workload, kind: PrincipalKind) -> Principal {
    Principal { account: w.account.clone(), workload: w.id.clone(), kind, region: w.region.clone() }
}

/// `GET /ecs/credentials/<workload>` with `Authorization: <issued token>`.
pub fn ecs_credentials(shared: &Shared, workload: &str, req: &Incoming) -> Outcome {
    let expected = shared.setup.get(workload).and_then(|s| s.ecs_token.as_deref());
    let (Some(w), Some(expected)) = (shared.world.workload(workload), expected) else {
        return container_error(404, "NotFound", "no task credentials for this path");
    };
    match header(&req.headers, "authorization") {
        None => container_error(401, "AccessDeniedException", "Authorization header missing"),
        Some(t) if t != expected => container_error(403, "AccessDeniedException", "Authorization token is invalid"),
        Some(_) => {
            let role = format!("arn:aws:iam::{}:role/{}-task-role", w.account, w.id);
            creds_json(&shared.issue(principal(w, PrincipalKind::EcsTaskRole)), &role)
        }
    }
}

/// The op name the ledger and fault queue use for a path on the ECS agent's own listener.
pub fn agent_op(path: &str) -> &'static str {
    if path.starts_with("/v2/credentials/") {
        "EcsCredentials"
    } else if path.starts_with("/v4/") {
        "EcsTaskMetadata"
    } else {
        "NotFound"
    }
}

/// The container id TMDE v4 names this task's one container by.
pub fn container_id(task_id: &str) -> String {
    format!("{task_id}-0000000000")
}

/// A request on the ECS agent's own listener.
pub fn agent(shared: &Shared, op: &str, path: &str) -> Outcome {
    match op {
        "EcsCredentials" => {
            let id = path.trim_start_matches("/v2/credentials/");
            let owner = shared
                .world
                .workloads
                .iter()
                .find(|w| shared.setup.get(&w.id).and_then(|s| s.ecs_credentials_id.as_deref()) == Some(id));
            let Some(w) = owner else {
                // What the agent says for a credentials id it does not know.
                return container_error(400, "InvalidIdInRequest", "Credentials not found for the given id");
            };
            let role = format!("arn:aws:iam::{}:role/{}-task-role", w.account, w.id);
            creds_json(&shared.issue(principal(w, PrincipalKind::EcsTaskRole)), &role)
        }
        "EcsTaskMetadata" => {
            let rest = path.trim_start_matches("/v4/");
            let (container, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let owner = shared
                .world
                .workloads
                .iter()
                .find(|w| shared.setup.get(&w.id).is_some_and(|s| container_id(&s.task_id) == container));
            match owner {
                Some(w) => task_metadata(shared, &w.id, tail),
                None => container_error(404, "NotFound", "no such container"),
            }
        }
        _ => container_error(404, "NotFound", "unknown agent path"),
    }
}

/// `GET /pod-identity/credentials` with `Authorization: <contents of the token file>`.
pub fn pod_identity_credentials(shared: &Shared, req: &Incoming) -> Outcome {
    let Some(token) = header(&req.headers, "authorization") else {
        return container_error(400, "InvalidTokenException", "Authorization header missing");
    };
    let owner = shared
        .world
        .workloads
        .iter()
        .find(|w| shared.setup.get(&w.id).and_then(|s| s.pod_token.as_deref()) == Some(token));
    let Some(w) = owner else {
        return container_error(401, "InvalidTokenException", "Service account token cannot be empty or invalid");
    };
    let role = format!("arn:aws:iam::{}:role/{}-pod-role", w.account, w.id);
    creds_json(&shared.issue(principal(w, PrincipalKind::PodIdentity)), &role)
}

/// `GET /ecs/metadata/<workload>[/task]`: TMDE v4, the only place an old-agent ECS-on-EC2 task
/// can learn its region (from `TaskARN`, docs/aws-behaviour.md §6.1).
pub fn task_metadata(shared: &Shared, workload: &str, rest: &str) -> Outcome {
    let (Some(w), Some(s)) = (shared.world.workload(workload), shared.setup.get(workload)) else {
        return container_error(404, "NotFound", "no such task");
    };
    let cluster = "mpgate-demo";
    let task_arn = format!("arn:aws:ecs:{}:{}:task/{cluster}/{}", w.region, w.account, s.task_id);
    let launch = if w.platform == Platform::EcsEc2 { "EC2" } else { "FARGATE" };
    let az = format!("{}a", w.region);
    let container = json!({
        "DockerId": container_id(&s.task_id),
        "Name": "app",
        "Image": "example/paid-app:latest",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Type": "NORMAL",
    });
    let body = match rest {
        "task" => json!({
            "Cluster": format!("arn:aws:ecs:{}:{}:cluster/{cluster}", w.region, w.account),
            "TaskARN": task_arn,
            "Family": w.id,
            "Revision": "1",
            "DesiredStatus": "RUNNING",
            "KnownStatus": "RUNNING",
            "LaunchType": launch,
            "AvailabilityZone": az,
            "Containers": [container],
        }),
        "" => container,
        _ => return container_error(404, "NotFound", "unknown metadata path"),
    };
    Outcome::new(200, "application/json", body.to_string()).workload(Some(&w.id))
}
