//! Its own test binary: no other emulator runs in this process, so a port freed by `Drop` cannot be
//! re-bound by a neighbouring test before the check (which made this test flaky inside world_env.rs).

use mpgate_emulator::{Emulator, World};

#[test]
fn drop_closes_the_ports() {
    let emu = Emulator::start(World::demo()).expect("start");
    let addr = emu.url().trim_start_matches("http://").to_string();
    drop(emu);
    assert!(std::net::TcpStream::connect(&addr).is_err());
}
