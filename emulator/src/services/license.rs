//! AWS License Manager for contract pricing (docs/aws-behaviour.md §4): the dispatcher and the seat side,
//! CheckoutLicense, ExtendLicenseConsumption and CheckInLicense (reads and tokens live in
//! `license_info`). Every error carries its explicit HTTP status
//! (§4.5) and a `Message` member. Seats live in the seat ledger; a PROVISIONAL checkout that is
//! neither extended nor checked in returns to the pool when the emulated clock passes its expiry.

use super::auth::{authenticate, Caller};
use crate::model::ledger::{Seat, SeatState};
use crate::model::world::{DateStyle, License, OutsideHomeRegion, RedirectLocation};
use crate::state::{Inner, Shared};
use crate::wire::ids::random_string;
use crate::wire::input::{object, parse_body, Members, Res, Service};
use crate::wire::proto::{json_ok, lm_error, Outcome};
use crate::wire::request::Incoming;
use serde_json::{json, Value};

pub const TARGET_PREFIX: &str = "AWSLicenseManager.";
const L: Service = Service::LicenseManager;

/// The `EntitlementDataUnit` enum, one a line: the file the gate's build.rs validates
/// MPGATE_ENTITLEMENTS against (one list for both; the gate does not depend on this crate). It is a
/// symlink to the gate's src/license_units.txt, so `cargo package` copies it into this crate too.
const UNITS: &str = include_str!("license_units.txt");

fn e(status: u16, code: &str, m: &str) -> Box<Outcome> {
    Box::new(lm_error(status, code, m))
}
fn not_found(m: &str) -> Box<Outcome> {
    e(400, "ResourceNotFoundException", m)
}

pub fn handle(shared: &Shared, op: &str, req: &Incoming) -> Outcome {
    if op == "GetAccessToken" {
        // Both AWS samples call it anonymously (docs/aws-behaviour.md §10.10); a signature, if any, is not checked.
        return super::license_info::get_access_token(shared, req).unwrap_or_else(|o| *o);
    }
    if !crate::wire::proto::LM_OPS.contains(&op) {
        let m = format!("operation {op} is not implemented by mpgate-emulator");
        return lm_error(400, "UnknownOperationException", &m);
    }
    let caller = match authenticate(shared, req, "license-manager") {
        Ok(c) => c,
        Err(o) => return *o,
    };
    let region = caller.signing_region.clone();
    let workload = caller.cred.principal.workload.clone();
    let mut out = if let Some(message) = shared.denied(&workload, &format!("license-manager:{op}")) {
        lm_error(403, "AuthorizationException", &message)
    } else if shared.throttled(&caller.cred.principal.account, op) {
        crate::wire::proto::throttle(op)
    } else if let Some(refusal) = super::license_situations::refuse(shared, &caller, op, req) {
        refusal
    } else {
        let r = match op {
            "CheckoutLicense" => checkout(shared, &caller, req),
            "ExtendLicenseConsumption" => extend(shared, &caller, req),
            "CheckInLicense" => check_in(shared, &caller, req),
            "GetLicense" => super::license_info::get_license(shared, &caller, req),
            _ => super::license_info::list_received(shared, &caller, req),
        };
        let out = r.unwrap_or_else(|o| *o);
        super::license_situations::settled(shared, &caller, op, req, &out);
        out
    };
    out.signing_region = Some(region);
    out.workload = Some(workload);
    out
}

/// Returns PROVISIONAL seats whose time ran out to the pool.
pub fn expire_seats(inner: &mut Inner) {
    let now = crate::model::clock::unix_secs(inner.clock.now());
    for s in inner.seats.iter_mut().filter(|s| s.state == SeatState::Out && s.expires_at <= now) {
        s.state = SeatState::Expired;
    }
}

fn consumed(inner: &Inner, license: &str, name: &str) -> i64 {
    inner
        .seats
        .iter()
        .filter(|s| s.license_arn == license && matches!(s.state, SeatState::Out | SeatState::Consumed))
        .flat_map(|s| s.entitlements.iter())
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

struct Wanted {
    name: String,
    value: Option<String>,
    unit: String,
}

fn checkout(shared: &Shared, caller: &Caller, req: &Incoming) -> Res<Outcome> {
    let obj = parse_body(L, &req.body)?;
    let mut m = Members::new(L, &obj);
    let sku = m.string("ProductSKU")?;
    let kind = m.string("CheckoutType")?;
    let fingerprint = m.string("KeyFingerprint")?;
    let ents = m.list("Entitlements")?;
    let token = m.string_len("ClientToken", 1, 2048)?;
    let node = m.string("NodeId")?;
    let _beneficiary = m.string("Beneficiary")?;
    if let Some(k) = &kind {
        if k != "PROVISIONAL" && k != "PERPETUAL" {
            m.violation("CheckoutType", k, "Member must satisfy enum value set: [PROVISIONAL, PERPETUAL]");
        }
    }
    if token.as_deref().is_some_and(|t| t.chars().any(char::is_whitespace)) {
        m.violation("ClientToken", "", "Member must satisfy regular expression pattern: \\S+");
    }
    let (sku, kind, fingerprint, ents, token) = (
        m.require("ProductSKU", sku),
        m.require("CheckoutType", kind),
        m.require("KeyFingerprint", fingerprint),
        m.require("Entitlements", ents),
        m.require("ClientToken", token),
    );
    let mut wanted = Vec::new();
    for v in ents.map(Vec::as_slice).unwrap_or_default() {
        let o = object(L, v, "EntitlementData")?;
        let mut em = Members::new(L, o);
        let (name, value, unit) = (em.string("Name")?, em.string("Value")?, em.string("Unit")?);
        let (name, unit) = (em.require("Name", name), em.require("Unit", unit));
        if let Some(u) = &unit {
            if !UNITS.lines().any(|unit| unit == u) {
                em.violation("Unit", u, "Member must satisfy enum value set");
            }
        }
        em.finish()?;
        wanted.push(Wanted { name: name.unwrap_or_default(), value, unit: unit.unwrap_or_default() });
    }
    m.finish()?;
    let (sku, kind, fingerprint, token) =
        (sku.unwrap_or_default(), kind.unwrap_or_default(), fingerprint.unwrap_or_default(), token.unwrap_or_default());
    let p = &caller.cred.principal;
    let license = shared
        .licenses()
        .into_iter()
        .find(|l| l.account == p.account && l.product_sku == sku && l.key_fingerprint == fingerprint)
        .ok_or_else(|| not_found("No license found for this ProductSKU and KeyFingerprint."))?;
    let license = &license;
    if caller.signing_region != license.home_region && license.outside_home_region == OutsideHomeRegion::Redirect {
        return Err(redirect(license));
    }
    let now_t = shared.now();
    let now = crate::model::clock::unix_secs(now_t);
    let active = license.status == "AVAILABLE"
        && crate::model::clock::parse_rfc3339(&license.begin).is_none_or(|b| b <= now_t)
        && license.end.as_deref().and_then(crate::model::clock::parse_rfc3339).is_none_or(|end| now_t < end);
    if !active {
        return Err(e(400, "NoEntitlementsAllowedException", "The license is not active."));
    }
    let request_fp =
        json!([sku, kind, fingerprint, node, wanted.iter().map(|w| (&w.name, &w.value, &w.unit)).collect::<Vec<_>>()])
            .to_string();
    let mut inner = shared.lock();
    expire_seats(&mut inner);
    if let Some((fp, idx)) = inner.checkout_tokens.get(&(p.account.clone(), token.clone())) {
        if *fp != request_fp {
            return Err(e(
                400,
                "InvalidParameterValueException",
                "ClientToken was already used with different parameters.",
            ));
        }
        let seat = inner.seats[*idx].clone();
        return Ok(checkout_answer(shared, license, &seat, &wanted));
    }
    let mut allowed = Vec::new();
    for w in &wanted {
        let Some(have) = license.entitlements.iter().find(|x| x.name == w.name && x.unit == w.unit) else {
            continue;
        };
        if have.unit == "None" {
            allowed.push((w.name.clone(), 0));
            continue;
        }
        let n: i64 = match w.value.as_deref().map(str::parse) {
            Some(Ok(n)) if n >= 0 => n,
            None => 1,
            _ => {
                return Err(e(400, "InvalidParameterValueException", &format!("Value of {} must be a count.", w.name)))
            }
        };
        let left = have.max_count.unwrap_or(0) - consumed(&inner, &license.arn, &w.name);
        if n > left && !have.overage {
            let m = format!("Not enough {} left: requested {n}, available {left}.", w.name);
            return Err(e(400, "NoEntitlementsAllowedException", &m));
        }
        allowed.push((w.name.clone(), n));
    }
    if allowed.is_empty() {
        return Err(e(
            400,
            "NoEntitlementsAllowedException",
            "No entitlements allowed for the requested entitlements.",
        ));
    }
    let perpetual = kind == "PERPETUAL";
    let seat = Seat {
        consumption_token: random_string(64),
        license_arn: license.arn.clone(),
        account: p.account.clone(),
        workload: p.workload.clone(),
        checkout_type: kind,
        entitlements: allowed,
        node_id: node,
        issued_at: now,
        expires_at: now + 60 * i64::from(license.provisional_ttl_minutes),
        state: if perpetual { SeatState::Consumed } else { SeatState::Out },
    };
    inner.seats.push(seat.clone());
    let idx = inner.seats.len() - 1;
    inner.checkout_tokens.insert((p.account.clone(), token), (request_fp, idx));
    drop(inner);
    Ok(checkout_answer(shared, license, &seat, &wanted))
}

fn iso(secs: i64, style: Option<DateStyle>) -> String {
    crate::model::clock::license_date(crate::model::clock::from_unix_secs(secs), style)
}

/// `RedirectException` (308): the license lives in another region; `Location` (the model's body
/// member, the HTTP header, or both: `License::redirect_location`) names its endpoint.
fn redirect(license: &License) -> Box<Outcome> {
    let location = format!("https://license-manager.{}.amazonaws.com", license.home_region);
    let mut body = json!({"__type": "RedirectException", "Message": format!("The license home Region is {}.", license.home_region)});
    if license.redirect_location != RedirectLocation::Header {
        body["Location"] = json!(location);
    }
    let mut o = lm_error(308, "RedirectException", "");
    o.body = body.to_string();
    Box::new(if license.redirect_location == RedirectLocation::Body { o } else { o.header("Location", &location) })
}

fn checkout_answer(shared: &Shared, license: &License, seat: &Seat, wanted: &[Wanted]) -> Outcome {
    let allowed: Vec<Value> = seat
        .entitlements
        .iter()
        .filter_map(|(name, n)| {
            let w = wanted.iter().find(|w| &w.name == name)?;
            let mut d = json!({"Name": name, "Unit": w.unit});
            if w.unit != "None" {
                d["Value"] = json!(n.to_string());
            } else if let Some(v) = license.entitlements.iter().find(|x| &x.name == name).and_then(|x| x.value.clone())
            {
                d["Value"] = json!(v);
            }
            Some(d)
        })
        .collect();
    let mut body = json!({
        "CheckoutType": seat.checkout_type,
        "LicenseConsumptionToken": seat.consumption_token,
        "EntitlementsAllowed": allowed,
        "IssuedAt": iso(seat.issued_at, license.date_style),
        "Expiration": iso(seat.expires_at, license.date_style),
        "LicenseArn": license.arn,
    });
    if let Some(n) = &seat.node_id {
        body["NodeId"] = json!(n);
    }
    body["SignedToken"] = json!(signed_token(shared, &body));
    json_ok(body)
}

/// The `SignedToken`: a PS256 JWS over the checkout (LMUG license-signing.md keys), padded to the
/// model's 4096-character minimum. Real format and key are unknown (docs/aws-behaviour.md §10.8).
fn signed_token(shared: &Shared, body: &Value) -> String {
    let mut payload = json!({
        "entitlementsAllowed": body["EntitlementsAllowed"].as_array().map(|a| a.iter().map(|x| json!({"name": x["Name"], "unit": x["Unit"], "value": x.get("Value")})).collect::<Vec<_>>()),
        "expiration": body["Expiration"],
        "issuedAt": body["IssuedAt"],
        "licenseArn": body["LicenseArn"],
        "licenseConsumptionToken": body["LicenseConsumptionToken"],
        "nodeId": body.get("NodeId"),
        "checkoutMetadata": {},
    });
    let header = crate::wire::jwt::encode_part(&json!({"alg": "PS256", "typ": "JWT", "kid": "mpgate-emulator"}));
    let base = header.len() + crate::wire::jwt::encode_part(&payload).len() + 2 + 342;
    if base < 4096 {
        payload["checkoutMetadata"] = json!({"padding": "0".repeat((4096 - base) * 3 / 4 + 8)});
    }
    let input = format!("{header}.{}", crate::wire::jwt::encode_part(&payload));
    let sig = crate::wire::jwt::ps256(&shared.keys.emulator, &input);
    format!("{input}.{}", crate::wire::jwt::b64(&sig))
}

fn consumption_token(req: &Incoming) -> Res<(String, Option<bool>)> {
    let obj = parse_body(L, &req.body)?;
    let mut m = Members::new(L, &obj);
    let token = m.string("LicenseConsumptionToken")?;
    let dry = m.bool("DryRun")?;
    let token = m.require("LicenseConsumptionToken", token);
    m.finish()?;
    Ok((token.unwrap_or_default(), dry))
}

fn extend(shared: &Shared, caller: &Caller, req: &Incoming) -> Res<Outcome> {
    let (token, dry) = consumption_token(req)?;
    let mut guard = shared.lock();
    let inner = &mut *guard;
    expire_seats(inner);
    let now = crate::model::clock::unix_secs(inner.clock.now());
    let account = &caller.cred.principal.account;
    let seat = inner
        .seats
        .iter_mut()
        .find(|s| s.consumption_token == token && &s.account == account)
        .ok_or_else(|| not_found("License consumption token not found."))?;
    match seat.state {
        SeatState::Out => {}
        SeatState::Consumed => return Err(e(400, "ValidationException", "A PERPETUAL checkout cannot be extended.")),
        _ => return Err(not_found("The license consumption has ended (checked in or expired).")),
    }
    let license = inner.license_overrides.get(&seat.license_arn).or_else(|| shared.world.license(&seat.license_arn));
    let (ttl, style) = license.map_or((60, None), |l| (l.provisional_ttl_minutes, l.date_style));
    if !dry.unwrap_or(false) {
        seat.expires_at = now + 60 * i64::from(ttl);
    }
    Ok(json_ok(json!({"LicenseConsumptionToken": seat.consumption_token, "Expiration": iso(seat.expires_at, style)})))
}

fn check_in(shared: &Shared, caller: &Caller, req: &Incoming) -> Res<Outcome> {
    let (token, _) = consumption_token(req)?;
    let mut inner = shared.lock();
    expire_seats(&mut inner);
    let account = &caller.cred.principal.account;
    let seat = inner
        .seats
        .iter_mut()
        .find(|s| s.consumption_token == token && &s.account == account)
        .ok_or_else(|| not_found("License consumption token not found."))?;
    match seat.state {
        SeatState::Out => seat.state = SeatState::CheckedIn,
        SeatState::Consumed => return Err(e(400, "ValidationException", "A PERPETUAL checkout cannot be checked in.")),
        _ => return Err(not_found("The license consumption has ended (checked in or expired).")),
    }
    Ok(json_ok(json!({})))
}
