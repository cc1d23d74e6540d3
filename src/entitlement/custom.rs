//! Custom metering: entitlement at start is a `MeterUsage` dry run (quantity 0, timestamp now) for
//! every baked dimension, retried inside the deadline exactly like the hourly gate's RegisterUsage.
//!
//! Success is any 200, or an error whose code is `DryRunOperation`: the model text says a permitted
//! dry run "returns DryRunOperation" but models no such shape, and AWS's real answer is undocumented
//! (docs/aws-behaviour.md §10.4), so every form is accepted. Every other answer goes through the Metering error
//! table (`classify::metering`: not entitled / misconfigured / transient). A dry run records nothing,
//! so unlike a real zero-quantity record it does not use up the hour's one slot per dimension
//! (§2.3 "zero trap"). What a dry run checks is undocumented too (perhaps IAM only, §10.4), so the
//! sender treats `CustomerNotEntitledException` to a real record as a refusal (`metering::send`).
//! Must not: send a real record (that is `metering::send`, after admission).
#![forbid(unsafe_code)]

use super::{classify, Context, Deadline, Progress, Verdict};
use crate::error::Error;
use crate::identity::{BakedDimension, BakedProduct};
use aws_sdk_marketplacemetering::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_marketplacemetering::operation::meter_usage::{MeterUsageError, MeterUsageOutput};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::DateTime;
use std::time::SystemTime;

/// The dry runs passed: what the workload is told.
#[derive(Debug)]
pub struct Probed {
    /// Dimensions AWS accepted.
    pub dimensions: Vec<&'static str>,
    /// Unix seconds when the last dry run succeeded.
    pub verified_at: u64,
}

/// Dry-run every dimension of `product`.
pub async fn probe(
    client: &aws_sdk_marketplacemetering::Client,
    product: &'static BakedProduct,
    dimensions: &'static [BakedDimension],
    ctx: &Context<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<Probed, Error> {
    for dimension in dimensions {
        probe_one(client, product, dimension.name, ctx, deadline, progress).await?;
    }
    let verified_at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(Probed { dimensions: dimensions.iter().map(|d| d.name).collect(), verified_at })
}

/// Dry-run one dimension (also `mpgate check --live`, which reports each dimension).
pub async fn probe_one(
    client: &aws_sdk_marketplacemetering::Client,
    product: &'static BakedProduct,
    dimension: &'static str,
    ctx: &Context<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<(), Error> {
    deadline
        .retry(progress, "MeterUsage dry run", async |attempt| {
            progress.set(format!("MeterUsage dry run attempt {attempt} (dimension {dimension})"));
            let result = client
                .meter_usage()
                .product_code(product.code)
                .timestamp(DateTime::from(SystemTime::now()))
                .usage_dimension(dimension)
                .usage_quantity(0)
                .dry_run(true)
                .send()
                .await;
            judge(result, product, dimension, ctx)
        })
        .await
}

/// What one dry-run answer means: a permitted dry run admits. The fuzz targets drive this (`fuzzing`).
pub(super) fn judge(
    result: Result<MeterUsageOutput, SdkError<MeterUsageError, HttpResponse>>,
    product: &BakedProduct,
    dimension: &str,
    ctx: &Context<'_>,
) -> Verdict<()> {
    match result {
        Ok(_) => Verdict::Admit(()),
        Err(SdkError::ServiceError(s)) if s.err().code() == Some("DryRunOperation") => Verdict::Admit(()),
        Err(e) => match classify::metering(e, "MeterUsage", product, ctx) {
            Verdict::Refuse(Error::Aws { class, call, code, message, request_id, advice: _ })
                if code == "InvalidUsageDimensionException" =>
            {
                let advice = format!(
                    "dimension {dimension:?} baked into this image is not defined for product {}; the seller must rebuild with MPGATE_DIMENSIONS as in the product load form",
                    product.code
                );
                Verdict::Refuse(Error::Aws { class, call, code, message, request_id, advice })
            }
            other => other,
        },
    }
}
