//! The STS endpoint of aws-config's own credential providers (IRSA's web identity provider, and a
//! profile's `role_arn` or `web_identity_token_file`), locked to the one mpgate chose.
//!
//! aws-config builds the STS client inside those providers from the process environment and the
//! profile files, with "ignore configured endpoints" hard-wired to false (`provider_config.rs`,
//! `client_config`): `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, a profile's `endpoint_url` and its
//! `services` section would choose where the web identity token goes, in plain HTTP if they say so,
//! and no public API stops that client from reading them. So those providers get an HTTP client that
//! lets a request through only to the STS endpoint mpgate chose (`endpoint`: the SDK's regional or
//! dual-stack endpoint, or the endpoint `super::endpoint_url` accepts, as for every client mpgate
//! builds), and fails any other before connecting with a `Redirected` error naming
//! both, which `credentials::classify` makes a final refusal (82).
//! Must not: read the environment itself (the caller's `Env` decides the test flavour's override).
#![forbid(unsafe_code)]

use crate::platform::Env;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::fmt;

/// The STS endpoint for `region`: the environment's (`super::endpoint_url`: the test flavour's
/// override, or in the release flavour a VPC endpoint of the region), else the SDK's own resolver
/// (the regional endpoint in the region's partition, dual-stack when switched on).
pub async fn endpoint(env: &dyn Env, region: &str) -> Result<String, String> {
    super::endpoints::sts_endpoint(env, region).await
}

/// `inner`, letting requests through only to `allowed`'s scheme, host and port.
pub fn only_to(inner: SharedHttpClient, allowed: String) -> SharedHttpClient {
    SharedHttpClient::new(StsOnly { inner, allowed })
}

/// A request refused because it was not going to the STS endpoint mpgate chose.
#[derive(Debug, Clone)]
pub struct Redirected {
    /// Scheme, host and port the request would have gone to.
    pub to: String,
    /// Scheme, host and port of the endpoint mpgate chose.
    pub allowed: String,
}

impl fmt::Display for Redirected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the STS request would have gone to {}, not to {}", self.to, self.allowed)
    }
}

impl std::error::Error for Redirected {}

/// The `Redirected` refusal in `e`'s source chain, if that is why it failed.
pub fn redirected<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Redirected> {
    // Bounded like the other chain walks: a chain is a handful of links.
    std::iter::successors(Some(e), |&e| e.source()).take(32).find_map(|e| e.downcast_ref::<Redirected>())
}

/// `scheme://host:port` of a URL, lower-cased, with the scheme's port when none is given: what two
/// URLs must share to reach the same server.
fn origin(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_ascii_lowercase();
    let has_port =
        authority.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && !authority.ends_with(']');
    match (scheme.as_str(), has_port) {
        ("https", false) => format!("https://{authority}:443"),
        ("http", false) => format!("http://{authority}:80"),
        _ => format!("{scheme}://{authority}"),
    }
}

#[derive(Debug)]
struct StsOnly {
    inner: SharedHttpClient,
    allowed: String,
}

impl HttpClient for StsOnly {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(Gate {
            inner: self.inner.http_connector(settings, components),
            allowed: origin(&self.allowed),
        })
    }
}

#[derive(Debug)]
struct Gate {
    inner: SharedHttpConnector,
    allowed: String,
}

impl HttpConnector for Gate {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let to = origin(request.uri());
        if to == self.allowed {
            return self.inner.call(request);
        }
        let refused = Redirected { to, allowed: self.allowed.clone() };
        HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(refused))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port_only() {
        assert_eq!(origin("https://sts.us-east-1.amazonaws.com"), "https://sts.us-east-1.amazonaws.com:443");
        assert_eq!(
            origin("https://STS.us-east-1.amazonaws.com:443/?Action=x"),
            "https://sts.us-east-1.amazonaws.com:443"
        );
        assert_eq!(origin("http://127.0.0.1:4567/"), "http://127.0.0.1:4567");
        assert_eq!(origin("http://[::1]/"), "http://[::1]:80");
        assert_ne!(origin("http://sts.us-east-1.amazonaws.com/"), origin("https://sts.us-east-1.amazonaws.com"));
        assert_ne!(
            origin("https://sts.us-east-1.amazonaws.com.evil.example/"),
            origin("https://sts.us-east-1.amazonaws.com")
        );
        assert_ne!(
            origin("https://sts.us-east-1.amazonaws.com@evil.example/"),
            origin("https://sts.us-east-1.amazonaws.com")
        );
    }

    #[test]
    fn the_regional_endpoint_is_the_sdks() {
        let env = crate::platform::env::MapEnv::default();
        let url = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(endpoint(&env, "eu-west-1"))
            .expect("resolved");
        assert_eq!(url, "https://sts.eu-west-1.amazonaws.com");
    }
}
