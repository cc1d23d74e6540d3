//! Authenticates a SigV4-signed request to a principal, with the error codes AWS's awsJson
//! front door uses. The ordering of checks mirrors what the gate would see from AWS.

use crate::state::{IssuedCred, Shared};
use crate::wire::proto::{json_error, Outcome};
use crate::wire::request::Incoming;
use crate::wire::sigv4::{self, SigError, SignedRequest};

/// A verified caller: the credential used and the region it signed for.
pub struct Caller {
    pub cred: IssuedCred,
    pub signing_region: String,
}

/// `Err` carries the complete error answer (with the signing region if one was
/// parsed), boxed because it is large.
pub fn authenticate(shared: &Shared, req: &Incoming, service: &str) -> Result<Caller, Box<Outcome>> {
    let Some(authz) = sigv4::header(&req.headers, "authorization") else {
        return Err(Box::new(json_error(400, "MissingAuthenticationTokenException", "Missing Authentication Token")));
    };
    let cred = sigv4::parse_authorization(authz).map_err(|e| {
        Box::new(match e {
            SigError::Malformed(m) => json_error(400, "IncompleteSignatureException", &m),
            _ => json_error(400, "IncompleteSignatureException", "Malformed Authorization header."),
        })
    })?;
    let with_region = |o: Outcome| Outcome { signing_region: Some(cred.region.clone()), ..o };
    if cred.service != service {
        return Err(Box::new(with_region(json_error(
            403,
            "InvalidSignatureException",
            &format!("Credential should be scoped to correct service: '{service}'. "),
        ))));
    }
    let invalid_token = || {
        with_region(json_error(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ))
    };
    let issued = shared.lock().creds.get(&cred.access_key_id).cloned();
    let Some(issued) = issued else {
        return Err(Box::new(invalid_token()));
    };
    let presented = sigv4::header(&req.headers, "x-amz-security-token");
    if presented != issued.session_token.as_deref() {
        return Err(Box::new(invalid_token()));
    }
    // STS session credentials stop working at their Expiration (real clock, like the client's).
    let expiry = shared.lock().cred_expiry.get(&cred.access_key_id).copied();
    if expiry.is_some_and(|e| shared.wall_now() >= e) {
        return Err(Box::new(with_region(json_error(
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ))));
    }
    let signed = SignedRequest {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &req.headers,
        body: &req.body,
    };
    let verdict = sigv4::verify(&signed, &cred, &issued.secret, shared.wall_now());
    let err = |code: &str, status: u16, m: &str| Err(Box::new(with_region(json_error(status, code, m))));
    match verdict {
        Ok(()) => Ok(Caller {
            cred: issued,
            signing_region: cred.region.clone(),
        }),
        Err(SigError::Mismatch) => err(
            "InvalidSignatureException",
            403,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ),
        Err(SigError::Expired(m)) => err("InvalidSignatureException", 403, &m),
        Err(SigError::Malformed(m)) => err("IncompleteSignatureException", 400, &m),
        Err(SigError::Missing) => err("MissingAuthenticationTokenException", 400, "Missing Authentication Token"),
    }
}
