//! The real link-local endpoints, with no override for them in the workload's environment: ECS
//! task-role credentials by `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (aws-config resolves it
//! against 169.254.170.2), ECS task metadata v4 for the region, and IMDS at 169.254.169.254.
//!
//! Those addresses need a network namespace of the test's own: the test creates one (`ip netns
//! add`), puts both addresses on its loopback, and runs itself again inside it (`ip netns exec`,
//! selected by `MPGATE_NETNS_INNER`), where the emulator binds them and the gate runs. The tests are
//! `#[ignore]`d (they need root and `ip`); scripts/test runs them, and without root or `ip` they fail.
//!
//! The IPv6 namespace is an EKS IPv6 cluster's view: IMDS at `[fd00:ec2::254]`, the Pod Identity
//! agent at `[fd00:ec2::23]`, the (emulated) AWS endpoint at `[fd00::1]`, and no IPv4 address at all
//! (127.0.0.1 is removed), so anything that falls back to IPv4 fails.

use crate::hourly::{gate_as, with_workload};
use crate::support::{scratch, Report, Run};
use mpgate_emulator::{Emulator, Listen, Recorded, World, PAID};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const INNER: &str = "MPGATE_NETNS_INNER";

#[allow(clippy::disallowed_methods)] // the harness is configured by its environment
fn var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// `ip` from iproute2, wherever the distribution put it.
fn ip_bin() -> Option<PathBuf> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A network namespace, deleted on drop.
struct Netns {
    ip: PathBuf,
    name: String,
}

impl Netns {
    /// Creates `mpgate-<pid>-<tag>` with loopback up and both link-local addresses on it, or with
    /// `ipv6_only` the IPv6 addresses of the module header and no IPv4 address.
    fn create(tag: &str, ipv6_only: bool) -> Result<Netns, String> {
        let ip = ip_bin().ok_or("no `ip` command (iproute2)")?;
        let ns = Netns { ip, name: format!("mpgate-{}-{tag}", std::process::id()) };
        ns.ip(&["netns", "add", &ns.name]).map_err(|e| format!("cannot create a network namespace ({e})"))?;
        let setup = if ipv6_only {
            vec![
                vec!["link", "set", "lo", "up"],
                vec!["addr", "del", "127.0.0.1/8", "dev", "lo"],
                vec!["addr", "add", "fd00:ec2::254/128", "dev", "lo", "nodad"],
                vec!["addr", "add", "fd00:ec2::23/128", "dev", "lo", "nodad"],
                vec!["addr", "add", "fd00::1/128", "dev", "lo", "nodad"],
            ]
        } else {
            vec![
                vec!["link", "set", "lo", "up"],
                vec!["addr", "add", "169.254.170.2/32", "dev", "lo"],
                vec!["addr", "add", "169.254.169.254/32", "dev", "lo"],
            ]
        };
        for args in setup {
            let mut full = vec!["-n", ns.name.as_str()];
            full.extend(args);
            ns.ip(&full)?;
        }
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new(&self.ip).args(args).output().map_err(|e| format!("ip: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.ip(&["netns", "del", &self.name]);
    }
}

/// Runs `body` inside a fresh network namespace (see the module header). `test` is the test's name.
fn in_namespace(test: &str, body: fn()) {
    in_namespace_of(test, false, body)
}

/// As `in_namespace`, in the IPv6-only namespace of the module header.
fn in_ipv6_namespace(test: &str, body: fn()) {
    in_namespace_of(test, true, body)
}

fn in_namespace_of(test: &str, ipv6_only: bool, body: fn()) {
    if var(INNER).as_deref() == Some(test) {
        body();
        return;
    }
    let ns = Netns::create(&test[..test.len().min(12)], ipv6_only)
        .unwrap_or_else(|why| panic!("cannot create a network namespace: {why} (needs root and iproute2)"));
    let me = std::env::current_exe().expect("test binary path");
    let mut run = Run::bin(ns.ip.clone())
        .args(["netns", "exec", &ns.name])
        .arg(me)
        .args([&format!("netns::{test}"), "--exact", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(INNER, test)
        .timeout(Duration::from_secs(120));
    let dist = crate::support::dist_dir();
    run = run.env("MPGATE_DIST", &dist);
    for k in ["PATH", "RUST_BACKTRACE"] {
        if let Some(v) = var(k) {
            run = run.env(k, v);
        }
    }
    let out = run.run();
    assert!(
        out.code() == Some(0) && out.stdout().contains("1 passed"),
        "inside the namespace: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.output.status,
        out.stdout(),
        out.stderr()
    );
}

fn value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The requests of `op`, each as (status, path, workload).
fn calls(emu: &Emulator, op: &str) -> Vec<Recorded> {
    emu.requests().into_iter().filter(|r| r.op == op).collect()
}

fn assert_ok_for(emu: &Emulator, op: &str, workload: &str) -> Vec<Recorded> {
    let got = calls(emu, op);
    assert!(!got.is_empty(), "no {op} call in the ledger: {:?}", emu.requests());
    for r in &got {
        assert_eq!((r.status, r.workload.as_deref()), (200, Some(workload)), "{op}: {r:?}");
    }
    got
}

fn assert_admitted_paid(out: &crate::support::Outcome, dir: &Path) {
    assert_eq!(out.code(), Some(0), "not admitted:\n{}", out.stderr());
    let report = Report::read(&dir.join("report.json"));
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
}

#[test]
#[ignore = "needs root and iproute2: network namespaces (scripts/test runs it)"]
fn ecs_relative_uri_and_task_metadata_on_the_agent_address() {
    in_namespace("ecs_relative_uri_and_task_metadata_on_the_agent_address", || {
        let listen = Listen { ecs_agent: Some(Listen::ECS_AGENT), ..Listen::default() };
        let emu = Emulator::start_with(World::demo(), listen).expect("emulator on 169.254.170.2:80");
        let dir = scratch();
        // Old ECS agent on EC2: no region variables, so the region comes from task metadata v4.
        let env = emu.workload_env("ecs-ec2-old-agent", dir.path()).expect("env");
        let relative = value(&env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").expect("relative URI set");
        assert!(relative.starts_with("/v2/credentials/"), "{relative}");
        for absent in ["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_REGION"] {
            assert_eq!(value(&env, absent), None, "{absent} must not be set: ECS sets none of them here");
        }
        let tmde = value(&env, "ECS_CONTAINER_METADATA_URI_V4").expect("TMDE set");
        assert!(tmde.starts_with("http://169.254.170.2/v4/"), "{tmde}");

        let out = with_workload(gate_as(&emu, "ecs-ec2-old-agent", dir.path()), dir.path())
            .run()
            .expect_stderr_contains("credentials from the ECS task role")
            .expect_stderr_contains("region from ECS task metadata")
            .check();
        assert_admitted_paid(&out, dir.path());
        let creds = assert_ok_for(&emu, "EcsCredentials", "ecs-ec2-old-agent");
        assert_eq!(creds[0].path, relative, "fetched from the relative URI's path");
        assert!(creds[0].headers.iter().all(|(k, _)| k != "authorization"), "no token with a relative URI");
        let meta = assert_ok_for(&emu, "EcsTaskMetadata", "ecs-ec2-old-agent");
        assert!(meta[0].path.ends_with("/task"), "{:?}", meta[0].path);
        let register = assert_ok_for(&emu, "RegisterUsage", "ecs-ec2-old-agent");
        assert_eq!(register.len(), 1);
        assert_eq!(register[0].signing_region.as_deref(), Some("us-east-1"), "region from the TaskARN");
    });
}

#[test]
#[ignore = "needs root and iproute2: network namespaces (scripts/test runs it)"]
fn imds_on_its_default_address_without_an_endpoint_override() {
    in_namespace("imds_on_its_default_address_without_an_endpoint_override", || {
        // An IRSA pod without region variables on a node whose IMDS it can reach: region from IMDS.
        let listen = Listen { imds: vec![("eks-irsa-no-region".into(), Listen::IMDS)], ..Listen::default() };
        let emu = Emulator::start_with(World::demo(), listen).expect("emulator on 169.254.169.254:80");
        let dir = scratch();
        let env = emu.workload_env("eks-irsa-no-region", dir.path()).expect("env");
        for absent in ["AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED", "AWS_REGION"] {
            assert_eq!(value(&env, absent), None, "{absent} must not be set");
        }
        let out = with_workload(gate_as(&emu, "eks-irsa-no-region", dir.path()), dir.path())
            .run()
            .expect_stderr_contains("region from EC2 instance metadata")
            .check();
        assert_admitted_paid(&out, dir.path());
        assert_ok_for(&emu, "ImdsToken", "eks-irsa-no-region");
        assert_ok_for(&emu, "ImdsRegion", "eks-irsa-no-region");
        assert_ok_for(&emu, "RegisterUsage", "eks-irsa-no-region");
        drop(emu);

        // An EC2 instance role: the credentials really come from 169.254.169.254, and Marketplace
        // refuses them (docs/aws-behaviour.md: instance roles are not a container platform).
        let listen = Listen { imds: vec![("ec2-instance".into(), Listen::IMDS)], ..Listen::default() };
        let emu = Emulator::start_with(World::demo(), listen).expect("emulator on 169.254.169.254:80");
        let dir = scratch();
        let out = with_workload(gate_as(&emu, "ec2-instance", dir.path()), dir.path())
            .run()
            .expect_status(82)
            .expect_stderr_contains("PlatformNotSupportedException")
            .check();
        assert!(!dir.path().join("report.json").exists(), "the workload must not run: {}", out.stderr());
        assert_ok_for(&emu, "ImdsCredentials", "ec2-instance");
        let refused = calls(&emu, "RegisterUsage");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].workload.as_deref(), Some("ec2-instance"), "signed with the IMDS credentials");
    });
}

/// The emulated AWS endpoint in the IPv6-only namespace.
fn ipv6_main() -> std::net::SocketAddr {
    "[fd00::1]:0".parse().expect("address")
}

#[test]
#[ignore = "needs root and iproute2: network namespaces (scripts/test runs it)"]
fn ipv6_only_imds_region_and_aws_endpoint_admit() {
    in_ipv6_namespace("ipv6_only_imds_region_and_aws_endpoint_admit", || {
        // An IRSA pod on an EKS IPv6 cluster without region variables: region from IMDS at
        // [fd00:ec2::254] (endpoint mode IPv6), STS and Metering at an IPv6 address.
        let imds = vec![("eks-irsa-no-region".into(), Listen::IMDS_V6)];
        let listen = Listen { main: ipv6_main(), imds, ..Listen::default() };
        let emu = Emulator::start_with(World::demo(), listen).expect("emulator on [fd00::1] and [fd00:ec2::254]:80");
        assert!(emu.url().starts_with("http://[fd00::1]:"), "{}", emu.url());
        let dir = scratch();
        let env = emu.workload_env("eks-irsa-no-region", dir.path()).expect("env");
        assert_eq!(value(&env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"), Some("IPv6"));
        for absent in ["AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED", "AWS_REGION"] {
            assert_eq!(value(&env, absent), None, "{absent} must not be set");
        }
        let out = with_workload(gate_as(&emu, "eks-irsa-no-region", dir.path()), dir.path())
            .run()
            .expect_stderr_contains("region from EC2 instance metadata")
            .check();
        assert_admitted_paid(&out, dir.path());
        assert_ok_for(&emu, "ImdsToken", "eks-irsa-no-region");
        assert_ok_for(&emu, "ImdsRegion", "eks-irsa-no-region");
        let register = assert_ok_for(&emu, "RegisterUsage", "eks-irsa-no-region");
        assert_eq!(register.len(), 1, "{register:?}");

        // `mpgate check` names the IPv6 endpoint as a URL (brackets) and finds IMDS over IPv6.
        let out = Run::gate().envs(env).arg("check").arg("--json").run();
        let report: serde_json::Value =
            serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
        let row =
            |id: &str| report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).cloned().expect(id);
        let endpoint = row("endpoint");
        let summary = endpoint["summary"].as_str().expect("summary");
        assert!(summary.starts_with(&format!("{} reachable", emu.url())), "{endpoint}");
        assert!(summary.starts_with("http://[fd00::1]:"), "{endpoint}");
        assert_eq!(row("imds")["status"], "pass", "{report}");
    });
}

#[test]
#[ignore = "needs root and iproute2: network namespaces (scripts/test runs it)"]
fn ipv6_pod_identity_agent_is_reached_and_marketplace_refusal_names_the_irsa_fix() {
    in_ipv6_namespace("ipv6_pod_identity_agent_is_reached_and_marketplace_refusal_names_the_irsa_fix", || {
        // aws-config accepts http://[fd00:ec2::23] as a container credentials URI (the EKS Pod
        // Identity agent's IPv6 address); Marketplace then refuses Pod Identity credentials, as over IPv4.
        let listen =
            Listen { main: ipv6_main(), pod_identity_agent: Some(Listen::POD_IDENTITY_AGENT_V6), ..Listen::default() };
        let emu = Emulator::start_with(World::demo(), listen).expect("emulator on [fd00::1] and [fd00:ec2::23]:80");
        let dir = scratch();
        let env = emu.workload_env("eks-pod-identity", dir.path()).expect("env");
        assert_eq!(
            value(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            Some("http://[fd00:ec2::23]/v1/credentials"),
            "the agent's IPv6 URI, as EKS injects it"
        );
        let out = with_workload(gate_as(&emu, "eks-pod-identity", dir.path()), dir.path())
            .run()
            .expect_status(82)
            .expect_stderr_contains("signed with EKS Pod Identity; AWS Marketplace Metering does not accept it")
            .expect_stderr_contains("use IRSA")
            .check();
        assert!(!dir.path().join("report.json").exists(), "the workload must not run: {}", out.stderr());
        let creds = assert_ok_for(&emu, "PodIdentityCredentials", "eks-pod-identity");
        assert_eq!(creds[0].path, "/v1/credentials", "fetched from the agent's own path");
        assert!(creds[0].headers.iter().any(|(k, _)| k == "authorization"), "the token file is sent");
        let refused = calls(&emu, "RegisterUsage");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].workload.as_deref(), Some("eks-pod-identity"), "signed with the agent's credentials");
    });
}

/// Private DNS for an interface VPC endpoint: the AWS name resolves to the endpoint's private
/// address, which presents a certificate for that name. Here `metering.marketplace.us-east-1.amazonaws.com`
/// resolves (the empty root's hosts file) to `ip`, where a TLS front with a certificate for that name
/// signed by the emulator's test CA forwards to the emulator; the test gate, with no endpoint variable
/// for Metering, is admitted there: nothing in mpgate changes with private DNS.
fn private_dns_admits(emu: &Emulator, workload: &str, ip: &str, extra: &[(&str, String)]) {
    let name = "metering.marketplace.us-east-1.amazonaws.com";
    let ip_bin = ip_bin().expect("ip");
    let added = Command::new(ip_bin).args(["addr", "add", ip, "dev", "lo"]).arg("nodad").status();
    assert!(added.is_ok_and(|s| s.success()), "cannot add {ip} to the namespace's loopback");
    let dir = scratch();
    let upstream = emu.url().trim_start_matches("http://").trim_end_matches('/').to_string();
    let front = crate::vpce::Front::tls_for(name, ip, &upstream, dir.path());
    let root = crate::vpce::root_resolving("mpgate-test", ip, &[name]);
    let mut env = emu.workload_env(workload, root.path()).expect("env");
    env.retain(|(k, _)| !k.starts_with("AWS_ENDPOINT_URL"));
    for (k, v) in env.iter_mut() {
        if k == "AWS_WEB_IDENTITY_TOKEN_FILE" {
            let file = Path::new(v.as_str()).strip_prefix(root.path()).expect("the token is inside the root");
            *v = format!("/{}", file.display());
        }
    }
    env.extend(extra.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
    crate::rootfs::in_chroot(root.path(), env)
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(0)
        .check();
    let events = front.events();
    assert!(events.lines().any(|l| l == format!("SNI {name}")), "no ClientHello for {name}: {events}");
    assert!(events.contains("FORWARDED"), "{events}");
    let register = assert_ok_for(emu, "RegisterUsage", workload);
    assert_eq!(register.len(), 1, "{register:?}");
    assert_eq!(Report::read(&root.path().join("report.json")).var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
}

#[test]
#[ignore = "needs root and iproute2: network namespaces (scripts/test runs it)"]
fn ipv4_private_dns_admits_with_no_endpoint_variable() {
    in_namespace("ipv4_private_dns_admits_with_no_endpoint_variable", || {
        let emu = Emulator::start(World::demo()).expect("emulator");
        private_dns_admits(&emu, "ecs-task", "10.0.0.5", &[]);
    });
}

#[test]
#[ignore = "needs root and iproute2: network namespaces (scripts/test runs it)"]
fn ipv6_private_dns_admits_with_no_endpoint_variable() {
    in_ipv6_namespace("ipv6_private_dns_admits_with_no_endpoint_variable", || {
        // An IRSA pod on an IPv6-only cluster: STS at the emulator (the test flavour's variable),
        // Metering through the endpoint's private DNS.
        let emu = Emulator::start_with(World::demo(), Listen { main: ipv6_main(), ..Listen::default() })
            .expect("emulator on [fd00::1]");
        private_dns_admits(&emu, "eks-irsa", "fd00::5", &[("AWS_ENDPOINT_URL_STS", emu.url())]);
    });
}
