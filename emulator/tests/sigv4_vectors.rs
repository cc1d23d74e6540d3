//! The SigV4 verifier against AWS's published test-suite vectors, so it cannot be trivially wrong.

use mpgate_emulator::sigv4::{self, SigError, SignedRequest};
use std::time::Duration;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn headers() -> Vec<(String, String)> {
    vec![("host".into(), "example.amazonaws.com".into()), ("x-amz-date".into(), "20150830T123600Z".into())]
}

fn auth(sig: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}")
}

fn at_vector_time() -> std::time::SystemTime {
    mpgate_emulator::clock::parse_amz_date("20150830T123600Z").expect("valid date")
}

#[test]
fn get_vanilla_verifies() {
    let h = headers();
    let req = SignedRequest { method: "GET", path: "/", query: "", headers: &h, body: b"" };
    let cred = sigv4::parse_authorization(&auth("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))
        .expect("parses");
    assert_eq!(cred.access_key_id, "AKIDEXAMPLE");
    assert_eq!(cred.service, "service");
    assert_eq!(sigv4::verify(&req, &cred, SECRET, at_vector_time()), Ok(()));
    // One wrong secret character, or one changed header, must fail.
    assert_eq!(
        sigv4::verify(&req, &cred, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", at_vector_time()),
        Err(SigError::Mismatch)
    );
    let mut h2 = headers();
    h2[0].1 = "example.amazonaws.org".into();
    let req2 = SignedRequest { headers: &h2, ..req };
    assert_eq!(sigv4::verify(&req2, &cred, SECRET, at_vector_time()), Err(SigError::Mismatch));
}

#[test]
fn get_vanilla_query_order_key_case_verifies() {
    let h = headers();
    let req = SignedRequest { method: "GET", path: "/", query: "Param2=value2&Param1=value1", headers: &h, body: b"" };
    let cred = sigv4::parse_authorization(&auth("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"))
        .expect("parses");
    assert_eq!(sigv4::verify(&req, &cred, SECRET, at_vector_time()), Ok(()));
}

#[test]
fn stale_signature_is_expired_fresh_is_not() {
    let h = headers();
    let req = SignedRequest { method: "GET", path: "/", query: "", headers: &h, body: b"" };
    let cred = sigv4::parse_authorization(&auth("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))
        .expect("parses");
    let t = at_vector_time();
    assert_eq!(sigv4::verify(&req, &cred, SECRET, t + Duration::from_secs(299)), Ok(()));
    assert!(
        matches!(sigv4::verify(&req, &cred, SECRET, t + Duration::from_secs(301)), Err(SigError::Expired(m)) if m.starts_with("Signature expired"))
    );
    assert!(matches!(sigv4::verify(&req, &cred, SECRET, t - Duration::from_secs(301)), Err(SigError::Expired(_))));
}

#[test]
fn malformed_authorization_is_rejected() {
    assert!(sigv4::parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service").is_err());
    assert!(sigv4::parse_authorization("Bearer x").is_err());
    assert!(sigv4::parse_authorization("AWS4-HMAC-SHA256 Credential=A/B/C/D/aws4_request, SignedHeaders=host").is_err());
}
