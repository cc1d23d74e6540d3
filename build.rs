//! Bakes the seller's product identity into the binary at compile time and refuses to build a bad one.
//!
//! The rules are src/bake.rs (pure, unit-tested in the library; its header lists the variables). This
//! script gathers its inputs (the build-time variables, the key files relative to this crate's
//! directory), calls it, tells cargo what to watch, and writes the generated code: the identity for
//! src/identity.rs and, in the test flavour, the emulator's key for src/flavour.rs.
//!
//! The test flavour's feature also requires `MPGATE_INSECURE_TEST_BUILD` to be set to the phrase below,
//! so `cargo build --all-features` cannot produce it by accident.

// A build script reads its inputs from the environment and fails the build by exiting.
#![allow(clippy::disallowed_methods)]

#[path = "src/bake.rs"]
mod bake;

use std::path::{Path, PathBuf};

const TEST_BUILD_PHRASE: &str = "i-understand-this-binary-trusts-a-public-test-key";
/// The variables gathered for `bake` (and the test flavour's opt-in), each watched by cargo.
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

fn main() {
    for var in VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/bake.rs");
    println!("cargo:rerun-if-changed=src/bake");
    println!("cargo:rerun-if-changed=src/license_units.txt");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let test_flavour = std::env::var_os("CARGO_FEATURE_INSECURE_TEST_ENDPOINTS").is_some();
    if test_flavour && std::env::var("MPGATE_INSECURE_TEST_BUILD").as_deref() != Ok(TEST_BUILD_PHRASE) {
        fail(&format!(
            "feature insecure-test-endpoints builds a gate that trusts a public test key and honours \
             AWS_ENDPOINT_URL; set MPGATE_INSECURE_TEST_BUILD={TEST_BUILD_PHRASE} if that is really what you want \
             (never ship it)"
        ));
    }
    let vars: bake::Vars = VARS.iter().filter_map(|&v| Some((v, std::env::var_os(v)?))).collect();
    let read = |path: &str| read_watched(&manifest_dir.join(path));
    let identity = bake::bake(&vars, &read).unwrap_or_else(|why| fail(&why));
    if test_flavour {
        let what = "the emulator test key";
        let pem = read("testdata/keys/emulator.pub.pem").unwrap_or_else(|why| fail(&format!("{what}: {why}")));
        let key = bake::parse_key(what, &pem).unwrap_or_else(|why| fail(&why));
        write(&out_dir.join("emulator-test-key.der"), &key.der, what);
    }
    write(&out_dir.join("baked_identity.rs"), bake::render(identity.as_ref()).as_bytes(), "the generated identity");
}

/// A file the build depends on, watched by cargo from now on.
fn read_watched(path: &Path) -> Result<String, String> {
    println!("cargo:rerun-if-changed={}", path.display());
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8], what: &str) {
    if let Err(e) = std::fs::write(path, bytes) {
        fail(&format!("cannot write {what}: {e}"));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: mpgate product identity: {msg}");
    std::process::exit(1);
}
