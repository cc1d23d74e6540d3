//! STS over the AWS Query protocol (docs/aws-behaviour.md §5.4): `AssumeRoleWithWebIdentity` (unsigned;
//! the token is the proof) for IRSA service-account tokens and for License Manager access tokens,
//! each against the role the workload's situation trusts; `GetCallerIdentity` (signed; no IAM
//! permission is needed, so it never answers AccessDenied) naming the account and the assumed-role
//! ARN of the credentials that signed it.

use crate::model::world::CredentialKind;
use crate::state::{Principal, PrincipalKind, Shared};
use crate::wire::proto::{sts_error, sts_ok, xml_escape, Outcome};
use crate::wire::request::Incoming;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The `Action` of a Query-protocol body, if it is one.
pub fn action(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == "Action").map(|(_, v)| v.into_owned())
}

pub fn handle(shared: &Shared, op: &str, req: &Incoming) -> Outcome {
    let form: HashMap<String, String> = form_urlencoded::parse(&req.body).into_owned().collect();
    match op {
        "AssumeRoleWithWebIdentity" => assume_role_with_web_identity(shared, &form),
        "GetCallerIdentity" => get_caller_identity(shared, req),
        _ => sts_error(400, "InvalidAction", &format!("Could not find operation {op} for version 2011-06-15")),
    }
}

fn assume_role_with_web_identity(shared: &Shared, form: &HashMap<String, String>) -> Outcome {
    let (Some(role_arn), Some(session), Some(token)) =
        (form.get("RoleArn"), form.get("RoleSessionName"), form.get("WebIdentityToken"))
    else {
        return sts_error(400, "ValidationError", "RoleArn, RoleSessionName and WebIdentityToken are required");
    };
    // BC-STS: RoleSessionName 2–64 characters of [\w+=,.@-].
    let session_ok = (2..=64).contains(&session.len())
        && session.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !session_ok {
        let m = format!("1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*");
        return sts_error(400, "ValidationError", &m);
    }
    if let Some(o) = license_token_role(shared, role_arn, session, token) {
        return o;
    }
    let owner = shared.world.workloads.iter().find(|w| {
        matches!(w.credential, CredentialKind::Irsa { .. })
            && shared.setup.get(&w.id).and_then(|s| s.irsa_token.as_deref()) == Some(token.as_str())
    });
    let Some(w) = owner else {
        return sts_error(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements");
    };
    let CredentialKind::Irsa { role_arn: allowed } = &w.credential else {
        return sts_error(400, "InvalidIdentityToken", "token is not a service-account token");
    };
    if allowed != role_arn {
        return sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
            .workload(Some(&w.id));
    }
    let subject = format!("system:serviceaccount:{}:{}", crate::wire::tokens::NAMESPACE, w.id);
    let provider = format!(
        "arn:aws:iam::{}:oidc-provider/oidc.eks.{}.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF",
        w.account, w.region
    );
    let who = Assumed { w, kind: PrincipalKind::Irsa, subject, provider, audience: "sts.amazonaws.com".into() };
    answer(shared, &who, role_arn, session)
}

/// The Containers Anywhere path (docs/aws-behaviour.md §5.3 step 3): a GetAccessToken access token for the
/// role created with the refresh token (trust: `openid-license-manager.amazonaws.com`).
fn license_token_role(shared: &Shared, role_arn: &str, session: &str, token: &str) -> Option<Outcome> {
    let (workload, exp) = shared.lock().lm_access_tokens.get(token).cloned()?;
    let w = shared.world.workload(&workload)?;
    let CredentialKind::LicenseToken { role_arn: allowed, license_arn } = &w.credential else {
        return None;
    };
    if crate::model::clock::unix_secs(shared.now()) >= exp {
        return Some(
            sts_error(400, "ExpiredTokenException", "Token expired: current date/time is after the exp claim")
                .workload(Some(&w.id)),
        );
    }
    if allowed != role_arn {
        return Some(
            sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
                .workload(Some(&w.id)),
        );
    }
    let who = Assumed {
        w,
        kind: PrincipalKind::LicenseToken,
        subject: format!("arn:aws:iam::{}:root", w.account),
        provider: "openid-license-manager.amazonaws.com".into(),
        audience: license_arn.clone(),
    };
    Some(answer(shared, &who, role_arn, session))
}

struct Assumed<'a> {
    w: &'a crate::model::world::Workload,
    kind: PrincipalKind,
    subject: String,
    provider: String,
    audience: String,
}

fn answer(shared: &Shared, who: &Assumed, role_arn: &str, session: &str) -> Outcome {
    let w = who.w;
    let cred = shared.issue(Principal {
        account: w.account.clone(),
        workload: w.id.clone(),
        kind: who.kind,
        region: w.region.clone(),
    });
    let lifetime = shared.lock().session_lifetime.unwrap_or(Duration::from_secs(3600));
    let expires = SystemTime::now() + lifetime;
    shared.lock().cred_expiry.insert(cred.access_key_id.clone(), expires);
    let expiration = crate::model::clock::rfc3339(expires);
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let assumed_arn = format!("arn:aws:sts::{}:assumed-role/{role_name}/{session}", w.account);
    let (subject, provider) = (&who.subject, &who.provider);
    let body = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{NS}\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{expiration}</Expiration></Credentials><SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>{}</Arn><AssumedRoleId>AROA{}:{}</AssumedRoleId></AssumedRoleUser><Provider>{}</Provider><Audience>{}</Audience></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>",
        cred.access_key_id,
        xml_escape(&cred.secret),
        xml_escape(cred.session_token.as_deref().unwrap_or_default()),
        xml_escape(subject),
        xml_escape(&assumed_arn),
        crate::wire::ids::random_upper(17),
        xml_escape(session),
        xml_escape(provider),
        xml_escape(&who.audience),
        crate::wire::ids::request_id(),
    );
    sts_ok(body).workload(Some(&w.id))
}

/// `GetCallerIdentity` (botocore `GetCallerIdentityResponse`: `UserId`, `Account`, `Arn`). The
/// signature is checked as every signed call's; its refusals keep their codes in STS's XML shape.
fn get_caller_identity(shared: &Shared, req: &Incoming) -> Outcome {
    let caller = match crate::services::auth::authenticate(shared, req, "sts") {
        Ok(c) => c,
        Err(refused) => {
            // The same refusals under STS's own codes (STS API Reference, "Common Errors").
            let code = match refused.error_code.as_deref() {
                Some("InvalidSignatureException") => "SignatureDoesNotMatch",
                Some("ExpiredTokenException") => "ExpiredToken",
                Some("MissingAuthenticationTokenException") => "MissingAuthenticationToken",
                Some("IncompleteSignatureException") => "IncompleteSignature",
                _ => "InvalidClientTokenId",
            };
            let message = serde_json::from_str::<serde_json::Value>(&refused.body)
                .ok()
                .and_then(|v| v["message"].as_str().map(String::from))
                .unwrap_or_default();
            return sts_error(refused.status, code, &message);
        }
    };
    let p = &caller.cred.principal;
    let w = shared.world.workload(&p.workload);
    let role = match (w.map(|w| &w.credential), p.kind) {
        (Some(CredentialKind::Irsa { role_arn }), PrincipalKind::Irsa) => {
            role_arn.rsplit('/').next().unwrap_or("irsa").to_string()
        }
        (_, PrincipalKind::EcsTaskRole) => format!("{}-task-role", p.workload),
        (_, PrincipalKind::PodIdentity) => format!("{}-pod-role", p.workload),
        (Some(CredentialKind::InstanceRole { role }), _) => role.clone(),
        (_, PrincipalKind::StaticKeys) => String::new(),
        _ => format!("{}-role", p.workload),
    };
    let arn = if role.is_empty() {
        format!("arn:aws:iam::{}:user/{}", p.account, p.workload)
    } else {
        format!("arn:aws:sts::{}:assumed-role/{role}/{}", p.account, p.workload)
    };
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"{NS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>AROA{}:{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        xml_escape(&arn),
        crate::wire::ids::random_upper(17),
        xml_escape(&p.workload),
        xml_escape(&p.account),
        crate::wire::ids::request_id(),
    );
    sts_ok(body).workload(Some(&p.workload))
}
