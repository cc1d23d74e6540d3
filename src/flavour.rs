//! Every difference between mpgate's two flavours, in the one file a reviewer audits for them.
//!
//! The release flavour (the default build) talks only to the real AWS endpoints, trusts only the
//! compiled-in TLS roots and the baked keys, and reads no test input. The test flavour (cargo feature
//! `insecure-test-endpoints`, which build.rs refuses to compile without `MPGATE_INSECURE_TEST_BUILD`)
//! can be pointed at the emulator, and says so on every run. No other module has a `cfg` of that
//! feature: each asks the switch below, and a test fails if any other file under src/ names it.
//!
//! | switch | release | test |
//! |---|---|---|
//! | `extra_trusted_keys` | none | the emulator's public key, for every product and key version |
//! | `endpoint_override` | never, whatever the environment says | the service's `AWS_ENDPOINT_URL_*`, then `AWS_ENDPOINT_URL` |
//! | `test_ca` | none | the emulator's HTTPS test CA (testdata/emulator-tls) |
//! | `clock_offset` | 0 | `MPGATE_TEST_CLOCK_OFFSET` seconds added to the metering sender's clock |
//! | `spread_seed` | none: slots drawn from the OS | `MPGATE_TEST_SPREAD_SEED`: the metering slots drawn from this seed |
//! | `NAME` and the texts | `release`, no warning | `test`, a warning on every run, in `version` and in `check` |
#![forbid(unsafe_code)]

use crate::platform::Env;

/// Whether this binary is the test flavour.
const TEST: bool = cfg!(feature = "insecure-test-endpoints");

/// What `mpgate version` and `mpgate check` call this flavour.
pub const NAME: &str = if TEST { "test" } else { "release" };

/// Public keys (SubjectPublicKeyInfo DER) trusted besides the baked ones, for every product and key
/// version: the gate's answers and the gate pass may be signed with them.
pub fn extra_trusted_keys() -> &'static [&'static [u8]] {
    #[cfg(feature = "insecure-test-endpoints")]
    return &[TEST_KEY_DER];
    #[cfg(not(feature = "insecure-test-endpoints"))]
    &[]
}

/// The emulator's public key (testdata/keys/emulator.pub.pem), validated and converted by build.rs.
#[cfg(feature = "insecure-test-endpoints")]
const TEST_KEY_DER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/emulator-test-key.der"));

/// The endpoint URL a hand-built AWS client sends to instead of the SDK's regional endpoint;
/// `variable` is the service's own `AWS_ENDPOINT_URL_*`. Always `None` in the release flavour, which
/// accepts only a VPC endpoint's name there, by the one rule of `aws::vpce` that both flavours share.
pub fn endpoint_override(env: &dyn Env, variable: &str) -> Option<String> {
    if TEST {
        env.get(variable).or_else(|| env.get("AWS_ENDPOINT_URL"))
    } else {
        None
    }
}

/// A certificate authority (PEM) trusted besides the compiled-in roots: the emulator's HTTPS test
/// CA, whose private key is in the repository, so the TLS path can be tested on loopback. Nothing at
/// run time can add a root in either flavour.
pub fn test_ca() -> Option<&'static [u8]> {
    #[cfg(feature = "insecure-test-endpoints")]
    return Some(include_bytes!("../testdata/emulator-tls/ca.pem"));
    #[cfg(not(feature = "insecure-test-endpoints"))]
    None
}

/// Seconds added to the metering sender's clock, so tests can put the pod just before an hour
/// boundary: `MPGATE_TEST_CLOCK_OFFSET` in the test flavour, always 0 in the release flavour.
pub fn clock_offset(env: &dyn Env) -> u64 {
    if TEST {
        env.get("MPGATE_TEST_CLOCK_OFFSET").and_then(|v| v.parse().ok()).unwrap_or(0)
    } else {
        0
    }
}

/// The seed the metering sender draws its slots in the hour from (`metering::spread`), so a test can
/// repeat a draw: `MPGATE_TEST_SPREAD_SEED` in the test flavour, always `None` (the OS's randomness)
/// in the release flavour.
pub fn spread_seed(env: &dyn Env) -> Option<u64> {
    if TEST {
        env.get("MPGATE_TEST_SPREAD_SEED").and_then(|v| v.parse().ok())
    } else {
        None
    }
}

/// The warning every run logs before anything else.
pub const RUN_WARNING: Option<&str> = if TEST {
    Some("test flavour (insecure-test-endpoints): honours AWS_ENDPOINT_URL and trusts the public emulator key; never ship this binary")
} else {
    None
};

/// The line `mpgate version` prints after its first.
pub const VERSION_WARNING: Option<&str> = if TEST {
    Some("WARNING: test flavour: honours AWS_ENDPOINT_URL and trusts the public emulator key; never ship it\n")
} else {
    None
};

/// `mpgate check`'s flavour row.
pub const CHECK_SUMMARY: &str = if TEST {
    "test flavour: honours AWS_ENDPOINT_URL and trusts the public emulator key"
} else {
    "release: real AWS endpoints only, compiled-in TLS roots"
};

/// The fix `mpgate check` gives for the flavour; `None` when the row passes.
pub const CHECK_FIX: Option<&str> =
    if TEST { Some("ship the release flavour (a build without --features insecure-test-endpoints)") } else { None };

/// What `mpgate check` says the endpoint variables it found do to the Metering calls.
pub const OVERRIDE_EFFECT: &str = if TEST {
    "honoured for Metering by this test flavour"
} else {
    "the release flavour ignores AWS_ENDPOINT_URL and uses a service's AWS_ENDPOINT_URL_* only when it names an interface VPC endpoint of the region, refusing to start (exit 82) otherwise"
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::env::MapEnv;

    /// An environment that sets every input a switch could read.
    fn everything_set() -> MapEnv {
        MapEnv::from_pairs(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http://127.0.0.1:2"),
            ("MPGATE_TEST_CLOCK_OFFSET", "3600"),
            ("MPGATE_TEST_SPREAD_SEED", "42"),
        ])
    }

    #[cfg(not(feature = "insecure-test-endpoints"))]
    #[test]
    fn in_the_release_flavour_every_switch_is_off() {
        let env = everything_set();
        assert_eq!(NAME, "release");
        assert!(extra_trusted_keys().is_empty());
        assert_eq!(endpoint_override(&env, "AWS_ENDPOINT_URL_MARKETPLACE_METERING"), None);
        assert_eq!(endpoint_override(&env, "AWS_ENDPOINT_URL_STS"), None);
        assert_eq!(test_ca(), None);
        assert_eq!(clock_offset(&env), 0);
        assert_eq!(spread_seed(&env), None);
        assert_eq!((RUN_WARNING, VERSION_WARNING, CHECK_FIX), (None, None, None));
    }

    #[cfg(feature = "insecure-test-endpoints")]
    #[test]
    fn in_the_test_flavour_every_switch_is_on() {
        use rsa::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
        use rustls::pki_types::pem::PemObject as _;
        let env = everything_set();
        assert_eq!(NAME, "test");
        let emulator = rsa::RsaPublicKey::from_public_key_pem(include_str!("../testdata/keys/emulator.pub.pem"))
            .expect("the emulator key")
            .to_public_key_der()
            .expect("DER");
        assert_eq!(extra_trusted_keys(), [emulator.as_bytes()]);
        let metering = endpoint_override(&env, "AWS_ENDPOINT_URL_MARKETPLACE_METERING");
        assert_eq!(metering.as_deref(), Some("http://127.0.0.1:2"), "the service's variable first");
        assert_eq!(endpoint_override(&env, "AWS_ENDPOINT_URL_STS").as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(endpoint_override(&MapEnv::default(), "AWS_ENDPOINT_URL_STS"), None);
        let ca = test_ca().expect("the test CA");
        assert!(rustls::pki_types::CertificateDer::from_pem_slice(ca).is_ok());
        assert_eq!(clock_offset(&env), 3600);
        assert_eq!(clock_offset(&MapEnv::from_pairs(&[("MPGATE_TEST_CLOCK_OFFSET", "soon")])), 0);
        assert_eq!(spread_seed(&env), Some(42));
        assert_eq!(spread_seed(&MapEnv::default()), None);
        assert!(RUN_WARNING.is_some() && VERSION_WARNING.is_some() && CHECK_FIX.is_some());
    }

    /// Every difference between the flavours is in this file: no other file under src/ names the
    /// feature, in code, strings or comments.
    #[test]
    fn no_other_file_under_src_names_the_feature() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![src.clone()];
        let mut files = Vec::new();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 40, "walked only {} files", files.len());
        let feature = "insecure-test-endpoints";
        let named: Vec<_> = files
            .iter()
            .filter(|f| **f != src.join("flavour.rs"))
            .filter(|f| std::fs::read(f).expect("readable").windows(feature.len()).any(|w| w == feature.as_bytes()))
            .collect();
        assert!(named.is_empty(), "only src/flavour.rs may name the feature; also named in {named:?}");
    }
}
