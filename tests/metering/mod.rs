//! Custom metering, end to end against the emulator: MeterUsage dry runs at start (`start`),
//! `mpgate meter` and the usage file (`record`), the hourly sender in `mpgate supervise` and the exit
//! flush (`send`), restarts and crashes (`crash`), a task's first hour (`first_hour`), records AWS
//! refuses (`refusals`) and entitlement lost or never had while the workload runs (`entitlement`).
//! Runs the test-flavour gate baked with testdata/identity-metered.env (`mpgate-test-metered`).

mod crash;
mod entitlement;
mod first_hour;
mod idempotency;
mod record;
mod refusals;
mod send;
mod spread;
mod start;

use crate::support::{dist_dir, Run, Spawned};
use mpgate_emulator::{Emulator, MeteringRecord, METERED};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

pub(super) const HOUR: u64 = 3600;

pub(super) fn metered_bin() -> PathBuf {
    let bin = dist_dir().join("mpgate-test-metered");
    assert!(bin.is_file(), "{} missing: scripts/test builds it with testdata/identity-metered.env", bin.display());
    bin
}

pub(super) fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs()
}

pub(super) fn hour_of(t: u64) -> u64 {
    t - t % HOUR
}

/// The metered gate as `workload` of `emu`, with its spool in `dir/spool`, sending closed hours at
/// once (`MPGATE_METER_SPREAD=0`).
pub(super) fn gate(emu: &Emulator, workload: &str, dir: &Path) -> Run {
    Run::bin(metered_bin())
        .envs(emu.workload_env(workload, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_SPOOL_DIR", dir.join("spool"))
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("MPGATE_TERMINATION_LOG", dir.join("termination-log"))
        .env("MPGATE_DEADLINE", "20s")
        .env("MPGATE_METER_SPREAD", "0")
}

/// `mpgate supervise -q -- sh -c script` in the background, stderr to `dir/stderr`.
pub(super) fn spawn(emu: &Emulator, dir: &Path, script: &str) -> Spawned {
    spawn_with(emu, dir, script, &[])
}

/// `spawn` with more variables for the supervisor (and so for the workload).
pub(super) fn spawn_with(emu: &Emulator, dir: &Path, script: &str, extra: &[(&str, String)]) -> Spawned {
    spawn_as(emu, "ecs-task", dir, script, extra)
}

/// `spawn_with` as the emulator's workload `workload`.
pub(super) fn spawn_as(emu: &Emulator, workload: &str, dir: &Path, script: &str, extra: &[(&str, String)]) -> Spawned {
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr")).expect("stderr file");
    let mut cmd = Command::new(metered_bin());
    cmd.env_clear()
        .envs(emu.workload_env(workload, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_SPOOL_DIR", dir.join("spool"))
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("MPGATE_DEADLINE", "20s")
        .env("MPGATE_TERMINATION_LOG", dir.join("termination-log"))
        .env("GATE", metered_bin())
        // Closed hours go out at once unless a test sets a spread (tests/metering/spread.rs).
        .env("MPGATE_METER_SPREAD", "0")
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .args(["supervise", "-q", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    Spawned::spawn(&mut cmd, "the metered supervisor")
}

pub(super) fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}

/// Real (not dry-run) records the emulator accepted.
pub(super) fn ledger(emu: &Emulator) -> Vec<MeteringRecord> {
    emu.metering().into_iter().filter(|r| r.op == "MeterUsage").collect()
}

pub(super) fn seed(dir: &Path, lines: &[String]) {
    std::fs::create_dir_all(dir.join("spool")).expect("spool");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("spool/usage.log")).expect("log");
    for l in lines {
        f.write_all(format!("{l}\n").as_bytes()).expect("seed");
    }
}

/// Every {dimension, hour} at most once, each timestamp inside its hour.
pub(super) fn assert_once_per_hour(records: &[MeteringRecord]) {
    let mut keys: Vec<(String, i64)> = records.iter().map(|r| (r.dimension.clone(), r.hour)).collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a {{dimension, hour}} was billed twice: {records:#?}");
    for r in records {
        assert!((r.hour * 1000..(r.hour + 3600) * 1000).contains(&r.timestamp_millis), "Timestamp in its hour: {r:?}");
        assert_eq!(r.product_code, METERED);
    }
}

/// The `mpgate: warning:` lines of `dir/stderr` that name usage not sent at exit.
pub(super) fn unsent_lines(dir: &Path) -> Vec<String> {
    stderr_of(dir).lines().filter(|l| l.contains(" were not sent (")).map(str::to_string).collect()
}

/// An hour as the gate's lines write it: RFC 3339 UTC.
pub(super) fn hour_text(secs: u64) -> String {
    mpgate_emulator::clock::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

pub(super) fn total(records: &[MeteringRecord], dimension: &str) -> i64 {
    records.iter().filter(|r| r.dimension == dimension).map(|r| r.quantity).sum()
}
