//! STS over the AWS Query protocol (aws-wire.md §5.4): `AssumeRoleWithWebIdentity` for IRSA
//! (unsigned; the token is the proof) and `GetCallerIdentity` (signed) as a smoke-test aid.

use crate::proto::{sts_error, sts_ok, xml_escape, Outcome};
use crate::server::Incoming;
use crate::state::{Principal, PrincipalKind, Shared};
use crate::world::CredentialKind;
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
        _ => sts_error(400, "InvalidAction", &format!("Could not find operation {op} for version 2011-06-15")),
    }
}

fn assume_role_with_web_identity(shared: &Shared, form: &HashMap<String, String>) -> Outcome {
    let (Some(role_arn), Some(session), Some(token)) =
        (form.get("RoleArn"), form.get("RoleSessionName"), form.get("WebIdentityToken"))
    else {
        return sts_error(400, "ValidationError", "RoleArn, RoleSessionName and WebIdentityToken are required");
    };
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
    let cred = shared.issue(Principal {
        account: w.account.clone(),
        workload: w.id.clone(),
        kind: PrincipalKind::Irsa,
        region: w.region.clone(),
    });
    let expiration = crate::clock::rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let assumed_arn = format!("arn:aws:sts::{}:assumed-role/{role_name}/{session}", w.account);
    let subject = format!("system:serviceaccount:{}:{}", crate::sa_token::NAMESPACE, w.id);
    let provider = format!(
        "arn:aws:iam::{}:oidc-provider/oidc.eks.{}.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF",
        w.account, w.region
    );
    let body = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{NS}\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{expiration}</Expiration></Credentials><SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>{}</Arn><AssumedRoleId>AROA{}:{}</AssumedRoleId></AssumedRoleUser><Provider>{}</Provider><Audience>sts.amazonaws.com</Audience></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>",
        cred.access_key_id,
        xml_escape(&cred.secret),
        xml_escape(cred.session_token.as_deref().unwrap_or_default()),
        xml_escape(&subject),
        xml_escape(&assumed_arn),
        crate::state::random_upper(17),
        xml_escape(session),
        xml_escape(&provider),
        crate::state::request_id(),
    );
    sts_ok(body).workload(Some(&w.id))
}
