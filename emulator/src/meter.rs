//! Marketplace Metering `MeterUsage` (aws-wire.md §2.3), `BatchMeterUsage` (§2.4) and
//! `ResolveCustomer` (§2.5). Checks run in this order: input shape, credential source, region,
//! product, entitlement (skipped for the seller's own account: preview mode), dimension, time
//! window, tags and allocations, ClientToken, DryRun, then the one-record-per-hour rule.
//! Accepted records go to the metering ledger; idempotent repeats do not.

use crate::auth::Caller;
use crate::model::ledger::{Allocation, MeteringRecord};
use crate::model::world::{BeforeStartAnswer, DryRunAnswer, Product};
use crate::state::{PrincipalKind, Shared};
use crate::wire::ids::request_id;
use crate::wire::input::{object, parse_body, Members, Res, Service};
use crate::wire::proto::{json_error, json_ok, Outcome};
use crate::wire::request::Incoming;
use serde_json::{json, Map, Value};

const HOUR_MS: i64 = 3_600_000;
/// MeterUsage accepts records up to 6 hours old (2025-10 model; aws-wire.md §2.3).
const METER_WINDOW_MS: i64 = 6 * HOUR_MS;
/// BatchMeterUsage accepts records up to 24 hours old (2026-07 model; aws-wire.md §2.4).
const BATCH_WINDOW_MS: i64 = 24 * HOUR_MS;
/// Future timestamps are undocumented; we accept five minutes of client clock skew, no more.
const FUTURE_SLACK_MS: i64 = 5 * 60 * 1000;
const M: Service = Service::Metering;

fn err(code: &str, message: &str) -> Outcome {
    json_error(400, code, message)
}

fn bad(code: &str, message: &str) -> Box<Outcome> {
    Box::new(err(code, message))
}

/// The tag pattern from the model, `^[a-zA-Z0-9+ -=._:\/@]+$`, read literally: `+ -=` is the range
/// space..`=` (aws-wire.md §2.1 observation), so this admits more than the seller guide's prose.
fn tag_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || ('\u{20}'..='=').contains(&c) || "+._:/@".contains(c)
}

/// Parses and checks `UsageAllocations` against `quantity`: ≤ 2500 allocations, 1–5 tags each with
/// valid keys/values (`InvalidTagException`), distinct tag sets and a sum equal to the quantity
/// (`InvalidUsageAllocationsException`).
fn allocations(list: Option<&Vec<Value>>, quantity: i64) -> Res<Vec<Allocation>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    if list.is_empty() || list.len() > 2500 {
        return Err(Box::new(err(
            "InvalidUsageAllocationsException",
            "UsageAllocations must hold 1 to 2500 allocations.",
        )));
    }
    let mut out = Vec::new();
    for a in list {
        let o = object(M, a, "UsageAllocation")?;
        let mut m = Members::new(M, o);
        let q = m.int("AllocatedUsageQuantity")?;
        let q = m.require("AllocatedUsageQuantity", q);
        let tags = m.list("Tags")?;
        m.finish()?;
        let q = q.unwrap_or_default();
        if !(0..=i64::from(i32::MAX)).contains(&q) {
            return Err(Box::new(err("InvalidUsageAllocationsException", "AllocatedUsageQuantity is out of range.")));
        }
        let mut pairs = Vec::new();
        if let Some(tags) = tags {
            if tags.is_empty() || tags.len() > 5 {
                return Err(Box::new(err("InvalidTagException", "An allocation must carry 1 to 5 tags.")));
            }
            for t in tags {
                let t = object(M, t, "Tag")?;
                let mut tm = Members::new(M, t);
                let k = tm.string("Key")?;
                let v = tm.string("Value")?;
                let (k, v) = (tm.require("Key", k), tm.require("Value", v));
                tm.finish()?;
                let (k, v) = (k.unwrap_or_default(), v.unwrap_or_default());
                let ok = |s: &str, max: usize| (1..=max).contains(&s.chars().count()) && s.chars().all(tag_char_ok);
                if !ok(&k, 100) || !ok(&v, 256) {
                    return Err(Box::new(err("InvalidTagException", &format!("Tag {k:?}={v:?} is not valid."))));
                }
                if pairs.iter().any(|(pk, _): &(String, String)| pk == &k) {
                    return Err(Box::new(err("InvalidTagException", &format!("Tag key {k:?} appears twice."))));
                }
                pairs.push((k, v));
            }
        }
        out.push(Allocation { quantity: q, tags: pairs });
    }
    let mut sets: Vec<Vec<(String, String)>> = out
        .iter()
        .map(|a| {
            let mut t = a.tags.clone();
            t.sort();
            t
        })
        .collect();
    sets.sort();
    if sets.windows(2).any(|w| w[0] == w[1]) {
        return Err(Box::new(err("InvalidUsageAllocationsException", "Each allocation must have a distinct tag set.")));
    }
    if out.iter().map(|a| a.quantity).sum::<i64>() != quantity {
        let m = "The sum of AllocatedUsageQuantity values must equal UsageQuantity.";
        return Err(Box::new(err("InvalidUsageAllocationsException", m)));
    }
    Ok(out)
}

fn product_code_checks(m: &mut Members, code: &Option<String>) {
    if let Some(c) = code {
        if c.chars().count() > 255 {
            m.violation("ProductCode", c, "Member must have length less than or equal to 255");
        } else if !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-/=:_.@".contains(ch)) {
            m.violation("ProductCode", c, "Member must satisfy regular expression pattern: ^[-a-zA-Z0-9/=:_.@]*$");
        }
    }
}

fn sorted(a: &[Allocation]) -> Vec<Allocation> {
    let mut v: Vec<Allocation> = a
        .iter()
        .map(|x| {
            let mut t = x.tags.clone();
            t.sort();
            Allocation { quantity: x.quantity, tags: t }
        })
        .collect();
    v.sort();
    v
}

/// Does the seller's own account (preview mode) or a subscription let `account` use `product`?
fn entitled(shared: &Shared, account: &str, product: &Product) -> bool {
    product.seller.as_deref() == Some(account)
        || shared.world.account(account).is_some_and(|a| a.subscriptions.contains(&product.code))
}

/// When usage of `code` could first happen for this caller, in Unix milliseconds: the later of the
/// account's subscription start and the workload's own start, where the world gives them.
/// Unparsable times in the world are ignored (the world file is the seller's input, not AWS's).
fn usage_start(shared: &Shared, account: &str, workload: &str, code: &str) -> Option<i64> {
    let subscribed = shared.world.account(account).and_then(|a| a.subscribed_since.get(code));
    let started = shared.world.workload(workload).and_then(|w| w.started.as_ref());
    [subscribed, started]
        .into_iter()
        .flatten()
        .filter_map(|t| crate::model::clock::parse_rfc3339(t))
        .map(crate::model::clock::unix_millis_signed)
        .max()
}

pub fn meter_usage(shared: &Shared, caller: &Caller, req: &Incoming) -> Outcome {
    meter_usage_inner(shared, caller, req).unwrap_or_else(|o| *o)
}

fn meter_usage_inner(shared: &Shared, caller: &Caller, req: &Incoming) -> Res<Outcome> {
    let obj = parse_body(M, &req.body)?;
    let mut m = Members::new(M, &obj);
    let parsed = (|| -> Res<_> {
        let code = m.string("ProductCode")?;
        product_code_checks(&mut m, &code);
        let ts = m.timestamp("Timestamp")?;
        let dim = m.string_len("UsageDimension", 1, 255)?;
        let qty = m.int("UsageQuantity")?;
        let dry = m.bool("DryRun")?;
        let allocs = m.list("UsageAllocations")?;
        let token = m.string_len("ClientToken", 1, 64)?;
        if let Some(q) = qty {
            if !(0..=i64::from(i32::MAX)).contains(&q) {
                m.violation("UsageQuantity", &q.to_string(), "Member must have value between 0 and 2147483647");
            }
        }
        let code = m.require("ProductCode", code);
        let ts = m.require("Timestamp", ts);
        let dim = m.require("UsageDimension", dim);
        Ok((code, ts, dim, qty, dry, allocs, token))
    })();
    let (code, ts, dim, qty, dry, allocs, token) = parsed?;
    m.finish()?;
    let (code, ts, dim) = (code.unwrap_or_default(), ts.unwrap_or_default(), dim.unwrap_or_default());
    let qty = qty.unwrap_or(0);
    let p = &caller.cred.principal;
    let unsupported = match p.kind {
        PrincipalKind::EcsTaskRole | PrincipalKind::Irsa => None,
        // EC2 instance roles meter AMI products; on an EKS node the node role is not the pod's.
        PrincipalKind::InstanceRole if shared.world.workload(&p.workload).is_some_and(|w| w.node.is_none()) => None,
        PrincipalKind::InstanceRole => Some("an EKS node role"),
        PrincipalKind::StaticKeys => Some("long-term access keys"),
        PrincipalKind::PodIdentity => Some("EKS Pod Identity credentials"),
        PrincipalKind::LicenseToken => Some("License Manager token credentials"),
    };
    if let Some(cause) = unsupported {
        // Not a modeled MeterUsage error (aws-wire.md §10.6); the service-wide shape botocore knows.
        let m = format!("MeterUsage was signed with {cause}; use the ECS task role or EKS IRSA.");
        return Err(bad("PlatformNotSupportedException", &m));
    }
    if caller.signing_region != p.region {
        let m =
            format!("The endpoint region {} does not match the workload region {}.", caller.signing_region, p.region);
        return Err(bad("InvalidEndpointRegionException", &m));
    }
    let product =
        shared.world.product(&code).ok_or_else(|| bad("InvalidProductCodeException", "Product code is invalid."))?;
    if !entitled(shared, &p.account, product) {
        return Err(bad("CustomerNotEntitledException", "Customer is not subscribed to the product."));
    }
    if !product.dimensions.contains(&dim) {
        let m = format!("Usage dimension {dim:?} is not defined for product {code}.");
        return Err(bad("InvalidUsageDimensionException", &m));
    }
    let now = crate::model::clock::unix_millis_signed(shared.now());
    if now - ts > METER_WINDOW_MS || ts - now > FUTURE_SLACK_MS {
        return Err(bad(
            "TimestampOutOfBoundsException",
            "Timestamp is outside the accepted window (the past 6 hours).",
        ));
    }
    if product.before_start == BeforeStartAnswer::TimestampOutOfBounds {
        if let Some(start) = usage_start(shared, &p.account, &p.workload, &code).filter(|s| ts < *s) {
            let m = format!(
                "Timestamp precedes the start of usage ({}).",
                crate::model::clock::rfc3339(crate::model::clock::from_unix_secs(start.div_euclid(1000)))
            );
            return Err(bad("TimestampOutOfBoundsException", &m));
        }
    }
    let allocs = allocations(allocs, qty)?;
    let hour = ts.div_euclid(HOUR_MS) * 3600;
    let fingerprint = json!([code, dim, hour, qty, sorted(&allocs)]).to_string();
    if dry.unwrap_or(false) {
        let answer = shared.lock().dry_run.unwrap_or(product.dry_run);
        return Ok(match answer {
            DryRunAnswer::Empty => json_ok(json!({})),
            DryRunAnswer::RecordId => json_ok(json!({"MeteringRecordId": request_id()})),
            DryRunAnswer::DryRunOperationError => {
                json_error(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
            }
        });
    }
    let mut inner = shared.lock();
    if let Some(t) = &token {
        if let Some((fp, id)) = inner.client_tokens.get(&(p.account.clone(), t.clone())) {
            if *fp != fingerprint {
                let m = "ClientToken was already used with different parameters.";
                return Err(bad("IdempotencyConflictException", m));
            }
            return Ok(json_ok(json!({"MeteringRecordId": id})));
        }
    }
    let existing = inner.metering.iter().find(|r| {
        r.op == "MeterUsage"
            && r.workload == p.workload
            && r.product_code == code
            && r.dimension == dim
            && r.hour == hour
    });
    let id = match existing {
        Some(r) if r.quantity == qty && sorted(&r.allocations) == sorted(&allocs) => r.metering_record_id.clone(),
        Some(_) => {
            let m = "A record for this dimension and hour was already sent with a different quantity.";
            return Err(bad("DuplicateRequestException", m));
        }
        None => {
            let id = request_id();
            inner.metering.push(MeteringRecord {
                metering_record_id: id.clone(),
                op: "MeterUsage".into(),
                product_code: code,
                workload: p.workload.clone(),
                account: p.account.clone(),
                dimension: dim,
                hour,
                timestamp_millis: ts,
                quantity: qty,
                allocations: allocs,
                client_token: token.clone(),
            });
            id
        }
    };
    if let Some(t) = token {
        inner.client_tokens.insert((p.account.clone(), t), (fingerprint, id.clone()));
    }
    Ok(json_ok(json!({"MeteringRecordId": id})))
}

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
        let allocs = allocations(allocs, qty)?;
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
            if shared.world.license(&l).is_none_or(|l| l.account != account) {
                return Err(bad("InvalidLicenseException", "LicenseArn is not a license of this customer."));
            }
        }
        parsed.push(BatchRecord { raw: o, account, dimension: dim, ts, qty, allocs });
    }
    let mut inner = shared.lock();
    let mut results = Vec::new();
    for r in parsed {
        let hour = r.ts.div_euclid(HOUR_MS) * 3600;
        let mut result = json!({"UsageRecord": Value::Object(r.raw.clone())});
        if !entitled(shared, &r.account, product) {
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
