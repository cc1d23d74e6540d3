//! The probes behind `mpgate check`, in the order the gate meets them. Each returns `Check`s and
//! never a secret: tokens are decoded for their audience and expiry only.
#![forbid(unsafe_code)]

use super::{Check, Status};
use crate::aws::Clients;
use crate::entitlement::{self, Deadline};
use crate::error::{Class, Error};
use crate::identity;
use crate::platform::{self, metadata, Env, FoundRegion};
use base64::Engine as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The service endpoint variables the release flavour reads, for an interface VPC endpoint's name only.
const VPC_ENDPOINT_VARS: &[&str] =
    &["AWS_ENDPOINT_URL_MARKETPLACE_METERING", "AWS_ENDPOINT_URL_LICENSE_MANAGER", "AWS_ENDPOINT_URL_STS"];
/// Endpoint overrides a buyer may set; the release flavour ignores them for Metering, but for a VPC
/// endpoint's name in `VPC_ENDPOINT_VARS`.
const OVERRIDE_VARS: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_MARKETPLACE_METERING",
    "AWS_ENDPOINT_URL_LICENSE_MANAGER",
    "AWS_ENDPOINT_URL_STS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "AWS_CA_BUNDLE",
    // Every AWS call is HTTPS, so only HTTPS_PROXY and ALL_PROXY count (the `proxy` row).
    "HTTP_PROXY",
    "http_proxy",
];

/// The baked identity, checked without any network (also `--offline`).
pub fn identity() -> Vec<Check> {
    let Ok(baked) = identity::baked() else {
        return vec![Check::new(
            "identity",
            Status::Fail,
            "no product identity baked into this binary; it refuses every start",
        )
        .fix("the seller must rebuild mpgate with MPGATE_PRODUCT_CODE, MPGATE_PRICING_MODEL and MPGATE_PUBLIC_KEYS")];
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for p in baked.products {
        for k in p.keys {
            use rsa::pkcs8::DecodePublicKey;
            if rsa::RsaPublicKey::from_public_key_der(k.der).is_err() {
                problems.push(format!("key version {} of {} does not parse", k.version, p.code));
            }
            if k.bits < 2048 {
                warnings.push(format!("key version {} of {} is only {} bits", k.version, p.code, k.bits));
            }
        }
    }
    let fingerprints: Vec<&str> = baked.products.iter().flat_map(|p| p.keys.iter().map(|k| k.sha256)).collect();
    if (1..fingerprints.len()).any(|i| fingerprints[..i].contains(&fingerprints[i])) {
        warnings.push("two baked keys are identical; AWS issues one key per product and version".into());
    }
    if baked.products.first().is_some_and(|p| p.tier == "free") {
        warnings.push("the default product code has tier free".into());
    }
    let listing = baked
        .products
        .iter()
        .map(|p| {
            format!("{} ({}, key versions {:?})", p.code, p.tier, p.keys.iter().map(|k| k.version).collect::<Vec<_>>())
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut summary = format!("{} pricing; {listing}", baked.pricing_model.as_str());
    if baked.pricing_model == identity::PricingModel::Contract {
        summary = format!("{summary}; {}", crate::license::seat_note(baked.entitlements));
    }
    if !problems.is_empty() {
        return vec![Check::new("identity", Status::Fail, format!("{summary}; {}", problems.join("; ")))
            .fix("the seller must rebuild the image with valid keys")];
    }
    if !warnings.is_empty() {
        return vec![Check::new("identity", Status::Warn, format!("{summary}; {}", warnings.join("; ")))];
    }
    vec![Check::new("identity", Status::Pass, summary)]
}

/// Which flavour this is.
/// `shipping` (`check --offline` without `--allow-test-flavour`, the seller's release check) makes
/// the test flavour a failure, so a pipeline that runs it cannot ship a test gate by mistake.
pub fn flavour(shipping: bool) -> Check {
    match crate::flavour::CHECK_FIX {
        Some(fix) if shipping => Check::new("flavour", Status::Fail, crate::flavour::CHECK_SUMMARY)
            .fix(format!("{fix}; for a test image, run check --offline --allow-test-flavour")),
        Some(fix) => Check::new("flavour", Status::Warn, crate::flavour::CHECK_SUMMARY).fix(fix),
        None => Check::new("flavour", Status::Pass, crate::flavour::CHECK_SUMMARY),
    }
}

/// Endpoint and CA variables present, and the proxy variables no AWS call uses.
pub fn overrides(env: &dyn Env) -> Check {
    if env.is_set(crate::aws::SDK_PARTITION_VARIABLE) {
        let var = crate::aws::SDK_PARTITION_VARIABLE;
        return Check::new(
            "overrides",
            Status::Fail,
            format!("{var} is set: the AWS SDK would read every AWS endpoint's domain from that file, so the gate refuses to call AWS at all"),
        )
        .fix(format!("unset {var} for this container (docs/security.md)"));
    }
    let set: Vec<&str> = OVERRIDE_VARS.iter().copied().filter(|v| env.get(v).is_some()).collect();
    if set.is_empty() {
        return Check::new("overrides", Status::Pass, "no endpoint or CA overrides set");
    }
    // The release flavour's one use of an endpoint variable: a service's, naming an interface VPC
    // endpoint. Set alone, they are a configuration, not a stray override; the endpoint row checks
    // the name against the run's region (any other value refuses the start with 82).
    if crate::flavour::NAME == "release" && set.iter().all(|v| VPC_ENDPOINT_VARS.contains(v)) {
        return Check::new(
            "overrides",
            Status::Pass,
            format!(
                "{} set: used only if it names an interface VPC endpoint of this service in the run's region (the endpoint row checks it; any other value refuses the start, exit 82)",
                set.join(", ")
            ),
        );
    }
    let sts = set.iter().any(|v| matches!(*v, "AWS_ENDPOINT_URL" | "AWS_ENDPOINT_URL_STS"));
    let effect = crate::flavour::OVERRIDE_EFFECT;
    let mut summary = format!("{} set: {effect}", set.join(", "));
    if sts {
        summary.push_str(if crate::flavour::NAME == "test" {
            "; IRSA's and a profile's STS calls go there too"
        } else {
            "; an IRSA or profile credential request that the SDK would send there is refused (exit 82; docs/security.md)"
        });
    }
    Check::new("overrides", Status::Warn, summary).fix(if crate::flavour::NAME == "test" {
        "unset them; they cannot help a shipped gate"
    } else {
        "unset every one of them except a service's AWS_ENDPOINT_URL_* naming an interface VPC endpoint (docs/operating.md, Private subnets)"
    })
}

/// Platform, region, credentials, IRSA token, IMDS, endpoint, entitlement.
pub async fn environment(env: &dyn Env, live: bool) -> Vec<Check> {
    let clients = match Clients::new(env) {
        Ok(c) => c,
        // Already a failed `overrides` row; probing would only repeat it.
        Err(Error::UnsafeEnvironment(_)) => {
            return vec![Check::new(
                "environment",
                Status::Skip,
                "not probed: the gate would refuse first (see overrides)",
            )]
        }
        Err(e @ Error::Proxy(_)) => return vec![Check::new("proxy", Status::Fail, e.to_string())],
        Err(e) => return vec![Check::new("http-client", Status::Fail, e.to_string())],
    };
    let imds = imds(env, &clients.imds()).await;
    let contract = super::contract::applies();
    let platform_check = super::contract::platform(env).filter(|_| contract);
    let mut checks = vec![platform_check.unwrap_or_else(|| platform(env, &imds))];
    checks.push(imds);
    let found = match super::contract::region(env).filter(|_| contract) {
        Some(r) => Ok(r),
        None => platform::region::find(env, Some(&clients)).await,
    };
    let region = match found {
        Ok(r) => {
            checks.push(Check::new("region", Status::Pass, format!("{} (from {})", r.name, r.source)));
            Some(r)
        }
        Err(e) => {
            checks.push(
                Check::new("region", Status::Fail, e.to_string())
                    .fix("set AWS_REGION to the region the task or pod runs in"),
            );
            None
        }
    };
    checks.push(irsa_token(env));
    let Some(region) = region else {
        for id in ["proxy", "credentials", "endpoint", "entitlement"] {
            checks.push(Check::new(id, Status::Skip, "needs a region"));
        }
        return checks;
    };
    let url = if contract {
        super::contract::endpoint_url(env, &region).await
    } else {
        crate::aws::metering_endpoint(env, &region.name).await
    };
    let sts = crate::aws::sts_lock::endpoint(env, &region.name).await;
    checks.push(proxy(clients.proxy(), [&url, &sts].into_iter().filter_map(|u| u.as_deref().ok())));
    let service = if contract { crate::aws::Service::LicenseManager } else { crate::aws::Service::Metering };
    if contract {
        checks.push(super::contract::credentials(env, &clients, &region).await);
    } else {
        checks.push(credentials(env, &clients, &region).await);
    }
    checks.push(named_by_the_environment(probe_endpoint(url, clients.proxy()).await, env, service));
    checks.push(entitlement(env, live).await);
    checks
}

fn platform(env: &dyn Env, imds: &Check) -> Check {
    let exec_env = env.get("AWS_EXECUTION_ENV").unwrap_or_default();
    let found = if exec_env == "AWS_ECS_FARGATE" {
        Some("ECS on Fargate (AWS_EXECUTION_ENV)".to_string())
    } else if exec_env == "AWS_ECS_EC2" {
        Some("ECS on EC2 (AWS_EXECUTION_ENV)".to_string())
    } else if env.get("ECS_CONTAINER_METADATA_URI_V4").is_some() {
        Some("ECS (ECS_CONTAINER_METADATA_URI_V4)".to_string())
    } else if env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").is_some_and(|f| f.ends_with("/eks-pod-identity-token"))
        || env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some_and(|u| u.contains("169.254.170.23"))
    {
        Some("EKS with Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI)".to_string())
    } else if env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env.get("AWS_ROLE_ARN").is_some() {
        Some("EKS with IRSA (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)".to_string())
    } else if env.get("KUBERNETES_SERVICE_HOST").is_some() {
        Some("Kubernetes (KUBERNETES_SERVICE_HOST)".to_string())
    } else {
        None
    };
    match found {
        Some(p) => Check::new("platform", Status::Pass, p),
        None if imds.status == Status::Pass => {
            Check::new("platform", Status::Fail, "an EC2 instance, not an ECS task or EKS pod")
                .fix("AWS Marketplace container products run on ECS or EKS (PlatformNotSupportedException elsewhere)")
        }
        None => Check::new("platform", Status::Fail, "not ECS, EKS or EC2 (no ECS, Kubernetes or IRSA variables)")
            .fix("run the image on ECS or EKS; locally AWS answers PlatformNotSupportedException"),
    }
}

async fn imds(env: &dyn Env, client: &aws_config::imds::Client) -> Check {
    if env.get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Check::new("imds", Status::Skip, "disabled by AWS_EC2_METADATA_DISABLED");
    }
    match client.get("/latest/meta-data/placement/region").await {
        Ok(_) => Check::new("imds", Status::Pass, "IMDSv2 answers (token and placement/region)"),
        Err(e) => {
            let text = crate::error::causes(&e);
            if text.contains("timeout") || text.contains("timed out") {
                Check::new("imds", Status::Warn, "IMDSv2 token request timed out: the hop-limit-1 symptom inside a container")
                    .fix("harmless if AWS_REGION is set and credentials come from IRSA or the ECS task role; otherwise raise HttpPutResponseHopLimit to 2")
            } else {
                Check::new("imds", Status::Skip, format!("no instance metadata service: {text}"))
            }
        }
    }
}

fn irsa_token(env: &dyn Env) -> Check {
    let Some(path) = env.get("AWS_WEB_IDENTITY_TOKEN_FILE") else {
        return Check::new("irsa-token", Status::Skip, "AWS_WEB_IDENTITY_TOKEN_FILE not set (not IRSA)");
    };
    let uid = nix::unistd::getuid();
    if let Some(unreadable) = platform::credentials::token_unreadable(&path) {
        return Check::new("irsa-token", Status::Fail, unreadable).fix(platform::credentials::TOKEN_FILE_FIX);
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Check::new("irsa-token", Status::Fail, format!("{path} could not be read: {e}")),
    };
    let claims = text
        .trim()
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(claims) = claims else {
        return Check::new("irsa-token", Status::Fail, format!("{path} is readable by uid {uid} but is not a JWT"))
            .fix("mount the projected service-account token the EKS pod identity webhook configures");
    };
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == "sts.amazonaws.com",
        serde_json::Value::Array(a) => a.iter().any(|v| v == "sts.amazonaws.com"),
        _ => false,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let exp = claims["exp"].as_u64().unwrap_or(0);
    let sub = claims["sub"].as_str().unwrap_or("?");
    let summary = format!(
        "{path} readable by uid {uid}; subject {sub}; audience ok: {aud_ok}; expires in {}s",
        exp.saturating_sub(now)
    );
    if exp <= now {
        Check::new("irsa-token", Status::Fail, summary)
            .fix("the token has expired: the kubelet refreshes it; check the projected volume")
    } else if !aud_ok {
        Check::new("irsa-token", Status::Warn, summary).fix("IRSA tokens have audience sts.amazonaws.com")
    } else {
        Check::new("irsa-token", Status::Pass, summary)
    }
}

async fn credentials(env: &dyn Env, clients: &Clients, region: &FoundRegion) -> Check {
    match platform::credentials::load(env, clients, &region.name).await {
        Ok(c) if c.source.marketplace_accepts() => Check::new(
            "credentials",
            Status::Pass,
            format!("from {}{}", c.source, caller(env, clients, &region.name, &c).await),
        )
        .via(CALLER_METHOD),
        Ok(c) => {
            Check::new("credentials", Status::Fail, format!("from {}, which AWS Marketplace does not accept", c.source))
                .fix(c.source.advice())
        }
        Err(e) if e.class() == Class::CannotVerify => Check::new("credentials", Status::Unknown, e.to_string()),
        Err(e) => Check::new("credentials", Status::Fail, e.to_string()),
    }
}

/// How each AWS host the gate calls (`urls`: the entitlement endpoint and STS) is reached: through
/// the proxy, named without its credentials, or directly and why.
fn proxy<'a>(settings: &crate::aws::proxy::Settings, urls: impl Iterator<Item = &'a str>) -> Check {
    use crate::aws::proxy::Route;
    const METADATA: &str = "the metadata endpoints (IMDS, ECS, Pod Identity) are always reached directly";
    let Some(proxy) = settings.proxy() else {
        return Check::new(
            "proxy",
            Status::Pass,
            format!("none configured (HTTPS_PROXY, ALL_PROXY unset): AWS hosts are reached directly; {METADATA}"),
        );
    };
    let mut routes = Vec::new();
    for url in urls {
        let Ok(uri) = url.parse::<hyper::Uri>() else { continue };
        let at = crate::aws::tls::Endpoint::of(&uri);
        let way = match settings.route(&at.host, at.port) {
            Route::Via(_) => format!("through {proxy}"),
            Route::Exempted(entry) => format!("directly (NO_PROXY entry {entry})"),
            Route::Direct => "directly".to_string(),
        };
        // In the test flavour one emulator may serve both hosts: one line for one route.
        let line = format!("{at} {way}");
        if !routes.contains(&line) {
            routes.push(line);
        }
    }
    let credentials =
        if proxy.has_credentials() { "; the proxy gets a user name and password (not shown)" } else { "" };
    Check::new("proxy", Status::Pass, format!("{}{credentials}; {METADATA}", routes.join("; ")))
}

/// The endpoint row, saying in its method where the URL came from when the environment named it.
fn named_by_the_environment(check: Check, env: &dyn Env, service: crate::aws::Service) -> Check {
    match crate::aws::endpoint_via(env, service) {
        Some(via) => {
            let method = format!("{}; {via}", check.method);
            check.via(method)
        }
        None => check,
    }
}

/// DNS, TLS and the clock of the endpoint at `url` (Metering, or License Manager for contract
/// builds), reached through the proxy as the gate's calls are (`route`).
async fn probe_endpoint(url: Result<String, String>, route: &crate::aws::proxy::Settings) -> Check {
    let url = match url {
        Ok(u) => u,
        Err(e) => return Check::new("endpoint", Status::Fail, e),
    };
    match metadata::fetch(&url, Duration::from_secs(5), route).await {
        Err(e) if e.contains("no answer") => Check::new("endpoint", Status::Unknown, e),
        // rustls's wording for a certificate verdict: worded as the refusal `mpgate exec` gives at once.
        Err(e) if e.contains("invalid peer certificate") => {
            let host = platform::reach::host(&url).unwrap_or_else(|| url.clone());
            Check::new("endpoint", Status::Fail, format!("{url}: {e}")).fix(format!(
                "the TLS certificate presented for {host} did not verify: something between this container and AWS intercepts TLS (a proxy or firewall), or {host} resolves to a server that is not AWS; let {host} through without TLS interception (TLS trusts only the Mozilla roots compiled into mpgate, never SSL_CERT_FILE or AWS_CA_BUNDLE)"
            ))
        }
        Err(e) => {
            let target = url.parse::<hyper::Uri>().ok().map(|u| crate::aws::tls::Endpoint::of(&u));
            let fix = match target.as_ref().and_then(|t| Some((t, crate::aws::tunnel::via(route, t)?))) {
                Some((target, proxy)) => format!(
                    "the endpoint is reached through the proxy {proxy}: make sure it runs at that address and allows CONNECT to {target}, or exempt the host with NO_PROXY (docs/operating.md, \"Behind an HTTP proxy\")"
                ),
                None => "allow DNS and HTTPS (443) egress to the endpoint; TLS trusts only the public roots compiled into mpgate".to_string(),
            };
            Check::new("endpoint", Status::Fail, format!("{url}: {e}")).fix(fix)
        }
        Ok(answer) => {
            let skew = answer.date.as_deref().and_then(|d| httpdate::parse_http_date(d).ok()).map(|t| {
                match t.duration_since(SystemTime::now()) {
                    Ok(ahead) => ahead.as_secs() as i64,
                    Err(behind) => -(behind.duration().as_secs() as i64),
                }
            });
            let layers = if url.starts_with("https://") { "DNS, TLS with the compiled-in roots" } else { "plain HTTP" };
            let via = url
                .parse::<hyper::Uri>()
                .ok()
                .and_then(|u| crate::aws::tunnel::via(route, &crate::aws::tls::Endpoint::of(&u)))
                .map(|p| format!(" through the proxy {p}"))
                .unwrap_or_default();
            let layers = format!("{layers}{via}");
            let base = format!("{url} reachable ({layers}; HTTP {})", answer.status);
            let drift = |s: i64| {
                if s > 0 {
                    format!("local clock is {s}s behind the endpoint's")
                } else {
                    format!("local clock is {}s ahead of the endpoint's", -s)
                }
            };
            match skew {
                None => Check::new("endpoint", Status::Warn, format!("{base}; no Date header to compare clocks")),
                Some(s) if s.abs() > 300 => Check::new("endpoint", Status::Fail, format!("{base}; {}", drift(s)))
                    .fix("synchronise the node's clock: AWS rejects signatures more than 5 minutes off"),
                Some(s) if s.abs() > 60 => Check::new("endpoint", Status::Warn, format!("{base}; {}", drift(s))),
                Some(s) => Check::new("endpoint", Status::Pass, format!("{base}; clock within {}s", s.abs())),
            }
        }
    }
}

async fn entitlement(env: &dyn Env, live: bool) -> Check {
    if super::metering::applies() {
        return super::metering::entitlement(env).await;
    }
    if !live {
        return not_verified(env);
    }
    let method = if super::contract::applies() {
        "CheckoutLicense, GetLicense, CheckInLicense (--live: a seat is held for a moment, nothing is billed)"
    } else {
        "RegisterUsage (--live: starts hourly metering for this task or pod)"
    };
    live_entitlement(env).await.via(method)
}

async fn live_entitlement(env: &dyn Env) -> Check {
    let selection = env.get("MPGATE_PRODUCT_CODE");
    let deadline =
        env.get("MPGATE_DEADLINE").and_then(|d| crate::cli::parse_duration(&d).ok()).unwrap_or(Duration::from_secs(30));
    match entitlement::prove(env, selection.as_deref(), &Deadline::new(deadline)).await {
        Ok(e) if e.licensed().is_some() => {
            // Contract: a probe must not keep a seat (a 1-seat contract would lock the next start out).
            let returned = match crate::license::Lease::of(&e, env) {
                Some(mut lease) => lease.check_in(crate::license::CHECK_IN_BUDGET).await,
                None => Ok(()),
            };
            let allowed =
                e.licensed().map(|l| l.entitlements.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "));
            let summary =
                format!("CheckoutLicense admitted product {} with {}", e.product_code(), allowed.unwrap_or_default());
            match returned {
                Ok(()) => Check::new("entitlement", Status::Pass, format!("{summary}; seat checked in again")),
                Err(why) => Check::new(
                    "entitlement",
                    Status::Warn,
                    format!("{summary}; the seat could not be checked in ({why})"),
                )
                .fix("License Manager returns the seat when the checkout expires (60 minutes)"),
            }
        }
        Ok(e) => Check::new(
            "entitlement",
            Status::Pass,
            match e.registration() {
                Some(r) => format!(
                    "RegisterUsage admitted product {} (tier {}), key version {}",
                    e.product_code(),
                    e.tier(),
                    r.key_version
                ),
                None => format!("MeterUsage dry runs admitted product {} (tier {})", e.product_code(), e.tier()),
            },
        ),
        Err(e) if e.class() == Class::CannotVerify => Check::new("entitlement", Status::Unknown, e.to_string()),
        Err(e) => Check::new("entitlement", Status::Fail, e.to_string()),
    }
}

/// The entitlement row without `--live` for the models whose only proof bills or holds something:
/// what stays unknown, and what `--live` costs.
fn not_verified(env: &dyn Env) -> Check {
    let code = identity::baked()
        .ok()
        .and_then(|b| b.select(env.get("MPGATE_PRODUCT_CODE").as_deref()).ok())
        .map_or("?", |p| p.code);
    let summary = if super::contract::applies() {
        format!(
            "not verified: the contract for product {code} and the role's license-manager:CheckoutLicense permission; --live checks a seat out and in again at once (CheckoutLicense, GetLicense, CheckInLicense): nothing is billed, but a seat is held for that moment, so on a contract whose seats are all in use it is refused or briefly blocks another start"
        )
    } else {
        format!(
            "not verified: the subscription to product {code} and the role's aws-marketplace:RegisterUsage permission; --live calls RegisterUsage once, which starts hourly metering for this task or pod (billed per task or pod, prorated to the second with a one-minute minimum; in a pod or task that already runs the gate it adds nothing: docs/aws-behaviour.md)"
        )
    };
    Check::new("entitlement", Status::Skip, summary)
        .fix("run mpgate check --live in the task or pod, or start the image: exit 80 is not subscribed, 82 names the missing permission")
        .unverified()
}

/// How the `credentials` row is found when credentials load.
pub(super) const CALLER_METHOD: &str =
    "the gate's credential chain, then sts:GetCallerIdentity (needs no IAM permission, bills nothing)";

/// Who the credentials are, from STS `GetCallerIdentity` (no permission needed, nothing billed): the
/// role ARN and the account; when STS cannot be asked, what the credentials say of themselves.
pub(super) async fn caller(
    env: &dyn Env,
    clients: &Clients,
    region: &str,
    c: &platform::credentials::LoadedCredentials,
) -> String {
    let sts = clients.sts(env, region, c.credentials.clone());
    let asked = tokio::time::timeout(Duration::from_secs(5), sts.get_caller_identity().send()).await;
    match asked {
        Ok(Ok(who)) => {
            format!("; GetCallerIdentity: {}, AWS account {}", who.arn().unwrap_or("?"), who.account().unwrap_or("?"))
        }
        Ok(Err(e)) => format!(
            "{} (GetCallerIdentity failed: {})",
            principal(env, c),
            crate::error::one_line(&crate::error::causes(&e))
        ),
        Err(_) => format!("{} (GetCallerIdentity did not answer within 5s)", principal(env, c)),
    }
}

/// The role and account the credentials act as, as far as they say so themselves (no further call):
/// the account from STS's AssumedRoleUser ARN or the container endpoint's `AccountId`, the role from
/// `AWS_ROLE_ARN` when STS assumed it.
pub(super) fn principal(env: &dyn Env, c: &platform::credentials::LoadedCredentials) -> String {
    use platform::CredentialSource as S;
    let role = env.get("AWS_ROLE_ARN").filter(|_| matches!(c.source, S::WebIdentity | S::LicenseToken));
    match (role, c.credentials.account_id()) {
        (Some(r), Some(a)) => format!("; role {r}, AWS account {}", a.as_str()),
        (Some(r), None) => format!("; role {r}"),
        (None, Some(a)) => format!("; AWS account {}", a.as_str()),
        (None, None) => "; the credentials do not name their AWS account".to_string(),
    }
}
