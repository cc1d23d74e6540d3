//! Contract pricing, end to end against the emulator's License Manager: CheckoutLicense at
//! start and every refusal class, what the workload receives, and seat hygiene per mode measured on
//! the emulator's seat ledger. Runs the test-flavour gate baked with testdata/identity-contract.env
//! (`mpgate-test-contract`): BasicTier or PremiumTier admits, one `Seats` per container.

use crate::support::{dist_dir, scratch, wait_for_line, workload_bin, Report, Run, Spawned};
use mpgate_emulator::{Emulator, Fault, Seat, SeatState, World, CONTRACT_LICENSE, CONTRACT_SKU};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn contract_bin() -> PathBuf {
    let bin = dist_dir().join("mpgate-test-contract");
    assert!(bin.is_file(), "{} missing: scripts/test builds it with testdata/identity-contract.env", bin.display());
    bin
}

/// The demo world with the contract license's `Seats` set to `seats`.
pub(crate) fn world_with_seats(seats: i64) -> World {
    let mut world = World::demo();
    let license = world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("contract license");
    license.entitlements.iter_mut().find(|e| e.name == "Seats").expect("Seats").max_count = Some(seats);
    world
}

pub(crate) fn gate(emu: &Emulator, workload: &str, dir: &Path) -> Run {
    Run::bin(contract_bin())
        .envs(emu.workload_env(workload, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_TERMINATION_LOG", dir.join("termination-log"))
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .env("MPGATE_DEADLINE", "10s")
}

/// `mpgate exec -- mpgate-test-workload report dir/report.json`.
pub(crate) fn exec_report(run: Run, dir: &Path) -> Run {
    run.args(["exec", "-q", "--"]).arg(workload_bin()).arg("report").arg(dir.join("report.json"))
}

pub(crate) fn out_seats(emu: &Emulator) -> Vec<Seat> {
    emu.seats().into_iter().filter(|s| s.state == SeatState::Out).collect()
}

#[test]
fn an_entitled_start_checks_out_the_baked_entitlements_and_hands_over_exactly_the_allowed_ones() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    exec_report(gate(&emu, "ecs-task", dir.path()), dir.path()).run().expect_status(0).check();

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
    assert_eq!(doc["seat"], "returned");
    let names: Vec<&str> =
        doc["entitlements"].as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["BasicTier", "Seats"]);
    assert!(!std::fs::read_to_string(&file).expect("file").contains(&emu.seats()[0].consumption_token));

    // Exec mode: the seat was checked in before the workload started.
    assert_eq!(emu.seats().len(), 1);
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
}

#[test]
fn incoming_contract_variables_are_replaced_and_a_read_only_directory_falls_back_to_env_only() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = exec_report(gate(&emu, "ecs-task", dir.path()), dir.path())
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
fn a_one_seat_contract_restarted_ten_times_in_exec_mode_still_admits() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    for i in 0..10 {
        gate(&emu, "ecs-task", dir.path()).args(["exec", "-q", "--", "true"]).run().expect_status(0).check();
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
        .args(["exec", "--", "true"])
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
            .args(["exec", "--", "true"])
            .run()
            .expect_status(80)
            .expect_one_refusal_line()
            .expect_stderr_contains("not-entitled: CheckoutLicense answered NoEntitlementsAllowedException")
            .check();
    }
    let emu = Emulator::start(World::demo()).expect("emulator");
    gate(&emu, "unsubscribed-task", dir.path())
        .args(["exec", "--", "true"])
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
        .args(["exec", "--", "true"])
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
        .args(["exec", "--", "true"])
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
    gate(&emu, "ecs-task", dir.path()).args(["exec", "-q", "--", "true"]).run().expect_status(0).check();
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
        .args(["exec", "--", "true"])
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
    gate(&emu, "ecs-task-no-iam", dir.path()).args(["exec", "--", "true"]).run().expect_status(0).check();
    let mut world = World::demo();
    let w = world.workloads.iter_mut().find(|w| w.id == "ecs-task-no-iam").expect("workload");
    w.denied_actions = vec!["license-manager:CheckoutLicense".into()];
    let emu = Emulator::start(world).expect("emulator");
    gate(&emu, "ecs-task-no-iam", dir.path())
        .args(["exec", "--", "true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("AuthorizationException")
        .expect_stderr_contains("license-manager:CheckoutLicense")
        .check();
}

fn spawn_supervised(emu: &Emulator, dir: &Path, script: &str) -> Spawned {
    supervisor(emu, "ecs-task", dir, &["sh", "-c", script])
}

/// `mpgate supervise -q -- workload` in the background, as the emulator's `workload_id`.
pub(crate) fn supervisor(emu: &Emulator, workload_id: &str, dir: &Path, workload: &[&str]) -> Spawned {
    let mut cmd = Command::new(contract_bin());
    cmd.env_clear()
        .envs(emu.workload_env(workload_id, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_DEADLINE", "10s")
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .args(["supervise", "-q", "--"])
        .args(workload)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    Spawned::spawn(&mut cmd, "the contract supervisor")
}

/// How long a supervisor may take to admit and start its workload, or to exit.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// A workload script that runs `setup` (its signal traps), writes its pid to `dir/running`, then runs
/// `body`. The supervisor writes the hand-over file and holds the seat before it starts the workload,
/// so a line in `running` means all of these are in place.
pub(crate) fn running(dir: &Path, setup: &str, body: &str) -> String {
    format!("{setup}; echo $$ > {}/running; {body}", dir.display())
}

pub(crate) fn wait_exit(child: &mut Spawned) -> Option<i32> {
    child.wait_exit(LIMIT)
}

#[test]
fn supervise_holds_the_seat_while_running_and_returns_it_on_sigterm_and_on_exit() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let mut child =
        spawn_supervised(&emu, dir.path(), &running(dir.path(), "trap 'exit 0' TERM", "while :; do sleep 0.05; done"));
    wait_for_line(&dir.path().join("running"), LIMIT);
    assert_eq!(out_seats(&emu).len(), 1, "the seat is out while the workload runs: {:?}", emu.seats());
    let doc = std::fs::read_to_string(dir.path().join("mpgate-entitlements.json")).expect("file");
    assert!(doc.contains("\"seat\":\"held\""), "{doc}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(out_seats(&emu).len(), 1, "still held while running");
    child.term();
    assert_eq!(wait_exit(&mut child), Some(0));
    assert!(out_seats(&emu).is_empty(), "seat back after SIGTERM: {:?}", emu.seats());
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);

    // The workload exits by itself: the seat goes back too.
    let mut child = spawn_supervised(&emu, dir.path(), "exit 3");
    assert_eq!(wait_exit(&mut child), Some(3));
    assert_eq!(emu.seats().len(), 2);
    assert!(out_seats(&emu).is_empty(), "{:?}", emu.seats());
}

#[test]
fn a_killed_supervisor_leaks_the_seat_for_at_most_one_ttl() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let mut child = spawn_supervised(&emu, dir.path(), &running(dir.path(), ":", "exec sleep 30"));
    let orphan: i32 = wait_for_line(&dir.path().join("running"), LIMIT).parse().expect("workload pid");
    assert_eq!(out_seats(&emu).len(), 1, "the seat is out while the workload runs: {:?}", emu.seats());
    child.kill();
    // The sleeping workload is an orphan now; it holds nothing (and is ended here, not left behind).
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(orphan), nix::sys::signal::Signal::SIGKILL);
    gate(&emu, "ecs-task", dir.path()).args(["exec", "--", "true"]).run().expect_status(80).check();
    emu.advance_clock(Duration::from_secs(59 * 60));
    gate(&emu, "ecs-task", dir.path()).args(["exec", "--", "true"]).run().expect_status(80).check();
    emu.advance_clock(Duration::from_secs(61));
    gate(&emu, "ecs-task", dir.path()).args(["exec", "-q", "--", "true"]).run().expect_status(0).check();
    assert!(emu.seats().iter().any(|s| s.state == SeatState::Expired));
}

#[test]
fn check_live_probes_the_contract_and_checks_the_seat_in_again() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let out = gate(&emu, "ecs-task", dir.path()).args(["check", "--live"]).run();
    assert!(out.stdout().contains("CheckoutLicense admitted product"), "{}", out.stdout());
    assert!(out.stdout().contains("seat checked in again"), "{}", out.stdout());
    assert_eq!(emu.seats().len(), 1);
    assert!(out_seats(&emu).is_empty(), "{:?}", emu.seats());
}

#[test]
fn supervise_extends_the_seat_when_half_its_lifetime_is_gone() {
    // A 1-minute TTL: the supervisor extends after 30 s.
    let mut world = world_with_seats(1);
    world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license").provisional_ttl_minutes = 1;
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    let mut child = spawn_supervised(&emu, dir.path(), "exec sleep 60");
    let started = Instant::now();
    let extended = || emu.requests().iter().any(|r| r.op == "ExtendLicenseConsumption" && r.status == 200);
    while !extended() {
        assert!(started.elapsed() < Duration::from_secs(45), "no ExtendLicenseConsumption within 45 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(started.elapsed() >= Duration::from_secs(25), "extended too early: {:?}", started.elapsed());
    assert_eq!(out_seats(&emu).len(), 1);
    child.term();
    assert_eq!(wait_exit(&mut child), Some(143), "the workload ended by the forwarded SIGTERM");
    assert!(out_seats(&emu).is_empty(), "{:?}", emu.seats());
}

// ---- Containers Anywhere: License Manager license token → GetAccessToken → STS → CheckoutLicense ----

const ON_PREM: &str = "onprem-license";

pub(crate) fn recorded(emu: &Emulator, op: &str) -> Vec<mpgate_emulator::Recorded> {
    emu.requests().into_iter().filter(|r| r.op == op).collect()
}

fn header<'a>(r: &'a mpgate_emulator::Recorded, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The access key id a SigV4-signed request was signed with.
fn signing_key(r: &mpgate_emulator::Recorded) -> String {
    let authz = header(r, "authorization").unwrap_or_default();
    authz.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or_default().to_string()
}

#[test]
fn containers_anywhere_admits_an_on_prem_start_through_the_unsigned_token_exchange() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let run = exec_report(gate(&emu, ON_PREM, dir.path()), dir.path());
    run.without_env("AWS_REGION").without_env("AWS_DEFAULT_REGION").run().expect_status(0).check();

    let exchange = recorded(&emu, "GetAccessToken");
    assert_eq!(exchange.len(), 1, "{:?}", emu.requests());
    assert_eq!(exchange[0].status, 200);
    assert_eq!(header(&exchange[0], "authorization"), None, "GetAccessToken must be unsigned");
    let token = std::fs::read_to_string(dir.path().join("license_token")).expect("token file");
    let sent = &emu.bodies("GetAccessToken")[0];
    assert_eq!(sent["Token"].as_str(), Some(token.trim()));

    let assume = recorded(&emu, "AssumeRoleWithWebIdentity");
    assert_eq!(assume.len(), 1);
    assert_eq!(assume[0].status, 200);
    assert_eq!(header(&assume[0], "authorization"), None, "AssumeRoleWithWebIdentity is unsigned");
    let form: std::collections::HashMap<String, String> = url_form(&assume[0].body).into_iter().collect();
    assert_eq!(form.get("RoleArn").map(String::as_str), Some(mpgate_emulator::LICENSE_TOKEN_ROLE));

    // Signed with the role's credentials, in the chart's default region (no AWS_REGION given).
    let checkout = recorded(&emu, "CheckoutLicense");
    assert_eq!(checkout.len(), 1);
    assert_eq!(checkout[0].workload.as_deref(), Some(ON_PREM));
    assert_eq!(checkout[0].signing_region.as_deref(), Some("us-east-1"));
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(report.var("MPGATE_ENTITLEMENTS").as_deref(), Some("BasicTier:None,Seats:Count:1"));
    assert!(out_seats(&emu).is_empty(), "exec returns the seat: {:?}", emu.seats());
}

fn url_form(body: &str) -> Vec<(String, String)> {
    body.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn containers_anywhere_prefers_the_helm_variable_and_accepts_the_go_sample_variable() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    // Only the Go sample's variable: admitted.
    gate(&emu, ON_PREM, dir.path())
        .without_env("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE")
        .args(["exec", "-q", "--", "true"])
        .run()
        .expect_status(0)
        .check();
    // Both set: the Helm variable wins, even when the Go one would work.
    gate(&emu, ON_PREM, dir.path())
        .env("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", dir.path().join("missing-token"))
        .args(["exec", "--", "true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE")
        .expect_stderr_contains("missing-token")
        .check();
}

#[test]
fn containers_anywhere_refuses_a_missing_unreadable_or_rejected_token_as_misconfigured() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let refuse = |run: Run, needle: &str| {
        run.args(["exec", "--", "true"])
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains("License Manager license token")
            .expect_stderr_contains(needle)
            .check();
    };
    let both = |run: Run, path: &Path| {
        run.env("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", path).env("AWS_LICENSE_ACCESS_FILE", path)
    };
    // Missing, and a directory where the file should be (unreadable even for root).
    refuse(both(gate(&emu, ON_PREM, dir.path()), &dir.path().join("nope")), "cannot read the license token file");
    let as_dir = dir.path().join("license_dir");
    std::fs::create_dir(&as_dir).expect("dir");
    refuse(both(gate(&emu, ON_PREM, dir.path()), &as_dir), "cannot read the license token file");
    // A token License Manager does not know (revoked, or from another account).
    let forged = dir.path().join("forged");
    std::fs::write(&forged, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").expect("write");
    refuse(both(gate(&emu, ON_PREM, dir.path()), &forged), "AccessDeniedException");
    // No role, or a role the token's trust does not cover.
    refuse(gate(&emu, ON_PREM, dir.path()).without_env("AWS_ROLE_ARN"), "AWS_ROLE_ARN");
    refuse(
        gate(&emu, ON_PREM, dir.path()).env("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/someone-else"),
        "AssumeRoleWithWebIdentity",
    );
    assert!(recorded(&emu, "CheckoutLicense").is_empty(), "no checkout without credentials");
}

#[test]
fn containers_anywhere_retries_a_throttled_token_exchange() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    emu.inject("GetAccessToken", Fault::Throttle);
    emu.inject("AssumeRoleWithWebIdentity", Fault::InternalError);
    gate(&emu, ON_PREM, dir.path()).args(["exec", "-q", "--", "true"]).run().expect_status(0).check();
    assert_eq!(recorded(&emu, "GetAccessToken").len(), 2);
    assert_eq!(recorded(&emu, "AssumeRoleWithWebIdentity").len(), 2);
}

#[test]
fn containers_anywhere_supervise_refreshes_the_credentials_and_keeps_the_seat() {
    // The hour compressed: credentials live 24 s (AWS: 3600 s) and the seat 60 s (AWS: 60 min), so
    // the extension at half the seat's lifetime (30 s) needs credentials issued after the first ones
    // died; the emulator refuses expired ones with ExpiredTokenException.
    let mut world = world_with_seats(1);
    world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license").provisional_ttl_minutes = 1;
    let emu = Emulator::start(world).expect("emulator");
    emu.set_session_lifetime(Duration::from_secs(24));
    let dir = scratch();
    let mut child = supervisor(&emu, ON_PREM, dir.path(), &["sleep", "120"]);
    let started = Instant::now();
    let extended = || recorded(&emu, "ExtendLicenseConsumption").iter().any(|r| r.status == 200);
    while !extended() {
        assert!(
            started.elapsed() <= Duration::from_secs(50),
            "no successful ExtendLicenseConsumption within 50 s: {:#?}",
            emu.requests()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(out_seats(&emu).len(), 1, "the seat is still held: {:?}", emu.seats());
    let failures: Vec<_> = emu.requests().into_iter().filter(|r| r.status != 200).collect();
    assert!(failures.is_empty(), "no call failed (no expired credentials used): {failures:#?}");
    let exchanges = recorded(&emu, "GetAccessToken");
    let assumed = recorded(&emu, "AssumeRoleWithWebIdentity");
    assert_eq!(exchanges.len(), 2, "one exchange at start, one refresh before the extension");
    assert_eq!(assumed.len(), 2);
    let tokens: Vec<String> = assumed
        .iter()
        .filter_map(|r| url_form(&r.body).into_iter().find(|(k, _)| k == "WebIdentityToken").map(|(_, v)| v))
        .collect();
    assert_ne!(tokens[0], tokens[1], "each refresh uses a fresh access token");
    let checkout = &recorded(&emu, "CheckoutLicense")[0];
    let extend = recorded(&emu, "ExtendLicenseConsumption").into_iter().find(|r| r.status == 200).expect("extend");
    assert_ne!(signing_key(checkout), signing_key(&extend), "the extension is signed with refreshed credentials");

    child.term();
    assert_eq!(wait_exit(&mut child), Some(143));
    assert!(out_seats(&emu).is_empty(), "seat back after SIGTERM: {:?}", emu.seats());
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
}

// ---- The license's validity (GetLicense) ----

#[test]
fn the_workload_receives_the_license_validity() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    exec_report(gate(&emu, "ecs-task", dir.path()), dir.path()).run().expect_status(0).check();
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
        .args(["exec", "--", "true"])
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
        .args(["exec", "--", "true"])
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
        .args(["exec", "--", "true"])
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
