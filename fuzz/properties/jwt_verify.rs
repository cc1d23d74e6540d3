//! Arbitrary bytes as a RegisterUsage signature / gate pass, through every public verifier.
//! Must never panic; must never accept a token not signed by the key (see common::assert_signed_here);
//! the three verifiers must agree with each other.

use super::common::{assert_signed_here, now, KEY, NONCE, PRODUCT};
use mpgate::entitlement::{jwt, nonce};
use mpgate::pass;
use std::time::Duration;

/// The host in the seeds' nonces (make-seeds).
const HOST: &str = "fuzz-host";

/// The property, for one input.
pub fn check(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let der = KEY.spki_der.as_slice();

    let expected = jwt::Expected { product_code: PRODUCT, key_version: 1, nonce: NONCE, now: now() };
    let verified = jwt::verify(token, &[der], &expected);
    let claims = jwt::verified_claims(token, &[der]);
    // A foreign key first: the index must point at the key that verified.
    let claims_2 = jwt::verified_claims(token, &[b"not a key".as_slice(), der]);
    let policy = pass::Policy { max_age: Duration::from_secs(300), now: now(), hostname: HOST.into() };
    let passed = pass::verify(token, std::slice::from_ref(&*KEY), &policy);

    if let Ok(v) = &verified {
        assert_signed_here(token, "jwt::verify");
        let (_, c) = claims.as_ref().expect("jwt::verify accepted what verified_claims refused");
        assert_eq!(c.issued_at, v.issued_at);
        assert_eq!((c.product_code.as_str(), c.key_version, c.nonce.as_str()), (PRODUCT, 1, NONCE));
    }
    match (&claims, &claims_2) {
        (Ok((i, c)), Ok((j, c2))) => {
            assert_signed_here(token, "jwt::verified_claims");
            assert_eq!((*i, *j), (0, 1));
            assert_eq!(c, c2);
        }
        (Err(_), Err(_)) => {}
        _ => panic!("verified_claims depends on an unrelated key in the list: {claims:?} / {claims_2:?}"),
    }
    if let Ok(p) = &passed {
        assert_signed_here(token, "pass::verify");
        let (_, c) = claims.as_ref().expect("pass::verify accepted what verified_claims refused");
        assert_eq!((p.product_code.as_str(), p.key_version), (c.product_code.as_str(), c.key_version));
        assert_eq!(p.hostname, HOST);
        assert!(p.age_secs <= 300);
    }

    // The nonce parser, which signed payloads alone would never reach with fuzzed text.
    if let Some(parsed) = nonce::parse(token) {
        assert!(token.starts_with("mpgate1:"), "{token:?}");
        assert!(parsed.host.len() <= nonce::MAX_HOST_PART, "{token:?}");
    }
}
