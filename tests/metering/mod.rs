//! Custom metering, end to end against the emulator: MeterUsage dry runs at start,
//! `mpgate meter`, the hourly sender in `mpgate supervise`, the exit flush, restarts and crashes.
//! Runs the test-flavour gate baked with testdata/identity-metered.env (`mpgate-test-metered`).

use crate::support::{
    alive, dist_dir, scratch, test_seed, wait_for_line, wait_until, workload_bin, Report, Rng, Run, Spawned,
};
use mpgate_emulator::{DryRunAnswer, Emulator, Fault, MeteringRecord, World, METERED};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const HOUR: u64 = 3600;

fn metered_bin() -> PathBuf {
    let bin = dist_dir().join("mpgate-test-metered");
    assert!(bin.is_file(), "{} missing: scripts/test builds it with testdata/identity-metered.env", bin.display());
    bin
}

fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs()
}

fn hour_of(t: u64) -> u64 {
    t - t % HOUR
}

/// The metered gate as `workload` of `emu`, with its spool in `dir/spool`.
fn gate(emu: &Emulator, workload: &str, dir: &Path) -> Run {
    Run::bin(metered_bin())
        .envs(emu.workload_env(workload, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_SPOOL_DIR", dir.join("spool"))
        .env("MPGATE_TERMINATION_LOG", dir.join("termination-log"))
        .env("MPGATE_DEADLINE", "20s")
}

/// `mpgate supervise -q -- sh -c script` in the background, stderr to `dir/stderr`.
fn spawn(emu: &Emulator, dir: &Path, script: &str) -> Spawned {
    spawn_with(emu, dir, script, &[])
}

/// `spawn` with more variables for the supervisor (and so for the workload).
fn spawn_with(emu: &Emulator, dir: &Path, script: &str, extra: &[(&str, String)]) -> Spawned {
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr")).expect("stderr file");
    let mut cmd = Command::new(metered_bin());
    cmd.env_clear()
        .envs(emu.workload_env("ecs-task", dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_SPOOL_DIR", dir.join("spool"))
        .env("MPGATE_DEADLINE", "20s")
        .env("GATE", metered_bin())
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .args(["supervise", "-q", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    Spawned::spawn(&mut cmd, "the metered supervisor")
}

fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}

/// Real (not dry-run) records the emulator accepted.
fn ledger(emu: &Emulator) -> Vec<MeteringRecord> {
    emu.metering().into_iter().filter(|r| r.op == "MeterUsage").collect()
}

fn seed(dir: &Path, lines: &[String]) {
    std::fs::create_dir_all(dir.join("spool")).expect("spool");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("spool/usage.log")).expect("log");
    for l in lines {
        f.write_all(format!("{l}\n").as_bytes()).expect("seed");
    }
}

/// Every {dimension, hour} at most once, each timestamp at the start of its hour.
fn assert_once_per_hour(records: &[MeteringRecord]) {
    let mut keys: Vec<(String, i64)> = records.iter().map(|r| (r.dimension.clone(), r.hour)).collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a {{dimension, hour}} was billed twice: {records:#?}");
    for r in records {
        assert_eq!(r.timestamp_millis, r.hour * 1000, "Timestamp is the start of the hour: {r:?}");
        assert_eq!(r.product_code, METERED);
    }
}

fn total(records: &[MeteringRecord], dimension: &str) -> i64 {
    records.iter().filter(|r| r.dimension == dimension).map(|r| r.quantity).sum()
}

#[test]
fn dry_runs_admit_in_every_answer_form() {
    for answer in [DryRunAnswer::Empty, DryRunAnswer::RecordId, DryRunAnswer::DryRunOperationError] {
        let emu = Emulator::start(World::demo()).expect("emulator");
        emu.set_dry_run_answer(Some(answer));
        let dir = scratch();
        let out = gate(&emu, "ecs-task", dir.path())
            .args(["supervise", "--"])
            .arg(workload_bin())
            .arg("report")
            .arg(dir.path().join("report.json"))
            .run()
            .expect_status(0)
            .expect_stderr_contains("admitted: product 3m7kd9demometer0mpgate01")
            .expect_stderr_contains("dimensions requests, gb_processed")
            .check();
        let report = Report::read(&dir.path().join("report.json"));
        assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("custom-metering"), "{answer:?}");
        assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(METERED));
        let usage_file = dir.path().join("spool/usage.log");
        assert_eq!(report.var("MPGATE_USAGE_FILE").as_deref(), Some(usage_file.to_str().expect("utf-8")));
        assert_eq!(report.var("MPGATE_SIGNATURE"), None, "custom metering hands over no signed pass");
        let dry = emu.bodies("MeterUsage");
        assert_eq!(dry.len(), 2, "one dry run per baked dimension ({answer:?})");
        assert!(dry.iter().all(|b| b["DryRun"] == true && b["UsageQuantity"] == 0), "{dry:?}");
        assert!(ledger(&emu).is_empty(), "a dry run bills nothing");
        assert!(out.elapsed < Duration::from_secs(20));
    }
}

#[test]
fn an_unsubscribed_account_is_refused_as_not_entitled() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    gate(&emu, "unsubscribed-task", dir.path())
        .args(["supervise", "--", "/bin/true"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("MeterUsage answered CustomerNotEntitledException")
        .check();
    assert!(ledger(&emu).is_empty());
}

#[test]
fn a_baked_dimension_the_product_lacks_is_refused_as_misconfigured() {
    let mut world = World::demo();
    for p in world.products.iter_mut().filter(|p| p.code == METERED) {
        p.dimensions.retain(|d| d != "gb_processed");
    }
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "/bin/true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("InvalidUsageDimensionException")
        .expect_stderr_contains("dimension \"gb_processed\" baked into this image")
        .check();
}

#[test]
fn exec_refuses_custom_metering_and_points_to_supervise() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    gate(&emu, "ecs-task", dir.path())
        .args(["exec", "--", "/bin/true"])
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .expect_stderr_contains("use `mpgate supervise -- CMD`")
        .check();
    assert!(emu.requests().iter().all(|r| r.op != "MeterUsage"), "refused before any AWS call");
}

#[test]
fn mpgate_meter_refuses_bad_input_at_once() {
    let dir = scratch();
    let file = dir.path().join("usage.log");
    for (args, needle) in [
        (vec!["nope", "1"], "unknown dimension \"nope\""),
        (vec!["requests", "-1"], "quantity \"-1\" must be an integer"),
        (vec!["requests", "1.5"], "must be an integer"),
        (vec!["requests", "2147483648"], "must be an integer from 0 to 2147483647"),
        (vec!["requests", "1", "--tag", "owner=x"], "tag key \"owner\" is not allowed"),
        (vec!["gb_processed", "1", "--tag", "team=x"], "not allowed for dimension gb_processed"),
        (vec!["requests", "1", "--tag", "team=has space"], "tag value"),
    ] {
        Run::bin(metered_bin())
            .env("MPGATE_USAGE_FILE", &file)
            .arg("meter")
            .args(args)
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(needle)
            .check();
    }
    assert!(!file.exists(), "nothing was recorded");
    Run::bin(metered_bin())
        .env("MPGATE_USAGE_FILE", &file)
        .args(["meter", "requests", "2147483647", "--tag", "team=a", "--tag", "env=prod"])
        .run()
        .expect_status(0)
        .check();
    let line = std::fs::read_to_string(&file).expect("recorded");
    assert!(line.ends_with(" requests 2147483647 env=prod team=a\n"), "{line:?}");
}

#[test]
fn usage_in_past_hours_is_sent_once_per_dimension_and_hour_while_running() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (h3, h2) = (hour_of(now()) - 3 * HOUR, hour_of(now()) - 2 * HOUR);
    seed(
        dir.path(),
        &[
            format!("{} requests 5 team=a", h3 + 10),
            format!("{} requests 4", h3 + 20),
            format!("{} requests 2 team=a", h3 + 3599),
            format!("{} gb_processed 10", h2 + 1),
            format!("{} gb_processed 20", h2 + 2),
            format!("{} requests 1 env=dev team=b", h2 + 3),
        ],
    );
    let d = dir.path().display();
    let mut child =
        spawn(&emu, dir.path(), &format!("trap 'exit 0' TERM; touch {d}/ready; while :; do sleep 0.05; done"));
    wait_until("three records", Duration::from_secs(20), || ledger(&emu).len() >= 3);
    std::thread::sleep(Duration::from_millis(300));
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    assert_eq!(records.len(), 3, "{records:#?}");
    let find = |dim: &str, hour: u64| {
        records.iter().find(|r| r.dimension == dim && r.hour == hour as i64).unwrap_or_else(|| panic!("{dim}@{hour}"))
    };
    let r = find("requests", h3);
    assert_eq!(r.quantity, 11);
    let mut allocs: Vec<(i64, Vec<(String, String)>)> =
        r.allocations.iter().map(|a| (a.quantity, a.tags.clone())).collect();
    allocs.sort();
    assert_eq!(allocs, vec![(4, vec![]), (7, vec![("team".into(), "a".into())])]);
    assert_eq!(find("gb_processed", h2).quantity, 30);
    assert!(find("gb_processed", h2).allocations.is_empty(), "untagged usage carries no allocations");
    assert_eq!(find("requests", h2).quantity, 1);
    assert!(!stderr_of(dir.path()).contains("warning: usage"), "{}", stderr_of(dir.path()));
}

#[test]
fn sigterm_flushes_the_current_partial_hour() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let d = dir.path().display();
    let script = format!(
        "trap 'exit 0' TERM; echo \"$(date +%s) requests 5\" >> \"$MPGATE_USAGE_FILE\"; \
         \"$GATE\" meter requests 2 --tag team=x 2>/dev/null; \"$GATE\" meter gb_processed 7 2>/dev/null; \
         touch {d}/ready; while :; do sleep 0.05; done"
    );
    let mut child = spawn(&emu, dir.path(), &script);
    wait_until("workload ready", Duration::from_secs(20), || dir.path().join("ready").exists());
    assert!(ledger(&emu).is_empty(), "the open hour is not sent while it runs");
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    assert_eq!(total(&records, "requests"), 7);
    assert_eq!(total(&records, "gb_processed"), 7);
    assert!(records.iter().all(|r| r.hour as u64 == hour_of(now()) || r.hour as u64 + HOUR == hour_of(now())));
}

#[test]
fn throttling_and_5xx_during_the_flush_are_retried() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let d = dir.path().display();
    let mut child = spawn(
        &emu,
        dir.path(),
        &format!(
            "trap 'exit 3' TERM; \"$GATE\" meter requests 9 2>/dev/null; touch {d}/ready; while :; do sleep 0.05; done"
        ),
    );
    wait_until("workload ready", Duration::from_secs(20), || dir.path().join("ready").exists());
    emu.inject("MeterUsage", Fault::Throttle);
    emu.inject("MeterUsage", Fault::InternalError);
    emu.inject("MeterUsage", Fault::Status(503, "ServiceUnavailable".into()));
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(3), "the workload's status");
    let records = ledger(&emu);
    assert_eq!(total(&records, "requests"), 9, "{}", stderr_of(dir.path()));
    let codes: Vec<Option<String>> =
        emu.requests().iter().filter(|r| r.op == "MeterUsage").map(|r| r.error_code.clone()).collect();
    for code in ["ThrottlingException", "InternalServiceErrorException", "ServiceUnavailable"] {
        assert!(codes.contains(&Some(code.to_string())), "{code} was seen and retried: {codes:?}");
    }
}

#[test]
fn usage_older_than_six_hours_rolls_forward_into_a_sendable_hour() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let cur = hour_of(now());
    seed(dir.path(), &[format!("{} requests 5", cur - 8 * HOUR), format!("{} requests 3", cur - 2 * HOUR + 5)]);
    let mut child = spawn(&emu, dir.path(), "exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    assert_eq!(total(&records, "requests"), 8, "nothing lost: {records:#?}");
    assert!(records.iter().all(|r| (cur as i64) - r.hour < 6 * HOUR as i64), "{records:#?}");
    assert!(records.iter().any(|r| r.quantity == 5 && (r.hour as u64) < cur - 2 * HOUR), "{records:#?}");
}

#[test]
fn hours_aws_no_longer_accepts_roll_forward_when_its_clock_is_ahead() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    emu.advance_clock(Duration::from_secs(3 * HOUR));
    let dir = scratch();
    let cur = hour_of(now());
    seed(dir.path(), &[format!("{} requests 6", cur - 4 * HOUR + 1)]);
    let mut child = spawn(&emu, dir.path(), "exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_eq!(total(&records, "requests"), 6, "{records:#?}\n{}", stderr_of(dir.path()));
    assert!(records[0].hour as u64 > cur - 4 * HOUR);
    assert!(stderr_of(dir.path()).contains("no longer accepts the hour"), "{}", stderr_of(dir.path()));
}

#[test]
fn corrupt_lines_are_reported_and_quarantined_not_fatal() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let h = hour_of(now()) - HOUR;
    seed(dir.path(), &["garbage".into(), format!("{h} nope 5"), format!("{h} requests 4")]);
    let mut child = spawn(&emu, dir.path(), "printf '1 requests 9' >> \"$MPGATE_USAGE_FILE\"; exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0));
    let err = stderr_of(dir.path());
    assert_eq!(err.matches("not a usage record").count(), 3, "{err}");
    let q = std::fs::read_to_string(dir.path().join("spool/quarantine.log")).expect("quarantine");
    assert_eq!(q, format!("garbage\n{h} nope 5\n1 requests 9\n"));
    assert_eq!(total(&ledger(&emu), "requests"), 4);
}

/// Hourly cadence: with the pod's clock (test flavour: MPGATE_TEST_CLOCK_OFFSET) and AWS's
/// just before an hour boundary, usage of the open hour is not sent; once the hour closes it is sent
/// while the workload runs, once per dimension, stamped with the start of the closed hour.
#[test]
fn an_hour_is_sent_once_it_closes_and_not_before() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let margin = 20;
    let offset = (2 * HOUR - now() % HOUR - margin) % HOUR;
    emu.advance_clock(Duration::from_secs(offset));
    let d = dir.path().display();
    let script = format!(
        "trap 'exit 0' TERM; t=$(( $(date +%s) + {offset} )); echo \"$t requests 4 team=a\" >> \"$MPGATE_USAGE_FILE\"; \
         echo \"$t gb_processed 2\" >> \"$MPGATE_USAGE_FILE\"; echo \"$t\" > {d}/t; touch {d}/ready; while :; do sleep 0.05; done"
    );
    let mut child = spawn_with(&emu, dir.path(), &script, &[("MPGATE_TEST_CLOCK_OFFSET", offset.to_string())]);
    wait_until("workload ready", Duration::from_secs(20), || dir.path().join("ready").exists());
    let t: u64 = std::fs::read_to_string(dir.path().join("t")).expect("t").trim().parse().expect("seconds");
    let open_hour = hour_of(t);
    if now() + offset + 6 < open_hour + HOUR {
        // At least one 5 s poll has run since the usage was written, with the hour still open.
        std::thread::sleep(Duration::from_millis(5500).min(Duration::from_secs(open_hour + HOUR - now() - offset - 1)));
        assert!(ledger(&emu).is_empty(), "the open hour was sent before it closed: {:#?}", ledger(&emu));
    }
    wait_until("the closed hour's records", Duration::from_secs(margin + 20), || ledger(&emu).len() >= 2);
    assert!(now() + offset >= open_hour + HOUR, "sent only after the hour closed");
    std::thread::sleep(Duration::from_millis(300));
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    assert_eq!(records.len(), 2, "nothing more at exit: {records:#?}");
    assert!(records.iter().all(|r| r.hour as u64 == open_hour), "{records:#?}");
    assert_eq!((total(&records, "requests"), total(&records, "gb_processed")), (4, 2));
}

/// Duplicate handling: when AWS already holds another quantity for this pod's
/// {dimension, hour} (here: sent by a run whose spool is gone), the usage rolls into the next hour.
#[test]
fn an_hour_aws_already_holds_with_another_quantity_rolls_into_the_next_hour() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let h2 = hour_of(now()) - 2 * HOUR;
    let first = scratch();
    seed(first.path(), &[format!("{} requests 5", h2 + 5)]);
    let mut child = spawn(&emu, first.path(), "exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(first.path()));
    let second = scratch();
    seed(second.path(), &[format!("{} requests 3", h2 + 9)]);
    let mut child = spawn(&emu, second.path(), "exit 0");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(second.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    let got: Vec<(u64, i64)> = records.iter().map(|r| (r.hour as u64, r.quantity)).collect();
    assert_eq!(got, vec![(h2, 5), (h2 + HOUR, 3)], "{records:#?}");
    let codes: Vec<Option<String>> =
        emu.requests().iter().filter(|r| r.op == "MeterUsage").map(|r| r.error_code.clone()).collect();
    assert!(codes.contains(&Some("DuplicateRequestException".into())), "{codes:?}");
    assert!(stderr_of(second.path()).contains("already holds another requests record"), "{}", stderr_of(second.path()));
}

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

/// Both ways a workload records usage append to the same usage file without losing, repeating,
/// tearing or reordering a record: lines written through a descriptor the workload holds open
/// (`O_APPEND`, one `write()` each, as docs/custom-metering.md says) interleaved with `mpgate meter`
/// processes. The time each path takes is measured by bench/record, not here.
#[test]
fn appended_records_are_read_back_once_each_and_in_order() {
    let dir = scratch();
    let file = dir.path().join("usage.log");
    let (rounds, per_round) = (50, 100);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file).expect("open");
    let started = now();
    let mut expected = Vec::new();
    for round in 0..rounds {
        for i in 0..per_round {
            let line = format!("{} requests {} team=a", 1_800_000_000 + round * per_round + i, i % 10 + 1);
            f.write_all(format!("{line}\n").as_bytes()).expect("write");
            expected.push(line);
        }
        let quantity = (round + 1).to_string();
        Run::bin(metered_bin())
            .env("MPGATE_USAGE_FILE", &file)
            .args(["meter", "requests", &quantity])
            .run()
            .expect_status(0)
            .check();
        expected.push(format!("requests {quantity}"));
    }
    let finished = now();
    let text = std::fs::read_to_string(&file).expect("usage file");
    assert!(text.ends_with('\n'), "the last record is not terminated");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expected.len(), "records lost or repeated");
    for (n, (got, want)) in lines.iter().zip(&expected).enumerate() {
        if want.starts_with("requests ") {
            // `mpgate meter` stamps its record with the time it ran.
            let (at, rest) = got.split_once(' ').unwrap_or_else(|| panic!("line {n}: {got:?}"));
            let at: u64 = at.parse().unwrap_or_else(|_| panic!("line {n}: no timestamp: {got:?}"));
            assert!((started..=finished).contains(&at), "line {n}: {got:?} not stamped within the run");
            assert_eq!(rest, want, "line {n}");
        } else {
            assert_eq!(got, want, "line {n}");
        }
    }
}

/// `mpgate check --json` of the metered gate: (exit status, the entitlement check's status and summary).
fn check_entitlement(emu: &Emulator, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = gate(emu, "ecs-task", dir).args(["check", "--json"]).args(args).run();
    let json: serde_json::Value =
        serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
    let c = json["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "entitlement").expect("entitlement");
    (out.code(), c["status"].as_str().expect("status").into(), c["summary"].as_str().expect("summary").into())
}

/// `mpgate check` of a custom-metering build sends no MeterUsage unless `--live`; with
/// `--live` it dry-runs every baked dimension and names the one AWS refuses.
#[test]
fn check_live_dry_runs_every_dimension_and_names_a_refused_one() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, status, summary) = check_entitlement(&emu, dir.path(), &[]);
    assert_eq!((code, status.as_str()), (Some(0), "skip"), "{summary}");
    assert!(
        summary.contains("MeterUsage dry run per baked dimension") && !summary.contains("RegisterUsage"),
        "{summary}"
    );
    assert!(emu.requests().iter().all(|r| r.op != "MeterUsage"), "nothing sent without --live");

    let (code, status, summary) = check_entitlement(&emu, dir.path(), &["--live"]);
    assert_eq!((code, status.as_str()), (Some(0), "pass"), "{summary}");
    assert!(summary.ends_with("for every dimension: requests, gb_processed"), "{summary}");
    let dry = emu.bodies("MeterUsage");
    assert_eq!(dry.len(), 2, "one dry run per dimension");
    assert!(dry.iter().all(|b| b["DryRun"] == true), "{dry:?}");
    assert!(ledger(&emu).is_empty(), "check bills nothing");
    assert!(!dir.path().join("spool").exists(), "check leaves no spool behind");

    let mut world = World::demo();
    for p in world.products.iter_mut().filter(|p| p.code == METERED) {
        p.dimensions.retain(|d| d != "gb_processed");
    }
    let emu = Emulator::start(world).expect("emulator");
    let (code, status, summary) = check_entitlement(&emu, dir.path(), &["--live"]);
    assert_eq!((code, status.as_str()), (Some(86), "fail"), "{summary}");
    assert!(summary.starts_with("MeterUsage dry run for dimension gb_processed:"), "{summary}");
    assert!(summary.contains("InvalidUsageDimensionException") && summary.ends_with("(passed: requests)"), "{summary}");
}
