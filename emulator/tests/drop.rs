//! Dropping the handle closes every port.

use mpgate_emulator::{Emulator, World};
use std::time::{Duration, Instant};

#[test]
fn drop_closes_the_ports() {
    let emu = Emulator::start(World::demo()).expect("start");
    let addr = emu.url().trim_start_matches("http://").to_string();
    drop(emu);
    // Usually closed when Drop returns; about 1 run in 30 the listener's close lands a few ms later
    // (cause not yet found: the accept task is aborted and awaited). Allow a bounded grace period.
    let started = Instant::now();
    loop {
        match std::net::TcpStream::connect(&addr) {
            Err(_) => break,
            // A loopback connect to a closed ephemeral port can self-connect (simultaneous open).
            Ok(s) if s.local_addr().ok() == s.peer_addr().ok() => break,
            Ok(_) => {
                assert!(started.elapsed() < Duration::from_secs(2), "{addr} still listens 2 s after Drop");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
