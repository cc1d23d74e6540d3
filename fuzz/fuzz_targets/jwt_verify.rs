//! libFuzzer entry point; the property is in fuzz/properties/jwt_verify.rs, which the test suite also runs
//! over every committed seed and regression input (tests/fuzz_replay.rs).
#![no_main]

#[path = "../properties/common.rs"]
mod common;
#[path = "../properties/jwt_verify.rs"]
mod jwt_verify;

libfuzzer_sys::fuzz_target!(|data: &[u8]| jwt_verify::check(data));
