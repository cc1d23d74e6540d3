//! The TLS path against the emulator's own HTTPS port (`Listen::tls_main`): the static test-flavour gate,
//! which trusts the emulator test CA compiled in, is admitted over it, and so is botocore given that CA
//! as `AWS_CA_BUNDLE`. Credentials stay on the plain port, as ECS's endpoint is plain http. The same
//! port on a name its certificate lacks is refused at once by every pricing model (exit 82).

use crate::hourly::with_workload;
use crate::support::{dist_dir, scratch, Report, Run};
use mpgate_emulator::{Emulator, Listen, World, PAID};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The emulator with its HTTPS listener on 127.0.0.`host`, and that listener's URL.
fn start_on(host: u8) -> (Emulator, String) {
    let listen = Listen { tls_main: Some(SocketAddr::from(([127, 0, 0, host], 0))), ..Listen::default() };
    let emu = Emulator::start_with(World::demo(), listen).expect("emulator");
    let https = emu.tls_url().expect("the HTTPS listener's URL");
    assert!(https.starts_with(&format!("https://127.0.0.{host}:")), "{https}");
    (emu, https)
}

fn start() -> (Emulator, String) {
    start_on(1)
}

fn static_test_gate(emu: &Emulator, dir: &Path, metering_url: &str) -> Run {
    Run::bin(dist_dir().join("mpgate-test"))
        .envs(emu.workload_env("ecs-task", dir).expect("workload env"))
        .env("AWS_ENDPOINT_URL_MARKETPLACE_METERING", metering_url)
        .env("MPGATE_DEADLINE", "20s")
        .arg("exec")
}

fn register_calls(emu: &Emulator) -> usize {
    emu.requests().iter().filter(|r| r.op == "RegisterUsage").count()
}

fn ca_bundle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/emulator-tls/ca.pem")
}

#[test]
fn the_static_test_gate_is_admitted_over_the_emulators_https_port() {
    let (emu, https) = start();
    let dir = scratch();
    let out = with_workload(static_test_gate(&emu, dir.path(), &https), dir.path()).run().expect_status(0).check();
    drop(out);
    assert_eq!(Report::read(&dir.path().join("report.json")).var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
    assert_eq!(register_calls(&emu), 1, "{:?}", emu.requests());
}

#[test]
fn the_https_port_speaks_only_tls() {
    // The same port asked in plain http: no request reaches the APIs, the gate refuses (fails closed).
    let (emu, https) = start();
    let plain = https.replacen("https://", "http://", 1);
    let dir = scratch();
    let out = with_workload(static_test_gate(&emu, dir.path(), &plain), dir.path())
        .env("MPGATE_DEADLINE", "3s")
        .run()
        .expect_one_refusal_line()
        .check();
    assert_ne!(out.code(), Some(0), "admitted over plain http to the TLS port:\n{}", out.stderr());
    assert!(!dir.path().join("report.json").exists(), "the workload ran");
    assert_eq!(register_calls(&emu), 0, "{:?}", emu.requests());
}

/// boto3's RegisterUsage over `url`, with the ecs-task credentials and `extra` environment.
fn boto3_register(emu: &Emulator, url: &str, extra: &[(&str, &Path)]) -> std::process::Output {
    let dir = scratch();
    let script = format!(
        "import boto3\nr = boto3.client('meteringmarketplace', region_name='us-east-1', endpoint_url='{url}')\
         .register_usage(ProductCode='{PAID}', PublicKeyVersion=2, Nonce='https-test')\nprint(r['Signature'][:3])"
    );
    #[allow(clippy::disallowed_methods)] // the test's own PATH, to find python3
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let mut cmd = std::process::Command::new("python3");
    cmd.env_clear()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("workload env"))
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .args(["-c", &script]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("python3 (boto3 from PyPI, as scripts/test installs it)")
}

#[test]
#[ignore = "needs python3 with boto3 (scripts/test installs it)"]
fn botocore_calls_register_usage_over_the_emulators_https_port() {
    let (emu, https) = start();
    let out = boto3_register(&emu, &https, &[("AWS_CA_BUNDLE", &ca_bundle())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "boto3 over https failed:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "eyJ", "not a JWS");
    assert_eq!(register_calls(&emu), 1, "{:?}", emu.requests());
    // Without the test CA botocore must refuse the certificate: the port is really verified TLS.
    let out = boto3_register(&emu, &https, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("SSL"),
        "botocore trusted the test certificate unasked:\n{stderr}"
    );
    assert_eq!(register_calls(&emu), 1, "{:?}", emu.requests());
}

/// The emulator's HTTPS port on 127.0.0.2: its certificate names only 127.0.0.1 and localhost, so
/// the test-flavour gate, which trusts the test CA, refuses it for the name (NotValidForName).
fn start_on_a_name_the_certificate_lacks() -> (Emulator, String) {
    start_on(2)
}

/// A certificate that does not verify is final at once: 82 with one line naming the host, the
/// problem, the likely cause and the fix, long before the 30 s deadline (retrying it to the deadline
/// ended in 81 after 30 s), and nothing reached the API.
fn assert_refused_for_the_certificate(run: Run, emu: &Emulator, dir: &Path, call: &str) {
    let out = run
        .env("MPGATE_DEADLINE", "30s")
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(call)
        .expect_stderr_contains("the TLS certificate presented for 127.0.0.2 is for another name")
        .expect_stderr_contains("intercepts TLS")
        .expect_stderr_contains("let 127.0.0.2 through without TLS interception")
        .expect_stderr_contains("never reads SSL_CERT_FILE or AWS_CA_BUNDLE")
        .check();
    assert!(out.elapsed < Duration::from_secs(10), "took {:?}: retried toward the deadline", out.elapsed);
    assert!(!dir.join("report.json").exists(), "the workload ran");
    let api = ["RegisterUsage", "MeterUsage", "CheckoutLicense"];
    assert!(emu.requests().iter().all(|r| !api.contains(&r.op.as_str())), "{:?}", emu.requests());
}

/// The static gate `bin` (a dist/ name) in `workload`'s environment from `emu`.
fn gate_in(emu: &Emulator, dir: &Path, bin: &str, workload: &str) -> Run {
    Run::bin(dist_dir().join(bin))
        .envs(emu.workload_env(workload, dir).expect("workload env"))
        .env("PATH", "/usr/bin:/bin")
}

/// The contract test gate in `workload`'s environment, handing entitlements to `dir`.
fn contract_gate_in(emu: &Emulator, dir: &Path, workload: &str) -> Run {
    gate_in(emu, dir, "mpgate-test-contract", workload)
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .env("MPGATE_ALLOW_NOT_PID1", "1")
}

#[test]
fn hourly_refuses_a_certificate_for_another_name_at_once() {
    let (emu, https) = start_on_a_name_the_certificate_lacks();
    let dir = scratch();
    let run = with_workload(static_test_gate(&emu, dir.path(), &https), dir.path());
    assert_refused_for_the_certificate(run, &emu, dir.path(), "RegisterUsage");
    assert_eq!(register_calls(&emu), 0, "{:?}", emu.requests());
}

#[test]
fn custom_metering_refuses_a_certificate_for_another_name_at_once() {
    let (emu, https) = start_on_a_name_the_certificate_lacks();
    let dir = scratch();
    let run = gate_in(&emu, dir.path(), "mpgate-test-metered", "ecs-task")
        .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("AWS_ENDPOINT_URL_MARKETPLACE_METERING", &https)
        .arg("supervise");
    assert_refused_for_the_certificate(with_workload(run, dir.path()), &emu, dir.path(), "MeterUsage");
}

#[test]
fn contract_refuses_a_certificate_for_another_name_at_once() {
    let (emu, https) = start_on_a_name_the_certificate_lacks();
    let dir = scratch();
    let run =
        contract_gate_in(&emu, dir.path(), "ecs-task").env("AWS_ENDPOINT_URL_LICENSE_MANAGER", &https).arg("supervise");
    assert_refused_for_the_certificate(with_workload(run, dir.path()), &emu, dir.path(), "CheckoutLicense");
    assert!(emu.seats().is_empty(), "a seat was taken: {:?}", emu.seats());
}

#[test]
fn irsa_credentials_refuse_a_certificate_for_another_name_at_once() {
    // STS behind TLS interception: the credential request, not only the metering call, is final at once.
    let (emu, https) = start_on_a_name_the_certificate_lacks();
    let dir = scratch();
    let run = gate_in(&emu, dir.path(), "mpgate-test", "eks-irsa").env("AWS_ENDPOINT_URL_STS", &https).arg("exec");
    let call = "the IRSA credential request (STS AssumeRoleWithWebIdentity)";
    assert_refused_for_the_certificate(with_workload(run, dir.path()), &emu, dir.path(), call);
    assert!(emu.requests().iter().all(|r| r.op != "AssumeRoleWithWebIdentity"), "{:?}", emu.requests());
}

#[test]
fn a_license_token_exchange_refuses_a_certificate_for_another_name_at_once() {
    // Containers Anywhere: either step of the exchange behind TLS interception is final at once.
    for (variable, op) in
        [("AWS_ENDPOINT_URL_LICENSE_MANAGER", "GetAccessToken"), ("AWS_ENDPOINT_URL_STS", "AssumeRoleWithWebIdentity")]
    {
        let (emu, https) = start_on_a_name_the_certificate_lacks();
        let dir = scratch();
        let run = contract_gate_in(&emu, dir.path(), "onprem-license").env(variable, &https).arg("supervise");
        assert_refused_for_the_certificate(
            with_workload(run, dir.path()),
            &emu,
            dir.path(),
            "the license token exchange",
        );
        assert!(emu.requests().iter().all(|r| r.op != op), "{variable}: {:?}", emu.requests());
        assert!(emu.seats().is_empty(), "a seat was taken: {:?}", emu.seats());
    }
}
