//! The RSA test keys, embedded so the emulator needs no files at run time. Test keys only: their
//! private halves are public in this repository, which is why only the test flavour trusts them.

pub const EMULATOR: &str = include_str!("../../testdata/keys/emulator.key.pem");
pub const EMULATOR_PUB: &str = include_str!("../../testdata/keys/emulator.pub.pem");
pub const PAID_V1: &str = include_str!("../../testdata/keys/paid-v1.key.pem");
pub const PAID_V1_PUB: &str = include_str!("../../testdata/keys/paid-v1.pub.pem");
pub const PAID_V2: &str = include_str!("../../testdata/keys/paid-v2.key.pem");
pub const PAID_V2_PUB: &str = include_str!("../../testdata/keys/paid-v2.pub.pem");
pub const FREE_V1: &str = include_str!("../../testdata/keys/free-v1.key.pem");
pub const FREE_V1_PUB: &str = include_str!("../../testdata/keys/free-v1.pub.pem");
pub const ATTACKER: &str = include_str!("../../testdata/keys/attacker.key.pem");
pub const ATTACKER_PUB: &str = include_str!("../../testdata/keys/attacker.pub.pem");
