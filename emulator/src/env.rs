//! The environment a container of each workload would see, mirroring what ECS, EKS and EC2
//! inject (aws-wire.md §6.1), plus the token files it references.
//!
//! Deliberate difference from real ECS: the task-role endpoint is given as
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`, because the real
//! `…_RELATIVE_URI` is resolved against 169.254.170.2, which tests cannot bind. aws-config accepts
//! a loopback FULL_URI over plain http.

use crate::state::Shared;
use crate::world::{CredentialKind, Platform};
use std::io;
use std::path::Path;

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
    match setup.imds_port {
        Some(port) => set("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://127.0.0.1:{port}")),
        None => set("AWS_EC2_METADATA_DISABLED", "true".into()),
    }
    match &w.credential {
        CredentialKind::EcsTaskRole => {
            set("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{url}/ecs/credentials/{id}"));
            set("AWS_CONTAINER_AUTHORIZATION_TOKEN", setup.ecs_token.clone().unwrap_or_default());
            set("ECS_CONTAINER_METADATA_URI_V4", format!("{url}/ecs/metadata/{id}"));
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
            set("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{url}/pod-identity/credentials"));
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
            // The Helm chart's name and the Go sample's name (aws-wire.md §5.2, §10.13): both, same file.
            set("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", path.display().to_string());
            set("AWS_LICENSE_ACCESS_FILE", path.display().to_string());
        }
        CredentialKind::InstanceRole { .. } | CredentialKind::None => {}
    }
    Ok(env)
}
