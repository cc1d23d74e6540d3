//! The fuzz targets' properties (fuzz/properties/) over every committed input: the named seeds
//! fuzz/make-seeds writes (fuzz/seeds/) and every crash a fuzz run found (fuzz/regressions/). The same
//! functions libFuzzer drives, compiled here without it, so a property that stops compiling or an input
//! that crashed once fails the suite.

#[path = "../fuzz/properties/aws_responses.rs"]
mod aws_responses;
#[path = "../fuzz/properties/common.rs"]
mod common;
#[path = "../fuzz/properties/jwt_verify.rs"]
mod jwt_verify;
#[path = "../fuzz/properties/usage_line.rs"]
mod usage_line;

use std::path::{Path, PathBuf};

/// Every committed input of `target`, sorted by path, from the seed and regression directories.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut found = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            found.push((path, data));
        }
    }
    found.sort();
    found
}

/// Run `check` over every input of `target`, naming the input a failure came from.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let inputs = inputs(target);
    for (path, data) in &inputs {
        if std::panic::catch_unwind(|| check(data)).is_err() {
            panic!("{target}: the property fails on {} (its panic is printed above)", path.display());
        }
    }
    inputs.len()
}

#[test]
fn jwt_verify_holds_for_every_seed_and_regression() {
    let n = replay("jwt_verify", jwt_verify::check);
    assert!(n >= 20, "only {n} inputs: fuzz/make-seeds writes the seeds");
}

#[test]
fn aws_responses_holds_for_every_seed_and_regression() {
    let n = replay("aws_responses", aws_responses::check);
    assert!(n >= 15, "only {n} inputs: fuzz/make-seeds writes the seeds");
}

#[test]
fn usage_line_holds_for_every_seed_and_regression() {
    let n = replay("usage_line", usage_line::check);
    assert!(n >= 5, "only {n} inputs: fuzz/make-seeds writes the seeds");
}
