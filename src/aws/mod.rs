//! Construction of everything that talks to AWS: the HTTP client with compiled-in trust roots, the
//! provider configuration for credential sources, the IMDS client, and the Metering and License Manager
//! clients with their endpoints locked.
//!
//! Release flavour: the Metering client is built by hand (never `From<&SdkConfig>`), so no environment
//! variable or profile can change its endpoint; the SDK resolves the regional AWS endpoint. TLS trusts
//! only the compiled-in webpki roots, so `SSL_CERT_FILE`/`SSL_CERT_DIR` have no effect. Test flavour:
//! additionally honours `AWS_ENDPOINT_URL_MARKETPLACE_METERING` / `AWS_ENDPOINT_URL_LICENSE_MANAGER` /
//! `AWS_ENDPOINT_URL`.
//! Must not: retry (the entitlement code owns the retry policy and its deadline) or decide anything.
#![forbid(unsafe_code)]

pub mod tls;

use crate::platform::Env;
use aws_config::provider_config::ProviderConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use std::time::Duration;

/// One RegisterUsage attempt, including TLS and reading the answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// IMDS is a local service; hop limit 1 makes it hang, so give up fast. (Connect and read timeouts
/// are the shared connector's, see `tls`; the operation timeout bounds each IMDS request.)
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// The settings every hand-built client shares: region, the one HTTP client, SDK retries off (the
/// entitlement code owns retries and their deadline), a per-attempt timeout, and the endpoint locked
/// in the release flavour. A macro because each SDK crate generates its own `Config::Builder` type.
macro_rules! locked_config {
    ($sdk:ident, $clients:expr, $env:expr, $region:expr, $service:expr) => {{
        let mut builder = $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new($region.to_string()))
            .http_client($clients.http.clone())
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(ATTEMPT_TIMEOUT).build());
        builder.set_endpoint_url(endpoint_override($env, $service));
        builder
    }};
}

/// Shared pieces every AWS client is built from.
pub struct Clients {
    http: SharedHttpClient,
}

impl Clients {
    /// Build the HTTP client once per process.
    pub fn new() -> Result<Self, crate::error::Error> {
        Ok(Clients { http: tls::http_client()? })
    }

    /// Configuration for aws-config's credential providers (STS for IRSA, ECS, IMDS).
    pub fn provider_config(&self, region: &str) -> ProviderConfig {
        ProviderConfig::without_region()
            .with_http_client(self.http.clone())
            .with_region(Some(Region::new(region.to_string())))
            .with_behavior_version(Some(BehaviorVersion::latest()))
    }

    /// An IMDS client with short timeouts and a single attempt.
    pub fn imds(&self) -> aws_config::imds::Client {
        aws_config::imds::Client::builder()
            .configure(&ProviderConfig::without_region().with_http_client(self.http.clone()))
            .max_attempts(1)
            .connect_timeout(IMDS_TIMEOUT)
            .read_timeout(IMDS_TIMEOUT)
            .operation_timeout(IMDS_TIMEOUT * 2)
            .build()
    }

    /// The Marketplace Metering client for `region`, signing with `credentials`, with SDK retries off.
    pub fn metering(
        &self,
        env: &dyn Env,
        region: &str,
        credentials: Credentials,
    ) -> aws_sdk_marketplacemetering::Client {
        let config = locked_config!(aws_sdk_marketplacemetering, self, env, region, Service::Metering);
        aws_sdk_marketplacemetering::Client::from_conf(config.credentials_provider(credentials).build())
    }

    /// The License Manager client for `region` (contract pricing), built like the Metering one: by hand,
    /// endpoint locked in the release flavour, SDK retries off (the contract code retries, including
    /// `RateLimitExceededException`, which the SDK would not).
    pub fn license_manager(
        &self,
        env: &dyn Env,
        region: &str,
        credentials: impl ProvideCredentials + 'static,
    ) -> aws_sdk_licensemanager::Client {
        let config = locked_config!(aws_sdk_licensemanager, self, env, region, Service::LicenseManager);
        aws_sdk_licensemanager::Client::from_conf(config.credentials_provider(credentials).build())
    }

    /// An unsigned License Manager client for `GetAccessToken` (Containers Anywhere: both AWS
    /// samples call it anonymously, aws-wire.md §5.3). No credentials, endpoint locked as above.
    pub fn license_manager_unsigned(&self, env: &dyn Env, region: &str) -> aws_sdk_licensemanager::Client {
        let config = locked_config!(aws_sdk_licensemanager, self, env, region, Service::LicenseManager);
        aws_sdk_licensemanager::Client::from_conf(config.allow_no_auth().build())
    }

    /// An unsigned regional STS client for `AssumeRoleWithWebIdentity` (`smithy.api#noAuth`) with a
    /// License Manager access token. Endpoint locked in the release flavour.
    pub fn sts_unsigned(&self, env: &dyn Env, region: &str) -> aws_sdk_sts::Client {
        let config = locked_config!(aws_sdk_sts, self, env, region, Service::Sts);
        aws_sdk_sts::Client::from_conf(config.allow_no_auth().build())
    }
}

/// The services mpgate builds clients for by hand, each with its service-specific endpoint variable
/// (honoured by the test flavour only).
#[derive(Clone, Copy)]
enum Service {
    Metering,
    LicenseManager,
    Sts,
}

impl Service {
    #[cfg_attr(not(feature = "insecure-test-endpoints"), allow(dead_code))]
    fn endpoint_variable(self) -> &'static str {
        match self {
            Service::Metering => "AWS_ENDPOINT_URL_MARKETPLACE_METERING",
            Service::LicenseManager => "AWS_ENDPOINT_URL_LICENSE_MANAGER",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
        }
    }
}

/// The release flavour never overrides an endpoint, whatever the environment says.
#[cfg(not(feature = "insecure-test-endpoints"))]
fn endpoint_override(_env: &dyn Env, _service: Service) -> Option<String> {
    None
}

/// The test flavour honours the standard SDK variables, so it can be pointed at the emulator.
#[cfg(feature = "insecure-test-endpoints")]
fn endpoint_override(env: &dyn Env, service: Service) -> Option<String> {
    env.get(service.endpoint_variable()).or_else(|| env.get("AWS_ENDPOINT_URL"))
}

/// The URL the Metering client sends to: the override (test flavour only) or the SDK's resolver.
pub async fn metering_endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    use aws_sdk_marketplacemetering::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    if let Some(url) = endpoint_override(env, Service::Metering) {
        return Ok(url);
    }
    let params = Params::builder().region(region).build().map_err(|e| format!("endpoint parameters: {e}"))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| format!("no Metering endpoint for {region}: {e}"))?;
    Ok(endpoint.url().to_string())
}

/// The URL the License Manager client sends to: the override (test flavour only) or the SDK's resolver.
pub async fn license_manager_endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    use aws_sdk_licensemanager::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    if let Some(url) = endpoint_override(env, Service::LicenseManager) {
        return Ok(url);
    }
    let params = Params::builder().region(region).build().map_err(|e| format!("endpoint parameters: {e}"))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| format!("no License Manager endpoint for {region}: {e}"))?;
    Ok(endpoint.url().to_string())
}
