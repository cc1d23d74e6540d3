//! Errors that arise from the world rather than from injected faults: License Manager
//! AuthorizationException (a role without the actions), AccessDeniedException (another account's
//! resource), ConflictException (racing checkouts), and MeterUsage before the start of usage.

mod common;

use common::{call, ecs_creds, Creds, Reply};
use mpgate_emulator::{
    BeforeStartAnswer, Emulator, World, ACCOUNT, CONTRACT_LICENSE, CONTRACT_SKU, IRSA_ROLE, MARKETPLACE_FINGERPRINT,
    METERED, PAID,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn lm(emu: &Emulator, c: &Creds, op: &str, body: &str) -> Reply {
    call(emu, c, "us-east-1", "license-manager", &format!("AWSLicenseManager.{op}"), body)
}

fn checkout_body(token: &str) -> String {
    format!(
        r#"{{"ProductSKU":"{CONTRACT_SKU}","CheckoutType":"PROVISIONAL","KeyFingerprint":"{MARKETPLACE_FINGERPRINT}","Entitlements":[{{"Name":"Seats","Unit":"Count","Value":"1"}}],"ClientToken":"{token}"}}"#
    )
}

fn error(r: &Reply) -> (u16, String) {
    (r.status, r.json()["__type"].as_str().unwrap_or("").to_string())
}

#[test]
fn a_role_without_license_manager_actions_gets_authorization_exception() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task-no-license-iam");
    let r = lm(&emu, &c, "CheckoutLicense", &checkout_body("t1"));
    assert_eq!(error(&r), (403, "AuthorizationException".into()), "{}", r.body);
    assert!(r.json()["Message"].as_str().unwrap_or("").contains("license-manager:CheckoutLicense"), "{}", r.body);
    assert!(emu.seats().is_empty(), "nothing checked out");

    // AWSLicenseManagerConsumptionPolicy: checkout works, listing does not.
    let c = ecs_creds(&emu, "ecs-task-lm-consumption-policy");
    let r = lm(&emu, &c, "CheckoutLicense", &checkout_body("t2"));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = lm(&emu, &c, "ListReceivedLicenses", "{}");
    assert_eq!(error(&r), (403, "AuthorizationException".into()), "{}", r.body);
}

#[test]
fn another_accounts_license_or_token_is_access_denied() {
    let emu = Emulator::start(World::demo()).expect("start");
    let owner = ecs_creds(&emu, "ecs-task");
    let other = ecs_creds(&emu, "unsubscribed-task");
    let get = format!(r#"{{"LicenseArn":"{CONTRACT_LICENSE}"}}"#);
    assert_eq!(lm(&emu, &owner, "GetLicense", &get).status, 200);
    let r = lm(&emu, &other, "GetLicense", &get);
    assert_eq!(error(&r), (401, "AccessDeniedException".into()), "{}", r.body);

    let r = lm(&emu, &owner, "CheckoutLicense", &checkout_body("t1"));
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["LicenseConsumptionToken"].as_str().expect("token").to_string();
    let body = format!(r#"{{"LicenseConsumptionToken":"{token}"}}"#);
    for op in ["ExtendLicenseConsumption", "CheckInLicense"] {
        let r = lm(&emu, &other, op, &body);
        assert_eq!(error(&r), (401, "AccessDeniedException".into()), "{op}: {}", r.body);
    }
    assert_eq!(emu.seats()[0].state, mpgate_emulator::SeatState::Out, "the owner's seat is untouched");
    assert_eq!(lm(&emu, &owner, "CheckInLicense", &body).status, 200);
}

#[test]
fn racing_checkouts_of_one_license_conflict_until_the_first_is_committed() {
    let mut world = World::demo();
    world.licenses[0].checkout_commit_ms = 1500;
    let emu = Emulator::start(world).expect("start");
    let a = ecs_creds(&emu, "ecs-task");
    let b = ecs_creds(&emu, "eu-task"); // same account, another task
    let first = lm(&emu, &a, "CheckoutLicense", &checkout_body("task-a"));
    assert_eq!(first.status, 200, "{}", first.body);
    let r = lm(&emu, &b, "CheckoutLicense", &checkout_body("task-b"));
    assert_eq!(error(&r), (409, "ConflictException".into()), "{}", r.body);
    // The first task's retry with its own ClientToken is no conflict, and gets its own seat back.
    let again = lm(&emu, &a, "CheckoutLicense", &checkout_body("task-a"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["LicenseConsumptionToken"], first.json()["LicenseConsumptionToken"]);
    std::thread::sleep(Duration::from_millis(1600));
    let r = lm(&emu, &b, "CheckoutLicense", &checkout_body("task-b"));
    assert_eq!(r.status, 200, "committed by now: {}", r.body);
    assert_eq!(emu.seats().len(), 2, "{:?}", emu.seats());

    // Off by default and at run time.
    emu.set_checkout_commit(Some(0));
    let r = lm(&emu, &a, "CheckoutLicense", &checkout_body("task-c"));
    assert_eq!(r.status, 200, "{}", r.body);
}

fn meter(emu: &Emulator, c: &Creds, ts: u64) -> Reply {
    let body =
        format!(r#"{{"ProductCode":"{METERED}","Timestamp":{ts},"UsageDimension":"requests","UsageQuantity":1}}"#);
    call(emu, c, "us-east-1", "aws-marketplace", "AWSMPMeteringService.MeterUsage", &body)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

#[test]
fn usage_before_the_task_started_is_out_of_bounds_unless_the_product_accepts_it() {
    let now = unix(SystemTime::now());
    let started = now - 2 * 3600;
    let world = |answer| {
        let mut w = World::demo();
        w.workloads.iter_mut().find(|w| w.id == "ecs-task").expect("ecs-task").started =
            Some(mpgate_emulator::clock::rfc3339(UNIX_EPOCH + Duration::from_secs(started)));
        w.products.iter_mut().find(|p| p.code == METERED).expect("metered").before_start = answer;
        w
    };
    let emu = Emulator::start(world(BeforeStartAnswer::TimestampOutOfBounds)).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let r = meter(&emu, &c, started - 60);
    assert_eq!(error(&r), (400, "TimestampOutOfBoundsException".into()), "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap_or("").contains("start of usage"), "{}", r.body);
    let r = meter(&emu, &c, started + 60);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(emu.metering().len(), 1);
    // Another task of the same account started long before (the demo's tasks run since New Year).
    let other = ecs_creds(&emu, "ecs-ec2-old-agent");
    assert_eq!(meter(&emu, &other, started - 60).status, 200);

    let emu = Emulator::start(world(BeforeStartAnswer::Accept)).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let r = meter(&emu, &c, started - 60);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn usage_before_the_subscription_began_is_out_of_bounds() {
    // The demo account's subscription to the metered product began 2026-01-01T00:00:00Z.
    let new_year = 1_767_225_600;
    let emu = Emulator::start(World::demo()).expect("start");
    assert!(World::demo().account(ACCOUNT).expect("account").subscribed_since.contains_key(METERED));
    emu.set_clock(UNIX_EPOCH + Duration::from_secs(new_year + 2 * 3600));
    let c = ecs_creds(&emu, "ecs-task");
    let r = meter(&emu, &c, new_year - 1800);
    assert_eq!(error(&r), (400, "TimestampOutOfBoundsException".into()), "{}", r.body);
    let r = meter(&emu, &c, new_year + 1800);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The text between `<tag>` and `</tag>` in an STS answer.
fn xml_text<'a>(body: &'a str, tag: &str) -> &'a str {
    let start = body.find(&format!("<{tag}>")).map(|i| i + tag.len() + 2).unwrap_or_else(|| panic!("{tag}: {body}"));
    let len = body[start..].find(&format!("</{tag}>")).unwrap_or_else(|| panic!("/{tag}: {body}"));
    &body[start..start + len]
}

/// IAM's AccessDeniedException names the role the scenario gives the workload: an IRSA pod's
/// `role_arn`, not a name the emulator makes up; a task role the scenario does not name is `<id>-role`.
#[test]
fn iam_refusal_names_the_role_of_the_scenario() {
    let mut world = World::demo();
    for w in world.workloads.iter_mut().filter(|w| w.id == "eks-irsa") {
        w.denied_actions = vec!["aws-marketplace:RegisterUsage".into()];
    }
    let emu = Emulator::start(world).expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let env = common::env_of(&emu, "eks-irsa", dir.path());
    let token = std::fs::read_to_string(&env["AWS_WEB_IDENTITY_TOKEN_FILE"]).expect("token file");
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", IRSA_ROLE)
        .append_pair("RoleSessionName", "s1")
        .append_pair("WebIdentityToken", &token)
        .finish();
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    let sts = common::send(&emu.url(), "POST", "/", &ct, &form, Duration::from_secs(5)).expect("answer");
    assert_eq!(sts.status, 200, "{}", sts.body);
    let c = Creds {
        akid: xml_text(&sts.body, "AccessKeyId").into(),
        secret: xml_text(&sts.body, "SecretAccessKey").into(),
        token: Some(xml_text(&sts.body, "SessionToken").into()),
    };
    let body = format!(r#"{{"ProductCode":"{PAID}","PublicKeyVersion":1}}"#);
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", "AWSMPMeteringService.RegisterUsage", &body);
    assert_eq!(error(&r), (400, "AccessDeniedException".into()), "{}", r.body);
    let role = IRSA_ROLE.rsplit('/').next().expect("role name");
    let message = r.json()["message"].as_str().or(r.json()["Message"].as_str()).unwrap_or_default().to_string();
    assert!(
        message.starts_with(&format!("User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/eks-irsa is not authorized")),
        "{}",
        r.body
    );

    let c = ecs_creds(&emu, "ecs-task-no-iam");
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", "AWSMPMeteringService.RegisterUsage", &body);
    assert_eq!(error(&r), (400, "AccessDeniedException".into()), "{}", r.body);
    assert!(r.body.contains("assumed-role/ecs-task-no-iam-role/ecs-task-no-iam "), "{}", r.body);
}
