//! Entitlement at start: the MeterUsage dry run per baked dimension, in each answer form AWS might
//! use, and the refusals it leads to; `mpgate check --live`.

use super::{gate, ledger};
use crate::support::{scratch, workload_bin, Report};
use mpgate_emulator::{DryRunAnswer, Emulator, World, METERED};
use std::path::Path;
use std::time::Duration;

#[test]
fn dry_runs_admit_in_every_answer_form() {
    for answer in [DryRunAnswer::Empty, DryRunAnswer::RecordId, DryRunAnswer::DryRunOperationError] {
        let emu = Emulator::start(World::demo()).expect("emulator");
        emu.set_dry_run_answer(Some(answer));
        let dir = scratch();
        let out = gate(&emu, "ecs-task", dir.path())
            .args(["supervise", "--"])
            .arg(workload_bin())
            .arg("report")
            .arg(dir.path().join("report.json"))
            .run()
            .expect_status(0)
            .expect_stderr_contains("admitted: product 3m7kd9demometer0mpgate01")
            .expect_stderr_contains("dimensions requests, gb_processed")
            .check();
        let report = Report::read(&dir.path().join("report.json"));
        assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("custom-metering"), "{answer:?}");
        assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(METERED));
        let usage_file = dir.path().join("spool/usage.log");
        assert_eq!(report.var("MPGATE_USAGE_FILE").as_deref(), Some(usage_file.to_str().expect("utf-8")));
        assert_eq!(report.var("MPGATE_SIGNATURE"), None, "custom metering hands over no signed pass");
        let dry = emu.bodies("MeterUsage");
        assert_eq!(dry.len(), 2, "one dry run per baked dimension ({answer:?})");
        assert!(dry.iter().all(|b| b["DryRun"] == true && b["UsageQuantity"] == 0), "{dry:?}");
        assert!(ledger(&emu).is_empty(), "a dry run bills nothing");
        assert!(out.elapsed < Duration::from_secs(20));
    }
}

#[test]
fn an_unsubscribed_account_is_refused_as_not_entitled() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    gate(&emu, "unsubscribed-task", dir.path())
        .args(["supervise", "--", "/bin/true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("MeterUsage answered CustomerNotEntitledException")
        .check();
    assert!(ledger(&emu).is_empty());
}

#[test]
fn a_baked_dimension_the_product_lacks_is_refused_as_misconfigured() {
    let mut world = World::demo();
    for p in world.products.iter_mut().filter(|p| p.code == METERED) {
        p.dimensions.retain(|d| d != "gb_processed");
    }
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "/bin/true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("InvalidUsageDimensionException")
        .expect_stderr_contains("dimension \"gb_processed\" baked into this image")
        .check();
}

#[test]
fn exec_refuses_custom_metering_and_points_to_supervise() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["exec", "--", "/bin/true"])
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .expect_stderr_contains("use `mpgate supervise -- CMD`")
        .check();
    assert!(emu.requests().iter().all(|r| r.op != "MeterUsage"), "refused before any AWS call");
}

/// `mpgate check --json` of the metered gate: (exit status, the entitlement check's status and summary).
fn check_entitlement(emu: &Emulator, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = gate(emu, "ecs-task", dir).args(["check", "--json"]).args(args).run();
    let json: serde_json::Value =
        serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
    let c = json["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "entitlement").expect("entitlement");
    (out.code(), c["status"].as_str().expect("status").into(), c["summary"].as_str().expect("summary").into())
}

/// `mpgate check` of a custom-metering build dry-runs every baked dimension, with or without
/// `--live` (a dry run bills nothing), so its verdict can be `pass`; it names the one AWS refuses.
#[test]
fn check_dry_runs_every_dimension_without_live_and_names_a_refused_one() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    for args in [&[][..], &["--live"][..]] {
        let (code, status, summary) = check_entitlement(&emu, dir.path(), args);
        assert_eq!((code, status.as_str()), (Some(0), "pass"), "{args:?}: {summary}");
        assert!(summary.ends_with("for every dimension: requests, gb_processed"), "{summary}");
    }
    let dry = emu.bodies("MeterUsage");
    assert_eq!(dry.len(), 4, "one dry run per dimension, per check");
    assert!(dry.iter().all(|b| b["DryRun"] == true), "{dry:?}");
    assert!(ledger(&emu).is_empty(), "check bills nothing");
    assert!(!dir.path().join("spool").exists(), "check leaves no spool behind");

    // Without --live, a role without the permission and an unsubscribed account are found out.
    for (workload, needle) in
        [("ecs-task-no-iam", "AccessDeniedException"), ("unsubscribed-task", "CustomerNotEntitledException")]
    {
        let out = gate(&emu, workload, dir.path()).args(["check", "--json"]).run();
        let json: serde_json::Value = serde_json::from_str(out.stdout().trim()).expect("json");
        let c = json["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "entitlement").expect("row");
        assert_eq!((out.code(), c["status"].as_str()), (Some(86), Some("fail")), "{workload}: {json}");
        assert!(c["summary"].as_str().expect("summary").contains(needle), "{workload}: {json}");
    }
    assert!(ledger(&emu).is_empty(), "check bills nothing");

    let mut world = World::demo();
    for p in world.products.iter_mut().filter(|p| p.code == METERED) {
        p.dimensions.retain(|d| d != "gb_processed");
    }
    let emu = Emulator::start(world).expect("emulator");
    let (code, status, summary) = check_entitlement(&emu, dir.path(), &["--live"]);
    assert_eq!((code, status.as_str()), (Some(86), "fail"), "{summary}");
    assert!(summary.starts_with("MeterUsage dry run for dimension gb_processed:"), "{summary}");
    assert!(summary.contains("InvalidUsageDimensionException") && summary.ends_with("(passed: requests)"), "{summary}");
}
