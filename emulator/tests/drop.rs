//! Dropping the handle closes every port, at once: when `Drop` returns, no listener (main, HTTPS,
//! ECS agent, each IMDS) accepts a connection, and the process holds no socket the emulator opened,
//! not even one of a connection that was waiting on a `Fault::Hang` answer.
//!
//! Its own test binary: the socket census below reads the whole process's descriptor table, so no
//! other test may open or close sockets meanwhile.

use mpgate_emulator::{Emulator, Fault, Listen, World};
use socket2::{Domain, Socket, Type};
use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The TCP sockets this process has open, as `socket:[inode]` (the links under /proc/self/fd whose
/// inode /proc/net/tcp lists). Other sockets, such as the pair tokio keeps for signals for the
/// life of the process, are not the emulator's ports.
fn open_tcp_sockets() -> BTreeSet<String> {
    let mut tcp = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        tcp.extend(text.lines().skip(1).filter_map(|l| l.split_whitespace().nth(9)).map(|i| format!("socket:[{i}]")));
    }
    let dir = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd");
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|t| tcp.contains(t))
        .collect()
}

fn socket_of(fd: &impl AsRawFd) -> String {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("fd link");
    link.display().to_string()
}

/// `http://127.0.0.1:PORT/...` → 127.0.0.1:PORT.
fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).parse().unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// A client socket bound to an ephemeral port now, to connect later. Bound while every emulator
/// port is still taken, so its source port differs from each port it will probe: a connect to a
/// closed loopback port cannot be answered by the probe itself (TCP simultaneous open, which a
/// probe that picked its source port after the close could hit).
fn probe() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind probe");
    s
}

#[test]
fn drop_closes_every_port_and_connection_before_it_returns() {
    let before = open_tcp_sockets();
    let listen = Listen {
        ecs_agent: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        tls_main: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Listen::default()
    };
    let emu = Emulator::start_with(World::demo(), listen).expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let mut ports = vec![addr_of(&emu.url()), addr_of(&emu.tls_url().expect("tls"))];
    for id in emu.workload_ids() {
        let env = emu.workload_env(&id, dir.path()).expect("env");
        for (k, v) in env {
            if k == "AWS_EC2_METADATA_SERVICE_ENDPOINT" || v.contains("/v2/credentials/") {
                ports.push(addr_of(&v));
            }
        }
    }
    ports.sort();
    ports.dedup();
    assert!(ports.len() >= 4, "main, HTTPS, the ECS agent and at least one IMDS: {ports:?}");

    // A request the emulator holds open forever, and an idle keep-alive connection.
    emu.inject("RegisterUsage", Fault::Hang);
    let mut hung = TcpStream::connect(addr_of(&emu.url())).expect("connect");
    let request =
        "POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: AWSMPMeteringService.RegisterUsage\r\ncontent-length: 2\r\n\r\n{}";
    hung.write_all(request.as_bytes()).expect("send");
    let idle = TcpStream::connect(addr_of(&emu.url())).expect("connect");
    let waited = Instant::now();
    while !emu.requests().iter().any(|r| r.op == "RegisterUsage") {
        assert!(waited.elapsed() < Duration::from_secs(10), "the hung request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let probes: Vec<(SocketAddr, Socket)> = ports.iter().map(|p| (*p, probe())).collect();
    let ours: BTreeSet<String> = probes
        .iter()
        .map(|(_, s)| socket_of(s))
        .chain([socket_of(&hung), socket_of(&idle)])
        .chain(before.iter().cloned())
        .collect();

    drop(emu);

    let left: Vec<String> = open_tcp_sockets().difference(&ours).cloned().collect();
    assert!(left.is_empty(), "sockets of the emulator still open after Drop: {left:?}");
    for (port, s) in probes {
        let e = s.connect(&port.into()).err().unwrap_or_else(|| panic!("{port} still accepts after Drop"));
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{port}: {e}");
    }
    // The hung client sees its connection end (EOF or reset) instead of waiting forever.
    hung.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 64];
    match hung.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected answer: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => assert!(matches!(e.kind(), ErrorKind::ConnectionReset), "hung connection: {e}"),
    }
}
