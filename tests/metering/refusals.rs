//! Records AWS refuses for a reason no retry can fix: each is quarantined with one line, and every
//! other record keeps flowing; tag values AWS might refuse are refused when they are recorded.

use super::{
    assert_once_per_hour, hour_of, ledger, now, seed, spawn, spawn_with, stderr_of, total, unsent_lines, HOUR,
};
use crate::support::{scratch, wait_until};
use mpgate_emulator::{DryRunChecks, Emulator, Fault, TagPattern, World, METERED};
use std::time::Duration;

/// A product that lost a dimension the image meters (an IAM-only dry run let the start through):
/// every record of that dimension is quarantined, and the other dimension's hours are all sent
/// while the workload runs.
#[test]
fn records_of_a_dimension_aws_refuses_are_quarantined_and_the_rest_keeps_flowing() {
    let mut world = World::demo();
    for p in world.products.iter_mut().filter(|p| p.code == METERED) {
        p.dimensions.retain(|d| d != "gb_processed");
        p.dry_run_checks = DryRunChecks::IamOnly;
    }
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    let cur = hour_of(now());
    let (h3, h2, h1) = (cur - 3 * HOUR, cur - 2 * HOUR, cur - HOUR);
    seed(
        dir.path(),
        &[
            format!("{} gb_processed 5", h3 + 1),
            format!("{} requests 1", h3 + 2),
            format!("{} gb_processed 6", h2 + 1),
            format!("{} requests 2", h2 + 2),
            format!("{} requests 3", h1 + 2),
        ],
    );
    let mut child = spawn(&emu, dir.path(), "trap 'exit 0' TERM; while :; do sleep 0.05; done");
    wait_until("every requests hour sent while the workload runs", Duration::from_secs(20), || {
        total(&ledger(&emu), "requests") == 6
    });
    child.term();
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_once_per_hour(&records);
    let got: Vec<(u64, &str, i64)> =
        records.iter().map(|r| (r.hour as u64, r.dimension.as_str(), r.quantity)).collect();
    assert_eq!(got, vec![(h3, "requests", 1), (h2, "requests", 2), (h1, "requests", 3)], "{records:#?}");
    let err = stderr_of(dir.path());
    let refused: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("were refused: MeterUsage answered InvalidUsageDimensionException"))
        .collect();
    assert_eq!(refused.len(), 2, "one line per quarantined record:\n{err}");
    assert!(
        refused[0].starts_with("mpgate: warning: 5 units of gb_processed for the hour starting "),
        "{}",
        refused[0]
    );
    let q = std::fs::read_to_string(dir.path().join("spool/quarantine.log")).expect("quarantine");
    assert_eq!(
        q,
        format!("{} gb_processed 5\n{} gb_processed 6\n", h3 + 1, h2 + 1),
        "usage lines, ready to append again"
    );
    assert!(unsent_lines(dir.path()).is_empty(), "quarantined usage is not pending:\n{err}");
}

/// AWS refuses a record for one of its tag sets without saying which (here: twice, then no more):
/// the record is narrowed down to the tag set refused alone, which is quarantined; the others are
/// sent in the same hour.
#[test]
fn a_tag_set_aws_refuses_is_narrowed_down_and_quarantined_alone() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let h2 = hour_of(now()) - 2 * HOUR;
    let d = dir.path().display();
    let script = format!("touch {d}/ready; while [ ! -f {d}/go ]; do sleep 0.05; done; exit 0");
    let mut child = spawn(&emu, dir.path(), &script);
    wait_until("the workload admitted", Duration::from_secs(20), || dir.path().join("ready").exists());
    // After the dry runs: the faults are for the record.
    emu.inject("MeterUsage", Fault::Status(400, "InvalidTagException".into()));
    emu.inject("MeterUsage", Fault::Status(400, "InvalidTagException".into()));
    seed(
        dir.path(),
        &[
            format!("{} requests 1", h2 + 30),
            format!("{} requests 2 team=a", h2 + 10),
            format!("{} requests 4 team=b", h2 + 20),
        ],
    );
    std::fs::write(dir.path().join("go"), "").expect("go");
    assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
    let records = ledger(&emu);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!((records[0].hour as u64, records[0].quantity), (h2, 6));
    let mut allocs: Vec<(i64, Vec<(String, String)>)> =
        records[0].allocations.iter().map(|a| (a.quantity, a.tags.clone())).collect();
    allocs.sort();
    assert_eq!(allocs, vec![(2, vec![("team".into(), "a".into())]), (4, vec![("team".into(), "b".into())])]);
    let q = std::fs::read_to_string(dir.path().join("spool/quarantine.log")).expect("quarantine");
    assert_eq!(q, format!("{} requests 1\n", h2 + 10));
    let err = stderr_of(dir.path());
    assert_eq!(err.matches("were refused: MeterUsage answered InvalidTagException").count(), 1, "{err}");
    assert!(unsent_lines(dir.path()).is_empty(), "{err}");
}

/// A tag value with a character only the range reading of AWS's pattern admits never reaches AWS:
/// the line is quarantined when read, and the same usage is billed under either reading.
#[test]
fn a_tag_value_outside_the_listed_characters_is_quarantined_under_either_reading() {
    for pattern in [TagPattern::Literal, TagPattern::Range] {
        let mut world = World::demo();
        for p in world.products.iter_mut() {
            p.tag_pattern = pattern;
        }
        let emu = Emulator::start(world).expect("emulator");
        let dir = scratch();
        let h = hour_of(now()) - HOUR;
        seed(dir.path(), &[format!("{h} requests 2 team=a,b"), format!("{} requests 3 team=c", h + 1)]);
        let mut child = spawn_with(&emu, dir.path(), "exit 0", &[]);
        assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
        let records = ledger(&emu);
        assert_eq!(total(&records, "requests"), 3, "{pattern:?}: {records:#?}\n{}", stderr_of(dir.path()));
        let q = std::fs::read_to_string(dir.path().join("spool/quarantine.log")).expect("quarantine");
        assert_eq!(q, format!("{h} requests 2 team=a,b\n"), "{pattern:?}");
        assert!(stderr_of(dir.path()).contains("tag value \"a,b\" must be"), "{}", stderr_of(dir.path()));
    }
}
