//! What MeterUsage (`meter.rs`) and BatchMeterUsage (`saas.rs`) share: the checks of a usage
//! record's product code and `UsageAllocations` (with their tags), entitlement with the seller's
//! preview mode, and the hour and clock-skew bounds of a record's `Timestamp`.

use crate::model::ledger::Allocation;
use crate::model::world::{Product, TagPattern};
use crate::state::Shared;
use crate::wire::input::{object, Members, Res, Service};
use crate::wire::proto::{json_error, Outcome};
use serde_json::Value;

pub(super) const HOUR_MS: i64 = 3_600_000;
/// Future timestamps are undocumented; we accept five minutes of client clock skew, no more.
pub(super) const FUTURE_SLACK_MS: i64 = 5 * 60 * 1000;
pub(super) const M: Service = Service::Metering;

pub(super) fn err(code: &str, message: &str) -> Outcome {
    json_error(400, code, message)
}

pub(super) fn bad(code: &str, message: &str) -> Box<Outcome> {
    Box::new(err(code, message))
}

/// The model's Tag pattern, `^[a-zA-Z0-9+ -=._:\/@]+$`, under either reading of its `+ -=`
/// (docs/aws-behaviour.md §10.15): the characters listed, or a regex engine's range space..`=`.
fn tag_char_ok(c: char, pattern: TagPattern) -> bool {
    let listed = c.is_ascii_alphanumeric() || "+ -=._:/@".contains(c);
    listed || (pattern == TagPattern::Range && (' '..='=').contains(&c))
}

/// Parses and checks `UsageAllocations` against `quantity`: ≤ 2500 allocations, 1–5 tags each with
/// valid keys/values (`InvalidTagException`), distinct tag sets and a sum equal to the quantity
/// (`InvalidUsageAllocationsException`).
pub(super) fn allocations(list: Option<&Vec<Value>>, quantity: i64, pattern: TagPattern) -> Res<Vec<Allocation>> {
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
                let ok = |s: &str, max: usize| {
                    (1..=max).contains(&s.chars().count()) && s.chars().all(|c| tag_char_ok(c, pattern))
                };
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

pub(super) fn product_code_checks(m: &mut Members, code: &Option<String>) {
    if let Some(c) = code {
        if c.chars().count() > 255 {
            m.violation("ProductCode", c, "Member must have length less than or equal to 255");
        } else if !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-/=:_.@".contains(ch)) {
            m.violation("ProductCode", c, "Member must satisfy regular expression pattern: ^[-a-zA-Z0-9/=:_.@]*$");
        }
    }
}

pub(super) fn sorted(a: &[Allocation]) -> Vec<Allocation> {
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
pub(super) fn entitled(shared: &Shared, account: &str, product: &Product) -> bool {
    product.seller.as_deref() == Some(account) || shared.subscribed(account, &product.code)
}
