//! Contract pricing's identity (`MPGATE_PRICING_MODEL=contract`, docs/contract.md): the product SKU and
//! the entitlements to check out; no product code, keys or dimensions.
//!
//! - `MPGATE_PRODUCT_SKU` (required): the Marketplace product ID, CheckoutLicense's `ProductSKU`.
//! - `MPGATE_ENTITLEMENTS` (required): comma-separated `Name:Unit[:Value][!]` entries. `Unit` is one of
//!   the License Manager units; `Value` is required for every unit but `None` and is the whole number
//!   of units one container checks out; a trailing `!` marks an entitlement that admits a start (a
//!   start needs AWS to allow at least one of them; with no `!` anywhere, any allowed entitlement
//!   admits). The name is everything before the unit and may itself contain `:`
//!   (`AWS::Marketplace::Usage/...`).
#![forbid(unsafe_code)]

use super::{check_tier, var, Entitlement, Identity, Product, Vars};

/// The License Manager entitlement units (docs/aws-behaviour.md §4.2, `EntitlementDataUnit`), one a line. The
/// emulator's License Manager reads the same file: one list, and the gate does not depend on the
/// emulator crate.
const UNITS: &str = include_str!("../license_units.txt");

/// The identity of a contract build; `code_set`: `MPGATE_PRODUCT_CODE` is set too (a mistake).
pub(super) fn bake(vars: &Vars, code_set: bool) -> Result<Identity, String> {
    for (set, v) in [
        (code_set, "MPGATE_PRODUCT_CODE"),
        (var(vars, "MPGATE_PUBLIC_KEYS")?.is_some(), "MPGATE_PUBLIC_KEYS"),
        (var(vars, "MPGATE_TRUSTED_PRODUCT_CODES")?.is_some(), "MPGATE_TRUSTED_PRODUCT_CODES"),
        (var(vars, "MPGATE_DIMENSIONS")?.is_some(), "MPGATE_DIMENSIONS"),
    ] {
        if set {
            return Err(format!(
                "{v} is not used with MPGATE_PRICING_MODEL=contract: a contract build names MPGATE_PRODUCT_SKU (the product ID) and MPGATE_ENTITLEMENTS"
            ));
        }
    }
    let Some(sku) = var(vars, "MPGATE_PRODUCT_SKU")? else {
        return Err("MPGATE_PRODUCT_SKU is required with MPGATE_PRICING_MODEL=contract: the product ID from the AWS Marketplace Management Portal (e.g. prod-abc123)".into());
    };
    let sku_ok = (1..=1024).contains(&sku.len()) && sku.chars().all(|c| c.is_ascii_graphic() && c != ',');
    if !sku_ok {
        return Err(format!(
            "MPGATE_PRODUCT_SKU: {sku:?} must be 1-1024 printable ASCII characters without space or ,"
        ));
    }
    let Some(list) = var(vars, "MPGATE_ENTITLEMENTS")? else {
        return Err("MPGATE_ENTITLEMENTS is required with MPGATE_PRICING_MODEL=contract: comma-separated Name:Unit[:Value][!] entries (docs/contract.md)".into());
    };
    let tier = var(vars, "MPGATE_PRODUCT_TIER")?.unwrap_or_else(|| "paid".to_string());
    check_tier("MPGATE_PRODUCT_TIER", &tier)?;
    Ok(Identity {
        model: "Contract",
        products: vec![Product { code: sku, tier, keys: Vec::new() }],
        dimensions: Vec::new(),
        entitlements: entitlements(&list)?,
    })
}

/// `Name:Unit[:Value][!],...`, parsed from the right so a name may contain `:`.
fn entitlements(list: &str) -> Result<Vec<Entitlement>, String> {
    const VAR: &str = "MPGATE_ENTITLEMENTS";
    let units: Vec<&str> = UNITS.lines().collect();
    let mut out: Vec<Entitlement> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (body, admits) = match entry.strip_suffix('!') {
            Some(b) => (b, true),
            None => (entry, false),
        };
        let Some((left, last)) = body.rsplit_once(':') else {
            return Err(format!("{VAR}: entry {entry:?} is not Name:Unit[:Value][!]"));
        };
        let (name, unit, value) = if units.contains(&last) {
            (left, last, None)
        } else {
            match left.rsplit_once(':') {
                Some((name, unit)) if units.contains(&unit) => (name, unit, Some(last)),
                _ => {
                    return Err(format!(
                        "{VAR}: entry {entry:?} names no License Manager unit; use one of {} (case matters)",
                        units.join(", ")
                    ))
                }
            }
        };
        if name.is_empty() || name.len() > 255 || !name.chars().all(|c| c.is_ascii_graphic() && c != ',') {
            return Err(format!(
                "{VAR}: entitlement name {name:?} must be 1-255 printable ASCII characters without space or ,"
            ));
        }
        let value = match (unit, value) {
            ("None", None) => None,
            ("None", Some(v)) => return Err(format!(
                "{VAR}: entry {entry:?}: a None-unit (feature or tier) entitlement takes no value, got {v:?}; write {name}:None"
            )),
            (_, None) => return Err(format!(
                "{VAR}: entry {entry:?}: a {unit} entitlement needs the units one container checks out, e.g. {name}:{unit}:1"
            )),
            (_, Some(v)) => match v.parse::<u64>() {
                Ok(n) if n >= 1 => Some(n),
                _ => return Err(format!("{VAR}: entry {entry:?}: value {v:?} must be a whole number >= 1")),
            },
        };
        if out.iter().any(|e| e.name == name) {
            return Err(format!("{VAR}: entitlement {name:?} is listed twice"));
        }
        out.push(Entitlement { name: name.to_string(), unit: unit.to_string(), value, admits });
    }
    if out.is_empty() {
        return Err(format!("{VAR} lists no entitlement: give at least one Name:Unit[:Value][!]"));
    }
    Ok(out)
}
