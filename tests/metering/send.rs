//! The hourly sender while the workload runs and the exit flush: cadence, allocations, retries,
//! the 6-hour window and hours AWS already holds.

use super::{assert_once_per_hour, hour_of, ledger, now, seed, spawn, spawn_with, stderr_of, total, HOUR};
use crate::support::{scratch, wait_until};
use mpgate_emulator::{Emulator, Fault, World};
use std::time::Duration;

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

/// `supervise -v` says what it billed: one line per record AWS accepted, with the dimension, the hour,
/// the quantity and AWS's record id, as the ledger holds them; and the same as JSON fields.
#[test]
fn supervise_verbose_logs_each_meter_usage_sent() {
    for format in ["text", "json"] {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let dir = scratch();
        let (h3, h2) = (hour_of(now()) - 3 * HOUR, hour_of(now()) - 2 * HOUR);
        seed(
            dir.path(),
            &[
                format!("{} requests 5", h3 + 10),
                format!("{} requests 6 team=a", h3 + 20),
                format!("{} gb_processed 7", h2 + 1),
            ],
        );
        let out = super::gate(&emu, "ecs-task", dir.path())
            .env("MPGATE_LOG_FORMAT", format)
            .args(["supervise", "-v", "--", "sh", "-c", "exit 0"])
            .run()
            .expect_status(0)
            .check();
        let records = ledger(&emu);
        assert_eq!(records.len(), 2, "{records:#?}");
        let stderr = out.stderr();
        let sent: Vec<&str> = stderr.lines().filter(|l| l.contains("MeterUsage sent")).collect();
        assert_eq!(sent.len(), 2, "one line per record:\n{stderr}");
        for r in &records {
            let hour = super::hour_text(r.hour as u64);
            let line = match format {
                "text" => format!(
                    "mpgate: MeterUsage sent: dimension {}, hour {hour}, quantity {}, record id {}",
                    r.dimension, r.quantity, r.metering_record_id
                ),
                _ => serde_json::json!({"dimension": r.dimension, "hour": hour, "quantity": r.quantity, "record_id": r.metering_record_id})
                    .to_string(),
            };
            let found = match format {
                "text" => sent.contains(&line.as_str()),
                _ => sent.iter().any(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                    v["event"] == "meter_usage_sent"
                        && v["level"] == "verbose"
                        && ["dimension", "hour", "quantity", "record_id"]
                            .iter()
                            .all(|k| v[k] == serde_json::from_str::<serde_json::Value>(&line).expect("json")[k])
                }),
            };
            assert!(found, "no line {line} in:\n{stderr}");
        }
    }
}
