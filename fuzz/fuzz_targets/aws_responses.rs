//! Arbitrary bytes as the HTTP answer to RegisterUsage / MeterUsage / CheckoutLicense, through the real SDK client
//! (request building, signing, awsJson1.1 deserialisers, error parsing) with the network replaced by
//! a connector that returns the input. Then what mpgate does with the answer: the signature goes
//! through jwt::verify, errors are read the way `hourly::classify` reads them (status, code, message,
//! request id, the one-line rendering). Must never panic or accept an unsigned token.
//!
//! Input: byte 0 picks the operation (mod 3: RegisterUsage, MeterUsage, CheckoutLicense), byte 1 the
//! status (low 3 bits index STATUSES; bit 7: the body's first line becomes an `x-amzn-errortype`
//! header), the rest is the body. (The answer is read as `entitlement::contract` reads it up to its
//! private `judge`; `hourly::classify` is crate-private too, so `read_error` mirrors it.)
#![no_main]

mod common;

use aws_credential_types::Credentials;
use aws_sdk_marketplacemetering::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_marketplacemetering::operation::RequestId;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::DateTime;
use common::{assert_signed_here, now, KEY, NONCE, PRODUCT};
use libfuzzer_sys::fuzz_target;
use mpgate::entitlement::jwt;
use std::sync::{LazyLock, Mutex};

const STATUSES: [u16; 8] = [200, 400, 500, 403, 503, 200, 429, 404];

/// The answer the connector returns next: status, optional error-type header, body.
static ANSWER: Mutex<(u16, Option<String>, Vec<u8>)> = Mutex::new((200, None, Vec::new()));

#[derive(Debug)]
struct Canned;

impl HttpConnector for Canned {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let (status, error_type, body) = ANSWER.lock().expect("answer").clone();
        let mut response = HttpResponse::new(StatusCode::try_from(status).expect("status"), SdkBody::from(body));
        response.headers_mut().insert("x-amzn-requestid", "fuzz-request-1");
        if let Some(t) = error_type {
            // Not every fuzzed line is a legal header value; the real transport would refuse those too.
            let _ = response.headers_mut().try_insert("x-amzn-errortype", t);
        }
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Canned {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(Canned)
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"));

/// Built like `aws::Clients::metering`, minus TLS and the endpoint lock.
static LICENSES: LazyLock<aws_sdk_licensemanager::Client> = LazyLock::new(|| {
    let config = aws_sdk_licensemanager::Config::builder()
        .behavior_version(aws_sdk_licensemanager::config::BehaviorVersion::latest())
        .region(aws_sdk_licensemanager::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDFUZZ", "fuzz-secret", None, None, "fuzz"))
        .http_client(SharedHttpClient::new(Canned))
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_licensemanager::Client::from_conf(config)
});

static CLIENT: LazyLock<aws_sdk_marketplacemetering::Client> = LazyLock::new(|| {
    let config = aws_sdk_marketplacemetering::Config::builder()
        .behavior_version(aws_sdk_marketplacemetering::config::BehaviorVersion::latest())
        .region(aws_sdk_marketplacemetering::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDFUZZ", "fuzz-secret", None, None, "fuzz"))
        .http_client(SharedHttpClient::new(Canned))
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_marketplacemetering::Client::from_conf(config)
});

/// What `hourly::classify` reads from a failed call (it is crate-private, so this mirrors it).
fn read_error<E>(e: SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    let rendered = mpgate::error::one_line(&DisplayErrorContext(&e).to_string());
    assert!(!rendered.contains('\n'));
    if let SdkError::ServiceError(s) = &e {
        let status = s.raw().status().as_u16();
        let err = s.err();
        return format!(
            "{status} {} {} {:?} {rendered}",
            err.code().unwrap_or("UnknownError"),
            mpgate::error::one_line(err.message().unwrap_or_default()),
            err.request_id()
        );
    }
    rendered
}

fuzz_target!(|data: &[u8]| {
    let [op, status, body @ ..] = data else { return };
    let (error_type, body) = match (status & 0x80 != 0, body.iter().position(|b| *b == b'\n')) {
        (true, Some(i)) => (Some(String::from_utf8_lossy(&body[..i]).into_owned()), &body[i + 1..]),
        _ => (None, body),
    };
    *ANSWER.lock().expect("answer") = (STATUSES[usize::from(status & 7)], error_type, body.to_vec());

    RUNTIME.block_on(async {
        if op % 3 == 2 {
            use aws_sdk_licensemanager::types::{CheckoutType, EntitlementData, EntitlementDataUnit};
            let wanted = EntitlementData::builder()
                .name("ReadOnly")
                .unit(EntitlementDataUnit::None)
                .build()
                .expect("entitlement");
            let result = LICENSES
                .checkout_license()
                .product_sku(PRODUCT)
                .checkout_type(CheckoutType::Provisional)
                .key_fingerprint("aws:294406891311:AWS/Marketplace:issuer-fingerprint")
                .entitlements(wanted)
                .client_token("fuzz-client-token")
                .send()
                .await;
            match result {
                Ok(out) => {
                    let _ = format!(
                        "{:?} {:?} {:?} {:?} {:?} {:?}",
                        out.entitlements_allowed(),
                        out.license_consumption_token(),
                        out.expiration(),
                        out.issued_at(),
                        out.node_id(),
                        out.signed_token().map(str::len)
                    );
                }
                Err(e) => {
                    let _ = read_error(e);
                }
            }
        } else if op % 3 == 0 {
            let result = CLIENT.register_usage().product_code(PRODUCT).public_key_version(1).nonce(NONCE).send().await;
            match result {
                Ok(out) => {
                    let _ = format!("{:?}", out.public_key_rotation_timestamp());
                    if let Some(signature) = out.signature() {
                        let expected =
                            jwt::Expected { product_code: PRODUCT, key_version: 1, nonce: NONCE, now: now() };
                        if jwt::verify(signature, &[KEY.spki_der.as_slice()], &expected).is_ok() {
                            assert_signed_here(signature, "RegisterUsage answer");
                        }
                    }
                }
                Err(e) => {
                    let _ = read_error(e);
                }
            }
        } else {
            let result = CLIENT
                .meter_usage()
                .product_code(PRODUCT)
                .timestamp(DateTime::from_secs(1_800_000_000))
                .usage_dimension("requests")
                .usage_quantity(1)
                .send()
                .await;
            match result {
                Ok(out) => {
                    let _ = out.metering_record_id().map(str::to_string);
                }
                Err(e) => {
                    let _ = read_error(e);
                }
            }
        }
    });
});
