//! A start whose Metering endpoint or egress proxy is not listening yet (a mesh sidecar or proxy
//! still starting): the attempts whose connection was refused never reached the service, so the
//! gate retries them within half a second instead of the fleet pacing's 1-5 s, and a throttle once
//! the endpoint is up still waits until at least 1 s into the start. The test brings the endpoint
//! up by relaying the refused port, once the gate's first attempt has failed.
//!
//! The assertions read the gate's `-v` pause lines ("attempt N reached the service / did not reach
//! the service; next attempt in P s, at T s into the start"): the pacing's own choice, so they hold
//! however loaded the machine is.

use crate::proxy::Tinyproxy;
use crate::support::{gate_bin, scratch, wait_until, workload_bin, Report, Spawned};
use mpgate_emulator::{Emulator, Fault, World};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// From now on, every connection to `listener` is relayed to `to`: an endpoint coming up mid-start.
/// Dropping it stops accepting (connections in flight end when either side closes).
struct Relay(Arc<AtomicBool>);

impl Relay {
    fn start(listener: TcpListener, to: SocketAddr) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        listener.set_nonblocking(true).expect("nonblocking listener");
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => relay(client, to),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("relay accept: {e}"),
                }
            }
        });
        Relay(stop)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Copy bytes both ways between `client` and a new connection to `to` until either side closes.
fn relay(client: TcpStream, to: SocketAddr) {
    client.set_nonblocking(false).expect("blocking stream");
    let Ok(server) = TcpStream::connect(to) else { return };
    let pipe = |mut from: TcpStream, mut into: TcpStream| {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut into);
            let _ = into.shutdown(std::net::Shutdown::Write);
        });
    };
    pipe(client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    pipe(server, client);
}

/// One `-v` pause line: whether the attempt reached the service, the pause, and when it ends.
#[derive(Debug)]
struct Pause {
    attempt: u32,
    reached: bool,
    secs: f64,
    at: f64,
}

fn pauses(log: &str) -> Vec<Pause> {
    log.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("mpgate: RegisterUsage attempt ")?;
            let (attempt, rest) = rest.split_once(' ')?;
            let (outcome, rest) = rest.split_once("; next attempt in ")?;
            let (secs, rest) = rest.split_once(" s, at ")?;
            let at = rest.strip_suffix(" s into the start")?;
            let reached = match outcome {
                "reached the service" => true,
                "did not reach the service" => false,
                other => panic!("unknown outcome {other:?} in {line:?}"),
            };
            Some(Pause {
                attempt: attempt.parse().ok()?,
                reached,
                secs: secs.parse().expect("seconds"),
                at: at.parse().expect("seconds"),
            })
        })
        .collect()
}

/// Start the gate with `-v` and `env` (which points it at 127.0.0.1:`port`, where nothing listens);
/// once its first attempt has failed, relay `port` to `to`; wait for its exit. Its code and stderr.
fn start_before_the_endpoint(
    emu: &Emulator,
    dir: &Path,
    env: &[(&str, String)],
    port: u16,
    to: SocketAddr,
) -> (Option<i32>, String) {
    let stderr = dir.join("stderr");
    let mut cmd = Command::new(gate_bin());
    cmd.env_clear()
        .envs(emu.workload_env("ecs-task", dir).expect("env"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("MPGATE_DEADLINE", "20s")
        .args(["exec", "-v", "--"])
        .arg(workload_bin())
        .arg("report")
        .arg(dir.join("report.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    let mut gate = Spawned::spawn(&mut cmd, "the hourly gate");
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    wait_until("the first attempt's refused connection", LIMIT, || pauses(&log()).iter().any(|p| p.attempt == 1));
    let _up = Relay::start(TcpListener::bind(("127.0.0.1", port)).expect("rebind the port"), to);
    let code = gate.wait_exit(LIMIT);
    (code, log())
}

/// A loopback port nothing listens on until the relay binds it again.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The first attempt was refused before its request was sent: retried after 0.25-0.5 s, well under
/// the 1 s before a throttled gate's first retry; the refusals in a row that follow double up to 1-2
/// s. Then the attempts that reach the service, if any, each with its pause.
fn refused_then<'a>(pauses: &'a [Pause], log: &str) -> Vec<&'a Pause> {
    let (refused, reached): (Vec<&Pause>, Vec<&Pause>) = pauses.iter().partition(|p| !p.reached);
    let first = refused.first().unwrap_or_else(|| panic!("no refused attempt:\n{log}"));
    assert_eq!(first.attempt, 1, "{pauses:?}");
    assert!((0.25..=0.5).contains(&first.secs), "{pauses:?}");
    assert!(refused.iter().all(|p| p.secs <= 2.0), "{pauses:?}");
    assert!(reached.iter().all(|p| p.attempt > refused.last().expect("refused").attempt), "{pauses:?}");
    reached
}

#[test]
fn a_metering_endpoint_not_listening_yet_is_retried_within_half_a_second_then_paced_as_a_fleet() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    emu.inject("RegisterUsage", Fault::Throttle);
    let to: SocketAddr = emu.url().trim_start_matches("http://").parse().expect("emulator address");
    let dir = scratch();
    let port = closed_port();
    let metering = [("AWS_ENDPOINT_URL_MARKETPLACE_METERING", format!("http://127.0.0.1:{port}"))];
    let (code, log) = start_before_the_endpoint(&emu, dir.path(), &metering, port, to);
    assert_eq!(code, Some(0), "not admitted:\n{log}");
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("hourly"), "{log}");
    let refusal =
        format!("cannot connect to 127.0.0.1:{port}: client error (Connect): tcp connect error: Connection refused");
    assert!(log.lines().any(|l| l.starts_with("mpgate: RegisterUsage attempt 1: ") && l.contains(&refusal)), "{log}");

    let pauses = pauses(&log);
    let reached = refused_then(&pauses, &log);
    // Once up, the one throttle is paced as a fleet's: its retry at least 1 s into the start.
    assert_eq!(reached.len(), 1, "{pauses:?}\n{log}");
    let throttled = reached[0];
    if throttled.at - throttled.secs < 1.0 {
        // Throttled in the first second: the first retry, uniform in 1-5 s into the start.
        assert!((1.0..=5.0).contains(&throttled.at), "{pauses:?}");
    } else {
        // Throttled later (the relay came up after a few refusals): the 4 s floor's upper half.
        assert!((2.0..=4.0).contains(&throttled.secs), "{pauses:?}");
    }
    let calls = emu.bodies("RegisterUsage");
    assert_eq!(calls.len(), 2, "the throttled call and the admitting one reached the emulator: {calls:?}");
}

/// The egress proxy (or a mesh sidecar) not listening yet: the tunnel never opened, nothing was sent
/// to AWS, and the retry comes as soon; once the proxy is up the start goes through it.
#[test]
fn an_egress_proxy_not_listening_yet_is_retried_within_half_a_second() {
    let (emu, https) = crate::proxy::emulator();
    let proxy = Tinyproxy::start("");
    let to = SocketAddr::from(([127, 0, 0, 1], proxy.port));
    let dir = scratch();
    let port = closed_port();
    let down = format!("http://127.0.0.1:{port}");
    let env = [("AWS_ENDPOINT_URL_MARKETPLACE_METERING", https.clone()), ("HTTPS_PROXY", down.clone())];
    let (code, log) = start_before_the_endpoint(&emu, dir.path(), &env, port, to);
    assert_eq!(code, Some(0), "not admitted:\n{log}");
    let refusal =
        format!("cannot connect to the proxy {down} (HTTPS_PROXY) to reach {}", https.trim_start_matches("https://"));
    assert!(log.lines().any(|l| l.starts_with("mpgate: RegisterUsage attempt 1: ") && l.contains(&refusal)), "{log}");
    let pauses = pauses(&log);
    assert!(refused_then(&pauses, &log).is_empty(), "admitted at the first attempt that reached it: {pauses:?}");
    assert_eq!(emu.bodies("RegisterUsage").len(), 1);
    assert_eq!(proxy.connects().len(), 1, "one tunnel, once the proxy was up: {:?}", proxy.connects());
}
