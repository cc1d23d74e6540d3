//! `bake` case by case: every bad identity the build refuses, with the error text the build prints
//! (scripts/check-build-errors keeps three of them end to end), and the identities it accepts.

use super::*;
use std::os::unix::ffi::OsStringExt as _;

const PAID_V1: &str = include_str!("../../testdata/keys/paid-v1.pub.pem");
const PAID_V2: &str = include_str!("../../testdata/keys/paid-v2.pub.pem");
const FREE_V1: &str = include_str!("../../testdata/keys/free-v1.pub.pem");

const KEYS: (&str, &str) = ("MPGATE_PUBLIC_KEYS", "1=testdata/keys/paid-v1.pub.pem");
const ENTS: (&str, &str) = ("MPGATE_ENTITLEMENTS", "BasicTier:None!,Seats:Count:1");
const CODE: (&str, &str) = ("MPGATE_PRODUCT_CODE", "abc");
const HOURLY: (&str, &str) = ("MPGATE_PRICING_MODEL", "hourly");
const METERED: (&str, &str) = ("MPGATE_PRICING_MODEL", "custom-metering");
const CONTRACT: (&str, &str) = ("MPGATE_PRICING_MODEL", "contract");
const SKU: (&str, &str) = ("MPGATE_PRODUCT_SKU", "prod-abc");

/// The key files the cases name, as build.rs would read them from the crate's directory.
fn files(path: &str) -> Result<String, String> {
    match path {
        "testdata/keys/paid-v1.pub.pem" => Ok(PAID_V1.into()),
        "testdata/keys/paid-v2.pub.pem" => Ok(PAID_V2.into()),
        "testdata/keys/free-v1.pub.pem" => Ok(FREE_V1.into()),
        "Cargo.toml" => Ok(include_str!("../../Cargo.toml").into()),
        other => Err(format!("cannot read /crate/{other}: No such file or directory (os error 2)")),
    }
}

fn vars(pairs: &[(&'static str, &str)]) -> Vars {
    pairs.iter().map(|(k, v)| (*k, OsString::from(v))).collect()
}

fn baked(pairs: &[(&'static str, &str)]) -> Result<Option<Identity>, String> {
    bake(&vars(pairs), &files)
}

/// A case: its name, the text the error must contain, the variables set.
type Case<'a> = (&'a str, &'a str, &'a [(&'static str, &'a str)]);

fn identity(pairs: &[(&'static str, &str)]) -> Identity {
    match baked(pairs) {
        Ok(Some(identity)) => identity,
        Ok(None) => panic!("nothing baked from {pairs:?}"),
        Err(why) => panic!("refused {pairs:?}: {why}"),
    }
}

#[test]
fn every_bad_identity_is_refused_with_the_rule_it_breaks() {
    let long_code = "a".repeat(256);
    let dims25 = (1..=25).map(|i| format!("d{i}")).collect::<Vec<_>>().join(",");
    let cases: &[Case<'_>] = &[
        (
            "bad product code",
            "MPGATE_PRODUCT_CODE: product code \"bad code!\" must be 1-255 characters",
            &[("MPGATE_PRODUCT_CODE", "bad code!"), HOURLY, KEYS],
        ),
        ("long product code", "must be 1-255 characters", &[("MPGATE_PRODUCT_CODE", &long_code), HOURLY, KEYS]),
        ("missing pricing model", "MPGATE_PRICING_MODEL is required", &[CODE, KEYS]),
        (
            "unknown pricing model",
            "MPGATE_PRICING_MODEL=\"weekly\" is not one of",
            &[CODE, ("MPGATE_PRICING_MODEL", "weekly"), KEYS],
        ),
        ("missing keys", "MPGATE_PUBLIC_KEYS is required", &[CODE, HOURLY]),
        ("key is not a key", "not a PEM RSA public key", &[CODE, HOURLY, ("MPGATE_PUBLIC_KEYS", "1=Cargo.toml")]),
        (
            "key version 0",
            "key version \"0\" must be an integer >= 1",
            &[CODE, HOURLY, ("MPGATE_PUBLIC_KEYS", "0=testdata/keys/paid-v1.pub.pem")],
        ),
        (
            "trusted code without key",
            "has no key for product code freecode",
            &[CODE, HOURLY, KEYS, ("MPGATE_TRUSTED_PRODUCT_CODES", "freecode=free")],
        ),
        ("bad tier", "tier \"Gold!\" must match", &[CODE, HOURLY, KEYS, ("MPGATE_PRODUCT_TIER", "Gold!")]),
        ("keys without product code", "MPGATE_PUBLIC_KEYS is set but MPGATE_PRODUCT_CODE is not", &[KEYS]),
        (
            "custom metering without dimensions",
            "MPGATE_DIMENSIONS is required with MPGATE_PRICING_MODEL=custom-metering",
            &[CODE, METERED],
        ),
        (
            "dimension name with a space",
            "MPGATE_DIMENSIONS: dimension name \"bad name\" must be 1-255",
            &[CODE, METERED, ("MPGATE_DIMENSIONS", "bad name")],
        ),
        (
            "duplicate dimension",
            "dimension \"requests\" is listed twice",
            &[CODE, METERED, ("MPGATE_DIMENSIONS", "requests,requests")],
        ),
        (
            "bad tag key",
            "tag key \"bad=key\" of dimension \"requests\" must be 1-100",
            &[CODE, METERED, ("MPGATE_DIMENSIONS", "requests:bad=key")],
        ),
        (
            "25 dimensions",
            "lists 25 dimensions; AWS Marketplace allows at most 24",
            &[CODE, METERED, ("MPGATE_DIMENSIONS", &dims25)],
        ),
        (
            "dimensions on hourly",
            "MPGATE_DIMENSIONS is only used with MPGATE_PRICING_MODEL=custom-metering",
            &[CODE, HOURLY, KEYS, ("MPGATE_DIMENSIONS", "requests")],
        ),
        (
            "contract without sku",
            "MPGATE_PRODUCT_SKU is required with MPGATE_PRICING_MODEL=contract",
            &[CONTRACT, ENTS],
        ),
        (
            "contract without entitlements",
            "MPGATE_ENTITLEMENTS is required with MPGATE_PRICING_MODEL=contract",
            &[CONTRACT, SKU],
        ),
        (
            "contract with a product code",
            "MPGATE_PRODUCT_CODE is not used with MPGATE_PRICING_MODEL=contract",
            &[CONTRACT, SKU, ENTS, CODE],
        ),
        (
            "contract with keys",
            "MPGATE_PUBLIC_KEYS is not used with MPGATE_PRICING_MODEL=contract",
            &[CONTRACT, SKU, ENTS, KEYS],
        ),
        (
            "sku with a space",
            "MPGATE_PRODUCT_SKU: \"prod abc\" must be 1-1024 printable ASCII",
            &[CONTRACT, ("MPGATE_PRODUCT_SKU", "prod abc"), ENTS],
        ),
        (
            "entitlement with an unknown unit",
            "entry \"Seats:count:1\" names no License Manager unit",
            &[CONTRACT, SKU, ("MPGATE_ENTITLEMENTS", "Seats:count:1")],
        ),
        (
            "counted entitlement without value",
            "a Count entitlement needs the units one container checks out, e.g. Seats:Count:1",
            &[CONTRACT, SKU, ("MPGATE_ENTITLEMENTS", "Seats:Count")],
        ),
        (
            "feature with a value",
            "a None-unit (feature or tier) entitlement takes no value",
            &[CONTRACT, SKU, ("MPGATE_ENTITLEMENTS", "BasicTier:None:1")],
        ),
        (
            "zero units",
            "value \"0\" must be a whole number >= 1",
            &[CONTRACT, SKU, ("MPGATE_ENTITLEMENTS", "Seats:Count:0")],
        ),
        (
            "duplicate entitlement",
            "entitlement \"Seats\" is listed twice",
            &[CONTRACT, SKU, ("MPGATE_ENTITLEMENTS", "Seats:Count:1,Seats:Count:2")],
        ),
        ("no entitlement", "MPGATE_ENTITLEMENTS lists no entitlement", &[CONTRACT, SKU, ("MPGATE_ENTITLEMENTS", ",")]),
        (
            "entitlements on hourly",
            "MPGATE_ENTITLEMENTS is only used with MPGATE_PRICING_MODEL=contract",
            &[CODE, HOURLY, KEYS, ENTS],
        ),
        ("sku without contract", "MPGATE_PRODUCT_SKU is set but MPGATE_PRICING_MODEL is not contract", &[SKU]),
        // The other rules.
        (
            "key for an unknown code",
            "names product code \"other\", which is neither MPGATE_PRODUCT_CODE nor in MPGATE_TRUSTED_PRODUCT_CODES",
            &[
                CODE,
                HOURLY,
                ("MPGATE_PUBLIC_KEYS", "1=testdata/keys/paid-v1.pub.pem,other#1=testdata/keys/free-v1.pub.pem"),
            ],
        ),
        (
            "key version twice",
            "MPGATE_PUBLIC_KEYS gives abc key version 1 twice",
            &[CODE, HOURLY, ("MPGATE_PUBLIC_KEYS", "1=testdata/keys/paid-v1.pub.pem,1=testdata/keys/paid-v2.pub.pem")],
        ),
        (
            "key entry without a path",
            "MPGATE_PUBLIC_KEYS entry \"1\" is not [CODE#]VERSION=PATH",
            &[CODE, HOURLY, ("MPGATE_PUBLIC_KEYS", "1")],
        ),
        (
            "unreadable key file",
            "MPGATE_PUBLIC_KEYS entry \"1=nope.pem\": cannot read /crate/nope.pem: No such file",
            &[CODE, HOURLY, ("MPGATE_PUBLIC_KEYS", "1=nope.pem")],
        ),
        (
            "trusted entry without a tier",
            "MPGATE_TRUSTED_PRODUCT_CODES entry \"free\" is not CODE=TIER",
            &[CODE, HOURLY, KEYS, ("MPGATE_TRUSTED_PRODUCT_CODES", "free")],
        ),
        (
            "one code, two tiers",
            "MPGATE_TRUSTED_PRODUCT_CODES gives abc tier \"free\" but it already has tier \"paid\": one code, one tier",
            &[CODE, HOURLY, KEYS, ("MPGATE_TRUSTED_PRODUCT_CODES", "abc=free")],
        ),
        (
            "contract with dimensions",
            "MPGATE_DIMENSIONS is not used with MPGATE_PRICING_MODEL=contract",
            &[CONTRACT, SKU, ENTS, ("MPGATE_DIMENSIONS", "requests")],
        ),
        (
            "entitlement without a unit",
            "MPGATE_ENTITLEMENTS: entry \"Seats\" is not Name:Unit[:Value][!]",
            &[CONTRACT, SKU, ("MPGATE_ENTITLEMENTS", "Seats")],
        ),
        ("no dimension", "MPGATE_DIMENSIONS lists no dimension", &[CODE, METERED, ("MPGATE_DIMENSIONS", ",")]),
        (
            "tag key twice",
            "tag key \"team\" is listed twice for dimension \"requests\"",
            &[CODE, METERED, ("MPGATE_DIMENSIONS", "requests:team|team")],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, want, pairs) in cases {
        match baked(pairs) {
            Err(why) if why.contains(want) => {}
            Err(why) => wrong.push(format!("{name}: wanted {want:?}, got {why:?}")),
            Ok(_) => wrong.push(format!("{name}: wanted {want:?}, but it baked")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn no_product_code_bakes_nothing_and_blank_counts_as_unset() {
    assert!(matches!(baked(&[]), Ok(None)));
    assert!(matches!(baked(&[("MPGATE_PRODUCT_CODE", "  "), ("MPGATE_DIMENSIONS", "")]), Ok(None)));
    assert_eq!(render(None), "pub(crate) const BAKED: Option<Baked> = None;\n");
}

#[test]
fn a_variable_that_is_not_utf8_is_refused() {
    let mut vars = vars(&[HOURLY, KEYS]);
    vars.insert("MPGATE_PRODUCT_CODE", OsString::from_vec(b"abc\xff".to_vec()));
    assert_eq!(bake(&vars, &files).err().as_deref(), Some("MPGATE_PRODUCT_CODE is not valid UTF-8"));
}

#[test]
fn the_demo_identity_bakes_two_codes_with_their_keys_in_version_order() {
    let baked = identity(&[
        ("MPGATE_PRODUCT_CODE", " 8f3kq2demopaid0mpgate01\n"),
        HOURLY,
        ("MPGATE_PUBLIC_KEYS", "2=testdata/keys/paid-v2.pub.pem, 1=testdata/keys/paid-v1.pub.pem,5x7wq9demofree0mpgate01#1=testdata/keys/free-v1.pub.pem"),
        ("MPGATE_TRUSTED_PRODUCT_CODES", "5x7wq9demofree0mpgate01=free"),
    ]);
    assert_eq!(baked.model, "Hourly");
    let shown: Vec<_> = baked
        .products
        .iter()
        .map(|p| (p.code.as_str(), p.tier.as_str(), p.keys.iter().map(|k| (k.version, k.bits)).collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        shown,
        [
            ("8f3kq2demopaid0mpgate01", "paid", vec![(1, 2048), (2, 2048)]),
            ("5x7wq9demofree0mpgate01", "free", vec![(1, 2048)])
        ]
    );
    let v1 = parse_key("v1", PAID_V1).expect("paid v1");
    assert_eq!(baked.products[0].keys[0].der, v1.der);
    let code = render(Some(&baked));
    let fingerprint: String = Sha256::digest(&v1.der).iter().map(|b| format!("{b:02x}")).collect();
    for needle in [
        "pub(crate) const BAKED: Option<Baked> = Some(Baked { pricing_model: PricingModel::Hourly, dimensions: &[",
        "BakedProduct { code: \"8f3kq2demopaid0mpgate01\", tier: \"paid\", keys: &[",
        &format!("BakedKey {{ version: 1, bits: 2048, sha256: {fingerprint:?}, der: &{:?} }},", v1.der),
        "BakedProduct { code: \"5x7wq9demofree0mpgate01\", tier: \"free\", keys: &[",
    ] {
        assert!(code.contains(needle), "{needle:?} missing from the generated identity");
    }
}

#[test]
fn custom_metering_bakes_dimensions_and_needs_no_key() {
    let baked = identity(&[CODE, METERED, ("MPGATE_DIMENSIONS", "requests:team|env, gb_processed")]);
    assert_eq!(baked.model, "CustomMetering");
    assert_eq!(
        baked.dimensions,
        [("requests".to_string(), vec!["team".to_string(), "env".to_string()]), ("gb_processed".to_string(), vec![])]
    );
    assert!(baked.products[0].keys.is_empty());
    let code = render(Some(&baked));
    assert!(code.contains("BakedDimension { name: \"requests\", tag_keys: &[\"team\", \"env\"] },"), "{code}");
}

#[test]
fn a_contract_bakes_its_sku_and_entitlements_with_names_that_contain_colons() {
    let ents = ("MPGATE_ENTITLEMENTS", "AWS::Marketplace::Usage/x:Count:2!, BasicTier:None");
    let baked = identity(&[CONTRACT, SKU, ents, ("MPGATE_PRODUCT_TIER", "gold")]);
    assert_eq!(baked.model, "Contract");
    assert_eq!((baked.products[0].code.as_str(), baked.products[0].tier.as_str()), ("prod-abc", "gold"));
    let shown: Vec<_> =
        baked.entitlements.iter().map(|e| (e.name.as_str(), e.unit.as_str(), e.value, e.admits)).collect();
    assert_eq!(shown, [("AWS::Marketplace::Usage/x", "Count", Some(2), true), ("BasicTier", "None", None, false)]);
    let code = render(Some(&baked));
    assert!(code.contains("PricingModel::Contract"), "{code}");
    assert!(
        code.contains(
            "BakedEntitlement { name: \"AWS::Marketplace::Usage/x\", unit: \"Count\", value: Some(2), admits: true },"
        ),
        "{code}"
    );
}

#[test]
fn keys_are_spki_or_pkcs1_pem_of_1024_to_8192_bits() {
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::pkcs8::LineEnding;
    let spki = parse_key("k", PAID_V1).expect("SubjectPublicKeyInfo");
    let public = rsa::RsaPublicKey::from_public_key_pem(PAID_V1).expect("key");
    let pkcs1 = public.to_pkcs1_pem(LineEnding::LF).expect("PKCS#1 PEM");
    assert_eq!(parse_key("k", &pkcs1).expect("PKCS#1").der, spki.der);
    let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 512).expect("512-bit key").to_public_key();
    let small = small.to_public_key_pem(LineEnding::LF).expect("PEM");
    assert_eq!(parse_key("k", &small).err().as_deref(), Some("k: RSA key of 512 bits is outside 1024..=8192"));
}

/// build.rs gathers the variables in its `VARS` (and cargo reruns it when one changes): every
/// variable the rules read must be listed there.
#[test]
fn build_rs_gathers_every_variable_the_rules_read() {
    let build = include_str!("../../build.rs");
    let start = build.find("const VARS: &[&str] = &[").expect("build.rs VARS");
    let gathered = &build[start..start + build[start..].find("];").expect("end of VARS")];
    let sources = [include_str!("../bake.rs"), include_str!("contract.rs"), include_str!("dimensions.rs")];
    for source in sources {
        for (at, _) in source.match_indices("\"MPGATE_") {
            let name: String = source[at + 1..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
            assert!(gathered.contains(&format!("\"{name}\"")), "{name} is read but not in build.rs's VARS");
        }
    }
}
