//! What an AWS error answer means, per service: one table for the Marketplace Metering calls
//! (RegisterUsage, MeterUsage) and one for the License Manager calls (CheckoutLicense, GetLicense,
//! CheckInLicense, ExtendLicenseConsumption), so every pricing model and the supervisor's later calls
//! word a refusal alike. Each opens with `triage` (no answer, a retryable code or a 5xx is worth
//! another attempt), then maps the error code to its class and the advice the refusal line gives.
//! Must not: retry or sleep (the callers own the pacing and the deadline).
#![forbid(unsafe_code)]

use super::triage::{triage, Triage};
use super::Verdict;
use crate::error::Class;
use crate::identity::BakedProduct;
use crate::platform::{CredentialSource, FoundRegion};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

/// What the caller knows about where it runs, used to word refusals.
pub struct Context<'a> {
    /// Region the call is made in.
    pub region: &'a FoundRegion,
    /// Source of the signing credentials.
    pub source: CredentialSource,
    /// The container's hostname, bound into the nonce.
    pub hostname: &'a str,
}

/// A failed Marketplace Metering call (`call` names it in the refusal): `Retry` or `Refuse`.
pub(crate) fn metering<T, E>(
    e: SdkError<E, HttpResponse>,
    call: &'static str,
    product: &BakedProduct,
    ctx: &Context<'_>,
) -> Verdict<T>
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    // AWS: "terminate on any error except ThrottlingException"; the model marks InternalServiceError
    // as retryable.
    let refusal = match triage(e, call, &["ThrottlingException", "InternalServiceErrorException"]) {
        Triage::Answer(refusal) => refusal,
        Triage::Retry { why, reached } => return Verdict::Retry { why, reached },
        Triage::Fail(error) => return Verdict::Refuse(error),
    };
    let policy = if call == "RegisterUsage" {
        "AWSMarketplaceMeteringRegisterUsage"
    } else {
        "AWSMarketplaceMeteringFullAccess"
    };
    let (class, advice) = match refusal.code.as_str() {
        "CustomerNotEntitledException" => (
            Class::NotEntitled,
            format!("the AWS account running this task or pod must subscribe to product {} in AWS Marketplace", product.code),
        ),
        "PlatformNotSupportedException" => (Class::Misconfigured, format!("the call was signed with {}; {}", ctx.source, ctx.source.advice())),
        "InvalidRegionException" | "InvalidEndpointRegionException" => (
            Class::Misconfigured,
            format!(
                "the call was made in {} (from {}) but must be made in the region the task or pod runs in; fix or unset that setting",
                ctx.region.name, ctx.region.source
            ),
        ),
        "InvalidProductCodeException" => (
            Class::Misconfigured,
            format!("product code {} is not a published container product; the seller built this image with the wrong MPGATE_PRODUCT_CODE", product.code),
        ),
        "InvalidUsageDimensionException" => (
            Class::Misconfigured,
            format!("a dimension baked into this image is not defined for product {}; the seller must rebuild with MPGATE_DIMENSIONS as in the product load form", product.code),
        ),
        "TimestampOutOfBoundsException" => (Class::Misconfigured, "AWS rejected the record's time; check the container's clock".to_string()),
        "DisabledApiException" => (Class::Misconfigured, format!("{call} is disabled in {}; run in a supported region", ctx.region.name)),
        "AccessDeniedException" | "AccessDenied" => (
            Class::Misconfigured,
            format!("grant aws-marketplace:{call} to the role behind {} (managed policy {policy})", ctx.source),
        ),
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException" | "SignatureDoesNotMatch" | "ExpiredTokenException" => (
            Class::Misconfigured,
            format!("AWS rejected the credentials from {}; check them and the clock (SigV4 allows 5 minutes of skew)", ctx.source),
        ),
        _ => (Class::Misconfigured, "this error is not retryable; see docs/exit-codes.md".to_string()),
    };
    Verdict::Refuse(refusal.into_error(class, call, advice))
}

/// A failed License Manager call (`call` names it in the refusal): `Retry` or `Refuse`.
pub(crate) fn license_manager<T, E>(
    e: SdkError<E, HttpResponse>,
    call: &'static str,
    product: &BakedProduct,
    ctx: &Context<'_>,
) -> Verdict<T>
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    // The License Manager model's documentation says "try again" for these three.
    let retryable = ["RateLimitExceededException", "ServerInternalException", "ConflictException"];
    let refusal = match triage(e, call, &retryable) {
        Triage::Answer(refusal) => refusal,
        Triage::Retry { why, reached } => return Verdict::Retry { why, reached },
        Triage::Fail(error) => return Verdict::Refuse(error),
    };
    let sku = product.code;
    let (class, advice) = match refusal.code.as_str() {
        "NoEntitlementsAllowedException" => (
            Class::NotEntitled,
            format!("the license for product {sku} is expired, inactive, lacks this image's entitlements or has no seat left; renew or extend the contract in AWS Marketplace, or stop another container (a seat that was never returned comes back within 60 minutes)"),
        ),
        "ResourceNotFoundException" => (
            Class::NotEntitled,
            format!("this AWS account holds no license for product {sku}; subscribe in AWS Marketplace and check that the license grant is active in AWS License Manager in {}", ctx.region.name),
        ),
        "RedirectException" => (
            Class::Misconfigured,
            match &refusal.location {
                Some(l) => format!("the license lives in another region ({l}); set AWS_REGION to the license's home region (the region was {} from {})", ctx.region.name, ctx.region.source),
                None => format!("the license lives in another region than {} (from {}); set AWS_REGION to the license's home region", ctx.region.name, ctx.region.source),
            },
        ),
        "AccessDeniedException" | "AuthorizationException" | "AccessDenied" => (
            Class::Misconfigured,
            format!("grant {} to the role behind {} (managed policy AWSLicenseManagerConsumptionPolicy)", super::contract::IAM_ACTIONS, ctx.source),
        ),
        "ValidationException" | "InvalidParameterValueException" | "UnsupportedDigitalSignatureMethodException" => (
            Class::Misconfigured,
            format!("AWS rejected the request built from this image's MPGATE_PRODUCT_SKU {sku} and MPGATE_ENTITLEMENTS; the seller must rebuild with the values of the product's license"),
        ),
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException" | "SignatureDoesNotMatch" | "ExpiredTokenException" => (
            Class::Misconfigured,
            format!("AWS rejected the credentials from {}; check them and the clock (SigV4 allows 5 minutes of skew)", ctx.source),
        ),
        _ => (Class::Misconfigured, "this error is not retryable; see docs/contract.md".to_string()),
    };
    Verdict::Refuse(refusal.into_error(class, call, advice))
}
