//! Refusal lines name the endpoint a start could not reach: host and port, for a failed connection
//! to Marketplace Metering (`exec` and `supervise`) and to the container credential endpoint, as
//! `mpgate check` names them, and for a credential endpoint still loading when the deadline struck.
//! Regions: one of no AWS partition is refused at once, naming it; one of each partition is admitted;
//! the release gate in `cn-northwest-1` connects to the China Metering host.

use crate::hourly::{gate_as, with_workload};
use crate::rootfs::{in_chroot, rootfs};
use crate::support::{dist_dir, scratch, Run};
use crate::tamper::FakeAws;
use mpgate_emulator::{Emulator, World};

/// A loopback port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn exec_names_the_metering_host_and_port_it_could_not_connect_to() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let port = closed_port();
    let gate = gate_as(&emu, "ecs-task", dir.path())
        .env("AWS_ENDPOINT_URL_MARKETPLACE_METERING", format!("http://127.0.0.1:{port}"))
        .arg("--deadline")
        .arg("2s");
    with_workload(gate, dir.path())
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains("within the 2s start-up deadline")
        .expect_stderr_contains(&format!("cannot connect to 127.0.0.1:{port}"))
        .check();
    assert!(!dir.path().join("report.json").exists(), "the workload must not run");
}

#[test]
fn supervise_names_the_metering_host_and_port_it_could_not_connect_to() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let port = closed_port();
    Run::bin(dist_dir().join("mpgate-test-metered"))
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("AWS_ENDPOINT_URL_MARKETPLACE_METERING", format!("http://127.0.0.1:{port}"))
        .args(["supervise", "--deadline", "2s", "--", "/bin/sh", "-c", "echo ran > \"$0\""])
        .arg(dir.path().join("ran"))
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!("cannot connect to 127.0.0.1:{port}"))
        .check();
    assert!(!dir.path().join("ran").exists(), "the workload must not run");
}

#[test]
fn a_credential_endpoint_that_refuses_the_connection_is_named() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let port = closed_port();
    let gate = gate_as(&emu, "ecs-task", dir.path())
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("http://127.0.0.1:{port}/v2/credentials/x"))
        .arg("--deadline")
        .arg("20s");
    // aws-config's container provider retries a refused connection a few times, then fails: the gate
    // refuses with that failure long before its deadline.
    with_workload(gate, dir.path())
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains("cannot load credentials from the ECS task role")
        .expect_stderr_contains(&format!("cannot connect to 127.0.0.1:{port}"))
        .check();
    assert!(emu.bodies("RegisterUsage").is_empty(), "no call without credentials");
}

#[test]
fn a_credential_endpoint_still_loading_at_the_deadline_is_named() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    // Bound and listening, never accepting: the kernel completes the connection and the request waits
    // for an answer that never comes, so the deadline strikes while the provider is still loading.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let gate = gate_as(&emu, "ecs-task", dir.path())
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("http://127.0.0.1:{port}/v2/credentials/x"))
        .arg("--deadline")
        .arg("2s");
    with_workload(gate, dir.path())
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains(&format!(
            "loading credentials from the ECS task role at 127.0.0.1:{port} did not finish"
        ))
        .check();
    drop(silent);
    assert!(emu.bodies("RegisterUsage").is_empty(), "no call without credentials");
}

/// A region no AWS partition has (by the SDK's region list or its `regionRegex`), or a region name
/// spelled other than AWS spells it, is refused before any AWS call with 82 naming the variable and
/// the value; a start with a 30s deadline does not wait for it (the deadline's refusal is 81).
#[test]
fn a_region_of_no_partition_is_refused_at_once_with_82_naming_it() {
    for region in ["xx-fake-1", "us-east-1 ", "US-EAST-1", "aws-cn-global"] {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let dir = scratch();
        let gate = gate_as(&emu, "ecs-task", dir.path()).env("AWS_REGION", region).arg("--deadline").arg("30s");
        with_workload(gate, dir.path())
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!("mpgate: misconfigured: AWS_REGION={region:?} is "))
            .expect_stderr_contains("set AWS_REGION to the region the task or pod runs in")
            .check();
        assert!(!dir.path().join("report.json").exists(), "{region:?}: the workload must not run");
        assert!(emu.requests().is_empty(), "{region:?}: the emulator saw {:?}", emu.requests());
    }
}

/// A region of every partition passes the region check and reaches Metering (here the emulator):
/// `cn-northwest-1`, `us-gov-west-1` and `eusc-de-east-1` are admitted like `us-east-1`.
#[test]
fn a_region_of_every_partition_is_admitted() {
    for region in ["cn-northwest-1", "us-gov-west-1", "eusc-de-east-1"] {
        let mut world = World::demo();
        for w in &mut world.workloads {
            w.region = region.to_string();
        }
        let emu = Emulator::start(world).expect("emulator");
        let dir = scratch();
        let gate = gate_as(&emu, "ecs-task", dir.path()).env("AWS_REGION", region);
        with_workload(gate, dir.path()).run().expect_status(0).check();
        assert_eq!(emu.bodies("RegisterUsage").len(), 1, "{region}: one RegisterUsage call");
    }
}

/// The release gate in an empty root whose hosts file points the China Metering name at a local
/// server: run in `cn-northwest-1`, it connects to `metering.marketplace.cn-northwest-1.amazonaws.com.cn`
/// (the server logs the handshake), refuses the server's certificate under that name with 82, and
/// does not run the workload.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn the_release_gate_in_cn_northwest_1_connects_to_the_china_metering_host() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = rootfs("mpgate");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    std::fs::write(root.path().join("etc/hosts"), "127.0.0.81 metering.marketplace.cn-northwest-1.amazonaws.com.cn\n")
        .expect("hosts");
    let dir = scratch();
    let fake = FakeAws::start("127.0.0.81", dir.path());
    let mut env = emu.workload_env("ecs-task", dir.path()).expect("env");
    env.retain(|(k, _)| k != "AWS_REGION" && k != "AWS_DEFAULT_REGION");
    env.push(("AWS_REGION".into(), "cn-northwest-1".into()));
    in_chroot(root.path(), env)
        .args(["exec", "--deadline", "30s", "--", "/workload", "report", "/report.json"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains(
            "the TLS certificate presented for metering.marketplace.cn-northwest-1.amazonaws.com.cn",
        )
        .check();
    let events = fake.events_once("TLS-HANDSHAKE-FAILED");
    assert!(!events.contains("HTTP-REQUEST"), "the gate trusted the fake endpoint: {events}");
    assert!(emu.bodies("RegisterUsage").is_empty(), "the release gate reached the emulator");
    assert!(!root.path().join("report.json").exists(), "the workload must not run");
}
