//! The license's validity (GetLicense): handed to the workload, and held against what AWS reports.

use super::*;

#[test]
fn the_workload_receives_the_license_validity() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    supervise_report(gate(&emu, "ecs-task", dir.path()), dir.path()).run().expect_status(0).check();
    let get = emu.bodies("GetLicense");
    assert_eq!(get.len(), 1);
    assert_eq!(get[0]["LicenseArn"], CONTRACT_LICENSE);
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_LICENSE_VALID_FROM").as_deref(), Some("2026-01-01T00:00:00Z"));
    assert_eq!(report.var("MPGATE_LICENSE_VALID_UNTIL").as_deref(), Some("2099-01-01T00:00:00Z"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("mpgate-entitlements.json")).expect("file"))
            .expect("json");
    assert_eq!(doc["license_valid_from"], "2026-01-01T00:00:00Z");
    assert_eq!(doc["license_valid_until"], "2099-01-01T00:00:00Z");
}

#[test]
fn a_license_not_yet_valid_refuses_as_not_entitled() {
    let mut world = World::demo();
    world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license").begin =
        "2098-01-01T00:00:00Z".into();
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("NoEntitlementsAllowedException")
        .check();
    assert!(out_seats(&emu).is_empty());
}

#[test]
fn the_gate_holds_aws_to_the_validity_it_reports_and_returns_the_seat() {
    // License Manager's clock (the emulator's) says the contract still runs, GetLicense says it ended
    // yesterday by this host's clock: the gate refuses on the validity and checks the seat back in.
    let yesterday = mpgate_emulator::clock::rfc3339(std::time::SystemTime::now() - Duration::from_secs(86_400));
    let mut world = World::demo();
    world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license").end = Some(yesterday.clone());
    let emu = Emulator::start(world).expect("emulator");
    emu.set_clock(std::time::SystemTime::now() - Duration::from_secs(3 * 86_400));
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("expired at {yesterday}"))
        .check();
    assert_eq!(emu.seats().len(), 1);
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
}

#[test]
fn a_role_without_get_license_is_told_to_grant_it() {
    let mut world = World::demo();
    let w = world.workloads.iter_mut().find(|w| w.id == "ecs-task-no-iam").expect("workload");
    w.denied_actions = vec!["license-manager:GetLicense".into()];
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task-no-iam", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("GetLicense")
        .expect_stderr_contains("license-manager:GetLicense")
        .check();
    assert!(out_seats(&emu).is_empty(), "{:?}", emu.seats());
}

#[test]
fn check_speaks_license_manager_for_contract_builds_including_on_premises() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let line = |out: &crate::support::Outcome, id: &str| -> (String, String) {
        let doc: serde_json::Value = serde_json::from_str(&out.stdout()).expect("check --json");
        let c = doc["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).cloned().expect("check");
        (c["status"].as_str().unwrap_or_default().to_string(), c["summary"].as_str().unwrap_or_default().to_string())
    };
    let out = gate(&emu, ON_PREM, dir.path()).without_env("AWS_REGION").args(["check", "--json"]).run();
    assert_eq!(line(&out, "platform").0, "pass", "{}", out.stdout());
    assert!(line(&out, "platform").1.contains("Containers Anywhere"), "{}", out.stdout());
    assert_eq!(
        line(&out, "region"),
        (
            "pass".into(),
            "us-east-1 (from the Containers Anywhere default (license token configured, AWS_REGION unset))".into()
        )
    );
    assert_eq!(line(&out, "credentials").0, "pass", "{}", out.stdout());
    assert!(line(&out, "credentials").1.contains("License Manager license token"), "{}", out.stdout());
    assert!(line(&out, "endpoint").1.contains(&emu.url()), "{}", out.stdout());
    assert!(recorded(&emu, "CheckoutLicense").is_empty(), "check without --live takes no seat");

    // On ECS: any role License Manager accepts passes (Metering's "task role or IRSA only" rule is not applied).
    let out = gate(&emu, "ecs-task", dir.path()).args(["check", "--json"]).run();
    assert_eq!(line(&out, "credentials").0, "pass", "{}", out.stdout());
    assert!(line(&out, "credentials").1.contains("License Manager accepts"), "{}", out.stdout());

    // A broken token: the credentials line fails with the reason and the fix.
    let out = gate(&emu, ON_PREM, dir.path())
        .env("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", dir.path().join("gone"))
        .args(["check", "--json"])
        .run();
    assert_eq!(line(&out, "credentials").0, "fail", "{}", out.stdout());
    assert!(line(&out, "credentials").1.contains("cannot read the license token file"), "{}", out.stdout());
    assert_eq!(out.code(), Some(86));
}
