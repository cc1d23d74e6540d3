//! Where a credential source goes on the network, for the step a start-up deadline names while that
//! source is still loading ("loading credentials from the ECS task role at 169.254.170.2:80 did not
//! finish"). Read from the variables the providers themselves read: the container endpoint's URI, the
//! IMDS endpoint and mode; for STS and License Manager, the endpoint mpgate's clients call
//! (`aws::endpoint_host_port`: a VPC endpoint, the dual-stack or the regional AWS name).
//! Must not: be used to connect (each provider resolves its own endpoint).
#![forbid(unsafe_code)]

use super::{CredentialSource, Env};

/// `host:port` the source's provider calls, or `None` when it reads only local files or variables,
/// or is not configured (no container URI, no web identity token file).
pub fn endpoint(source: CredentialSource, env: &dyn Env, region: &str) -> Option<String> {
    match source {
        CredentialSource::EnvStaticKeys | CredentialSource::EnvSession | CredentialSource::Profile => None,
        CredentialSource::EcsTaskRole | CredentialSource::PodIdentity | CredentialSource::ContainerEndpoint => {
            match env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
                // aws-config prefers the relative URI, which is always on the ECS agent's address.
                Some(_) => Some("169.254.170.2:80".to_string()),
                None => env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").and_then(|u| host_port(&u)),
            }
        }
        CredentialSource::InstanceRole => Some(match env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(url) => host_port(&url)?,
            None if env
                .get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
                .is_some_and(|m| m.eq_ignore_ascii_case("ipv6")) =>
            {
                "[fd00:ec2::254]:80".to_string()
            }
            None => "169.254.169.254:80".to_string(),
        }),
        CredentialSource::WebIdentity => {
            env.get("AWS_WEB_IDENTITY_TOKEN_FILE")?;
            // The endpoint `aws::sts_lock` lets the provider reach: any other is refused at once.
            crate::aws::endpoint_host_port(env, crate::aws::Service::Sts, region)
        }
        CredentialSource::LicenseToken => {
            crate::aws::endpoint_host_port(env, crate::aws::Service::LicenseManager, region)
        }
    }
}

/// The host of an `http://` or `https://` URL as a refusal line names it: an IPv6 literal keeps its
/// brackets (`[fd00::1]`), so that it reads as one address and not as a host and a port.
pub fn host(url: &str) -> Option<String> {
    let hp = host_port(url)?;
    hp.rsplit_once(':').map(|(h, _)| h.to_string())
}

/// `host:port` of an `http://` or `https://` URL (the scheme's port when none is given); `None` for
/// anything else.
pub fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    Some(if has_port { authority.to_string() } else { format!("{authority}:{default}") })
}

#[cfg(test)]
mod tests {
    use super::{endpoint, host, host_port};
    use crate::platform::env::MapEnv;
    use crate::platform::CredentialSource;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:9/v2/credentials/x").as_deref(), Some("127.0.0.1:9"));
        assert_eq!(host_port("https://sts.example.com").as_deref(), Some("sts.example.com:443"));
        assert_eq!(host_port("http://[fd00:ec2::23]/v1/credentials").as_deref(), Some("[fd00:ec2::23]:80"));
        assert_eq!(host("https://[fd00::1]:8443/").as_deref(), Some("[fd00::1]"));
        assert_eq!(host("https://[fd00::1]/").as_deref(), Some("[fd00::1]"));
        assert_eq!(
            host("https://metering.marketplace.us-east-1.amazonaws.com").as_deref(),
            Some("metering.marketplace.us-east-1.amazonaws.com")
        );
        assert_eq!(host_port("http://user:secret@host:8080/x").as_deref(), Some("host:8080"), "no userinfo");
        assert_eq!(host_port("ftp://host/x"), None);
        assert_eq!(host_port("not a url"), None);
        assert_eq!(host_port("http:///x"), None);
    }

    #[test]
    fn each_source_names_where_it_goes() {
        let env = |pairs: &[(&str, &str)]| MapEnv::from_pairs(pairs);
        let at = |s, e: &MapEnv| endpoint(s, e, "eu-west-1");
        let ecs = env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")]);
        assert_eq!(at(CredentialSource::EcsTaskRole, &ecs).as_deref(), Some("169.254.170.2:80"));
        let pod = env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials")]);
        assert_eq!(at(CredentialSource::PodIdentity, &pod).as_deref(), Some("169.254.170.23:80"));
        assert_eq!(at(CredentialSource::InstanceRole, &env(&[])).as_deref(), Some("169.254.169.254:80"));
        let v6 = env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")]);
        assert_eq!(at(CredentialSource::InstanceRole, &v6).as_deref(), Some("[fd00:ec2::254]:80"));
        assert_eq!(at(CredentialSource::WebIdentity, &env(&[])), None, "no token file: not configured");
        let irsa = env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token")]);
        assert_eq!(at(CredentialSource::WebIdentity, &irsa).as_deref(), Some("sts.eu-west-1.amazonaws.com:443"));
        let sts = env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ENDPOINT_URL_STS", "https://sts.internal:8443")]);
        // The release flavour refuses a variable that names no VPC endpoint at start (82).
        let overridden = if crate::flavour::NAME == "test" { Some("sts.internal:8443") } else { None };
        assert_eq!(at(CredentialSource::WebIdentity, &sts).as_deref(), overridden);
        let vpce = "vpce-0123456789abcdef0-abcd.sts.eu-west-1.vpce.amazonaws.com";
        let private =
            env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ENDPOINT_URL_STS", &format!("https://{vpce}"))]);
        assert_eq!(at(CredentialSource::WebIdentity, &private), Some(format!("{vpce}:443")));
        let dual = env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_USE_DUALSTACK_ENDPOINT", "true")]);
        assert_eq!(at(CredentialSource::WebIdentity, &dual).as_deref(), Some("sts.eu-west-1.api.aws:443"));
        let china = endpoint(CredentialSource::LicenseToken, &env(&[]), "cn-northwest-1");
        assert_eq!(china.as_deref(), Some("license-manager.cn-northwest-1.amazonaws.com.cn:443"));
        assert_eq!(at(CredentialSource::EnvStaticKeys, &env(&[])), None);
    }
}
