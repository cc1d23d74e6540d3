//! The gate pass: the workload (or a start script) proves it was started through a real gate,
//! recently, in this container — and a pass from elsewhere or from earlier is refused.

use crate::hourly::{gate_as, FREE, PAID};
use crate::support::{gate_bin, scratch, Run};
use mpgate_emulator::{Emulator, World};
use std::path::{Path, PathBuf};

fn host_path() -> String {
    #[allow(clippy::disallowed_methods)] // the test's own PATH, to find python3 and unshare
    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
}

#[test]
fn a_fresh_pass_verifies_in_the_workload() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = gate_as(&emu, "ecs-task", dir.path())
        .args(["-q", "--"])
        .arg(gate_bin())
        .args(["pass", "verify", "--json"])
        .run()
        .expect_status(0)
        .check();
    let v: serde_json::Value = serde_json::from_str(out.stdout().trim()).expect("pass json");
    assert_eq!(v["product_code"], PAID);
    assert_eq!(v["tier"], "paid");
    assert_eq!(v["key_version"], 2);
    assert!(v["age_secs"].as_u64().expect("age") <= 10, "{v}");
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn a_pass_replayed_in_another_container_is_refused() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    // Same token, different UTS namespace: the container "elsewhere" has another hostname.
    let script = format!("hostname elsewhere-pod && exec {} pass verify", gate_bin().display());
    gate_as(&emu, "ecs-task", dir.path())
        .env("PATH", host_path())
        .args(["-q", "--", "unshare", "--uts", "sh", "-c", &script])
        .run()
        .expect_status(85)
        .expect_stderr_contains("mpgate: no-gate-pass: no valid gate pass: the pass was made on host")
        .expect_stderr_contains("this container is \"elsewhere-pod\"")
        .check();
}

#[test]
fn an_old_pass_is_refused() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let script = format!("sleep 2.2 && exec {} pass verify --max-age 1s", gate_bin().display());
    gate_as(&emu, "ecs-task", dir.path())
        .env("PATH", host_path())
        .args(["-q", "--", "sh", "-c", &script])
        .run()
        .expect_status(85)
        .expect_stderr_contains("old, older than 1s")
        .check();
}

#[test]
fn no_pass_or_a_forged_pass_is_refused() {
    Run::gate()
        .args(["pass", "verify"])
        .run()
        .expect_status(85)
        .expect_one_refusal_line()
        .expect_stderr_contains("MPGATE_SIGNATURE is not set")
        .check();
    Run::gate()
        .env("MPGATE_SIGNATURE", "eyJhbGciOiJub25lIn0.eyJwcm9kdWN0Q29kZSI6IngifQ.")
        .args(["pass", "verify"])
        .run()
        .expect_status(85)
        .expect_one_refusal_line()
        .expect_stderr_contains("algorithm \"none\" is not PS256")
        .check();
}

/// A code block of docs/gate-pass.md (fence info `LANG file=NAME`), extracted verbatim into `dir`.
fn snippet(dir: &Path, fence: &str, name: &str) -> PathBuf {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gate-pass.md")).expect("doc");
    let opening = format!("```{fence} file={name}\n");
    let start = doc.find(&opening).unwrap_or_else(|| panic!("no {opening:?} block")) + opening.len();
    let len = doc[start..].find("```").expect("end of block");
    let path = dir.join(name);
    std::fs::write(&path, &doc[start..start + len]).expect("write snippet");
    path
}

fn python_snippet(dir: &Path) -> PathBuf {
    snippet(dir, "python", "gate_pass_check.py")
}

/// The product keys the documented checks compile in, as their `CODE:VERSION:TIER:PEMFILE` arguments.
fn key_args() -> Vec<String> {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/keys");
    vec![format!("{PAID}:2:paid:{keys}/paid-v2.pub.pem"), format!("{FREE}:1:free:{keys}/free-v1.pub.pem")]
}

/// What every documented check must do behind a real gate, `check` being the command that runs it
/// (`python3 FILE`, `node FILE`, a built binary): accept the pass and print the tier from it; refuse
/// the free listing's pass when CMD exports the paid tier and code; get and verify a requested pass.
fn documented_check_behind_the_gate(check: &[String], path: &str) {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = gate_as(&emu, "ecs-task", dir.path())
        .env("PATH", path)
        .args(["-q", "--"])
        .args(check)
        .args(key_args())
        .run()
        .check();
    assert_eq!(out.code(), Some(0), "{check:?} refused a real pass\n{}", out.stderr());
    assert!(out.stdout().starts_with(&format!("gate pass ok: {PAID} key version 2, tier paid")), "{}", out.stdout());
    // The free listing's buyer whose CMD claims the paid tier and code.
    let line = check.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
    let keys = key_args().iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
    let script = format!("export MPGATE_TIER=paid MPGATE_PRODUCT_CODE={PAID}; exec {line} {keys}");
    gate_as(&emu, "ecs-task", dir.path())
        .env("PATH", path)
        .env("MPGATE_PRODUCT_CODE", FREE)
        .args(["-q", "--", "/bin/sh", "-c", &script])
        .run()
        .expect_status(1)
        .expect_stderr_contains("gate pass refused: MPGATE_")
        .expect_stderr_contains("does not match the pass (tier free)")
        .check();
    // A pass the workload requests for its own nonce.
    let out = Run::bin(check[0].clone().into())
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("PATH", path)
        .env("MPGATE_DEADLINE", "20s")
        .args(&check[1..])
        .arg("--request")
        .arg(gate_bin())
        .args(key_args())
        .run()
        .check();
    assert_eq!(out.code(), Some(0), "{check:?} refused a requested pass\n{}", out.stderr());
    assert_eq!(out.stdout(), format!("requested pass ok: {PAID} key version 2, tier paid\n"));
    let sent = emu.bodies("RegisterUsage");
    let nonce = sent.last().expect("a RegisterUsage")["Nonce"].as_str().expect("nonce").to_string();
    assert!(nonce.len() == 32 && !nonce.starts_with("mpgate1"), "the check's own nonce was sent: {nonce}");
}

#[test]
#[ignore = "needs python3 with PyJWT and cryptography (scripts/test installs them)"]
fn the_documented_python_check_accepts_a_real_pass_and_refuses_a_forgery() {
    let dir = scratch();
    let snippet = python_snippet(dir.path());
    documented_check_behind_the_gate(&["python3".into(), snippet.display().to_string()], &host_path());
    // Without the gate: a token signed by another key.
    Run::bin("python3".into())
        .env("PATH", host_path())
        .env("MPGATE_SIGNATURE", "eyJhbGciOiJQUzI1NiJ9.eyJwcm9kdWN0Q29kZSI6IngifQ.c2ln")
        .arg(&snippet)
        .args(key_args())
        .run()
        .expect_status(1)
        .expect_stderr_contains("gate pass refused")
        .check();
}

#[test]
#[ignore = "needs Node.js and the npm registry (scripts/test runs it)"]
fn the_documented_node_check_accepts_a_real_pass_and_refuses_a_forgery() {
    let dir = scratch();
    // Bounded like every wait in the suite: coreutils' timeout kills a stalled registry fetch.
    let npm = std::process::Command::new("timeout")
        .args(["300", "npm", "install", "--no-audit", "--no-fund", "--silent", "jose@5"])
        .current_dir(dir.path())
        .status()
        .expect("npm (Node.js) is needed for this test");
    assert!(npm.success(), "npm install jose failed or took more than 300 s: {npm}");
    let script = snippet(dir.path(), "js", "gate_pass_check.mjs");
    documented_check_behind_the_gate(&["node".into(), script.display().to_string()], &host_path());
    Run::bin("node".into())
        .env("PATH", host_path())
        .env("MPGATE_SIGNATURE", "eyJhbGciOiJQUzI1NiJ9.eyJwcm9kdWN0Q29kZSI6IngifQ.c2ln")
        .arg(&script)
        .args(key_args())
        .run()
        .expect_status(1)
        .expect_stderr_contains("gate pass refused")
        .check();
}

/// Where Debian's golang-github-golang-jwt-jwt-dev puts the v4 source; the documented go.mod points here.
const GO_JWT_SOURCE: &str = "/usr/share/gocode/src/github.com/golang-jwt/jwt";

#[test]
#[ignore = "needs Go and Debian golang-github-golang-jwt-jwt-dev (scripts/test installs them)"]
fn the_documented_go_check_accepts_a_real_pass_and_refuses_a_forgery() {
    assert!(
        Path::new(GO_JWT_SOURCE).join("go.mod").exists(),
        "install golang-go and golang-github-golang-jwt-jwt-dev (.ci/run does)"
    );
    let dir = scratch();
    let module = dir.path().join("gocheck");
    std::fs::create_dir(&module).expect("module dir");
    snippet(&module, "text", "go.mod");
    snippet(&module, "go", "gate_pass_check.go");
    // Offline by construction: no proxy, no checksum database, the packaged source via `replace`.
    let build = format!("cd {} && go build -o gate_pass_check .", module.display());
    let home = dir.path().display().to_string();
    Run::bin("sh".into())
        .env("PATH", host_path())
        .env("HOME", &home)
        .env("GOCACHE", format!("{home}/gocache"))
        .env("GOPATH", format!("{home}/gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOTOOLCHAIN", "local")
        .args(["-c", &build])
        .timeout(std::time::Duration::from_secs(300))
        .run()
        .expect_status(0)
        .check();
    let check = module.join("gate_pass_check");
    documented_check_behind_the_gate(&[check.display().to_string()], &host_path());
    Run::bin(check)
        .env("MPGATE_SIGNATURE", "eyJhbGciOiJQUzI1NiJ9.eyJwcm9kdWN0Q29kZSI6IngifQ.c2ln")
        .args(key_args())
        .run()
        .expect_status(1)
        .expect_stderr_contains("gate pass refused: signature does not verify")
        .check();
}
