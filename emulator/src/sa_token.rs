//! Kubernetes projected service-account tokens for IRSA and EKS Pod Identity: RS256 JWTs signed
//! with the emulator key. Only the emulator itself checks them (by exact value), so their claims
//! just need to look like what EKS projects (aws-wire.md §6.1).

use crate::model::world::{CredentialKind, Workload};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde_json::json;
use sha2::Sha256;
use std::time::SystemTime;

/// Namespace the emulated pods run in.
pub const NAMESPACE: &str = "default";

pub fn mint(key: &RsaPrivateKey, w: &Workload) -> String {
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
        "jti": crate::state::request_id(),
        "sub": format!("system:serviceaccount:{NAMESPACE}:{}", w.id),
        "kubernetes.io": {"namespace": NAMESPACE, "serviceaccount": {"name": w.id}},
    });
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload.to_string()));
    let sig = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_vec()))
}
