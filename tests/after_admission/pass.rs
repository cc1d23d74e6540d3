//! After admission, the gate pass: what CMD can make the workload believe about its own admission.
//!
//! CMD runs after the gate, so it can rewrite every `MPGATE_*` variable; only the signed pass is out
//! of its reach. `mpgate pass verify` refuses an environment that says another product code, tier,
//! key version or nonce than the pass, and prints the tier the pass proves. A pass minted in one
//! entitled task for another host or nonce must be useless elsewhere: host parts never collide, and
//! with `mpgate pass request` the workload chooses the nonce itself, so a pass minted before it chose
//! one cannot match. Bad nonces are refused before any AWS call.

use crate::hourly::{gate_as, FREE, PAID};
use crate::support::{dist_dir, gate_bin, scratch, Outcome, Run};
use mpgate::pass::{verify_requested, PassKey};
use mpgate_emulator::{Emulator, World};
use std::path::Path;
use std::time::SystemTime;

/// `mpgate exec -- /bin/sh -c SCRIPT` on the free listing, as the `ecs-task` workload; `$GATE` in
/// the script is this gate.
fn free_listing_runs(emu: &Emulator, dir: &Path, script: &str) -> Outcome {
    gate_as(emu, "ecs-task", dir)
        .env("MPGATE_PRODUCT_CODE", FREE)
        .env("GATE", gate_bin())
        .args(["-q", "--", "/bin/sh", "-c", script])
        .run()
}

#[test]
fn cmd_exporting_the_paid_tier_and_code_on_the_free_listing_fails_pass_verify() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let script = format!("export MPGATE_TIER=paid MPGATE_PRODUCT_CODE={PAID}; exec \"$GATE\" pass verify --tier");
    free_listing_runs(&emu, dir.path(), &script)
        .expect_status(85)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("MPGATE_PRODUCT_CODE is \"{PAID}\" but the pass says \"{FREE}\""))
        .expect_stderr_contains("tier free")
        .expect_stdout_empty()
        .check();
}

#[test]
fn cmd_exporting_only_the_paid_tier_fails_pass_verify() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    free_listing_runs(&emu, dir.path(), "export MPGATE_TIER=paid; exec \"$GATE\" pass verify")
        .expect_status(85)
        .expect_one_refusal_line()
        .expect_stderr_contains("MPGATE_TIER is \"paid\" but the pass says \"free\"")
        .check();
}

#[test]
fn cmd_rewriting_or_unsetting_the_key_version_or_nonce_fails_pass_verify() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    for (script, want) in [
        ("export MPGATE_PUBLIC_KEY_VERSION=+1", "MPGATE_PUBLIC_KEY_VERSION is \"+1\" but the pass says \"1\""),
        ("export MPGATE_NONCE=mpgate1:1:web:00", "MPGATE_NONCE is \"mpgate1:1:web:00\" but the pass says its own"),
        ("unset MPGATE_NONCE", "MPGATE_NONCE is unset"),
    ] {
        let dir = scratch();
        free_listing_runs(&emu, dir.path(), &format!("{script}; exec \"$GATE\" pass verify"))
            .expect_status(85)
            .expect_one_refusal_line()
            .expect_stderr_contains(want)
            .check();
    }
}

#[test]
fn the_unmodified_free_listing_passes_verify_and_prints_the_free_tier() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = free_listing_runs(&emu, dir.path(), "exec \"$GATE\" pass verify --tier").expect_status(0).check();
    assert_eq!(out.stdout(), "free\n");
}

/// The product keys a workload compiles in: both demo products' keys.
fn workload_keys() -> Vec<PassKey> {
    let pem = |name: &str| {
        std::fs::read_to_string(format!("{}/testdata/keys/{name}.pub.pem", env!("CARGO_MANIFEST_DIR"))).expect("key")
    };
    vec![
        PassKey::from_pem(PAID, 1, &pem("paid-v1")).expect("paid v1"),
        PassKey::from_pem(PAID, 2, &pem("paid-v2")).expect("paid v2"),
    ]
}

/// `mpgate pass request NONCE` as the `ecs-task` workload runs it at its start.
fn request(emu: &Emulator, dir: &Path, nonce: &str) -> Outcome {
    let env = emu.workload_env("ecs-task", dir).expect("workload env");
    Run::gate().envs(env).env("MPGATE_DEADLINE", "20s").args(["pass", "request", nonce]).run()
}

#[test]
fn a_pass_minted_for_another_nonce_is_useless_to_a_workload_that_chose_its_own() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    // Minted in an entitled task before this workload chose its nonce: by the gate's own exec, and
    // by a request for a nonce the buyer picked.
    let exec_pass = gate_as(&emu, "ecs-task", dir.path())
        .env("GATE", gate_bin())
        .args(["-q", "--", "/bin/sh", "-c", "printf %s \"$MPGATE_SIGNATURE\""])
        .run()
        .expect_status(0)
        .check()
        .stdout();
    let minted = request(&emu, dir.path(), "0123456789abcdef0123456789abcdef").expect_status(0).check().stdout();
    let mine = "f3c1e0a9b7d24c6e8f0a1b2c3d4e5f60";
    for (what, token) in [("the exec pass", exec_pass.trim()), ("a pre-minted request", minted.trim())] {
        let err = verify_requested(token, &workload_keys(), mine, SystemTime::now()).expect_err(what);
        assert!(err.contains("another nonce than the one this workload generated"), "{what}: {err}");
    }
}

#[test]
fn a_request_with_a_fresh_nonce_verifies_with_the_workloads_key() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let nonce = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";
    let out = request(&emu, dir.path(), nonce).expect_status(0).check();
    let said: Vec<String> = out.stderr().lines().filter(|l| !l.contains("test flavour")).map(String::from).collect();
    assert!(said.is_empty(), "a request prints only the token: {said:?}");
    let token = out.stdout();
    assert!(token.ends_with('\n') && token.trim().split('.').count() == 3, "{token:?}");
    let verified = verify_requested(token.trim(), &workload_keys(), nonce, SystemTime::now()).expect("verifies");
    assert_eq!((verified.product_code.as_str(), verified.key_version), (PAID, 2));
    let calls = emu.bodies("RegisterUsage");
    assert_eq!(calls.len(), 1, "one RegisterUsage per request");
    assert_eq!(calls[0]["Nonce"], nonce, "the workload's nonce is the one sent");
}

#[test]
fn a_request_reads_its_nonce_from_the_first_line_of_stdin() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let nonce = "stdin-nonce-0123456789";
    let env = emu.workload_env("ecs-task", dir.path()).expect("workload env");
    let out = Run::bin("/bin/sh".into())
        .envs(env)
        .env("GATE", gate_bin())
        .args(["-c", &format!("printf '%s\\n' {nonce} | \"$GATE\" pass request -")])
        .run()
        .expect_status(0)
        .check();
    verify_requested(out.stdout().trim(), &workload_keys(), nonce, SystemTime::now()).expect("verifies");
    assert_eq!(emu.bodies("RegisterUsage")[0]["Nonce"], nonce);
}

#[test]
fn bad_request_nonces_are_refused_with_a_line_before_any_aws_call() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let long = "n".repeat(256);
    for (nonce, want) in [
        ("", "the nonce is empty"),
        (long.as_str(), "the nonce is 256 bytes, more than RegisterUsage's 255"),
        ("caf\u{e9}", "use printable ASCII without spaces"),
        ("two words", "use printable ASCII without spaces"),
        ("mpgate1:1800000000:web-1:0123456789abcdef0123456789abcdef", "are the gate's own"),
    ] {
        request(&emu, dir.path(), nonce)
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains("mpgate: usage: mpgate pass request: ")
            .expect_stderr_contains(want)
            .expect_stdout_empty()
            .check();
    }
    // Bytes that are not UTF-8 on stdin, and an empty stdin.
    let env = emu.workload_env("ecs-task", dir.path()).expect("workload env");
    for (input, want) in [("\\377\\376", "is not printable ASCII"), ("", "the nonce is empty")] {
        Run::bin("/bin/sh".into())
            .envs(env.clone())
            .env("GATE", gate_bin())
            .args(["-c", &format!("printf '{input}' | \"$GATE\" pass request -")])
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(want)
            .check();
    }
    assert!(emu.bodies("RegisterUsage").is_empty(), "a refused nonce reached AWS");
}

#[test]
fn a_request_is_refused_like_exec_when_the_buyer_is_not_subscribed() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let env = emu.workload_env("unsubscribed-task", dir.path()).expect("workload env");
    Run::gate()
        .envs(env)
        .env("MPGATE_DEADLINE", "20s")
        .args(["pass", "request", "0123456789abcdef"])
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("CustomerNotEntitledException")
        .expect_stdout_empty()
        .check();
}

#[test]
fn a_request_on_a_contract_or_custom_metering_build_is_refused_naming_the_pricing_model() {
    for (gate, model) in [("mpgate-test-contract", "contract"), ("mpgate-test-metered", "custom-metering")] {
        Run::bin(dist_dir().join(gate))
            .args(["pass", "request", "0123456789abcdef"])
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!("built for {model} pricing, which makes no RegisterUsage call"))
            .check();
    }
}

fn host_path() -> String {
    #[allow(clippy::disallowed_methods)] // the test's own PATH, to find python3
    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
}

#[test]
#[ignore = "needs root: unshare for a UTS namespace, and python3 (scripts/test runs it)"]
fn a_pass_made_on_host_web1_is_refused_on_host_web_1() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let env = emu.workload_env("ecs-task", dir.path()).expect("workload env");
    // The gate starts on web1; CMD renames the container web_1 (the kernel takes any bytes; hostname(1)
    // refuses an underscore, Python does not), a name whose host part was once web1's.
    let rename = |name: &str| format!("python3 -c 'import socket; socket.sethostname(\"{name}\")'");
    let script = format!(
        "{} && exec \"$GATE\" exec -q -- /bin/sh -c '{} && exec \"$GATE\" pass verify'",
        rename("web1"),
        rename("web_1").replace('\'', "'\\''")
    );
    Run::bin("/usr/bin/unshare".into())
        .envs(env)
        .env("PATH", host_path())
        .env("GATE", gate_bin())
        .env("MPGATE_DEADLINE", "20s")
        .args(["--uts", "/bin/sh", "-c", &script])
        .run()
        .expect_status(85)
        .expect_one_refusal_line()
        .expect_stderr_contains("the pass was made on host \"web1\", this container is \"web_5f1\"")
        .check();
}
