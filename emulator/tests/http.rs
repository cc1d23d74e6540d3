//! Raw-HTTP tests against a running emulator: what a client on the wire sees.

use mpgate_emulator::{keys, Emulator, Fault, TokenMutation, World};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use std::time::Duration;

mod common;
use common::{call, call_query, ecs_creds, env_of, get, send, Creds, Reply};

/// RegisterUsage signed for `region` (our own signer; the boto3 conformance suite covers an independent one).
fn register(emu: &Emulator, c: &Creds, region: &str, body: &str) -> Reply {
    call(emu, c, region, "aws-marketplace", "AWSMPMeteringService.RegisterUsage", body)
}

const PAID_V1: &str = r#"{"ProductCode":"8f3kq2demopaid0mpgate01","PublicKeyVersion":1,"Nonce":"abc"}"#;

#[test]
fn unsigned_register_usage_is_rejected_and_recorded() {
    let emu = Emulator::start(World::demo()).expect("start");
    let r = send(
        &emu.url(),
        "POST",
        "/",
        &[("x-amz-target", "AWSMPMeteringService.RegisterUsage"), ("content-type", "application/x-amz-json-1.1")],
        PAID_V1,
        Duration::from_secs(5),
    )
    .expect("answer");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "MissingAuthenticationTokenException");
    assert!(r.header("x-amzn-RequestId").is_some());
    let led = emu.requests();
    assert_eq!(led.len(), 1);
    assert_eq!(led[0].op, "RegisterUsage");
    assert_eq!(led[0].error_code.as_deref(), Some("MissingAuthenticationTokenException"));
    assert!(emu.registrations().is_empty());
}

#[test]
fn ecs_task_registers_and_gets_a_verifiable_signature() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    assert!(c.akid.starts_with("ASIA"));
    let r = register(&emu, &c, "us-east-1", PAID_V1);
    assert_eq!(r.status, 200, "{}", r.body);
    let sig = r.json()["Signature"].as_str().expect("sig").to_string();
    let p: Vec<&str> = sig.split('.').collect();
    let key = rsa::RsaPublicKey::from_public_key_pem(keys::PAID_V1_PUB).expect("key");
    let vk = rsa::pss::VerifyingKey::<sha2::Sha256>::new(key);
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p[2]).expect("b64");
    let s = rsa::pss::Signature::try_from(raw.as_slice()).expect("sig");
    assert!(vk.verify(format!("{}.{}", p[0], p[1]).as_bytes(), &s).is_ok());
    assert_eq!(emu.registrations().len(), 1);
    assert_eq!(emu.registrations()[0].nonce.as_deref(), Some("abc"));
    let last = emu.requests().pop().expect("recorded");
    assert_eq!(last.workload.as_deref(), Some("ecs-task"));
    assert_eq!(last.signing_region.as_deref(), Some("us-east-1"));

    // Wrong secret → InvalidSignatureException; missing session token → UnrecognizedClient.
    let bad = Creds { secret: "nope".into(), ..ecs_creds(&emu, "ecs-task") };
    assert_eq!(register(&emu, &bad, "us-east-1", PAID_V1).json()["__type"], "InvalidSignatureException");
    let no_token = Creds { token: None, ..ecs_creds(&emu, "ecs-task") };
    assert_eq!(register(&emu, &no_token, "us-east-1", PAID_V1).json()["__type"], "UnrecognizedClientException");
    // Faults: throttle once, then a token mutation.
    emu.inject("RegisterUsage", Fault::Throttle);
    emu.inject("RegisterUsage", Fault::Token(TokenMutation::NotAJwt));
    assert_eq!(register(&emu, &c, "us-east-1", PAID_V1).json()["__type"], "ThrottlingException");
    assert_eq!(register(&emu, &c, "us-east-1", PAID_V1).json()["Signature"], "x");
}

#[test]
fn the_situation_decides_the_error() {
    let emu = Emulator::start(World::demo()).expect("start");
    let code = |id: &str, region: &str, body: &str| {
        register(&emu, &ecs_creds(&emu, id), region, body).json()["__type"].clone()
    };
    assert_eq!(code("unsubscribed-task", "us-east-1", PAID_V1), "CustomerNotEntitledException");
    assert_eq!(code("eu-task", "us-east-1", PAID_V1), "InvalidRegionException");
    assert_eq!(
        code("ecs-task", "us-east-1", r#"{"ProductCode":"nope","PublicKeyVersion":1}"#),
        "InvalidProductCodeException"
    );
    assert_eq!(
        code("ecs-task", "us-east-1", r#"{"ProductCode":"8f3kq2demopaid0mpgate01","PublicKeyVersion":3}"#),
        "InvalidPublicKeyVersionException"
    );
    assert_eq!(code("ecs-task", "us-east-1", r#"{"PublicKeyVersion":1}"#), "ValidationException");
    assert_eq!(code("ecs-task", "us-east-1", "not json"), "SerializationException");
    // Long-term keys on a laptop.
    let dir = tempfile::tempdir().expect("tmp");
    let env = env_of(&emu, "laptop", dir.path());
    let laptop =
        Creds { akid: env["AWS_ACCESS_KEY_ID"].clone(), secret: env["AWS_SECRET_ACCESS_KEY"].clone(), token: None };
    assert_eq!(register(&emu, &laptop, "us-east-1", PAID_V1).json()["__type"], "PlatformNotSupportedException");
}

#[test]
fn imds_token_put_carries_the_ttl_header() {
    let emu = Emulator::start(World::demo()).expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let env = env_of(&emu, "ec2-instance", dir.path());
    let imds = env["AWS_EC2_METADATA_SERVICE_ENDPOINT"].clone();
    assert!(!env.contains_key("AWS_REGION"));
    let r = send(
        &imds,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
        "",
        Duration::from_secs(5),
    )
    .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-aws-ec2-metadata-token-ttl-seconds"), Some("21600"));
    let token = r.body.clone();
    assert_eq!(get(&imds, "/latest/meta-data/placement/region", &[]).status, 401);
    let t = [("x-aws-ec2-metadata-token", token.as_str())];
    assert_eq!(get(&imds, "/latest/meta-data/placement/region", &t).body, "us-east-1");
    assert_eq!(get(&imds, "/latest/meta-data/iam/security-credentials/", &t).body, "ec2-role");
    let c = get(&imds, "/latest/meta-data/iam/security-credentials/ec2-role", &t).json();
    assert_eq!(c["Code"], "Success");
    assert!(c["AccessKeyId"].as_str().expect("id").starts_with("ASIA"));

    // Hop limit 1: the PUT never answers.
    let env = env_of(&emu, "eks-irsa", dir.path());
    let hop1 = &env["AWS_EC2_METADATA_SERVICE_ENDPOINT"];
    assert!(send(
        hop1,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
        "",
        Duration::from_millis(300)
    )
    .is_none());
}

#[test]
fn sts_assume_role_with_web_identity() {
    let emu = Emulator::start(World::demo()).expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let env = env_of(&emu, "eks-irsa", dir.path());
    let token = std::fs::read_to_string(&env["AWS_WEB_IDENTITY_TOKEN_FILE"]).expect("token file");
    assert!(!token.ends_with('\n') && token.split('.').count() == 3);
    let form = |role: &str, tok: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", role)
            .append_pair("RoleSessionName", "s1")
            .append_pair("WebIdentityToken", tok)
            .finish()
    };
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    let ok = send(&emu.url(), "POST", "/", &ct, &form(&env["AWS_ROLE_ARN"], &token), Duration::from_secs(5))
        .expect("answer");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.starts_with("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA"));
    assert!(ok
        .body
        .contains("<SubjectFromWebIdentityToken>system:serviceaccount:default:eks-irsa</SubjectFromWebIdentityToken>"));
    let denied = send(
        &emu.url(),
        "POST",
        "/",
        &ct,
        &form("arn:aws:iam::111122223333:role/other", &token),
        Duration::from_secs(5),
    )
    .expect("answer");
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("<Code>AccessDenied</Code>"));
    let forged = send(&emu.url(), "POST", "/", &ct, &form(&env["AWS_ROLE_ARN"], "a.b.c"), Duration::from_secs(5))
        .expect("answer");
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("<Code>InvalidIdentityToken</Code>"));
}

/// `GetCallerIdentity` (signed, no IAM permission needed) names the account and the role of the
/// credentials that signed it, and refuses a bad signature with STS's own code.
#[test]
fn sts_get_caller_identity_names_the_signers_account_and_role() {
    let emu = Emulator::start(World::demo()).expect("start");
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let creds = ecs_creds(&emu, "unsubscribed-task");
    let ok = call_query(&emu, &creds, "us-east-1", "sts", body);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.starts_with("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:sts::444455556666:assumed-role/unsubscribed-task-task-role/unsubscribed-task</Arn>"), "{}", ok.body);
    assert!(ok.body.contains("<Account>444455556666</Account>"), "{}", ok.body);
    let forged = Creds { secret: "not-the-secret".into(), ..creds };
    let refused = call_query(&emu, &forged, "us-east-1", "sts", body);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("<Code>SignatureDoesNotMatch</Code>"), "{}", refused.body);
}

#[test]
fn sts_session_credentials_expire_and_session_names_are_validated() {
    let emu = Emulator::start(World::demo()).expect("start");
    emu.set_session_lifetime(Duration::from_secs(1));
    let dir = tempfile::tempdir().expect("tmp");
    let env = env_of(&emu, "eks-irsa", dir.path());
    let token = std::fs::read_to_string(&env["AWS_WEB_IDENTITY_TOKEN_FILE"]).expect("token file");
    let form = |session: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &env["AWS_ROLE_ARN"])
            .append_pair("RoleSessionName", session)
            .append_pair("WebIdentityToken", &token)
            .finish()
    };
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    let bad = send(&emu.url(), "POST", "/", &ct, &form("no spaces allowed"), Duration::from_secs(5)).expect("answer");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("<Code>ValidationError</Code>"), "{}", bad.body);
    let ok = send(&emu.url(), "POST", "/", &ct, &form("s1"), Duration::from_secs(5)).expect("answer");
    assert_eq!(ok.status, 200, "{}", ok.body);
    let member = |name: &str| {
        let open = format!("<{name}>");
        let start = ok.body.find(&open).expect(name) + open.len();
        let end = ok.body[start..].find(&format!("</{name}>")).expect(name) + start;
        ok.body[start..end].to_string()
    };
    let creds =
        Creds { akid: member("AccessKeyId"), secret: member("SecretAccessKey"), token: Some(member("SessionToken")) };
    let body = r#"{"LicenseArn":"arn:aws:license-manager::294406891311:license:l-0123456789abcdef0123456789abcdef"}"#;
    let fresh = call(&emu, &creds, "us-east-1", "license-manager", "AWSLicenseManager.GetLicense", body);
    assert_ne!(fresh.json()["__type"], "ExpiredTokenException", "{}", fresh.body);
    std::thread::sleep(Duration::from_millis(2100));
    let stale = call(&emu, &creds, "us-east-1", "license-manager", "AWSLicenseManager.GetLicense", body);
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert_eq!(stale.json()["__type"], "ExpiredTokenException");
}
