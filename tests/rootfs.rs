//! The static binary in an empty root filesystem, as PID 1: no /etc, no certificates, no resolver.
//! Also where the release flavour is tested: in the chroot, name resolution can only ask 127.0.0.1:53,
//! so a release binary that tries to reach real AWS cannot send anything off this machine.

use crate::hourly::PAID;
use crate::support::{dist_dir, scratch, Report, Run};
use mpgate_emulator::{Emulator, World};
use std::path::Path;

const UNSHARE: &str = "/usr/bin/unshare";
const CHROOT: &str = "/usr/sbin/chroot";

/// An empty root with only the gate, the workload and a termination log.
pub fn rootfs(gate: &str) -> tempfile::TempDir {
    let dir = scratch();
    let dist = dist_dir();
    std::fs::copy(dist.join(gate), dir.path().join("mpgate")).expect("copy gate");
    std::fs::copy(dist.join("mpgate-test-workload"), dir.path().join("workload")).expect("copy workload");
    std::fs::create_dir(dir.path().join("dev")).expect("mkdir dev");
    std::fs::write(dir.path().join("dev/termination-log"), "").expect("termination log");
    dir
}

pub fn in_chroot(root: &Path, env: Vec<(String, String)>) -> Run {
    Run::bin(UNSHARE.into()).envs(env).args(["--pid", "--fork", CHROOT]).arg(root).arg("/mpgate")
}

fn is_static(path: &Path) -> bool {
    let out = std::process::Command::new("readelf").arg("-lW").arg(path).output().expect("readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && !text.contains("INTERP") && !text.contains("Requesting program interpreter")
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn static_gate_is_pid_1_in_an_empty_rootfs_and_the_workload_takes_over() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate-test");
    assert!(is_static(&root.path().join("mpgate")), "the gate binary must be static");
    assert!(is_static(&root.path().join("workload")), "the test workload must be static");
    let env_dir = scratch();
    let env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    let out = in_chroot(root.path(), env).args(["exec", "--", "/workload", "report", "/report.json"]).run();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let report = Report::read(&root.path().join("report.json"));
    assert_eq!(report.pid, 1, "the workload is PID 1 after mpgate (PID 1) exec'd it");
    assert_eq!(report.ppid, 0);
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
    assert_eq!(emu.requests().iter().filter(|r| r.op == "RegisterUsage").count(), 1);
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn refusal_in_the_rootfs_reaches_the_termination_log() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate-test");
    let env_dir = scratch();
    let env = emu.workload_env("unsubscribed-task", env_dir.path()).expect("env");
    let out = in_chroot(root.path(), env)
        .args(["exec", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(80)
        .check();
    let log = std::fs::read_to_string(root.path().join("dev/termination-log")).expect("log");
    assert_eq!(log.trim_end(), out.last_line());
    assert!(log.starts_with("mpgate: not-entitled: RegisterUsage answered CustomerNotEntitledException"), "{log}");
    assert!(!root.path().join("report.json").exists());
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn release_flavour_ignores_every_endpoint_override() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    assert!(is_static(&root.path().join("mpgate")));
    // A profile file with endpoint_url and a services section, inside the root.
    std::fs::write(
        root.path().join("config"),
        format!(
            "[default]\nendpoint_url = {u}\n[services s]\nmarketplace_metering =\n  endpoint_url = {u}\n",
            u = emu.url()
        ),
    )
    .expect("profile");
    let env_dir = scratch();
    let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    // The generic AWS_ENDPOINT_URL (from `workload_env`) and the profile are ignored; the service's
    // own variable naming no VPC endpoint is refused at start instead (tests/tamper.rs row 2).
    env.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS".into(), "false".into()));
    env.push(("AWS_CONFIG_FILE".into(), "/config".into()));
    env.push(("SSL_CERT_FILE".into(), "/config".into()));
    let out = in_chroot(root.path(), env)
        .args(["exec", "--deadline", "3s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(81)
        .expect_stderr_lacks("test flavour")
        .expect_stderr_contains("could not verify entitlement within the 3s start-up deadline")
        .check();
    assert!(out.stderr().lines().count() == 1, "{}", out.stderr());
    assert!(!root.path().join("report.json").exists());
    let metering: Vec<_> = emu.requests().into_iter().filter(|r| r.op == "RegisterUsage").collect();
    assert!(metering.is_empty(), "the release flavour sent RegisterUsage to an overridden endpoint: {metering:?}");
}

#[test]
fn release_flavour_version_names_the_flavour_and_the_keys() {
    let out = Run::bin(dist_dir().join("mpgate"))
        .arg("version")
        .run()
        .expect_status(0)
        .expect_stderr_lacks("warning")
        .check();
    let text = out.stdout();
    assert!(text.starts_with("mpgate 0.1.0 (release flavour)"), "{text}");
    assert!(text.contains("8f3kq2demopaid0mpgate01  tier paid  (default)"), "{text}");
    assert!(text.contains("key version 2  rsa-2048  sha256:"), "{text}");
}

/// aws-config's internal STS client for IRSA reads `AWS_ENDPOINT_URL*` whatever the flavour; the
/// release flavour lets that client reach STS only at its AWS endpoint (`aws::sts_lock`), so the
/// environment's endpoint (here the emulator's `AWS_ENDPOINT_URL`) never sees the web identity
/// token, and the start ends at once with 82 naming both endpoints (the deadline would say 81).
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn release_flavour_irsa_sts_is_not_redirectable() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    let env: Vec<(String, String)> = emu
        .workload_env("eks-irsa", root.path())
        .expect("env")
        .into_iter()
        .map(|(k, v)| if k == "AWS_WEB_IDENTITY_TOKEN_FILE" { (k, "/eks-token".to_string()) } else { (k, v) })
        .collect();
    assert!(root.path().join("eks-token").is_file(), "the emulator wrote the service-account token into the root");
    in_chroot(root.path(), env)
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "cannot load credentials from EKS IRSA (web identity token): the STS request would have gone to {}, not to https://sts.us-east-1.amazonaws.com:443",
            emu.url()
        ))
        .check();
    let ops: Vec<String> = emu.requests().into_iter().map(|r| r.op).collect();
    assert!(!ops.contains(&"AssumeRoleWithWebIdentity".to_string()), "STS was redirected: {ops:?}");
    assert!(!ops.contains(&"RegisterUsage".to_string()), "metering must never be redirected: {ops:?}");
    assert!(!root.path().join("report.json").exists());
}

/// Least privilege: an arbitrary non-root uid, a read-only root filesystem, no capabilities, no
/// writable directory — and the gate still admits. A workload that tries to write proves the root
/// really is read-only.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn gate_runs_as_nobody_on_a_read_only_root() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate-test");
    let env_dir = scratch();
    let env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    let r = root.path().display().to_string();
    let run = |workload_args: &str| {
        let script = format!(
            "mount --bind {r} {r} && mount -o remount,bind,ro {r} && exec {CHROOT} --userspec=65534:65534 {r} /mpgate exec -q -- /workload {workload_args}"
        );
        Run::bin(UNSHARE.into()).envs(env.clone()).args(["--mount", "--pid", "--fork", "sh", "-c", &script]).run()
    };
    let out = run("report -");
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let report: serde_json::Value = serde_json::from_str(out.stdout().trim()).expect("report on stdout");
    assert_eq!(report["pid"], 1);
    let env_has = |k: &str| {
        report["env_hex"]
            .as_array()
            .expect("env")
            .iter()
            .any(|p| p[0] == k.bytes().map(|b| format!("{b:02x}")).collect::<String>())
    };
    assert!(env_has("MPGATE_SIGNATURE"));
    // Negative control: the same workload cannot write into that root.
    let denied = run("report /report.json");
    assert_eq!(denied.code(), Some(99), "the root was writable: {}", denied.stderr());
}
