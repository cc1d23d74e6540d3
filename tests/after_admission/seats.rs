//! After admission rows: seats and signals. The license seat follows the workload, not the signal:
//! a supervisor told to stop (SIGTERM) forwards it and keeps the seat out while the workload runs,
//! and checks it in once the workload has exited, or has been killed (SIGKILL after `--stop-grace`)
//! and reaped. No start leaks a seat: a stop signal during the proof ends the start (no workload,
//! exit 128 + n, one line) and checks in the seat the checkout took; as PID 1 too, where a signal
//! without a handler would be ignored and the workload started. A build that counts seats refuses
//! `exec` (a gate that is gone cannot hold a seat) before any AWS call, naming `supervise`.
//! Runs the contract test gate (one `Seats` per container) and, in an empty root, the hourly one.

use crate::contract::{contract_bin, gate, out_seats, running, world_with_seats, LIMIT};
use crate::support::{alive, scratch, wait_for_line, wait_until, Spawned};
use mpgate_emulator::{Emulator, Fault, SeatState, World};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Command, Stdio};

/// `mpgate supervise --stop-grace GRACE -- sh -c SCRIPT` on the contract gate, stderr piped.
fn supervised(emu: &Emulator, dir: &Path, grace: &str, script: &str) -> Spawned {
    let mut cmd = Command::new(contract_bin());
    cmd.env_clear()
        .envs(emu.workload_env("ecs-task", dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_DEADLINE", "10s")
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .args(["supervise", "-q", "--stop-grace", grace, "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Spawned::spawn(&mut cmd, "the contract supervisor")
}

/// A workload that notes each SIGTERM in `dir/termed` and keeps running.
fn ignoring_term(dir: &Path) -> String {
    let trap = format!("trap 'echo term >> {}/termed' TERM", dir.display());
    running(dir, &trap, "while :; do sleep 0.05; done")
}

#[test]
fn sigterm_to_the_supervisor_of_a_workload_ignoring_it_keeps_the_seat_out_until_the_workload_is_killed() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let supervisor = supervised(&emu, dir.path(), "600s", &ignoring_term(dir.path()));
    let workload: i32 = wait_for_line(&dir.path().join("running"), LIMIT).parse().expect("workload pid");
    supervisor.term();
    wait_for_line(&dir.path().join("termed"), LIMIT);
    assert!(alive(workload), "the workload ignores SIGTERM and keeps running");
    assert_eq!(out_seats(&emu).len(), 1, "the seat stays out while the workload runs: {:?}", emu.seats());
    // The one seat is the running workload's: a second start that needs it is refused.
    let other = scratch();
    gate(&emu, "ecs-task", other.path()).args(["supervise", "--", "true"]).run().expect_status(80).check();
    assert_eq!(out_seats(&emu).len(), 1, "{:?}", emu.seats());

    // The workload ends (here: killed by its owner); then, and only then, the seat comes back.
    kill(Pid::from_raw(workload), Signal::SIGKILL).expect("kill the workload");
    supervisor.outcome(LIMIT).expect_status(137).expect_stderr_lacks("mpgate kills it").check();
    assert!(out_seats(&emu).is_empty(), "the seat is back once the workload is gone: {:?}", emu.seats());
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
    gate(&emu, "ecs-task", other.path()).args(["supervise", "-q", "--", "true"]).run().expect_status(0).check();
}

#[test]
fn a_workload_ignoring_sigterm_is_killed_after_the_stop_grace_and_only_then_is_the_seat_checked_in() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    let supervisor = supervised(&emu, dir.path(), "1s", &ignoring_term(dir.path()));
    let workload: i32 = wait_for_line(&dir.path().join("running"), LIMIT).parse().expect("workload pid");
    supervisor.term();
    let out = supervisor
        .outcome(LIMIT)
        .expect_status(137)
        .expect_stderr_contains(
            "mpgate: warning: the workload had not exited 1s after SIGTERM: mpgate kills it (SIGKILL)",
        )
        .check();
    assert!(dir.path().join("termed").exists(), "the SIGTERM was forwarded first: {}", out.stderr());
    assert!(!alive(workload), "the workload was killed and reaped before mpgate exited");
    assert_eq!(emu.seats().len(), 1);
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn, "{:?}", emu.seats());
}

#[test]
fn a_stop_signal_while_checkout_license_is_held_starts_no_workload_and_returns_the_seat() {
    for (signal, status, name) in
        [(Signal::SIGTERM, 143, "stopped-by-sigterm"), (Signal::SIGINT, 130, "stopped-by-sigint")]
    {
        let emu = Emulator::start(world_with_seats(1)).expect("emulator");
        let dir = scratch();
        emu.inject("CheckoutLicense", Fault::Held);
        let started = dir.path().join("started");
        let gate = supervised(&emu, dir.path(), "10s", &format!("echo yes > {}", started.display()));
        // The checkout has taken the seat; its answer is held: the gate is in the middle of the proof.
        wait_until("a seat checked out", LIMIT, || !emu.seats().is_empty());
        gate.signal(signal);
        emu.release_held();
        gate.outcome(LIMIT)
            .expect_status(status)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!("mpgate: {name}: {signal} arrived before the workload started"))
            .expect_stderr_contains("checked in")
            .check();
        assert!(!started.exists(), "{signal}: the workload must not start");
        assert_eq!(emu.seats().len(), 1, "{signal}: {:?}", emu.seats());
        assert_eq!(emu.seats()[0].state, SeatState::CheckedIn, "{signal}: the seat was returned: {:?}", emu.seats());
    }
}

#[test]
fn sigterm_between_the_checkout_and_its_validity_check_starts_no_workload_and_returns_the_seat() {
    let emu = Emulator::start(world_with_seats(1)).expect("emulator");
    let dir = scratch();
    emu.inject("GetLicense", Fault::Held);
    let started = dir.path().join("started");
    let gate = supervised(&emu, dir.path(), "10s", &format!("echo yes > {}", started.display()));
    // The seat is out and GetLicense (the license's validity) has not answered yet.
    wait_until("GetLicense reaching the emulator", LIMIT, || emu.requests().iter().any(|r| r.op == "GetLicense"));
    gate.term();
    emu.release_held();
    gate.outcome(LIMIT)
        .expect_status(143)
        .expect_one_refusal_line()
        .expect_stderr_contains("mpgate: stopped-by-sigterm: SIGTERM arrived before the workload started")
        .expect_stderr_contains("checked in")
        .check();
    assert!(!started.exists(), "the workload must not start");
    assert_eq!(emu.seats().len(), 1, "{:?}", emu.seats());
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn, "{:?}", emu.seats());
}

#[test]
fn sighup_during_register_usage_in_exec_starts_no_workload_and_exits_129() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    emu.inject("RegisterUsage", Fault::Held);
    let report = dir.path().join("report.json");
    let mut cmd = Command::new(crate::support::gate_bin());
    cmd.env_clear()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("MPGATE_TERMINATION_LOG", dir.path().join("termination-log"))
        .args(["exec", "--", crate::support::workload_bin().to_str().expect("utf-8 path"), "report"])
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let gate = Spawned::spawn(&mut cmd, "the hourly gate");
    wait_until("RegisterUsage reaching the emulator", LIMIT, || emu.requests().iter().any(|r| r.op == "RegisterUsage"));
    gate.signal(Signal::SIGHUP);
    emu.release_held();
    gate.outcome(LIMIT)
        .expect_status(129)
        .expect_one_refusal_line()
        .expect_stderr_contains("mpgate: stopped-by-sighup: SIGHUP arrived before the workload started")
        .check();
    assert!(!report.exists(), "the workload must not start");
}

#[test]
fn exec_on_a_build_that_counts_seats_is_refused_before_any_aws_call_naming_supervise() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["exec", "--", "true"])
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .expect_stderr_contains("counts seats (Seats)")
        .expect_stderr_contains("use `mpgate supervise -- CMD` instead of `mpgate exec`")
        .check();
    assert!(emu.requests().is_empty(), "no AWS call, not even credentials: {:?}", emu.requests());
    assert!(emu.seats().is_empty());
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn docker_stop_during_register_usage_as_pid_1_starts_no_workload_and_exits_143() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = crate::rootfs::rootfs("mpgate-test");
    let env_dir = scratch();
    emu.inject("RegisterUsage", Fault::Held);
    let mut cmd = Command::new("/usr/bin/unshare");
    cmd.env_clear()
        .envs(emu.workload_env("ecs-task", env_dir.path()).expect("env"))
        .args(["--pid", "--fork", "/usr/sbin/chroot"])
        .arg(root.path())
        .args(["/mpgate", "exec", "--", "/workload", "report", "/report.json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let unshare = Spawned::spawn(&mut cmd, "the gate as PID 1");
    wait_until("RegisterUsage reaching the emulator", LIMIT, || emu.requests().iter().any(|r| r.op == "RegisterUsage"));
    // The gate is PID 1 of its namespace: what `docker stop` signals.
    let pid1 = *unshare.descendants().first().expect("the gate under unshare");
    kill(Pid::from_raw(pid1), Signal::SIGTERM).expect("SIGTERM to PID 1");
    emu.release_held();
    unshare
        .outcome(LIMIT)
        .expect_status(143)
        .expect_one_refusal_line()
        .expect_stderr_contains("mpgate: stopped-by-sigterm: SIGTERM arrived before the workload started")
        .check();
    assert!(!root.path().join("report.json").exists(), "the workload must not start");
    let line = std::fs::read_to_string(root.path().join("dev/termination-log")).expect("termination log");
    assert!(line.contains("stopped-by-sigterm"), "{line:?}");
}
