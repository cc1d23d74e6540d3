//! IMDSv2 as aws-config's IMDS client expects it (docs/aws-behaviour.md §6.1/6.2). One listener per
//! workload that can see a host (an EC2 instance, or the node a pod runs on): reachability is a
//! property of the workload's network path (hop limit), so it cannot be shared per host.

use crate::model::world::{CredentialKind, Workload};
use crate::state::{Principal, PrincipalKind, Shared};
use crate::wire::proto::{plain, Outcome};
use crate::wire::request::Incoming;
use crate::wire::sigv4::header;
use serde_json::json;
use std::time::{Duration, SystemTime};

const TTL: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const CREDS: &str = "/latest/meta-data/iam/security-credentials/";

/// The op name the ledger and fault queue use for an IMDS path.
pub fn op(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("PUT", "/latest/api/token") => "ImdsToken",
        ("GET", "/latest/meta-data/placement/region") => "ImdsRegion",
        ("GET", "/latest/meta-data/placement/availability-zone" | "/latest/meta-data/placement/availability-zone/") => {
            "ImdsAvailabilityZone"
        }
        ("GET", CREDS) => "ImdsRoleName",
        ("GET", p) if p.starts_with(CREDS) => "ImdsCredentials",
        _ => "ImdsOther",
    }
}

/// The instance role this host's IMDS hands out: the workload's own, else the node's.
fn role(w: &Workload) -> Option<String> {
    match &w.credential {
        CredentialKind::InstanceRole { role } => Some(role.clone()),
        _ => w.node.as_ref().map(|n| format!("{n}-role")),
    }
}

pub fn handle(shared: &Shared, w: &Workload, op: &str, req: &Incoming) -> Outcome {
    let id = Some(w.id.as_str());
    if op == "ImdsToken" {
        if !w.imds_reachable {
            // Hop limit 1: the PUT response dies one hop short of the container; the client times out.
            return Outcome { hang: true, ..Outcome::default() }.workload(id);
        }
        let Some(ttl) = header(&req.headers, TTL).and_then(|t| t.trim().parse::<u32>().ok()) else {
            return plain(400, "").workload(id);
        };
        if !(1..=21600).contains(&ttl) {
            return plain(400, "").workload(id);
        }
        let token = format!("AQAEA{}", crate::wire::ids::random_string(51));
        shared.lock().imds_tokens.insert(token.clone());
        // aws-config reads the TTL back from this response header and fails without it.
        return plain(200, &token).header(TTL, &ttl.to_string()).workload(id);
    }
    let token_ok =
        header(&req.headers, "x-aws-ec2-metadata-token").is_some_and(|t| shared.lock().imds_tokens.contains(t));
    if !token_ok {
        // IMDSv2 required: requests without a session token are refused.
        return plain(401, "").workload(id);
    }
    let role = role(w);
    match op {
        "ImdsRegion" => plain(200, &w.region),
        // EC2 serves both; botocore reads the region from the zone (dropping its letter).
        "ImdsAvailabilityZone" => plain(200, &format!("{}a", w.region)),
        "ImdsRoleName" => match &role {
            Some(r) => plain(200, r),
            None => plain(404, ""),
        },
        "ImdsCredentials" => {
            let asked = req.path.trim_start_matches(CREDS);
            match &role {
                Some(r) if r == asked => {
                    let cred = shared.issue(Principal {
                        account: w.account.clone(),
                        workload: w.id.clone(),
                        kind: PrincipalKind::InstanceRole,
                        region: w.region.clone(),
                    });
                    let now = SystemTime::now();
                    let body = json!({
                        "Code": "Success",
                        "LastUpdated": crate::model::clock::rfc3339(now),
                        "Type": "AWS-HMAC",
                        "AccessKeyId": cred.access_key_id,
                        "SecretAccessKey": cred.secret,
                        "Token": cred.session_token,
                        "Expiration": crate::model::clock::rfc3339(now + Duration::from_secs(6 * 3600)),
                    });
                    plain(200, &body.to_string())
                }
                _ => plain(404, ""),
            }
        }
        _ => plain(404, ""),
    }
    .workload(id)
}
