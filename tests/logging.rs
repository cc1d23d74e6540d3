//! stderr conventions: `-v` detail, `--log-format json` / `MPGATE_LOG_FORMAT`, `MPGATE_LOG` levels,
//! and every command's `--help` carrying examples.

use crate::hourly::{gate_as, with_workload};
use crate::support::{scratch, Run};
use mpgate_emulator::{Emulator, World};

fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[test]
fn verbose_names_the_sources_and_each_attempt() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()).arg("-v"), dir.path())
        .run()
        .expect_status(0)
        .expect_stderr_contains("mpgate: region us-east-1 (from AWS_REGION)")
        .expect_stderr_contains("mpgate: credentials from the ECS task role")
        .expect_stderr_contains("mpgate: RegisterUsage attempt 1 (key version 2)")
        .expect_stderr_contains("mpgate: admitted:")
        .check();
    assert!(out.stdout().is_empty());
    // Without -v those lines are absent.
    let dir = scratch();
    with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path())
        .run()
        .expect_status(0)
        .expect_stderr_lacks("RegisterUsage attempt")
        .check();
}

#[test]
fn json_format_makes_every_line_an_object() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()).args(["--log-format", "json"]), dir.path())
        .run()
        .expect_status(0)
        .check();
    let lines = json_lines(&out.stderr());
    assert_eq!(lines[0]["level"], "warn", "the test-flavour warning");
    let admitted = lines.iter().find(|l| l["event"] == "admitted").expect("admission event");
    assert_eq!(admitted["level"], "info");
    assert_eq!(admitted["product_code"], "8f3kq2demopaid0mpgate01");
    assert_eq!(admitted["credential_source"], "the ECS task role");
    // A refusal, selected through the environment instead of the flag.
    let dir = scratch();
    std::fs::write(dir.path().join("termination-log"), "").expect("log");
    let out =
        with_workload(gate_as(&emu, "unsubscribed-task", dir.path()).env("MPGATE_LOG_FORMAT", "json"), dir.path())
            .run()
            .expect_status(80)
            .check();
    let refusal = json_lines(&out.stderr()).into_iter().find(|l| l["event"] == "refused").expect("refusal event");
    assert_eq!(refusal["class"], "not-entitled");
    assert_eq!(refusal["exit_code"], 80);
    assert!(refusal["msg"].as_str().expect("msg").contains("CustomerNotEntitledException"));
    let log = std::fs::read_to_string(dir.path().join("termination-log")).expect("log");
    assert!(log.starts_with("mpgate: not-entitled: "), "the termination log stays a plain line: {log}");
}

#[test]
fn mpgate_log_error_keeps_only_refusals() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    with_workload(gate_as(&emu, "ecs-task", dir.path()).env("MPGATE_LOG", "error"), dir.path())
        .run()
        .expect_status(0)
        .expect_stderr_lacks("admitted")
        .expect_stderr_lacks("warning")
        .check();
}

#[test]
fn every_command_help_has_examples() {
    for cmd in [
        &["exec", "--help"][..],
        &["supervise", "--help"],
        &["check", "--help"],
        &["pass", "verify", "--help"],
        &["pass", "request", "--help"],
        &["version", "--help"],
        &["meter", "--help"],
        &["--help"],
    ] {
        let out = Run::gate().args(cmd.iter().copied()).run().expect_status(0).check();
        assert!(out.stdout().contains("Examples:"), "{cmd:?} --help lacks examples:\n{}", out.stdout());
    }
}

#[test]
fn each_command_help_opens_with_the_description_the_top_level_help_lists() {
    let top = Run::gate().arg("--help").run().expect_status(0).check();
    for name in ["exec", "check", "supervise", "meter", "version"] {
        let out = Run::gate().args([name, "--help"]).run().expect_status(0).check();
        // The first 40 characters: either text may be wrapped at a different width.
        let first: String = out.stdout().lines().next().unwrap_or_default().trim().chars().take(40).collect();
        let listed = top
            .stdout()
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from mpgate --help:\n{}", top.stdout()))
            .to_string();
        assert!(
            !first.is_empty() && listed.contains(&first),
            "{name} --help opens with {first:?}; mpgate --help lists {listed:?}"
        );
    }
}
