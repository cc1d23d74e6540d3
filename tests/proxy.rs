//! Egress through an HTTP proxy: the static test-flavour gate against the emulator on 127.0.0.1,
//! through a real tinyproxy (Debian's package) started on an ephemeral port with a generated
//! configuration, and through an intercepting proxy (tests/fixtures/intercepting_proxy.py). The
//! proxy's own log says what went through it. The release flavour against the intercepting proxy
//! is row 8 of tests/tamper.rs (in the empty root).

use crate::hourly::{gate_as, with_workload};
use crate::support::{scratch, wait_until, Outcome, Report, Spawned};
use mpgate_emulator::{Emulator, Listen, World, PAID};
use std::io::BufRead as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TINYPROXY: &str = "/usr/bin/tinyproxy";

/// A tinyproxy on 127.0.0.1 with `extra` configuration lines, logging every request.
pub struct Tinyproxy {
    _child: Spawned,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A port nothing listens on right now (the kernel's next ephemeral one).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Tinyproxy {
    pub fn start(extra: &str) -> Tinyproxy {
        let dir = scratch();
        let log = dir.path().join("tinyproxy.log");
        // A port freed for tinyproxy may be taken before it binds: try a few.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("tinyproxy.conf");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 200\nLogFile \"{}\"\nLogLevel Connect\nAllow 127.0.0.1\n{extra}\n",
                    log.display()
                ),
            )
            .expect("tinyproxy.conf");
            let mut cmd = Command::new(TINYPROXY);
            cmd.args(["-d", "-c"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::null());
            let mut child = Spawned::spawn(&mut cmd, "tinyproxy");
            let mut up = false;
            wait_until("tinyproxy listening or exited", Duration::from_secs(10), || {
                up = TcpStream::connect(("127.0.0.1", port)).is_ok();
                up || child.try_wait().is_some()
            });
            if up {
                return Tinyproxy { _child: child, port, log, _dir: dir };
            }
        }
        panic!("tinyproxy did not start (is the tinyproxy package installed? scripts/ensure-test-tools)");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The targets of the CONNECT requests tinyproxy logged, in order.
    pub fn connects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split_once("): CONNECT ").map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_string())
            })
            .collect()
    }

    /// Every request line tinyproxy logged (CONNECT or any other method).
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("Request (file descriptor ").and_then(|(_, r)| r.split_once("): ")))
            .map(|(_, request)| request.to_string())
            .collect()
    }
}

/// The intercepting proxy fixture, with its log.
pub struct Intercepting {
    child: std::process::Child,
    pub port: u16,
    log: PathBuf,
}

impl Intercepting {
    pub fn start(dir: &Path) -> Intercepting {
        let log = dir.join("intercepting.log");
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/intercepting_proxy.py"))
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the intercepting proxy");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout).read_line(&mut first).expect("port line");
        let port = first.trim().parse().unwrap_or_else(|e| panic!("intercepting proxy did not start ({e}): {first:?}"));
        Intercepting { child, port, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The events once `event` is among them (the fixture logs a refused handshake only after the
    /// client has given up, so the gate's exit may come first).
    pub fn events_once(&self, event: &str) -> String {
        let read = || std::fs::read_to_string(&self.log).unwrap_or_default();
        wait_until(&format!("{event} in the intercepting proxy's log"), Duration::from_secs(20), || {
            read().contains(event)
        });
        read()
    }
}

impl Drop for Intercepting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator with its HTTPS listener too (credentials stay on the plain port, as ECS's are).
pub fn emulator() -> (Emulator, String) {
    let listen = Listen { tls_main: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..Listen::default() };
    let emu = Emulator::start_with(World::demo(), listen).expect("emulator");
    let https = emu.tls_url().expect("the HTTPS listener's URL");
    (emu, https)
}

/// `host:port` of a URL.
fn authority(url: &str) -> String {
    url.split_once("://").map_or(url, |(_, r)| r).trim_end_matches('/').to_string()
}

fn register_calls(emu: &Emulator) -> usize {
    emu.requests().iter().filter(|r| r.op == "RegisterUsage").count()
}

/// The test gate as `workload` with Metering on the emulator's HTTPS port, through `proxy`.
fn gate(emu: &Emulator, https: &str, workload: &str, dir: &Path, proxy: &str) -> crate::support::Run {
    with_workload(
        gate_as(emu, workload, dir).env("AWS_ENDPOINT_URL_MARKETPLACE_METERING", https).env("HTTPS_PROXY", proxy),
        dir,
    )
}

/// The test gate as `ecs-task` with Metering at `metering`, through `proxy` and with start-up
/// deadline `deadline`, ended with exit `status` and one refusal line (checked by the caller's `check`).
fn refused_through(emu: &Emulator, metering: &str, proxy: &str, deadline: &str, status: i32) -> Outcome {
    let dir = scratch();
    gate(emu, metering, "ecs-task", dir.path(), proxy)
        .env("MPGATE_DEADLINE", deadline)
        .run()
        .expect_status(status)
        .expect_one_refusal_line()
}

fn assert_admitted(emu: &Emulator, out: &Outcome, dir: &Path) {
    assert_eq!(out.code(), Some(0), "not admitted:\n{}", out.stderr());
    assert_eq!(Report::read(&dir.join("report.json")).var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
    assert_eq!(register_calls(emu), 1, "{:?}", emu.requests());
}

#[test]
fn admitted_through_the_proxy_which_never_sees_the_credentials_endpoint() {
    let (emu, https) = emulator();
    let proxy = Tinyproxy::start("");
    let dir = scratch();
    let out = gate(&emu, &https, "ecs-task", dir.path(), &proxy.url()).run();
    assert_admitted(&emu, &out, dir.path());
    // Metering went through the tunnel; the ECS credentials endpoint (the emulator's plain port,
    // with no NO_PROXY set) did not go through the proxy at all.
    assert_eq!(proxy.connects(), [authority(&https)], "{:?}", proxy.requests());
    assert_eq!(proxy.requests().len(), 1, "{:?}", proxy.requests());
    assert!(emu.requests().iter().any(|r| r.op == "EcsCredentials"), "{:?}", emu.requests());
}

#[test]
fn irsa_sts_and_metering_both_go_through_the_proxy() {
    let (emu, https) = emulator();
    let proxy = Tinyproxy::start("");
    let dir = scratch();
    let out = gate(&emu, &https, "eks-irsa", dir.path(), &proxy.url()).run();
    assert_admitted(&emu, &out, dir.path());
    // STS (AWS_ENDPOINT_URL, plain http in the test flavour) is tunnelled too, before Metering.
    assert_eq!(proxy.connects(), [authority(&emu.url()), authority(&https)], "{:?}", proxy.requests());
    assert!(emu.requests().iter().any(|r| r.op == "AssumeRoleWithWebIdentity"));
}

#[test]
fn no_proxy_sends_the_host_directly() {
    for (variable, no_proxy) in [("NO_PROXY", "127.0.0.1"), ("no_proxy", "localhost,127.0.0.0/8"), ("NO_PROXY", "*")] {
        let (emu, https) = emulator();
        let proxy = Tinyproxy::start("");
        let dir = scratch();
        let out = gate(&emu, &https, "ecs-task", dir.path(), &proxy.url()).env(variable, no_proxy).run();
        assert_admitted(&emu, &out, dir.path());
        assert_eq!(proxy.requests(), Vec::<String>::new(), "{variable}={no_proxy}");
    }
}

#[test]
fn a_proxy_that_requires_authentication_admits_with_the_right_user_and_password() {
    let (emu, https) = emulator();
    // The password percent-encoded in the URL (tinyproxy allows only [-a-z0-9._] in it) and decoded by the gate.
    let proxy = Tinyproxy::start("BasicAuth mpgate s3cr-t");
    let dir = scratch();
    let url = format!("http://mpgate:s3cr%2Dt@127.0.0.1:{}", proxy.port);
    let out = gate(&emu, &https, "ecs-task", dir.path(), &url).env("ALL_PROXY", "http://127.0.0.1:9").run();
    assert_admitted(&emu, &out, dir.path());
    assert_eq!(proxy.connects(), [authority(&https)]);
}

#[test]
fn missing_or_wrong_proxy_credentials_end_at_once_with_82_naming_the_proxy_and_its_answer() {
    let (emu, https) = emulator();
    let proxy = Tinyproxy::start("BasicAuth mpgate s3cr-t");
    // tinyproxy answers a wrong password with 401 rather than 407: both are final.
    for (url, answer, advice) in [
        (proxy.url(), "407 Proxy Authentication Required", "the proxy requires authentication"),
        (
            format!("http://mpgate:wrong-pw@127.0.0.1:{}", proxy.port),
            "401 Unauthorized",
            "did not accept the user name and password",
        ),
    ] {
        let out = refused_through(&emu, &https, &url, "60s", 82)
            .expect_stderr_contains(&format!(
                "mpgate: misconfigured: RegisterUsage did not reach AWS: the proxy {} (HTTPS_PROXY) answered {answer} to CONNECT {}",
                proxy.url(),
                authority(&https)
            ))
            .expect_stderr_contains(advice)
            .expect_stderr_lacks("wrong-pw")
            .expect_stderr_lacks("s3cr")
            .check();
        assert!(out.elapsed < Duration::from_secs(10), "took {:?}: retried toward the deadline", out.elapsed);
    }
    assert_eq!(register_calls(&emu), 0);
}

#[test]
fn a_proxy_that_forbids_the_tunnel_ends_at_once_with_82_naming_403() {
    let (emu, https) = emulator();
    // Only CONNECT to port 1 is allowed.
    let proxy = Tinyproxy::start("ConnectPort 1");
    let out = refused_through(&emu, &https, &proxy.url(), "60s", 82)
        .expect_stderr_contains(&format!(
            "answered 403 Access violation to CONNECT {}; the proxy's policy forbids this tunnel: allow CONNECT to {} on the proxy",
            authority(&https),
            authority(&https)
        ))
        .check();
    assert!(out.elapsed < Duration::from_secs(10), "took {:?}", out.elapsed);
    assert_eq!(proxy.connects(), [authority(&https)]);
    assert_eq!(register_calls(&emu), 0);
}

#[test]
fn a_proxy_that_is_not_listening_ends_in_81_naming_it() {
    let (emu, https) = emulator();
    let down = format!("http://127.0.0.1:{}", free_port());
    refused_through(&emu, &https, &down, "3s", 81)
        .expect_stderr_contains("mpgate: cannot-verify: could not verify entitlement within the 3s start-up deadline")
        .expect_stderr_contains(&format!(
            "cannot connect to the proxy {down} (HTTPS_PROXY) to reach {}",
            authority(&https)
        ))
        .check();
    assert_eq!(register_calls(&emu), 0);
}

#[test]
fn a_proxy_that_cannot_reach_the_host_is_retried_and_81_names_its_answer() {
    let (emu, _) = emulator();
    let proxy = Tinyproxy::start("");
    let nowhere = format!("https://127.0.0.1:{}", free_port());
    refused_through(&emu, &nowhere, &proxy.url(), "3s", 81)
        .expect_stderr_contains(&format!("the proxy {} (HTTPS_PROXY) answered 5", proxy.url()))
        .expect_stderr_contains(&format!("to CONNECT {}", authority(&nowhere)))
        .check();
    assert!(proxy.connects().len() >= 2, "not retried: {:?}", proxy.connects());
}

#[test]
fn unusable_proxy_settings_end_with_82_before_any_aws_call() {
    let (emu, https) = emulator();
    for (pairs, needle) in [
        (
            &[("HTTPS_PROXY", "socks5://user:pw-s3cret@127.0.0.1:1080")][..],
            "HTTPS_PROXY is not a proxy mpgate can use: its scheme is socks5://",
        ),
        (
            &[("HTTPS_PROXY", "https://user:pw-s3cret@127.0.0.1:3128")][..],
            "HTTPS_PROXY is not a proxy mpgate can use: it is an https:// proxy",
        ),
        (
            &[("https_proxy", "http://user:pw-s3cret@127.0.0.1:port")][..],
            "https_proxy is not a proxy mpgate can use: its host or port is not valid",
        ),
        (
            &[("HTTPS_PROXY", "http://127.0.0.1:1"), ("https_proxy", "http://127.0.0.1:2")][..],
            "both HTTPS_PROXY and https_proxy are set",
        ),
        (
            &[("HTTPS_PROXY", "http://127.0.0.1:1"), ("NO_PROXY", "10.0.0.0/40")][..],
            "NO_PROXY has an entry mpgate cannot read (10.0.0.0/40)",
        ),
    ] {
        let dir = scratch();
        let run = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path())
            .env("AWS_ENDPOINT_URL_MARKETPLACE_METERING", &https);
        let run = pairs.iter().fold(run, |run, (k, v)| run.env(*k, *v));
        run.run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!("mpgate: misconfigured: {needle}"))
            .expect_stderr_lacks("s3cret")
            .check();
    }
    assert_eq!(emu.requests().len(), 0, "an AWS call was made: {:?}", emu.requests());
}

#[test]
fn an_intercepting_proxy_is_refused_at_once_with_82_by_the_test_flavour() {
    let (emu, https) = emulator();
    let dir = scratch();
    let proxy = Intercepting::start(dir.path());
    let out = refused_through(&emu, &https, &proxy.url(), "60s", 82)
        .expect_stderr_contains(&format!(
            "the TLS certificate presented for 127.0.0.1 through the proxy {} (HTTPS_PROXY) is not issued by a public certificate authority",
            proxy.url()
        ))
        .expect_stderr_contains("mpgate verifies TLS with AWS end to end inside the proxy's CONNECT tunnel")
        .check();
    assert!(out.elapsed < Duration::from_secs(10), "took {:?}", out.elapsed);
    let events = proxy.events_once("TLS-HANDSHAKE-FAILED");
    assert!(events.contains(&format!("CONNECT {}", authority(&https))), "{events}");
    assert!(!events.contains("HTTP-REQUEST"), "the gate trusted the proxy's certificate: {events}");
    assert_eq!(register_calls(&emu), 0);
}

#[test]
fn check_names_the_proxy_of_each_host_without_its_password_and_probes_through_it() {
    let (emu, https) = emulator();
    let proxy = Tinyproxy::start("BasicAuth mpgate s3cr-t");
    let dir = scratch();
    let url = format!("http://mpgate:s3cr%2Dt@127.0.0.1:{}", proxy.port);
    let out = crate::support::Run::gate()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("AWS_ENDPOINT_URL_MARKETPLACE_METERING", &https)
        .env("HTTPS_PROXY", &url)
        .env("NO_PROXY", emu.url().trim_start_matches("http://"))
        .args(["check", "--json"])
        .run();
    let report: serde_json::Value =
        serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
    let row =
        |id: &str| report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).cloned().expect(id);
    let proxied = row("proxy");
    let summary = proxied["summary"].as_str().expect("summary");
    assert_eq!(proxied["status"], "pass", "{proxied}");
    assert!(summary.contains(&format!("{} through {} (HTTPS_PROXY)", authority(&https), proxy.url())), "{summary}");
    assert!(summary.contains(&format!("{} directly (NO_PROXY entry", authority(&emu.url()))), "{summary}");
    assert!(summary.contains("metadata endpoints (IMDS, ECS, Pod Identity) are always reached directly"), "{summary}");
    let endpoint = row("endpoint");
    assert!(
        endpoint["summary"].as_str().expect("summary").contains(&format!("through the proxy {}", proxy.url())),
        "{endpoint}"
    );
    assert!(!out.stdout().contains("s3cr"), "{}", out.stdout());
    assert!(!out.stderr().contains("s3cr"), "{}", out.stderr());
    assert_eq!(proxy.connects(), [authority(&https)], "the endpoint probe did not go through the proxy");
}

#[test]
fn the_license_token_exchange_and_checkout_go_through_the_proxy_and_its_407_is_final() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let open = Tinyproxy::start("");
    let dir = scratch();
    let run = crate::contract::gate(&emu, "onprem-license", dir.path()).env("HTTPS_PROXY", open.url());
    let out = crate::contract::supervise_report(run, dir.path()).run();
    assert_eq!(out.code(), Some(0), "not admitted:\n{}", out.stderr());
    for op in ["GetAccessToken", "AssumeRoleWithWebIdentity", "CheckoutLicense"] {
        assert!(emu.requests().iter().any(|r| r.op == op), "{op} missing: {:?}", emu.requests());
    }
    assert!(!open.connects().is_empty() && open.connects().iter().all(|c| *c == authority(&emu.url())));
    let guarded = Tinyproxy::start("BasicAuth mpgate s3cr-t");
    let dir = scratch();
    let run = crate::contract::gate(&emu, "onprem-license", dir.path())
        .env("HTTPS_PROXY", guarded.url())
        .env("MPGATE_DEADLINE", "60s");
    let out = crate::contract::supervise_report(run, dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "mpgate: misconfigured: the license token exchange (License Manager GetAccessToken, then STS AssumeRoleWithWebIdentity) did not reach AWS: the proxy {} (HTTPS_PROXY) answered 407",
            guarded.url()
        ))
        .check();
    assert!(out.elapsed < Duration::from_secs(10), "took {:?}", out.elapsed);
}

#[test]
fn check_fails_its_proxy_row_for_settings_the_gate_would_refuse() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = crate::support::Run::gate()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("HTTPS_PROXY", "socks5://user:pw-s3cret@127.0.0.1:1080")
        .args(["check", "--json"])
        .run();
    let report: serde_json::Value =
        serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
    assert_eq!(out.code(), Some(mpgate::error::Class::CheckWouldRefuse.exit_code().into()), "{report}");
    let row = report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "proxy").cloned().expect("proxy");
    assert_eq!(row["status"], "fail", "{row}");
    assert!(row["summary"].as_str().expect("summary").contains("HTTPS_PROXY is not a proxy mpgate can use"), "{row}");
    assert!(!out.stdout().contains("s3cret") && !out.stderr().contains("s3cret"));
    assert_eq!(emu.requests().iter().filter(|r| r.op != "EcsTaskMetadata").count(), 0, "{:?}", emu.requests());
}

/// The metadata sources besides ECS's (IMDS for an instance role, the EKS Pod Identity agent) are
/// never tunnelled either, with no NO_PROXY set: the emulator serves them on its plain port, and the
/// proxy sees only the Metering CONNECT to the HTTPS port. AWS Marketplace then refuses both kinds of
/// credentials (82), which is what the gate ends with.
#[test]
fn imds_and_the_pod_identity_agent_never_go_through_the_proxy() {
    for (workload, metadata, refusal) in [
        ("ec2-instance", "ImdsCredentials", "PlatformNotSupportedException"),
        ("eks-pod-identity", "PodIdentityCredentials", "IRSA"),
    ] {
        let (emu, https) = emulator();
        let proxy = Tinyproxy::start("");
        let dir = scratch();
        let out = gate(&emu, &https, workload, dir.path(), &proxy.url())
            .run()
            .expect_status(82)
            .expect_stderr_contains(refusal)
            .check();
        assert!(!dir.path().join("report.json").exists(), "{workload}: the workload ran: {}", out.stderr());
        let ops: Vec<String> = emu.requests().iter().map(|r| r.op.clone()).collect();
        assert!(ops.iter().any(|op| op == metadata), "{workload}: no {metadata} at the emulator: {ops:?}");
        let plain = authority(&emu.url());
        let requests = proxy.requests();
        assert!(
            requests.iter().all(|r| !r.contains(&plain)),
            "{workload}: metadata went through the proxy: {requests:?}"
        );
        // The refusal is AWS Marketplace's answer to RegisterUsage, which did go through the proxy.
        assert_eq!(proxy.connects(), [authority(&https)], "{workload}: only Metering is tunnelled: {requests:?}");
        assert_eq!(register_calls(&emu), 1, "{workload}: {ops:?}");
    }
}

/// A proxy that accepts the connection and never answers `CONNECT`: each attempt ends when the
/// tunnel's own wait for the answer does, naming the proxy's silence (not the AWS host's), and the
/// deadline line quotes it.
#[test]
fn a_proxy_that_accepts_and_never_answers_is_named_as_silent() {
    let (emu, https) = emulator();
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    silent.set_nonblocking(true).expect("nonblocking");
    // Hold every accepted connection open, unanswered, for as long as the gate may run.
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < until {
            match silent.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("accept: {e}"),
            }
            if held.len() >= 64 {
                break;
            }
        }
        held.len()
    });
    refused_through(&emu, &https, &url, "8s", 81)
        .expect_stderr_contains(&format!(
            "the proxy {url} (HTTPS_PROXY) did not answer CONNECT {} within 5 s",
            authority(&https)
        ))
        .check();
    assert_eq!(register_calls(&emu), 0);
    drop(holder);
}

/// `check` with a proxy that is down: the endpoint row fails with advice about the proxy (not about
/// the pod's egress), and a route shared by Metering and STS (one emulator) is listed once.
#[test]
fn check_with_a_proxy_that_is_down_says_to_fix_the_proxy() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let down = format!("http://127.0.0.1:{}", free_port());
    let out = crate::support::Run::gate()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("HTTPS_PROXY", &down)
        .args(["check", "--json"])
        .run();
    let report: serde_json::Value =
        serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
    let row =
        |id: &str| report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).cloned().expect(id);
    let proxied = row("proxy");
    let summary = proxied["summary"].as_str().expect("summary");
    let route = format!("{} through {down} (HTTPS_PROXY)", authority(&emu.url()));
    assert_eq!(summary.matches(&route).count(), 1, "{summary}");
    let endpoint = row("endpoint");
    assert_eq!(endpoint["status"], "fail", "{endpoint}");
    let fix = endpoint["fix"].as_str().expect("fix");
    assert!(fix.starts_with(&format!("the endpoint is reached through the proxy {down} (HTTPS_PROXY)")), "{fix}");
    assert_eq!(register_calls(&emu), 0);
}
