//! The gate pass: what a workload checks, with no AWS access, to know it was started through a real
//! gate, recently, in this container.
//!
//! The pass is the RegisterUsage JWT the gate verified (`MPGATE_SIGNATURE`). It is signed by AWS
//! Marketplace with the seller's product key and echoes the nonce the gate made:
//! `mpgate1:<unix seconds>:<hostname>:<128 random bits>`. A workload accepts it when the signature
//! verifies under one of its product keys, the claims name that key's product code and version, the
//! nonce's hostname is this container's hostname, and the nonce was made at most `max_age` ago (and
//! AWS issued the token within 15 minutes of it). A token copied from another container fails the
//! hostname check; one from an earlier start fails the age check. The other `MPGATE_*` variables are
//! only a description: CMD runs after the gate and can rewrite them, so [`environment_agrees`]
//! refuses an environment whose product code, tier, key version or nonce differ from the pass.
//!
//! [`verify_requested`] checks the answer of `mpgate pass request`: a token for a nonce the workload
//! chose itself, so no pass minted earlier or elsewhere can match it. What neither stops: a buyer who
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
    /// The host part bound into the nonce (`entitlement::nonce::host_part` of the hostname).
    pub hostname: String,
    /// The nonce AWS signed.
    pub nonce: String,
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
    signed_as_named(keys, index, &claims)?;
    let made = nonce::parse(&claims.nonce).ok_or("the token's nonce was not made by mpgate")?;
    if policy.hostname.is_empty() {
        return Err("this container has no hostname, so no pass can be bound to it".into());
    }
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
        nonce: claims.nonce,
    })
}

/// Whether the product code and key version the claims name are those of the key that verified them
/// (`keys[index]`; for the emulator's test key, of some baked key).
fn signed_as_named(keys: &[PassKey], index: usize, claims: &jwt::Claims) -> Result<(), String> {
    let signer = &keys[index];
    let bound = if signer.any_code {
        keys.iter().any(|k| !k.any_code && k.product_code == claims.product_code && k.version == claims.key_version)
    } else {
        signer.product_code == claims.product_code && signer.version == claims.key_version
    };
    if bound {
        return Ok(());
    }
    Err(format!(
        "the token names product {} key version {}, which is not the key that signed it",
        claims.product_code, claims.key_version
    ))
}

/// Whether the workload's `MPGATE_PRODUCT_CODE`, `MPGATE_TIER`, `MPGATE_PUBLIC_KEY_VERSION` and
/// `MPGATE_NONCE` (read through `var`) say what the verified `pass` says; `tier` is the tier the
/// workload maps the pass's product code to. A variable that is missing or differs is an
/// environment changed after the gate: the error names it, and the tier to trust is the pass's.
pub fn environment_agrees(pass: &Pass, tier: &str, var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    let version = pass.key_version.to_string();
    let expected = [
        ("MPGATE_PRODUCT_CODE", pass.product_code.as_str()),
        ("MPGATE_TIER", tier),
        ("MPGATE_PUBLIC_KEY_VERSION", version.as_str()),
        ("MPGATE_NONCE", pass.nonce.as_str()),
    ];
    for (name, want) in expected {
        match var(name) {
            Some(v) if v == want => {}
            found => {
                let found = found.map_or_else(|| "unset".to_string(), |v| format!("{:?}", shown(&v)));
                let said = if name == "MPGATE_NONCE" { "its own".to_string() } else { format!("{want:?}") };
                return Err(format!(
                    "{name} is {found} but the pass says {said} (product {}, tier {tier}): the environment was changed after the gate; trust the pass, not the variables",
                    pass.product_code
                ));
            }
        }
    }
    Ok(())
}

/// A value from the environment as it appears in a refusal line: at most 64 characters.
fn shown(v: &str) -> String {
    match v.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &v[..cut]),
        None => v.to_string(),
    }
}

/// A verified answer of `mpgate pass request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requested {
    /// Product code AWS verified.
    pub product_code: String,
    /// Key version it verified under.
    pub key_version: u32,
    /// When AWS issued it (unix seconds).
    pub issued_at: u64,
}

/// Verify `token`, the output of `mpgate pass request NONCE`, against `keys`: signed by AWS under one
/// of them, naming that key's product code and version, echoing `nonce` (the one the workload
/// generated for this request), and issued within 15 minutes of `now`.
pub fn verify_requested(token: &str, keys: &[PassKey], nonce: &str, now: SystemTime) -> Result<Requested, String> {
    let ders: Vec<&[u8]> = keys.iter().map(|k| k.spki_der.as_slice()).collect();
    let (index, claims) = jwt::verified_claims(token, &ders)?;
    signed_as_named(keys, index, &claims)?;
    if claims.nonce != nonce {
        return Err("the token answers another nonce than the one this workload generated".into());
    }
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if claims.issued_at.abs_diff(now) > jwt::IAT_WINDOW.as_secs() {
        return Err(format!("AWS issued the token {}s away from now", claims.issued_at.abs_diff(now)));
    }
    Ok(Requested { product_code: claims.product_code, key_version: claims.key_version, issued_at: claims.issued_at })
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
    fn host_parts_do_not_collide_and_an_empty_hostname_binds_nothing() {
        let t = token(claims(1, NOW, "web1"));
        let err = verify(&t, &keys(), &policy("web_1", NOW)).expect_err("web_1 is not web1");
        assert!(err.contains("made on host \"web1\", this container is \"web_5f1\""), "{err}");
        verify(&token(claims(1, NOW, "web_5f1")), &keys(), &policy("web_1", NOW)).expect("web_1's own pass");
        let err = verify(&token(claims(1, NOW, "")), &keys(), &policy("", NOW)).expect_err("empty host");
        assert!(err.contains("has no hostname"), "{err}");
        let long = "p".repeat(70);
        let here = nonce::host_part(&long);
        verify(&token(claims(1, NOW, &here)), &keys(), &policy(&long, NOW)).expect("a long hostname's own pass");
        let err = verify(&token(claims(1, NOW, &here)), &keys(), &policy(&"p".repeat(71), NOW)).expect_err("71");
        assert!(err.contains("made on host"), "{err}");
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        move |name: &str| owned.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn an_environment_rewritten_after_the_gate_is_refused() {
        let pass = verify(&token(claims(1, NOW, "h")), &keys(), &policy("h", NOW)).expect("valid");
        let nonce = pass.nonce.clone();
        let good = [
            ("MPGATE_PRODUCT_CODE", "prod1"),
            ("MPGATE_TIER", "free"),
            ("MPGATE_PUBLIC_KEY_VERSION", "1"),
            ("MPGATE_NONCE", nonce.as_str()),
        ];
        environment_agrees(&pass, "free", env_of(&good)).expect("as the gate left it");
        let cases: [(&str, Option<&str>, &str); 6] = [
            ("MPGATE_TIER", Some("paid"), "MPGATE_TIER is \"paid\" but the pass says \"free\""),
            ("MPGATE_PRODUCT_CODE", Some("prod2"), "MPGATE_PRODUCT_CODE is \"prod2\" but the pass says \"prod1\""),
            ("MPGATE_PUBLIC_KEY_VERSION", Some("+1"), "MPGATE_PUBLIC_KEY_VERSION is \"+1\""),
            ("MPGATE_NONCE", Some("mpgate1:1:h:00"), "MPGATE_NONCE is \"mpgate1:1:h:00\" but the pass says its own"),
            ("MPGATE_TIER", None, "MPGATE_TIER is unset"),
            ("MPGATE_NONCE", None, "MPGATE_NONCE is unset"),
        ];
        for (name, value, want) in cases {
            let mut env: Vec<(&str, &str)> = good.iter().copied().filter(|(k, _)| *k != name).collect();
            if let Some(v) = value {
                env.push((name, v));
            }
            let err = environment_agrees(&pass, "free", env_of(&env)).expect_err(want);
            assert!(err.contains(want) && err.contains("tier free"), "wanted {want:?}, got {err:?}");
        }
    }

    #[test]
    fn a_requested_pass_verifies_only_for_the_nonce_the_workload_chose() {
        let at = UNIX_EPOCH + Duration::from_secs(NOW + 5);
        let mine = "3f1c0e9a7b2d4c6e8f0a1b2c3d4e5f60";
        let answer = |nonce: &str, iat: u64| {
            token(json!({"productCode": "prod1", "publicKeyVersion": 1, "iat": iat, "nonce": nonce}))
        };
        let ok = verify_requested(&answer(mine, NOW), &keys(), mine, at).expect("own nonce");
        assert_eq!(ok, Requested { product_code: "prod1".into(), key_version: 1, issued_at: NOW });
        let minted_elsewhere = answer("mpgate1:1800000000:web-1:0123456789abcdef0123456789abcdef", NOW);
        let err = verify_requested(&minted_elsewhere, &keys(), mine, at).expect_err("someone else's nonce");
        assert!(err.contains("another nonce"), "{err}");
        let err = verify_requested(&answer(mine, NOW - 3600), &keys(), mine, at).expect_err("old");
        assert!(err.contains("away from now"), "{err}");
        let wrong_version = token(json!({"productCode": "prod1", "publicKeyVersion": 2, "iat": NOW, "nonce": mine}));
        let err = verify_requested(&wrong_version, &keys(), mine, at).expect_err("v2 claim under v1 key");
        assert!(err.contains("not the key that signed it"), "{err}");
    }

    #[test]
    fn a_pass_is_never_printed_by_debug() {
        let pass = verify(&token(claims(1, NOW, "h")), &keys(), &policy("h", NOW)).expect("valid");
        assert!(!format!("{pass:?}").contains("0123456789abcdef"), "Debug shows no nonce or token");
    }
}
