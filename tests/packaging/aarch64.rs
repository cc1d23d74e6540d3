//! The static aarch64 (Graviton) builds from `scripts/build-aarch64`, run under qemu-user. qemu passes
//! the gate's `execve` to the host kernel, so the workload it becomes is the host's static test
//! workload: the aarch64 code under test is the whole gate, from region discovery to execve.
//!
//! These tests need `$MPGATE_DIST/aarch64/` (scripts/build-aarch64 --test-flavour). Where it was not
//! built they say so and pass, unless `MPGATE_REQUIRE_AARCH64` is set (CI sets it).

use crate::hourly::PAID;
use crate::support::{dist_dir, scratch, workload_bin, Report, Run};
use mpgate_emulator::{Emulator, World};
use std::path::PathBuf;

/// The aarch64 build `name`, or None (with a note) when it was not built and not required.
fn aarch64_build(name: &str) -> Option<PathBuf> {
    let path = dist_dir().join("aarch64").join(name);
    #[allow(clippy::disallowed_methods)] // the test harness is configured by its environment
    let required = std::env::var_os("MPGATE_REQUIRE_AARCH64").is_some();
    if path.is_file() {
        return Some(path);
    }
    assert!(!required, "{} is missing: run scripts/build-aarch64 --test-flavour", path.display());
    eprintln!("note: {} not built (scripts/build-aarch64 --test-flavour): aarch64 test skipped", path.display());
    None
}

fn qemu() -> PathBuf {
    ["/usr/bin/qemu-aarch64", "/usr/bin/qemu-aarch64-static"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("qemu-aarch64 (apt-get install qemu-user)")
}

#[test]
fn aarch64_release_build_is_static_and_reports_its_identity_under_qemu() {
    let Some(gate) = aarch64_build("mpgate") else { return };
    let header = std::process::Command::new("readelf").arg("-hlW").arg(&gate).output().expect("readelf");
    let header = String::from_utf8_lossy(&header.stdout);
    assert!(header.contains("AArch64"), "not an aarch64 binary:\n{header}");
    assert!(!header.contains("INTERP"), "not static: it asks for a program interpreter");
    let out = Run::bin(qemu()).arg(&gate).args(["version", "--json"]).run().expect_status(0).check();
    let v: serde_json::Value = serde_json::from_str(out.stdout().trim()).expect("version json");
    assert_eq!(v["flavour"], "release");
    assert_eq!(v["baked"], true);
    assert_eq!(v["pricing_model"], "hourly");
    assert_eq!(v["products"][0]["code"], PAID);
    Run::bin(qemu()).arg(&gate).args(["check", "--offline"]).run().expect_status(0).check();
}

#[test]
fn aarch64_test_build_admits_and_execs_under_qemu() {
    let Some(gate) = aarch64_build("mpgate-test") else { return };
    let emu = Emulator::start(World::demo()).expect("emulator");
    let env = emu.workload_env("ecs-task", scratch().path()).expect("env");
    let out = Run::bin(qemu())
        .envs(env.clone())
        .arg(&gate)
        .args(["exec", "--"])
        .arg(workload_bin())
        .args(["report", "-"])
        .run()
        .expect_status(0)
        .check();
    let dir = scratch();
    std::fs::write(dir.path().join("report.json"), out.stdout()).expect("report");
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.pid, out.pid, "execve kept the PID");
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
    assert!(report.var("MPGATE_SIGNATURE").is_some_and(|s| s.starts_with("eyJ")));
    assert_eq!(emu.requests().iter().filter(|r| r.op == "RegisterUsage").count(), 1);
    let refused = emu.workload_env("unsubscribed-task", scratch().path()).expect("env");
    Run::bin(qemu())
        .envs(refused)
        .arg(&gate)
        .args(["exec", "--"])
        .arg(workload_bin())
        .args(["report", "-"])
        .run()
        .expect_status(80)
        .expect_stdout_empty()
        .expect_stderr_contains("mpgate: not-entitled")
        .check();
}
