//! Not an API (hidden from the docs, no stability promise): the narrow door `fuzz/` uses so its
//! targets drive mpgate's own judgement of AWS answers instead of a copy of it. Each function takes
//! one answer exactly as the SDK handed it over and says what a start would do with it: the `Verdict`
//! (admit, retry, or refuse with the `Error` that becomes the exit status and the one stderr line).
//! Must not: mint `Entitled` (nothing here can), read the environment or the clock (both are given),
//! or send anything but the check-in a refused checkout makes (`contract::judge`).
#![forbid(unsafe_code)]

use super::{contract, custom, hourly, Context, Verdict};
use crate::identity::{BakedEntitlement, BakedKey, BakedProduct};
use crate::platform::{CredentialSource, FoundRegion, RegionSource};
use aws_credential_types::Credentials;
use aws_sdk_licensemanager::operation::checkout_license::{CheckoutLicenseError, CheckoutLicenseOutput};
use aws_sdk_marketplacemetering::error::SdkError;
use aws_sdk_marketplacemetering::operation::meter_usage::{MeterUsageError, MeterUsageOutput};
use aws_sdk_marketplacemetering::operation::register_usage::{RegisterUsageError, RegisterUsageOutput};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use std::time::SystemTime;

/// Where the judged calls were made.
fn region() -> FoundRegion {
    FoundRegion { name: "us-east-1".into(), source: RegionSource::AwsRegion }
}

fn context(region: &FoundRegion) -> Context<'_> {
    Context { region, source: CredentialSource::EcsTaskRole, hostname: "fuzz-host" }
}

/// A RegisterUsage answer to a call that sent `product`, `key` and `nonce`, judged at `now`.
pub fn register_usage(
    result: Result<RegisterUsageOutput, SdkError<RegisterUsageError, HttpResponse>>,
    product: &BakedProduct,
    key: &BakedKey,
    nonce: &str,
    now: SystemTime,
) -> Verdict<()> {
    hourly::judge(result, product, key, nonce.to_string(), &context(&region()), now).map(|_| ())
}

/// A MeterUsage dry-run answer for `dimension` of `product` (custom metering's start-up check).
pub fn meter_usage_dry_run(
    result: Result<MeterUsageOutput, SdkError<MeterUsageError, HttpResponse>>,
    product: &BakedProduct,
    dimension: &str,
) -> Verdict<()> {
    custom::judge(result, product, dimension, &context(&region()))
}

/// A CheckoutLicense answer for `product` and its `baked` entitlements; a refused checkout is checked
/// in through `client`, as at a real start.
pub async fn checkout_license(
    client: &aws_sdk_licensemanager::Client,
    result: Result<CheckoutLicenseOutput, SdkError<CheckoutLicenseError, HttpResponse>>,
    product: &BakedProduct,
    baked: &'static [BakedEntitlement],
) -> Verdict<()> {
    let credentials = Credentials::new("AKIDFUZZ", "fuzz-secret", None, None, "fuzzing");
    let signer = contract::Signer { credentials, refreshing: None };
    let region = region();
    contract::judge(client, result, product, baked, &signer, &context(&region)).await.map(|_| ())
}
