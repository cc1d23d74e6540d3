//! Variance mode on the way out: an answer a service built, rewritten in the forms drawn for it
//! (`model::variance`, rendered by `wire::forms`), plus how it travels (chunked or sized body,
//! keep-alive or close). Header-name casing is drawn per connection in `accept`.

use crate::model::variance::Forms;
use crate::state::Shared;
use crate::wire::forms::{error_type, vary_json, vary_sts_xml, JsonKind};
use crate::wire::proto::{Outcome, LM_OPS};

/// Which JSON conventions `op`'s answer follows, or `None` for STS (XML) and plain-text IMDS answers.
fn json_kind(op: &str) -> Option<JsonKind> {
    match op {
        "RegisterUsage" | "MeterUsage" | "BatchMeterUsage" | "ResolveCustomer" | "UnknownOperation" => {
            Some(JsonKind::Metering)
        }
        o if LM_OPS.contains(&o) => Some(JsonKind::LicenseManager),
        "EcsCredentials" | "PodIdentityCredentials" | "EcsTaskMetadata" => Some(JsonKind::Container),
        o if o.starts_with("Imds") => Some(JsonKind::Container),
        _ => None,
    }
}

/// `out` in the forms drawn for the next answer of `op`, and those forms; unchanged (and `None`)
/// outside variance mode.
pub fn apply(shared: &Shared, op: &str, mut out: Outcome) -> (Outcome, Option<Forms>) {
    let Some(forms) = shared.forms(op) else {
        return (out, None);
    };
    let service = if LM_OPS.contains(&op) { "licensemanager" } else { "marketplacemetering" };
    match json_kind(op) {
        Some(kind) => {
            if out.status >= 300 && kind != JsonKind::Container {
                let (body, header) = error_type(&out.body, service, forms.error_type);
                if let Some(body) = body {
                    out.body = body;
                }
                if let Some(h) = header {
                    out.headers.push(("x-amzn-ErrorType".into(), h));
                }
            }
            if let Some(body) = vary_json(&out.body, kind, &forms) {
                out.body = body;
            }
        }
        None if out.body.starts_with("<") => out.body = vary_sts_xml(&out.body, forms.model_date),
        None => {}
    }
    if forms.close {
        out.headers.push(("connection".into(), "close".into()));
    }
    (out, Some(forms))
}
