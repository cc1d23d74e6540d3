//! License Manager errors that arise from the situation rather than from bad input or injected
//! faults (docs/aws-behaviour.md §4.5). Kept apart from `license.rs` so the seat logic stays readable:
//! `license::handle` asks `refuse` before dispatching and tells `settled` after.
//!
//! * `AuthorizationException` 403: the workload's role lacks the action (`Workload::denied_actions`,
//!   checked by `license::handle` itself).
//! * `AccessDeniedException` 401: the caller names a resource that exists but belongs to another
//!   account: another account's license ARN (GetLicense) or consumption token (Extend, CheckIn).
//!   AWS documents no cause for this error; this is our guess (docs/emulator.md, "Where AWS is silent").
//! * `ConflictException` 409: two checkouts of one license race. License Manager takes
//!   `License::checkout_commit_ms` to commit a checkout; a checkout with another `ClientToken`
//!   arriving in that time conflicts ("try again", as the model says). The same `ClientToken` is
//!   an idempotent retry and never conflicts. Real time, not the business clock: a race is real.

use super::auth::Caller;
use crate::state::Shared;
use crate::wire::proto::{lm_error, Outcome};
use crate::wire::request::Incoming;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One member of a JSON request body, if it is a string (malformed bodies are left to the handler).
fn member(req: &Incoming, name: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(&req.body).ok()?;
    v.get(name)?.as_str().map(str::to_string)
}

/// The answer AWS would give instead of dispatching `op`, if the situation calls for one.
pub fn refuse(shared: &Shared, caller: &Caller, op: &str, req: &Incoming) -> Option<Outcome> {
    let account = &caller.cred.principal.account;
    match op {
        "GetLicense" => {
            let arn = member(req, "LicenseArn")?;
            let l = shared.license(&arn)?;
            (l.account != *account).then(|| denied(&format!("license {arn}")))
        }
        "ExtendLicenseConsumption" | "CheckInLicense" => {
            let token = member(req, "LicenseConsumptionToken")?;
            let inner = shared.lock();
            let seat = inner.seats.iter().find(|s| s.consumption_token == token)?;
            (seat.account != *account).then(|| denied("this license consumption token"))
        }
        "CheckoutLicense" => conflict(shared, caller, req),
        _ => None,
    }
}

fn denied(what: &str) -> Outcome {
    lm_error(401, "AccessDeniedException", &format!("Access denied: {what} belongs to another account."))
}

/// The license a CheckoutLicense request is for, as `license::checkout` finds it.
fn wanted_license(shared: &Shared, caller: &Caller, req: &Incoming) -> Option<(String, u64)> {
    let (sku, fp) = (member(req, "ProductSKU")?, member(req, "KeyFingerprint")?);
    let account = &caller.cred.principal.account;
    let l = shared
        .licenses()
        .into_iter()
        .find(|l| l.account == *account && l.product_sku == sku && l.key_fingerprint == fp)?;
    let ms = shared.lock().checkout_commit_ms.unwrap_or(l.checkout_commit_ms);
    Some((l.arn.clone(), ms))
}

fn conflict(shared: &Shared, caller: &Caller, req: &Incoming) -> Option<Outcome> {
    let (arn, ms) = wanted_license(shared, caller, req)?;
    let token = member(req, "ClientToken")?;
    let inner = shared.lock();
    let (since, by) = inner.license_commits.get(&arn)?;
    let racing = *by != token && since.elapsed() < Duration::from_millis(ms);
    racing.then(|| {
        lm_error(409, "ConflictException", "A concurrent checkout of this license is being committed; try again.")
    })
}

/// Notes a successful checkout: the license is busy committing it for `checkout_commit_ms`.
pub fn settled(shared: &Shared, caller: &Caller, op: &str, req: &Incoming, out: &Outcome) {
    if op != "CheckoutLicense" || out.status != 200 {
        return;
    }
    let (Some((arn, ms)), Some(token)) = (wanted_license(shared, caller, req), member(req, "ClientToken")) else {
        return;
    };
    if ms > 0 {
        let mut inner = shared.lock();
        let replay = inner.license_commits.get(&arn).is_some_and(|(_, by)| *by == token);
        if !replay {
            inner.license_commits.insert(arn, (Instant::now(), token));
        }
    }
}
