//! The container endpoints: ECS task-role credentials (agent at 169.254.170.2 in real life),
//! EKS Pod Identity credentials (169.254.170.23) and ECS task metadata v4. Each answers only the
//! token the emulator issued to that workload.

use crate::proto::{container_error, Outcome};
use crate::server::Incoming;
use crate::sigv4::header;
use crate::state::{IssuedCred, Principal, PrincipalKind, Shared};
use crate::world::{Platform, Workload};
use serde_json::json;
use std::time::{Duration, SystemTime};

fn creds_json(cred: &IssuedCred, role_arn: &str) -> Outcome {
    let exp = crate::clock::rfc3339(SystemTime::now() + Duration::from_secs(6 * 3600));
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
/// can learn its region (from `TaskARN`, aws-wire.md §6.1).
pub fn task_metadata(shared: &Shared, workload: &str, rest: &str) -> Outcome {
    let (Some(w), Some(s)) = (shared.world.workload(workload), shared.setup.get(workload)) else {
        return container_error(404, "NotFound", "no such task");
    };
    let cluster = "mpgate-demo";
    let task_arn = format!("arn:aws:ecs:{}:{}:task/{cluster}/{}", w.region, w.account, s.task_id);
    let launch = if w.platform == Platform::EcsEc2 { "EC2" } else { "FARGATE" };
    let az = format!("{}a", w.region);
    let container = json!({
        "DockerId": format!("{}-0000000000", s.task_id),
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
