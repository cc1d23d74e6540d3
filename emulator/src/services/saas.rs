//! The SaaS operations of Marketplace Metering, for the product's seller only: `BatchMeterUsage`
//! (docs/aws-behaviour.md §2.4), a batch of records per customer with a per-record status, and
//! `ResolveCustomer` (docs/aws-behaviour.md §2.5), a registration token to the customer it was issued for.
//! Accepted records go to the metering ledger; a repeat of a record already accepted does not.

use super::auth::Caller;
use super::usage::{allocations, bad, entitled, err, product_code_checks, FUTURE_SLACK_MS, HOUR_MS, M};
use crate::model::ledger::{Allocation, MeteringRecord};
use crate::state::Shared;
use crate::wire::ids::request_id;
use crate::wire::input::{object, parse_body, Members, Res};
use crate::wire::proto::{json_ok, Outcome};
use crate::wire::request::Incoming;
use serde_json::{json, Map, Value};

/// BatchMeterUsage accepts records up to 24 hours old (2026-07 model; docs/aws-behaviour.md §2.4).
const BATCH_WINDOW_MS: i64 = 24 * HOUR_MS;

pub fn batch_meter_usage(shared: &Shared, caller: &Caller, req: &Incoming) -> Outcome {
    batch_inner(shared, caller, req).unwrap_or_else(|o| *o)
}

struct BatchRecord<'a> {
    raw: &'a Map<String, Value>,
    account: String,
    dimension: String,
    ts: i64,
    qty: i64,
    allocs: Vec<Allocation>,
}

fn batch_inner(shared: &Shared, caller: &Caller, req: &Incoming) -> Res<Outcome> {
    let obj = parse_body(M, &req.body)?;
    let mut m = Members::new(M, &obj);
    let code = m.string("ProductCode")?;
    product_code_checks(&mut m, &code);
    let records = m.list("UsageRecords")?;
    let records = m.require("UsageRecords", records);
    if let Some(r) = records {
        if r.len() > 25 {
            m.violation("UsageRecords", "", "Member must have length less than or equal to 25");
        }
    }
    m.finish()?;
    let records = records.map(Vec::as_slice).unwrap_or_default();
    let Some(code) = code else {
        // License-ARN-only batches (2026 model) need the SaaS license catalogue we do not model.
        return Err(bad("InvalidProductCodeException", "ProductCode is required by this emulator."));
    };
    let product =
        shared.world.product(&code).filter(|p| p.seller.as_deref() == Some(caller.cred.principal.account.as_str()));
    let product =
        product.ok_or_else(|| bad("InvalidProductCodeException", "Product code is invalid for this seller."))?;
    let now = crate::model::clock::unix_millis_signed(shared.now());
    let mut parsed = Vec::new();
    for r in records {
        let o = object(M, r, "UsageRecord")?;
        let mut rm = Members::new(M, o);
        let fields = (|| -> Res<_> {
            let ts = rm.timestamp("Timestamp")?;
            let dim = rm.string_len("Dimension", 1, 255)?;
            let qty = rm.int("Quantity")?;
            let cust = rm.string_len("CustomerIdentifier", 0, 255)?;
            let acct = rm.string_len("CustomerAWSAccountId", 1, 255)?;
            let lic = rm.string("LicenseArn")?;
            let allocs = rm.list("UsageAllocations")?;
            let ts = rm.require("Timestamp", ts);
            let dim = rm.require("Dimension", dim);
            Ok((ts, dim, qty, cust, acct, lic, allocs))
        })();
        let (ts, dim, qty, cust, acct, lic, allocs) = fields?;
        rm.finish()?;
        let (ts, dim, qty) = (ts.unwrap_or_default(), dim.unwrap_or_default(), qty.unwrap_or(0));
        if !product.dimensions.contains(&dim) {
            return Err(bad(
                "InvalidUsageDimensionException",
                &format!("Dimension {dim:?} is not defined for {code}."),
            ));
        }
        // Month-end grace: until 06:00 UTC on the 1st, the whole previous month is accepted.
        let (prev_month, grace) = crate::model::clock::previous_month_grace(now);
        let too_old = now - ts > BATCH_WINDOW_MS && !(grace && ts >= prev_month);
        if too_old || ts - now > FUTURE_SLACK_MS {
            return Err(bad("TimestampOutOfBoundsException", "A record's Timestamp is outside the accepted window."));
        }
        let allocs = allocations(allocs, qty, product.tag_pattern)?;
        let account = match (cust, acct) {
            (Some(c), None) => shared.world.accounts.iter().find(|a| a.customer_id() == c).map(|a| a.id.clone()),
            (None, Some(a)) => shared.world.account(&a).map(|a| a.id.clone()),
            _ => None,
        };
        let account = account.ok_or_else(|| {
            let m = "Exactly one of CustomerIdentifier and CustomerAWSAccountId must name a known customer.";
            bad("InvalidCustomerIdentifierException", m)
        })?;
        if let Some(l) = lic {
            if shared.license(&l).is_none_or(|l| l.account != account) {
                return Err(bad("InvalidLicenseException", "LicenseArn is not a license of this customer."));
            }
        }
        parsed.push(BatchRecord { raw: o, account, dimension: dim, ts, qty, allocs });
    }
    // Before the lock: the subscriptions changed at run time live behind it too.
    let subscribed: Vec<bool> = parsed.iter().map(|r| entitled(shared, &r.account, product)).collect();
    let mut inner = shared.lock();
    let mut results = Vec::new();
    for (r, subscribed) in parsed.into_iter().zip(subscribed) {
        let hour = r.ts.div_euclid(HOUR_MS) * 3600;
        let mut result = json!({"UsageRecord": Value::Object(r.raw.clone())});
        if !subscribed {
            result["Status"] = json!("CustomerNotSubscribed");
            results.push(result);
            continue;
        }
        let existing = inner.metering.iter().find(|x| {
            x.op == "BatchMeterUsage"
                && x.account == r.account
                && x.product_code == code
                && x.dimension == r.dimension
                && x.hour == hour
        });
        match existing {
            Some(x) if x.quantity == r.qty => {
                result["Status"] = json!("Success");
                result["MeteringRecordId"] = json!(x.metering_record_id);
            }
            Some(_) => result["Status"] = json!("DuplicateRecord"),
            None => {
                let id = request_id();
                inner.metering.push(MeteringRecord {
                    metering_record_id: id.clone(),
                    op: "BatchMeterUsage".into(),
                    product_code: code.clone(),
                    workload: caller.cred.principal.workload.clone(),
                    account: r.account.clone(),
                    dimension: r.dimension.clone(),
                    hour,
                    timestamp_millis: r.ts,
                    quantity: r.qty,
                    allocations: r.allocs,
                    client_token: None,
                });
                result["Status"] = json!("Success");
                result["MeteringRecordId"] = json!(id);
            }
        }
        results.push(result);
    }
    Ok(json_ok(json!({"Results": results, "UnprocessedRecords": []})))
}

pub fn resolve_customer(shared: &Shared, caller: &Caller, req: &Incoming) -> Outcome {
    let obj = match parse_body(M, &req.body) {
        Ok(o) => o,
        Err(o) => return *o,
    };
    let mut m = Members::new(M, &obj);
    let token = match m.string("RegistrationToken") {
        Ok(t) => t,
        Err(o) => return *o,
    };
    if token.as_deref() == Some("") {
        m.violation("RegistrationToken", "", "Member must satisfy regular expression pattern: [\\s\\S]+");
    }
    let token = m.require("RegistrationToken", token).unwrap_or_default();
    if let Err(o) = m.finish() {
        return *o;
    }
    let found = shared.world.registration_tokens.iter().find(|t| t.token == token);
    let seller_ok = |code: &str| {
        shared.world.product(code).and_then(|p| p.seller.as_deref()) == Some(caller.cred.principal.account.as_str())
    };
    let Some(t) = found.filter(|t| seller_ok(&t.product_code)) else {
        return err("InvalidTokenException", "Registration token is invalid.");
    };
    if t.expired {
        return err("ExpiredTokenException", "Registration token has expired.");
    }
    let customer =
        shared.world.account(&t.account).map(|a| a.customer_id()).unwrap_or_else(|| format!("c-{}", t.account));
    json_ok(json!({
        "CustomerIdentifier": customer,
        "ProductCode": t.product_code,
        "CustomerAWSAccountId": t.account,
    }))
}
