//! Tamper matrix: everything a buyer controls (environment, files, network position) either has no
//! effect on what is checked or ends in a refusal — never an admission. Release-flavour rows run in
//! the empty root (tests/rootfs.rs), where name resolution can only reach loopback, and assert the
//! emulator's ledger: the redirected endpoint must never see a RegisterUsage.

use crate::hourly::{gate_as, with_workload, FREE, PAID};
use crate::rootfs::{in_chroot, rootfs};
use crate::support::{scratch, Outcome, Report};
use mpgate_emulator::{Emulator, Fault, TokenMutation, World};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn register_calls(emu: &Emulator) -> usize {
    emu.requests().iter().filter(|r| r.op == "RegisterUsage").count()
}

/// Run the release gate in an empty root as the `ecs-task` workload, with `extra` variables.
fn release_row(emu: &Emulator, root: &Path, extra: &[(&str, String)]) -> Outcome {
    let env_dir = scratch();
    let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    env.extend(extra.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
    in_chroot(root, env)
        .args(["exec", "--deadline", "3s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .check()
}

/// Rows 2, 3 and 13: a service's own endpoint variable naming anything but an interface VPC endpoint
/// of the region (here the emulator) is refused at start with 82 naming it, before any AWS call,
/// credentials included (tests/vpce.rs holds the look-alike names).
fn release_row_refuses_the_variable(emu: &Emulator, root: &Path, var: &str, mode: &str) {
    let env_dir = scratch();
    let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    env.push((var.to_string(), emu.url()));
    in_chroot(root, env)
        .args([mode, "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("mpgate: misconfigured: {var}={:?} is not used: ", emu.url()))
        .check();
    assert!(emu.requests().is_empty(), "{var}: the emulator saw {:?}", emu.requests());
    assert!(!root.join("report.json").exists(), "the workload must not run");
}

/// Row 7: the release gate in an empty root whose hosts file sends the Metering name to the
/// attacker's server. Its certificate does not verify, which no retry can fix: the gate refuses at
/// once with 82 naming the host, well before its 30 s deadline (which would end in 81).
fn release_row_meets_the_attacker_certificate(emu: &Emulator, root: &Path, extra: &[(&str, String)]) {
    let env_dir = scratch();
    let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    env.extend(extra.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
    let out = in_chroot(root, env)
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(
            "the TLS certificate presented for metering.marketplace.us-east-1.amazonaws.com is not issued by a public certificate authority",
        )
        .expect_stderr_contains("let metering.marketplace.us-east-1.amazonaws.com through without TLS interception")
        .check();
    assert!(out.elapsed < std::time::Duration::from_secs(10), "took {:?}: retried toward the deadline", out.elapsed);
}

fn assert_not_redirected(emu: &Emulator, root: &Path) {
    assert_eq!(register_calls(emu), 0, "RegisterUsage reached an overridden endpoint");
    assert!(!root.join("report.json").exists(), "the workload must not run");
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row01_aws_endpoint_url_has_no_effect_on_release() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    release_row(&emu, root.path(), &[("AWS_ENDPOINT_URL", emu.url())]);
    assert_not_redirected(&emu, root.path());
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row02_service_endpoint_url_naming_no_vpc_endpoint_is_refused_by_release() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    release_row_refuses_the_variable(&emu, root.path(), "AWS_ENDPOINT_URL_MARKETPLACE_METERING", "exec");
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row03_license_manager_endpoint_url_naming_no_vpc_endpoint_is_refused_by_release() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    release_row_refuses_the_variable(&emu, root.path(), "AWS_ENDPOINT_URL_LICENSE_MANAGER", "exec");
}

// Row 4, STS: `AWS_ENDPOINT_URL` moving IRSA's STS call is refused by the STS lock, tests/rootfs.rs
// `release_flavour_irsa_sts_is_not_redirectable`; `AWS_ENDPOINT_URL_STS` naming no VPC endpoint is
// refused at start, and both for a profile's web identity, tests/after_admission/order.rs.

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row05_profile_endpoint_url_and_ignore_flag_false_have_no_effect_on_release() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    let profile = format!(
        "[default]\nendpoint_url = {u}\nignore_configured_endpoint_urls = false\n[services s]\nmarketplace_metering =\n  endpoint_url = {u}\n",
        u = emu.url()
    );
    std::fs::write(root.path().join("config"), profile).expect("profile");
    release_row(
        &emu,
        root.path(),
        &[("AWS_CONFIG_FILE", "/config".into()), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false".into())],
    );
    assert_not_redirected(&emu, root.path());
}

/// The fake AWS endpoint (attacker CA) and recording proxy on a loopback address of its own.
pub struct FakeAws {
    child: Child,
    log: std::path::PathBuf,
    ip: &'static str,
}

impl FakeAws {
    pub fn start(ip: &'static str, dir: &Path) -> FakeAws {
        let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/attacker-tls");
        let log = dir.join("fake.log");
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_aws.py"))
            .args([ip, "443", "3128", &format!("{tls}/server.pem"), &format!("{tls}/server.key")])
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the fake endpoint");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout).read_line(&mut first).expect("ready line");
        assert_eq!(first.trim(), "ready", "fake endpoint did not start");
        FakeAws { child, log, ip }
    }

    pub fn events(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The events once `event` is among them: the fake logs a refused handshake only after the client
    /// has given up, so the gate's exit comes first.
    pub fn events_once(&self, event: &str) -> String {
        crate::support::wait_until(
            &format!("{event} in the fake endpoint's log"),
            std::time::Duration::from_secs(20),
            || self.events().contains(event),
        );
        self.events()
    }

    /// Positive control: a client that trusts the attacker CA gets through, so a zero count below
    /// means the gate refused, not that the fake was broken.
    fn assert_trusting_client_gets_through(&self) {
        let script = format!(
            "import socket,ssl; c=ssl.create_default_context(cafile='{}/testdata/attacker-tls/ca.pem'); \
             s=c.wrap_socket(socket.create_connection(('{}',443)), server_hostname='metering.marketplace.us-east-1.amazonaws.com'); \
             s.sendall(b'POST / HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n'); s.recv(100)",
            env!("CARGO_MANIFEST_DIR"),
            self.ip
        );
        let ok = Command::new("python3").args(["-c", &script]).status().expect("python3");
        assert!(ok.success());
        assert!(self.events().contains("HTTP-REQUEST POST / HTTP/1.1"), "control failed: {}", self.events());
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hosts_to(root: &Path, ip: &str) {
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    std::fs::write(
        root.join("etc/hosts"),
        format!("{ip} metering.marketplace.us-east-1.amazonaws.com\n{ip} sts.us-east-1.amazonaws.com\n"),
    )
    .expect("hosts");
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row07_attacker_ca_in_ssl_cert_file_and_dir_is_not_trusted() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    hosts_to(root.path(), "127.0.0.77");
    std::fs::create_dir_all(root.path().join("certs")).expect("certs");
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/attacker-tls/ca.pem");
    std::fs::copy(ca, root.path().join("ca.pem")).expect("ca");
    std::fs::copy(ca, root.path().join("certs/ca.pem")).expect("ca");
    let dir = scratch();
    let fake = FakeAws::start("127.0.0.77", dir.path());
    release_row_meets_the_attacker_certificate(
        &emu,
        root.path(),
        &[("SSL_CERT_FILE", "/ca.pem".into()), ("SSL_CERT_DIR", "/certs".into()), ("AWS_CA_BUNDLE", "/ca.pem".into())],
    );
    let events = fake.events_once("TLS-HANDSHAKE-FAILED");
    assert!(!events.contains("HTTP-REQUEST"), "the gate trusted the attacker CA: {events}");
    fake.assert_trusting_client_gets_through();
    assert_not_redirected(&emu, root.path());
}

/// Row 8: the release gate behind a TLS-intercepting proxy. It goes through the proxy (never
/// straight to the AWS name, which the hosts file points at another fake), asks for the Metering
/// host by name, and refuses the proxy's certificate at once with 82, naming the proxy.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row08_an_intercepting_https_proxy_is_refused_at_once() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    hosts_to(root.path(), "127.0.0.78");
    let dir = scratch();
    let fake = FakeAws::start("127.0.0.78", dir.path());
    let proxy = crate::proxy::Intercepting::start(dir.path());
    let env_dir = scratch();
    let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    env.extend([("HTTPS_PROXY".to_string(), proxy.url()), ("SSL_CERT_FILE".to_string(), "/nonexistent".to_string())]);
    let out = in_chroot(root.path(), env)
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "the TLS certificate presented for metering.marketplace.us-east-1.amazonaws.com through the proxy {} (HTTPS_PROXY) is not issued by a public certificate authority",
            proxy.url()
        ))
        .expect_stderr_contains("exempt metering.marketplace.us-east-1.amazonaws.com from TLS interception on the proxy")
        .check();
    assert!(out.elapsed < std::time::Duration::from_secs(10), "took {:?}: retried toward the deadline", out.elapsed);
    let events = proxy.events_once("TLS-HANDSHAKE-FAILED");
    assert!(events.contains("CONNECT metering.marketplace.us-east-1.amazonaws.com:443"), "{events}");
    assert!(!events.contains("HTTP-REQUEST"), "the gate trusted the proxy's certificate: {events}");
    // Nothing went straight to the AWS name.
    assert_eq!(fake.events(), "", "the gate bypassed the proxy");
    assert_not_redirected(&emu, root.path());
}

#[test]
fn row09_mpgate_variables_cannot_change_code_tier_key_or_model() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let attacker_key = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/keys/attacker.pub.pem");
    let out = with_workload(
        gate_as(&emu, "ecs-task", dir.path())
            .env("MPGATE_TIER", "enterprise")
            .env("MPGATE_PRODUCT_TIER", "enterprise")
            .env("MPGATE_PRICING_MODEL", "contract")
            .env("MPGATE_PUBLIC_KEYS", format!("1={attacker_key}"))
            .env("MPGATE_PUBLIC_KEY_VERSION", "9")
            .env("MPGATE_TRUSTED_PRODUCT_CODES", "evilcode=paid")
            .env("MPGATE_SIGNATURE", "forged")
            .env("MPGATE_INSECURE_TEST_BUILD", "yes"),
        dir.path(),
    )
    .run()
    .check();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_TIER").as_deref(), Some("paid"));
    assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("hourly"));
    assert_eq!(report.var("MPGATE_PUBLIC_KEY_VERSION").as_deref(), Some("2"));
    let calls = emu.bodies("RegisterUsage");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["ProductCode"], PAID);
    assert_eq!(calls[0]["PublicKeyVersion"], 2);
}

#[test]
fn row10_and_11_untrusted_code_is_refused_and_a_free_code_never_yields_paid() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    with_workload(gate_as(&emu, "ecs-task", dir.path()).env("MPGATE_PRODUCT_CODE", "evilcode"), dir.path())
        .run()
        .expect_status(82)
        .check();
    assert_eq!(register_calls(&emu), 0);
    let out = with_workload(
        gate_as(&emu, "ecs-task", dir.path()).env("MPGATE_PRODUCT_CODE", FREE).env("MPGATE_TIER", "paid"),
        dir.path(),
    )
    .run()
    .check();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_eq!(Report::read(&dir.path().join("report.json")).var("MPGATE_TIER").as_deref(), Some("free"));
    // An answer for another code than the one requested (e.g. the free one for a paid request) is refused.
    emu.inject("RegisterUsage", Fault::Token(TokenMutation::WrongProductCode));
    let dir = scratch();
    with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path())
        .run()
        .expect_status(82)
        .expect_stderr_contains("productCode claim")
        .check();
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row12_fake_imds_credentials_cannot_admit() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    // Test flavour: the emulator's IMDS hands out an instance role, which Marketplace refuses.
    let dir = scratch();
    with_workload(gate_as(&emu, "ec2-instance", dir.path()), dir.path())
        .run()
        .expect_status(82)
        .expect_stderr_contains("PlatformNotSupportedException")
        .check();
    // Release flavour: IMDS credentials from a redirected IMDS are used against real AWS only.
    let root = rootfs("mpgate");
    let env_dir = scratch();
    let env = emu.workload_env("ec2-instance", env_dir.path()).expect("env");
    let before = register_calls(&emu);
    in_chroot(root.path(), env)
        .args(["exec", "--deadline", "3s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(81)
        .check();
    assert!(emu.requests().iter().any(|r| r.op == "ImdsCredentials"), "the fake IMDS was used, as aws-config does");
    assert_eq!(register_calls(&emu), before, "but metering never went to it");
    assert!(!root.path().join("report.json").exists());
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row13_license_manager_endpoint_url_naming_no_vpc_endpoint_is_refused_by_the_release_contract_build() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate-contract");
    release_row_refuses_the_variable(&emu, root.path(), "AWS_ENDPOINT_URL_LICENSE_MANAGER", "supervise");
}

/// The contract build (test flavour) as the `ecs-task` workload, reporting to `dir/report.json`.
fn contract_gate(emu: &Emulator, dir: &Path) -> crate::support::Run {
    crate::support::Run::bin(crate::support::dist_dir().join("mpgate-test-contract"))
        .envs(emu.workload_env("ecs-task", dir).expect("env"))
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("MPGATE_DEADLINE", "20s")
}

#[test]
fn row14_mpgate_variables_cannot_change_the_contract_builds_sku_entitlements_or_model() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = contract_gate(&emu, dir.path())
        .env("MPGATE_PRICING_MODEL", "hourly")
        .env("MPGATE_PRODUCT_SKU", "prod-evil0contract0sku00")
        .env("MPGATE_ENTITLEMENTS", "PremiumTier:None!,Seats:Count:0")
        .env("MPGATE_TIER", "enterprise")
        .args(["supervise", "-q", "--"])
        .arg(crate::support::workload_bin())
        .arg("report")
        .arg(dir.path().join("report.json"))
        .run()
        .check();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("contract"));
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(mpgate_emulator::CONTRACT_SKU));
    // What the license allows, not what the buyer wrote.
    assert_eq!(report.var("MPGATE_ENTITLEMENTS").as_deref(), Some("BasicTier:None,Seats:Count:1"));
    let ops: Vec<String> = emu.requests().iter().map(|r| r.op.clone()).collect();
    assert!(!ops.iter().any(|op| op == "RegisterUsage"), "the model did not change to hourly: {ops:?}");
    let sent = emu.bodies("CheckoutLicense");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["ProductSKU"], mpgate_emulator::CONTRACT_SKU);
    assert_eq!(
        sent[0]["Entitlements"],
        serde_json::json!([
            {"Name": "BasicTier", "Unit": "None"},
            {"Name": "PremiumTier", "Unit": "None"},
            {"Name": "Seats", "Unit": "Count", "Value": "1"}
        ])
    );
}

#[test]
fn row15_mpgate_variables_cannot_turn_the_metered_build_into_an_hourly_one() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let metered = crate::support::dist_dir().join("mpgate-test-metered");
    let run = || {
        crate::support::Run::bin(metered.clone())
            .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
            .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
            .env("MPGATE_ALLOW_NOT_PID1", "1")
            .env("MPGATE_DEADLINE", "20s")
            .env("MPGATE_PRICING_MODEL", "hourly")
            .env("MPGATE_DIMENSIONS", "free_tier")
            .env("MPGATE_TIER", "enterprise")
    };
    // `exec` stays refused (custom metering must stay to send usage), whatever the variable says.
    run()
        .args(["exec", "--"])
        .arg(crate::support::workload_bin())
        .arg("report")
        .arg(dir.path().join("report.json"))
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .expect_stderr_contains("built for custom-metering pricing")
        .check();
    assert!(emu.requests().iter().all(|r| r.op != "RegisterUsage" && r.op != "MeterUsage"));
    // `supervise` admits as custom metering, dry-running the baked dimensions, not the buyer's.
    run()
        .args(["supervise", "-q", "--"])
        .arg(crate::support::workload_bin())
        .arg("report")
        .arg(dir.path().join("report.json"))
        .run()
        .expect_status(0)
        .check();
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("custom-metering"));
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(mpgate_emulator::METERED));
    let dimensions: Vec<String> = emu.bodies("MeterUsage").iter().map(|b| b["UsageDimension"].to_string()).collect();
    assert_eq!(dimensions, ["\"requests\"", "\"gb_processed\""]);
    assert!(emu.requests().iter().all(|r| r.op != "RegisterUsage"), "the model did not change to hourly");
    std::fs::remove_file(dir.path().join("report.json")).expect("report");
    // A product code from the environment is a run-time choice among baked codes: PAID is not one.
    let before = emu.requests().len();
    run()
        .env("MPGATE_PRODUCT_CODE", PAID)
        .args(["supervise", "--"])
        .arg(crate::support::workload_bin())
        .arg("report")
        .arg(dir.path().join("report.json"))
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("is not one this image trusts")
        .check();
    assert!(emu.requests()[before..].iter().all(|r| r.op != "RegisterUsage" && r.op != "MeterUsage"));
    assert!(!dir.path().join("report.json").exists(), "the workload must not run");
}

/// A partitions file in the SDK's format whose `aws` partition ends every endpoint in `suffix`.
fn partitions_json(suffix: &str) -> String {
    serde_json::json!({
        "version": "1.1",
        "partitions": [{
            "id": "aws",
            "regionRegex": "^(us|eu|ap|sa|ca|me|af|il|mx)\\-\\w+\\-\\d+$",
            "regions": {"us-east-1": {}},
            "outputs": {
                "name": "aws", "dnsSuffix": suffix, "dualStackDnsSuffix": suffix,
                "implicitGlobalRegion": "us-east-1", "supportsFIPS": true, "supportsDualStack": true
            }
        }]
    })
    .to_string()
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn row16_sdk_custom_partition_variable_is_refused_before_any_aws_call() {
    // The SDK reads SMITHY_CLIENT_SDK_CUSTOM_PARTITION with std::env::var whenever a client is built,
    // endpoint lock or not. This file would send Metering to metering.marketplace.us-east-1.attacker.test
    // (and License Manager likewise), which /etc/hosts below points at the fake endpoint: with a
    // publicly trusted certificate for that domain, MeterUsage's DryRun and CheckoutLicense (no
    // signature to check) would admit. A missing file made the SDK panic (exit 134); a blank value
    // is read as a path too.
    let dir = scratch();
    let fake = FakeAws::start("127.0.0.80", dir.path());
    for (gate, value) in [
        ("mpgate", "/partitions.json"),
        ("mpgate", "/nonexistent.json"),
        ("mpgate", ""),
        ("mpgate-contract", "/partitions.json"),
        ("mpgate-test", "/partitions.json"),
    ] {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let root = rootfs(gate);
        std::fs::create_dir_all(root.path().join("etc")).expect("etc");
        std::fs::write(
            root.path().join("etc/hosts"),
            "127.0.0.80 metering.marketplace.us-east-1.attacker.test license-manager.us-east-1.attacker.test\n",
        )
        .expect("hosts");
        std::fs::write(root.path().join("partitions.json"), partitions_json("attacker.test")).expect("partitions");
        let env_dir = scratch();
        let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
        env.push(("SMITHY_CLIENT_SDK_CUSTOM_PARTITION".into(), value.into()));
        let mode = if gate.contains("contract") { "supervise" } else { "exec" };
        in_chroot(root.path(), env)
            .args([mode, "--deadline", "3s", "--", "/workload", "report", "/report.json"])
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains("the environment sets SMITHY_CLIENT_SDK_CUSTOM_PARTITION,")
            .check();
        assert_eq!(emu.requests().len(), 0, "{gate} {value:?}: no AWS call at all, not even credentials");
        assert!(!root.path().join("report.json").exists(), "{gate} {value:?}: the workload must not run");
        let line = std::fs::read_to_string(root.path().join("dev/termination-log")).expect("termination log");
        assert!(line.contains("SMITHY_CLIENT_SDK_CUSTOM_PARTITION"), "{gate} {value:?}: {line:?}");
    }
    assert_eq!(fake.events(), "", "nothing may reach the redirected endpoint");
    fake.assert_trusting_client_gets_through();
}

#[test]
fn row17_sdk_custom_partition_variable_is_refused_by_the_metered_supervisor() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    std::fs::write(dir.path().join("partitions.json"), partitions_json("attacker.test")).expect("partitions");
    let gate = crate::support::Run::bin(crate::support::dist_dir().join("mpgate-test-metered"))
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("SMITHY_CLIENT_SDK_CUSTOM_PARTITION", dir.path().join("partitions.json"))
        .arg("supervise");
    with_workload(gate, dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("the environment sets SMITHY_CLIENT_SDK_CUSTOM_PARTITION,")
        .check();
    assert_eq!(emu.requests().len(), 0, "no AWS call at all");
    assert!(!dir.path().join("report.json").exists(), "the workload must not run");
}
