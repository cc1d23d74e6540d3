//! A task's first hour, and usage that cannot be sent at exit. A record is dated at the first usage
//! of its hour, so the first hour of a task that started mid-hour is not dated before the task
//! started (AWS may refuse that, docs/aws-behaviour.md §2.3); and every unit not sent at exit is
//! named, per {dimension, hour}, and kept for the next start on the spool.

use super::{
    assert_once_per_hour, hour_of, hour_text, ledger, now, seed, spawn, spawn_as, spawn_with, stderr_of, total,
    unsent_lines, HOUR,
};
use crate::support::{scratch, wait_for_line, wait_until, Spawned};
use mpgate_emulator::{clock, BeforeStartAnswer, Emulator, Fault, World, FRESH_TASK, METERED};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// The demo's `fresh-task` starts when its world is built, seconds before the gate, and records
/// usage and is stopped at once: its usage is billed, dated inside the hour and not before the task
/// started, under either answer AWS may give to usage dated before the start. (Dated at the top of
/// the hour instead, it would be refused and lost, but in a world built in an hour's first second.)
#[test]
fn a_task_stopped_within_its_first_hour_bills_its_usage_dated_after_it_started() {
    for before_start in [BeforeStartAnswer::TimestampOutOfBounds, BeforeStartAnswer::Accept] {
        let mut world = World::demo();
        world.products.iter_mut().find(|p| p.code == METERED).expect("metered").before_start = before_start;
        let started = world.workloads.iter().find(|w| w.id == FRESH_TASK).and_then(|w| w.started.clone());
        let started = started.and_then(|s| clock::parse_rfc3339(&s)).expect("fresh-task's start");
        let started = started.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
        let emu = Emulator::start(world).expect("emulator");
        let dir = scratch();
        let d = dir.path().display();
        let script = format!(
            "trap 'exit 0' TERM; t=$(date +%s); echo \"$t requests 5\" >> \"$MPGATE_USAGE_FILE\"; \
             echo \"$((t + 1)) gb_processed 2\" >> \"$MPGATE_USAGE_FILE\"; \"$GATE\" meter requests 1 2>/dev/null; \
             touch {d}/ready; while :; do sleep 0.05; done"
        );
        let mut child = spawn_as(&emu, FRESH_TASK, dir.path(), &script, &[]);
        wait_until("workload ready", Duration::from_secs(20), || dir.path().join("ready").exists());
        child.term();
        assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
        let records = ledger(&emu);
        assert_once_per_hour(&records);
        let err = stderr_of(dir.path());
        assert_eq!(total(&records, "requests"), 6, "{before_start:?}: {records:#?}\n{err}");
        assert_eq!(total(&records, "gb_processed"), 2, "{before_start:?}: {records:#?}\n{err}");
        assert!(records.iter().all(|r| r.timestamp_millis >= started as i64 * 1000), "{before_start:?}: {records:#?}");
        assert!(unsent_lines(dir.path()).is_empty(), "{err}");
    }
}

/// The supervisor with a workload that, once admitted, waits for `dir/go`, then records `lines`
/// (each `<dimension> <quantity>`, stamped with the time it runs, which it also writes to `dir/t`)
/// and exits 4.
fn admitted_then_record(emu: &Emulator, dir: &Path, lines: &[&str], extra: &[(&str, String)]) -> Spawned {
    let d = dir.display();
    let records: String = lines.iter().map(|l| format!("echo \"$t {l}\" >> \"$MPGATE_USAGE_FILE\"; ")).collect();
    let script = format!(
        "touch {d}/ready; while [ ! -f {d}/go ]; do sleep 0.05; done; t=$(date +%s); {records}echo $t > {d}/t; exit 4"
    );
    let child = spawn_with(emu, dir, &script, extra);
    wait_until("the workload admitted", Duration::from_secs(20), || dir.join("ready").exists());
    child
}

/// The time `admitted_then_record`'s workload stamped its records with.
fn recorded_at(dir: &Path) -> u64 {
    wait_for_line(&dir.join("t"), Duration::from_secs(20)).parse().expect("seconds")
}

/// AWS fails every MeterUsage for the whole flush: each {dimension, hour} left is named on one line
/// with its quantity and why; the next start on the spool sends exactly that.
#[test]
fn usage_not_sent_at_exit_is_named_per_dimension_and_hour_and_sent_by_the_next_start() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let past = hour_of(now()) - 2 * HOUR;
    let lines = ["requests 5", "gb_processed 7"];
    let mut child = admitted_then_record(&emu, dir.path(), &lines, &[("MPGATE_FLUSH_DEADLINE", "2s".into())]);
    emu.inject_random("MeterUsage", Fault::InternalError, 1.0);
    seed(dir.path(), &[format!("{} requests 3", past + 7)]);
    std::fs::write(dir.path().join("go"), "").expect("go");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(4), "{}", stderr_of(dir.path()));
    assert!(ledger(&emu).is_empty());
    let hour = hour_of(recorded_at(dir.path()));
    let lines = unsent_lines(dir.path());
    for (units, dimension, h) in [(3, "requests", past), (7, "gb_processed", hour), (5, "requests", hour)] {
        let start = format!(
            "mpgate: warning: {units} units of {dimension} for the hour starting {} were not sent (",
            hour_text(h)
        );
        let line =
            lines.iter().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no line {start:?} in {lines:#?}"));
        assert!(line.contains("the 2s flush deadline passed"), "{line}");
        assert!(line.ends_with("state.json and the next start on this spool sends them"), "{line}");
    }
    assert_eq!(lines.len(), 3, "{lines:#?}");

    emu.clear_faults("MeterUsage");
    std::fs::remove_file(dir.path().join("stderr")).expect("a fresh stderr");
    let mut child = spawn(&emu, dir.path(), "exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    assert_eq!((total(&records, "requests"), total(&records, "gb_processed")), (8, 7), "{records:#?}");
    assert!(unsent_lines(dir.path()).is_empty(), "{}", stderr_of(dir.path()));
}

/// AWS refuses the hour of the only record at exit (`TimestampOutOfBoundsException`): its usage rolls
/// into the next hour, which has not begun, so it cannot be sent now; that is said, not kept quiet.
#[test]
fn usage_rolled_into_an_hour_that_has_not_begun_at_exit_is_named_and_kept() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let mut child = admitted_then_record(&emu, dir.path(), &["requests 6"], &[]);
    emu.inject("MeterUsage", Fault::Status(400, "TimestampOutOfBoundsException".into()));
    std::fs::write(dir.path().join("go"), "").expect("go");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(4), "{}", stderr_of(dir.path()));
    assert!(ledger(&emu).is_empty());
    let next = hour_of(recorded_at(dir.path())) + HOUR;
    let lines = unsent_lines(dir.path());
    let start =
        format!("mpgate: warning: 6 units of requests for the hour starting {} were not sent (", hour_text(next));
    assert!(lines.len() == 1 && lines[0].starts_with(&start), "{start:?} in {lines:#?}");
    assert!(lines[0].contains("had not begun at exit"), "{}", lines[0]);
    let state = std::fs::read_to_string(dir.path().join("spool/state.json")).expect("state");
    assert!(state.contains(&format!("\"hour\":{next}")) && state.contains("\"\":6"), "{state}");
}
