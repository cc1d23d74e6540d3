//! Contract pricing: one `CheckoutLicense` at start (docs/aws-behaviour.md §4.2), retried inside the deadline,
//! and the allowed entitlements judged against the baked admission rule.
//!
//! Request: `ProductSKU` as baked, the Marketplace key fingerprint (a constant), the baked entitlements
//! with their units and per-container values, `CheckoutType` PROVISIONAL (a floating seat that comes
//! back when checked in or after its TTL; PERPETUAL would draw units down for good on every start), and
//! one random `ClientToken` per start, reused by every retry so a retried request whose answer was
//! lost cannot take a second seat.
//! Retried (`classify::license_manager`; LM model docs say "try again"; the SDK retries none of them by
//! default, §8.2): `RateLimitExceededException` (429), `ServerInternalException`, `ConflictException`,
//! any 5xx, timeouts and network errors. Every other answer is final at once.
//! Must not: hold the seat (that is `crate::license::Lease`) or touch the process.
#![forbid(unsafe_code)]

use super::validity::{self, Invalid, Standing};
use super::{classify, iso8601, Context, Deadline, Progress, Verdict};
use crate::error::{Class, Error};
use crate::identity::{BakedEntitlement, BakedProduct, MARKETPLACE_KEY_FINGERPRINT};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_licensemanager::error::SdkError;
use aws_sdk_licensemanager::operation::checkout_license::{CheckoutLicenseError, CheckoutLicenseOutput};
use aws_sdk_licensemanager::types::{CheckoutType, EntitlementData, EntitlementDataUnit};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_types::request_id::RequestId as _;
use std::time::{Duration, SystemTime};

/// The IAM actions a contract gate needs (all in `AWSLicenseManagerConsumptionPolicy`).
pub const IAM_ACTIONS: &str = "license-manager:CheckoutLicense, license-manager:GetLicense, license-manager:CheckInLicense and license-manager:ExtendLicenseConsumption";

/// AWS's documented lifetime of an unreturned PROVISIONAL checkout, used when the answer's times do not parse.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// One entitlement AWS allowed, as the workload is told about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// Entitlement name.
    pub name: String,
    /// License Manager unit.
    pub unit: String,
    /// Units checked out (counted) or the license's value (features), when AWS returned one.
    pub value: Option<String>,
}

/// What signed the checkout, for the seat's later calls: the credentials, and the provider when
/// the source refreshes itself (a License Manager license token).
#[derive(Clone, Debug)]
pub struct Signer {
    /// The credentials of the checkout (redacted in `Debug`).
    pub credentials: Credentials,
    /// The self-refreshing provider, for the license token source.
    pub refreshing: Option<SharedCredentialsProvider>,
}

/// A successful checkout. `Debug` redacts the consumption token (it can return the seat) and the
/// signed token.
pub struct Licensed {
    /// The license the seat came from.
    pub license_arn: String,
    /// The baked entitlements AWS allowed, in baked order.
    pub entitlements: Vec<Allowed>,
    /// `IssuedAt` of the checkout, as AWS sent it (ISO 8601).
    pub issued_at: String,
    /// `Expiration` of the checkout: when an unreturned seat goes back to the pool.
    pub expiration: String,
    /// Expiration minus IssuedAt: how long the seat is held without an extension.
    pub lifetime: Duration,
    /// Unix seconds (local clock) when the checkout succeeded.
    pub verified_at: u64,
    /// The license's validity (`GetLicense` `Validity`): first day, as AWS sent it (ISO 8601).
    pub valid_from: String,
    /// The license's last moment, when it has one (a contract's end date).
    pub valid_until: Option<String>,
    /// AWS's `SignedToken` over the checkout (format unpublished, docs/aws-behaviour.md §4.7): handed over,
    /// not verified.
    pub signed_token: Option<String>,
    pub(crate) consumption_token: String,
    pub(crate) signer: Signer,
}

impl std::fmt::Debug for Licensed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Licensed")
            .field("license_arn", &self.license_arn)
            .field("entitlements", &self.entitlements)
            .field("issued_at", &self.issued_at)
            .field("expiration", &self.expiration)
            .field("lifetime", &self.lifetime)
            .field("verified_at", &self.verified_at)
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .field("signed_token", &self.signed_token.as_ref().map(|_| "** redacted **"))
            .field("consumption_token", &"** redacted **")
            .field("signer", &self.signer)
            .finish()
    }
}

/// Check out the baked entitlements of `product`.
pub async fn checkout(
    client: &aws_sdk_licensemanager::Client,
    product: &'static BakedProduct,
    baked: &'static [BakedEntitlement],
    signer: Signer,
    ctx: &Context<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<Licensed, Error> {
    let token = client_token()?;
    let wanted = wanted(baked)?;
    deadline
        .retry(progress, "CheckoutLicense", async |attempt| {
            progress.set(format!("CheckoutLicense attempt {attempt} (product {})", product.code));
            let result = client
                .checkout_license()
                .product_sku(product.code)
                .checkout_type(CheckoutType::Provisional)
                .key_fingerprint(MARKETPLACE_KEY_FINGERPRINT)
                .set_entitlements(Some(wanted.clone()))
                .client_token(&token)
                .send()
                .await;
            match judge(client, result, product, baked, &signer, ctx).await {
                Verdict::Admit(licensed) => {
                    still_valid(client, licensed, product, ctx, deadline, progress).await.into()
                }
                other => other,
            }
        })
        .await
}

/// The baked entitlements as CheckoutLicense takes them.
fn wanted(baked: &[BakedEntitlement]) -> Result<Vec<EntitlementData>, Error> {
    baked
        .iter()
        .map(|e| {
            EntitlementData::builder()
                .name(e.name)
                .unit(EntitlementDataUnit::from(e.unit))
                .set_value(e.value.map(|v| v.to_string()))
                .build()
                .map_err(|err| Error::Internal(format!("entitlement {}: {err}", e.name)))
        })
        .collect()
}

/// What one CheckoutLicense answer means: a checkout admits when the baked entitlements AWS allowed
/// pass the admission rule. The fuzz targets drive this (`fuzzing`).
pub(super) async fn judge(
    client: &aws_sdk_licensemanager::Client,
    result: Result<CheckoutLicenseOutput, SdkError<CheckoutLicenseError, HttpResponse>>,
    product: &BakedProduct,
    baked: &'static [BakedEntitlement],
    signer: &Signer,
    ctx: &Context<'_>,
) -> Verdict<Licensed> {
    match result {
        Ok(out) => admission(client, out, product, baked, signer).await.into(),
        Err(e) => classify::license_manager(e, "CheckoutLicense", product, ctx),
    }
}

/// Keep the baked entitlements AWS allowed and apply the admission rule; a refused checkout is
/// checked in at once so it does not hold a seat.
async fn admission(
    client: &aws_sdk_licensemanager::Client,
    out: CheckoutLicenseOutput,
    product: &BakedProduct,
    baked: &'static [BakedEntitlement],
    signer: &Signer,
) -> Result<Licensed, Error> {
    let consumption_token = out.license_consumption_token().unwrap_or_default().to_string();
    let allowed: Vec<Allowed> = baked
        .iter()
        .filter_map(|b| {
            let a = out.entitlements_allowed().iter().find(|a| a.name() == b.name && a.unit().as_str() == b.unit)?;
            Some(Allowed { name: b.name.to_string(), unit: b.unit.to_string(), value: a.value().map(str::to_string) })
        })
        .collect();
    let admitting: Vec<&str> = baked.iter().filter(|b| b.admits).map(|b| b.name).collect();
    let admitted = if admitting.is_empty() {
        !allowed.is_empty()
    } else {
        allowed.iter().any(|a| admitting.contains(&a.name.as_str()))
    };
    if !admitted || consumption_token.is_empty() {
        if !consumption_token.is_empty() {
            let _ = client.check_in_license().license_consumption_token(&consumption_token).send().await;
        }
        let got: Vec<&str> = allowed.iter().map(|a| a.name.as_str()).collect();
        let detail = if consumption_token.is_empty() {
            "CheckoutLicense answered without a LicenseConsumptionToken; refusing to start".to_string()
        } else {
            format!(
                "not-entitled: the license for product {} allows {} but a start needs one of {}; the buyer must buy or upgrade the contract in AWS Marketplace",
                product.code,
                if got.is_empty() { "none of this image's entitlements".to_string() } else { got.join(", ") },
                admitting.join(", ")
            )
        };
        let class = if consumption_token.is_empty() { Class::Misconfigured } else { Class::NotEntitled };
        return Err(Error::License { class, detail });
    }
    let issued_at = out.issued_at().unwrap_or_default().to_string();
    let expiration = out.expiration().unwrap_or_default().to_string();
    let (issued, expires) = match (checkout_time("IssuedAt", &issued_at), checkout_time("Expiration", &expiration)) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(why), _) | (_, Err(why)) => {
            let _ = client.check_in_license().license_consumption_token(&consumption_token).send().await;
            let arn = out.license_arn().unwrap_or("(no LicenseArn)");
            return Err(refusal(why, arn, product, out.request_id()));
        }
    };
    // Without both times (the model makes neither required), AWS's documented 60 minutes.
    let lifetime = match (issued, expires) {
        (Some(i), Some(e)) if e > i => Duration::from_secs(e.abs_diff(i)),
        _ => DEFAULT_TTL,
    };
    Ok(Licensed {
        license_arn: out.license_arn().unwrap_or_default().to_string(),
        entitlements: allowed,
        issued_at,
        expiration,
        lifetime,
        verified_at: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        valid_from: String::new(),
        valid_until: None,
        signed_token: out.signed_token().map(str::to_string),
        consumption_token,
        signer: signer.clone(),
    })
}

/// `licensed` once `validity` holds; otherwise the refusal, with the seat checked in at once.
async fn still_valid(
    client: &aws_sdk_licensemanager::Client,
    mut licensed: Licensed,
    product: &'static BakedProduct,
    ctx: &Context<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<Licensed, Error> {
    if let Err(refusal) = validity(client, &mut licensed, product, ctx, deadline, progress).await {
        let returned = client.check_in_license().license_consumption_token(&licensed.consumption_token).send().await;
        // A stop signal ended the start between the checkout and its validity: say where the seat is.
        if let Error::Stopped { signal, .. } = refusal {
            let seat = match returned {
                Ok(_) => "; the license seat it had checked out was checked in".to_string(),
                Err(_) => "; the license seat it had checked out could not be checked in: License Manager returns it when the checkout expires".to_string(),
            };
            return Err(Error::Stopped { signal, seat });
        }
        return Err(refusal);
    }
    Ok(licensed)
}

/// Read the license's status and validity (`GetLicense`, docs/aws-behaviour.md §4.4), retried like the
/// checkout, and refuse a license that is not AVAILABLE or not valid now by the local clock. The
/// checkout already refuses such licenses; this holds AWS to its own answer and hands the dates over.
async fn validity(
    client: &aws_sdk_licensemanager::Client,
    licensed: &mut Licensed,
    product: &'static BakedProduct,
    ctx: &Context<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<(), Error> {
    deadline
        .retry(progress, "GetLicense", async |attempt| {
            progress.set(format!("GetLicense attempt {attempt} ({})", licensed.license_arn));
            match client.get_license().license_arn(&licensed.license_arn).send().await {
                Ok(out) => {
                    let standing = Standing::of(&out);
                    licensed.valid_from = standing.valid_from.clone();
                    licensed.valid_until = standing.valid_until.clone();
                    validity::judge(unix_now(), &standing)
                        .map_err(|why| refusal(why, &licensed.license_arn, product, out.request_id()))
                        .into()
                }
                Err(e) => classify::license_manager(e, "GetLicense", product, ctx),
            }
        })
        .await
}

/// The one line for a license that does not let a container run (`why` from `validity::judge`).
pub(crate) fn refusal(why: Invalid, arn: &str, product: &BakedProduct, request_id: Option<&str>) -> Error {
    let id = request_id.map(|id| format!(" (request id {id})")).unwrap_or_default();
    match why {
        Invalid::Lapsed(detail) => Error::License {
            class: Class::NotEntitled,
            detail: format!("not-entitled: the license {arn} for product {} {detail}{id}; the buyer must renew or reactivate the contract in AWS Marketplace", product.code),
        },
        Invalid::Unreadable(detail) => Error::License {
            class: Class::Misconfigured,
            detail: format!("misconfigured: License Manager's answer for license {arn} of product {} {detail}{id}; mpgate cannot tell whether the contract is valid and refuses to start; report this answer to the seller", product.code),
        },
    }
}

/// The local clock in Unix seconds.
fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A CheckoutLicense time: `None` when absent, refused when present but not a date the model allows.
fn checkout_time(field: &str, value: &str) -> Result<Option<i64>, Invalid> {
    if value.is_empty() {
        return Ok(None);
    }
    iso8601::parse(value)
        .map(Some)
        .map_err(|why| validity::unreadable(&format!("CheckoutLicense {field}"), value, &why))
}

/// A random UUID-shaped token (version 4 layout), fresh per start.
fn client_token() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| Error::Internal(format!("no randomness for the ClientToken: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

#[cfg(test)]
mod tests {
    use super::client_token;

    #[test]
    fn client_tokens_are_fresh_and_uuid_shaped() {
        let (a, b) = (client_token().expect("token"), client_token().expect("token"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
