//! Renders an answer in the forms a variance draw chose (`model::variance`): date-times in each
//! allowed form, epoch timestamps with or without a fraction, JSON with members in another order,
//! members the client does not know and other whitespace, awsJson error codes in each form the
//! protocol allows. The content never changes: a date names the same instant (or one a fraction of a
//! second later), every member keeps its value. `iso8601` is also for services and tests that serve
//! a date in a chosen form.

use crate::model::clock::{from_unix_secs, parse_rfc3339, rfc3339, unix_millis_signed};
pub use crate::model::variance::DateForm;
use crate::model::variance::{ErrorTypeForm, Forms};
use serde_json::{Map, Value};

/// `secs` since the epoch written in `form`.
pub fn iso8601(secs: i64, form: DateForm) -> String {
    match form {
        DateForm::Z => rfc3339(from_unix_secs(secs)),
        DateForm::FractionZ(ms) => {
            let z = rfc3339(from_unix_secs(secs));
            format!("{}.{ms:03}Z", z.trim_end_matches('Z'))
        }
        DateForm::Offset(minutes) => {
            let local = rfc3339(from_unix_secs(secs.saturating_add(i64::from(minutes) * 60)));
            let sign = if minutes < 0 { '-' } else { '+' };
            let m = minutes.unsigned_abs();
            format!("{}{sign}{:02}:{:02}", local.trim_end_matches('Z'), m / 60, m % 60)
        }
    }
}

/// `text` (one of our `…Z` date-times) in `form`, or unchanged when it is not one.
fn redate(text: &str, form: DateForm) -> Option<String> {
    let t = parse_rfc3339(text)?;
    text.ends_with('Z').then(|| iso8601(unix_millis_signed(t).div_euclid(1000), form))
}

/// Which protocol's conventions a JSON answer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// Marketplace Metering (awsJson 1.1; timestamps are epoch seconds).
    Metering,
    /// License Manager (awsJson 1.1; its dates are `ISO8601DateTime` strings).
    LicenseManager,
    /// The ECS/EKS credential endpoints, task metadata and IMDS documents (dates as `…Z` strings).
    Container,
}

/// Members of each kind that carry dates.
fn is_epoch_member(kind: JsonKind, key: &str) -> bool {
    kind == JsonKind::Metering && matches!(key, "PublicKeyRotationTimestamp" | "Timestamp")
}
fn is_date_member(kind: JsonKind, key: &str) -> bool {
    match kind {
        JsonKind::Metering => false,
        JsonKind::LicenseManager => matches!(key, "Begin" | "End" | "IssuedAt" | "Expiration" | "CreateTime"),
        JsonKind::Container => matches!(key, "Expiration" | "LastUpdated" | "ExpiresAt"),
    }
}

/// Re-dates, and with `extra_members` adds unknown members to, `v` and what it holds. `item` is true
/// for the whole answer and for list items: the objects that are structures in every model, where an
/// unknown member is one more member (in a map it would be one more entry).
fn vary(v: &mut Value, kind: JsonKind, forms: &Forms, item: bool) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                match child {
                    Value::Number(n) if is_epoch_member(kind, k) => {
                        if let (Some(ms), Some(secs)) = (forms.epoch_fraction, n.as_i64()) {
                            let with = format!("{secs}.{ms:03}").parse::<f64>().ok();
                            if let Some(f) = with.and_then(serde_json::Number::from_f64) {
                                *n = f;
                            }
                        }
                    }
                    Value::String(s) if is_date_member(kind, k) => {
                        let form = if kind == JsonKind::LicenseManager { forms.license_date } else { forms.model_date };
                        if let Some(d) = redate(s, form) {
                            *s = d;
                        }
                    }
                    _ => vary(child, kind, forms, false),
                }
            }
            if item && forms.extra_members {
                m.insert("EmulatorVarianceNote".into(), Value::String("a member no model defines".into()));
                m.insert("EmulatorVarianceExtra".into(), serde_json::json!({"Nested": [1, 2.5, null, true]}));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| vary(i, kind, forms, true)),
        _ => {}
    }
}

/// The JSON answer `body` in `forms`; `None` when it is not a JSON object (left as it is).
pub fn vary_json(body: &str, kind: JsonKind, forms: &Forms) -> Option<String> {
    let mut v: Value = serde_json::from_str(body).ok()?;
    if !v.is_object() {
        return None;
    }
    vary(&mut v, kind, forms, true);
    let mut out = String::new();
    write(&v, forms.member_order, forms.pretty.then_some(0), &mut out);
    Some(out)
}

/// An awsJson error's `__type` in `form`, and the `X-Amzn-ErrorType` header to add, if any.
pub fn error_type(body: &str, service: &str, form: ErrorTypeForm) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(body) else {
        return (None, None);
    };
    let Some(code) = m.get("__type").and_then(Value::as_str).map(str::to_string) else {
        return (None, None);
    };
    match form {
        ErrorTypeForm::Plain => (None, None),
        ErrorTypeForm::Namespaced => {
            m.insert("__type".into(), Value::String(format!("com.amazonaws.{service}#{code}")));
            (Some(Value::Object(m).to_string()), None)
        }
        ErrorTypeForm::Header => {
            (None, Some(format!("{code}:http://internal.amazon.com/coral/com.amazonaws.{service}/")))
        }
    }
}

/// STS's XML answer with each `<Expiration>` in `form`.
pub fn vary_sts_xml(body: &str, form: DateForm) -> String {
    let (open, close) = ("<Expiration>", "</Expiration>");
    let mut out = String::with_capacity(body.len() + 8);
    let mut rest = body;
    while let Some(start) = rest.find(open) {
        let (head, tail) = rest.split_at(start + open.len());
        out.push_str(head);
        let Some(end) = tail.find(close) else {
            rest = tail;
            break;
        };
        out.push_str(&redate(&tail[..end], form).unwrap_or_else(|| tail[..end].to_string()));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// JSON text of `v` with each object's members in an order drawn from `order` (0: as stored), and
/// pretty-printed from `indent` when given.
fn write(v: &Value, order: u64, indent: Option<usize>, out: &mut String) {
    match v {
        Value::Object(m) => write_object(m, order, indent, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(indent.map(|n| n + 1), out);
                write(item, order, indent.map(|n| n + 1), out);
            }
            if !items.is_empty() {
                newline(indent, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_object(m: &Map<String, Value>, order: u64, indent: Option<usize>, out: &mut String) {
    let mut keys: Vec<&String> = m.keys().collect();
    if order != 0 {
        // A keyed shuffle: sort by a mix of the key and the draw.
        keys.sort_by_key(|k| k.bytes().fold(order, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)));
    }
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(indent.map(|n| n + 1), out);
        out.push_str(&Value::String((*k).clone()).to_string());
        out.push(':');
        if indent.is_some() {
            out.push(' ');
        }
        write(&m[k.as_str()], order, indent.map(|n| n + 1), out);
    }
    if !keys.is_empty() {
        newline(indent, out);
    }
    out.push('}');
}

fn newline(indent: Option<usize>, out: &mut String) {
    if let Some(n) = indent {
        out.push('\n');
        out.push_str(&"  ".repeat(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::variance::IatForm;
    use crate::model::world::ClaimStyle;

    fn forms() -> Forms {
        Forms {
            epoch_fraction: Some(250),
            model_date: DateForm::FractionZ(500),
            license_date: DateForm::FractionZ(125),
            claims: ClaimStyle::CamelCase,
            iat: IatForm::Seconds,
            error_type: ErrorTypeForm::Plain,
            extra_members: true,
            member_order: 12345,
            pretty: true,
            chunked: false,
            close: false,
        }
    }

    #[test]
    fn dates_keep_their_instant_in_every_form() {
        let t = 1_767_225_600;
        assert_eq!(iso8601(t, DateForm::Z), "2026-01-01T00:00:00Z");
        assert_eq!(iso8601(t, DateForm::FractionZ(7)), "2026-01-01T00:00:00.007Z");
        assert_eq!(iso8601(t, DateForm::Offset(330)), "2026-01-01T05:30:00+05:30");
        assert_eq!(iso8601(t, DateForm::Offset(-90)), "2025-12-31T22:30:00-01:30");
        for form in [DateForm::Z, DateForm::FractionZ(999), DateForm::Offset(0), DateForm::Offset(-600)] {
            let back = parse_rfc3339(&iso8601(t, form)).map(unix_millis_signed);
            assert_eq!(back.map(|ms| ms.div_euclid(1000)), Some(t), "{form:?}");
        }
    }

    #[test]
    fn a_varied_answer_holds_the_same_members_and_values() {
        let body = r#"{"Signature":"a.b.c","PublicKeyRotationTimestamp":1767225600,"Results":[{"Status":"Success","UsageRecord":{"Timestamp":1767225600}}]}"#;
        let varied = vary_json(body, JsonKind::Metering, &forms()).expect("json");
        let v: Value = serde_json::from_str(&varied).expect("still JSON");
        assert_eq!(v["Signature"], "a.b.c");
        assert_eq!(v["PublicKeyRotationTimestamp"].as_f64(), Some(1_767_225_600.25));
        assert_eq!(v["Results"][0]["UsageRecord"]["Timestamp"].as_f64(), Some(1_767_225_600.25));
        assert!(v["EmulatorVarianceNote"].is_string() && v["Results"][0]["EmulatorVarianceNote"].is_string());
        assert!(
            v["Results"][0]["UsageRecord"].get("EmulatorVarianceNote").is_none(),
            "only whole answers and list items"
        );
        assert!(varied.contains('\n'));
    }

    #[test]
    fn license_and_container_dates_are_redated_and_others_left_alone() {
        let lm = r#"{"Expiration":"2026-01-01T00:00:00Z","LicenseConsumptionToken":"2026-01-01T00:00:00Z"}"#;
        let v: Value =
            serde_json::from_str(&vary_json(lm, JsonKind::LicenseManager, &forms()).expect("json")).expect("json");
        assert_eq!(v["Expiration"], "2026-01-01T00:00:00.125Z");
        assert_eq!(v["LicenseConsumptionToken"], "2026-01-01T00:00:00Z");
        let xml = "<Credentials><Expiration>2026-01-01T00:00:00Z</Expiration></Credentials>";
        assert_eq!(
            vary_sts_xml(xml, DateForm::FractionZ(5)),
            "<Credentials><Expiration>2026-01-01T00:00:00.005Z</Expiration></Credentials>"
        );
    }

    #[test]
    fn error_codes_take_each_form() {
        let body = r#"{"__type":"CustomerNotEntitledException","message":"m"}"#;
        let (b, h) = error_type(body, "marketplacemetering", ErrorTypeForm::Namespaced);
        assert!(
            b.is_some_and(|b| b.contains("com.amazonaws.marketplacemetering#CustomerNotEntitledException"))
                && h.is_none()
        );
        let (b, h) = error_type(body, "marketplacemetering", ErrorTypeForm::Header);
        assert!(b.is_none() && h.is_some_and(|h| h.starts_with("CustomerNotEntitledException:")));
    }
}
