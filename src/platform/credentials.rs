//! Credentials from the aws-config providers, tried in the default chain's order, remembering which
//! source answered so a refusal can say "EKS Pod Identity is not supported, use IRSA" and the like.
//!
//! Sources, in precedence order (aws-config `DefaultCredentialsChain`, without `credentials-process`
//! and `sso`, which run external programs or need a browser):
//! 1. environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)
//! 2. shared profile files (`~/.aws/credentials`, `~/.aws/config`)
//! 3. web identity token: EKS IRSA (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`)
//! 4. container endpoint: ECS task role, EKS Pod Identity (`AWS_CONTAINER_CREDENTIALS_*`)
//! 5. contract pricing only (`load_with`): a License Manager license token (Containers Anywhere,
//!    `AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE` or `AWS_LICENSE_ACCESS_FILE` + `AWS_ROLE_ARN`,
//!    `license::anywhere`). Before IMDS on purpose: the token is configured for this workload, an
//!    instance role belongs to the node, and on premises probing IMDS only costs seconds.
//! 6. IMDSv2 instance role
//!
//! A source that has nothing configured passes to the next; the first source that is configured and
//! fails ends the search, as in aws-config.
#![forbid(unsafe_code)]

use super::Env;
use crate::aws::Clients;
use crate::error::{Class, Error};
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_types::error::display::DisplayErrorContext;
use std::fmt;

/// Which source produced the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// Long-term access keys in the environment (no session token).
    EnvStaticKeys,
    /// Temporary credentials in the environment.
    EnvSession,
    /// A shared profile file.
    Profile,
    /// EKS IRSA (web identity token file + role ARN, via STS).
    WebIdentity,
    /// ECS task role from the container credentials endpoint.
    EcsTaskRole,
    /// EKS Pod Identity agent.
    PodIdentity,
    /// A container credentials endpoint that is neither of the above (`AWS_CONTAINER_CREDENTIALS_FULL_URI`).
    ContainerEndpoint,
    /// The EC2 instance (or EKS/ECS node) role through IMDS.
    InstanceRole,
    /// A License Manager license token exchanged for role credentials (Containers Anywhere).
    LicenseToken,
}

impl CredentialSource {
    /// Whether AWS Marketplace Metering accepts this source for container products.
    pub fn marketplace_accepts(self) -> bool {
        matches!(
            self,
            CredentialSource::WebIdentity | CredentialSource::EcsTaskRole | CredentialSource::ContainerEndpoint
        )
    }

    /// What to do when Marketplace rejects a call this source signed (follows "signed with <source>; ").
    pub fn advice(self) -> &'static str {
        match self {
            CredentialSource::EnvStaticKeys | CredentialSource::EnvSession | CredentialSource::Profile => {
                "AWS Marketplace accepts only the ECS task role or EKS IRSA; remove static keys and profiles and run the image on ECS (task role) or EKS (IRSA service account)"
            }
            CredentialSource::PodIdentity => {
                "AWS Marketplace Metering does not accept it; use IRSA instead: annotate the pod's service account with eks.amazonaws.com/role-arn"
            }
            CredentialSource::InstanceRole => {
                "that is the node or instance role; AWS Marketplace needs the ECS task role (taskRoleArn) or EKS IRSA (service account annotated with eks.amazonaws.com/role-arn)"
            }
            CredentialSource::WebIdentity | CredentialSource::EcsTaskRole | CredentialSource::ContainerEndpoint => {
                "run the image on ECS or EKS (Fargate included); AWS Marketplace container products cannot run elsewhere"
            }
            CredentialSource::LicenseToken => {
                "a License Manager license token only serves contract pricing; hourly and custom-metered products need the ECS task role or EKS IRSA"
            }
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSource::EnvStaticKeys => "long-term access keys in the environment",
            CredentialSource::EnvSession => "temporary credentials in the environment",
            CredentialSource::Profile => "a shared AWS profile file",
            CredentialSource::WebIdentity => "EKS IRSA (web identity token)",
            CredentialSource::EcsTaskRole => "the ECS task role",
            CredentialSource::PodIdentity => "EKS Pod Identity",
            CredentialSource::ContainerEndpoint => "the container credentials endpoint",
            CredentialSource::InstanceRole => "the instance role from IMDS",
            CredentialSource::LicenseToken => "a License Manager license token (Containers Anywhere)",
        })
    }
}

/// Credentials and their source. `Debug` never shows the secret (aws-credential-types redacts it).
#[derive(Clone, Debug)]
pub struct LoadedCredentials {
    /// The credentials, redacted in `Debug`.
    pub credentials: Credentials,
    /// Which source answered.
    pub source: CredentialSource,
}

/// Try each source in order (without the license token: hourly, monthly and custom metering).
pub async fn load(env: &dyn Env, clients: &Clients, region: &str) -> Result<LoadedCredentials, Error> {
    load_with(env, clients, region, None, &|_| {}).await
}

/// Try each source in order, with `license_token` (contract pricing, when one is configured) as
/// source 5. Its provider refreshes itself; the credentials returned are its first ones. Each
/// provider is built only when the chain reaches it: on ECS the license-token and IMDS providers
/// (and the IMDS client) are never built, and IRSA's only when it is configured. `trying` is told
/// each configured source that goes to the network as the chain reaches it, with where (`reach`),
/// so a deadline that strikes while one is loading can name it.
pub async fn load_with(
    env: &dyn Env,
    clients: &Clients,
    region: &str,
    license_token: Option<SharedCredentialsProvider>,
    trying: &dyn Fn(String),
) -> Result<LoadedCredentials, Error> {
    let env_source = if env.get("AWS_SESSION_TOKEN").is_some() {
        CredentialSource::EnvSession
    } else {
        CredentialSource::EnvStaticKeys
    };
    let config = clients.provider_config(region);
    let sts_config = clients.sts_locked_provider_config(env, region).await?;
    let mut license_token = license_token;
    for source in [
        env_source,
        CredentialSource::Profile,
        CredentialSource::WebIdentity,
        container_source(env),
        CredentialSource::LicenseToken,
        CredentialSource::InstanceRole,
    ] {
        let reached = super::reach::endpoint(source, env, region)
            .filter(|_| source != CredentialSource::LicenseToken || license_token.is_some());
        if let Some(at) = reached {
            trying(format!("loading credentials from {source} at {at}"));
        }
        let provider = provider(source, env, (&config, &sts_config), clients, &mut license_token);
        match provider.provide_credentials().await {
            Ok(credentials) => return Ok(LoadedCredentials { credentials, source }),
            Err(CredentialsError::CredentialsNotLoaded(_)) => continue,
            Err(e) => {
                if source == CredentialSource::WebIdentity {
                    if let Some(unreadable) = env.get("AWS_WEB_IDENTITY_TOKEN_FILE").and_then(|p| token_unreadable(&p))
                    {
                        return Err(Error::Credentials {
                            class: Class::Misconfigured,
                            detail: format!("cannot load credentials from {source}: {unreadable}; {TOKEN_FILE_FIX}"),
                        });
                    }
                }
                return Err(classify(source, &e));
            }
        }
    }
    Err(Error::Credentials {
        class: Class::Misconfigured,
        detail: "no AWS credentials found (no environment keys, profile, IRSA token, container endpoint or instance role); run on ECS with a task role or on EKS with an IRSA service account".to_string(),
    })
}

/// The aws-config provider (or mpgate's license-token provider) behind `source`. The providers that
/// build their own STS client (IRSA, profiles) get `sts_config`, whose HTTP client reaches STS only
/// at the endpoint mpgate chose (`aws::sts_lock`); the others get `config`.
fn provider(
    source: CredentialSource,
    env: &dyn Env,
    (config, sts_config): (&ProviderConfig, &ProviderConfig),
    clients: &Clients,
    license_token: &mut Option<SharedCredentialsProvider>,
) -> Box<dyn ProvideCredentials> {
    use aws_config::{ecs, environment, imds, profile, web_identity_token};
    match source {
        CredentialSource::EnvSession | CredentialSource::EnvStaticKeys => {
            Box::new(environment::credentials::EnvironmentVariableCredentialsProvider::new())
        }
        CredentialSource::Profile => {
            // Its `credential_source` fallbacks, built only if a profile names them.
            let (imds_config, ecs_config) = (config.clone(), config.clone());
            Box::new(
                profile::ProfileFileCredentialsProvider::builder()
                    .configure(sts_config)
                    .with_custom_provider(
                        "Ec2InstanceMetadata",
                        BuiltOnUse::new(move || {
                            imds::credentials::ImdsCredentialsProvider::builder().configure(&imds_config).build()
                        }),
                    )
                    .with_custom_provider(
                        "EcsContainer",
                        BuiltOnUse::new(move || ecs::EcsCredentialsProvider::builder().configure(&ecs_config).build()),
                    )
                    .build(),
            )
        }
        // Building it builds an STS client, whose endpoint resolver parses the SDK's partition
        // table; with neither variable set the SDK's provider answers "not loaded" anyway. With
        // either one it is built and judges them (a blank token file next to a role ARN is refused).
        CredentialSource::WebIdentity
            if env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() || env.get("AWS_ROLE_ARN").is_some() =>
        {
            Box::new(web_identity_token::WebIdentityTokenCredentialsProvider::builder().configure(sts_config).build())
        }
        CredentialSource::EcsTaskRole | CredentialSource::ContainerEndpoint | CredentialSource::PodIdentity => {
            Box::new(ecs::EcsCredentialsProvider::builder().configure(config).build())
        }
        CredentialSource::LicenseToken => match license_token.take() {
            Some(token) => Box::new(token),
            None => Box::new(NotConfigured),
        },
        CredentialSource::InstanceRole => Box::new(
            imds::credentials::ImdsCredentialsProvider::builder().configure(config).imds_client(clients.imds()).build(),
        ),
        CredentialSource::WebIdentity => Box::new(NotConfigured),
    }
}

/// A provider built the first time it is asked for credentials. aws-config's profile provider builds
/// its `Ec2InstanceMetadata` and `EcsContainer` fallbacks (an IMDS client among them) whenever it is
/// built, though only a profile that names one as `credential_source` uses it.
struct BuiltOnUse<P> {
    provider: std::sync::OnceLock<P>,
    build: Box<dyn Fn() -> P + Send + Sync>,
}

impl<P> BuiltOnUse<P> {
    fn new(build: impl Fn() -> P + Send + Sync + 'static) -> Self {
        BuiltOnUse { provider: std::sync::OnceLock::new(), build: Box::new(build) }
    }
}

impl<P: fmt::Debug> fmt::Debug for BuiltOnUse<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BuiltOnUse").field(&self.provider.get()).finish()
    }
}

impl<P: ProvideCredentials> ProvideCredentials for BuiltOnUse<P> {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.provider.get_or_init(|| (self.build)()).provide_credentials()
    }
}

/// The license-token slot when no token is configured (or the pricing model is not contract).
#[derive(Debug)]
struct NotConfigured;

impl ProvideCredentials for NotConfigured {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(CredentialsError::not_loaded_no_source()))
    }
}

/// ECS sets the relative URI; EKS Pod Identity sets a full URI on 169.254.170.23 with a token file.
fn container_source(env: &dyn Env) -> CredentialSource {
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some() {
        return CredentialSource::EcsTaskRole;
    }
    let full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").unwrap_or_default();
    let token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").unwrap_or_default();
    if full.contains("169.254.170.23")
        || full.contains("fd00:ec2::23")
        || token_file.ends_with("/eks-pod-identity-token")
    {
        CredentialSource::PodIdentity
    } else if env.get("ECS_CONTAINER_METADATA_URI_V4").is_some() {
        CredentialSource::EcsTaskRole
    } else {
        CredentialSource::ContainerEndpoint
    }
}

/// What to do when the IRSA token file cannot be read (`mpgate check` gives the same fix).
pub const TOKEN_FILE_FIX: &str =
    "set the pod's securityContext.fsGroup (to the container's gid) so the projected token is readable by this user";

/// Why the web identity token at `path` cannot be read by this process, naming the path and the uid
/// and gid that tried; `None` when it can be read.
pub fn token_unreadable(path: &str) -> Option<String> {
    let e = std::fs::File::open(path).err()?;
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    Some(format!("{path} is not readable by uid {uid} (gid {gid}): {}", crate::error::one_line(&e.to_string())))
}

/// Permanent answers (a rejected token, an unreadable file) are misconfiguration; the rest may pass.
fn classify(source: CredentialSource, e: &CredentialsError) -> Error {
    // A certificate that does not verify (TLS interception in front of STS, say) answers every retry
    // the same way: final at once, as for the metering and licensing calls.
    if let Some(refusal) = crate::entitlement::triage::untrusted_certificate(e, credential_call(source)) {
        return refusal;
    }
    // So does a proxy that refuses the STS tunnel by policy (407, 403).
    if let Some(refusal) = crate::aws::tunnel::refusal(e, credential_call(source)) {
        return refusal;
    }
    // An STS endpoint chosen by the environment or a profile answers every retry the same way.
    if let Some(r) = crate::aws::sts_lock::redirected(e) {
        return Error::UnsafeEnvironment(format!(
            "cannot load credentials from {source}: {r}; AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL or the profile's endpoint_url or services section chose that endpoint, and mpgate sends credential requests only to {}; unset that setting for this container (docs/security.md)",
            r.allowed
        ));
    }
    // What the line says: the causes' own words. What decides the class: the SDK's full context,
    // whose Debug part also carries codes and statuses that some Display texts leave out.
    let full = DisplayErrorContext(e).to_string();
    let text = match std::error::Error::source(e) {
        // mpgate's own provider words its failures for people.
        Some(inner) if source == CredentialSource::LicenseToken => crate::error::one_line(&inner.to_string()),
        _ => sts_answer(e).unwrap_or_else(|| crate::error::causes(e)),
    };
    const PERMANENT: &[&str] = &[
        "InvalidIdentityToken",
        "AccessDenied",
        "IDPRejectedClaim",
        "ExpiredToken",
        "RegionDisabled",
        "Permission denied",
        "No such file",
        // The container endpoint's refusals, as aws-config words them. Not a bare "403": the full
        // context also holds request ids, whose hex digits can spell it.
        "HTTP credential provider: StatusCode(403)",
        "HTTP credential provider: StatusCode(401)",
    ];
    // The SDK could not build the credential request, or an interceptor refused it (an
    // AWS_EXECUTION_ENV no header can carry): the same at every attempt.
    let unsendable =
        crate::entitlement::triage::refused_before_sending(e) || full.contains("failed to construct request");
    let class = match e {
        CredentialsError::InvalidConfiguration(_) => Class::Misconfigured,
        _ if unsendable => Class::Misconfigured,
        CredentialsError::ProviderTimedOut(_) => Class::CannotVerify,
        _ if source == CredentialSource::InstanceRole => Class::Misconfigured,
        _ if PERMANENT.iter().any(|p| full.contains(p)) => Class::Misconfigured,
        _ => Class::CannotVerify,
    };
    let fix = match source {
        _ if unsendable => "the AWS SDK could not build the request, which no retry changes; check this container's AWS_* variables (AWS_EXECUTION_ENV among them)",
        CredentialSource::WebIdentity => "check the IRSA role's trust policy, AWS_ROLE_ARN, and that AWS_WEB_IDENTITY_TOKEN_FILE is readable by this user (set fsGroup for non-root pods)",
        CredentialSource::EcsTaskRole | CredentialSource::ContainerEndpoint | CredentialSource::PodIdentity => "check the task definition's taskRoleArn (or the pod's identity association) and the container credentials variables",
        CredentialSource::LicenseToken => "mount the license token secret from AWS Marketplace (key license_token) at the path the variable names and set AWS_ROLE_ARN to its iam_role; create a new token if this one was deleted or expired",
        _ => "fix or remove that credential source",
    };
    Error::Credentials { class, detail: format!("cannot load credentials from {source}: {text}; {fix}") }
}

/// STS's answer to IRSA's AssumeRoleWithWebIdentity, when `e` holds one, in the words of the other
/// AWS refusals: code, message and request id (STS's error texts leave the id out, or bury it in a
/// `Debug` dump, and AWS support asks for it).
fn sts_answer(e: &CredentialsError) -> Option<String> {
    use aws_sdk_sts::error::ProvideErrorMetadata as _;
    use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_types::request_id::RequestId as _;
    let first: &(dyn std::error::Error + 'static) = e;
    // Bounded like the other chain walks: a chain is a handful of links.
    let sdk = std::iter::successors(Some(first), |&e| e.source())
        .take(16)
        .find_map(|e| e.downcast_ref::<SdkError<AssumeRoleWithWebIdentityError, HttpResponse>>())?;
    let answer = sdk.as_service_error()?;
    let mut text = format!("STS AssumeRoleWithWebIdentity answered {}", answer.code().unwrap_or("an unknown error"));
    if let Some(m) = answer.message().filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(&crate::error::one_line(m));
    }
    if let Some(id) = sdk.request_id() {
        text.push_str(&format!(" (request id {id})"));
    }
    Some(text)
}

/// The request behind `source`, as a refusal line names it.
fn credential_call(source: CredentialSource) -> &'static str {
    match source {
        CredentialSource::WebIdentity => "the IRSA credential request (STS AssumeRoleWithWebIdentity)",
        CredentialSource::LicenseToken => {
            "the license token exchange (License Manager GetAccessToken, then STS AssumeRoleWithWebIdentity)"
        }
        CredentialSource::EcsTaskRole | CredentialSource::ContainerEndpoint | CredentialSource::PodIdentity => {
            "the container credentials request"
        }
        CredentialSource::InstanceRole => "the instance metadata credentials request",
        CredentialSource::Profile => "the profile's credential request",
        CredentialSource::EnvSession | CredentialSource::EnvStaticKeys => "the credential request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::env::MapEnv;

    #[test]
    fn pod_identity_is_recognised_by_address_or_token_file() {
        let by_addr =
            MapEnv::from_pairs(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials")]);
        assert_eq!(container_source(&by_addr), CredentialSource::PodIdentity);
        let by_file = MapEnv::from_pairs(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/x"),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
        ]);
        assert_eq!(container_source(&by_file), CredentialSource::PodIdentity);
        assert!(!CredentialSource::PodIdentity.marketplace_accepts());
    }

    #[test]
    fn ecs_task_role_is_recognised() {
        let rel = MapEnv::from_pairs(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")]);
        assert_eq!(container_source(&rel), CredentialSource::EcsTaskRole);
        let full = MapEnv::from_pairs(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/x"),
            ("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.0.1:9/m"),
        ]);
        assert_eq!(container_source(&full), CredentialSource::EcsTaskRole);
        assert!(CredentialSource::EcsTaskRole.marketplace_accepts());
    }

    /// An STS (or container endpoint) connection refused for its certificate, as the web identity
    /// provider hands it back: the SDK's dispatch failure inside the provider error.
    fn failed_for(source: Box<dyn std::error::Error + Send + Sync>) -> CredentialsError {
        use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
        let sdk: SdkError<aws_smithy_types::error::ErrorMetadata, aws_smithy_runtime_api::http::Response> =
            SdkError::dispatch_failure(ConnectorError::io(source));
        CredentialsError::provider_error(sdk)
    }

    #[test]
    fn a_container_endpoint_refusal_is_permanent_and_a_request_id_spelling_403_is_not() {
        let refused =
            CredentialsError::provider_error("Non-success status from HTTP credential provider: StatusCode(403)");
        assert_eq!(classify(CredentialSource::EcsTaskRole, &refused).class(), Class::Misconfigured);
        let unavailable = CredentialsError::provider_error(
            "InternalFailure: try again (aws_request_id: \"7f403a01-0000-4000-a000-000000000000\")",
        );
        assert_eq!(classify(CredentialSource::WebIdentity, &unavailable).class(), Class::CannotVerify);
    }

    #[test]
    fn a_certificate_that_does_not_verify_is_final_for_credentials_too() {
        let host = "sts.us-east-1.amazonaws.com";
        let tls = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let rejected = crate::aws::tls::CertificateRejected::for_test(host, Box::new(tls));
        let err = classify(CredentialSource::WebIdentity, &failed_for(Box::new(rejected)));
        assert_eq!(err.class(), Class::Misconfigured);
        let line = err.to_string();
        for needle in
            ["STS AssumeRoleWithWebIdentity", host, "not issued by a public certificate authority", "intercepts TLS"]
        {
            assert!(line.contains(needle), "{needle:?} missing from {line:?}");
        }
        // A reset mid-handshake is no verdict: "cannot verify" (81), not a misconfiguration.
        let reset = classify(
            CredentialSource::WebIdentity,
            &failed_for(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset))),
        );
        assert_eq!(reset.class(), Class::CannotVerify, "{reset}");
    }
}
