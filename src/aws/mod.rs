//! Construction of everything that talks to AWS: the HTTP client with compiled-in trust roots, the
//! provider configuration for credential sources, the IMDS client, and the Metering and License Manager
//! clients with their endpoints locked.
//!
//! Release flavour: the Metering client is built by hand (never `From<&SdkConfig>`), so no profile and
//! no variable but the service's own `AWS_ENDPOINT_URL_*` can change its endpoint, and that one only to
//! the name of an interface VPC endpoint of the run's region (`vpce`); otherwise the SDK resolves the
//! regional AWS endpoint, or its dual-stack one under `AWS_USE_DUALSTACK_ENDPOINT=true`. The STS
//! client aws-config builds inside the IRSA and profile providers does read them, so those providers
//! get an HTTP client that reaches only the STS endpoint mpgate chose (`sts_lock`). TLS trusts
//! only the compiled-in webpki roots, so `SSL_CERT_FILE`/`SSL_CERT_DIR` have no effect. Test flavour
//! (`flavour::endpoint_override`): additionally honours `AWS_ENDPOINT_URL_MARKETPLACE_METERING` /
//! `AWS_ENDPOINT_URL_LICENSE_MANAGER` / `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`.
//! Must not: retry (the entitlement code owns the retry policy and its deadline) or decide anything.
#![forbid(unsafe_code)]

pub mod sts_lock;
pub mod tls;
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
            Ok(_) => $clients.http.clone(),
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
    http: SharedHttpClient,
    /// Built on first use: on ECS and EKS neither the region nor the credentials come from IMDS.
    imds: std::sync::OnceLock<aws_config::imds::Client>,
    /// Set when `AWS_EXECUTION_ENV` cannot go into a header (`user_agent`).
    user_agent: Option<aws_smithy_runtime_api::client::interceptors::SharedInterceptor>,
}

impl Clients {
    /// Build the HTTP client once per process. Refuses when `SMITHY_CLIENT_SDK_CUSTOM_PARTITION` is
    /// set (see `SDK_PARTITION_VARIABLE`): every AWS client mpgate builds is built from these.
    pub fn new(env: &dyn Env) -> Result<Self, crate::error::Error> {
        if env.is_set(SDK_PARTITION_VARIABLE) {
            return Err(crate::error::Error::UnsafeEnvironment(format!(
                "the environment sets {SDK_PARTITION_VARIABLE}, from which the AWS SDK would take the domain of every AWS endpoint (even in the release flavour), so mpgate cannot know where its entitlement check goes; unset it for this container (docs/security.md)"
            )));
        }
        Ok(Clients {
            http: tls::http_client()?,
            imds: std::sync::OnceLock::new(),
            user_agent: user_agent::without_bad_execution_env(env),
        })
    }

    /// Configuration for aws-config's credential providers (STS for IRSA, ECS, IMDS).
    pub fn provider_config(&self, region: &str) -> ProviderConfig {
        ProviderConfig::without_region()
            .with_http_client(self.http.clone())
            .with_region(Some(Region::new(region.to_string())))
            .with_behavior_version(Some(BehaviorVersion::latest()))
    }

    /// `provider_config` for the providers that build their own STS client (IRSA, profiles): its
    /// HTTP client reaches STS only at the endpoint mpgate chose (`sts_lock`), whatever the
    /// environment or a profile names.
    pub async fn sts_locked_provider_config(
        &self,
        env: &dyn Env,
        region: &str,
    ) -> Result<ProviderConfig, crate::error::Error> {
        let allowed = sts_lock::endpoint(env, region).await.map_err(crate::error::Error::UnsafeEnvironment)?;
        let dual_stack = dual_stack(env).map_err(crate::error::Error::UnsafeEnvironment)?;
        Ok(ProviderConfig::without_region()
            .with_http_client(sts_lock::only_to(self.http.clone(), allowed))
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

/// The services mpgate builds clients for by hand, each with its service-specific endpoint variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Metering,
    LicenseManager,
    Sts,
}

impl Service {
    /// The SDKs' variable for this service's endpoint (docs/aws-behaviour.md §6.3).
    pub fn endpoint_variable(self) -> &'static str {
        match self {
            Service::Metering => "AWS_ENDPOINT_URL_MARKETPLACE_METERING",
            Service::LicenseManager => "AWS_ENDPOINT_URL_LICENSE_MANAGER",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
        }
    }

    /// The service's segment in its VPC endpoint names.
    fn vpce_segment(self) -> &'static str {
        match self {
            Service::Metering => vpce::METERING,
            Service::LicenseManager => vpce::LICENSE_MANAGER,
            Service::Sts => vpce::STS,
        }
    }
}

/// The SDKs' switch to dual-stack endpoints (docs/aws-behaviour.md §6.5).
pub const DUAL_STACK_VARIABLE: &str = "AWS_USE_DUALSTACK_ENDPOINT";

/// Whether the clients use the SDK's dual-stack endpoints: `AWS_USE_DUALSTACK_ENDPOINT` `true` or
/// `false` in any case, as the SDKs read it; unset or blank is false. A profile's
/// `use_dualstack_endpoint` is not read: mpgate takes no endpoint setting from a profile.
pub fn dual_stack(env: &dyn Env) -> Result<bool, String> {
    match env.get(DUAL_STACK_VARIABLE) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(format!("{DUAL_STACK_VARIABLE}={v:?} is neither true nor false; set it to true for the dual-stack AWS endpoints, or unset it")),
    }
}

/// The endpoint the environment names for `service`, if any: in the test flavour whatever
/// `flavour::endpoint_override` honours; in the release flavour the service's own variable, only
/// when it names a VPC endpoint of `service` in `region` (`vpce`), and a refusal naming the
/// variable and the rule when it is set to anything else. `AWS_ENDPOINT_URL` is never read here
/// in the release flavour.
pub fn endpoint_url(env: &dyn Env, service: Service, region: &str) -> Result<Option<String>, String> {
    if let Some(url) = crate::flavour::endpoint_override(env, service.endpoint_variable()) {
        return Ok(Some(url));
    }
    let var = service.endpoint_variable();
    let Some(value) = env.get(var) else { return Ok(None) };
    let Some((partition, _)) = crate::platform::partition::of(region) else {
        return Err(format!("{var}={value:?} is not used: the region {region:?} is of no AWS partition"));
    };
    vpce::check(&value, service.vpce_segment(), region, partition).map(Some).map_err(|why| {
        format!(
            "{var}={value:?} is not used: {why}; the release flavour accepts there only the DNS name of an interface VPC endpoint of this region, so set it to the endpoint's regional DNS name from the VPC console, or unset it (docs/operating.md, Private subnets)"
        )
    })
}

/// The endpoint URL (if the environment names one) and the dual-stack switch for `service`'s client
/// in `region`; a refusal when they cannot both hold: the SDK's endpoint rules refuse a custom
/// endpoint together with dual-stack ("Dualstack and custom endpoint are not supported").
fn endpoint_settings(env: &dyn Env, service: Service, region: &str) -> Result<(Option<String>, bool), String> {
    let url = endpoint_url(env, service, region)?;
    let dual = dual_stack(env)?;
    if dual && url.is_some() {
        return Err(format!(
            "{DUAL_STACK_VARIABLE}=true and {} are both set, and AWS's endpoint rules refuse a dual-stack switch with a named endpoint; unset one of them (docs/configuration.md)",
            service.endpoint_variable()
        ));
    }
    Ok((url, dual))
}

/// Refuse, before any AWS call, endpoint settings that cannot be used in `region` (a service
/// variable that names no VPC endpoint of the region, dual-stack with a named endpoint, a dual-stack
/// switch that is neither true nor false, a region the SDK's endpoint rules do not resolve): the
/// operator set them and must hear they were not used. Exit 82.
pub async fn check_endpoints(env: &dyn Env, region: &str) -> Result<(), crate::error::Error> {
    for service in [Service::Metering, Service::LicenseManager, Service::Sts] {
        endpoint_settings(env, service, region).map_err(crate::error::Error::UnsafeEnvironment)?;
    }
    metering_endpoint(env, region).await.map_err(crate::error::Error::UnsafeEnvironment)?;
    license_manager_endpoint(env, region).await.map_err(crate::error::Error::UnsafeEnvironment)?;
    sts_lock::endpoint(env, region).await.map_err(crate::error::Error::UnsafeEnvironment)?;
    Ok(())
}

/// What `mpgate check`'s endpoint row says about where its URL came from, when the environment named it.
pub fn endpoint_via(env: &dyn Env, service: Service) -> Option<String> {
    let var = service.endpoint_variable();
    match (crate::flavour::NAME, env.get(var)) {
        ("release", Some(_)) => Some(format!("VPC endpoint (from {var})")),
        (_, Some(_)) => Some(format!("endpoint override (from {var})")),
        _ => None,
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

/// The URL the Metering client sends to: the environment's (`endpoint_url`) or the SDK's resolver,
/// dual-stack when switched on.
pub async fn metering_endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    use aws_sdk_marketplacemetering::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let (url, dual) = endpoint_settings(env, Service::Metering, region)?;
    if let Some(url) = url {
        return Ok(url);
    }
    let params = Params::builder()
        .region(region)
        .use_dual_stack(dual)
        .build()
        .map_err(|e| format!("endpoint parameters: {e}"))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| format!("the AWS SDK has no Metering endpoint for {region}{}: {e}", dual_words(dual)))?;
    Ok(endpoint.url().to_string())
}

/// The URL the License Manager client sends to, chosen as `metering_endpoint` chooses.
pub async fn license_manager_endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    use aws_sdk_licensemanager::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let (url, dual) = endpoint_settings(env, Service::LicenseManager, region)?;
    if let Some(url) = url {
        return Ok(url);
    }
    let params = Params::builder()
        .region(region)
        .use_dual_stack(dual)
        .build()
        .map_err(|e| format!("endpoint parameters: {e}"))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| format!("the AWS SDK has no License Manager endpoint for {region}{}: {e}", dual_words(dual)))?;
    Ok(endpoint.url().to_string())
}

/// " (dual-stack)" when it is, for the resolver's refusals.
fn dual_words(dual: bool) -> &'static str {
    if dual {
        " with AWS_USE_DUALSTACK_ENDPOINT=true"
    } else {
        ""
    }
}

/// `host:port` of the endpoint `service`'s client calls in `region`, for refusal lines; `None` when
/// the settings are refused.
pub fn endpoint_host_port(env: &dyn Env, service: Service, region: &str) -> Option<String> {
    let resolved = match service {
        Service::Metering => now(metering_endpoint(env, region)),
        Service::LicenseManager => now(license_manager_endpoint(env, region)),
        Service::Sts => now(sts_lock::endpoint(env, region)),
    };
    crate::platform::reach::host_port(&resolved.ok()?)
}

/// The value of a future that is ready at once (the SDK's endpoint resolvers compute, never wait).
fn now<T>(f: impl std::future::Future<Output = Result<String, T>>) -> Result<String, ()> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(Ok(url)) => Ok(url),
        _ => Err(()),
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

    /// The hosts the SDK resolves, as mpgate builds its clients, in each partition where AWS
    /// Marketplace runs; `mpgate check` shows the Metering (or, for contract builds, License
    /// Manager) one. With no endpoint variable set both flavours resolve them.
    #[test]
    fn every_partition_resolves_its_own_hosts() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let env = MapEnv::default();
        for (region, metering, license_manager, sts) in [
            (
                "us-east-1",
                "https://metering.marketplace.us-east-1.amazonaws.com",
                "https://license-manager.us-east-1.amazonaws.com",
                "https://sts.us-east-1.amazonaws.com",
            ),
            (
                "cn-northwest-1",
                "https://metering.marketplace.cn-northwest-1.amazonaws.com.cn",
                "https://license-manager.cn-northwest-1.amazonaws.com.cn",
                "https://sts.cn-northwest-1.amazonaws.com.cn",
            ),
            (
                "cn-north-1",
                "https://metering.marketplace.cn-north-1.amazonaws.com.cn",
                "https://license-manager.cn-north-1.amazonaws.com.cn",
                "https://sts.cn-north-1.amazonaws.com.cn",
            ),
            (
                "us-gov-west-1",
                "https://metering.marketplace.us-gov-west-1.amazonaws.com",
                "https://license-manager.us-gov-west-1.amazonaws.com",
                "https://sts.us-gov-west-1.amazonaws.com",
            ),
            (
                "us-gov-east-1",
                "https://metering.marketplace.us-gov-east-1.amazonaws.com",
                "https://license-manager.us-gov-east-1.amazonaws.com",
                "https://sts.us-gov-east-1.amazonaws.com",
            ),
            (
                "eusc-de-east-1",
                // The rule set spells the eusc host with a hyphen (its `aws-eusc` branch).
                "https://metering-marketplace.eusc-de-east-1.amazonaws.eu",
                "https://license-manager.eusc-de-east-1.amazonaws.eu",
                "https://sts.eusc-de-east-1.amazonaws.eu",
            ),
        ] {
            assert_eq!(rt.block_on(metering_endpoint(&env, region)).as_deref(), Ok(metering), "{region}");
            assert_eq!(rt.block_on(license_manager_endpoint(&env, region)).as_deref(), Ok(license_manager), "{region}");
            assert_eq!(rt.block_on(sts_lock::endpoint(&env, region)).as_deref(), Ok(sts), "{region}");
        }
    }

    /// With `AWS_USE_DUALSTACK_ENDPOINT=true` every client, and the STS endpoint the credential
    /// providers may reach, resolve to the SDK's dual-stack names: every partition of the SDK's
    /// table supports dual-stack, each under its own dual-stack suffix.
    #[test]
    fn dual_stack_resolves_each_partitions_dual_stack_hosts() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for value in ["true", "TRUE", "True"] {
            let env = MapEnv::from_pairs(&[(DUAL_STACK_VARIABLE, value)]);
            for (region, metering, license_manager, sts) in [
                (
                    "us-east-1",
                    "https://metering-marketplace.us-east-1.api.aws",
                    "https://license-manager.us-east-1.api.aws",
                    "https://sts.us-east-1.api.aws",
                ),
                (
                    "cn-northwest-1",
                    "https://metering-marketplace.cn-northwest-1.api.amazonwebservices.com.cn",
                    "https://license-manager.cn-northwest-1.api.amazonwebservices.com.cn",
                    "https://sts.cn-northwest-1.api.amazonwebservices.com.cn",
                ),
                (
                    "us-gov-west-1",
                    "https://metering-marketplace.us-gov-west-1.api.aws",
                    "https://license-manager.us-gov-west-1.api.aws",
                    "https://sts.us-gov-west-1.api.aws",
                ),
                (
                    "eusc-de-east-1",
                    // The rule set's `aws-eusc` branch: hyphen on the default name, dot on the dual-stack one.
                    "https://metering.marketplace.eusc-de-east-1.api.amazonwebservices.eu",
                    "https://license-manager.eusc-de-east-1.api.amazonwebservices.eu",
                    "https://sts.eusc-de-east-1.api.amazonwebservices.eu",
                ),
            ] {
                assert_eq!(rt.block_on(metering_endpoint(&env, region)).as_deref(), Ok(metering), "{region}");
                let lm = rt.block_on(license_manager_endpoint(&env, region));
                assert_eq!(lm.as_deref(), Ok(license_manager), "{region}");
                assert_eq!(rt.block_on(sts_lock::endpoint(&env, region)).as_deref(), Ok(sts), "{region}");
                assert!(rt.block_on(check_endpoints(&env, region)).is_ok(), "{region}");
            }
        }
        let off = MapEnv::from_pairs(&[(DUAL_STACK_VARIABLE, "false")]);
        let url = rt.block_on(metering_endpoint(&off, "us-east-1"));
        assert_eq!(url.as_deref(), Ok("https://metering.marketplace.us-east-1.amazonaws.com"));
    }

    #[test]
    fn a_dual_stack_switch_neither_true_nor_false_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for value in ["yes", "1", "true "] {
            let env = MapEnv::from_pairs(&[(DUAL_STACK_VARIABLE, value)]);
            let e = rt.block_on(check_endpoints(&env, "us-east-1")).expect_err("refused");
            assert_eq!(e.class(), Class::Misconfigured);
            assert!(
                e.to_string().contains(&format!("AWS_USE_DUALSTACK_ENDPOINT={value:?} is neither true nor false")),
                "{e}"
            );
        }
    }

    const METERING_VPCE: &str =
        "https://vpce-0a1b2c3d4e5f60718-abcd1234.metering.marketplace.us-east-1.vpce.amazonaws.com";

    /// A VPC endpoint's name is what both flavours' Metering, License Manager and STS clients call.
    #[test]
    fn a_vpc_endpoint_name_is_each_services_endpoint() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let lm = "https://vpce-0a1b2c3d4e5f60718-abcd1234-us-east-1c.license-manager.us-east-1.vpce.amazonaws.com";
        let sts = "https://vpce-0a1b2c3d4e5f60718-abcd1234.sts.us-east-1.vpce.amazonaws.com";
        let env = MapEnv::from_pairs(&[
            ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", &format!("{METERING_VPCE}/")),
            ("AWS_ENDPOINT_URL_LICENSE_MANAGER", lm),
            ("AWS_ENDPOINT_URL_STS", sts),
        ]);
        let metering = rt.block_on(metering_endpoint(&env, "us-east-1")).expect("accepted");
        let canonical =
            if crate::flavour::NAME == "release" { METERING_VPCE.to_string() } else { format!("{METERING_VPCE}/") };
        assert_eq!(metering, canonical);
        assert_eq!(rt.block_on(license_manager_endpoint(&env, "us-east-1")).as_deref(), Ok(lm));
        assert_eq!(rt.block_on(sts_lock::endpoint(&env, "us-east-1")).as_deref(), Ok(sts));
        assert!(rt.block_on(check_endpoints(&env, "us-east-1")).is_ok());
        let via = endpoint_via(&env, Service::Metering).expect("via");
        assert!(via.ends_with("(from AWS_ENDPOINT_URL_MARKETPLACE_METERING)"), "{via}");
        assert_eq!(endpoint_via(&MapEnv::default(), Service::Metering), None);
    }

    /// In the release flavour a service variable that names anything but a VPC endpoint of the
    /// region is refused with 82 naming the variable; `AWS_ENDPOINT_URL` stays ignored.
    /// (The test flavour honours any of them: its check is that it does.)
    #[test]
    fn the_release_flavour_refuses_a_service_variable_naming_no_vpc_endpoint() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for (var, value) in [
            ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http://127.0.0.1:4567"),
            (
                "AWS_ENDPOINT_URL_MARKETPLACE_METERING",
                "https://metering.marketplace.us-east-1.amazonaws.com.evil.example",
            ),
            ("AWS_ENDPOINT_URL_LICENSE_MANAGER", METERING_VPCE),
            ("AWS_ENDPOINT_URL_STS", "https://vpce-0a1b2c3d4e5f60718-abcd1234.sts.us-west-2.vpce.amazonaws.com"),
        ] {
            let env = MapEnv::from_pairs(&[(var, value)]);
            if crate::flavour::NAME == "test" {
                assert_eq!(rt.block_on(check_endpoints(&env, "us-east-1")).ok(), Some(()), "{var}={value}");
                continue;
            }
            let e = rt.block_on(check_endpoints(&env, "us-east-1")).expect_err("refused");
            assert_eq!(e.class(), Class::Misconfigured);
            assert!(e.to_string().starts_with(&format!("misconfigured: {var}={value:?} is not used: ")), "{e}");
        }
        let generic = MapEnv::from_pairs(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:4567")]);
        assert!(rt.block_on(check_endpoints(&generic, "us-east-1")).is_ok());
        if crate::flavour::NAME == "test" {
            return;
        }
        let url = rt.block_on(metering_endpoint(&generic, "us-east-1"));
        assert_eq!(url.as_deref(), Ok("https://metering.marketplace.us-east-1.amazonaws.com"));
    }

    /// Dual-stack and a named endpoint: the SDK's rules refuse the pair, and so does mpgate, at start.
    #[test]
    fn dual_stack_with_a_named_endpoint_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let env = MapEnv::from_pairs(&[
            (DUAL_STACK_VARIABLE, "true"),
            ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", METERING_VPCE),
        ]);
        let e = rt.block_on(check_endpoints(&env, "us-east-1")).expect_err("refused");
        assert_eq!(e.class(), Class::Misconfigured);
        assert!(
            e.to_string()
                .contains("AWS_USE_DUALSTACK_ENDPOINT=true and AWS_ENDPOINT_URL_MARKETPLACE_METERING are both set"),
            "{e}"
        );
    }
}
