//! Where each client mpgate builds sends its calls, decided from the environment and the region:
//! the test flavour's override, else (release flavour) a VPC endpoint a service's own variable names
//! (`super::vpce`), else the SDK's resolver, with the dual-stack switch (docs/aws-behaviour.md §6.5,
//! §6.6). `check_endpoints` refuses at start what cannot be used (exit 82).
//! Must not: build clients (`super`) or read a profile.
#![forbid(unsafe_code)]

use super::{sts_lock, vpce};
use crate::platform::Env;

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
pub(super) fn endpoint_settings(
    env: &dyn Env,
    service: Service,
    region: &str,
) -> Result<(Option<String>, bool), String> {
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

/// The URL `$service`'s client sends to: the environment's (`endpoint_settings`) or the resolver of
/// SDK crate `$sdk`, dual-stack when switched on. A macro because each SDK crate generates its own
/// endpoint `Params` and `DefaultResolver` types.
macro_rules! resolved_endpoint {
    ($sdk:ident, $env:expr, $service:expr, $region:expr, $name:literal) => {{
        use $sdk::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let region: &str = $region;
        match endpoint_settings($env, $service, region)? {
            (Some(url), _) => Ok(url),
            (None, dual) => {
                let params = Params::builder()
                    .region(region)
                    .use_dual_stack(dual)
                    .build()
                    .map_err(|e| format!("endpoint parameters: {e}"))?;
                let endpoint = DefaultResolver::new().resolve_endpoint(&params).await.map_err(|e| {
                    format!("the AWS SDK has no {} endpoint for {region}{}: {e}", $name, dual_words(dual))
                })?;
                Ok(endpoint.url().to_string())
            }
        }
    }};
}

/// The URL the Metering client sends to: the environment's (`endpoint_url`) or the SDK's resolver,
/// dual-stack when switched on.
pub async fn metering_endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    resolved_endpoint!(aws_sdk_marketplacemetering, env, Service::Metering, region, "Metering")
}

/// The URL the License Manager client sends to, chosen as `metering_endpoint` chooses.
pub async fn license_manager_endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    resolved_endpoint!(aws_sdk_licensemanager, env, Service::LicenseManager, region, "License Manager")
}

/// The URL the STS clients send to, chosen as `metering_endpoint` chooses (`sts_lock::endpoint`).
pub(super) async fn sts_endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    resolved_endpoint!(aws_sdk_sts, env, Service::Sts, region, "STS")
}

/// " (dual-stack)" when it is, for the resolver's refusals.
pub(super) fn dual_words(dual: bool) -> &'static str {
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
    use crate::error::Class;
    use crate::platform::env::MapEnv;

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
