//! Hourly and fixed-monthly pricing: one `RegisterUsage` at start, retried inside the deadline, and
//! its signed answer verified.
//!
//! Retried (`classify::metering`; AWS: "terminate on any error except ThrottlingException", and the
//! model marks InternalServiceError as retryable): `ThrottlingException`, `InternalServiceErrorException`,
//! any 5xx, timeouts, connection and response errors, paced by `pacing` (windows that double, capped by
//! a share of the wait so far), never past the deadline. Everything else is final at once.
//! `InvalidPublicKeyVersionException` moves on to the next older baked key version, so an image can
//! carry a key before AWS activates it.
#![forbid(unsafe_code)]

use super::{classify, jwt, nonce, Context, Deadline, NonceChoice, Progress, Verdict};
use crate::error::Error;
use crate::identity::{BakedKey, BakedProduct};
use aws_sdk_marketplacemetering::error::SdkError;
use aws_sdk_marketplacemetering::operation::register_usage::{RegisterUsageError, RegisterUsageOutput};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use std::time::SystemTime;

/// A verified registration. `Debug` redacts the token: it is a bearer proof of this start.
pub struct Registered {
    /// Key version the answer verified under.
    pub key_version: u32,
    /// Nonce sent and echoed.
    pub nonce: String,
    /// The verified JWT.
    pub signature: String,
    /// `iat` of the token.
    pub issued_at: u64,
    /// Set when AWS says the key version has expired.
    pub rotation: Option<String>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("key_version", &self.key_version)
            .field("nonce", &self.nonce)
            .field("signature", &"** redacted **")
            .field("issued_at", &self.issued_at)
            .field("rotation", &self.rotation)
            .finish()
    }
}

/// Register `product` with a fresh or the given nonce, newest key version first.
pub async fn register(
    client: &aws_sdk_marketplacemetering::Client,
    product: &'static BakedProduct,
    ctx: &Context<'_>,
    choice: NonceChoice<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<Registered, Error> {
    let mut keys: Vec<&BakedKey> = product.keys.iter().collect();
    keys.reverse();
    let mut rejected = Vec::new();
    for key in keys {
        match register_version(client, product, key, ctx, choice, deadline, progress).await {
            Err(Error::Aws { code, .. })
                if code == "InvalidPublicKeyVersionException" && rejected.len() + 1 < product.keys.len() =>
            {
                rejected.push(key.version);
            }
            Err(Error::Aws { class, call, code, message, request_id, advice: _ })
                if code == "InvalidPublicKeyVersionException" =>
            {
                rejected.push(key.version);
                let advice = format!(
                    "AWS rejects key version(s) {rejected:?} baked for {}; the seller must rebuild the image with the current public key and version",
                    product.code
                );
                return Err(Error::Aws { class, call, code, message, request_id, advice });
            }
            other => return other,
        }
    }
    Err(Error::Unbaked)
}

async fn register_version(
    client: &aws_sdk_marketplacemetering::Client,
    product: &'static BakedProduct,
    key: &BakedKey,
    ctx: &Context<'_>,
    choice: NonceChoice<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<Registered, Error> {
    deadline
        .retry(progress, "RegisterUsage", async |attempt| {
            let nonce = match choice {
                NonceChoice::Given(given) => given.to_string(),
                NonceChoice::Fresh => match nonce::fresh(SystemTime::now(), ctx.hostname) {
                    Ok(nonce) => nonce,
                    Err(why) => return Verdict::Refuse(Error::Internal(why)),
                },
            };
            progress.set(format!("RegisterUsage attempt {attempt} (key version {})", key.version));
            let result = client
                .register_usage()
                .product_code(product.code)
                .public_key_version(i32::try_from(key.version).unwrap_or(i32::MAX))
                .nonce(&nonce)
                .send()
                .await;
            judge(result, product, key, nonce, ctx, SystemTime::now())
        })
        .await
}

/// What one RegisterUsage answer means: a verified registration admits. The fuzz targets drive this
/// (`fuzzing`).
pub(super) fn judge(
    result: Result<RegisterUsageOutput, SdkError<RegisterUsageError, HttpResponse>>,
    product: &BakedProduct,
    key: &BakedKey,
    nonce: String,
    ctx: &Context<'_>,
    now: SystemTime,
) -> Verdict<Registered> {
    match result {
        Ok(out) => verified(out, product, key, nonce, now).into(),
        Err(e) => classify::metering(e, "RegisterUsage", product, ctx),
    }
}

fn verified(
    out: RegisterUsageOutput,
    product: &BakedProduct,
    key: &BakedKey,
    nonce: String,
    now: SystemTime,
) -> Result<Registered, Error> {
    let signature =
        out.signature().ok_or_else(|| Error::BadSignature("the answer carries no Signature".into()))?.to_string();
    let keys = trusted_keys(key);
    let expected = jwt::Expected { product_code: product.code, key_version: key.version, nonce: &nonce, now };
    let claims = jwt::verify(&signature, &keys, &expected).map_err(Error::BadSignature)?;
    let rotation = out.public_key_rotation_timestamp().map(|t| {
        format!(
            "AWS reports key version {} of {} expired (rotation timestamp {t}); the seller should ship an image with the next key version",
            key.version, product.code
        )
    });
    Ok(Registered { key_version: key.version, nonce, signature, issued_at: claims.issued_at, rotation })
}

/// The keys an answer for `key`'s version may be signed with: the baked key, plus the flavour's
/// extra keys (none in the release flavour).
fn trusted_keys(key: &BakedKey) -> Vec<&'static [u8]> {
    std::iter::once(key.der).chain(crate::flavour::extra_trusted_keys().iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::Registered;
    use crate::platform::{CredentialSource, LoadedCredentials};
    use aws_credential_types::Credentials;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let r = Registered {
            key_version: 1,
            nonce: "n".into(),
            signature: "eyJhbGciOiJQUzI1NiJ9.payload.SIGNATURE".into(),
            issued_at: 1,
            rotation: None,
        };
        assert!(!format!("{r:?}").contains("SIGNATURE"));
        let c = LoadedCredentials {
            credentials: Credentials::new("ASIAEXAMPLE", "SECRETKEY123", Some("SESSIONTOKEN456".into()), None, "test"),
            source: CredentialSource::EcsTaskRole,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRETKEY123") && !shown.contains("SESSIONTOKEN456"), "{shown}");
    }
}
