//! The RegisterUsage JWT: verifies under the right key and not under the attacker's; each
//! mutation produces what its name says.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mpgate_emulator::jwt::{issue, Claims};
use mpgate_emulator::{keys, ClaimStyle, TokenMutation};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use sha2::Sha256;

fn private(pem: &str) -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(pem).expect("test key")
}

fn public(pem: &str) -> RsaPublicKey {
    RsaPublicKey::from_public_key_pem(pem).expect("test key")
}

fn claims(style: ClaimStyle) -> Claims {
    Claims {
        product_code: "8f3kq2demopaid0mpgate01".into(),
        key_version: 1,
        nonce: Some("n-1".into()),
        iat: 1_700_000_000,
        iat_fraction: None,
        day: 86_400,
        style,
    }
}

fn parts(token: &str) -> (Value, Value, Vec<u8>, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3, "{token}");
    let dec = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("base64url without padding");
    let header = serde_json::from_slice(&dec(p[0])).expect("json header");
    let payload = serde_json::from_slice(&dec(p[1])).expect("json payload");
    (header, payload, dec(p[2]), format!("{}.{}", p[0], p[1]))
}

fn ps256_ok(key: &RsaPublicKey, input: &str, sig: &[u8]) -> bool {
    let vk = rsa::pss::VerifyingKey::<Sha256>::new(key.clone());
    match rsa::pss::Signature::try_from(sig) {
        Ok(s) => vk.verify(input.as_bytes(), &s).is_ok(),
        Err(_) => false,
    }
}

fn mutated(m: Option<TokenMutation>) -> (Value, Value, Vec<u8>, String) {
    parts(&issue(&private(keys::PAID_V1), &private(keys::ATTACKER), &claims(ClaimStyle::CamelCase), m))
}

#[test]
fn genuine_token_verifies_only_under_the_right_key() {
    let (h, p, sig, input) = mutated(None);
    assert_eq!(h, serde_json::json!({"alg": "PS256", "typ": "JWT"}));
    assert_eq!(
        p,
        serde_json::json!({"productCode": "8f3kq2demopaid0mpgate01", "publicKeyVersion": 1, "nonce": "n-1", "iat": 1_700_000_000})
    );
    assert!(ps256_ok(&public(keys::PAID_V1_PUB), &input, &sig));
    assert!(!ps256_ok(&public(keys::ATTACKER_PUB), &input, &sig));
    assert!(!ps256_ok(&public(keys::PAID_V2_PUB), &input, &sig));
}

#[test]
fn pascal_case_and_no_nonce() {
    let mut c = claims(ClaimStyle::PascalCase);
    c.nonce = None;
    let t = issue(&private(keys::EMULATOR), &private(keys::ATTACKER), &c, None);
    let (_, p, sig, input) = parts(&t);
    assert_eq!(
        p,
        serde_json::json!({"ProductCode": "8f3kq2demopaid0mpgate01", "PublicKeyVersion": 1, "iat": 1_700_000_000})
    );
    assert!(ps256_ok(&public(keys::EMULATOR_PUB), &input, &sig));
}

#[test]
fn mutations_look_as_named() {
    use TokenMutation as M;
    let good = public(keys::PAID_V1_PUB);
    let (_, _, sig, input) = mutated(Some(M::FlipSignatureByte));
    assert!(!ps256_ok(&good, &input, &sig));
    assert_eq!(mutated(Some(M::WrongNonce)).1["nonce"], "00000000-not-the-nonce-you-sent");
    assert_ne!(mutated(Some(M::WrongProductCode)).1["productCode"], "8f3kq2demopaid0mpgate01");
    assert_eq!(mutated(Some(M::WrongKeyVersion)).1["publicKeyVersion"], 2);
    let (h, _, sig, _) = mutated(Some(M::AlgNone));
    assert_eq!(h["alg"], "none");
    assert!(sig.is_empty());
    assert_eq!(mutated(Some(M::AlgHs256WithPublicKey)).0["alg"], "HS256");
    let (h, _, sig, input) = mutated(Some(M::AlgRs256));
    assert_eq!(h["alg"], "RS256");
    let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(good.clone());
    let s = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).expect("sig");
    assert!(vk.verify(input.as_bytes(), &s).is_ok());
    let (_, _, sig, input) = mutated(Some(M::SignWithAttackerKey));
    assert!(ps256_ok(&public(keys::ATTACKER_PUB), &input, &sig) && !ps256_ok(&good, &input, &sig));
    let p = mutated(Some(M::BothClaimCasings)).1;
    assert_eq!(p["productCode"], p["ProductCode"]);
    assert_eq!(mutated(Some(M::IatFarFuture)).1["iat"], 1_700_086_400);
    assert_eq!(mutated(Some(M::IatFarPast)).1["iat"], 1_699_913_600);
    assert_eq!(
        issue(&private(keys::PAID_V1), &private(keys::ATTACKER), &claims(ClaimStyle::CamelCase), Some(M::NotAJwt)),
        "x"
    );
}
