//! Dropping the handle closes every port.

use mpgate_emulator::{Emulator, World};

#[test]
fn drop_closes_the_ports() {
    let emu = Emulator::start(World::demo()).expect("start");
    let addr = emu.url().trim_start_matches("http://").to_string();
    drop(emu);
    // Connecting to a closed loopback port in the ephemeral range can "succeed" by TCP self-connect
    // (the kernel picks that very port as the source: simultaneous open). That is not a listener.
    if let Ok(s) = std::net::TcpStream::connect(&addr) {
        assert_eq!(s.local_addr().ok(), s.peer_addr().ok(), "something still listens on {addr}");
    }
}
