//! Interface VPC endpoints (AWS PrivateLink) and dual-stack endpoints, with the real gates.
//!
//! Without private DNS a buyer names the endpoint in the service's `AWS_ENDPOINT_URL_*`, and the
//! release gate accepts it only when it is AWS's own name for a VPC endpoint of the service in the
//! run's region (`src/aws/vpce.rs`, docs/security.md "VPC endpoints"). The tamper rows below are the
//! ways to dress another server up as such a name; each is refused with 82 naming the variable,
//! before any connection: neither the emulator (which also serves the credentials) nor a listener
//! every name in the rows resolves to sees anything. The positive controls show the same listener
//! does see the release gate when the name is well formed: it connects by that name (the SNI of its
//! ClientHello) and refuses the certificate, which no public CA issued. With private DNS the AWS
//! name itself resolves to the endpoint and nothing in mpgate changes: tests/netns.rs
//! `private_dns_*` admit the test gate through a TLS front at the AWS name on a private address.

use crate::rootfs::{in_chroot, rootfs};
use crate::support::{dist_dir, scratch, Run};
use crate::tamper::FakeAws;
use mpgate_emulator::{Emulator, World};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const METERING_VAR: &str = "AWS_ENDPOINT_URL_MARKETPLACE_METERING";
/// A well-formed regional name of a Metering VPC endpoint in us-east-1.
const VPCE: &str = "vpce-0a1b2c3d4e5f60718-abcd1234.metering.marketplace.us-east-1.vpce.amazonaws.com";
/// Where the rows' names resolve in the empty root: the attacker's server (`FakeAws`), on a loopback
/// address of each test's own (they bind port 443 and run in parallel).
const LISTENER: &str = "127.0.0.85";

/// An empty root for `gate` whose hosts file sends each of `names` to `ip`.
pub fn root_resolving(gate: &str, ip: &str, names: &[&str]) -> tempfile::TempDir {
    let root = rootfs(gate);
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    let hosts: String = names.iter().map(|n| format!("{ip} {n}\n")).collect();
    std::fs::write(root.path().join("etc/hosts"), hosts).expect("hosts");
    root
}

/// The gate in `root` as the `ecs-task` workload, with `extra` variables and a 30 s deadline (a
/// refusal that came from the deadline would be 81, not 82).
fn gate_in(emu: &Emulator, root: &Path, extra: &[(&str, &str)]) -> Run {
    let env_dir = scratch();
    let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    env.extend(extra.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
    in_chroot(root, env).args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
}

/// The tamper rows: variable, value, and words of the rule the refusal names.
fn rows() -> Vec<(&'static str, String, &'static str)> {
    let m = |value: String, rule: &'static str| (METERING_VAR, value, rule);
    vec![
        m(format!("https://{VPCE}.evil.example"), "is not a VPC endpoint name of this service and region"),
        m("https://vpce-amazonaws.com".into(), "is not a VPC endpoint name"),
        m(format!("https://{VPCE}@evil.example"), "user information"),
        m(format!("https://user:secret@{VPCE}"), "user information"),
        m(format!("https://{VPCE}."), "is not a VPC endpoint name"),
        m(format!("https://{}", VPCE.to_uppercase()), "not spelled as AWS spells endpoint names"),
        m(format!("https://{}", VPCE.replace("metering", "m\u{e9}tering")), "not spelled as AWS spells"),
        m(format!("https://{}", VPCE.replace("metering", "xn--mtering-bva")), "is not a VPC endpoint name"),
        m(format!("https://{}", VPCE.replace(".vpce.", "%2evpce.")), "not spelled as AWS spells"),
        m(format!("https://{VPCE}:443"), "names a port"),
        m(format!("https://{VPCE}:8443"), "names a port"),
        m(format!("https://{LISTENER}"), "is not a VPC endpoint name"),
        m("https://[::1]".into(), "an IP address"),
        m(format!("http://{VPCE}"), "only an https:// URL"),
        m(format!("https://{VPCE}/path"), "has a path, query or fragment"),
        m(format!("https://{}", VPCE.replace("us-east-1", "us-west-2")), "is not a VPC endpoint name"),
        m(format!("https://{VPCE}.cn"), "is not a VPC endpoint name"),
        (
            "AWS_ENDPOINT_URL_LICENSE_MANAGER",
            format!("https://{VPCE}"),
            "is not a VPC endpoint name of this service and region",
        ),
        (
            "AWS_ENDPOINT_URL_STS",
            "https://sts.us-east-1.amazonaws.com.evil.example".into(),
            "is not a VPC endpoint name",
        ),
    ]
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn every_look_alike_of_a_vpc_endpoint_name_is_refused_before_any_connection() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let fake = FakeAws::start(LISTENER, dir.path());
    let names = [
        VPCE.to_string(),
        format!("{VPCE}.evil.example"),
        format!("{VPCE}.cn"),
        "evil.example".into(),
        "vpce-amazonaws.com".into(),
        VPCE.replace("metering", "xn--mtering-bva"),
        VPCE.replace("us-east-1", "us-west-2"),
        "sts.us-east-1.amazonaws.com.evil.example".into(),
    ];
    let root = root_resolving("mpgate", LISTENER, &names.iter().map(String::as_str).collect::<Vec<_>>());
    for (var, value, rule) in rows() {
        gate_in(&emu, root.path(), &[(var, &value)])
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!("mpgate: misconfigured: {var}={value:?} is not used: "))
            .expect_stderr_contains(rule)
            .check();
        assert!(emu.requests().is_empty(), "{var}={value}: the emulator saw {:?}", emu.requests());
        assert_eq!(fake.events(), "", "{var}={value}: the listener saw a connection");
        assert!(!root.path().join("report.json").exists(), "{var}={value}: the workload ran");
    }
}

/// Dual-stack and a VPC endpoint together: AWS's endpoint rules refuse the pair, and so does the
/// gate, before any call.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn dual_stack_with_a_vpc_endpoint_is_refused_at_start() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let fake = FakeAws::start("127.0.0.87", dir.path());
    let root = root_resolving("mpgate", "127.0.0.87", &[VPCE]);
    let url = format!("https://{VPCE}");
    gate_in(&emu, root.path(), &[(METERING_VAR, &url), ("AWS_USE_DUALSTACK_ENDPOINT", "true")])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(
            "mpgate: misconfigured: AWS_USE_DUALSTACK_ENDPOINT=true and AWS_ENDPOINT_URL_MARKETPLACE_METERING are both set",
        )
        .check();
    assert!(emu.requests().is_empty(), "the emulator saw {:?}", emu.requests());
    assert_eq!(fake.events(), "");
}

/// The release gate connects to the host its settings name, by that name: `expect_host` is in the
/// ClientHello's SNI, and the certificate (not issued by a public CA) is refused at once with 82.
fn release_gate_connects_to(ip: &'static str, extra: &[(&str, &str)], expect_host: &str) {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let fake = FakeAws::start(ip, dir.path());
    let root = root_resolving("mpgate", ip, &[expect_host]);
    gate_in(&emu, root.path(), extra)
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "the TLS certificate presented for {expect_host} is not issued by a public certificate authority"
        ))
        .check();
    let events = fake.events_once("TLS-HANDSHAKE-FAILED");
    assert!(events.lines().any(|l| l == format!("SNI {expect_host}")), "no ClientHello for {expect_host}: {events}");
    assert!(!events.contains("HTTP-REQUEST"), "the gate trusted the listener: {events}");
    assert!(emu.bodies("RegisterUsage").is_empty(), "RegisterUsage reached the emulator");
    assert!(!root.path().join("report.json").exists(), "the workload must not run");
}

/// Positive control of the rows: the well-formed name, with or without the trailing `/`, or zonal,
/// is what the release gate connects to.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn the_release_gate_connects_to_a_vpc_endpoint_named_in_the_metering_variable() {
    release_gate_connects_to("127.0.0.88", &[(METERING_VAR, &format!("https://{VPCE}/"))], VPCE);
    let zonal = VPCE.replace("-abcd1234.", "-abcd1234-us-east-1a.");
    release_gate_connects_to("127.0.0.88", &[(METERING_VAR, &format!("https://{zonal}"))], &zonal);
}

/// `AWS_USE_DUALSTACK_ENDPOINT=true` moves the release gate to Metering's dual-stack name.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn the_release_gate_with_dual_stack_connects_to_the_dual_stack_metering_host() {
    release_gate_connects_to(
        "127.0.0.89",
        &[("AWS_USE_DUALSTACK_ENDPOINT", "true")],
        "metering-marketplace.us-east-1.api.aws",
    );
}

/// A TLS front or a redirecting endpoint (tests/fixtures/tls_forward.py), stopped on drop.
pub struct Front {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Front {
    pub fn start(args: &[&str], dir: &Path) -> Front {
        let log = dir.join("front.log");
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls_forward.py"))
            .args(args)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the TLS front");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout).read_line(&mut first).expect("ready line");
        let port = first.trim().strip_prefix("ready ").and_then(|p| p.parse().ok());
        let port = port.unwrap_or_else(|| panic!("the front did not start: {first:?}"));
        Front { child, log, port }
    }

    pub fn events(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A TLS front on `ip`:443 for `name`, with a certificate the emulator's test CA signs (which
    /// the test flavour trusts), forwarding to `upstream` (`host:port`).
    pub fn tls_for(name: &str, ip: &str, upstream: &str, dir: &Path) -> Front {
        let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/emulator-tls");
        let (ca, key) = (format!("{tls}/ca.pem"), format!("{tls}/ca.key"));
        Front::start(&["forward", ip, "443", &ca, &key, name, upstream], dir)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK follows no redirect: an endpoint answering 301 or 307 with a `Location` at the emulator
/// gets the only request, the emulator none, and the gate refuses at once with 82 naming the
/// redirect (a retry would meet it again). The test gate, because only a certificate from a public
/// CA would get the release gate past TLS; the SDK client and the refusal are the same.
#[test]
fn a_redirect_from_the_endpoint_is_not_followed() {
    for status in ["301", "307"] {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let dir = scratch();
        let elsewhere = format!("{}/", emu.url().trim_end_matches('/'));
        let front = Front::start(&["redirect", "127.0.0.1", status, &elsewhere], dir.path());
        let out = Run::bin(dist_dir().join("mpgate-test"))
            .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
            .env(METERING_VAR, format!("http://127.0.0.1:{}", front.port))
            .args(["exec", "--deadline", "30s", "--", "/bin/true"])
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!(
                "mpgate: misconfigured: RegisterUsage was answered with an HTTP {status} redirect to {elsewhere:?}, which no AWS endpoint sends and mpgate does not follow"
            ))
            .check();
        assert!(out.elapsed < Duration::from_secs(10), "{status}: took {:?}: retried toward the deadline", out.elapsed);
        let redirected = front.events().lines().filter(|l| l.starts_with("REDIRECTED POST")).count();
        assert_eq!(redirected, 1, "{status}: {}", front.events());
        assert!(emu.bodies("RegisterUsage").is_empty(), "{status}: the redirect was followed to the emulator");
    }
}

/// IRSA with `AWS_ENDPOINT_URL_STS` naming an STS VPC endpoint of the region: aws-config's web
/// identity provider reads that variable itself, and the STS lock (`src/aws/sts_lock.rs`) lets it
/// reach that endpoint, by that name, and no other: the release gate's ClientHello carries the
/// name, and the certificate, which no public CA issued, is refused with 82.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn irsa_reaches_sts_at_a_vpc_endpoint_named_in_aws_endpoint_url_sts() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let ip = "127.0.0.90";
    let sts = "vpce-0a1b2c3d4e5f60718-abcd1234.sts.us-east-1.vpce.amazonaws.com";
    let fake = FakeAws::start(ip, dir.path());
    let root = root_resolving("mpgate", ip, &[sts]);
    let mut env: Vec<(String, String)> = emu
        .workload_env("eks-irsa", root.path())
        .expect("env")
        .into_iter()
        .map(|(k, v)| if k == "AWS_WEB_IDENTITY_TOKEN_FILE" { (k, "/eks-token".to_string()) } else { (k, v) })
        .collect();
    env.push(("AWS_ENDPOINT_URL_STS".into(), format!("https://{sts}")));
    in_chroot(root.path(), env)
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("the TLS certificate presented for {sts}"))
        .check();
    let events = fake.events_once("TLS-HANDSHAKE-FAILED");
    assert!(events.lines().any(|l| l == format!("SNI {sts}")), "no ClientHello for {sts}: {events}");
    let ops: Vec<String> = emu.requests().into_iter().map(|r| r.op).collect();
    assert!(!ops.iter().any(|op| op == "AssumeRoleWithWebIdentity" || op == "RegisterUsage"), "{ops:?}");
    assert!(!root.path().join("report.json").exists(), "the workload must not run");
}

/// `mpgate check` (release) probes the VPC endpoint the Metering variable names, and says so in the
/// endpoint row's method; a variable naming no VPC endpoint fails the row with the refusal's reason.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn check_probes_the_vpc_endpoint_and_names_the_variable() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let ip = "127.0.0.91";
    let _fake = FakeAws::start(ip, dir.path());
    let root = root_resolving("mpgate", ip, &[VPCE]);
    let row = |value: &str| {
        let env_dir = scratch();
        let mut env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
        // The release gate ignores the emulator's AWS_ENDPOINT_URL; without it, the VPC endpoint's
        // variable is the only endpoint variable set.
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push((METERING_VAR.into(), value.into()));
        let out = in_chroot(root.path(), env).args(["check", "--json"]).run();
        let report: serde_json::Value =
            serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stderr()));
        let checks = report["checks"].as_array().expect("checks").clone();
        let overrides = checks.iter().find(|c| c["id"] == "overrides").cloned().expect("overrides row");
        (checks.into_iter().find(|c| c["id"] == "endpoint").expect("endpoint row"), overrides)
    };
    let (named, overrides) = row(&format!("https://{VPCE}"));
    // A VPC endpoint's name is a configuration, not a stray override: the endpoint row judges it.
    assert_eq!(overrides["status"], "pass", "{overrides}");
    let said = overrides["summary"].as_str().expect("summary");
    assert!(
        said.starts_with(&format!("{METERING_VAR} set: used only if it names an interface VPC endpoint")),
        "{said}"
    );
    assert_eq!(named["status"], "fail", "{named}");
    let summary = named["summary"].as_str().expect("summary");
    assert!(summary.starts_with(&format!("https://{VPCE}: ")) && summary.contains("certificate"), "{named}");
    let method = named["method"].as_str().expect("method");
    assert!(method.ends_with("; VPC endpoint (from AWS_ENDPOINT_URL_MARKETPLACE_METERING)"), "{named}");
    let (refused, _) = row(&format!("https://{VPCE}:8443"));
    assert_eq!(refused["status"], "fail", "{refused}");
    let summary = refused["summary"].as_str().expect("summary");
    assert!(summary.starts_with(&format!("{METERING_VAR}=\"https://{VPCE}:8443\" is not used: ")), "{refused}");
}
