//! A contract start: the checkout of the baked entitlements, what the workload receives, every
//! refusal class with its line, and retries.

use super::*;

#[test]
fn an_entitled_start_checks_out_the_baked_entitlements_and_hands_over_exactly_the_allowed_ones() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    supervise_report(gate(&emu, "ecs-task", dir.path()), dir.path()).run().expect_status(0).check();

    let sent = emu.bodies("CheckoutLicense");
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(body["ProductSKU"], CONTRACT_SKU);
    assert_eq!(body["CheckoutType"], "PROVISIONAL");
    assert_eq!(body["KeyFingerprint"], "aws:294406891311:AWS/Marketplace:issuer-fingerprint");
    assert_eq!(
        body["Entitlements"],
        serde_json::json!([
            {"Name": "BasicTier", "Unit": "None"},
            {"Name": "PremiumTier", "Unit": "None"},
            {"Name": "Seats", "Unit": "Count", "Value": "1"}
        ])
    );
    let token = body["ClientToken"].as_str().expect("ClientToken");
    assert_eq!(token.len(), 36, "UUID-shaped ClientToken: {token}");

    // The license has BasicTier and Seats (not PremiumTier): the workload sees exactly those.
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("contract"));
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(CONTRACT_SKU));
    assert_eq!(report.var("MPGATE_ENTITLEMENTS").as_deref(), Some("BasicTier:None,Seats:Count:1"));
    assert_eq!(report.var("MPGATE_LICENSE_ARN").as_deref(), Some(CONTRACT_LICENSE));
    assert!(report.var("MPGATE_CHECKOUT_EXPIRATION").is_some_and(|e| e.ends_with('Z')));
    assert_eq!(report.var("MPGATE_SIGNATURE"), None);
    let file = report.var("MPGATE_ENTITLEMENTS_FILE").expect("MPGATE_ENTITLEMENTS_FILE");
    assert_eq!(Path::new(&file), dir.path().join("mpgate-entitlements.json"));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("file")).expect("json");
    assert_eq!(doc["license_arn"], CONTRACT_LICENSE);
    assert_eq!(doc["seat"], "held");
    let names: Vec<&str> =
        doc["entitlements"].as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["BasicTier", "Seats"]);
    assert!(!std::fs::read_to_string(&file).expect("file").contains(&emu.seats()[0].consumption_token));

    // Supervise: the seat was held while the workload ran and checked in once it had exited.
    assert_eq!(emu.seats().len(), 1);
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
}

#[test]
fn incoming_contract_variables_are_replaced_and_a_read_only_directory_falls_back_to_env_only() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = supervise_report(gate(&emu, "ecs-task", dir.path()), dir.path())
        .env("MPGATE_ENTITLEMENTS", "PremiumTier:None")
        .env("MPGATE_ENTITLEMENTS_FILE", "/etc/passwd")
        .env("MPGATE_ENTITLEMENTS_DIR", dir.path().join("missing"))
        .run()
        .expect_status(0)
        .check();
    assert_eq!(out.code(), Some(0));
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_ENTITLEMENTS").as_deref(), Some("BasicTier:None,Seats:Count:1"));
    assert_eq!(report.var("MPGATE_ENTITLEMENTS_FILE"), None);
}

#[test]
fn a_one_seat_contract_supervised_ten_times_in_a_row_still_admits() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    for i in 0..10 {
        gate(&emu, "ecs-task", dir.path()).args(["supervise", "-q", "--", "true"]).run().expect_status(0).check();
        assert!(out_seats(&emu).is_empty(), "start {i} left a seat out: {:?}", emu.seats());
    }
    assert_eq!(emu.seats().len(), 10);
}

#[test]
fn refusals_name_the_class_and_what_to_do() {
    // Exhausted: every seat out (held by other containers).
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let mut holder = spawn_supervised(&emu, dir.path(), &running(dir.path(), ":", "exec sleep 30"));
    wait_for_line(&dir.path().join("running"), LIMIT);
    assert_eq!(out_seats(&emu).len(), 1, "the holder's seat is out: {:?}", emu.seats());
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("NoEntitlementsAllowedException")
        .expect_stderr_contains("no seat left")
        .check();
    holder.term();
    assert_eq!(wait_exit(&mut holder), Some(143));

    // Expired and suspended licenses, an unsubscribed account, a wrong unit.
    for (status, end) in [("AVAILABLE", Some("2026-01-02T00:00:00Z")), ("SUSPENDED", None)] {
        let mut world = World::demo();
        let l = world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license");
        l.status = status.to_string();
        if let Some(end) = end {
            l.end = Some(end.to_string());
        }
        let emu = Emulator::start(world).expect("emulator");
        gate(&emu, "ecs-task", dir.path())
            .args(["supervise", "--", "true"])
            .run()
            .expect_status(80)
            .expect_one_refusal_line()
            .expect_stderr_contains("not-entitled: CheckoutLicense answered NoEntitlementsAllowedException")
            .check();
    }
    let emu = Emulator::start(World::demo()).expect("emulator");
    gate(&emu, "unsubscribed-task", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("ResourceNotFoundException")
        .check();
    let mut world = World::demo();
    let l = world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license");
    l.entitlements.retain(|e| e.name != "BasicTier");
    for e in &mut l.entitlements {
        e.unit = "Bytes".into();
    }
    let emu = Emulator::start(world).expect("emulator");
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .check();
    assert!(out_seats(&emu).is_empty());
}

#[test]
fn a_license_without_an_admitting_tier_refuses_and_returns_the_seat() {
    let mut world = World::demo();
    let l = world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license");
    l.entitlements.retain(|e| e.name != "BasicTier");
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("a start needs one of BasicTier, PremiumTier")
        .check();
    assert_eq!(emu.seats().len(), 1);
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
}

#[test]
fn throttling_and_server_errors_are_retried_with_the_same_client_token() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    emu.inject("CheckoutLicense", Fault::Throttle);
    emu.inject("CheckoutLicense", Fault::InternalError);
    emu.inject("CheckoutLicense", Fault::Status(409, "ConflictException".into()));
    // Three retries: the first 1-5 s into the start, each later one at most 4 s after the last.
    gate(&emu, "ecs-task", dir.path())
        .env("MPGATE_DEADLINE", "20s")
        .args(["supervise", "-q", "--", "true"])
        .run()
        .expect_status(0)
        .check();
    let sent = emu.bodies("CheckoutLicense");
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|b| b["ClientToken"] == sent[0]["ClientToken"]), "one ClientToken per start");
    let codes: Vec<Option<String>> =
        emu.requests().into_iter().filter(|r| r.op == "CheckoutLicense").map(|r| r.error_code).collect();
    assert_eq!(codes[0].as_deref(), Some("RateLimitExceededException"));
    // Throttled until the deadline: cannot verify.
    for _ in 0..200 {
        emu.inject("CheckoutLicense", Fault::Throttle);
    }
    gate(&emu, "ecs-task", dir.path())
        .env("MPGATE_DEADLINE", "2s")
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains("RateLimitExceededException")
        .check();
}

#[test]
fn a_role_without_license_manager_actions_is_told_which_to_grant() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task-no-iam", dir.path()).args(["supervise", "--", "true"]).run().expect_status(0).check();
    let mut world = World::demo();
    let w = world.workloads.iter_mut().find(|w| w.id == "ecs-task-no-iam").expect("workload");
    w.denied_actions = vec!["license-manager:CheckoutLicense".into()];
    let emu = Emulator::start(world).expect("emulator");
    gate(&emu, "ecs-task-no-iam", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("AuthorizationException")
        .expect_stderr_contains("license-manager:CheckoutLicense")
        .check();
}
