//! The SdkError triage both error tables in `classify` open with: what is worth another attempt (no
//! answer, a retryable code, any 5xx, and whether that attempt reached the service), what is final before AWS answered (the request could not be
//! built, or an interceptor refused it; the endpoint's TLS certificate did not verify; the egress
//! proxy refused the tunnel by policy; an HTTP redirect that is no AWS error answer), and the AWS
//! error answer that the table then
//! classifies by its code.
//! Must not: classify an AWS error code or give advice about one (that is `classify`, per service).
#![forbid(unsafe_code)]

use crate::error::{Class, Error};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

/// An error answer from AWS that is not worth another attempt.
pub(crate) struct Refusal {
    /// The error code (`UnknownError` when the answer carried none).
    pub code: String,
    /// Where License Manager's `RedirectException` says the license lives: the model's `Location`
    /// body member, else the HTTP `Location` header (docs/aws-behaviour.md §4.8).
    pub location: Option<String>,
    message: String,
    request_id: Option<String>,
}

impl Refusal {
    /// The final error, once `classify` has classified the code.
    pub(crate) fn into_error(self, class: Class, call: &'static str, advice: String) -> Error {
        Error::Aws { class, call, code: self.code, message: self.message, request_id: self.request_id, advice }
    }
}

/// What to do with a failed AWS call.
pub(crate) enum Triage {
    /// An error answer from AWS for `classify` to classify by its code.
    Answer(Refusal),
    /// Worth another attempt (timeout, connection or response error, a retryable code, any 5xx);
    /// `why` is the last error the deadline refusal quotes, `reached` whether the attempt reached
    /// the service (see [`never_sent`]).
    Retry { why: String, reached: bool },
    /// Final before any answer: the SDK could not build the request or an interceptor refused it,
    /// the endpoint's TLS certificate did not verify, or the proxy answered 407 or 403.
    Fail(Error),
}

/// Sort the failure of `call`; `retryable` lists the error codes worth another attempt.
pub(crate) fn triage<E>(e: SdkError<E, HttpResponse>, call: &'static str, retryable: &[&str]) -> Triage
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    if let Some(refusal) = redirect(&e, call) {
        return Triage::Fail(refusal);
    }
    let service = match &e {
        SdkError::ServiceError(s) => s,
        SdkError::ConstructionFailure(_) => {
            return Triage::Fail(Error::Unsendable { call, detail: crate::error::causes(&e) })
        }
        SdkError::DispatchFailure(_) if refused_before_sending(&e) => {
            return Triage::Fail(Error::Unsendable { call, detail: crate::error::causes(&e) })
        }
        SdkError::DispatchFailure(_) => {
            return match untrusted_certificate(&e, call).or_else(|| crate::aws::tunnel::refusal(&e, call)) {
                Some(refusal) => Triage::Fail(refusal),
                None => Triage::Retry { why: crate::error::causes(&e), reached: !never_sent(&e) },
            }
        }
        // No answer in time, or an answer that could not be read: the request was sent.
        _ => return Triage::Retry { why: crate::error::causes(&e), reached: true },
    };
    let status = service.raw().status().as_u16();
    let err = service.err();
    let code = err.code().unwrap_or("UnknownError").to_string();
    if retryable.contains(&code.as_str()) || status >= 500 {
        return Triage::Retry { why: format!("{code} (HTTP {status})"), reached: true };
    }
    Triage::Answer(Refusal {
        code,
        location: location(service.raw()),
        message: err.message().unwrap_or_default().to_string(),
        request_id: err.request_id().map(str::to_string),
    })
}

/// Whether one of the SDK's interceptors refused the request before it was sent (the SDK reports
/// that as a dispatch failure, but nothing was dispatched): an interceptor answers the same for the
/// same configuration, e.g. the User-Agent interceptor for an `AWS_EXECUTION_ENV` no header can
/// carry, so no retry can help. Found by walking the `source()` chain to the SDK's
/// `InterceptorError`; bounded like the other chain walks.
pub(crate) fn refused_before_sending(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |&e| e.source())
        .take(32)
        .any(|e| e.is::<aws_smithy_runtime_api::client::interceptors::error::InterceptorError>())
}

/// Whether a failed attempt never sent its request: the connector could not make the connection
/// (the name did not resolve; TCP refused, reset or timed out; the TLS handshake failed; the proxy
/// could not be reached or did not open its tunnel), which it reports as a [`ConnectFailed`]
/// around the proxy's [`ProxyFailed`] if any. Such an attempt costs the service's request quotas
/// nothing. Anything after the connection was made (a reset or close before the answer, no answer
/// within the read timeout) may have been served, and counts as reached. Bounded like the other
/// chain walks.
///
/// [`ConnectFailed`]: crate::aws::tls::ConnectFailed
/// [`ProxyFailed`]: crate::aws::tunnel::ProxyFailed
pub(crate) fn never_sent(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |&e| e.source())
        .take(32)
        .any(|e| e.is::<crate::aws::tls::ConnectFailed>() || e.is::<crate::aws::tunnel::ProxyFailed>())
}

/// The final refusal for an HTTP redirect (3xx) that is not License Manager's modelled
/// `RedirectException` (docs/aws-behaviour.md §4.8): the SDK follows no redirect, and an AWS API
/// answers a call rather than redirecting it, so a redirect means something else answered for the
/// endpoint, and it answers every retry the same way.
fn redirect<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>, call: &'static str) -> Option<Error> {
    let raw = e.raw_response()?;
    let status = raw.status().as_u16();
    let modelled = matches!(e, SdkError::ServiceError(s) if s.err().code() == Some("RedirectException"));
    ((300..400).contains(&status) && !modelled).then(|| Error::Redirected { call, status, location: location(raw) })
}

/// A redirect's target: the JSON body's `Location` member, else the `Location` header; one line,
/// and only a string (anything else in the body is not a location).
fn location(raw: &HttpResponse) -> Option<String> {
    let body = raw.body().bytes().and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    let member = body.as_ref().and_then(|v| v.get("Location")).and_then(serde_json::Value::as_str).map(str::to_string);
    member
        .or_else(|| raw.headers().get("Location").map(str::to_string))
        .map(|l| crate::error::one_line(&l))
        .filter(|l| !l.is_empty())
}

/// The final refusal when the connection failed because the endpoint's certificate did not verify:
/// a TLS-intercepting proxy or firewall, or the AWS name resolving elsewhere, answers every retry the
/// same way, so waiting out the deadline would only delay the operator. Found by walking the error's
/// `source()` chain to the connector's [`CertificateRejected`](crate::aws::tls::CertificateRejected);
/// any other TLS or connection failure (EOF or reset mid-handshake, a timeout) gives `None` and stays
/// transient.
pub(crate) fn untrusted_certificate(e: &(dyn std::error::Error + 'static), call: &'static str) -> Option<Error> {
    let rejected = crate::aws::tls::rejection(e)?;
    let problem = plain_words(rejected.problem()?);
    Some(Error::UntrustedCertificate { call, host: rejected.host.clone(), problem, via: rejected.via.clone() })
}

/// rustls's certificate verdict as an operator reads it, after "the TLS certificate presented for HOST".
fn plain_words(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => "is not issued by a public certificate authority (none of the Mozilla roots)".into(),
        C::BadSignature => "has a signature that does not match its issuer".into(),
        C::NotValidForName => "is for another name".into(),
        C::NotValidForNameContext { presented, .. } if presented.is_empty() => "names no host".into(),
        C::NotValidForNameContext { presented, .. } => {
            // webpki lists them as `DnsName("x")` / `IpAddress(1.2.3.4)`: keep the names.
            let bare = |n: &'_ str| -> String {
                n.split_once('(').and_then(|(_, r)| r.strip_suffix(')')).unwrap_or(n).trim_matches('"').to_string()
            };
            format!("is for another name ({})", presented.iter().map(|n| bare(n)).collect::<Vec<_>>().join(", "))
        }
        C::Expired | C::ExpiredContext { .. } => "has expired (or the container's clock is wrong)".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet (or the container's clock is wrong)".into(),
        C::Revoked => "has been revoked".into(),
        C::BadEncoding => "is malformed".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => "is not meant for a TLS server".into(),
        other => format!("did not verify ({})", crate::error::one_line(&format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{triage, Triage};
    use crate::aws::tls::CertificateRejected;
    use crate::error::Class;
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_runtime_api::http::Response;
    use aws_smithy_types::error::ErrorMetadata;
    use std::io;

    type Sdk = SdkError<ErrorMetadata, Response>;

    /// A dispatch failure with `source` as the connector's I/O error, as the SDK hands it to `classify`.
    fn dispatch(source: Box<dyn std::error::Error + Send + Sync>) -> Sdk {
        SdkError::dispatch_failure(ConnectorError::io(source))
    }

    /// rustls's verdict as hyper-rustls wraps it (an io::Error in an io::Error), for `host`.
    fn rejected(host: &str, problem: rustls::CertificateError) -> Box<dyn std::error::Error + Send + Sync> {
        let tls =
            io::Error::other(io::Error::new(io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(problem)));
        Box::new(CertificateRejected::for_test(host, Box::new(tls)))
    }

    #[test]
    fn an_untrusted_certificate_is_final_and_names_host_problem_cause_and_fix() {
        let host = "metering.marketplace.us-east-1.amazonaws.com";
        let e = dispatch(rejected(host, rustls::CertificateError::UnknownIssuer));
        let Triage::Fail(err) = triage(e, "RegisterUsage", &[]) else { panic!("a certificate failure was retried") };
        assert_eq!(err.class(), Class::Misconfigured);
        let line = err.to_string();
        for needle in
            [host, "not issued by a public certificate authority", "intercepts TLS", "SSL_CERT_FILE", "RegisterUsage"]
        {
            assert!(line.contains(needle), "{needle:?} missing from {line:?}");
        }
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_name_mismatch_lists_the_names_the_certificate_is_for() {
        let problem = rustls::CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("h.example").expect("name").to_owned(),
            presented: vec!["DnsName(\"other.example\")".into(), "IpAddress(127.0.0.1)".into()],
        };
        let Triage::Fail(err) = triage(dispatch(rejected("h.example", problem)), "MeterUsage", &[]) else {
            panic!("a name mismatch was retried")
        };
        let line = err.to_string();
        assert!(line.contains("presented for h.example is for another name (other.example, 127.0.0.1);"), "{line}");
    }

    /// A redirect that is no AWS error answer is final (82) and names its target; License
    /// Manager's modelled `RedirectException` still goes to the service's table.
    #[test]
    fn a_redirect_is_final_unless_it_is_the_modelled_redirect_exception() {
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let answer = |status: u16| {
            let mut raw = Response::new(StatusCode::try_from(status).expect("status"), SdkBody::from(""));
            raw.headers_mut().insert("location", "http://127.0.0.1:9/");
            raw
        };
        for status in [301, 302, 307, 308] {
            let e = Sdk::response_error("unhandled", answer(status));
            let Triage::Fail(err) = triage(e, "RegisterUsage", &[]) else { panic!("{status} retried") };
            assert_eq!(err.class(), Class::Misconfigured);
            let line = err.to_string();
            assert!(
                line.contains(&format!(
                    "RegisterUsage was answered with an HTTP {status} redirect to \"http://127.0.0.1:9/\""
                )),
                "{line}"
            );
            let unmodelled = ErrorMetadata::builder().message("moved").build();
            let e = Sdk::service_error(unmodelled, answer(status));
            assert!(matches!(triage(e, "RegisterUsage", &[]), Triage::Fail(_)), "{status}: an unknown code redirect");
        }
        let modelled = ErrorMetadata::builder().code("RedirectException").message("wrong region").build();
        let e = Sdk::service_error(modelled, answer(308));
        assert!(matches!(triage(e, "CheckoutLicense", &[]), Triage::Answer(_)), "RedirectException is classified");
    }

    #[test]
    fn every_certificate_verdict_is_final() {
        use rustls::CertificateError as C;
        for problem in [C::BadSignature, C::NotValidForName, C::Expired, C::NotValidYet, C::Revoked, C::BadEncoding] {
            let e = dispatch(rejected("h.example", problem.clone()));
            assert!(matches!(triage(e, "CheckoutLicense", &[]), Triage::Fail(_)), "{problem:?} was retried");
        }
    }

    #[test]
    fn a_request_the_sdk_cannot_build_or_an_interceptor_refuses_is_final_and_misconfigured() {
        use aws_smithy_runtime_api::client::interceptors::error::InterceptorError;
        let refused = InterceptorError::modify_before_signing("UserAgentInterceptor", "invalid HTTP header value");
        let dispatch =
            SdkError::<ErrorMetadata, Response>::dispatch_failure(ConnectorError::other(Box::new(refused), None));
        let built = SdkError::<ErrorMetadata, Response>::construction_failure("missing required field");
        for e in [dispatch, built] {
            let Triage::Fail(err) = triage(e, "RegisterUsage", &[]) else { panic!("retried") };
            assert_eq!(err.class(), Class::Misconfigured);
            let line = err.to_string();
            assert!(line.starts_with("misconfigured: RegisterUsage could not be sent:"), "{line}");
            assert!(line.contains("AWS_EXECUTION_ENV") && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn other_tls_and_connection_failures_stay_transient() {
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let alert = io::Error::other(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        ));
        // rustls's verdict without the connector's wrapper (no host to name) is not trusted to be final.
        let bare = io::Error::other(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        for source in [eof, reset, alert, bare] {
            let what = source.to_string();
            assert!(
                matches!(triage(dispatch(Box::new(source)), "MeterUsage", &[]), Triage::Retry { .. }),
                "{what} was final"
            );
        }
        let timeout = SdkError::<ErrorMetadata, Response>::dispatch_failure(ConnectorError::timeout("slow".into()));
        assert!(matches!(triage(timeout, "MeterUsage", &[]), Triage::Retry { .. }));
    }

    /// What the connector reports as a failed connection (DNS, refused, reset or timed out before
    /// the request, a TLS handshake cut short) never reached the service; any failure once the
    /// request could be sent (a reset or close before the answer, no answer in time) and any HTTP
    /// answer did, since the request may have been served.
    #[test]
    fn only_a_failed_connection_is_a_retry_that_did_not_reach_the_service() {
        use crate::aws::tls::ConnectFailed;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let reached = |e: Sdk| match triage(e, "RegisterUsage", &["ThrottlingException"]) {
            Triage::Retry { reached, .. } => reached,
            Triage::Fail(e) => panic!("final: {e}"),
            Triage::Answer(r) => panic!("classified: {}", r.code),
        };
        let connecting = [
            io::Error::from(io::ErrorKind::ConnectionRefused),
            io::Error::from(io::ErrorKind::ConnectionReset),
            io::Error::from(io::ErrorKind::TimedOut),
            io::Error::other("dns error: failed to lookup address information"),
            io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof"),
        ];
        for source in connecting {
            let what = source.to_string();
            let failed = ConnectFailed::for_test("metering.marketplace.us-east-1.amazonaws.com", 443, Box::new(source));
            assert!(!reached(dispatch(Box::new(failed))), "{what}: counted as reached");
        }
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(reached(dispatch(Box::new(reset))), "a reset once connected may follow a served request");
        let slow = Sdk::dispatch_failure(ConnectorError::timeout("no answer within 10 s".into()));
        assert!(reached(slow), "a read timeout may follow a served request");
        let attempt_timeout = Sdk::timeout_error("operation attempt timeout");
        assert!(reached(attempt_timeout));
        let answer = |status: u16| Response::new(StatusCode::try_from(status).expect("status"), SdkBody::from("{}"));
        let throttled = ErrorMetadata::builder().code("ThrottlingException").build();
        assert!(reached(Sdk::service_error(throttled, answer(400))));
        let unavailable = ErrorMetadata::builder().code("ServiceUnavailable").build();
        assert!(reached(Sdk::service_error(unavailable, answer(503))));
    }
}
