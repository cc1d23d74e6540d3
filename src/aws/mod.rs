//! Construction of everything that talks to AWS: the HTTP client with compiled-in trust roots, the
//! provider configuration for credential sources, the IMDS client, and the Metering and License Manager
//! clients with their endpoints locked.
//!
//! Release flavour: the Metering client is built by hand (never `From<&SdkConfig>`), so no profile and
//! no variable but the service's own `AWS_ENDPOINT_URL_*` can change its endpoint, and that one only to
//! the name of an interface VPC endpoint of the run's region (`endpoints`, `vpce`); otherwise the SDK resolves the
//! regional AWS endpoint, or its dual-stack one under `AWS_USE_DUALSTACK_ENDPOINT=true`. The STS
//! client aws-config builds inside the IRSA and profile providers does read them, so those providers
//! get an HTTP client that reaches only the STS endpoint mpgate chose (`sts_lock`). TLS trusts
//! only the compiled-in webpki roots, so `SSL_CERT_FILE`/`SSL_CERT_DIR` have no effect. Test flavour
//! (`flavour::endpoint_override`): honours any URL in `AWS_ENDPOINT_URL_MARKETPLACE_METERING` /
//! `AWS_ENDPOINT_URL_LICENSE_MANAGER` / `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`.
//! Egress proxy (`proxy`, `tunnel`): the Metering, License Manager and STS clients, and the STS
//! client inside the IRSA and profile providers, share an HTTP client that goes through the proxy
//! the environment names (`HTTPS_PROXY`, `ALL_PROXY`, minus `NO_PROXY`); the metadata clients (IMDS,
//! the ECS and Pod Identity credential endpoints) get one built without a proxy, so they cannot be
//! proxied whatever the environment says.
//! Must not: retry (the entitlement code owns the retry policy and its deadline) or decide an
//! endpoint itself (`endpoints` does).
#![forbid(unsafe_code)]

pub mod endpoints;
pub mod proxy;
pub mod sts_lock;
pub mod tls;
pub mod tunnel;
pub mod user_agent;
pub mod vpce;

use crate::platform::Env;
use aws_config::provider_config::ProviderConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use endpoints::endpoint_settings;
pub use endpoints::{
    check_endpoints, dual_stack, endpoint_host_port, endpoint_url, endpoint_via, license_manager_endpoint,
    metering_endpoint, Service, DUAL_STACK_VARIABLE,
};
use std::time::Duration;

/// Read by every generated SDK client (`endpoint_lib.rs` of aws-sdk-marketplacemetering,
/// -licensemanager, -sts) with `std::env::var` the first time a client is built, whatever endpoint
/// or resolver the client is configured with: a path to a partitions JSON that replaces the SDK's
/// compiled-in table, DNS suffixes included. Set, it would let the environment send the release
/// flavour's Metering and License Manager calls to `metering.marketplace.<region>.<any domain>`,
/// where a certificate for that domain passes TLS. RegisterUsage's signed answer would still fail
/// verification there, but MeterUsage's DryRun probe and CheckoutLicense's answer carry no
/// signature mpgate can check, and a path that does not exist makes the SDK panic. So mpgate
/// refuses to build any AWS client while it is set, blank or not (the SDK reads blank as a path).
pub const SDK_PARTITION_VARIABLE: &str = "SMITHY_CLIENT_SDK_CUSTOM_PARTITION";

/// One RegisterUsage attempt, including TLS and reading the answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// IMDS is a local service; hop limit 1 makes it hang, so give up fast. (Connect and read timeouts
/// are the shared connector's, see `tls`; the operation timeout bounds each IMDS request.)
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// The settings every hand-built client shares: region, the one HTTP client, SDK retries off (the
/// entitlement code owns retries and their deadline), a per-attempt timeout, the endpoint locked
/// in the release flavour (`endpoint_settings`), and a User-Agent the SDK can send (`user_agent`).
/// Endpoint settings the environment gets wrong leave a client whose every request fails with the
/// reason before connecting (`check_endpoints` refuses them at start, before any AWS call). A macro
/// because each SDK crate generates its own `Config::Builder` type.
macro_rules! locked_config {
    ($sdk:ident, $clients:expr, $env:expr, $region:expr, $service:expr) => {{
        let settings = endpoint_settings($env, $service, $region);
        let http = match &settings {
            Ok(_) => $clients.aws.clone(),
            Err(why) => refusing(why.clone()),
        };
        let (url, dual_stack) = settings.unwrap_or((None, false));
        let mut builder = $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new($region.to_string()))
            .http_client(http)
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(ATTEMPT_TIMEOUT).build());
        builder.set_endpoint_url(url);
        builder.set_use_dual_stack(Some(dual_stack));
        if let Some(plain) = &$clients.user_agent {
            builder.push_interceptor(plain.clone());
        }
        builder
    }};
}

/// Shared pieces every AWS client is built from.
pub struct Clients {
    /// Direct, never through a proxy: the metadata endpoints' (IMDS, ECS, Pod Identity).
    http: SharedHttpClient,
    /// The AWS APIs' (Metering, License Manager, STS): through the proxy when one is configured.
    aws: SharedHttpClient,
    proxy: proxy::Settings,
    /// Built on first use: on ECS and EKS neither the region nor the credentials come from IMDS.
    imds: std::sync::OnceLock<aws_config::imds::Client>,
    /// Set when `AWS_EXECUTION_ENV` cannot go into a header (`user_agent`).
    user_agent: Option<aws_smithy_runtime_api::client::interceptors::SharedInterceptor>,
}

impl Clients {
    /// Build the HTTP clients once per process. Refuses when `SMITHY_CLIENT_SDK_CUSTOM_PARTITION` is
    /// set (see `SDK_PARTITION_VARIABLE`): every AWS client mpgate builds is built from these; and
    /// when the proxy variables cannot be used (`proxy::Settings::from_env`).
    pub fn new(env: &dyn Env) -> Result<Self, crate::error::Error> {
        if env.is_set(SDK_PARTITION_VARIABLE) {
            return Err(crate::error::Error::UnsafeEnvironment(format!(
                "the environment sets {SDK_PARTITION_VARIABLE}, from which the AWS SDK would take the domain of every AWS endpoint (even in the release flavour), so mpgate cannot know where its entitlement check goes; unset it for this container (docs/security.md)"
            )));
        }
        let proxy = proxy::Settings::from_env(env)?;
        let http = tls::http_client(proxy::Settings::direct())?;
        let aws = match proxy.proxy() {
            Some(_) => tls::http_client(proxy.clone())?,
            None => http.clone(),
        };
        Ok(Clients {
            http,
            aws,
            proxy,
            imds: std::sync::OnceLock::new(),
            user_agent: user_agent::without_bad_execution_env(env),
        })
    }

    /// The proxy settings the AWS API clients use (`mpgate check` shows them).
    pub fn proxy(&self) -> &proxy::Settings {
        &self.proxy
    }

    /// Configuration for aws-config's metadata credential providers (ECS, Pod Identity, IMDS): its
    /// HTTP client never goes through a proxy.
    pub fn provider_config(&self, region: &str) -> ProviderConfig {
        ProviderConfig::without_region()
            .with_http_client(self.http.clone())
            .with_region(Some(Region::new(region.to_string())))
            .with_behavior_version(Some(BehaviorVersion::latest()))
    }

    /// `provider_config` for the providers that build their own STS client (IRSA, profiles): its
    /// HTTP client reaches STS only at the endpoint mpgate chose (`sts_lock`), whatever the
    /// environment or a profile names, through the proxy like every AWS API call.
    pub async fn sts_locked_provider_config(
        &self,
        env: &dyn Env,
        region: &str,
    ) -> Result<ProviderConfig, crate::error::Error> {
        let allowed = sts_lock::endpoint(env, region).await.map_err(crate::error::Error::UnsafeEnvironment)?;
        let dual_stack = dual_stack(env).map_err(crate::error::Error::UnsafeEnvironment)?;
        Ok(ProviderConfig::without_region()
            .with_http_client(sts_lock::only_to(self.aws.clone(), allowed))
            .with_use_dual_stack(Some(dual_stack))
            .with_region(Some(Region::new(region.to_string())))
            .with_behavior_version(Some(BehaviorVersion::latest())))
    }

    /// The IMDS client (short timeouts, a single attempt), built the first time it is asked for.
    pub fn imds(&self) -> aws_config::imds::Client {
        self.imds.get_or_init(|| self.build_imds()).clone()
    }

    fn build_imds(&self) -> aws_config::imds::Client {
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
    /// samples call it anonymously, docs/aws-behaviour.md §5.3). No credentials, endpoint locked as above.
    pub fn license_manager_unsigned(&self, env: &dyn Env, region: &str) -> aws_sdk_licensemanager::Client {
        let config = locked_config!(aws_sdk_licensemanager, self, env, region, Service::LicenseManager);
        aws_sdk_licensemanager::Client::from_conf(config.allow_no_auth().build())
    }

    /// A signed regional STS client for `GetCallerIdentity` (`mpgate check`: who the credentials
    /// are; it needs no IAM permission and bills nothing). Endpoint locked in the release flavour.
    pub fn sts(&self, env: &dyn Env, region: &str, credentials: Credentials) -> aws_sdk_sts::Client {
        let config = locked_config!(aws_sdk_sts, self, env, region, Service::Sts);
        aws_sdk_sts::Client::from_conf(config.credentials_provider(credentials).build())
    }

    /// An unsigned regional STS client for `AssumeRoleWithWebIdentity` (`smithy.api#noAuth`) with a
    /// License Manager access token. Endpoint locked in the release flavour.
    pub fn sts_unsigned(&self, env: &dyn Env, region: &str) -> aws_sdk_sts::Client {
        let config = locked_config!(aws_sdk_sts, self, env, region, Service::Sts);
        aws_sdk_sts::Client::from_conf(config.allow_no_auth().build())
    }
}

/// An HTTP client that fails every request before connecting, with `why`: the client of a service
/// whose endpoint settings were refused.
fn refusing(why: String) -> SharedHttpClient {
    SharedHttpClient::new(Refusing(why))
}

#[derive(Debug)]
struct Refusing(String);

impl aws_smithy_runtime_api::client::http::HttpClient for Refusing {
    fn http_connector(
        &self,
        _: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(RefusingConnector(self.0.clone()))
    }
}

#[derive(Debug)]
struct RefusingConnector(String);

impl aws_smithy_runtime_api::client::http::HttpConnector for RefusingConnector {
    fn call(
        &self,
        _: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let e = aws_smithy_runtime_api::client::result::ConnectorError::user(self.0.clone().into());
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Class, Error};
    use crate::platform::env::MapEnv;

    #[test]
    fn no_client_is_built_while_the_sdk_partition_variable_is_set_even_blank() {
        for value in ["/etc/partitions.json", "", "  "] {
            let env = MapEnv::from_pairs(&[(SDK_PARTITION_VARIABLE, value)]);
            match Clients::new(&env) {
                Err(e @ Error::UnsafeEnvironment(_)) => {
                    assert_eq!(e.class(), Class::Misconfigured);
                    assert!(
                        e.to_string()
                            .starts_with("misconfigured: the environment sets SMITHY_CLIENT_SDK_CUSTOM_PARTITION,"),
                        "{e}"
                    );
                }
                Err(e) => panic!("{value:?}: wrong refusal: {e}"),
                Ok(_) => panic!("{value:?}: clients built"),
            }
        }
        assert!(Clients::new(&MapEnv::from_pairs(&[("AWS_REGION", "us-east-1")])).is_ok());
    }
}
