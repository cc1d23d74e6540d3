//! The bearer tokens the emulator mints, other than the RegisterUsage `Signature` (`jwt.rs`):
//! Kubernetes projected service-account tokens for IRSA and EKS Pod Identity (docs/aws-behaviour.md §6.1),
//! and License Manager's refresh and access tokens for Containers Anywhere (docs/aws-behaviour.md §5). All are
//! RS256 JWTs signed with the emulator key. Only the emulator itself checks them (by exact value),
//! so their claims just need to look like what EKS and License Manager issue. Which token a
//! workload gets, and when, is decided above this layer.

use super::ids::request_id;
use super::jwt::{b64, encode_part};
use crate::model::world::{CredentialKind, Workload};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::SystemTime;

/// Namespace the emulated pods run in.
pub const NAMESPACE: &str = "default";

/// A projected service-account token for `w` (audience `sts.amazonaws.com`, or
/// `pods.eks.amazonaws.com` for Pod Identity), valid for a day.
pub fn service_account(key: &RsaPrivateKey, w: &Workload) -> String {
    let now = crate::model::clock::unix_secs(SystemTime::now());
    let aud = match w.credential {
        CredentialKind::PodIdentity => "pods.eks.amazonaws.com",
        _ => "sts.amazonaws.com",
    };
    let header = json!({"alg": "RS256", "kid": "mpgate-emulator"});
    let payload = json!({
        "aud": [aud],
        "exp": now + 86_400,
        "iat": now,
        "nbf": now,
        "iss": format!("https://oidc.eks.{}.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF", w.region),
        "jti": request_id(),
        "sub": format!("system:serviceaccount:{NAMESPACE}:{}", w.id),
        "kubernetes.io": {"namespace": NAMESPACE, "serviceaccount": {"name": w.id}},
    });
    rs256(key, &header, &payload)
}

fn rs256(key: &RsaPrivateKey, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", encode_part(header), encode_part(payload));
    let sig = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// A License Manager token of `token_type` for `account`'s license `license_arn`.
fn license_manager(
    key: &RsaPrivateKey,
    token_type: &str,
    account: &str,
    license_arn: &str,
    iat: i64,
    exp: i64,
) -> String {
    rs256(
        key,
        &json!({"alg": "RS256", "typ": "JWT", "kid": "mpgate-emulator"}),
        &json!({
            "iss": "https://openid-license-manager.amazonaws.com",
            "aud": license_arn,
            "sub": format!("arn:aws:iam::{account}:root"),
            "amr": [format!("aws:license-manager:token-issuer-account-id:{account}")],
            "token_type": token_type,
            "jti": request_id(),
            "iat": iat,
            "exp": exp,
        }),
    )
}

/// The refresh token a buyer downloads with "Create token" (CreateToken's `Token`): a JWT whose
/// `aud` is the license ARN, valid for a year. Empty for a workload without a license token.
pub fn refresh_token(key: &RsaPrivateKey, w: &Workload) -> String {
    let CredentialKind::LicenseToken { license_arn, .. } = &w.credential else {
        return String::new();
    };
    let now = crate::model::clock::unix_secs(SystemTime::now());
    license_manager(key, "REFRESH_TOKEN", &w.account, license_arn, now, now + 365 * 86_400)
}

/// The access token GetAccessToken answers, expiring at `exp` (Unix seconds) after `lifetime` seconds.
pub fn access_token(key: &RsaPrivateKey, account: &str, license_arn: &str, exp: i64, lifetime: i64) -> String {
    license_manager(key, "ACCESS_TOKEN", account, license_arn, exp - lifetime, exp)
}
