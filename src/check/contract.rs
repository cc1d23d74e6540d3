//! `mpgate check` for contract builds (License Manager): the platform, region, credential and
//! endpoint lines worded for License Manager and the Containers Anywhere license token instead of
//! Marketplace Metering. The generic probes (`probes.rs`) call these when the build is contract-priced.
//! Must not: check anything out (that is `--live`, via the shared entitlement probe) or print a token.
#![forbid(unsafe_code)]

use super::{Check, Status};
use crate::aws::Clients;
use crate::error::Class;
use crate::identity::{self, PricingModel};
use crate::license::anywhere;
use crate::platform::{self, CredentialSource, Env, FoundRegion};
use aws_credential_types::provider::SharedCredentialsProvider;

/// Whether this binary is contract-priced.
pub fn applies() -> bool {
    identity::baked().is_ok_and(|b| b.pricing_model == PricingModel::Contract)
}

/// On premises with a license token: a supported platform for contract pricing (the generic probe
/// would call it "not ECS or EKS"). `None`: the generic platform line applies.
pub fn platform(env: &dyn Env) -> Option<Check> {
    let (var, file) = anywhere::configured(env)?;
    let on_aws = env.get("AWS_EXECUTION_ENV").is_some()
        || env.get("ECS_CONTAINER_METADATA_URI_V4").is_some()
        || env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
        || env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        || env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some();
    if on_aws {
        return None;
    }
    Some(Check::new(
        "platform",
        Status::Pass,
        format!("Containers Anywhere: a License Manager license token ({var}={})", file.display()),
    ))
}

/// The region without probing ECS metadata or IMDS when a license token is configured.
pub fn region(env: &dyn Env) -> Option<FoundRegion> {
    anywhere::region(env)
}

/// The credential chain with the license token source; License Manager accepts any IAM principal
/// the consumption policy is attached to, so any source passes.
pub async fn credentials(env: &dyn Env, clients: &Clients, region: &FoundRegion) -> Check {
    let token =
        anywhere::LicenseTokenProvider::from_env(env, clients, &region.name).map(SharedCredentialsProvider::new);
    match platform::credentials::load_with(env, clients, &region.name, token, &|_| {}).await {
        Ok(c) if c.source == CredentialSource::LicenseToken => Check::new(
            "credentials",
            Status::Pass,
            format!(
                "from {}: GetAccessToken and AssumeRoleWithWebIdentity succeeded{}",
                c.source,
                super::probes::caller(env, clients, &region.name, &c).await
            ),
        )
        .via(super::probes::CALLER_METHOD),
        Ok(c) => Check::new(
            "credentials",
            Status::Pass,
            format!(
                "from {} (License Manager accepts any role with the consumption policy){}",
                c.source,
                super::probes::caller(env, clients, &region.name, &c).await
            ),
        )
        .via(super::probes::CALLER_METHOD),
        Err(e) if e.class() == Class::CannotVerify => Check::new("credentials", Status::Unknown, e.to_string()),
        Err(e) => Check::new("credentials", Status::Fail, e.to_string()).fix(
            "give the task or pod a role (ECS task role, EKS IRSA) or, on premises, mount the license token secret and set AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE and AWS_ROLE_ARN (docs/contract.md)",
        ),
    }
}

/// The License Manager endpoint's URL for `region`.
pub async fn endpoint_url(env: &dyn Env, region: &FoundRegion) -> Result<String, String> {
    crate::aws::license_manager_endpoint(env, &region.name).await
}
