//! Seat hygiene: the supervisor holds the seat while the workload runs, extends it, and returns it on
//! SIGTERM and on exit; a killed supervisor leaks it for at most one TTL.

use super::*;

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
    gate(&emu, "ecs-task", dir.path()).args(["supervise", "--", "true"]).run().expect_status(80).check();
    emu.advance_clock(Duration::from_secs(59 * 60));
    gate(&emu, "ecs-task", dir.path()).args(["supervise", "--", "true"]).run().expect_status(80).check();
    emu.advance_clock(Duration::from_secs(61));
    gate(&emu, "ecs-task", dir.path()).args(["supervise", "-q", "--", "true"]).run().expect_status(0).check();
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
