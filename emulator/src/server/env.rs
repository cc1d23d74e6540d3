//! The environment a container of each workload would see, mirroring what ECS, EKS and EC2
//! inject (docs/aws-behaviour.md §6.1), plus the token files it references.
//!
//! Without an ECS agent listener (the default), the task-role endpoint is given as
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`, because the real
//! `…_RELATIVE_URI` is resolved against 169.254.170.2, which only a network namespace of one's own
//! can bind; aws-config accepts a loopback FULL_URI over plain http. With the agent on
//! 169.254.170.2:80 (`Listen::ECS_AGENT`) the environment is exactly ECS's: a RELATIVE_URI and no
//! token. Likewise an IMDS on 169.254.169.254:80 gets no endpoint override, and one on
//! `[fd00:ec2::254]:80` gets `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6` as on EKS IPv6 clusters.
//! With a Pod Identity agent listener its workloads get the agent's `/v1/credentials` URI.

use super::listen::Listen;
use crate::model::world::{CredentialKind, Platform};
use crate::state::Shared;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

/// `http://host[:port]`, without `:80` as the platforms write it; an IPv6 host in brackets.
fn base(addr: SocketAddr) -> String {
    if addr.port() == 80 {
        match addr.ip() {
            std::net::IpAddr::V4(ip) => format!("http://{ip}"),
            std::net::IpAddr::V6(ip) => format!("http://[{ip}]"),
        }
    } else {
        format!("http://{addr}")
    }
}

pub fn workload_env(shared: &Shared, id: &str, dir: &Path) -> io::Result<Vec<(String, String)>> {
    let (Some(w), Some(setup)) = (shared.world.workload(id), shared.setup.get(id)) else {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no workload {id:?} in this world")));
    };
    let url = &shared.url;
    let mut env: Vec<(String, String)> = vec![("AWS_ENDPOINT_URL".into(), url.clone())];
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    if w.inject_region_env {
        set("AWS_REGION", w.region.clone());
        set("AWS_DEFAULT_REGION", w.region.clone());
    }
    match setup.imds_addr {
        Some(addr) if addr == Listen::IMDS => {}
        // EKS IPv6 clusters: the SDKs' endpoint mode, no URL (docs/aws-behaviour.md).
        Some(addr) if addr == Listen::IMDS_V6 => set("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6".into()),
        Some(addr) => set("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{addr}")),
        None => set("AWS_EC2_METADATA_DISABLED", "true".into()),
    }
    match &w.credential {
        CredentialKind::EcsTaskRole => {
            let creds_id = setup.ecs_credentials_id.clone().unwrap_or_default();
            match shared.ecs_agent {
                Some(agent) if agent == Listen::ECS_AGENT => {
                    set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", format!("/v2/credentials/{creds_id}"));
                }
                Some(agent) => {
                    set("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{}/v2/credentials/{creds_id}", base(agent)))
                }
                None => {
                    set("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{url}/ecs/credentials/{id}"));
                    set("AWS_CONTAINER_AUTHORIZATION_TOKEN", setup.ecs_token.clone().unwrap_or_default());
                }
            }
            let tmde = match shared.ecs_agent {
                Some(agent) => {
                    format!("{}/v4/{}", base(agent), crate::services::container::container_id(&setup.task_id))
                }
                None => format!("{url}/ecs/metadata/{id}"),
            };
            set("ECS_CONTAINER_METADATA_URI_V4", tmde);
            let exec = if w.platform == Platform::EcsEc2 { "AWS_ECS_EC2" } else { "AWS_ECS_FARGATE" };
            set("AWS_EXECUTION_ENV", exec.into());
        }
        CredentialKind::Irsa { role_arn } => {
            let path = dir.join("eks-token");
            // No trailing newline: the projected token file has none, and header-carried tokens must not.
            std::fs::write(&path, setup.irsa_token.clone().unwrap_or_default())?;
            set("AWS_ROLE_ARN", role_arn.clone());
            set("AWS_WEB_IDENTITY_TOKEN_FILE", path.display().to_string());
        }
        CredentialKind::PodIdentity => {
            let path = dir.join("eks-pod-identity-token");
            // A trailing newline would make aws-config's container provider reject the header value.
            std::fs::write(&path, setup.pod_token.clone().unwrap_or_default())?;
            let full = match shared.pod_identity_agent {
                Some(agent) => format!("{}/v1/credentials", base(agent)),
                None => format!("{url}/pod-identity/credentials"),
            };
            set("AWS_CONTAINER_CREDENTIALS_FULL_URI", full);
            set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path.display().to_string());
        }
        CredentialKind::StaticKeys => {
            let key = setup.static_key.clone().unwrap_or_default();
            let secret = shared.lock().creds.get(&key).map(|c| c.secret.clone()).unwrap_or_default();
            set("AWS_ACCESS_KEY_ID", key);
            set("AWS_SECRET_ACCESS_KEY", secret);
        }
        CredentialKind::LicenseToken { role_arn, .. } => {
            let path = dir.join("license_token");
            std::fs::write(&path, setup.lm_refresh_token.clone().unwrap_or_default())?;
            set("AWS_ROLE_ARN", role_arn.clone());
            // The Helm chart's name and the Go sample's name (docs/aws-behaviour.md §5.2, §10.13): both, same file.
            set("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", path.display().to_string());
            set("AWS_LICENSE_ACCESS_FILE", path.display().to_string());
        }
        CredentialKind::InstanceRole { .. } | CredentialKind::None => {}
    }
    Ok(env)
}
