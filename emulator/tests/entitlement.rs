//! Entitlement over a task's life: the first-call rule of RegisterUsage and MeterUsage (a buyer who
//! unsubscribes keeps the tasks already running), what a MeterUsage dry run checks under each
//! reading (`DryRunChecks`), and the two readings of the Tag pattern (`TagPattern`).

mod common;

use common::{call, ecs_creds, Creds, Reply};
use mpgate_emulator::{DryRunChecks, Emulator, TagPattern, World, ACCOUNT, METERED, PAID};
use std::time::{SystemTime, UNIX_EPOCH};

fn metering(emu: &Emulator, c: &Creds, op: &str, body: &str) -> Reply {
    call(emu, c, "us-east-1", "aws-marketplace", &format!("AWSMPMeteringService.{op}"), body)
}

fn register(emu: &Emulator, c: &Creds) -> Reply {
    metering(emu, c, "RegisterUsage", &format!(r#"{{"ProductCode":"{PAID}","PublicKeyVersion":1,"Nonce":"n"}}"#))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// MeterUsage of `dimension` for the hour `hours_ago` back, as a dry run or a real record.
fn meter(emu: &Emulator, c: &Creds, dimension: &str, hours_ago: u64, dry: bool) -> Reply {
    let ts = now() - hours_ago * 3600;
    let body = format!(
        r#"{{"ProductCode":"{METERED}","Timestamp":{ts},"UsageDimension":"{dimension}","UsageQuantity":{q},"DryRun":{dry}}}"#,
        q = if dry { 0 } else { 1 }
    );
    metering(emu, c, "MeterUsage", &body)
}

fn code(r: &Reply) -> (u16, String) {
    (r.status, r.json().get("__type").and_then(|t| t.as_str()).unwrap_or("").to_string())
}

const NOT_ENTITLED: (u16, &str) = (400, "CustomerNotEntitledException");

fn is(r: &Reply, want: (u16, &str)) -> bool {
    code(r) == (want.0, want.1.to_string())
}

#[test]
fn registerusage_checks_the_subscription_only_on_a_tasks_first_call() {
    let emu = Emulator::start(World::demo()).expect("start");
    let running = ecs_creds(&emu, "ecs-task");
    assert_eq!(register(&emu, &running).status, 200);
    emu.set_subscribed(ACCOUNT, PAID, false);
    let again = register(&emu, &running);
    assert_eq!(again.status, 200, "a running task keeps registering: {}", again.body);
    let new = ecs_creds(&emu, "eu-task");
    let r = call(
        &emu,
        &new,
        "eu-west-1",
        "aws-marketplace",
        "AWSMPMeteringService.RegisterUsage",
        &format!(r#"{{"ProductCode":"{PAID}","PublicKeyVersion":1}}"#),
    );
    assert!(is(&r, NOT_ENTITLED), "a new task of the unsubscribed buyer is refused: {}", r.body);
    emu.set_subscribed(ACCOUNT, PAID, true);
    let r = call(
        &emu,
        &new,
        "eu-west-1",
        "aws-marketplace",
        "AWSMPMeteringService.RegisterUsage",
        &format!(r#"{{"ProductCode":"{PAID}","PublicKeyVersion":1}}"#),
    );
    assert_eq!(r.status, 200, "subscribed again: {}", r.body);
}

#[test]
fn meterusage_checks_the_subscription_only_until_a_tasks_first_record() {
    let emu = Emulator::start(World::demo()).expect("start");
    let running = ecs_creds(&emu, "ecs-task");
    assert_eq!(meter(&emu, &running, "requests", 2, false).status, 200);
    emu.set_subscribed(ACCOUNT, METERED, false);
    let r = meter(&emu, &running, "requests", 1, false);
    assert_eq!(r.status, 200, "after its first record a task keeps metering: {}", r.body);
    let r = meter(&emu, &running, "gb_processed", 1, false);
    assert_eq!(r.status, 200, "any dimension: {}", r.body);
    // Another task of the same buyer has made no call yet: its first one checks.
    let other = ecs_creds(&emu, "ecs-ec2-old-agent");
    assert!(is(&meter(&emu, &other, "requests", 1, false), NOT_ENTITLED));
    assert!(is(&meter(&emu, &other, "requests", 1, true), NOT_ENTITLED), "a full dry run checks too");
    assert_eq!(emu.metering().len(), 3, "{:#?}", emu.metering());
}

#[test]
fn whether_a_dry_run_is_a_tasks_first_call_is_a_setting() {
    for (checks, later) in [(DryRunChecks::Full, Some(NOT_ENTITLED)), (DryRunChecks::FullFirstCall, None)] {
        let emu = Emulator::start(World::demo()).expect("start");
        emu.set_dry_run_checks(Some(checks));
        let c = ecs_creds(&emu, "ecs-task");
        assert_eq!(meter(&emu, &c, "requests", 0, true).status, 200, "{checks:?}: the dry run passes");
        emu.set_subscribed(ACCOUNT, METERED, false);
        let r = meter(&emu, &c, "requests", 1, false);
        match later {
            Some(refusal) => assert!(is(&r, refusal), "{checks:?}: the first record checks: {}", r.body),
            None => assert_eq!(r.status, 200, "{checks:?}: the dry run was the first call: {}", r.body),
        }
    }
}

#[test]
fn an_iam_only_dry_run_admits_what_a_record_then_refuses() {
    let mut world = World::demo();
    for p in world.products.iter_mut().filter(|p| p.code == METERED) {
        p.dry_run_checks = DryRunChecks::IamOnly;
        p.dimensions.retain(|d| d != "gb_processed");
    }
    let emu = Emulator::start(world).expect("start");
    let unsubscribed = ecs_creds(&emu, "unsubscribed-task");
    assert_eq!(meter(&emu, &unsubscribed, "requests", 0, true).status, 200, "not subscribed, yet the dry run passes");
    assert!(is(&meter(&emu, &unsubscribed, "requests", 1, false), NOT_ENTITLED), "the first record is refused");
    let c = ecs_creds(&emu, "ecs-task");
    assert_eq!(meter(&emu, &c, "gb_processed", 0, true).status, 200, "an unknown dimension passes the dry run");
    let r = meter(&emu, &c, "gb_processed", 1, false);
    assert_eq!(code(&r), (400, "InvalidUsageDimensionException".into()), "{}", r.body);
    // IAM itself still applies, and the run-time override goes back to the product's own.
    let no_iam = ecs_creds(&emu, "ecs-task-no-iam");
    assert_eq!(code(&meter(&emu, &no_iam, "requests", 0, true)), (400, "AccessDeniedException".into()));
    emu.set_dry_run_checks(Some(DryRunChecks::Full));
    assert!(is(&meter(&emu, &unsubscribed, "requests", 0, true), NOT_ENTITLED));
    emu.set_dry_run_checks(None);
    assert_eq!(meter(&emu, &unsubscribed, "requests", 0, true).status, 200);
    assert!(emu.metering().is_empty(), "{:#?}", emu.metering());
}

/// `+ -=` in `^[a-zA-Z0-9+ -=._:\/@]+$`: three characters (`Literal`), or a range (`Range`).
#[test]
fn the_tag_pattern_is_read_either_way() {
    let tagged = |value: &str, hours_ago: u64| {
        let ts = now() - hours_ago * 3600;
        format!(
            r#"{{"ProductCode":"{METERED}","Timestamp":{ts},"UsageDimension":"requests","UsageQuantity":1,
                "UsageAllocations":[{{"AllocatedUsageQuantity":1,"Tags":[{{"Key":"team","Value":"{value}"}}]}}]}}"#
        )
    };
    for (pattern, range_only) in [(TagPattern::Literal, 400), (TagPattern::Range, 200)] {
        let mut world = World::demo();
        for p in world.products.iter_mut() {
            p.tag_pattern = pattern;
        }
        let emu = Emulator::start(world).expect("start");
        let c = ecs_creds(&emu, "ecs-task");
        let r = metering(&emu, &c, "MeterUsage", &tagged("a,b<c", 1));
        assert_eq!(r.status, range_only, "{pattern:?}: {}", r.body);
        if range_only == 400 {
            assert_eq!(code(&r).1, "InvalidTagException");
        }
        let r = metering(&emu, &c, "MeterUsage", &tagged("a +-=._:/@ z", 2));
        assert_eq!(r.status, 200, "{pattern:?}: every listed character: {}", r.body);
        let r = metering(&emu, &c, "MeterUsage", &tagged("a~b", 3));
        assert_eq!(code(&r), (400, "InvalidTagException".into()), "{pattern:?}: outside both readings");
    }
}
