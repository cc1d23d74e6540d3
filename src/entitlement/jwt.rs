//! Verification of the RegisterUsage `Signature`: a compact JWS signed PS256 by AWS Marketplace.
//!
//! Rules (docs/aws-behaviour.md §3): exactly three base64url parts; header `alg` pinned to `PS256` (no `none`,
//! HS*, RS*, other PS*); RSA-PSS SHA-256, MGF1-SHA-256, 32-byte salt (RFC 7518) under one of the given
//! keys; `productCode`, `publicKeyVersion`, `nonce` equal what was sent; `iat` within a sane window.
//! AWS's documents disagree on claim casing (`productCode` in the reference code, `ProductCode` in the
//! illustrative payload), so each claim is accepted in either casing but never in both, which would
//! make the token ambiguous. The RSA arithmetic is ring's (the `rsa` crate's for keys under 2048 bits);
//! only the JWS framing is here.
#![forbid(unsafe_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tokens above this size are refused before any parsing (real ones are well under 2 KiB).
const MAX_TOKEN: usize = 16 * 1024;
/// Accepted distance between `iat` and the local clock. SigV4 already fails beyond 5 minutes of
/// skew, so a larger gap means a replayed or forged token rather than a slow clock.
pub const IAT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// What the caller sent, which the token must echo.
#[derive(Debug)]
pub struct Expected<'a> {
    /// Product code sent.
    pub product_code: &'a str,
    /// Key version sent.
    pub key_version: u32,
    /// Nonce sent.
    pub nonce: &'a str,
    /// The local clock.
    pub now: SystemTime,
}

/// The verified claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// `iat` in seconds since the epoch.
    pub issued_at: u64,
}

/// Verify `token` against `keys` (SubjectPublicKeyInfo DER) and the expected claims.
pub fn verify(token: &str, keys: &[&[u8]], expected: &Expected<'_>) -> Result<Verified, String> {
    let (_, claims) = verify_signature(token, keys)?;
    let code = claim(&claims, "productCode", "ProductCode")?;
    if code.as_str() != Some(expected.product_code) {
        return Err(format!("productCode claim {} is not the code sent ({})", shown(code), expected.product_code));
    }
    let version = claim(&claims, "publicKeyVersion", "PublicKeyVersion")?;
    if !same_version(version, expected.key_version) {
        return Err(format!(
            "publicKeyVersion claim {} is not the version sent ({})",
            shown(version),
            expected.key_version
        ));
    }
    let nonce = claim(&claims, "nonce", "Nonce")?;
    if nonce.as_str() != Some(expected.nonce) {
        return Err("nonce claim is not the nonce sent: the answer belongs to another request".into());
    }
    let issued_at = issued_at(claim(&claims, "iat", "Iat")?)?;
    let now = expected.now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if issued_at.abs_diff(now) > IAT_WINDOW.as_secs() {
        return Err(format!("iat {issued_at} is more than {}s from the local clock {now}", IAT_WINDOW.as_secs()));
    }
    Ok(Verified { issued_at })
}

/// The claims of a token whose signature verified, read with the casing rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `productCode`.
    pub product_code: String,
    /// `publicKeyVersion`.
    pub key_version: u32,
    /// `nonce`.
    pub nonce: String,
    /// `iat`, in seconds.
    pub issued_at: u64,
}

/// Check framing, algorithm and signature; return which key verified and the claims, all present
/// and well-typed. The caller decides what the claims must equal.
pub fn verified_claims(token: &str, keys: &[&[u8]]) -> Result<(usize, Claims), String> {
    let (index, claims) = verify_signature(token, keys)?;
    let text = |camel: &str, pascal: &str| -> Result<String, String> {
        claim(&claims, camel, pascal)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{camel} claim is not a string"))
    };
    let version = claim(&claims, "publicKeyVersion", "PublicKeyVersion")?;
    let key_version = key_version(version)
        .ok_or_else(|| format!("publicKeyVersion claim {} is not a positive integer", shown(version)))?;
    Ok((
        index,
        Claims {
            product_code: text("productCode", "ProductCode")?,
            key_version,
            nonce: text("nonce", "Nonce")?,
            issued_at: issued_at(claim(&claims, "iat", "Iat")?)?,
        },
    ))
}

/// Framing, `alg` pinned to PS256, signature under one of `keys`; returns the verifying key's index
/// and the payload object.
fn verify_signature(token: &str, keys: &[&[u8]]) -> Result<(usize, Map<String, Value>), String> {
    if token.len() > MAX_TOKEN {
        return Err(format!("token is {} bytes, more than {MAX_TOKEN}", token.len()));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h64, p64, s64] = parts.as_slice() else {
        return Err(format!("not a compact JWS: {} parts instead of 3", parts.len()));
    };
    let header = decode_json(h64, "header")?;
    match header.get("alg") {
        Some(Value::String(a)) if a == "PS256" => {}
        Some(other) => return Err(format!("algorithm {} is not PS256", shown(other))),
        None => return Err("header has no alg".into()),
    }
    if header.contains_key("crit") {
        return Err("header has a crit parameter this verifier does not understand".into());
    }
    let signature = decode(s64, "signature")?;
    let signing_input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
    let Some(index) = keys.iter().position(|der| verifies(der, signing_input, &signature)) else {
        return Err("signature does not verify under the baked public key for this key version".into());
    };
    Ok((index, decode_json(p64, "payload")?))
}

fn verifies(der: &[u8], input: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = rsa::RsaPublicKey::from_public_key_der(der) else {
        return false;
    };
    // ring does the RSA arithmetic when it can (2048–8192-bit keys, the size AWS uses): it is far
    // cheaper than the rsa crate's bignum code at opt-level z (docs/performance.md). Same check:
    // RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt. Smaller baked keys (the identity rules allow
    // 1024 bits) keep the rsa crate.
    use rsa::traits::PublicKeyParts;
    if key.size() >= 256 {
        let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
        let ring_key = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
        return ring_key.verify(&ring::signature::RSA_PSS_2048_8192_SHA256, input, signature).is_ok();
    }
    let Ok(sig) = rsa::pss::Signature::try_from(signature) else {
        return false;
    };
    rsa::pss::VerifyingKey::<sha2::Sha256>::new(key).verify(input, &sig).is_ok()
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, String> {
    if part.is_empty() {
        return Err(format!("{what} is empty"));
    }
    URL_SAFE_NO_PAD.decode(part).map_err(|e| format!("{what} is not base64url: {e}"))
}

fn decode_json(part: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(&decode(part, what)?) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{what} is not a JSON object")),
        Err(e) => Err(format!("{what} is not JSON: {e}")),
    }
}

/// A claim in either casing, never both.
fn claim<'a>(claims: &'a Map<String, Value>, camel: &str, pascal: &str) -> Result<&'a Value, String> {
    match (claims.get(camel), claims.get(pascal)) {
        (Some(v), None) | (None, Some(v)) => Ok(v),
        (Some(_), Some(_)) => Err(format!("token carries both {camel} and {pascal}")),
        (None, None) => Err(format!("token has no {camel} claim")),
    }
}

/// The one reading of a `publicKeyVersion` claim: a JSON integer, or a string in canonical decimal
/// (ASCII digits, no sign, no leading zero), from 1 to `u32::MAX`. AWS's reference verifier compares
/// the claim as text with the decimal form of the integer sent (docs/aws-behaviour.md §3), so `"02"`,
/// `"+2"`, `" 2"` and `2.0` are not version 2.
pub fn key_version(v: &Value) -> Option<u32> {
    let n = match v {
        Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0') => s.parse().ok(),
        _ => None,
    };
    n.filter(|v| *v >= 1)
}

fn same_version(v: &Value, expected: u32) -> bool {
    key_version(v) == Some(expected)
}

/// A claim or header value as it appears in a refusal line, cut to 64 characters: the `alg` header is
/// read before any signature check, so its text is the sender's choice and must not make the one
/// stderr line (and the termination log) arbitrarily long.
fn shown(v: &Value) -> String {
    const MAX: usize = 64;
    let text = v.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `iat` in seconds. The unit is undocumented, so a value too large to be seconds is read as
/// milliseconds; a JWT's NumericDate may carry a fraction (RFC 7519 §2), so a JSON number with one is
/// read too, in either unit, and cut to whole seconds. Negative, non-finite or non-numeric values
/// are refused.
fn issued_at(v: &Value) -> Result<u64, String> {
    /// Beyond this a value cannot be seconds (the year 5138): it is milliseconds.
    const MILLIS_FROM: u64 = 100_000_000_000;
    let bad = || format!("iat {} is not a non-negative number", shown(v));
    let Value::Number(n) = v else {
        return Err(bad());
    };
    if let Some(whole) = n.as_u64() {
        return Ok(if whole > MILLIS_FROM { whole / 1000 } else { whole });
    }
    match n.as_f64() {
        // Below 2^64 (u64::MAX as f64 rounds up to it), so the cast cannot saturate.
        Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
            let whole = f.trunc() as u64;
            Ok(if whole > MILLIS_FROM { whole / 1000 } else { whole })
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    use serde_json::json;

    const PRIV: &str = include_str!("../../testdata/keys/paid-v1.key.pem");
    const OTHER: &str = include_str!("../../testdata/keys/attacker.key.pem");
    const NOW: u64 = 1_800_000_000;

    fn key(pem: &str) -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("test key")
    }

    fn der(pem: &str) -> Vec<u8> {
        key(pem).to_public_key().to_public_key_der().expect("der").as_bytes().to_vec()
    }

    fn sign_with(pem: &str, header: &Value, payload: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(payload.to_string());
        let input = format!("{h}.{p}");
        let signer = rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(key(pem));
        let sig = signer.sign_with_rng(&mut rsa::rand_core::OsRng, input.as_bytes()).to_vec();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn good_claims() -> Value {
        json!({"productCode": "prod1", "publicKeyVersion": 1, "nonce": "n-1", "iat": NOW})
    }

    fn check(token: &str) -> Result<Verified, String> {
        let d = der(PRIV);
        let expected = Expected {
            product_code: "prod1",
            key_version: 1,
            nonce: "n-1",
            now: UNIX_EPOCH + Duration::from_secs(NOW + 30),
        };
        verify(token, &[d.as_slice()], &expected)
    }

    fn ps256() -> Value {
        json!({"alg": "PS256", "typ": "JWT"})
    }

    #[test]
    fn a_good_token_verifies() {
        assert_eq!(check(&sign_with(PRIV, &ps256(), &good_claims())), Ok(Verified { issued_at: NOW }));
    }

    #[test]
    fn pascal_case_string_version_and_millisecond_iat_verify() {
        let claims = json!({"ProductCode": "prod1", "PublicKeyVersion": "1", "Nonce": "n-1", "iat": NOW * 1000});
        assert_eq!(check(&sign_with(PRIV, &ps256(), &claims)), Ok(Verified { issued_at: NOW }));
    }

    #[test]
    fn a_fractional_iat_verifies_in_seconds_and_in_milliseconds() {
        let at = |iat: Value| json!({"productCode": "prod1", "publicKeyVersion": 1, "nonce": "n-1", "iat": iat});
        for iat in [json!(NOW as f64 + 0.25), json!(NOW as f64 * 1000.0 + 125.5), json!(1.8e9)] {
            assert_eq!(check(&sign_with(PRIV, &ps256(), &at(iat.clone()))), Ok(Verified { issued_at: NOW }), "{iat}");
        }
        for bad in [json!(-0.5), json!(1e300), json!("1800000000"), json!(null), json!(true)] {
            let err = check(&sign_with(PRIV, &ps256(), &at(bad.clone()))).expect_err("bad iat");
            assert!(
                err.contains("is not a non-negative number") || err.contains("from the local clock"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn other_algorithms_are_refused_even_when_correctly_signed_as_pss() {
        for alg in ["none", "HS256", "RS256", "PS384", "ps256"] {
            let err = check(&sign_with(PRIV, &json!({"alg": alg}), &good_claims())).expect_err(alg);
            assert!(err.contains("is not PS256"), "{alg}: {err}");
        }
        let err = check(&sign_with(PRIV, &json!({"typ": "JWT"}), &good_claims())).expect_err("no alg");
        assert!(err.contains("no alg"), "{err}");
    }

    #[test]
    fn a_long_alg_is_cut_in_the_refusal_line() {
        let alg = "é".repeat(5000);
        let err = check(&sign_with(PRIV, &json!({"alg": alg}), &good_claims())).expect_err("long alg");
        assert!(err.ends_with("… is not PS256"), "{err}");
        assert!(err.chars().count() < 100, "{} chars: {err}", err.chars().count());
    }

    #[test]
    fn another_key_or_an_edited_payload_is_refused() {
        assert!(check(&sign_with(OTHER, &ps256(), &good_claims())).expect_err("foreign").contains("does not verify"));
        let token = sign_with(PRIV, &ps256(), &good_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let edited = URL_SAFE_NO_PAD
            .encode(json!({"productCode": "prod1", "publicKeyVersion": 1, "nonce": "n-2", "iat": NOW}).to_string());
        let forged = format!("{}.{}.{}", parts[0], edited, parts[2]);
        assert!(check(&forged).expect_err("edited").contains("does not verify"));
    }

    #[test]
    fn claim_mismatches_are_refused() {
        let cases = [
            (json!({"productCode": "prod2", "publicKeyVersion": 1, "nonce": "n-1", "iat": NOW}), "productCode claim"),
            (
                json!({"productCode": "prod1", "publicKeyVersion": 2, "nonce": "n-1", "iat": NOW}),
                "publicKeyVersion claim",
            ),
            (
                json!({"productCode": "prod1", "publicKeyVersion": "01", "nonce": "n-1", "iat": NOW}),
                "publicKeyVersion claim",
            ),
            (json!({"productCode": "prod1", "publicKeyVersion": 1, "nonce": "n-9", "iat": NOW}), "nonce claim"),
            (json!({"productCode": "prod1", "publicKeyVersion": 1, "iat": NOW}), "no nonce claim"),
            (json!({"productCode": "prod1", "publicKeyVersion": 1, "nonce": "n-1"}), "no iat claim"),
            (
                json!({"productCode": "prod1", "publicKeyVersion": 1, "nonce": "n-1", "iat": NOW - 3600}),
                "from the local clock",
            ),
            (
                json!({"productCode": "prod1", "publicKeyVersion": 1, "nonce": "n-1", "iat": -5}),
                "not a non-negative number",
            ),
            (
                json!({"productCode": "prod1", "ProductCode": "prod1", "publicKeyVersion": 1, "nonce": "n-1", "iat": NOW}),
                "both productCode and ProductCode",
            ),
            (json!(["not", "an", "object"]), "payload is not a JSON object"),
        ];
        for (claims, want) in cases {
            let err = check(&sign_with(PRIV, &ps256(), &claims)).expect_err(want);
            assert!(err.contains(want), "wanted {want:?}, got {err:?}");
        }
    }

    #[test]
    fn public_key_version_has_one_rule_canonical_decimal() {
        for (v, want) in [
            (json!(2), Some(2)),
            (json!("2"), Some(2)),
            (json!("10"), Some(10)),
            (json!(4_294_967_295u64), Some(u32::MAX)),
            (json!("4294967295"), Some(u32::MAX)),
            (json!("+2"), None),
            (json!("02"), None),
            (json!("-2"), None),
            (json!(" 2"), None),
            (json!("2 "), None),
            (json!("２"), None),
            (json!(""), None),
            (json!("0"), None),
            (json!(0), None),
            (json!(-2), None),
            (json!(2.0), None),
            (json!(2.5), None),
            (json!("4294967296"), None),
            (json!(4_294_967_296u64), None),
            (json!(null), None),
            (json!([2]), None),
        ] {
            assert_eq!(key_version(&v), want, "{v}");
        }
        // The same rule where the gate checks its own answer and where the pass is read.
        for version in [json!("+1"), json!("01")] {
            let claims = json!({"productCode": "prod1", "publicKeyVersion": version, "nonce": "n-1", "iat": NOW});
            let token = sign_with(PRIV, &ps256(), &claims);
            assert!(check(&token).expect_err("verify").contains("publicKeyVersion claim"), "{version}");
            let d = der(PRIV);
            let err = verified_claims(&token, &[d.as_slice()]).expect_err("verified_claims");
            assert!(err.contains("is not a positive integer"), "{version}: {err}");
        }
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let good = sign_with(PRIV, &ps256(), &good_claims());
        for bad in [
            "",
            "x",
            "a.b",
            "a.b.c.d",
            "..",
            "a..c",
            &format!("{good}="),
            &"A".repeat(MAX_TOKEN + 1),
            "e30.e30.",
            "!!.e30.AA",
        ] {
            assert!(check(bad).is_err(), "{bad:.40}");
        }
        let with_crit = sign_with(PRIV, &json!({"alg": "PS256", "crit": ["exp"]}), &good_claims());
        assert!(check(&with_crit).expect_err("crit").contains("crit"));
    }
}
