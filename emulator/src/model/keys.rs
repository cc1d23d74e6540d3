//! The RSA test keys, embedded so the emulator needs no files at run time. Test keys only: their
//! private halves are public in this repository, which is why only the test flavour trusts them.
//!
//! Also owns the fast signing path: every RegisterUsage answer carries a fresh PS256 signature, and the
//! `rsa` crate's RSASSA-PSS is slow enough to show in a gate's start-up as the benchmarks see it
//! (docs/performance.md). ring signs the same several times faster, so each key is converted to a
//! ring key pair once, on first use, and cached by its modulus.

use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PSS_SHA256};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub const EMULATOR: &str = include_str!("../../../testdata/keys/emulator.key.pem");
pub const EMULATOR_PUB: &str = include_str!("../../../testdata/keys/emulator.pub.pem");
pub const PAID_V1: &str = include_str!("../../../testdata/keys/paid-v1.key.pem");
pub const PAID_V1_PUB: &str = include_str!("../../../testdata/keys/paid-v1.pub.pem");
pub const PAID_V2: &str = include_str!("../../../testdata/keys/paid-v2.key.pem");
pub const PAID_V2_PUB: &str = include_str!("../../../testdata/keys/paid-v2.pub.pem");
pub const FREE_V1: &str = include_str!("../../../testdata/keys/free-v1.key.pem");
pub const FREE_V1_PUB: &str = include_str!("../../../testdata/keys/free-v1.pub.pem");
pub const ATTACKER: &str = include_str!("../../../testdata/keys/attacker.key.pem");
pub const ATTACKER_PUB: &str = include_str!("../../../testdata/keys/attacker.pub.pem");

/// ring key pairs by modulus (big-endian bytes). `None` records a key ring rejects (ring only takes
/// 2048–8192-bit keys), so it is not converted again.
type Cache = Mutex<HashMap<Vec<u8>, Option<Arc<RsaKeyPair>>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

fn ring_pair(key: &RsaPrivateKey) -> Option<Arc<RsaKeyPair>> {
    let modulus = key.n().to_bytes_be();
    // A poisoned lock only means another thread panicked mid-insert; the map itself is still usable.
    let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
    map.entry(modulus)
        .or_insert_with(|| {
            let der = key.to_pkcs8_der().ok()?;
            RsaKeyPair::from_pkcs8(der.as_bytes()).ok().map(Arc::new)
        })
        .clone()
}

/// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 7518 PS256) of `message`, by ring.
/// `None` if ring does not take this key; the caller then signs with the `rsa` crate.
pub fn ps256_ring(key: &RsaPrivateKey, message: &[u8]) -> Option<Vec<u8>> {
    let pair = ring_pair(key)?;
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(&RSA_PSS_SHA256, &SystemRandom::new(), message, &mut sig).ok()?;
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::signature::Verifier;

    fn verifies(public_pem: &str, message: &[u8], sig: &[u8]) -> bool {
        let key = rsa::RsaPublicKey::from_public_key_pem(public_pem).expect("test key");
        let sig = rsa::pss::Signature::try_from(sig).expect("signature");
        rsa::pss::VerifyingKey::<sha2::Sha256>::new(key).verify(message, &sig).is_ok()
    }

    /// Every test key takes the ring path (not the `rsa` fallback), and the `rsa` crate's PS256 verifier
    /// accepts what it signs; two signatures of one message differ (PSS is salted).
    #[test]
    fn ring_signs_with_every_test_key_and_rsa_verifies() {
        for (private, public) in [
            (EMULATOR, EMULATOR_PUB),
            (PAID_V1, PAID_V1_PUB),
            (PAID_V2, PAID_V2_PUB),
            (FREE_V1, FREE_V1_PUB),
            (ATTACKER, ATTACKER_PUB),
        ] {
            let key = RsaPrivateKey::from_pkcs8_pem(private).expect("test key");
            let a = ps256_ring(&key, b"header.payload").expect("ring takes the test key");
            let b = ps256_ring(&key, b"header.payload").expect("ring takes the test key (cached)");
            assert_eq!(a.len(), 256);
            assert_ne!(a, b, "PSS signatures carry a random salt");
            assert!(verifies(public, b"header.payload", &a) && verifies(public, b"header.payload", &b));
            assert!(!verifies(public, b"header.payloaX", &a));
        }
    }
}
