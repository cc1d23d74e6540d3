//! The hour's records without a burst (`--meter-spread`): while the workload runs, each dimension's
//! record of the hour that closed goes out at its slot, drawn in [0, spread] after the hour's start;
//! the exit flush does not wait for it; a restart inside the window loses nothing and bills nothing
//! twice; a spread out of bounds is refused before any AWS call. The pod's clock (and the emulator's)
//! is put just before an hour boundary (`MPGATE_TEST_CLOCK_OFFSET`); the slots are drawn from
//! `MPGATE_TEST_SPREAD_SEED`, itself from the test's printed seed (`MPGATE_TEST_SEED` repeats it).

use super::{assert_once_per_hour, hour_of, ledger, metered_bin, now, stderr_of, total, HOUR};
use crate::support::{alive, scratch, test_seed, wait_until, Run, Spawned};
use mpgate_emulator::{Emulator, Recorded, World};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Seconds from the start of a run to the pod's next hour boundary: time for the start-up dry runs
/// and for the workload to record its usage in the hour that is still open.
const LEAD: u64 = 10;

/// A pod whose clock (and the emulator's) reaches the next hour boundary `LEAD` seconds from now.
struct Pod {
    emu: Emulator,
    offset: u64,
    /// The boundary, by the pod's clock.
    boundary: u64,
}

impl Pod {
    fn new() -> Pod {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let offset = (2 * HOUR - now() % HOUR - LEAD) % HOUR;
        emu.advance_clock(Duration::from_secs(offset));
        Pod { emu, offset, boundary: hour_of(now() + offset) + HOUR }
    }

    /// `mpgate supervise -v` with `--meter-spread` from `spread` (`MPGATE_METER_SPREAD`) and slots from
    /// `seed`; the workload records 4 `requests` and 2 `gb_processed` now (with `record`), writes its pid
    /// to `dir/pid` and runs until SIGTERM.
    fn supervise(&self, dir: &Path, spread: &str, seed: u64, record: bool) -> Spawned {
        let d = dir.display();
        let usage = if record {
            format!(
                "t=$(( $(date +%s) + {} )); echo \"$t requests 4\" >> \"$MPGATE_USAGE_FILE\"; \
                 echo \"$t gb_processed 2\" >> \"$MPGATE_USAGE_FILE\"; echo $t > {d}/t; ",
                self.offset
            )
        } else {
            String::new()
        };
        let script =
            format!("trap 'exit 0' TERM; echo $$ > {d}/pid; {usage}touch {d}/ready; while :; do sleep 0.05; done");
        let _ = std::fs::remove_file(dir.join("ready"));
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr")).expect("stderr");
        let mut cmd = Command::new(metered_bin());
        cmd.env_clear()
            .envs(self.emu.workload_env("ecs-task", dir).expect("env"))
            .env("PATH", "/usr/bin:/bin")
            .env("MPGATE_SPOOL_DIR", dir.join("spool"))
            .env("MPGATE_ALLOW_NOT_PID1", "1")
            .env("MPGATE_DEADLINE", "20s")
            .env("MPGATE_TEST_CLOCK_OFFSET", self.offset.to_string())
            .env("MPGATE_TEST_SPREAD_SEED", seed.to_string())
            .env("MPGATE_METER_SPREAD", spread)
            .args(["supervise", "-v", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = Spawned::spawn(&mut cmd, "the metered supervisor");
        wait_until("the workload", Duration::from_secs(20), || dir.join("ready").exists());
        if record {
            let t: u64 = std::fs::read_to_string(dir.join("t")).expect("t").trim().parse().expect("seconds");
            assert_eq!(hour_of(t) + HOUR, self.boundary, "the usage was recorded in the hour before the boundary");
        }
        child
    }

    /// Real (not dry-run) MeterUsage requests AWS accepted for `dimension`, arrival by the pod's clock
    /// in milliseconds.
    fn arrivals(&self, dimension: &str) -> Vec<u64> {
        accepted(&self.emu.requests(), dimension).into_iter().map(|ms| ms + self.offset * 1000).collect()
    }
}

fn accepted(requests: &[Recorded], dimension: &str) -> Vec<u64> {
    requests
        .iter()
        .filter(|r| r.op == "MeterUsage" && r.status == 200 && !r.body.contains("\"DryRun\":true"))
        .filter(|r| r.body.contains(&format!("\"UsageDimension\":\"{dimension}\"")))
        .map(|r| r.at_unix_ms)
        .collect()
}

/// The slot the supervisor drew for `dimension` (its `-v` line): milliseconds after the hour, and
/// the spread it names, in seconds.
fn slot(dir: &Path, dimension: &str) -> Option<(u64, u64)> {
    let stderr = stderr_of(dir);
    let line = stderr.lines().rev().find(|l| l.contains(&format!("MeterUsage slot: dimension {dimension},")))?;
    let (_, rest) = line.split_once(", ")?.1.split_once(", ")?;
    let (secs, rest) = rest.split_once(" s into the hour (spread ")?;
    let (s, ms) = secs.split_once('.')?;
    let spread = rest.strip_suffix(" s)")?;
    Some((s.parse::<u64>().ok()? * 1000 + ms.parse::<u64>().ok()?, spread.parse().ok()?))
}

/// The pid the workload wrote to `dir/pid`.
fn workload_pid(dir: &Path) -> i32 {
    std::fs::read_to_string(dir.join("pid")).expect("pid").trim().parse().expect("pid")
}

/// With a spread of 30 s each dimension's record of the closed hour arrives at or after its slot,
/// within the spread (plus a poll), not at the top of the hour; the slot is drawn once.
#[test]
fn a_closed_hour_goes_out_at_its_slot_within_the_spread_not_at_the_top_of_the_hour() {
    let seed = test_seed("a_closed_hour_goes_out_at_its_slot_within_the_spread_not_at_the_top_of_the_hour");
    let pod = Pod::new();
    let dir = scratch();
    let mut child = pod.supervise(dir.path(), "30s", seed, true);
    wait_until("both records of the closed hour", Duration::from_secs(LEAD + 30 + 20), || ledger(&pod.emu).len() >= 2);
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&pod.emu);
    assert_once_per_hour(&records);
    assert_eq!((records.len(), total(&records, "requests"), total(&records, "gb_processed")), (2, 4, 2));
    let b = pod.boundary * 1000;
    for dimension in ["requests", "gb_processed"] {
        let (after, spread) =
            slot(dir.path(), dimension).unwrap_or_else(|| panic!("no slot line: {}", stderr_of(dir.path())));
        assert_eq!(spread, 30);
        assert!(after <= 30_000, "{dimension}: slot {after} ms past the 30 s spread");
        let lines = stderr_of(dir.path()).matches(&format!("MeterUsage slot: dimension {dimension},")).count();
        assert_eq!(lines, 1, "{dimension}: one slot per hour: {}", stderr_of(dir.path()));
        let arrivals = pod.arrivals(dimension);
        assert_eq!(arrivals.len(), 1, "{dimension}: {arrivals:?}");
        let at = arrivals[0];
        println!("{dimension}: slot {after} ms, arrived {} ms after the hour", at.saturating_sub(b));
        assert!(
            at >= b + after,
            "{dimension}: arrived {} ms after the hour, before its slot at {after} ms",
            at as i64 - b as i64
        );
        // One 5 s poll may pass between the boundary and the draw; the send follows the slot at once.
        assert!(
            at <= b + after.max(5_000) + 3_000,
            "{dimension}: arrived {} ms after the hour, slot {after} ms",
            at - b
        );
        if after >= 1000 {
            assert!(at >= b + 1000, "{dimension}: sent in the hour's first second");
        }
    }
}

/// SIGTERM inside the window: the flush sends the closed hour at once, without waiting for the
/// slots (here within a 30-minute spread).
#[test]
fn sigterm_inside_the_spread_window_sends_the_closed_hour_at_once() {
    let seed = test_seed("sigterm_inside_the_spread_window_sends_the_closed_hour_at_once");
    let pod = Pod::new();
    let dir = scratch();
    let mut child = pod.supervise(dir.path(), "30m", seed, true);
    wait_until("both slots drawn", Duration::from_secs(LEAD + 15), || {
        slot(dir.path(), "requests").is_some() && slot(dir.path(), "gb_processed").is_some()
    });
    let term_at = (now() + pod.offset) * 1000;
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(15)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&pod.emu);
    assert_once_per_hour(&records);
    assert_eq!((total(&records, "requests"), total(&records, "gb_processed")), (4, 2), "{}", stderr_of(dir.path()));
    for dimension in ["requests", "gb_processed"] {
        let (after, _) = slot(dir.path(), dimension).expect("slot");
        let arrivals = pod.arrivals(dimension);
        assert_eq!(arrivals.len(), 1, "{dimension}: {arrivals:?}");
        let slot_at = pod.boundary * 1000 + after;
        if slot_at > term_at + 1000 {
            assert!(arrivals[0] < slot_at, "{dimension}: the flush waited for the slot");
            assert!(arrivals[0] + 1000 >= term_at, "{dimension}: sent before SIGTERM, ahead of its slot");
        } else {
            println!("{dimension}: slot {after} ms had come before SIGTERM; sent at it");
        }
    }
}

/// A supervisor SIGKILLed inside the window, before its slots, and started again on the same spool
/// (new slots, a shorter spread): the closed hour is sent once, in full, at the new slots.
#[test]
fn a_restart_inside_the_spread_window_loses_nothing_and_sends_nothing_twice() {
    let seed = test_seed("a_restart_inside_the_spread_window_loses_nothing_and_sends_nothing_twice");
    let pod = Pod::new();
    let dir = scratch();
    let mut first = pod.supervise(dir.path(), "30m", seed, true);
    wait_until("both slots drawn", Duration::from_secs(LEAD + 15), || {
        slot(dir.path(), "requests").is_some() && slot(dir.path(), "gb_processed").is_some()
    });
    first.kill();
    let orphan = workload_pid(dir.path());
    let _ = kill(Pid::from_raw(orphan), Signal::SIGKILL);
    wait_until("the orphaned workload gone", Duration::from_secs(10), || !alive(orphan));
    // A slot under a second or two may have come before the kill: that record is not sent again.
    let before: Vec<String> = ledger(&pod.emu).into_iter().map(|r| r.dimension).collect();
    println!("records sent before the kill: {before:?}");
    let mut second = pod.supervise(dir.path(), "20s", seed.wrapping_add(1), false);
    wait_until("both records of the closed hour", Duration::from_secs(20 + 20), || ledger(&pod.emu).len() >= 2);
    second.term();
    assert_eq!(second.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&pod.emu);
    assert_once_per_hour(&records);
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!((total(&records, "requests"), total(&records, "gb_processed")), (4, 2), "{}", stderr_of(dir.path()));
    for dimension in ["requests", "gb_processed"] {
        let arrivals = pod.arrivals(dimension);
        assert_eq!(arrivals.len(), 1, "{dimension}: sent once: {arrivals:?}");
        if before.iter().any(|d| d == dimension) {
            continue;
        }
        let (after, spread) = slot(dir.path(), dimension).expect("the second run's slot");
        assert_eq!(spread, 20, "the last slot line is the second run's");
        assert!(arrivals[0] >= pod.boundary * 1000 + after, "{dimension}: before the second run's slot");
    }
}

/// `--meter-spread` / `MPGATE_METER_SPREAD` out of 0..30m: exit 2 with one line naming the option,
/// before any AWS call and before the workload starts.
#[test]
fn a_meter_spread_out_of_bounds_is_refused_before_any_aws_call() {
    let cases: [(&[&str], Option<&str>, &str); 5] = [
        (&["--meter-spread", "31m"], None, "--meter-spread"),
        (&["--meter-spread=-5s"], None, "--meter-spread"),
        (&[], Some("1h"), "MPGATE_METER_SPREAD"),
        (&[], Some("soon"), "MPGATE_METER_SPREAD"),
        (&[], Some("1801s"), "MPGATE_METER_SPREAD"),
    ];
    for (flags, variable, named) in cases {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let dir = scratch();
        let mut run = Run::bin(metered_bin())
            .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
            .env("PATH", "/usr/bin:/bin")
            .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
            .env("MPGATE_ALLOW_NOT_PID1", "1")
            .arg("supervise")
            .args(flags.iter().copied());
        if let Some(v) = variable {
            run = run.env("MPGATE_METER_SPREAD", v);
        }
        run.args(["--", "/bin/sh", "-c", "touch \"$0\"", &dir.path().join("ran").display().to_string()])
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(named)
            .check();
        assert!(!dir.path().join("ran").exists(), "{flags:?} {variable:?}: the workload started");
        assert!(emu.requests().is_empty(), "{flags:?} {variable:?}: an AWS call: {:?}", emu.requests());
    }
}
