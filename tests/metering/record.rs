//! Recording usage: `mpgate meter`, lines appended by the workload, and lines that are not records.

use super::{hour_of, ledger, metered_bin, now, seed, spawn, stderr_of, total, HOUR};
use crate::support::{scratch, Run};
use mpgate_emulator::{Emulator, World};
use std::io::Write as _;
use std::time::Duration;

#[test]
fn mpgate_meter_refuses_bad_input_at_once() {
    let dir = scratch();
    // The supervisor creates the usage file; `mpgate meter` only appends to it.
    let file = dir.path().join("usage.log");
    std::fs::write(&file, "").expect("usage file");
    for (args, needle) in [
        (vec!["nope", "1"], "unknown dimension \"nope\""),
        (vec!["requests", "-1"], "quantity \"-1\" must be an integer"),
        (vec!["requests", "1.5"], "must be an integer"),
        (vec!["requests", "2147483648"], "must be an integer from 0 to 2147483647"),
        (vec!["requests", "1", "--tag", "owner=x"], "tag key \"owner\" is not allowed"),
        (vec!["gb_processed", "1", "--tag", "team=x"], "not allowed for dimension gb_processed"),
        (vec!["requests", "1", "--tag", "team=has space"], "tag value"),
        // AWS's Tag pattern lists `+ -=`; a regex reads it as the range space..`=`, which would let
        // these through, and AWS may not (docs/aws-behaviour.md §10.15).
        (vec!["requests", "1", "--tag", "team=a,b"], "tag value \"a,b\""),
        (vec!["requests", "1", "--tag", "team=a!"], "tag value"),
        (vec!["requests", "1", "--tag", "team=<a>"], "tag value"),
    ] {
        Run::bin(metered_bin())
            .env("MPGATE_SPOOL_DIR", dir.path())
            .arg("meter")
            .args(args)
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(needle)
            .check();
    }
    assert_eq!(std::fs::read_to_string(&file).expect("usage file"), "", "nothing was recorded");
    Run::bin(metered_bin())
        .env("MPGATE_SPOOL_DIR", dir.path())
        .args(["meter", "requests", "2147483647", "--tag", "team=a", "--tag", "env=prod"])
        .run()
        .expect_status(0)
        .check();
    let line = std::fs::read_to_string(&file).expect("recorded");
    assert!(line.ends_with(" requests 2147483647 env=prod team=a\n"), "{line:?}");
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
            .env("MPGATE_SPOOL_DIR", dir.path())
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
