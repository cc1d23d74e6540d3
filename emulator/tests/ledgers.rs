//! The metering and seat ledgers, the emulated clock, quotas and the new faults, through the Rust
//! API: what a seller's Rust test would assert ("nothing lost, nothing billed twice, no seat leaked").

mod common;

use common::{call, ecs_creds, send};
use mpgate_emulator::{Emulator, Fault, SeatState, World, CONTRACT_SKU, FREE, MARKETPLACE_FINGERPRINT, METERED, PAID};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const METER: &str = "AWSMPMeteringService.MeterUsage";

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn meter_body(ts: u64, qty: i64) -> String {
    format!(r#"{{"ProductCode":"{METERED}","Timestamp":{ts},"UsageDimension":"requests","UsageQuantity":{qty}}}"#)
}

#[test]
fn one_record_per_task_dimension_hour() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let ts = now_secs() - 3600;
    let a = call(&emu, &c, "us-east-1", "aws-marketplace", METER, &meter_body(ts, 4));
    assert_eq!(a.status, 200, "{}", a.body);
    let b = call(&emu, &c, "us-east-1", "aws-marketplace", METER, &meter_body(ts - ts % 3600, 4));
    assert_eq!(a.json()["MeteringRecordId"], b.json()["MeteringRecordId"]);
    let d = call(&emu, &c, "us-east-1", "aws-marketplace", METER, &meter_body(ts, 5));
    assert_eq!((d.status, d.json()["__type"].as_str()), (400, Some("DuplicateRequestException")));
    let records = emu.metering();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].hour, i64::try_from(ts - ts % 3600).expect("fits"));
    assert_eq!((records[0].workload.as_str(), records[0].quantity), ("ecs-task", 4));
}

#[test]
fn the_clock_moves_the_six_hour_window() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    emu.advance_clock(Duration::from_secs(7 * 3600));
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", METER, &meter_body(now_secs(), 1));
    assert_eq!(r.json()["__type"], "TimestampOutOfBoundsException", "{}", r.body);
    emu.set_clock(SystemTime::now());
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", METER, &meter_body(now_secs(), 1));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn provisional_seats_expire_after_sixty_emulated_minutes() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let body = format!(
        r#"{{"ProductSKU":"{CONTRACT_SKU}","CheckoutType":"PROVISIONAL","KeyFingerprint":"{MARKETPLACE_FINGERPRINT}","Entitlements":[{{"Name":"Seats","Unit":"Count","Value":"3"}}],"ClientToken":"t1"}}"#
    );
    let r = call(&emu, &c, "us-east-1", "license-manager", "AWSLicenseManager.CheckoutLicense", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["SignedToken"].as_str().expect("token").len() >= 4096);
    let again = body.replace("\"t1\"", "\"t2\"");
    let r = call(&emu, &c, "us-east-1", "license-manager", "AWSLicenseManager.CheckoutLicense", &again);
    assert_eq!((r.status, r.json()["__type"].as_str()), (400, Some("NoEntitlementsAllowedException")));
    assert!(r.json()["Message"].is_string(), "License Manager errors carry Message: {}", r.body);
    assert_eq!(emu.seats()[0].state, SeatState::Out);
    emu.advance_clock(Duration::from_secs(61 * 60));
    assert_eq!(emu.seats()[0].state, SeatState::Expired);
    let r = call(&emu, &c, "us-east-1", "license-manager", "AWSLicenseManager.CheckoutLicense", &again);
    assert_eq!(r.status, 200, "the seats came back: {}", r.body);
}

#[test]
fn quotas_throttle_per_account_when_enabled() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let body = format!(r#"{{"ProductCode":"{PAID}","PublicKeyVersion":1}}"#);
    let target = "AWSMPMeteringService.RegisterUsage";
    let fire =
        |n| (0..n).map(|_| call(&emu, &c, "us-east-1", "aws-marketplace", target, &body).status).collect::<Vec<_>>();
    assert!(fire(8).iter().all(|s| *s == 200), "quotas are off in the demo world");
    emu.set_quotas(true);
    let statuses = fire(8);
    assert!(statuses.contains(&400), "{statuses:?}");
    let throttled = emu.requests().iter().filter(|r| r.error_code.as_deref() == Some("ThrottlingException")).count();
    assert!(throttled >= 1);
}

#[test]
fn the_products_of_one_account_share_its_register_usage_quota() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let target = "AWSMPMeteringService.RegisterUsage";
    let register = |code: &str| {
        let body = format!(r#"{{"ProductCode":"{code}","PublicKeyVersion":1}}"#);
        call(&emu, &c, "us-east-1", "aws-marketplace", target, &body).status
    };
    emu.set_quotas(true);
    // One token, refilled after 100 s: product A takes it, then B and A are throttled.
    emu.set_quota_rate("RegisterUsage", 0.01);
    let statuses = [register(PAID), register(FREE), register(PAID)];
    assert_eq!(statuses, [200, 400, 400], "one bucket for the account, at the rate set");
    let throttled: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.error_code.as_deref() == Some("ThrottlingException"))
        .map(|r| r.op)
        .collect();
    assert_eq!(throttled, ["RegisterUsage", "RegisterUsage"]);
}

#[test]
fn corrupting_faults_reach_the_wire() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let body = format!(r#"{{"ProductCode":"{PAID}","PublicKeyVersion":1}}"#);
    let target = "AWSMPMeteringService.RegisterUsage";
    emu.inject("RegisterUsage", Fault::WrongContentType);
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", target, &body);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    emu.inject("RegisterUsage", Fault::MalformedJson);
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", target, &body);
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err(), "{}", r.body);
    emu.inject("RegisterUsage", Fault::TruncatedBody);
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", target, &body);
    let announced: usize = r.header("content-length").expect("length").parse().expect("number");
    assert!(r.body.len() < announced, "{} of {announced}", r.body.len());
    emu.inject("RegisterUsage", Fault::Signature("forged.by.the-test".into()));
    let r = call(&emu, &c, "us-east-1", "aws-marketplace", target, &body);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.body).expect("json")["Signature"], "forged.by.the-test");
    emu.inject_random("RegisterUsage", Fault::Throttle, 1.0);
    assert_eq!(call(&emu, &c, "us-east-1", "aws-marketplace", target, &body).status, 400);
    emu.clear_faults("*");
    assert_eq!(call(&emu, &c, "us-east-1", "aws-marketplace", target, &body).status, 200);
    let _ = send; // used by other test files through `common`
}

#[test]
fn connection_reset_is_a_tcp_rst() {
    use std::io::{Read, Write};
    let emu = Emulator::start(World::demo()).expect("start");
    emu.inject("RegisterUsage", Fault::ConnectionReset);
    let addr = emu.url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let req = format!("POST / HTTP/1.1\r\nhost: {addr}\r\nx-amz-target: AWSMPMeteringService.RegisterUsage\r\ncontent-length: 2\r\n\r\n{{}}");
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let err = s.read_to_end(&mut buf).expect_err("reset, not a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(buf.is_empty());
}

#[test]
fn random_faults_repeat_from_their_seed() {
    let emu = Emulator::start(World::demo()).expect("start");
    let c = ecs_creds(&emu, "ecs-task");
    let body = format!(r#"{{"ProductCode":"{PAID}","PublicKeyVersion":1}}"#);
    let target = "AWSMPMeteringService.RegisterUsage";
    emu.inject_random("RegisterUsage", Fault::Throttle, 0.5);
    let run = |seed: u64| -> Vec<u16> {
        emu.seed_random_faults(seed);
        assert_eq!(emu.random_fault_seed(), seed);
        (0..32).map(|_| call(&emu, &c, "us-east-1", "aws-marketplace", target, &body).status).collect()
    };
    let first = run(7);
    assert!(first.contains(&400) && first.contains(&200), "p = 0.5 gives both answers: {first:?}");
    assert_eq!(run(7), first, "the same seed repeats the same faults");
    assert_ne!(run(8), first, "another seed draws others");
}
