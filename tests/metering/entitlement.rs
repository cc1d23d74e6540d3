//! Entitlement while the workload runs. AWS checks the subscription on a task's first call only
//! (docs/aws-behaviour.md §2.2, §2.3), and whether a MeterUsage dry run checks it at all, or counts as
//! that first call, is not documented (§10.4). So a `CustomerNotEntitledException` to a usage record
//! is a refusal (`--on-not-entitled stop`, the default: the workload is stopped and mpgate exits 80),
//! and each test runs under every reading the emulator can give the dry run.

use super::{hour_of, ledger, now, seed, spawn_as, stderr_of, total, unsent_lines, HOUR};
use crate::support::{gate_bin, scratch, wait_until, Run};
use mpgate_emulator::{DryRunChecks, Emulator, World, ACCOUNT, METERED, PAID};
use std::path::Path;
use std::time::{Duration, Instant};

const READINGS: [DryRunChecks; 3] = [DryRunChecks::Full, DryRunChecks::FullFirstCall, DryRunChecks::IamOnly];

fn world(checks: DryRunChecks) -> World {
    let mut world = World::demo();
    for p in world.products.iter_mut().filter(|p| p.code == METERED) {
        p.dry_run_checks = checks;
    }
    world
}

/// The refusal line mpgate exits with, and that it also went to the termination log.
fn assert_refused_as_not_entitled(dir: &Path) {
    let err = stderr_of(dir);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("mpgate: not-entitled: MeterUsage answered CustomerNotEntitledException"), "{err}");
    assert!(last.contains(&format!("must subscribe to product {METERED}")), "{last}");
    let log = std::fs::read_to_string(dir.join("termination-log")).expect("termination log");
    assert_eq!(log.trim_end(), last);
}

/// An unsubscribed buyer never keeps a workload running: refused at the dry run where it checks the
/// subscription, and at the first usage record where it does not (the workload is stopped).
#[test]
fn an_unsubscribed_buyer_is_refused_under_every_reading_of_the_dry_run() {
    for checks in READINGS {
        let emu = Emulator::start(world(checks)).expect("emulator");
        let dir = scratch();
        std::fs::write(dir.path().join("termination-log"), "").expect("termination log");
        seed(dir.path(), &[format!("{} requests 4", hour_of(now()) - HOUR + 5)]);
        let d = dir.path().display();
        let script = format!("trap 'touch {d}/stopped; exit 0' TERM; touch {d}/ran; while :; do sleep 0.05; done");
        let mut child = spawn_as(&emu, "unsubscribed-task", dir.path(), &script, &[]);
        assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(80), "{checks:?}: {}", stderr_of(dir.path()));
        assert_refused_as_not_entitled(dir.path());
        assert!(ledger(&emu).is_empty(), "{checks:?}");
        let ran = dir.path().join("ran").exists();
        assert_eq!(ran, checks == DryRunChecks::IamOnly, "{checks:?}: the workload ran only past an IAM-only dry run");
        if ran {
            assert!(dir.path().join("stopped").exists(), "the workload got SIGTERM");
            let lines = unsent_lines(dir.path());
            assert!(lines.len() == 1 && lines[0].contains("4 units of requests"), "{lines:#?}");
            assert!(lines[0].contains("(MeterUsage answered CustomerNotEntitledException"), "{}", lines[0]);
            let state = std::fs::read_to_string(dir.path().join("spool/state.json")).expect("state");
            assert!(state.contains("\"requests\""), "the usage stays in the spool: {state}");
        }
    }
}

/// A workload that ignores SIGTERM is killed once the grace period (10 s) has passed.
#[test]
fn a_workload_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let emu = Emulator::start(world(DryRunChecks::IamOnly)).expect("emulator");
    let dir = scratch();
    std::fs::write(dir.path().join("termination-log"), "").expect("termination log");
    let d = dir.path().display();
    let script = format!("trap '' TERM; touch {d}/ran; while :; do sleep 0.05; done");
    let mut child = spawn_as(&emu, "unsubscribed-task", dir.path(), &script, &[]);
    wait_until("the workload ran", Duration::from_secs(20), || dir.path().join("ran").exists());
    seed(dir.path(), &[format!("{} requests 1", hour_of(now()) - HOUR)]);
    let seeded = Instant::now();
    assert_eq!(child.wait_exit(Duration::from_secs(40)), Some(80), "{}", stderr_of(dir.path()));
    assert!(seeded.elapsed() >= Duration::from_secs(10), "killed before the grace period: {:?}", seeded.elapsed());
    assert_refused_as_not_entitled(dir.path());
}

/// `--on-not-entitled warn` (here as MPGATE_ON_NOT_ENTITLED): the refusal is reported, the workload
/// keeps running, and its usage is kept.
#[test]
fn with_warn_the_workload_keeps_running_and_the_usage_is_kept() {
    let emu = Emulator::start(world(DryRunChecks::IamOnly)).expect("emulator");
    let dir = scratch();
    seed(dir.path(), &[format!("{} requests 4", hour_of(now()) - HOUR + 5)]);
    let extra = [("MPGATE_ON_NOT_ENTITLED", "warn".to_string())];
    let mut child =
        spawn_as(&emu, "unsubscribed-task", dir.path(), "trap 'exit 3' TERM; while :; do sleep 0.05; done", &extra);
    wait_until("the refusal reported", Duration::from_secs(20), || {
        stderr_of(dir.path()).contains("CustomerNotEntitledException")
    });
    let err = stderr_of(dir.path());
    assert!(err.contains("the workload keeps running (--on-not-entitled warn)"), "{err}");
    assert!(child.try_wait().is_none(), "the workload still runs:\n{err}");
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(3), "the workload's status: {}", stderr_of(dir.path()));
    let lines = unsent_lines(dir.path());
    assert!(lines.len() == 1 && lines[0].contains("4 units of requests"), "{lines:#?}");
    assert!(ledger(&emu).is_empty());
}

/// The buyer unsubscribes after the start and before the workload's first record: under every
/// reading mpgate ends where AWS lets it. Where the dry run was the task's first call, AWS keeps
/// metering (and billing) the task, so it keeps running; otherwise the first record is refused and
/// the workload stopped.
#[test]
fn an_unsubscribe_before_the_first_record_stops_the_workload_unless_aws_keeps_billing() {
    for checks in READINGS {
        let emu = Emulator::start(world(checks)).expect("emulator");
        let dir = scratch();
        std::fs::write(dir.path().join("termination-log"), "").expect("termination log");
        let d = dir.path().display();
        let script = format!(
            "trap 'exit 0' TERM; touch {d}/ready; while [ ! -f {d}/go ]; do sleep 0.05; done; \
             echo \"{} requests 4\" >> \"$MPGATE_USAGE_FILE\"; while :; do sleep 0.05; done",
            hour_of(now()) - HOUR + 9
        );
        let mut child = spawn_as(&emu, "ecs-task", dir.path(), &script, &[]);
        wait_until("the workload admitted", Duration::from_secs(20), || dir.path().join("ready").exists());
        emu.set_subscribed(ACCOUNT, METERED, false);
        std::fs::write(dir.path().join("go"), "").expect("go");
        if checks == DryRunChecks::FullFirstCall {
            wait_until("the record billed", Duration::from_secs(20), || total(&ledger(&emu), "requests") == 4);
            assert!(child.try_wait().is_none(), "{checks:?}: still running: {}", stderr_of(dir.path()));
            child.term();
            assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
        } else {
            assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(80), "{checks:?}: {}", stderr_of(dir.path()));
            assert_refused_as_not_entitled(dir.path());
            assert!(ledger(&emu).is_empty(), "{checks:?}");
        }
    }
}

/// After a task's first record, AWS no longer checks the subscription: an unsubscribe changes
/// nothing for the running task's MeterUsage, nor for a RegisterUsage task's later starts.
#[test]
fn an_unsubscribe_after_a_tasks_first_call_changes_nothing_for_that_task() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let cur = hour_of(now());
    seed(dir.path(), &[format!("{} requests 1", cur - 2 * HOUR + 3)]);
    let mut child = spawn_as(&emu, "ecs-task", dir.path(), "trap 'exit 0' TERM; while :; do sleep 0.05; done", &[]);
    wait_until("the first record", Duration::from_secs(20), || total(&ledger(&emu), "requests") == 1);
    emu.set_subscribed(ACCOUNT, METERED, false);
    seed(dir.path(), &[format!("{} requests 2", cur - HOUR + 3)]);
    wait_until("the second record", Duration::from_secs(20), || total(&ledger(&emu), "requests") == 3);
    assert!(child.try_wait().is_none(), "{}", stderr_of(dir.path()));
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    assert!(!stderr_of(dir.path()).contains("CustomerNotEntitledException"), "{}", stderr_of(dir.path()));

    // RegisterUsage (hourly pricing): the task restarts its container after the unsubscribe.
    let hourly = |workload: &str, dir: &Path| {
        Run::bin(gate_bin())
            .envs(emu.workload_env(workload, dir).expect("env"))
            .env("MPGATE_DEADLINE", "20s")
            .args(["exec", "-q", "--", "/bin/true"])
            .run()
    };
    let dir = scratch();
    hourly("ecs-task", dir.path()).expect_status(0).check();
    emu.set_subscribed(ACCOUNT, PAID, false);
    hourly("ecs-task", dir.path()).expect_status(0).check();
    hourly("ecs-ec2-old-agent", dir.path())
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("RegisterUsage answered CustomerNotEntitledException")
        .check();
}
