//! `mpgate version`: what this binary was built with, for people and for machines.
#![forbid(unsafe_code)]

use crate::flavour;
use crate::identity::BAKED;
use serde_json::json;
use std::fmt::Write as _;

/// The human-readable report.
pub fn text() -> String {
    let mut s = format!("mpgate {} ({} flavour)\n", env!("CARGO_PKG_VERSION"), flavour::NAME);
    if let Some(warning) = flavour::VERSION_WARNING {
        s.push_str(warning);
    }
    let Some(b) = &BAKED else {
        s.push_str("identity: none baked; this binary refuses every start (exit 83)\n");
        return s;
    };
    let _ = writeln!(s, "pricing model: {}", b.pricing_model.as_str());
    if !b.dimensions.is_empty() {
        s.push_str("dimensions:\n");
        for d in b.dimensions {
            let tags =
                if d.tag_keys.is_empty() { "untagged".to_string() } else { format!("tags {}", d.tag_keys.join(", ")) };
            let _ = writeln!(s, "  {}  ({tags})", d.name);
        }
    }
    if !b.entitlements.is_empty() {
        let _ = writeln!(s, "key fingerprint: {}", crate::identity::MARKETPLACE_KEY_FINGERPRINT);
        s.push_str("entitlements:\n");
        for e in b.entitlements {
            let value = e.value.map(|v| format!(", {v} per container")).unwrap_or_default();
            let admits = if e.admits { "  (admits a start)" } else { "" };
            let _ = writeln!(s, "  {}  ({}{value}){admits}", e.name, e.unit);
        }
        let _ = writeln!(s, "seats: {}", crate::license::seat_note(b.entitlements));
    }
    s.push_str(if b.pricing_model == crate::identity::PricingModel::Contract {
        "product sku:\n"
    } else {
        "product codes:\n"
    });
    for (i, p) in b.products.iter().enumerate() {
        let _ = writeln!(s, "  {}  tier {}{}", p.code, p.tier, if i == 0 { "  (default)" } else { "" });
        for k in p.keys {
            let _ = writeln!(s, "    key version {}  rsa-{}  sha256:{}", k.version, k.bits, k.sha256);
        }
    }
    s
}

/// The machine-readable report (schema documented in docs/configuration.md).
pub fn json() -> String {
    let products = BAKED.as_ref().map(|b| {
        b.products
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "code": p.code,
                    "tier": p.tier,
                    "default": i == 0,
                    "keys": p.keys.iter().map(|k| json!({"version": k.version, "bits": k.bits, "sha256": k.sha256})).collect::<Vec<_>>(),
                })
            })
            .collect::<Vec<_>>()
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "flavour": flavour::NAME,
        "baked": BAKED.is_some(),
        "pricing_model": BAKED.as_ref().map(|b| b.pricing_model.as_str()),
        "dimensions": BAKED.as_ref().map(|b| {
            b.dimensions.iter().map(|d| json!({"name": d.name, "tag_keys": d.tag_keys})).collect::<Vec<_>>()
        }).unwrap_or_default(),
        "products": products.unwrap_or_default(),
        "entitlements": BAKED.as_ref().map(|b| {
            b.entitlements.iter().map(|e| json!({"name": e.name, "unit": e.unit, "value": e.value, "admits": e.admits})).collect::<Vec<_>>()
        }).unwrap_or_default(),
        "key_fingerprint": BAKED.as_ref().filter(|b| !b.entitlements.is_empty()).map(|_| crate::identity::MARKETPLACE_KEY_FINGERPRINT),
        "seats": BAKED.as_ref().filter(|b| !b.entitlements.is_empty()).map(|b| crate::license::seat_note(b.entitlements)),
    })
    .to_string()
}
