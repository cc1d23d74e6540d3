//! The static aarch64 (Graviton) builds from `scripts/build-aarch64`, run under qemu-user. qemu passes
//! the gate's `execve` to the host kernel, so the workload it becomes is the host's static test
//! workload: the aarch64 code under test is the whole gate, from region discovery to execve.
//!
//! These tests are `#[ignore]`d (they need qemu-user and a cross build); scripts/test runs them. They
//! use `$MPGATE_DIST/aarch64/` (scripts/build-gates --aarch64), built on first use when the suite builds
//! its own gates.

use crate::hourly::PAID;
use crate::support::{scratch, workload_bin, Report, Run};
use mpgate_emulator::{Emulator, World};
use std::path::PathBuf;

/// The aarch64 build `name` (scripts/build-gates --aarch64 makes it).
fn aarch64_build(name: &str) -> PathBuf {
    let path = crate::support::aarch64_dir().join(name);
    assert!(path.is_file(), "{} is missing: build it with scripts/build-gates --aarch64", path.display());
    path
}

fn qemu() -> PathBuf {
    ["/usr/bin/qemu-aarch64", "/usr/bin/qemu-aarch64-static"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("qemu-aarch64 (apt-get install qemu-user)")
}

#[test]
#[ignore = "needs qemu-user, clang and the aarch64 musl target (scripts/test runs it)"]
fn aarch64_release_build_is_static_and_reports_its_identity_under_qemu() {
    let gate = aarch64_build("mpgate");
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
#[ignore = "needs qemu-user, clang and the aarch64 musl target (scripts/test runs it)"]
fn aarch64_test_build_admits_and_execs_under_qemu() {
    let gate = aarch64_build("mpgate-test");
    let emu = Emulator::start(World::demo()).expect("emulator");
    let env_dir = scratch();
    let env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
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
    let refused_dir = scratch();
    let refused = emu.workload_env("unsubscribed-task", refused_dir.path()).expect("env");
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
