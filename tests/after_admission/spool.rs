//! After admission, the spool and the supervisor's privileges: what a buyer who controls CMD, the
//! spool volume and the container's process tree can do to custom-metering usage, `state.json`, the
//! contract entitlements file and the supervisor itself, and what each attempt ends in: billed
//! correctly, or refused with one line; never silently lost.
//!
//! - CMD re-exports `MPGATE_USAGE_FILE` or `MPGATE_SPOOL_DIR`: `mpgate meter` records to the spool
//!   or refuses.
//! - `usage.log` is a link to /dev/null, a FIFO or a directory: the supervisor refuses before the
//!   workload starts, `mpgate meter` refuses; replaced by a link while the workload runs: named at
//!   exit as not billed.
//! - `state.json` lists future hours as sent, an offset past the file, a dimension not baked.
//! - `supervise --user`: the workload cannot stop the supervisor, write `state.json` or the
//!   entitlements file, and can append usage (these need root).
//! - Not PID 1 without `--user`: refused unless `--allow-not-pid1`; as PID 1, admitted.
//!
//! Runs the custom-metering and contract test gates against the emulator.

use crate::contract::contract_bin;
use crate::metering::{gate, hour_of, hour_text, ledger, metered_bin, now, seed, spawn_with, stderr_of, total, HOUR};
use crate::support::{scratch, wait_until, Report, Run};
use mpgate_emulator::{Emulator, World};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

/// How long a supervisor may take to admit, run a short workload, flush and exit.
const LIMIT: Duration = Duration::from_secs(40);

/// `state.json` with `sent` as (dimension, hour) pairs and `pending` as (dimension, hour, units).
fn forge_state(dir: &Path, offset: u64, sent: &[(&str, u64)], pending: &[(&str, u64, u64)]) {
    std::fs::create_dir_all(dir.join("spool")).expect("spool");
    let state = serde_json::json!({
        "offset": offset,
        "pending": pending.iter().map(|(d, h, q)| serde_json::json!({"dimension": d, "hour": h, "usage": {"": q}, "first": h})).collect::<Vec<_>>(),
        "in_flight": null,
        "sent": sent.iter().map(|(d, h)| serde_json::json!({"dimension": d, "hour": h, "quantity": 1, "record_id": "forged"})).collect::<Vec<_>>(),
        "salt": "",
    });
    std::fs::write(dir.join("spool/state.json"), state.to_string()).expect("state.json");
}

/// Run the metered supervisor over `script` until it exits, with `extra` variables.
fn supervise_once(emu: &Emulator, dir: &Path, script: &str, extra: &[(&str, String)]) -> Option<i32> {
    let mut child = spawn_with(emu, dir, script, extra);
    child.wait_exit(LIMIT)
}

#[test]
fn cmd_exporting_usage_file_dev_null_still_bills_what_mpgate_meter_records() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let d = dir.path().display();
    let script = format!(
        "export MPGATE_USAGE_FILE=/dev/null; \"$GATE\" meter requests 6 2>{d}/meter-stderr; echo $? > {d}/meter-status"
    );
    assert_eq!(supervise_once(&emu, dir.path(), &script, &[]), Some(0), "{}", stderr_of(dir.path()));
    assert_eq!(std::fs::read_to_string(dir.path().join("meter-status")).expect("status").trim(), "0");
    let said = std::fs::read_to_string(dir.path().join("meter-stderr")).expect("meter stderr");
    assert!(said.contains("MPGATE_USAGE_FILE is \"/dev/null\", not this spool's usage file"), "{said}");
    assert_eq!(total(&ledger(&emu), "requests"), 6, "{}", stderr_of(dir.path()));
}

#[test]
fn cmd_exporting_spool_dir_elsewhere_makes_mpgate_meter_refuse_with_a_line() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let d = dir.path().display();
    let script = format!(
        "mkdir -p {d}/elsewhere; export MPGATE_SPOOL_DIR={d}/elsewhere; \"$GATE\" meter requests 6 2>{d}/meter-stderr; echo $? > {d}/meter-status"
    );
    assert_eq!(supervise_once(&emu, dir.path(), &script, &[]), Some(0), "{}", stderr_of(dir.path()));
    assert_eq!(std::fs::read_to_string(dir.path().join("meter-status")).expect("status").trim(), "82");
    let said = std::fs::read_to_string(dir.path().join("meter-stderr")).expect("meter stderr");
    assert!(said.contains("elsewhere/usage.log does not exist, so no supervisor reads this spool"), "{said}");
    assert!(!dir.path().join("elsewhere/usage.log").exists(), "mpgate meter never creates a usage file");
}

#[test]
fn usage_log_linked_to_dev_null_a_fifo_or_a_directory_is_refused_before_the_workload_starts() {
    for (kind, make) in [
        ("a symbolic link", (|p: &Path| std::os::unix::fs::symlink("/dev/null", p).expect("link")) as fn(&Path)),
        ("a FIFO", |p: &Path| nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).expect("fifo")),
        ("a directory", |p: &Path| std::fs::create_dir(p).expect("dir")),
    ] {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let dir = scratch();
        std::fs::create_dir(dir.path().join("spool")).expect("spool");
        let usage = dir.path().join("spool/usage.log");
        make(&usage);
        let needle = format!("{} is {kind}, not a regular file", usage.display());
        gate(&emu, "ecs-task", dir.path())
            .args(["supervise", "--", "/bin/sh", "-c", "touch \"$0\""])
            .arg(dir.path().join("ran"))
            .timeout(LIMIT)
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(&needle)
            .check();
        assert!(!dir.path().join("ran").exists(), "{kind}: the workload started");
        assert!(emu.requests().is_empty(), "{kind}: an AWS call before the refusal: {:?}", emu.requests());
        Run::bin(metered_bin())
            .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
            .args(["meter", "requests", "1"])
            .timeout(LIMIT)
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(&needle)
            .check();
    }
}

#[test]
fn usage_log_replaced_by_a_link_to_dev_null_while_running_is_named_at_exit() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let script = "rm \"$MPGATE_USAGE_FILE\"; ln -s /dev/null \"$MPGATE_USAGE_FILE\"; \
                  echo \"$(date +%s) requests 5\" >> \"$MPGATE_USAGE_FILE\"";
    assert_eq!(supervise_once(&emu, dir.path(), script, &[]), Some(0), "{}", stderr_of(dir.path()));
    let said = stderr_of(dir.path());
    let usage = dir.path().join("spool/usage.log");
    let needle = format!("at exit, usage could not be read: {} is a symbolic link", usage.display());
    assert!(said.contains(&needle), "{said}");
    assert!(said.contains("usage written there since is not billed"), "{said}");
    assert!(ledger(&emu).is_empty());
}

#[test]
fn state_json_listing_future_hours_as_sent_cannot_push_usage_past_them() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let h = hour_of(now());
    // The current hour may truly be taken; the 48 after it cannot have been sent yet.
    let sent: Vec<(&str, u64)> = (0..=48).map(|i| ("requests", h + i * HOUR)).collect();
    forge_state(dir.path(), 0, &sent, &[]);
    seed(dir.path(), &[format!("{} requests 5", now())]);
    assert_eq!(supervise_once(&emu, dir.path(), "exit 0", &[]), Some(0), "{}", stderr_of(dir.path()));
    let said = stderr_of(dir.path());
    assert!(said.contains("state.json lists 48 records as sent for hours that have not begun"), "{said}");
    let next = format!("5 units of requests for the hour starting {} were not sent", hour_text(h + HOUR));
    assert!(said.contains(&next), "the usage waits for the next hour, named at exit: {said}");
    // An hour later (pod and AWS clocks moved on together) the next start sends it.
    emu.advance_clock(Duration::from_secs(HOUR));
    let offset = ("MPGATE_TEST_CLOCK_OFFSET", HOUR.to_string());
    assert_eq!(supervise_once(&emu, dir.path(), "exit 0", &[offset]), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_eq!(total(&records, "requests"), 5, "{}", stderr_of(dir.path()));
    assert!(records.iter().all(|r| r.hour as u64 == h + HOUR), "{records:#?}");
}

#[test]
fn state_json_offset_beyond_usage_log_reads_the_file_from_the_start_and_bills_it() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    forge_state(dir.path(), 1_000_000, &[], &[]);
    seed(dir.path(), &[format!("{} requests 3", now())]);
    assert_eq!(supervise_once(&emu, dir.path(), "exit 0", &[]), Some(0), "{}", stderr_of(dir.path()));
    let said = stderr_of(dir.path());
    assert!(said.contains("state.json says 1000000 bytes of usage.log were read, but it has"), "{said}");
    assert_eq!(total(&ledger(&emu), "requests"), 3, "{said}");
}

#[test]
fn state_json_usage_of_a_dimension_not_baked_is_quarantined_at_start_and_the_rest_billed() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let past = hour_of(now()) - HOUR;
    forge_state(dir.path(), 0, &[("free_tier", past)], &[("free_tier", past, 9), ("requests", past, 4)]);
    assert_eq!(supervise_once(&emu, dir.path(), "exit 0", &[]), Some(0), "{}", stderr_of(dir.path()));
    let said = stderr_of(dir.path());
    assert!(said.contains("9 units of free_tier for the hour starting"), "{said}");
    assert!(said.contains("dimension \"free_tier\" in state.json is not one this image meters"), "{said}");
    let quarantine = std::fs::read_to_string(dir.path().join("spool/quarantine.log")).expect("quarantine");
    assert!(quarantine.contains(" free_tier 9\n"), "{quarantine}");
    let sent: Vec<String> = emu.bodies("MeterUsage").iter().map(|b| b["UsageDimension"].to_string()).collect();
    assert!(!sent.iter().any(|d| d.contains("free_tier")), "sent to AWS: {sent:?}");
    assert_eq!(total(&ledger(&emu), "requests"), 4, "{said}");
}

/// A directory tree the workload's user can traverse; `out` is where it may write its findings.
fn shared_scratch() -> tempfile::TempDir {
    let dir = scratch();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(dir.path().join("out")).expect("out");
    std::fs::set_permissions(dir.path().join("out"), std::fs::Permissions::from_mode(0o777)).expect("chmod out");
    dir
}

fn status_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("out").join(name)).unwrap_or_else(|e| panic!("out/{name}: {e}")).trim().to_string()
}

#[test]
#[ignore = "needs root: supervise --user starts the workload as another user"]
fn workload_under_user_cannot_stop_the_supervisor_or_write_state_json_but_can_append_usage() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = shared_scratch();
    let (d, s) = (dir.path().display(), dir.path().join("spool").display().to_string());
    let script = format!(
        "trap 'exit 0' TERM; o={d}/out; \
         kill -STOP $PPID 2>$o/stop-err; echo $? > $o/stop; \
         (echo '{{}}' > {s}/state.json) 2>/dev/null; echo $? > $o/state; \
         (: > {s}/planted) 2>/dev/null; echo $? > $o/create; \
         (mv {s}/usage.log {s}/moved) 2>/dev/null; echo $? > $o/rename; \
         echo \"$(date +%s) requests 4\" >> \"$MPGATE_USAGE_FILE\"; echo $? > $o/append; \
         \"$GATE\" meter requests 3 2>/dev/null; echo $? > $o/meter; \
         grep -E '^(Uid|Gid|Groups|NoNewPrivs|CapEff):' /proc/self/status > $o/proc; \
         touch $o/ready; while :; do sleep 0.05; done"
    );
    let mut child = spawn_with(&emu, dir.path(), &script, &[("MPGATE_USER", "65534:65533".into())]);
    wait_until("the workload's checks", LIMIT, || dir.path().join("out/ready").exists());
    assert_eq!(
        status_of(dir.path(), "stop"),
        "1",
        "kill -STOP of the supervisor: {}",
        status_of(dir.path(), "stop-err")
    );
    assert!(status_of(dir.path(), "stop-err").contains("not permitted"), "{}", status_of(dir.path(), "stop-err"));
    assert_ne!(status_of(dir.path(), "state"), "0", "the workload wrote state.json");
    assert_ne!(status_of(dir.path(), "create"), "0", "the workload created a file in the spool");
    assert_ne!(status_of(dir.path(), "rename"), "0", "the workload renamed usage.log");
    assert_eq!((status_of(dir.path(), "append"), status_of(dir.path(), "meter")), ("0".into(), "0".into()));
    let proc = std::fs::read_to_string(dir.path().join("out/proc")).expect("proc");
    let field = |name: &str| {
        proc.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    assert_eq!(field("Uid:").as_deref(), Some("65534 65534 65534 65534"), "{proc}");
    assert_eq!(field("Gid:").as_deref(), Some("65533 65533 65533 65533"), "{proc}");
    assert_eq!(field("Groups:").as_deref(), Some(""), "supplementary groups cleared: {proc}");
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"), "{proc}");
    assert_eq!(field("CapEff:").as_deref(), Some("0000000000000000"), "{proc}");
    let spool = dir.path().join("spool");
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!((meta(&spool).uid(), meta(&spool).mode() & 0o7777), (0, 0o755));
    assert_eq!((meta(&spool.join("state.json")).uid(), meta(&spool.join("state.json")).mode() & 0o777), (0, 0o600));
    let usage = meta(&spool.join("usage.log"));
    assert_eq!((usage.uid(), usage.gid(), usage.mode() & 0o777), (65534, 0, 0o660));
    child.term();
    assert_eq!(child.wait_exit(LIMIT), Some(0), "{}", stderr_of(dir.path()));
    assert_eq!(total(&ledger(&emu), "requests"), 7, "{}", stderr_of(dir.path()));
}

#[test]
#[ignore = "needs root: supervise --user starts the workload as another user"]
fn contract_workload_under_user_reads_the_entitlements_file_but_cannot_change_it() {
    let emu = Emulator::start(crate::contract::world_with_seats(5)).expect("emulator");
    let dir = shared_scratch();
    let ent = dir.path().join("ent");
    std::fs::create_dir(&ent).expect("ent");
    let d = dir.path().display();
    let script = format!(
        "o={d}/out; cat \"$MPGATE_ENTITLEMENTS_FILE\" > $o/copy; echo $? > $o/read; \
         (echo '{{}}' > \"$MPGATE_ENTITLEMENTS_FILE\") 2>/dev/null; echo $? > $o/write; \
         rm -f \"$MPGATE_ENTITLEMENTS_FILE\" 2>/dev/null; echo $? > $o/remove"
    );
    Run::bin(contract_bin())
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_DEADLINE", "10s")
        .env("MPGATE_ENTITLEMENTS_DIR", &ent)
        .args(["supervise", "-q", "--user", "65534", "--", "sh", "-c", &script])
        .timeout(LIMIT)
        .run()
        .expect_status(0)
        .check();
    assert_eq!(status_of(dir.path(), "read"), "0");
    let copy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/copy")).expect("copy")).expect("json");
    assert_eq!(copy["seat"], "held");
    assert_ne!(status_of(dir.path(), "write"), "0", "the workload rewrote the entitlements file");
    assert_ne!(status_of(dir.path(), "remove"), "0", "the workload removed the entitlements file");
    let file = std::fs::metadata(ent.join("mpgate-entitlements.json")).expect("file");
    assert_eq!((file.uid(), file.gid(), file.mode() & 0o777), (0, 65534, 0o640));

    // A directory the workload's user could write: no file (the variables only), and a line.
    std::fs::set_permissions(&ent, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let report = dir.path().join("out/report.json");
    Run::bin(contract_bin())
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_DEADLINE", "10s")
        .env("MPGATE_ENTITLEMENTS_DIR", &ent)
        .args(["supervise", "-q", "--user", "65534", "--"])
        .arg(crate::support::workload_bin())
        .arg("report")
        .arg(&report)
        .timeout(LIMIT)
        .run()
        .expect_status(0)
        .expect_stderr_contains(&format!("uid 65534 (--user) can write {}", ent.display()))
        .check();
    let report = Report::read(&report);
    assert_eq!(report.var("MPGATE_ENTITLEMENTS_FILE"), None);
    assert!(report.var("MPGATE_ENTITLEMENTS").is_some_and(|e| e.contains("Seats")));
}

#[test]
fn user_zero_or_a_name_is_refused_before_any_aws_call() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    for (user, needle) in
        [("0", "names uid 0 (root)"), ("1000:0", "names gid 0 (root)"), ("app", "names need /etc/passwd")]
    {
        gate(&emu, "ecs-task", dir.path())
            .args(["supervise", "--user", user, "--", "/bin/true"])
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(needle)
            .check();
    }
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
}

#[test]
#[ignore = "needs root: starts the gate as uid 65534"]
fn user_when_mpgate_is_not_root_is_refused_before_any_aws_call() {
    use std::os::unix::process::CommandExt as _;
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = shared_scratch();
    let out = std::process::Command::new(metered_bin())
        .env_clear()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("MPGATE_SPOOL_DIR", dir.path().join("out/spool"))
        .args(["supervise", "--user", "1000", "--", "/bin/true"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("gate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--user 1000 needs mpgate to start as root"), "{stderr}");
    assert!(stderr.contains("runs as uid 65534"), "{stderr}");
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
}

#[test]
fn not_pid_1_without_user_is_refused_for_metering_and_counted_seats_unless_allowed() {
    let emu = Emulator::start(crate::contract::world_with_seats(5)).expect("emulator");
    let dir = scratch();
    for (bin, duty) in [(metered_bin(), "custom-metering pricing"), (contract_bin(), "counted seat (Seats)")] {
        let run = || {
            Run::bin(bin.clone())
                .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
                .env("PATH", "/usr/bin:/bin")
                .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
                .env("MPGATE_ENTITLEMENTS_DIR", dir.path())
                .env("MPGATE_DEADLINE", "10s")
                .timeout(LIMIT)
        };
        let before = emu.requests().len();
        run()
            .args(["supervise", "--", "/bin/true"])
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(duty)
            .expect_stderr_contains("mpgate is not PID 1 here")
            .expect_stderr_contains("kill -STOP $PPID")
            .check();
        assert_eq!(emu.requests().len(), before, "an AWS call before the refusal: {:?}", emu.requests());
        run().args(["supervise", "-q", "--allow-not-pid1", "--", "/bin/true"]).run().expect_status(0).check();
        run()
            .env("MPGATE_ALLOW_NOT_PID1", "1")
            .args(["supervise", "-q", "--", "/bin/true"])
            .run()
            .expect_status(0)
            .check();
    }
    // Hourly pricing has nothing a stopped supervisor would fail to do: no rule.
    Run::gate()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .args(["supervise", "-q", "--", "/bin/true"])
        .timeout(LIMIT)
        .run()
        .expect_status(0)
        .check();
}

#[test]
#[ignore = "needs root: unshare and chroot make mpgate PID 1"]
fn as_pid_1_the_metered_supervisor_needs_neither_user_nor_allow() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = crate::rootfs::rootfs("mpgate-test-metered");
    let env_dir = scratch();
    let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    env.push(("MPGATE_SPOOL_DIR".into(), "/spool".into()));
    let out = crate::rootfs::in_chroot(root.path(), env)
        .args(["supervise", "-q", "--", "/workload", "report", "/report.json"])
        .timeout(LIMIT)
        .run();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let report = Report::read(&root.path().join("report.json"));
    assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("custom-metering"), "the workload ran admitted");
}

/// The spool is checked before admission is announced: a spool directory that cannot be made (a
/// regular file in its place or as its parent) is refused with one line naming it,
/// before any AWS call and without an admission line, and the workload never starts.
#[test]
fn an_unusable_spool_is_refused_before_any_aws_call_and_before_admission() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    std::fs::write(dir.path().join("file"), "").expect("file");
    for spool in [dir.path().join("file"), dir.path().join("file/spool")] {
        let out = gate(&emu, "ecs-task", dir.path())
            .env("MPGATE_SPOOL_DIR", &spool)
            .args(["supervise", "--", "/bin/sh", "-c", "touch \"$0\""])
            .arg(dir.path().join("ran"))
            .timeout(LIMIT)
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!("spool directory {}: cannot create it", spool.display()))
            .expect_stderr_lacks("admitted")
            .check();
        assert!(!dir.path().join("ran").exists(), "{}: the workload started\n{}", spool.display(), out.stderr());
        assert!(emu.requests().is_empty(), "{}: an AWS call before the refusal: {:?}", spool.display(), emu.requests());
    }
}

#[test]
#[ignore = "needs root: supervise --user starts the workload as another user"]
fn a_program_only_root_may_run_is_refused_under_user_before_any_aws_call() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = shared_scratch();
    let prog = dir.path().join("server");
    std::fs::write(&prog, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--user", "65534", "--"])
        .arg(&prog)
        .run()
        .expect_status(126)
        .expect_one_refusal_line()
        .expect_stderr_contains("is not executable by the workload's uid 65534 gid 65534")
        .check();
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
}
