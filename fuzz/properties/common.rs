//! What the targets share: the fixed key, clock and nonce the seed tokens were made for
//! (fuzz/make-seeds), and the one property every token path must keep.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const PRODUCT: &str = "prod-fuzz";
pub const NOW: u64 = 1_800_000_000;
pub const NONCE: &str = "mpgate1:1800000000:fuzz-host:0123456789abcdef0123456789abcdef";

/// `header.payload` of every token make-seeds signed with testdata/keys/paid-v1.key.pem.
const SIGNED: &str = include_str!("../signed-inputs.txt");

pub static KEY: LazyLock<mpgate::pass::PassKey> = LazyLock::new(|| {
    mpgate::pass::PassKey::from_pem(PRODUCT, 1, include_str!("../../testdata/keys/paid-v1.pub.pem"))
        .expect("testdata/keys/paid-v1.pub.pem")
});

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW + 5)
}

/// The fuzzer cannot forge a PSS signature, so any token a verifier accepted must carry the
/// signing input of a token make-seeds signed; anything else is a verifier that accepts forgeries.
pub fn assert_signed_here(token: &str, what: &str) {
    let mut parts = token.splitn(3, '.');
    let input = match (parts.next(), parts.next()) {
        (Some(h), Some(p)) => &token[..h.len() + 1 + p.len()],
        _ => token,
    };
    assert!(SIGNED.lines().any(|l| l == input), "{what} accepted a token this harness never signed: {token:?}");
}
