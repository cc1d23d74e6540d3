//! Crashes and restarts on one spool: SIGKILL of the supervisor or the workload at any instant loses
//! nothing and bills nothing twice; consumed usage is released from disk.

use super::{assert_once_per_hour, hour_of, ledger, now, seed, spawn, stderr_of, total, HOUR};
use crate::support::{alive, scratch, test_seed, wait_for_line, wait_until, Rng};
use mpgate_emulator::{Emulator, World};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::Duration;

/// Spool growth: consumed usage is released from disk (a hole, same size, same offsets), and
/// a supervisor killed after the release restarts without losing or re-billing anything.
#[test]
fn consumed_usage_is_released_from_disk_and_a_restart_after_it_loses_nothing() {
    use std::os::unix::fs::MetadataExt as _;
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let h3 = hour_of(now()) - 3 * HOUR;
    let n = 50_000;
    seed(dir.path(), &vec![format!("{} requests 1", h3 + 1); n]);
    let log = dir.path().join("spool/usage.log");
    let size = std::fs::metadata(&log).expect("log").len();
    assert!(size > 1_000_000);
    let d = dir.path().display();
    let mut child = spawn(&emu, dir.path(), &format!("echo $$ > {d}/pid; while :; do sleep 0.05; done"));
    wait_until("the hour's record", Duration::from_secs(30), || !ledger(&emu).is_empty());
    let on_disk = || std::fs::metadata(&log).map_or(u64::MAX, |m| m.blocks() * 512);
    wait_until("consumed blocks released", Duration::from_secs(10), || on_disk() < 128 * 1024);
    assert_eq!(std::fs::metadata(&log).expect("log").len(), size, "the size and every offset stay");
    let pid: i32 = wait_for_line(&dir.path().join("pid"), Duration::from_secs(20)).parse().expect("pid");
    child.kill();
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    seed(dir.path(), &vec![format!("{} requests 2", h3 + HOUR + 1); 10]);
    let mut child = spawn(&emu, dir.path(), "exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    let got: Vec<(u64, i64)> = records.iter().map(|r| (r.hour as u64, r.quantity)).collect();
    assert_eq!(got, vec![(h3, n as i64), (h3 + HOUR, 20)], "{records:#?}");
    let err = stderr_of(dir.path());
    assert!(err.lines().all(|l| !l.contains("warning") || l.contains("test flavour")), "{err}");
}

/// SIGKILL of the workload (not of mpgate): mpgate exits 128+9 after sending what it recorded.
#[test]
fn a_sigkilled_workload_is_flushed_and_its_status_passed_on() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let d = dir.path().display();
    let script = format!("\"$GATE\" meter requests 6 2>/dev/null; echo $$ > {d}/pid; while :; do sleep 0.05; done");
    let mut child = spawn(&emu, dir.path(), &script);
    let pid: i32 = wait_for_line(&dir.path().join("pid"), Duration::from_secs(20)).parse().expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the workload");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(137), "{}", stderr_of(dir.path()));
    assert_eq!(total(&ledger(&emu), "requests"), 6, "{}", stderr_of(dir.path()));
}

/// Every line `crash_loop`'s workload writes is `LINE` bytes and record number i has quantity
/// `i % 7 + 1`, so the size of usage.log alone (kept by compaction, which punches holes and never
/// truncates) says what the workload recorded, whatever mpgate did to the file's blocks.
const LINE: u64 = 22;

/// What the workload recorded: the sum of `requests` quantities appended to the usage file.
fn recorded(dir: &Path) -> i64 {
    let size = std::fs::metadata(dir.join("spool/usage.log")).expect("usage").len();
    assert_eq!(size % LINE, 0, "usage.log holds a partial record");
    (0..size / LINE).map(|i| (i % 7 + 1) as i64).sum()
}

/// Start, record, SIGKILL the supervisor (and its orphaned workload) at random points, `n` times;
/// then a clean start flushes: the ledger must hold exactly what was recorded.
fn crash_loop(test: &str, n: u32) {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let d = dir.path().display();
    let cur = hour_of(now());
    // Past-hour usage too, so sends are in flight when the kill lands. A new workload continues the
    // record numbering from the file's size.
    let script = format!(
        "echo $$ > {d}/pid; i=$(( $(stat -c %s \"$MPGATE_USAGE_FILE\") / {LINE} )); while :; do \
         if [ $((i % 2)) = 0 ]; then t=$(( {past} + (i % 3) * 3600 + 1 )); else t=$(date +%s); fi; \
         echo \"$t requests $((i % 7 + 1))\" >> \"$MPGATE_USAGE_FILE\"; i=$((i+1)); sleep 0.01; done",
        past = cur - 3 * HOUR
    );
    let mut rng = Rng::new(test_seed(test));
    for _ in 0..n {
        let _ = std::fs::remove_file(dir.path().join("pid"));
        let mut child = spawn(&emu, dir.path(), &script);
        let pid: i32 = wait_for_line(&dir.path().join("pid"), Duration::from_secs(20)).parse().expect("workload pid");
        std::thread::sleep(Duration::from_millis(50 + rng.below(700)));
        child.kill();
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the orphaned workload");
        wait_until("the killed workload is gone", Duration::from_secs(10), || !alive(pid));
    }
    let mut child = spawn(&emu, dir.path(), "exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(60)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    assert_eq!(total(&records, "requests"), recorded(dir.path()), "lost or double-counted:\n{}", stderr_of(dir.path()));
    assert!(!stderr_of(dir.path()).contains("not a usage record"), "{}", stderr_of(dir.path()));
}

#[test]
fn a_restart_after_sigkill_sends_nothing_twice_and_loses_nothing() {
    crash_loop("a_restart_after_sigkill_sends_nothing_twice_and_loses_nothing", 1);
}

#[test]
fn crash_loop_of_sigkills_loses_nothing_and_bills_nothing_twice() {
    crash_loop("crash_loop_of_sigkills_loses_nothing_and_bills_nothing_twice", 20);
}
