//! Marketplace Metering `MeterUsage` (docs/aws-behaviour.md §2.3). Checks run in this order: input shape,
//! credential source, region, product, entitlement (skipped for the seller's own account: preview
//! mode, and after the task's first call: the first-call rule), dimension, time window, tags and
//! allocations, ClientToken, DryRun, then the one-record-per-hour rule. A dry run under the
//! product's `DryRunChecks::IamOnly` answers right after the input shape. Accepted records go to the
//! metering ledger; idempotent repeats do not.

use super::auth::Caller;
use super::usage::{allocations, bad, entitled, product_code_checks, sorted, FUTURE_SLACK_MS, HOUR_MS, M};
use crate::model::ledger::MeteringRecord;
use crate::model::world::{BeforeStartAnswer, DryRunAnswer, DryRunChecks, MeterIdempotency, Product};
use crate::state::{PrincipalKind, Shared};
use crate::wire::ids::request_id;
use crate::wire::input::{parse_body, Members, Res};
use crate::wire::proto::{json_error, json_ok, Outcome};
use crate::wire::request::Incoming;
use serde_json::json;

/// MeterUsage accepts records up to 6 hours old (2025-10 model; docs/aws-behaviour.md §2.3).
const METER_WINDOW_MS: i64 = 6 * HOUR_MS;

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
    let dry = dry.unwrap_or(false);
    let checks = shared.lock().dry_run_checks.or(shared.world.product(&code).map(|p| p.dry_run_checks));
    if dry && checks == Some(DryRunChecks::IamOnly) {
        // Signature and IAM were checked before this handler ran; the shape just above.
        return Ok(dry_run_answer(shared, shared.world.product(&code)));
    }
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
        // Not a modeled MeterUsage error (docs/aws-behaviour.md §10.6); the service-wide shape botocore knows.
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
    // First-call rule: once a call of this task was accepted, later ones skip the subscription.
    let first_call = (p.workload.clone(), code.clone());
    if !shared.lock().metered.contains(&first_call) && !entitled(shared, &p.account, product) {
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
    let allocs = allocations(allocs, qty, product.tag_pattern)?;
    let hour = ts.div_euclid(HOUR_MS) * 3600;
    let fingerprint = json!([code, dim, hour, qty, sorted(&allocs)]).to_string();
    if dry {
        if checks == Some(DryRunChecks::FullFirstCall) {
            shared.lock().metered.insert(first_call);
        }
        return Ok(dry_run_answer(shared, Some(product)));
    }
    let mut inner = shared.lock();
    // A real record that got this far passed the subscription check: the task's first call is done.
    inner.metered.insert(first_call);
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
    let identical = |r: &&MeteringRecord| r.quantity == qty && sorted(&r.allocations) == sorted(&allocs);
    let existing = match product.meter_idempotency {
        MeterIdempotency::HourRounding => existing.map(|r| (identical(&r), r)),
        // The token was not seen (above): whatever is on record for the hour is another request.
        MeterIdempotency::TokenTakesTheHour => existing.map(|r| (false, r)),
        MeterIdempotency::TokenOnly => existing.filter(|r| !identical(r)).map(|r| (false, r)),
    };
    let id = match existing {
        Some((true, r)) => r.metering_record_id.clone(),
        Some((false, _)) => {
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

/// What a dry run that passed its checks answers: the run-time override, else the product's choice
/// (`Empty` for a product the world does not know, which only an IAM-only dry run lets through).
fn dry_run_answer(shared: &Shared, product: Option<&Product>) -> Outcome {
    let answer = shared.lock().dry_run.or(product.map(|p| p.dry_run)).unwrap_or_default();
    match answer {
        DryRunAnswer::Empty => json_ok(json!({})),
        DryRunAnswer::RecordId => json_ok(json!({"MeteringRecordId": request_id()})),
        DryRunAnswer::DryRunOperationError => {
            json_error(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
        }
    }
}
