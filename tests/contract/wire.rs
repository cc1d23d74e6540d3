//! Contract pricing where License Manager's answers may take more than one form: the dates
//! (`ISO8601DateTime`: `Z`, offsets, fractions; docs/aws-behaviour.md §4.1), a checkout outside the
//! license's home region (accepted, or redirected with `Location` in the body, the header or both;
//! §4.8), and what `version` and `check` say about seats per mode. Each reading is a world
//! setting of the emulator, and the gate must be right under every one.

use crate::contract::{contract_bin, gate, out_seats, recorded, supervise_report};
use crate::support::{scratch, Report, Run};
use mpgate_emulator::{DateStyle, Emulator, OutsideHomeRegion, RedirectLocation, SeatState, World, CONTRACT_LICENSE};

/// The demo world with the contract license changed by `f`.
fn world(f: impl FnOnce(&mut mpgate_emulator::License)) -> World {
    let mut world = World::demo();
    f(world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("contract license"));
    world
}

#[test]
fn license_dates_in_every_form_the_model_allows_admit_and_reach_the_workload() {
    // The demo license runs from 2026-01-01T00:00:00Z to 2099-01-01T00:00:00Z; each style writes
    // those instants (and the checkout's times) its own way.
    for (style, from, until, suffix) in [
        (DateStyle::Zulu, "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "Z"),
        (DateStyle::UtcOffset, "2026-01-01T00:00:00+00:00", "2099-01-01T00:00:00+00:00", "+00:00"),
        (DateStyle::Fraction, "2026-01-01T00:00:00.000Z", "2099-01-01T00:00:00.000Z", ".000Z"),
        (DateStyle::Offset(330), "2026-01-01T05:30:00+05:30", "2099-01-01T05:30:00+05:30", "+05:30"),
        (DateStyle::Offset(-600), "2025-12-31T14:00:00-10:00", "2098-12-31T14:00:00-10:00", "-10:00"),
    ] {
        let emu = Emulator::start(world(|l| l.date_style = Some(style))).expect("emulator");
        let dir = scratch();
        supervise_report(gate(&emu, "ecs-task", dir.path()), dir.path()).run().expect_status(0).check();
        let report = Report::read(&dir.path().join("report.json"));
        assert_eq!(report.var("MPGATE_LICENSE_VALID_FROM").as_deref(), Some(from), "{style:?}");
        assert_eq!(report.var("MPGATE_LICENSE_VALID_UNTIL").as_deref(), Some(until), "{style:?}");
        let expiration = report.var("MPGATE_CHECKOUT_EXPIRATION").unwrap_or_default();
        assert!(expiration.ends_with(suffix), "{style:?}: checkout expiration {expiration:?}");
        assert_eq!(emu.seats().len(), 1, "{style:?}");
        assert_eq!(emu.seats()[0].state, SeatState::CheckedIn, "{style:?}");
    }
}

#[test]
fn a_license_date_the_model_does_not_allow_is_refused_naming_the_field_and_the_value() {
    // A day February lacks (the pattern lets it through, but it names no instant), and a time with
    // no zone (the Seller Guide's example form, which the pattern does not allow).
    for (end, field) in [
        ("2099-02-30T00:00:00Z", "Validity.End of \"2099-02-30T00:00:00Z\""),
        ("2099-01-01T00:00:00", "Validity.End of \"2099-01-01T00:00:00\""),
    ] {
        let emu = Emulator::start(world(|l| l.end = Some(end.into()))).expect("emulator");
        let dir = scratch();
        gate(&emu, "ecs-task", dir.path())
            .args(["supervise", "--", "true"])
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(field)
            .expect_stderr_contains("not a date-time the License Manager model allows")
            .expect_stderr_contains(CONTRACT_LICENSE)
            .check();
        assert_eq!(emu.seats()[0].state, SeatState::CheckedIn, "the refused start returned its seat");
    }
    // Every date the emulator writes without a zone: the checkout's own times are refused first.
    let emu = Emulator::start(world(|l| l.date_style = Some(DateStyle::Unzoned))).expect("emulator");
    let dir = scratch();
    let out = gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("has a CheckoutLicense IssuedAt of \"20")
        .expect_stderr_contains("(it has no zone ('Z' or an offset like +00:00))")
        .check();
    assert!(!out.stderr().contains("renew"), "a malformed date is not a lapsed contract: {}", out.stderr());
    assert!(out_seats(&emu).is_empty(), "{:?}", emu.seats());
    assert!(recorded(&emu, "GetLicense").is_empty());
}

#[test]
fn a_checkout_outside_the_home_region_is_admitted_when_licenses_are_consumed_globally() {
    // AWS: licenses are consumed globally, changed only in the home region (the emulator's default).
    let emu = Emulator::start(crate::contract::world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let eu = |run: Run| run.env("AWS_REGION", "eu-west-1").env("AWS_DEFAULT_REGION", "eu-west-1");
    supervise_report(eu(gate(&emu, "ecs-task", dir.path())), dir.path()).run().expect_status(0).check();
    let checkout = recorded(&emu, "CheckoutLicense");
    assert_eq!(checkout[0].signing_region.as_deref(), Some("eu-west-1"));
    assert_eq!(Report::read(&dir.path().join("report.json")).var("MPGATE_REGION").as_deref(), Some("eu-west-1"));
    // The seat pool is one for every region: a 1-seat license held from us-east-1 refuses eu-west-1.
    let mut holder = crate::contract::supervisor(&emu, "ecs-task", dir.path(), &["sleep", "30"]);
    crate::support::wait_until("the holder's seat is out", crate::contract::LIMIT, || out_seats(&emu).len() == 1);
    eu(gate(&emu, "ecs-task", dir.path()))
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("NoEntitlementsAllowedException")
        .check();
    holder.term();
    crate::contract::wait_exit(&mut holder);
}

#[test]
fn a_redirect_names_the_home_region_wherever_its_location_is() {
    for place in [RedirectLocation::Both, RedirectLocation::Body, RedirectLocation::Header] {
        let emu = Emulator::start(world(|l| {
            l.outside_home_region = OutsideHomeRegion::Redirect;
            l.redirect_location = place;
        }))
        .expect("emulator");
        let dir = scratch();
        gate(&emu, "ecs-task", dir.path())
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .args(["supervise", "--", "true"])
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains("RedirectException")
            .expect_stderr_contains(
                "the license lives in another region (https://license-manager.us-east-1.amazonaws.com)",
            )
            .expect_stderr_contains("set AWS_REGION")
            .check();
        assert!(emu.seats().is_empty(), "{place:?}: a redirect takes no seat");
    }
}

#[test]
fn version_and_check_say_that_a_build_counting_seats_refuses_exec() {
    let note = "this build counts seats (Seats): mpgate exec refuses to start, use mpgate supervise, which holds the seat while the workload runs and checks it in once the workload has exited";
    let text = Run::bin(contract_bin()).arg("version").run().expect_status(0).check();
    assert!(text.stdout().contains(&format!("seats: {note}")), "{}", text.stdout());
    let json = Run::bin(contract_bin()).args(["version", "--json"]).run().expect_status(0).check();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout()).expect("json");
    assert_eq!(doc["seats"], note);
    let check = Run::bin(contract_bin()).args(["check", "--offline", "--json"]).run();
    let doc: serde_json::Value = serde_json::from_str(&check.stdout()).expect("check --json");
    let identity = doc["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "identity").cloned();
    let summary = identity.as_ref().and_then(|c| c["summary"].as_str()).unwrap_or_default();
    assert!(summary.contains(note), "{}", check.stdout());
    // Builds without seats say nothing of the kind.
    let hourly = Run::gate().arg("version").run().expect_status(0).check();
    assert!(!hourly.stdout().contains("seats:"), "{}", hourly.stdout());
}
