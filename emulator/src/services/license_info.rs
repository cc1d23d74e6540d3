//! License Manager's read side and token exchange (docs/aws-behaviour.md §4.4, §5): GetLicense,
//! ListReceivedLicenses (filters, pagination) and GetAccessToken, which trades a workload's refresh
//! token for an access token of the Containers Anywhere flow (both minted by `wire::tokens`).
//! Nothing here changes a seat.

use super::auth::Caller;
use crate::model::world::{CredentialKind, License};
use crate::state::Shared;
use crate::wire::input::{object, parse_body, Members, Res, Service};
use crate::wire::proto::{json_ok, lm_error, Outcome};
use crate::wire::request::Incoming;
use crate::wire::tokens;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

const L: Service = Service::LicenseManager;
/// GetAccessToken's access token lives one hour (docs/aws-behaviour.md §5.3).
const ACCESS_TOKEN_SECS: i64 = 3600;

fn e(status: u16, code: &str, m: &str) -> Box<Outcome> {
    Box::new(lm_error(status, code, m))
}

fn render(l: &License, granted: bool) -> Value {
    let ents: Vec<Value> = l
        .entitlements
        .iter()
        .map(|x| {
            let mut v = json!({"Name": x.name, "Unit": x.unit, "Overage": x.overage, "AllowCheckIn": x.allow_check_in});
            if let Some(c) = x.max_count {
                v["MaxCount"] = json!(c);
            }
            if let Some(s) = &x.value {
                v["Value"] = json!(s);
            }
            v
        })
        .collect();
    let date = |written: &str| crate::model::clock::license_validity(written, l.date_style);
    let mut validity = json!({"Begin": date(&l.begin)});
    if let Some(end) = &l.end {
        validity["End"] = json!(date(end));
    }
    let name = if l.product_name.is_empty() { l.product_sku.clone() } else { l.product_name.clone() };
    let mut v = json!({
        "LicenseArn": l.arn,
        "LicenseName": name,
        "ProductName": name,
        "ProductSKU": l.product_sku,
        "Issuer": {"Name": l.issuer, "KeyFingerprint": l.key_fingerprint},
        "HomeRegion": l.home_region,
        "Status": l.status,
        "Validity": validity,
        "Beneficiary": l.account,
        "Entitlements": ents,
        "ConsumptionConfiguration": {"RenewType": "None", "ProvisionalConfiguration": {"MaxTimeToLiveInMinutes": l.provisional_ttl_minutes}},
        "LicenseMetadata": [],
        "CreateTime": date(&l.begin),
        "Version": "1",
    });
    if granted {
        v["ReceivedMetadata"] = json!({
            "ReceivedStatus": "ACTIVE",
            "AllowedOperations": ["CheckoutLicense", "CheckInLicense", "ExtendConsumptionLicense", "CreateToken"],
        });
    }
    v
}

const ARN_PREFIX: &str = "arn:aws";

pub fn get_license(shared: &Shared, caller: &Caller, req: &Incoming) -> Res<Outcome> {
    let obj = parse_body(L, &req.body)?;
    let mut m = Members::new(L, &obj);
    let arn = m.string_len("LicenseArn", 0, 2048)?;
    let _version = m.string("Version")?;
    if let Some(a) = &arn {
        if !a.starts_with(ARN_PREFIX) || a.split(':').count() < 6 {
            m.violation("LicenseArn", a, "Member must satisfy regular expression pattern: ^arn:aws[a-zA-Z-]*:…");
        }
    }
    let arn = m.require("LicenseArn", arn).unwrap_or_default();
    m.finish()?;
    // GetLicense models no ResourceNotFoundException; an invisible license is an invalid parameter.
    let l = shared
        .license(&arn)
        .filter(|l| l.account == caller.cred.principal.account)
        .ok_or_else(|| e(400, "InvalidParameterValueException", "License not found."))?;
    Ok(json_ok(json!({"License": render(&l, false)})))
}

const FILTERS: [&str; 5] = ["ProductSKU", "Status", "Fingerprint", "IssuerName", "Beneficiary"];

pub fn list_received(shared: &Shared, caller: &Caller, req: &Incoming) -> Res<Outcome> {
    let obj = parse_body(L, &req.body)?;
    let mut m = Members::new(L, &obj);
    let arns = m.list("LicenseArns")?;
    let filters = m.list("Filters")?;
    let next = m.string("NextToken")?;
    let max = m.int("MaxResults")?;
    if let Some(n) = max {
        if !(1..=100).contains(&n) {
            m.violation("MaxResults", &n.to_string(), "Member must have value between 1 and 100");
        }
    }
    m.finish()?;
    let mut conds: Vec<(String, String)> = Vec::new();
    for f in filters.map(Vec::as_slice).unwrap_or_default() {
        let f = object(L, f, "Filter")?;
        let name = f.get("Name").and_then(Value::as_str).unwrap_or_default().to_string();
        let values: Vec<String> = f
            .get("Values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        if !FILTERS.contains(&name.as_str()) {
            return Err(e(400, "InvalidParameterValueException", &format!("Unsupported filter name {name:?}.")));
        }
        if values.len() != 1 {
            return Err(e(400, "InvalidParameterValueException", &format!("Filter {name} takes exactly one value.")));
        }
        conds.push((name, values[0].clone()));
    }
    let wanted: Option<Vec<&str>> = arns.map(|a| a.iter().filter_map(Value::as_str).collect());
    let matches = |l: &&License| {
        wanted.as_ref().is_none_or(|w| w.contains(&l.arn.as_str()))
            && conds.iter().all(|(n, v)| match n.as_str() {
                "ProductSKU" => &l.product_sku == v,
                "Status" => &l.status == v,
                "Fingerprint" => &l.key_fingerprint == v,
                "IssuerName" => &l.issuer == v,
                _ => &l.account == v,
            })
    };
    let licenses = shared.licenses();
    let all: Vec<&License> =
        licenses.iter().filter(|l| l.account == caller.cred.principal.account).filter(matches).collect();
    let start = match next {
        None => 0,
        Some(t) => URL_SAFE_NO_PAD
            .decode(&t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse::<usize>().ok()))
            .filter(|n| *n <= all.len())
            .ok_or_else(|| e(400, "InvalidParameterValueException", "NextToken is invalid."))?,
    };
    let page = usize::try_from(max.unwrap_or(100)).unwrap_or(100);
    let end = (start + page).min(all.len());
    let mut body = json!({"Licenses": all[start..end].iter().map(|l| render(l, true)).collect::<Vec<_>>()});
    if end < all.len() {
        body["NextToken"] = json!(URL_SAFE_NO_PAD.encode(format!("offset:{end}")));
    }
    Ok(json_ok(body))
}

pub fn get_access_token(shared: &Shared, req: &Incoming) -> Res<Outcome> {
    let obj = parse_body(L, &req.body)?;
    let mut m = Members::new(L, &obj);
    let token = m.string_len("Token", 0, 4096)?;
    let props = m.list("TokenProperties")?;
    if props.is_some_and(|p| p.len() > 3) {
        m.violation("TokenProperties", "", "Member must have length less than or equal to 3");
    }
    if token.as_deref().is_some_and(|t| t.is_empty() || t.chars().any(char::is_whitespace)) {
        m.violation("Token", "", "Member must satisfy regular expression pattern: \\S+");
    }
    let token = m.require("Token", token).unwrap_or_default();
    m.finish()?;
    let owner = shared
        .world
        .workloads
        .iter()
        .find(|w| shared.setup.get(&w.id).and_then(|s| s.lm_refresh_token.as_deref()) == Some(token.as_str()));
    let Some(w) = owner else {
        return Err(e(401, "AccessDeniedException", "The refresh token is not valid."));
    };
    let exp = crate::model::clock::unix_secs(shared.now()) + ACCESS_TOKEN_SECS;
    let CredentialKind::LicenseToken { license_arn, .. } = &w.credential else {
        return Err(e(401, "AccessDeniedException", "The refresh token is not valid."));
    };
    let access = tokens::access_token(&shared.keys.emulator, &w.account, license_arn, exp, ACCESS_TOKEN_SECS);
    shared.lock().lm_access_tokens.insert(access.clone(), (w.id.clone(), exp));
    Ok(json_ok(json!({"AccessToken": access})).workload(Some(&w.id)))
}
