//! The SdkError triage both pricing models' `classify` open with: what is worth another attempt (no
//! answer, a retryable code, any 5xx), what is a bug (the request could not be built), and the AWS
//! error answer that the model then classifies by its code.
//! Must not: name a class or give advice; each pricing model knows its own error codes.
#![forbid(unsafe_code)]

use crate::error::{Class, Error};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

/// An error answer from AWS that is not worth another attempt.
pub(crate) struct Refusal {
    /// The error code (`UnknownError` when the answer carried none).
    pub code: String,
    /// The `Location` header: License Manager's `RedirectException` names the license's home region.
    pub location: Option<String>,
    message: String,
    request_id: Option<String>,
}

impl Refusal {
    /// The final error, once the pricing model has classified the code.
    pub(crate) fn into_error(self, class: Class, call: &'static str, advice: String) -> Error {
        Error::Aws { class, call, code: self.code, message: self.message, request_id: self.request_id, advice }
    }
}

/// `Ok` is an error answer for the caller to classify; `Err` is already `classify`'s result:
/// `Err(Ok(reason))` to try again (timeout, connection or response error, a `retryable` code, any 5xx),
/// `Err(Err(Internal))` when the SDK could not build the request.
pub(crate) fn triage<E>(e: SdkError<E, HttpResponse>, retryable: &[&str]) -> Result<Refusal, Result<String, Error>>
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    let service = match &e {
        SdkError::ServiceError(s) => s,
        SdkError::ConstructionFailure(_) => return Err(Err(Error::Internal(DisplayErrorContext(&e).to_string()))),
        _ => return Err(Ok(crate::error::one_line(&DisplayErrorContext(&e).to_string()))),
    };
    let status = service.raw().status().as_u16();
    let err = service.err();
    let code = err.code().unwrap_or("UnknownError").to_string();
    if retryable.contains(&code.as_str()) || status >= 500 {
        return Err(Ok(format!("{code} (HTTP {status})")));
    }
    Ok(Refusal {
        code,
        location: service.raw().headers().get("Location").map(str::to_string),
        message: err.message().unwrap_or_default().to_string(),
        request_id: err.request_id().map(str::to_string),
    })
}
