//! After admission rows: order and classification. What the gate checks before it bills, and which
//! failures end a start at once instead of being retried until the deadline.
//!
//! * CMD is resolved before the first AWS call (credentials included), as execvp would find it in
//!   the workload's `PATH`: a program that is missing (127), a directory, a file that is not regular
//!   or not executable (126) is refused with one line naming it, and the emulator's ledger stays
//!   empty for every pricing model and both modes. What the check cannot see (a script's missing
//!   interpreter) still fails at execve, after the registration: a row pins that limit.
//! * An error no retry can fix is final: an `AWS_EXECUTION_ENV` the SDK cannot put in its
//!   User-Agent header is left out of it (the workload still gets it unchanged), never 81 after the
//!   deadline.
//! * A profile is never an endpoint: a shared-config profile's web identity STS call is locked like
//!   IRSA's.

use crate::hourly::gate_as;
use crate::support::{scratch, workload_bin, Outcome, Report, Run};
use mpgate_emulator::{Emulator, World};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Every request the emulator received, by operation.
fn ledger(emu: &Emulator) -> Vec<String> {
    emu.requests().into_iter().map(|r| r.op).collect()
}

/// The refusal was made before anything reached AWS: no credentials, no registration, no seat.
fn assert_nothing_sent(emu: &Emulator, out: &Outcome) {
    assert!(ledger(emu).is_empty(), "AWS was called before CMD was checked: {:?}\n{}", ledger(emu), out.stderr());
}

/// A file at `path` with `mode`.
fn file(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn cmd_naming_a_program_missing_from_path_is_127_before_registration() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = gate_as(&emu, "ecs-task", dir.path())
        .env("PATH", format!("{}:/nonexistent", dir.path().display()))
        .args(["--", "no-such-server-mpgate", "--port", "80"])
        .run()
        .expect_status(127)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "mpgate: exec-not-found: cannot execute \"no-such-server-mpgate\": not found in PATH {}:/nonexistent; check the image's CMD and PATH (nothing was sent to AWS)",
            dir.path().display()
        ))
        .check();
    assert_nothing_sent(&emu, &out);
}

#[test]
fn cmd_naming_a_missing_path_is_127_before_registration() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let missing = dir.path().join("app/server");
    let out = gate_as(&emu, "ecs-task", dir.path())
        .arg("--")
        .arg(&missing)
        .run()
        .expect_status(127)
        .expect_stderr_contains(&format!(
            "cannot execute {:?}: no such file or directory;",
            missing.display().to_string()
        ))
        .check();
    assert_nothing_sent(&emu, &out);
}

#[test]
fn cmd_naming_a_directory_is_126_before_registration() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = gate_as(&emu, "ecs-task", dir.path())
        .arg("--")
        .arg(dir.path())
        .run()
        .expect_status(126)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("cannot execute {:?}: is a directory;", dir.path().display().to_string()))
        .check();
    assert_nothing_sent(&emu, &out);
}

#[test]
fn cmd_naming_a_file_without_execute_permission_is_126_before_registration() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let plain = dir.path().join("server");
    file(&plain, "#!/bin/sh\nexit 0\n", 0o644);
    let out = gate_as(&emu, "ecs-task", dir.path())
        .env("PATH", dir.path())
        .args(["--", "server"])
        .run()
        .expect_status(126)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "cannot execute \"server\": found as {} but is not executable by uid 0 (permission denied; mode 0644",
            plain.display()
        ))
        .check();
    assert_nothing_sent(&emu, &out);
}

#[test]
fn cmd_naming_a_fifo_is_126_before_registration() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let fifo = dir.path().join("server");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755)).expect("mkfifo");
    let out = gate_as(&emu, "ecs-task", dir.path())
        .arg("--")
        .arg(&fifo)
        .run()
        .expect_status(126)
        .expect_stderr_contains("is a named pipe, not a regular file")
        .check();
    assert_nothing_sent(&emu, &out);
}

#[test]
fn supervise_on_custom_metering_with_a_missing_program_sends_no_meter_usage() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = crate::metering::gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--", "no-such-server-mpgate"])
        .run()
        .expect_status(127)
        .expect_one_refusal_line()
        .expect_stderr_contains("not found in PATH /usr/bin:/bin")
        .check();
    assert_nothing_sent(&emu, &out);
}

#[test]
fn contract_start_with_a_program_that_cannot_run_checks_no_seat_out() {
    // `supervise` only: the contract test build counts seats, so its `exec` is refused before this
    // check (after_admission::seats).
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = crate::contract::gate(&emu, "ecs-task", dir.path())
        .args(["supervise", "--"])
        .arg(dir.path())
        .run()
        .expect_status(126)
        .expect_stderr_contains("is a directory")
        .check();
    assert_nothing_sent(&emu, &out);
    assert!(crate::contract::out_seats(&emu).is_empty(), "a seat was checked out");
}

#[test]
fn a_program_found_past_a_non_executable_namesake_runs_with_argv0_as_given() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let shadow = dir.path().join("shadow");
    std::fs::create_dir(&shadow).expect("mkdir");
    file(&shadow.join("mpgate-test-workload"), "not a program", 0o644);
    let bin_dir = workload_bin().parent().expect("dir").to_path_buf();
    let report = dir.path().join("report.json");
    for mode in ["exec", "supervise"] {
        let out = Run::gate()
            .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
            .env("MPGATE_DEADLINE", "20s")
            .env("PATH", format!("/nonexistent::{}:{}", shadow.display(), bin_dir.display()))
            .args([mode, "-q", "--", "mpgate-test-workload", "report"])
            .arg(&report)
            .run()
            .check();
        assert_eq!(out.code(), Some(0), "{mode}: {}", out.stderr());
        let seen = Report::read(&report);
        assert_eq!(seen.argv[0], b"mpgate-test-workload", "{mode}: argv[0] is the name CMD gave");
    }
    assert_eq!(emu.bodies("RegisterUsage").len(), 2);
}

/// The limit of checking before billing: the kernel finds a script's interpreter only at execve,
/// after the registration (docs/exit-codes.md says so).
#[test]
fn a_script_whose_interpreter_is_missing_fails_at_exec_after_registration() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let script = dir.path().join("server");
    file(&script, "#!/nonexistent/interpreter\n", 0o755);
    gate_as(&emu, "ecs-task", dir.path())
        .arg("-q")
        .arg("--")
        .arg(&script)
        .run()
        .expect_status(127)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "cannot execute {:?}: no such file or directory",
            script.display().to_string()
        ))
        .check();
    assert_eq!(emu.bodies("RegisterUsage").len(), 1, "the start was registered before execve failed");
}

/// `AWS_EXECUTION_ENV` values a buyer can set, and whether an HTTP header can carry them.
const EXECUTION_ENVS: &[(&str, &str, bool)] = &[
    ("newline", "AWS_ECS_FARGATE\nX-Injected: 1", false),
    ("DEL", "AWS_ECS_FARGATE\x7f", false),
    ("carriage return", "AWS_ECS\rEC2", false),
    ("non-ASCII", "AWS_ECS_FARGATE_caf\u{e9}", true),
];

/// The workload's own `AWS_EXECUTION_ENV`, from its report.
fn execution_env_seen(report: &Path) -> Option<String> {
    Report::read(report).var("AWS_EXECUTION_ENV")
}

#[test]
fn aws_execution_env_no_header_can_carry_is_left_out_of_the_user_agent_and_admitted() {
    for &(what, value, header_safe) in EXECUTION_ENVS {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let dir = scratch();
        let report = dir.path().join("report.json");
        let out = gate_as(&emu, "ecs-task", dir.path())
            .env("AWS_EXECUTION_ENV", value)
            .args(["--", "mpgate-test-workload", "report"])
            .env("PATH", workload_bin().parent().expect("dir"))
            .arg(&report)
            .run()
            .check();
        assert_eq!(out.code(), Some(0), "{what}: not admitted:\n{}", out.stderr());
        assert_eq!(
            out.stderr().contains("AWS_EXECUTION_ENV holds a character an HTTP header cannot carry"),
            !header_safe,
            "{what}: {}",
            out.stderr()
        );
        assert_eq!(execution_env_seen(&report).as_deref(), Some(value), "{what}: the workload's variable changed");
        let sent = emu.requests().into_iter().find(|r| r.op == "RegisterUsage").expect("RegisterUsage");
        let agent = sent.headers.iter().find(|(k, _)| k == "x-amz-user-agent").map(|(_, v)| v.clone());
        let agent = agent.expect("x-amz-user-agent sent");
        assert_eq!(agent.contains("exec-env/"), header_safe, "{what}: {agent}");
    }
}

#[test]
fn aws_execution_env_no_header_can_carry_does_not_stop_custom_metering_or_contract() {
    let (what, value, _) = EXECUTION_ENVS[0];
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let metered = crate::metering::gate(&emu, "ecs-task", dir.path())
        .env("AWS_EXECUTION_ENV", value)
        .args(["supervise", "-q", "--", "true"])
        .run()
        .check();
    assert_eq!(metered.code(), Some(0), "{what}: custom metering not admitted:\n{}", metered.stderr());
    let contract = crate::contract::gate(&emu, "ecs-task", dir.path())
        .env("AWS_EXECUTION_ENV", value)
        .args(["supervise", "-q", "--", "true"])
        .run()
        .check();
    assert_eq!(contract.code(), Some(0), "{what}: contract not admitted:\n{}", contract.stderr());
    let ops = ledger(&emu);
    assert!(ops.iter().any(|o| o == "MeterUsage") && ops.iter().any(|o| o == "CheckoutLicense"), "{ops:?}");
}

/// aws-config's own clients (IRSA's STS call) cannot be given mpgate's User-Agent: the SDK refuses
/// the request before sending it, the same at every attempt, so the start ends at once with 82
/// (the deadline's refusal would be 81).
#[test]
fn aws_execution_env_no_header_can_carry_under_irsa_is_82_at_once_never_81() {
    for &(what, value, header_safe) in EXECUTION_ENVS {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let dir = scratch();
        let out = gate_as(&emu, "eks-irsa", dir.path())
            .env("AWS_EXECUTION_ENV", value)
            .env("MPGATE_DEADLINE", "30s")
            .args(["-q", "--", "true"])
            .env("PATH", "/usr/bin:/bin")
            .run();
        if header_safe {
            out.expect_status(0).check();
            continue;
        }
        // Two lines: the warning that the value is left out where mpgate builds the client, then
        // the refusal.
        out.expect_status(82)
            .expect_stderr_contains("cannot load credentials from EKS IRSA (web identity token)")
            .expect_stderr_contains("the AWS SDK could not build the request, which no retry changes")
            .expect_stderr_contains("AWS_EXECUTION_ENV")
            .check();
        assert!(!ledger(&emu).iter().any(|o| o == "RegisterUsage"), "{what}: {:?}", ledger(&emu));
    }
}

/// The `eks-irsa` workload's environment with its web identity moved into a profile file
/// (`dir/config`, `[default]` with `role_arn` and `web_identity_token_file`, plus `profile_extra`);
/// `token` is where the profile says the token is (its path inside a chroot, say).
fn irsa_as_profile(emu: &Emulator, dir: &Path, token: Option<&str>, profile_extra: &str) -> Vec<(String, String)> {
    let env = emu.workload_env("eks-irsa", dir).expect("env");
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).expect(k);
    let (role, token_file) = (var("AWS_ROLE_ARN"), var("AWS_WEB_IDENTITY_TOKEN_FILE"));
    let profile = format!(
        "[default]\nrole_arn = {role}\nweb_identity_token_file = {}\n{profile_extra}",
        token.unwrap_or(&token_file)
    );
    std::fs::write(dir.join("config"), profile).expect("profile");
    env.into_iter()
        .filter(|(k, _)| !["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"].contains(&k.as_str()))
        .chain([("AWS_CONFIG_FILE".to_string(), dir.join("config").display().to_string())])
        .collect()
}

/// A profile is never an endpoint: its `endpoint_url` does not move the STS call of its own web
/// identity. The test flavour honours only the `AWS_ENDPOINT_URL*` variables, none of which is set
/// for STS here, so the profile's endpoint (the emulator) must see nothing and the start ends at once.
#[test]
fn profile_endpoint_url_does_not_redirect_its_web_identity_sts_call() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let env = irsa_as_profile(&emu, dir.path(), None, &format!("endpoint_url = {}\n", emu.url()));
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
        .chain([("AWS_ENDPOINT_URL_MARKETPLACE_METERING".to_string(), emu.url())])
        .collect();
    Run::gate()
        .envs(env)
        .env("MPGATE_DEADLINE", "30s")
        .args(["exec", "--", "true"])
        .env("PATH", "/usr/bin:/bin")
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "the STS request would have gone to {}, not to https://sts.us-east-1.amazonaws.com:443",
            emu.url()
        ))
        .expect_stderr_contains("unset that setting for this container")
        .check();
    assert!(ledger(&emu).is_empty(), "the profile's endpoint was called: {:?}", ledger(&emu));
}

/// Positive control for the row above: the same profile, with the STS endpoint the test flavour
/// honours, reaches the emulator's STS.
#[test]
fn profile_web_identity_reaches_the_sts_endpoint_the_flavour_allows() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let env = irsa_as_profile(&emu, dir.path(), None, "");
    let out = Run::gate()
        .envs(env)
        .env("MPGATE_DEADLINE", "30s")
        .args(["exec", "--", "true"])
        .env("PATH", "/usr/bin:/bin")
        .run();
    assert!(ledger(&emu).iter().any(|o| o == "AssumeRoleWithWebIdentity"), "{:?}\n{}", ledger(&emu), out.stderr());
}

/// The release flavour: a profile's web identity never sends the token to an endpoint the environment
/// names (here the emulator, inside an empty root where nothing else resolves): `AWS_ENDPOINT_URL`,
/// which aws-config's STS client reads, is refused by the STS lock; `AWS_ENDPOINT_URL_STS` naming no
/// VPC endpoint is refused at start, before any call.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn release_profile_web_identity_with_aws_endpoint_url_sts_is_82_and_sends_no_token() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = crate::rootfs::rootfs("mpgate");
    let env_dir = scratch();
    std::fs::write(root.path().join("token"), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").expect("token");
    let mut env = irsa_as_profile(&emu, env_dir.path(), Some("/token"), "");
    std::fs::copy(env_dir.path().join("config"), root.path().join("config")).expect("profile into the root");
    for (k, v) in env.iter_mut() {
        if k == "AWS_CONFIG_FILE" {
            *v = "/config".into();
        }
    }
    assert!(env.iter().any(|(k, v)| k == "AWS_ENDPOINT_URL" && *v == emu.url()), "the generic variable is set");
    crate::rootfs::in_chroot(root.path(), env.clone())
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("the STS request would have gone to {}", emu.url()))
        .check();
    env.push(("AWS_ENDPOINT_URL_STS".into(), emu.url()));
    crate::rootfs::in_chroot(root.path(), env)
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("misconfigured: AWS_ENDPOINT_URL_STS={:?} is not used: ", emu.url()))
        .check();
    assert!(!ledger(&emu).iter().any(|o| o == "AssumeRoleWithWebIdentity"), "{:?}", ledger(&emu));
    assert!(!root.path().join("report.json").exists());
}
