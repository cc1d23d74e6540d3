//! `mpgate supervise` re-checking a contract while the workload runs (docs/contract.md, "While the
//! workload runs"): the license is changed in the emulator at run time (cancelled, expired, an
//! entitlement taken away, upgraded) and the tests assert what the workload and the operator see:
//! the signals the workload got, the exit status and the one line, the hand-over file, and on the
//! emulator's seat ledger that no re-check ever took a seat.

use crate::contract::{contract_bin, out_seats, recorded, world_with_seats, LIMIT};
use crate::support::{alive, scratch, wait_for_line, wait_until, Spawned};
use mpgate_emulator::{Emulator, Fault, License, SeatState, CONTRACT_LICENSE};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `mpgate supervise -q -- sh -c SCRIPT` as `workload`, re-checking every second, with `env` added;
/// stderr goes to `dir/stderr`, the refusal also to `dir/termination-log`.
fn supervise(emu: &Emulator, workload: &str, dir: &Path, env: &[(&str, &str)], script: &str) -> Spawned {
    std::fs::write(dir.join("termination-log"), "").expect("termination log");
    let stderr = std::fs::File::create(dir.join("stderr")).expect("stderr file");
    let mut cmd = Command::new(contract_bin());
    cmd.env_clear()
        .envs(emu.workload_env(workload, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_DEADLINE", "10s")
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("MPGATE_TERMINATION_LOG", dir.join("termination-log"))
        .env("MPGATE_LICENSE_RECHECK", "1s")
        .envs(env.iter().copied())
        .args(["supervise", "-q", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    Spawned::spawn(&mut cmd, "the contract supervisor")
}

/// A workload that notes each SIGTERM in `dir/signals` (then does `on_term`), writes its pid to
/// `dir/running` once its trap is set, and runs until stopped.
fn workload(dir: &Path, on_term: &str) -> String {
    let d = dir.display();
    format!("trap 'echo TERM >> {d}/signals; {on_term}' TERM; echo $$ > {d}/running; while :; do sleep 0.05; done")
}

fn change_license(emu: &Emulator, f: impl FnOnce(&mut License)) {
    let mut license = emu.license(CONTRACT_LICENSE).expect("contract license");
    f(&mut license);
    emu.set_license(license);
}

fn handover(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("mpgate-entitlements.json")).expect("entitlements file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the entitlements file is whole JSON ({e}): {text}"))
}

fn stderr(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}

/// The `mpgate:` lines on stderr other than the test flavour's warning.
fn lines(dir: &Path) -> Vec<String> {
    stderr(dir).lines().filter(|l| !l.starts_with("mpgate: warning: test flavour")).map(str::to_string).collect()
}

fn rechecks(emu: &Emulator) -> usize {
    recorded(emu, "GetLicense").len()
}

#[test]
fn a_license_cancelled_while_running_stops_the_workload_with_sigterm_and_exit_80() {
    // On ECS with the task role, and on premises with a license token (its credentials come from the
    // token exchange, and so do the re-check's).
    for id in ["ecs-task", "onprem-license"] {
        cancelled_while_running(id);
    }
}

fn cancelled_while_running(id: &str) {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let mut gate = supervise(&emu, id, dir.path(), &[], &workload(dir.path(), "exit 0"));
    wait_for_line(&dir.path().join("running"), LIMIT);
    let before = rechecks(&emu);
    wait_until("two re-checks of the license", LIMIT, || rechecks(&emu) >= before + 2);
    assert_eq!(emu.seats().len(), 1, "re-checks take no seat: {:?}", emu.seats());
    assert_eq!(out_seats(&emu).len(), 1);

    change_license(&emu, |l| l.status = "SUSPENDED".into());
    assert_eq!(gate.wait_exit(LIMIT), Some(80), "{id}: stderr: {}", stderr(dir.path()));
    assert_eq!(std::fs::read_to_string(dir.path().join("signals")).expect("signals"), "TERM\n");
    let lines = lines(dir.path());
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    let line = &lines[0];
    for needle in [
        "mpgate: not-entitled: the license",
        CONTRACT_LICENSE,
        "is SUSPENDED",
        "renew or reactivate the contract",
        "mpgate stopped the workload with SIGTERM (its status was 0)",
    ] {
        assert!(line.contains(needle), "{needle:?} missing from {line:?}");
    }
    let logged = std::fs::read_to_string(dir.path().join("termination-log")).expect("termination log");
    assert!(logged.contains("is SUSPENDED"), "{logged}");
    assert_eq!(emu.seats().len(), 1, "{:?}", emu.seats());
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
    let doc = handover(dir.path());
    assert_eq!(doc["license_status"], "SUSPENDED", "{id}");
    assert_eq!(doc["license_lost"], "is SUSPENDED", "{id}");
    assert!(recorded(&emu, "GetLicense").iter().all(|r| r.workload.as_deref() == Some(id)), "{id}");
}

#[test]
fn a_license_that_expires_while_running_kills_a_workload_that_ignores_sigterm_after_the_grace() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let env = [("MPGATE_STOP_GRACE", "2s")];
    let mut gate = supervise(&emu, "ecs-task", dir.path(), &env, &workload(dir.path(), ":"));
    let pid: i32 = wait_for_line(&dir.path().join("running"), LIMIT).parse().expect("pid");
    // Ended yesterday by this host's clock: GetLicense now reports a contract that has run out.
    let yesterday = mpgate_emulator::clock::rfc3339(std::time::SystemTime::now() - Duration::from_secs(86_400));
    change_license(&emu, |l| l.end = Some(yesterday.clone()));
    wait_until("the workload's SIGTERM", LIMIT, || dir.path().join("signals").exists());
    let term = std::time::Instant::now();
    assert_eq!(gate.wait_exit(LIMIT), Some(80), "stderr: {}", stderr(dir.path()));
    assert!(term.elapsed() >= Duration::from_millis(1500), "SIGKILL came before the grace: {:?}", term.elapsed());
    assert!(!alive(pid), "the workload that ignored SIGTERM was killed");
    let lines = lines(dir.path());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&format!("expired at {yesterday}")), "{lines:?}");
    assert!(lines[0].contains("with SIGTERM and, 2s later, SIGKILL (its status was 137)"), "{lines:?}");
    assert!(out_seats(&emu).is_empty(), "{:?}", emu.seats());
}

#[test]
fn a_lost_entitlement_under_warn_keeps_the_workload_running_and_says_so_once() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let env = [("MPGATE_ON_LICENSE_LOST", "warn")];
    let mut gate = supervise(&emu, "ecs-task", dir.path(), &env, &workload(dir.path(), "exit 0"));
    let pid: i32 = wait_for_line(&dir.path().join("running"), LIMIT).parse().expect("pid");

    // The tier that admits a start is taken away: lost, but the policy is to warn.
    change_license(&emu, |l| l.entitlements.retain(|e| e.name != "BasicTier"));
    wait_until("the hand-over saying the license is lost", LIMIT, || !handover(dir.path())["license_lost"].is_null());
    let doc = handover(dir.path());
    assert_eq!(
        doc["license_lost"],
        "no longer carries an entitlement that admits a start (one of BasicTier, PremiumTier)"
    );
    let seen = rechecks(&emu);
    wait_until("two more re-checks", LIMIT, || rechecks(&emu) >= seen + 2);
    assert!(alive(pid), "the workload keeps running under warn");
    assert!(!dir.path().join("signals").exists(), "no signal was sent");
    let warnings: Vec<String> = lines(dir.path()).into_iter().filter(|l| l.contains("admits a start")).collect();
    assert_eq!(warnings.len(), 1, "one warning per loss: {warnings:?}");
    assert!(warnings[0].starts_with("mpgate: warning: not-entitled: the license"), "{warnings:?}");
    assert!(warnings[0].ends_with("the workload keeps running (--on-license-lost warn)"), "{warnings:?}");
    assert_eq!(out_seats(&emu).len(), 1, "the seat stays held");

    // Renewed with a better tier: the hand-over says so, and the variables' current values follow.
    change_license(&emu, |l| {
        l.entitlements.push(mpgate_emulator::LicenseEntitlement {
            name: "PremiumTier".into(),
            unit: "None".into(),
            max_count: None,
            value: None,
            overage: false,
            allow_check_in: true,
        })
    });
    wait_until("the hand-over showing the upgrade", LIMIT, || handover(dir.path())["license_lost"].is_null());
    let doc = handover(dir.path());
    assert_eq!(doc["env"]["MPGATE_ENTITLEMENTS"], "PremiumTier:None,Seats:Count:1");
    let names: Vec<&str> =
        doc["entitlements"].as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["PremiumTier", "Seats"]);
    assert_eq!(emu.seats().len(), 1, "no re-check took a seat: {:?}", emu.seats());

    gate.term();
    assert_eq!(gate.wait_exit(LIMIT), Some(0));
    assert!(out_seats(&emu).is_empty());
}

#[test]
fn failed_rechecks_never_stop_the_workload() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let mut gate = supervise(&emu, "ecs-task", dir.path(), &[], &workload(dir.path(), "exit 0"));
    let pid: i32 = wait_for_line(&dir.path().join("running"), LIMIT).parse().expect("pid");
    let faults = [
        Fault::Throttle,
        Fault::InternalError,
        Fault::Status(503, "ServiceUnavailable".into()),
        Fault::CloseConnection,
        Fault::Status(403, "AuthorizationException".into()),
        Fault::MalformedJson,
    ];
    let seen = rechecks(&emu);
    for fault in &faults {
        emu.inject("GetLicense", fault.clone());
    }
    wait_until("every faulty re-check and one more", Duration::from_secs(60), || rechecks(&emu) > seen + faults.len());
    assert!(alive(pid), "failed re-checks leave the workload running: {}", stderr(dir.path()));
    assert!(!dir.path().join("signals").exists());
    assert!(handover(dir.path())["license_lost"].is_null());
    assert_eq!(emu.seats().len(), 1);
    gate.term();
    assert_eq!(gate.wait_exit(LIMIT), Some(0));
}

#[test]
fn the_recheck_cadence_follows_aws_on_aws_and_on_premises() {
    let emu = Emulator::start(world_with_seats(2)).expect("emulator");
    for (workload, every) in [("ecs-task", "every 15m"), ("onprem-license", "every 24h")] {
        let dir = scratch();
        let mut cmd = Command::new(contract_bin());
        cmd.env_clear()
            .envs(emu.workload_env(workload, dir.path()).expect("env"))
            .env("PATH", "/usr/bin:/bin")
            .env("MPGATE_ENTITLEMENTS_DIR", dir.path())
            .env("MPGATE_ALLOW_NOT_PID1", "1")
            .args(["supervise", "-v", "--", "true"])
            .stdin(Stdio::null());
        let out = cmd.output().expect("supervise");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{workload}: {text}");
        assert!(text.contains(&format!("re-checks license {CONTRACT_LICENSE} {every} (±10 %)")), "{workload}: {text}");
    }
    assert!(out_seats(&emu).is_empty());
}
