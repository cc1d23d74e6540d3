//! Not an API (hidden from the docs, no stability promise): the narrow door `fuzz/` uses so its
//! targets drive mpgate's own judgement of AWS answers instead of a copy of it. Each function takes
//! one answer exactly as the SDK handed it over and says what a start would do with it: admit, retry,
//! or refuse with the `Error` that becomes the exit status and the one stderr line.
//! Must not: mint `Entitled` (nothing here can), read the environment or the clock (both are given),
//! or send anything but the check-in a refused checkout makes (`contract::judge`).
#![forbid(unsafe_code)]

use super::hourly::Context;
use super::{contract, custom, hourly};
use crate::error::Error;
use crate::identity::{BakedEntitlement, BakedKey, BakedProduct};
use crate::platform::{CredentialSource, FoundRegion, RegionSource};
use aws_credential_types::Credentials;
use aws_sdk_licensemanager::operation::checkout_license::{CheckoutLicenseError, CheckoutLicenseOutput};
use aws_sdk_marketplacemetering::error::SdkError;
use aws_sdk_marketplacemetering::operation::meter_usage::{MeterUsageError, MeterUsageOutput};
use aws_sdk_marketplacemetering::operation::register_usage::{RegisterUsageError, RegisterUsageOutput};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use std::time::SystemTime;

/// What the gate makes of one answer.
#[derive(Debug)]
pub enum Verdict {
    /// The answer proves entitlement.
    Admitted,
    /// A transient failure: the gate would retry inside its deadline (the text says why).
    Retry(String),
    /// A final refusal.
    Refused(Error),
}

impl<T> From<Result<Result<T, String>, Error>> for Verdict {
    fn from(judged: Result<Result<T, String>, Error>) -> Self {
        match judged {
            Ok(Ok(_)) => Verdict::Admitted,
            Ok(Err(why)) => Verdict::Retry(why),
            Err(e) => Verdict::Refused(e),
        }
    }
}

fn with_context<R>(f: impl FnOnce(&Context<'_>) -> R) -> R {
    let region = FoundRegion { name: "us-east-1".into(), source: RegionSource::AwsRegion };
    f(&Context { region: &region, source: CredentialSource::EcsTaskRole, hostname: "fuzz-host" })
}

/// A RegisterUsage answer to a call that sent `product`, `key` and `nonce`, judged at `now`.
pub fn register_usage(
    result: Result<RegisterUsageOutput, SdkError<RegisterUsageError, HttpResponse>>,
    product: &BakedProduct,
    key: &BakedKey,
    nonce: &str,
    now: SystemTime,
) -> Verdict {
    with_context(|ctx| hourly::judge(result, product, key, nonce.to_string(), ctx, now).into())
}

/// A MeterUsage dry-run answer for `dimension` of `product` (custom metering's start-up check).
pub fn meter_usage_dry_run(
    result: Result<MeterUsageOutput, SdkError<MeterUsageError, HttpResponse>>,
    product: &BakedProduct,
    dimension: &str,
) -> Verdict {
    with_context(|ctx| custom::judge(result, product, dimension, ctx).into())
}

/// A CheckoutLicense answer for `product` and its `baked` entitlements; a refused checkout is checked
/// in through `client`, as at a real start.
pub async fn checkout_license(
    client: &aws_sdk_licensemanager::Client,
    result: Result<CheckoutLicenseOutput, SdkError<CheckoutLicenseError, HttpResponse>>,
    product: &BakedProduct,
    baked: &'static [BakedEntitlement],
) -> Verdict {
    match result {
        Ok(out) => {
            let credentials = Credentials::new("AKIDFUZZ", "fuzz-secret", None, None, "fuzzing");
            let signer = contract::Signer { credentials, refreshing: None };
            match contract::judge(client, out, product, baked, signer).await {
                Ok(_) => Verdict::Admitted,
                Err(e) => Verdict::Refused(e),
            }
        }
        Err(e) => with_context(|ctx| contract::classify(e, "CheckoutLicense", product, ctx).map(Err::<(), _>).into()),
    }
}
