//! The product identity a build bakes in: parsed and validated from the build-time variables, and
//! rendered as the Rust that src/identity.rs includes. Pure: build.rs gathers the variables and reads
//! the key files, then calls `bake` and `render` (it includes this file with `#[path]`); the library
//! compiles it only for its unit tests.
//!
//! Inputs (build-time environment only; nothing here can be changed after the build):
//! - `MPGATE_PRODUCT_CODE`: the listing's product code (1–255 chars, `^[-a-zA-Z0-9/=:_.@]*$`).
//! - `MPGATE_PRICING_MODEL`: `hourly` or `monthly` (both RegisterUsage), `custom-metering` (MeterUsage)
//!   or `contract` (License Manager).
//! - `MPGATE_DIMENSIONS`: custom-metering only, required there: comma-separated `name[:tagkey|tagkey...]`
//!   entries, at most 24 (the Marketplace limit per container product). Names are 1–255 characters and
//!   tag keys 1–100 characters of the model's TagKey set (`a-zA-Z0-9+-=._:/@`), both without space,
//!   `,` `:` `|` `=`: those delimit the bake syntax and the usage-line format (docs/custom-metering.md).
//! - `MPGATE_PRODUCT_TIER`: tier reported for `MPGATE_PRODUCT_CODE` (default `paid`).
//! - `MPGATE_PUBLIC_KEYS` (not needed for custom-metering, which never calls RegisterUsage):
//!   comma-separated `[CODE#]VERSION=PATH` entries; PEM RSA public keys issued by AWS Marketplace, one
//!   per key version (several for rotation). Without `CODE#` the key belongs to `MPGATE_PRODUCT_CODE`.
//!   build.rs resolves relative paths against the crate's directory.
//! - `MPGATE_TRUSTED_PRODUCT_CODES`: optional comma-separated `CODE=TIER` entries a run-time choice may pick.
//! - Contract pricing (`MPGATE_PRICING_MODEL=contract`, docs/contract.md) replaces the product code and
//!   keys: `MPGATE_PRODUCT_SKU` and `MPGATE_ENTITLEMENTS` (see `contract`).
//!
//! With no `MPGATE_PRODUCT_CODE` (and no contract) the build succeeds but bakes no identity: such a
//! binary refuses every start (exit 83), so a forgotten build argument can never yield an admitting gate.
//! Must not: read the environment or the filesystem (both come in), or print anything.
#![forbid(unsafe_code)]

#[path = "bake/contract.rs"]
mod contract;
#[path = "bake/dimensions.rs"]
mod dimensions;
#[cfg(test)]
#[path = "bake/tests.rs"]
mod tests;

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;

/// The build-time variables as the environment has them (build.rs gathers its `VARS`); an unset one
/// is absent.
pub type Vars = BTreeMap<&'static str, OsString>;

/// Reads a key file named as in `MPGATE_PUBLIC_KEYS`; the error says why it could not.
pub type Read<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// A baked identity, as `render` writes it.
pub struct Identity {
    /// The `PricingModel` variant.
    pub model: &'static str,
    /// `products[0]` is the default (`MPGATE_PRODUCT_CODE`, or the contract's SKU).
    pub products: Vec<Product>,
    /// Custom metering: each dimension and its tag keys.
    pub dimensions: Vec<(String, Vec<String>)>,
    /// Contract pricing: the entitlements to check out.
    pub entitlements: Vec<Entitlement>,
}

/// One product code with its tier and keys (sorted by version).
pub struct Product {
    pub code: String,
    pub tier: String,
    pub keys: Vec<Key>,
}

/// One AWS-issued public key.
pub struct Key {
    pub version: u32,
    /// SubjectPublicKeyInfo DER.
    pub der: Vec<u8>,
    pub bits: usize,
}

/// One baked contract entitlement: name, unit, units one container consumes (None for `None`), admits.
pub struct Entitlement {
    pub name: String,
    pub unit: String,
    pub value: Option<u64>,
    pub admits: bool,
}

/// The identity `vars` describe (`None`: nothing baked), reading key files with `read`; `Err` is the
/// build error, naming the variable and the rule.
pub fn bake(vars: &Vars, read: Read<'_>) -> Result<Option<Identity>, String> {
    let code = var(vars, "MPGATE_PRODUCT_CODE")?;
    if var(vars, "MPGATE_PRICING_MODEL")?.as_deref() == Some("contract") {
        return contract::bake(vars, code.is_some()).map(Some);
    }
    let Some(code) = code else {
        nothing_else_set(vars)?;
        return Ok(None);
    };
    check_code("MPGATE_PRODUCT_CODE", &code)?;
    let model = pricing_model(vars)?;
    for v in ["MPGATE_PRODUCT_SKU", "MPGATE_ENTITLEMENTS"] {
        if var(vars, v)?.is_some() {
            return Err(format!("{v} is only used with MPGATE_PRICING_MODEL=contract"));
        }
    }
    let metered = model == "CustomMetering";
    let dimensions = match (metered, var(vars, "MPGATE_DIMENSIONS")?) {
        (true, Some(list)) => dimensions::parse(&list)?,
        (true, None) => return Err("MPGATE_DIMENSIONS is required with MPGATE_PRICING_MODEL=custom-metering: comma-separated name[:tagkey|tagkey...] entries, as in the product load form".into()),
        (false, Some(_)) => return Err("MPGATE_DIMENSIONS is only used with MPGATE_PRICING_MODEL=custom-metering".into()),
        (false, None) => Vec::new(),
    };
    let mut products = products(vars, &code)?;
    let keys = match var(vars, "MPGATE_PUBLIC_KEYS")? {
        Some(keys) => keys,
        // Custom metering proves entitlement with MeterUsage, which returns nothing signed.
        None if metered => String::new(),
        None => return Err("MPGATE_PUBLIC_KEYS is required: comma-separated [CODE#]VERSION=PATH entries of the PEM public keys AWS Marketplace issued".into()),
    };
    add_keys(&mut products, &code, &keys, read)?;
    for p in &mut products {
        if p.keys.is_empty() && !metered {
            return Err(format!(
                "MPGATE_PUBLIC_KEYS has no key for product code {}: every baked code needs its AWS-issued key",
                p.code
            ));
        }
        p.keys.sort_by_key(|k| k.version);
    }
    Ok(Some(Identity { model, products, dimensions, entitlements: Vec::new() }))
}

/// Without a product code, a variable that only makes sense with one is a mistake.
fn nothing_else_set(vars: &Vars) -> Result<(), String> {
    for v in [
        "MPGATE_PRICING_MODEL",
        "MPGATE_PUBLIC_KEYS",
        "MPGATE_TRUSTED_PRODUCT_CODES",
        "MPGATE_DIMENSIONS",
        "MPGATE_PRODUCT_SKU",
        "MPGATE_ENTITLEMENTS",
    ] {
        if var(vars, v)?.is_some() && matches!(v, "MPGATE_PRODUCT_SKU" | "MPGATE_ENTITLEMENTS") {
            return Err(format!(
                "{v} is set but MPGATE_PRICING_MODEL is not contract: set MPGATE_PRICING_MODEL=contract"
            ));
        }
        if var(vars, v)?.is_some() {
            return Err(format!("{v} is set but MPGATE_PRODUCT_CODE is not: set the product code too"));
        }
    }
    Ok(())
}

/// The `PricingModel` variant of a build with a product code.
fn pricing_model(vars: &Vars) -> Result<&'static str, String> {
    match var(vars, "MPGATE_PRICING_MODEL")?.as_deref() {
        Some("hourly") => Ok("Hourly"),
        Some("monthly") => Ok("Monthly"),
        Some("custom-metering") => Ok("CustomMetering"),
        Some(other) => {
            Err(format!("MPGATE_PRICING_MODEL={other:?} is not one of: hourly, monthly, custom-metering, contract"))
        }
        None => Err("MPGATE_PRICING_MODEL is required with MPGATE_PRODUCT_CODE: one of hourly, monthly, custom-metering, contract".into()),
    }
}

/// `MPGATE_PRODUCT_CODE` with its tier, then the `MPGATE_TRUSTED_PRODUCT_CODES`, without keys yet.
fn products(vars: &Vars, code: &str) -> Result<Vec<Product>, String> {
    let tier = var(vars, "MPGATE_PRODUCT_TIER")?.unwrap_or_else(|| "paid".to_string());
    check_tier("MPGATE_PRODUCT_TIER", &tier)?;
    let mut products = vec![Product { code: code.to_string(), tier, keys: Vec::new() }];
    for entry in entries(&var(vars, "MPGATE_TRUSTED_PRODUCT_CODES")?.unwrap_or_default()) {
        let Some((c, t)) = entry.split_once('=') else {
            return Err(format!("MPGATE_TRUSTED_PRODUCT_CODES entry {entry:?} is not CODE=TIER"));
        };
        check_code("MPGATE_TRUSTED_PRODUCT_CODES", c)?;
        check_tier("MPGATE_TRUSTED_PRODUCT_CODES", t)?;
        match products.iter().find(|p| p.code == c) {
            Some(p) if p.tier == t => continue,
            Some(p) => {
                return Err(format!(
                "MPGATE_TRUSTED_PRODUCT_CODES gives {c} tier {t:?} but it already has tier {:?}: one code, one tier",
                p.tier
            ))
            }
            None => products.push(Product { code: c.to_string(), tier: t.to_string(), keys: Vec::new() }),
        }
    }
    Ok(products)
}

/// Each `[CODE#]VERSION=PATH` entry of `keys`, read and parsed, to its product (`code` without `CODE#`).
fn add_keys(products: &mut [Product], code: &str, keys: &str, read: Read<'_>) -> Result<(), String> {
    for entry in entries(keys) {
        let Some((left, path)) = entry.split_once('=') else {
            return Err(format!("MPGATE_PUBLIC_KEYS entry {entry:?} is not [CODE#]VERSION=PATH"));
        };
        let (c, v) = left.split_once('#').unwrap_or((code, left));
        let version: u32 = match v.parse() {
            Ok(n) if n >= 1 && n <= i32::MAX as u32 => n,
            _ => return Err(format!("MPGATE_PUBLIC_KEYS entry {entry:?}: key version {v:?} must be an integer >= 1")),
        };
        let Some(product) = products.iter_mut().find(|p| p.code == c) else {
            return Err(format!(
                "MPGATE_PUBLIC_KEYS entry {entry:?} names product code {c:?}, which is neither MPGATE_PRODUCT_CODE nor in MPGATE_TRUSTED_PRODUCT_CODES"
            ));
        };
        if product.keys.iter().any(|k| k.version == version) {
            return Err(format!("MPGATE_PUBLIC_KEYS gives {c} key version {version} twice"));
        }
        let what = format!("MPGATE_PUBLIC_KEYS entry {entry:?}");
        let pem = read(path).map_err(|why| format!("{what}: {why}"))?;
        let mut key = parse_key(&what, &pem)?;
        key.version = version;
        product.keys.push(key);
    }
    Ok(())
}

/// A PEM RSA public key (SubjectPublicKeyInfo or PKCS#1) of 1024 to 8192 bits; `what` names it in the
/// error. The version is left 0 for the caller.
pub fn parse_key(what: &str, pem: &str) -> Result<Key, String> {
    let key = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|e| format!("{what}: not a PEM RSA public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY): {e}"))?;
    let bits = key.size() * 8;
    if !(1024..=8192).contains(&bits) {
        return Err(format!("{what}: RSA key of {bits} bits is outside 1024..=8192"));
    }
    let der =
        key.to_public_key_der().map_err(|e| format!("{what}: cannot re-encode the key: {e}"))?.as_bytes().to_vec();
    Ok(Key { version: 0, der, bits })
}

fn check_code(var: &str, code: &str) -> Result<(), String> {
    let ok_chars = code.chars().all(|c| c.is_ascii_alphanumeric() || "-/=:_.@".contains(c));
    if code.is_empty() || code.len() > 255 || !ok_chars {
        return Err(format!(
            "{var}: product code {code:?} must be 1-255 characters matching ^[-a-zA-Z0-9/=:_.@]*$ (the Marketplace Metering model's ProductCode)"
        ));
    }
    Ok(())
}

fn check_tier(var: &str, tier: &str) -> Result<(), String> {
    let mut chars = tier.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && tier.len() <= 32;
    if !ok {
        return Err(format!("{var}: tier {tier:?} must match ^[a-z][a-z0-9-]{{0,31}}$ (e.g. paid, free)"));
    }
    Ok(())
}

fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty())
}

/// A variable's value, trimmed; blank counts as unset.
fn var(vars: &Vars, name: &str) -> Result<Option<String>, String> {
    match vars.get(name).map(|v| v.to_str()) {
        None => Ok(None),
        Some(None) => Err(format!("{name} is not valid UTF-8")),
        Some(Some(v)) if v.trim().is_empty() => Ok(None),
        Some(Some(v)) => Ok(Some(v.trim().to_string())),
    }
}

/// The Rust src/identity.rs includes: `BAKED`, `None` when nothing is baked.
pub fn render(identity: Option<&Identity>) -> String {
    let Some(identity) = identity else { return "pub(crate) const BAKED: Option<Baked> = None;\n".to_string() };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pub(crate) const BAKED: Option<Baked> = Some(Baked {{ pricing_model: PricingModel::{}, dimensions: &[",
        identity.model
    );
    for (name, keys) in &identity.dimensions {
        let _ = writeln!(s, "  BakedDimension {{ name: {name:?}, tag_keys: &{keys:?} }},");
    }
    let _ = writeln!(s, "], entitlements: &[");
    for e in &identity.entitlements {
        let _ = writeln!(
            s,
            "  BakedEntitlement {{ name: {:?}, unit: {:?}, value: {:?}, admits: {} }},",
            e.name, e.unit, e.value, e.admits
        );
    }
    let _ = writeln!(s, "], products: &[");
    for p in &identity.products {
        let _ = writeln!(s, "  BakedProduct {{ code: {:?}, tier: {:?}, keys: &[", p.code, p.tier);
        for k in &p.keys {
            let fp = Sha256::digest(&k.der).iter().fold(String::new(), |mut acc, b| {
                let _ = write!(acc, "{b:02x}");
                acc
            });
            let _ = writeln!(
                s,
                "    BakedKey {{ version: {}, bits: {}, sha256: {fp:?}, der: &{:?} }},",
                k.version, k.bits, k.der
            );
        }
        let _ = writeln!(s, "  ] }},");
    }
    let _ = writeln!(s, "] }});");
    s
}
