//! A record sent again is one record under every reading of MeterUsage's idempotency
//! (docs/aws-behaviour.md §10.5): AWS may match a repeated request by the hour it rounds to, or only by
//! its `ClientToken`. mpgate re-sends a record whose answer it did not get with the same token, so
//! the reading does not matter.

use super::{hour_of, ledger, now, spawn_with, stderr_of, total, HOUR, METERED};
use crate::support::{scratch, wait_for_line};
use mpgate_emulator::{Emulator, Fault, MeterIdempotency, World};
use std::time::Duration;

#[test]
fn a_record_whose_answer_was_lost_is_billed_once_under_every_reading_of_idempotency() {
    for reading in [MeterIdempotency::HourRounding, MeterIdempotency::TokenTakesTheHour, MeterIdempotency::TokenOnly] {
        let mut world = World::demo();
        world.products.iter_mut().find(|p| p.code == METERED).expect("metered product").meter_idempotency = reading;
        let emu = Emulator::start(world).expect("emulator");
        let dir = scratch();
        let d = dir.path().display();
        let past = hour_of(now()) - 2 * HOUR + 10;
        // The usage is written after the start-up dry runs, and sent once the workload has exited.
        let script = format!(
            "echo $$ > {d}/ready; while [ ! -e {d}/go ]; do sleep 0.02; done; \
             echo \"{past} requests 5\" >> \"$MPGATE_USAGE_FILE\"; exit 0"
        );
        let mut child = spawn_with(&emu, dir.path(), &script, &[]);
        wait_for_line(&dir.path().join("ready"), Duration::from_secs(20));
        // AWS records the first attempt, but its answer never reaches the gate.
        emu.inject("MeterUsage", Fault::AnswerLost);
        std::fs::write(dir.path().join("go"), "").expect("go");
        assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{reading:?}: {}", stderr_of(dir.path()));
        let records = ledger(&emu);
        assert_eq!(records.len(), 1, "{reading:?}: billed once: {records:#?}");
        assert_eq!(total(&records, "requests"), 5, "{reading:?}");
        let sends: Vec<String> = emu
            .bodies("MeterUsage")
            .iter()
            .filter(|b| b["DryRun"] != true)
            .map(|b| b["ClientToken"].as_str().expect("a ClientToken on every record").to_string())
            .collect();
        assert_eq!(sends.len(), 2, "{reading:?}: the lost answer's record was sent again: {sends:?}");
        assert_eq!(sends[0], sends[1], "{reading:?}: with the same ClientToken");
        assert!(!stderr_of(dir.path()).contains("roll"), "{reading:?}: {}", stderr_of(dir.path()));
    }
}

#[test]
fn two_pods_identical_records_carry_different_tokens() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let past = hour_of(now()) - 2 * HOUR + 10;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let dir = scratch();
        super::seed(dir.path(), &[format!("{past} requests 5")]);
        let mut child = spawn_with(&emu, dir.path(), "exit 0", &[]);
        assert_eq!(child.wait_exit(Duration::from_secs(30)), Some(0), "{}", stderr_of(dir.path()));
        let sent = emu.bodies("MeterUsage").into_iter().rfind(|b| b["DryRun"] != true).expect("a record");
        tokens.push(sent["ClientToken"].as_str().expect("token").to_string());
    }
    assert_ne!(tokens[0], tokens[1], "each spool salts its tokens: identical records of two pods stay two requests");
}
