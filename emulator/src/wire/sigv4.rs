//! SigV4 verification, written independently of the AWS SDK on purpose: the emulator checks the
//! gate's signing rather than mirroring it. Pure: the caller supplies the request parts, the
//! secret lookup and the clock. Owns nothing about which principal a key belongs to.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

type HmacSha256 = Hmac<Sha256>;

/// AWS rejects signatures dated more than 5 minutes from its clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// The request as seen on the wire.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// Path as sent (already percent-encoded by the client).
    pub path: &'a str,
    pub query: &'a str,
    /// Header names lower-cased; repeated headers appear repeatedly.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a signature was rejected; `services::auth` maps each onto an AWS error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    Missing,
    Malformed(String),
    Mismatch,
    Expired(String),
}

pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(value: &str) -> Result<Credential, SigError> {
    let bad = |m: &str| SigError::Malformed(m.to_string());
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| bad("Authorization header requires the AWS4-HMAC-SHA256 algorithm."))?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(|| bad("Malformed Authorization header."))?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => return Err(bad("Malformed Authorization header.")),
        }
    }
    let (cred, signed, sig) = match (cred, signed, sig) {
        (Some(c), Some(s), Some(g)) => (c, s, g),
        _ => return Err(bad("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.")),
    };
    let scope: Vec<&str> = cred.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" || scope.iter().any(|s| s.is_empty()) {
        return Err(bad("Credential should be of the form AKID/date/region/service/aws4_request."));
    }
    Ok(Credential {
        access_key_id: scope[0].to_string(),
        date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: sig.to_string(),
    })
}

/// RFC 3986 encoding as SigV4 defines it: everything but unreserved characters is `%XX`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false))).collect();
    pairs.sort();
    let joined: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    joined.join("&")
}

fn canonical_header_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds the canonical request. Non-S3 services encode the already-encoded path once more.
pub fn canonical_request(req: &SignedRequest<'_>, signed_headers: &[String]) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let mut headers = String::new();
    let mut names: Vec<String> = signed_headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    names.sort();
    for name in &names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| canonical_header_value(v))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = match header(req.headers, "x-amz-content-sha256") {
        Some(h) => h.to_string(),
        None => hex::encode(Sha256::digest(req.body)),
    };
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(path, true),
        canonical_query(req.query),
        headers,
        names.join(";"),
        payload
    )
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The expected signature for `req` under `secret`.
pub fn signature(req: &SignedRequest<'_>, cred: &Credential, amz_date: &str, secret: &str) -> String {
    let creq = canonical_request(req, &cred.signed_headers);
    let scope = format!("{}/{}/{}/aws4_request", cred.date, cred.region, cred.service);
    let sts = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(creq.as_bytes())));
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), &cred.date);
    let k_region = hmac(&k_date, &cred.region);
    let k_service = hmac(&k_region, &cred.service);
    let k_signing = hmac(&k_service, "aws4_request");
    hex::encode(hmac(&k_signing, &sts))
}

/// Verifies `req` was signed by `cred` with `secret`, at a time within `MAX_SKEW` of `now`.
pub fn verify(req: &SignedRequest<'_>, cred: &Credential, secret: &str, now: SystemTime) -> Result<(), SigError> {
    let amz_date = header(req.headers, "x-amz-date").ok_or_else(|| {
        SigError::Malformed(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
        )
    })?;
    let when = crate::model::clock::parse_amz_date(amz_date)
        .ok_or_else(|| SigError::Malformed(format!("Invalid X-Amz-Date: {amz_date}")))?;
    if !amz_date.starts_with(&cred.date) {
        return Err(SigError::Mismatch);
    }
    if !cred.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed("'Host' must be a signed header.".into()));
    }
    let expected = signature(req, cred, amz_date, secret);
    // A plain comparison: timing side channels are irrelevant in a loopback test emulator.
    if expected != cred.signature {
        return Err(SigError::Mismatch);
    }
    match now.duration_since(when) {
        Ok(late) if late > MAX_SKEW => Err(SigError::Expired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            crate::model::clock::amz_date(now - MAX_SKEW),
            crate::model::clock::amz_date(now)
        ))),
        Err(early) if early.duration() > MAX_SKEW => Err(SigError::Expired(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            crate::model::clock::amz_date(now + MAX_SKEW),
            crate::model::clock::amz_date(now)
        ))),
        _ => Ok(()),
    }
}
