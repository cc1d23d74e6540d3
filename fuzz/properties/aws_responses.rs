//! Arbitrary bytes as the HTTP answer to RegisterUsage / MeterUsage / CheckoutLicense, through the real SDK client
//! (request building, signing, awsJson1.1 deserialisers, error parsing) with the network replaced by
//! a connector that returns the input. Then mpgate's own judgement of that answer, through
//! `mpgate::entitlement::fuzzing` (the same `hourly::judge`, `custom::judge`, `contract::judge` and
//! `classify` a start runs): admit, retry or refuse. Must never panic, never admit an unsigned
//! RegisterUsage token, a failed dry run or a checkout without a consumption token, and every refusal
//! must render as one line.
//!
//! Input: byte 0 picks the operation (mod 3: RegisterUsage, MeterUsage dry run, CheckoutLicense), byte 1
//! the status (low 3 bits index STATUSES; bit 7: the body's first line becomes an `x-amzn-errortype`
//! header), the rest is the body.

use super::common::{assert_signed_here, now, KEY, NONCE, PRODUCT};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::DateTime;
use mpgate::entitlement::{fuzzing, Verdict};
use mpgate::identity::{BakedEntitlement, BakedKey, BakedProduct};
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

/// The product the calls are made for, as a build would bake it: key version 1 is the fuzz key.
static KEYS: LazyLock<[BakedKey; 1]> =
    LazyLock::new(|| [BakedKey { version: 1, bits: 2048, sha256: "", der: KEY.spki_der.as_slice() }]);
static BAKED: LazyLock<BakedProduct> = LazyLock::new(|| BakedProduct { code: PRODUCT, tier: "paid", keys: &KEYS[..] });
/// Contract entitlements: one that admits, one that does not.
static ENTITLEMENTS: [BakedEntitlement; 2] = [
    BakedEntitlement { name: "ReadOnly", unit: "None", value: None, admits: true },
    BakedEntitlement { name: "Seats", unit: "Count", value: Some(1), admits: false },
];

/// What every verdict must satisfy; returns whether it admitted.
fn judged(verdict: Verdict<()>) -> bool {
    match verdict {
        Verdict::Admit(()) => true,
        Verdict::Retry { why, reached } => {
            assert!(!why.contains('\n'), "retry reason is not one line: {why:?}");
            // Every input is an HTTP answer: it reached the service, and is paced as a throttle.
            assert!(reached, "an answer counted as never sent: {why:?}");
            false
        }
        Verdict::Refuse(e) => {
            // main prints `one_line(e.to_string())`; the class must be one of the documented exits.
            let line = mpgate::error::one_line(&e.to_string());
            assert!(!line.contains('\n') && !line.is_empty(), "refusal is not one line: {line:?}");
            let code = e.class().exit_code();
            assert!(mpgate::error::EXIT_TABLE.iter().any(|row| row.1 == code), "undocumented exit {code}");
            false
        }
    }
}

/// The property, for one input.
pub fn check(data: &[u8]) {
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
            let had_token =
                result.as_ref().is_ok_and(|out| out.license_consumption_token().is_some_and(|t| !t.is_empty()));
            if judged(fuzzing::checkout_license(&LICENSES, result, &BAKED, &ENTITLEMENTS).await) {
                assert!(had_token, "a checkout without a LicenseConsumptionToken admitted");
            }
        } else if op % 3 == 0 {
            let result = CLIENT.register_usage().product_code(PRODUCT).public_key_version(1).nonce(NONCE).send().await;
            let signature = result.as_ref().ok().and_then(|out| out.signature().map(str::to_string));
            if judged(fuzzing::register_usage(result, &BAKED, &KEYS[0], NONCE, now())) {
                assert_signed_here(signature.as_deref().unwrap_or_default(), "RegisterUsage answer");
            }
        } else {
            let result = CLIENT
                .meter_usage()
                .product_code(PRODUCT)
                .timestamp(DateTime::from_secs(1_800_000_000))
                .usage_dimension("requests")
                .usage_quantity(0)
                .dry_run(true)
                .send()
                .await;
            let ok = result.is_ok();
            if judged(fuzzing::meter_usage_dry_run(result, &BAKED, "requests")) {
                // Only a 200 or an error whose code is DryRunOperation may pass.
                assert!(ok || data.windows(15).any(|w| w == b"DryRunOperation"), "a failed dry run admitted");
            }
        }
    });
}
