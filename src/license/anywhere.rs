//! Containers Anywhere credentials (docs/aws-behaviour.md §5): a License Manager license token, exchanged for
//! an access token (`GetAccessToken`, unsigned), then for role credentials (STS
//! `AssumeRoleWithWebIdentity`, unsigned), as an SDK credential provider, so the License Manager
//! client refreshes them itself before they expire.
//!
//! Configuration, in precedence order:
//! 1. `AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE` (AWS's Helm guidance for Containers Anywhere)
//! 2. `AWS_LICENSE_ACCESS_FILE` (AWS's Go sample); ignored when 1 is set
//!
//! plus `AWS_ROLE_ARN` (the role created with the token) and optionally `AWS_ROLE_SESSION_NAME`.
//! Region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`, the default of AWS's own chart.
//! The token file is read at every refresh, so a rotated secret is picked up without a restart.
//! Must not: sign the two exchange calls (both AWS samples call them anonymously), print a token, or
//! be used when the platform gives credentials (`platform::credentials` tries it after them).
#![forbid(unsafe_code)]

use crate::aws::Clients;
use crate::platform::{Env, FoundRegion, RegionSource};
use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The variables that name the license token file, in precedence order.
pub const TOKEN_FILE_VARS: [&str; 2] = ["AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", "AWS_LICENSE_ACCESS_FILE"];
/// The region AWS's Containers Anywhere Helm chart defaults to (docs/aws-behaviour.md §5.2).
pub const DEFAULT_REGION: &str = "us-east-1";
/// Refresh this long before the credentials expire (at most; a quarter of a shorter lifetime).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Cached credentials are handed out while they have more than this left before the refresh
/// moment: more than the SDK identity cache's own buffer (10 s), so the two never disagree.
const CACHE_SLACK: Duration = Duration::from_secs(15);
/// Attempts per exchange call for throttling, server and network errors (the SDK retries neither
/// License Manager's 429 nor STS's `IDPCommunicationError`, docs/aws-behaviour.md §8.2).
const ATTEMPTS: u32 = 4;

/// The configured license token file and the variable that named it.
pub fn configured(env: &dyn Env) -> Option<(&'static str, PathBuf)> {
    TOKEN_FILE_VARS.iter().find_map(|v| env.get(v).filter(|p| !p.trim().is_empty()).map(|p| (*v, PathBuf::from(p))))
}

/// The region for a gate with a license token configured: the variables, else the chart's default
/// (no ECS metadata or IMDS: an on-premises host has neither, and probing IMDS costs seconds).
pub fn region(env: &dyn Env) -> Option<FoundRegion> {
    if configured(env).is_none() || env.get("AWS_REGION").is_some() || env.get("AWS_DEFAULT_REGION").is_some() {
        return None;
    }
    Some(FoundRegion { name: DEFAULT_REGION.to_string(), source: RegionSource::LicenseTokenDefault })
}

/// Credentials from a License Manager license token. Cloning shares the cache.
#[derive(Clone)]
pub struct LicenseTokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    var: &'static str,
    file: PathBuf,
    role_arn: Option<String>,
    session_name: String,
    lm: aws_sdk_licensemanager::Client,
    sts: aws_sdk_sts::Client,
    /// The last credentials, with their expiry already moved to the refresh moment.
    cached: Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for LicenseTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseTokenProvider")
            .field("token_file", &self.inner.file)
            .field("role_arn", &self.inner.role_arn)
            .finish_non_exhaustive()
    }
}

impl LicenseTokenProvider {
    /// The provider when a license token file is configured; `None` otherwise.
    pub fn from_env(env: &dyn Env, clients: &Clients, region: &str) -> Option<Self> {
        let (var, file) = configured(env)?;
        let millis = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Some(LicenseTokenProvider {
            inner: Arc::new(Inner {
                var,
                file,
                role_arn: env.get("AWS_ROLE_ARN").filter(|r| !r.trim().is_empty()),
                session_name: env.get("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| format!("mpgate-{millis}")),
                lm: clients.license_manager_unsigned(env, region),
                sts: clients.sts_unsigned(env, region),
                cached: Mutex::new(None),
            }),
        })
    }

    async fn credentials(&self) -> provider::Result {
        let now = SystemTime::now();
        let cached = self.inner.cached.lock().ok().and_then(|c| c.clone());
        if let Some(c) = cached.filter(|c| c.expiry().is_some_and(|e| e > now + CACHE_SLACK)) {
            return Ok(c);
        }
        let fresh = self.fetch().await?;
        if let Ok(mut c) = self.inner.cached.lock() {
            *c = Some(fresh.clone());
        }
        Ok(fresh)
    }

    async fn fetch(&self) -> provider::Result {
        let i = &self.inner;
        let text = std::fs::read_to_string(&i.file).map_err(|e| {
            CredentialsError::invalid_configuration(format!(
                "cannot read the license token file {} (from {}): {e}",
                i.file.display(),
                i.var
            ))
        })?;
        let token = text.trim();
        if token.is_empty() {
            let m = format!("the license token file {} (from {}) is empty", i.file.display(), i.var);
            return Err(CredentialsError::invalid_configuration(m));
        }
        let Some(role_arn) = &i.role_arn else {
            let m = format!("{} is set but AWS_ROLE_ARN is not: set it to the IAM role created with the license token (the secret's iam_role)", i.var);
            return Err(CredentialsError::invalid_configuration(m));
        };
        let access = self.access_token(token).await?;
        self.assume_role(role_arn, &access).await
    }

    async fn access_token(&self, token: &str) -> Result<String, CredentialsError> {
        for attempt in 1..=ATTEMPTS {
            let answer = self.inner.lm.get_access_token().token(token).send().await;
            let e = match answer {
                Ok(out) => {
                    return out.access_token().map(str::to_string).ok_or_else(|| {
                        CredentialsError::provider_error("GetAccessToken answered without an AccessToken")
                    })
                }
                Err(e) => e,
            };
            if crate::aws::tls::rejection(&e).is_some() || crate::aws::tunnel::refusal(&e, "").is_some() {
                // Final: the SDK error keeps the host and verdict (or the proxy's answer) for the
                // refusal line.
                return Err(CredentialsError::provider_error(e));
            }
            let (transient, text) = judge(&e, &["RateLimitExceededException", "ServerInternalException"]);
            if !transient {
                return Err(CredentialsError::invalid_configuration(format!(
                    "License Manager refused the license token (GetAccessToken: {text})"
                )));
            }
            if attempt == ATTEMPTS {
                return Err(CredentialsError::provider_error(format!("GetAccessToken attempt {attempt}: {text}")));
            }
            pause(attempt).await;
        }
        Err(CredentialsError::provider_error("GetAccessToken: retry loop ended"))
    }

    async fn assume_role(&self, role_arn: &str, access: &str) -> provider::Result {
        for attempt in 1..=ATTEMPTS {
            let answer = self
                .inner
                .sts
                .assume_role_with_web_identity()
                .role_arn(role_arn)
                .role_session_name(&self.inner.session_name)
                .web_identity_token(access)
                .send()
                .await;
            let e = match answer {
                Ok(out) => return convert(out),
                Err(e) => e,
            };
            if crate::aws::tls::rejection(&e).is_some() || crate::aws::tunnel::refusal(&e, "").is_some() {
                return Err(CredentialsError::provider_error(e));
            }
            let (transient, text) = judge(&e, &["IDPCommunicationError", "Throttling"]);
            if !transient {
                return Err(CredentialsError::invalid_configuration(format!(
                    "STS refused the role {role_arn} for the license token's access token (AssumeRoleWithWebIdentity: {text})"
                )));
            }
            if attempt == ATTEMPTS {
                let m = format!("AssumeRoleWithWebIdentity attempt {attempt}: {text}");
                return Err(CredentialsError::provider_error(m));
            }
            pause(attempt).await;
        }
        Err(CredentialsError::provider_error("AssumeRoleWithWebIdentity: retry loop ended"))
    }
}

impl ProvideCredentials for LicenseTokenProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.credentials())
    }
}

/// STS's answer as SDK credentials whose expiry is the moment to refresh them.
fn convert(
    out: aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput,
) -> provider::Result {
    let c = out
        .credentials()
        .ok_or_else(|| CredentialsError::provider_error("AssumeRoleWithWebIdentity answered without Credentials"))?;
    let expires = SystemTime::try_from(*c.expiration())
        .map_err(|e| CredentialsError::provider_error(format!("credential expiration out of range: {e}")))?;
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        Some(refresh_at(SystemTime::now(), expires)),
        "mpgate-license-token",
    ))
}

/// Whether a failed exchange call is worth another attempt (a 5xx, one of `transient_codes`, or no
/// answer at all; never a request the SDK could not build), and its one-line description.
fn judge<E>(e: &SdkError<E, HttpResponse>, transient_codes: &[&str]) -> (bool, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = match e.as_service_error() {
        Some(s) => service_text(s.code(), s.message(), s.meta().extra("aws_request_id")),
        None => crate::error::causes(e),
    };
    let transient = match e {
        SdkError::ServiceError(s) => {
            s.raw().status().as_u16() >= 500 || s.err().code().is_some_and(|c| transient_codes.contains(&c))
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    (transient, text)
}

/// `Code: message (request id …)` of an AWS error answer, on one line.
fn service_text(code: Option<&str>, message: Option<&str>, request_id: Option<&str>) -> String {
    let mut t = code.unwrap_or("UnknownError").to_string();
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        t.push_str(": ");
        t.push_str(&crate::error::one_line(m));
    }
    if let Some(id) = request_id {
        t.push_str(&format!(" (request id {id})"));
    }
    t
}

/// When to refresh credentials issued now that expire at `expires`: `REFRESH_MARGIN` before, or a
/// quarter of the lifetime before when that is shorter (never after `expires`).
pub fn refresh_at(now: SystemTime, expires: SystemTime) -> SystemTime {
    let lifetime = expires.duration_since(now).unwrap_or_default();
    expires - REFRESH_MARGIN.min(lifetime / 4)
}

async fn pause(attempt: u32) {
    tokio::time::sleep(crate::entitlement::pacing::full_jitter(
        attempt,
        Duration::from_millis(200),
        Duration::from_secs(2),
    ))
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::env::MapEnv;

    #[test]
    fn the_helm_variable_wins_over_the_go_sample_variable() {
        let both = MapEnv::from_pairs(&[
            ("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", "/helm/license_token"),
            ("AWS_LICENSE_ACCESS_FILE", "/go/token"),
        ]);
        assert_eq!(
            configured(&both),
            Some(("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", PathBuf::from("/helm/license_token")))
        );
        let go = MapEnv::from_pairs(&[("AWS_LICENSE_ACCESS_FILE", "/go/token")]);
        assert_eq!(configured(&go), Some(("AWS_LICENSE_ACCESS_FILE", PathBuf::from("/go/token"))));
        assert_eq!(configured(&MapEnv::from_pairs(&[])), None);
    }

    #[test]
    fn the_region_defaults_to_us_east_1_only_with_a_token_and_no_region_variable() {
        let token = ("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", "/t");
        assert_eq!(region(&MapEnv::from_pairs(&[token])).map(|r| r.name), Some("us-east-1".to_string()));
        assert_eq!(region(&MapEnv::from_pairs(&[token, ("AWS_REGION", "eu-west-1")])), None);
        assert_eq!(region(&MapEnv::from_pairs(&[("AWS_REGION", "eu-west-1")])), None);
        assert_eq!(region(&MapEnv::from_pairs(&[])), None);
    }

    #[test]
    fn refresh_comes_five_minutes_early_for_an_hour_and_a_quarter_early_for_less() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(refresh_at(now, now + Duration::from_secs(3600)), now + Duration::from_secs(3300));
        assert_eq!(refresh_at(now, now + Duration::from_secs(24)), now + Duration::from_secs(18));
        assert_eq!(refresh_at(now, now), now);
    }
}
