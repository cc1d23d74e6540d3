//! Bakes the seller's product identity into the binary at compile time and refuses to build a bad one.
//!
//! Inputs (build-time environment only; nothing here can be changed after the build):
//! - `MPGATE_PRODUCT_CODE`: the listing's product code (1–255 chars, `^[-a-zA-Z0-9/=:_.@]*$`).
//! - `MPGATE_PRICING_MODEL`: `hourly` or `monthly` (both RegisterUsage), or `custom-metering` (MeterUsage).
//! - `MPGATE_DIMENSIONS`: custom-metering only, required there: comma-separated `name[:tagkey|tagkey...]`
//!   entries, at most 24 (the Marketplace limit per container product). Names are 1–255 characters and
//!   tag keys 1–100 characters of the model's TagKey set (`a-zA-Z0-9+-=._:/@`), both without space,
//!   `,` `:` `|` `=`: those delimit the bake syntax and the usage-line format (docs/custom-metering.md).
//! - `MPGATE_PRODUCT_TIER`: tier reported for `MPGATE_PRODUCT_CODE` (default `paid`).
//! - `MPGATE_PUBLIC_KEYS` (not needed for custom-metering, which never calls RegisterUsage): comma-separated `[CODE#]VERSION=PATH` entries; PEM RSA public keys issued by
//!   AWS Marketplace, one per key version (several for rotation). Without `CODE#` the key belongs to
//!   `MPGATE_PRODUCT_CODE`. Relative paths are resolved against this crate's directory.
//! - `MPGATE_TRUSTED_PRODUCT_CODES`: optional comma-separated `CODE=TIER` entries a run-time choice may pick.
//! - Contract pricing (`MPGATE_PRICING_MODEL=contract`, docs/contract.md) replaces the product code and keys:
//!   `MPGATE_PRODUCT_SKU` (required; the Marketplace product ID, CheckoutLicense's `ProductSKU`) and
//!   `MPGATE_ENTITLEMENTS` (required): comma-separated `Name:Unit[:Value][!]` entries. `Unit` is one of the
//!   License Manager units; `Value` is required for every unit but `None` and is the whole number of units
//!   one container checks out; a trailing `!` marks an entitlement that admits a start (a start needs AWS
//!   to allow at least one of them; with no `!` anywhere, any allowed entitlement admits). The name is
//!   everything before the unit and may itself contain `:` (`AWS::Marketplace::Usage/...`).
//!
//! With no `MPGATE_PRODUCT_CODE` the build succeeds but bakes no identity: such a binary refuses every
//! start (exit 83), so a forgotten build argument can never yield an admitting gate.
//! The `insecure-test-endpoints` feature additionally requires `MPGATE_INSECURE_TEST_BUILD` to be set to
//! the phrase below, so `cargo build --all-features` cannot produce the test flavour by accident.

// A build script reads its inputs from the environment and fails the build by exiting.
#![allow(clippy::disallowed_methods)]

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const TEST_BUILD_PHRASE: &str = "i-understand-this-binary-trusts-a-public-test-key";
const VARS: &[&str] = &[
    "MPGATE_PRODUCT_CODE",
    "MPGATE_PRICING_MODEL",
    "MPGATE_PRODUCT_TIER",
    "MPGATE_PUBLIC_KEYS",
    "MPGATE_TRUSTED_PRODUCT_CODES",
    "MPGATE_INSECURE_TEST_BUILD",
    "MPGATE_DIMENSIONS",
    "MPGATE_PRODUCT_SKU",
    "MPGATE_ENTITLEMENTS",
];

/// The License Manager entitlement units (aws-wire.md §4.2, `EntitlementDataUnit`), one a line. The
/// emulator's License Manager reads the same file: one list, and the gate does not depend on the
/// emulator crate.
const UNITS_FILE: &str = "src/license_units.txt";
const UNITS: &str = include_str!("src/license_units.txt");

fn units() -> Vec<&'static str> {
    UNITS.lines().collect()
}

/// One baked contract entitlement: name, unit, units one container consumes (None for `None`), admits.
struct Entitlement {
    name: String,
    unit: String,
    value: Option<u64>,
    admits: bool,
}

struct Key {
    version: u32,
    der: Vec<u8>,
    bits: usize,
}

struct Product {
    code: String,
    tier: String,
    keys: Vec<Key>,
}

fn main() {
    for var in VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={UNITS_FILE}");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let test_flavour = std::env::var_os("CARGO_FEATURE_INSECURE_TEST_ENDPOINTS").is_some();
    if test_flavour && std::env::var("MPGATE_INSECURE_TEST_BUILD").as_deref() != Ok(TEST_BUILD_PHRASE) {
        fail(&format!(
            "feature insecure-test-endpoints builds a gate that trusts a public test key and honours \
             AWS_ENDPOINT_URL; set MPGATE_INSECURE_TEST_BUILD={TEST_BUILD_PHRASE} if that is really what you want \
             (never ship it)"
        ));
    }
    let code = var("MPGATE_PRODUCT_CODE");
    let contract = var("MPGATE_PRICING_MODEL").as_deref() == Some("contract");
    let out = match code {
        _ if contract => render(&bake_contract(code.is_some())),
        None => {
            for v in [
                "MPGATE_PRICING_MODEL",
                "MPGATE_PUBLIC_KEYS",
                "MPGATE_TRUSTED_PRODUCT_CODES",
                "MPGATE_DIMENSIONS",
                "MPGATE_PRODUCT_SKU",
                "MPGATE_ENTITLEMENTS",
            ] {
                if var(v).is_some() && matches!(v, "MPGATE_PRODUCT_SKU" | "MPGATE_ENTITLEMENTS") {
                    fail(&format!(
                        "{v} is set but MPGATE_PRICING_MODEL is not contract: set MPGATE_PRICING_MODEL=contract"
                    ));
                }
                if var(v).is_some() {
                    fail(&format!("{v} is set but MPGATE_PRODUCT_CODE is not: set the product code too"));
                }
            }
            "pub(crate) const BAKED: Option<Baked> = None;\n".to_string()
        }
        Some(code) => render(&bake(&code, &manifest_dir)),
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    if test_flavour {
        // src/flavour.rs includes it: the emulator's public key, trusted by the test flavour only.
        let pem = read(&manifest_dir.join("testdata/keys/emulator.pub.pem"), "the emulator test key");
        let key = parse_key("the emulator test key", &pem);
        println!("cargo:rerun-if-changed=testdata/keys/emulator.pub.pem");
        if let Err(e) = std::fs::write(out_dir.join("emulator-test-key.der"), &key.der) {
            fail(&format!("cannot write the emulator test key: {e}"));
        }
    }
    if let Err(e) = std::fs::write(out_dir.join("baked_identity.rs"), out) {
        fail(&format!("cannot write the generated identity: {e}"));
    }
}

struct Baked {
    model: String,
    products: Vec<Product>,
    dimensions: Vec<(String, Vec<String>)>,
    entitlements: Vec<Entitlement>,
}

fn bake(code: &str, manifest_dir: &Path) -> Baked {
    check_code("MPGATE_PRODUCT_CODE", code);
    let model = match var("MPGATE_PRICING_MODEL").as_deref() {
        Some("hourly") => "Hourly",
        Some("monthly") => "Monthly",
        Some("custom-metering") => "CustomMetering",
        Some(other) => {
            fail(&format!("MPGATE_PRICING_MODEL={other:?} is not one of: hourly, monthly, custom-metering, contract"))
        }
        None => fail("MPGATE_PRICING_MODEL is required with MPGATE_PRODUCT_CODE: one of hourly, monthly, custom-metering, contract"),
    };
    for v in ["MPGATE_PRODUCT_SKU", "MPGATE_ENTITLEMENTS"] {
        if var(v).is_some() {
            fail(&format!("{v} is only used with MPGATE_PRICING_MODEL=contract"));
        }
    }
    let metered = model == "CustomMetering";
    let dimensions = match (metered, var("MPGATE_DIMENSIONS")) {
        (true, Some(list)) => dimensions(&list),
        (true, None) => fail(
            "MPGATE_DIMENSIONS is required with MPGATE_PRICING_MODEL=custom-metering: comma-separated name[:tagkey|tagkey...] entries, as in the product load form",
        ),
        (false, Some(_)) => fail("MPGATE_DIMENSIONS is only used with MPGATE_PRICING_MODEL=custom-metering"),
        (false, None) => Vec::new(),
    };
    let tier = var("MPGATE_PRODUCT_TIER").unwrap_or_else(|| "paid".to_string());
    check_tier("MPGATE_PRODUCT_TIER", &tier);
    let mut products = vec![Product { code: code.to_string(), tier, keys: Vec::new() }];
    for entry in entries(&var("MPGATE_TRUSTED_PRODUCT_CODES").unwrap_or_default()) {
        let Some((c, t)) = entry.split_once('=') else {
            fail(&format!("MPGATE_TRUSTED_PRODUCT_CODES entry {entry:?} is not CODE=TIER"))
        };
        check_code("MPGATE_TRUSTED_PRODUCT_CODES", c);
        check_tier("MPGATE_TRUSTED_PRODUCT_CODES", t);
        match products.iter().find(|p| p.code == c) {
            Some(p) if p.tier == t => continue,
            Some(p) => fail(&format!(
                "MPGATE_TRUSTED_PRODUCT_CODES gives {c} tier {t:?} but it already has tier {:?}: one code, one tier",
                p.tier
            )),
            None => products.push(Product { code: c.to_string(), tier: t.to_string(), keys: Vec::new() }),
        }
    }
    let keys = match var("MPGATE_PUBLIC_KEYS") {
        Some(keys) => keys,
        // Custom metering proves entitlement with MeterUsage, which returns nothing signed.
        None if metered => String::new(),
        None => fail("MPGATE_PUBLIC_KEYS is required: comma-separated [CODE#]VERSION=PATH entries of the PEM public keys AWS Marketplace issued"),
    };
    for entry in entries(&keys) {
        let Some((left, path)) = entry.split_once('=') else {
            fail(&format!("MPGATE_PUBLIC_KEYS entry {entry:?} is not [CODE#]VERSION=PATH"))
        };
        let (c, v) = left.split_once('#').unwrap_or((code, left));
        let version: u32 = match v.parse() {
            Ok(n) if n >= 1 && n <= i32::MAX as u32 => n,
            _ => fail(&format!("MPGATE_PUBLIC_KEYS entry {entry:?}: key version {v:?} must be an integer >= 1")),
        };
        let Some(product) = products.iter_mut().find(|p| p.code == c) else {
            fail(&format!(
                "MPGATE_PUBLIC_KEYS entry {entry:?} names product code {c:?}, which is neither MPGATE_PRODUCT_CODE nor in MPGATE_TRUSTED_PRODUCT_CODES"
            ))
        };
        if product.keys.iter().any(|k| k.version == version) {
            fail(&format!("MPGATE_PUBLIC_KEYS gives {c} key version {version} twice"));
        }
        let path = manifest_dir.join(path);
        println!("cargo:rerun-if-changed={}", path.display());
        let what = format!("MPGATE_PUBLIC_KEYS entry {entry:?}");
        let mut key = parse_key(&what, &read(&path, &what));
        key.version = version;
        product.keys.push(key);
    }
    for p in &mut products {
        if p.keys.is_empty() && !metered {
            fail(&format!(
                "MPGATE_PUBLIC_KEYS has no key for product code {}: every baked code needs its AWS-issued key",
                p.code
            ));
        }
        p.keys.sort_by_key(|k| k.version);
    }
    Baked { model: model.to_string(), products, dimensions, entitlements: Vec::new() }
}

/// Contract pricing: the product SKU and the entitlements; no product code, keys or dimensions.
fn bake_contract(code_set: bool) -> Baked {
    for (set, v) in [
        (code_set, "MPGATE_PRODUCT_CODE"),
        (var("MPGATE_PUBLIC_KEYS").is_some(), "MPGATE_PUBLIC_KEYS"),
        (var("MPGATE_TRUSTED_PRODUCT_CODES").is_some(), "MPGATE_TRUSTED_PRODUCT_CODES"),
        (var("MPGATE_DIMENSIONS").is_some(), "MPGATE_DIMENSIONS"),
    ] {
        if set {
            fail(&format!(
                "{v} is not used with MPGATE_PRICING_MODEL=contract: a contract build names MPGATE_PRODUCT_SKU (the product ID) and MPGATE_ENTITLEMENTS"
            ));
        }
    }
    let Some(sku) = var("MPGATE_PRODUCT_SKU") else {
        fail("MPGATE_PRODUCT_SKU is required with MPGATE_PRICING_MODEL=contract: the product ID from the AWS Marketplace Management Portal (e.g. prod-abc123)")
    };
    let sku_ok = (1..=1024).contains(&sku.len()) && sku.chars().all(|c| c.is_ascii_graphic() && c != ',');
    if !sku_ok {
        fail(&format!("MPGATE_PRODUCT_SKU: {sku:?} must be 1-1024 printable ASCII characters without space or ,"));
    }
    let Some(list) = var("MPGATE_ENTITLEMENTS") else {
        fail("MPGATE_ENTITLEMENTS is required with MPGATE_PRICING_MODEL=contract: comma-separated Name:Unit[:Value][!] entries (docs/contract.md)")
    };
    let tier = var("MPGATE_PRODUCT_TIER").unwrap_or_else(|| "paid".to_string());
    check_tier("MPGATE_PRODUCT_TIER", &tier);
    Baked {
        model: "Contract".to_string(),
        products: vec![Product { code: sku, tier, keys: Vec::new() }],
        dimensions: Vec::new(),
        entitlements: contract_entitlements(&list),
    }
}

/// `Name:Unit[:Value][!],...`, parsed from the right so a name may contain `:`.
fn contract_entitlements(list: &str) -> Vec<Entitlement> {
    const VAR: &str = "MPGATE_ENTITLEMENTS";
    let units = units();
    let mut out: Vec<Entitlement> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (body, admits) = match entry.strip_suffix('!') {
            Some(b) => (b, true),
            None => (entry, false),
        };
        let Some((left, last)) = body.rsplit_once(':') else {
            fail(&format!("{VAR}: entry {entry:?} is not Name:Unit[:Value][!]"))
        };
        let (name, unit, value) = if units.contains(&last) {
            (left, last, None)
        } else {
            match left.rsplit_once(':') {
                Some((name, unit)) if units.contains(&unit) => (name, unit, Some(last)),
                _ => fail(&format!(
                    "{VAR}: entry {entry:?} names no License Manager unit; use one of {} (case matters)",
                    units.join(", ")
                )),
            }
        };
        if name.is_empty() || name.len() > 255 || !name.chars().all(|c| c.is_ascii_graphic() && c != ',') {
            fail(&format!(
                "{VAR}: entitlement name {name:?} must be 1-255 printable ASCII characters without space or ,"
            ));
        }
        let value = match (unit, value) {
            ("None", None) => None,
            ("None", Some(v)) => fail(&format!(
                "{VAR}: entry {entry:?}: a None-unit (feature or tier) entitlement takes no value, got {v:?}; write {name}:None"
            )),
            (_, None) => fail(&format!(
                "{VAR}: entry {entry:?}: a {unit} entitlement needs the units one container checks out, e.g. {name}:{unit}:1"
            )),
            (_, Some(v)) => match v.parse::<u64>() {
                Ok(n) if n >= 1 => Some(n),
                _ => fail(&format!("{VAR}: entry {entry:?}: value {v:?} must be a whole number >= 1")),
            },
        };
        if out.iter().any(|e| e.name == name) {
            fail(&format!("{VAR}: entitlement {name:?} is listed twice"));
        }
        out.push(Entitlement { name: name.to_string(), unit: unit.to_string(), value, admits });
    }
    if out.is_empty() {
        fail(&format!("{VAR} lists no entitlement: give at least one Name:Unit[:Value][!]"));
    }
    out
}

/// `name[:tagkey|tagkey...],...` → (name, tag keys), validated.
fn dimensions(list: &str) -> Vec<(String, Vec<String>)> {
    const VAR: &str = "MPGATE_DIMENSIONS";
    let syntax_free = |s: &str| !s.contains(|c: char| c.is_whitespace() || ",:|=".contains(c));
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, keys) = entry.split_once(':').unwrap_or((entry, ""));
        let name_ok = (1..=255).contains(&name.chars().count())
            && syntax_free(name)
            && name.chars().all(|c| c.is_ascii_graphic());
        if !name_ok {
            fail(&format!(
                "{VAR}: dimension name {name:?} must be 1-255 printable ASCII characters without space , : | = (the model's UsageDimension, minus the bake and usage-line delimiters)"
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            fail(&format!("{VAR}: dimension {name:?} is listed twice"));
        }
        let mut tag_keys: Vec<String> = Vec::new();
        for key in keys.split('|').filter(|k| !k.is_empty()) {
            let key_ok = (1..=100).contains(&key.len())
                && syntax_free(key)
                && key.chars().all(|c| c.is_ascii_alphanumeric() || "+-._/@".contains(c));
            if !key_ok {
                fail(&format!(
                    "{VAR}: tag key {key:?} of dimension {name:?} must be 1-100 characters of a-zA-Z0-9+-._/@ (the model's TagKey, minus the usage-line delimiters)"
                ));
            }
            if tag_keys.iter().any(|k| k == key) {
                fail(&format!("{VAR}: tag key {key:?} is listed twice for dimension {name:?}"));
            }
            tag_keys.push(key.to_string());
        }
        out.push((name.to_string(), tag_keys));
    }
    if out.is_empty() {
        fail(&format!("{VAR} lists no dimension: give at least one name[:tagkey|tagkey...]"));
    }
    if out.len() > 24 {
        fail(&format!("{VAR} lists {} dimensions; AWS Marketplace allows at most 24 per container product", out.len()));
    }
    out
}

fn render(baked: &Baked) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pub(crate) const BAKED: Option<Baked> = Some(Baked {{ pricing_model: PricingModel::{}, dimensions: &[",
        baked.model
    );
    for (name, keys) in &baked.dimensions {
        let _ = writeln!(s, "  BakedDimension {{ name: {name:?}, tag_keys: &{keys:?} }},");
    }
    let _ = writeln!(s, "], entitlements: &[");
    for e in &baked.entitlements {
        let _ = writeln!(
            s,
            "  BakedEntitlement {{ name: {:?}, unit: {:?}, value: {:?}, admits: {} }},",
            e.name, e.unit, e.value, e.admits
        );
    }
    let _ = writeln!(s, "], products: &[");
    for p in &baked.products {
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

fn parse_key(what: &str, pem: &str) -> Key {
    let key = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .unwrap_or_else(|e| {
            fail(&format!("{what}: not a PEM RSA public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY): {e}"))
        });
    let bits = key.size() * 8;
    if !(1024..=8192).contains(&bits) {
        fail(&format!("{what}: RSA key of {bits} bits is outside 1024..=8192"));
    }
    let der = key
        .to_public_key_der()
        .unwrap_or_else(|e| fail(&format!("{what}: cannot re-encode the key: {e}")))
        .as_bytes()
        .to_vec();
    Key { version: 0, der, bits }
}

fn check_code(var: &str, code: &str) {
    let ok_chars = code.chars().all(|c| c.is_ascii_alphanumeric() || "-/=:_.@".contains(c));
    if code.is_empty() || code.len() > 255 || !ok_chars {
        fail(&format!(
            "{var}: product code {code:?} must be 1-255 characters matching ^[-a-zA-Z0-9/=:_.@]*$ (the Marketplace Metering model's ProductCode)"
        ));
    }
}

fn check_tier(var: &str, tier: &str) {
    let mut chars = tier.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && tier.len() <= 32;
    if !ok {
        fail(&format!("{var}: tier {tier:?} must match ^[a-z][a-z0-9-]{{0,31}}$ (e.g. paid, free)"));
    }
}

fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty())
}

fn var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => fail(&format!("{name} is not valid UTF-8")),
    }
}

fn read(path: &Path, what: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("{what}: cannot read {}: {e}", path.display())))
}

fn fail(msg: &str) -> ! {
    eprintln!("error: mpgate product identity: {msg}");
    std::process::exit(1);
}
