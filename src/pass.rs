//! The gate pass: what a workload checks, with no AWS access, to know it was started through a real
//! gate, recently, in this container.
//!
//! The pass is the RegisterUsage JWT the gate verified (`MPGATE_SIGNATURE`). It is signed by AWS
//! Marketplace with the seller's product key and echoes the nonce the gate made:
//! `mpgate1:<unix seconds>:<hostname>:<128 random bits>`. A workload accepts it when the signature
//! verifies under one of its product keys, the claims name that key's product code and version, the
//! nonce's hostname is this container's hostname, and the nonce was made at most `max_age` ago (and
//! AWS issued the token within 15 minutes of it). A token copied from another container fails the
//! hostname check; one from an earlier start fails the age check. What it cannot stop: a buyer who
//! replaces the ENTRYPOINT *and* the workload's own check (see docs/security.md).
#![forbid(unsafe_code)]

use crate::entitlement::{jwt, nonce};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default freshness of a pass: a workload checks it right after the exec.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Tolerated clock difference between the gate's nonce time and now, in the future direction.
const FUTURE_SKEW: u64 = 60;

/// A product key the workload trusts.
#[derive(Clone, Debug)]
pub struct PassKey {
    /// Product code the key belongs to.
    pub product_code: String,
    /// Key version.
    pub version: u32,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// Whether this key vouches for every code in the list (the emulator test key).
    pub any_code: bool,
}

impl PassKey {
    /// A key from PEM (`BEGIN PUBLIC KEY`), for workloads that embed their product keys.
    pub fn from_pem(product_code: &str, version: u32, pem: &str) -> Result<PassKey, String> {
        use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
        let key =
            rsa::RsaPublicKey::from_public_key_pem(pem.trim()).map_err(|e| format!("not a PEM public key: {e}"))?;
        let der = key.to_public_key_der().map_err(|e| format!("cannot encode the key: {e}"))?;
        Ok(PassKey {
            product_code: product_code.to_string(),
            version,
            spki_der: der.as_bytes().to_vec(),
            any_code: false,
        })
    }
}

/// What the check compares against.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Oldest acceptable pass.
    pub max_age: Duration,
    /// The local clock.
    pub now: SystemTime,
    /// This container's hostname.
    pub hostname: String,
}

impl Policy {
    /// `max_age` with the real clock and hostname.
    pub fn here(max_age: Duration) -> Policy {
        Policy { max_age, now: SystemTime::now(), hostname: nonce::hostname() }
    }
}

/// A verified pass.
#[derive(Clone, PartialEq, Eq)]
pub struct Pass {
    /// Product code AWS verified.
    pub product_code: String,
    /// Key version it verified under.
    pub key_version: u32,
    /// When the gate made the nonce (unix seconds).
    pub started_at: u64,
    /// Seconds between that and the check.
    pub age_secs: u64,
    /// The hostname bound into the nonce.
    pub hostname: String,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pass")
            .field("product_code", &self.product_code)
            .field("key_version", &self.key_version)
            .field("started_at", &self.started_at)
            .field("age_secs", &self.age_secs)
            .field("hostname", &self.hostname)
            .finish()
    }
}

/// Verify `token` (the value of `MPGATE_SIGNATURE`) against `keys` and `policy`.
pub fn verify(token: &str, keys: &[PassKey], policy: &Policy) -> Result<Pass, String> {
    let ders: Vec<&[u8]> = keys.iter().map(|k| k.spki_der.as_slice()).collect();
    let (index, claims) = jwt::verified_claims(token, &ders)?;
    let signer = &keys[index];
    let bound = if signer.any_code {
        keys.iter().any(|k| !k.any_code && k.product_code == claims.product_code && k.version == claims.key_version)
    } else {
        signer.product_code == claims.product_code && signer.version == claims.key_version
    };
    if !bound {
        return Err(format!(
            "the token names product {} key version {}, which is not the key that signed it",
            claims.product_code, claims.key_version
        ));
    }
    let made = nonce::parse(&claims.nonce).ok_or("the token's nonce was not made by mpgate")?;
    let here = nonce::host_part(&policy.hostname);
    if made.host != here {
        return Err(format!("the pass was made on host {:?}, this container is {here:?}", made.host));
    }
    let now = policy.now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if made.made_at > now + FUTURE_SKEW {
        return Err(format!("the pass was made {}s in the future", made.made_at - now));
    }
    let age_secs = now.saturating_sub(made.made_at);
    if age_secs > policy.max_age.as_secs() {
        return Err(format!("the pass is {age_secs}s old, older than {}s", policy.max_age.as_secs()));
    }
    if claims.issued_at.abs_diff(made.made_at) > jwt::IAT_WINDOW.as_secs() {
        return Err("AWS issued the token long before or after the gate made its nonce".into());
    }
    Ok(Pass {
        product_code: claims.product_code,
        key_version: claims.key_version,
        started_at: made.made_at,
        age_secs,
        hostname: made.host,
    })
}

/// The keys baked into this binary, plus the flavour's extra keys (none in the release flavour).
pub fn baked_keys() -> Vec<PassKey> {
    let mut keys: Vec<PassKey> = crate::identity::BAKED
        .as_ref()
        .map(|b| {
            b.products
                .iter()
                .flat_map(|p| {
                    p.keys.iter().map(|k| PassKey {
                        product_code: p.code.to_string(),
                        version: k.version,
                        spki_der: k.der.to_vec(),
                        any_code: false,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    keys.extend(crate::flavour::extra_trusted_keys().iter().map(|der| PassKey {
        product_code: String::new(),
        version: 0,
        spki_der: der.to_vec(),
        any_code: true,
    }));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const V1: &str = include_str!("../testdata/keys/paid-v1.key.pem");
    const V1_PUB: &str = include_str!("../testdata/keys/paid-v1.pub.pem");
    const V2_PUB: &str = include_str!("../testdata/keys/paid-v2.pub.pem");

    fn token(claims: serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "PS256"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key =
            rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(rsa::RsaPrivateKey::from_pkcs8_pem(V1).expect("key"));
        let sig = key.sign_with_rng(&mut rsa::rand_core::OsRng, input.as_bytes()).to_vec();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn claims(version: u32, made_at: u64, host: &str) -> serde_json::Value {
        json!({"productCode": "prod1", "publicKeyVersion": version, "iat": made_at + 1,
               "nonce": format!("mpgate1:{made_at}:{host}:0123456789abcdef0123456789abcdef")})
    }

    fn keys() -> Vec<PassKey> {
        vec![PassKey::from_pem("prod1", 1, V1_PUB).expect("v1"), PassKey::from_pem("prod1", 2, V2_PUB).expect("v2")]
    }

    fn policy(host: &str, now: u64) -> Policy {
        Policy { max_age: DEFAULT_MAX_AGE, now: UNIX_EPOCH + Duration::from_secs(now), hostname: host.into() }
    }

    #[test]
    fn a_fresh_pass_for_this_host_verifies() {
        let pass = verify(&token(claims(1, NOW, "web-1")), &keys(), &policy("web-1", NOW + 7)).expect("valid");
        assert_eq!((pass.product_code.as_str(), pass.key_version, pass.age_secs), ("prod1", 1, 7));
    }

    #[test]
    fn replay_elsewhere_later_or_with_the_wrong_key_binding_is_refused() {
        let cases = [
            (token(claims(1, NOW, "web-1")), policy("web-2", NOW), "made on host"),
            (token(claims(1, NOW, "web-1")), policy("web-1", NOW + 301), "older than 300s"),
            (token(claims(1, NOW + 120, "web-1")), policy("web-1", NOW), "in the future"),
            (token(claims(2, NOW, "web-1")), policy("web-1", NOW), "not the key that signed it"),
            (
                token(json!({"productCode": "prod1", "publicKeyVersion": 1, "iat": NOW, "nonce": "uuid-like"})),
                policy("web-1", NOW),
                "not made by mpgate",
            ),
            (
                token(json!({"productCode": "prod1", "publicKeyVersion": 1, "iat": NOW - 3600,
                          "nonce": format!("mpgate1:{NOW}:web-1:0123456789abcdef0123456789abcdef")})),
                policy("web-1", NOW),
                "long before or after",
            ),
        ];
        for (t, p, want) in cases {
            let err = verify(&t, &keys(), &p).expect_err(want);
            assert!(err.contains(want), "wanted {want:?}, got {err:?}");
        }
    }

    #[test]
    fn a_pass_is_never_printed_by_debug() {
        let pass = verify(&token(claims(1, NOW, "h")), &keys(), &policy("h", NOW)).expect("valid");
        assert!(!format!("{pass:?}").contains("0123456789abcdef"), "Debug shows no nonce or token");
    }
}
