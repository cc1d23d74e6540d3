//! The RegisterUsage `Signature`: a PS256 JWT (docs/aws-behaviour.md §3) and the deliberate corruptions
//! the gate's verifier must reject. Owns encoding and signing only, not which key or claims.

use crate::model::fault::TokenMutation;
use crate::model::world::ClaimStyle;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// What the token asserts.
#[derive(Debug, Clone)]
pub struct Claims {
    pub product_code: String,
    pub key_version: i32,
    pub nonce: Option<String>,
    /// Already in the product's unit (seconds or milliseconds).
    pub iat: i64,
    /// Thousandths of that unit written as a fraction of `iat` (a JWT NumericDate may have one).
    pub iat_fraction: Option<u16>,
    /// One day in the same unit as `iat`, for `IatFarFuture` and `IatFarPast`.
    pub day: i64,
    pub style: ClaimStyle,
}

/// Base64url without padding, as JWT segments are encoded.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn payload(c: &Claims, style: ClaimStyle) -> Map<String, Value> {
    let (code, version, nonce) = match style {
        ClaimStyle::CamelCase => ("productCode", "publicKeyVersion", "nonce"),
        ClaimStyle::PascalCase => ("ProductCode", "PublicKeyVersion", "Nonce"),
    };
    let mut m = Map::new();
    m.insert(code.into(), json!(c.product_code));
    m.insert(version.into(), json!(c.key_version));
    // AWS omits the nonce from the record when none was sent (CloudTrail shape, docs/aws-behaviour.md §3).
    if let Some(n) = &c.nonce {
        m.insert(nonce.into(), json!(n));
    }
    let fractional = c.iat_fraction.and_then(|f| {
        let text = format!("{}.{f:03}", c.iat);
        text.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
    });
    m.insert("iat".into(), fractional.map_or_else(|| json!(c.iat), Value::Number));
    m
}

/// One base64url JWT segment: `v`'s JSON.
pub(crate) fn encode_part(v: &Value) -> String {
    b64(v.to_string().as_bytes())
}

pub(crate) fn ps256(key: &RsaPrivateKey, input: &str) -> Vec<u8> {
    // ring is several times faster (model/keys.rs says why that matters); same algorithm and parameters.
    if let Some(sig) = crate::model::keys::ps256_ring(key, input.as_bytes()) {
        return sig;
    }
    // BlindedSigningKey: RSASSA-PSS, MGF1-SHA-256, salt length = digest length (32), as RFC 7518 PS256.
    let signer = rsa::pss::BlindedSigningKey::<Sha256>::new(key.clone());
    signer.sign_with_rng(&mut rand::thread_rng(), input.as_bytes()).to_vec()
}

/// Signs `claims` with `key`, then applies `mutation` (if any). `attacker` is used only by
/// `SignWithAttackerKey`.
pub fn issue(
    key: &RsaPrivateKey,
    attacker: &RsaPrivateKey,
    claims: &Claims,
    mutation: Option<TokenMutation>,
) -> String {
    use TokenMutation as M;
    let mut c = claims.clone();
    match mutation {
        Some(M::NotAJwt) => return "x".to_string(),
        Some(M::WrongNonce) => c.nonce = Some("00000000-not-the-nonce-you-sent".to_string()),
        Some(M::WrongProductCode) => c.product_code = "0000000wrongproduct00000".to_string(),
        Some(M::WrongKeyVersion) => c.key_version = c.key_version.saturating_add(1),
        Some(M::IatFarFuture) => c.iat = c.iat.saturating_add(c.day),
        Some(M::IatFarPast) => c.iat = c.iat.saturating_sub(c.day),
        _ => {}
    }
    let mut body = payload(&c, c.style);
    if mutation == Some(M::BothClaimCasings) {
        let other = match c.style {
            ClaimStyle::CamelCase => ClaimStyle::PascalCase,
            ClaimStyle::PascalCase => ClaimStyle::CamelCase,
        };
        body.extend(payload(&c, other));
    }
    let payload = encode_part(&Value::Object(body));
    let alg = match mutation {
        Some(M::AlgNone) => "none",
        Some(M::AlgHs256WithPublicKey) => "HS256",
        Some(M::AlgRs256) => "RS256",
        _ => "PS256",
    };
    let input = format!("{}.{payload}", encode_part(&json!({"alg": alg, "typ": "JWT"})));
    let sig = match mutation {
        Some(M::AlgNone) => Vec::new(),
        Some(M::AlgHs256WithPublicKey) => hs256_with_public_pem(key, &input),
        Some(M::AlgRs256) => rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes()).to_vec(),
        Some(M::SignWithAttackerKey) => ps256(attacker, &input),
        Some(M::FlipSignatureByte) => {
            let mut s = ps256(key, &input);
            if let Some(b) = s.get_mut(10) {
                *b ^= 0x01;
            }
            s
        }
        _ => ps256(key, &input),
    };
    format!("{input}.{}", b64(&sig))
}

/// The classic algorithm-confusion attack: HMAC keyed with the verifier's own public key PEM.
fn hs256_with_public_pem(key: &RsaPrivateKey, input: &str) -> Vec<u8> {
    let pem = key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap_or_default();
    match Hmac::<Sha256>::new_from_slice(pem.as_bytes()) {
        Ok(mut mac) => {
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}
