//! libFuzzer entry point; the property is in fuzz/properties/usage_line.rs, which the test suite also runs
//! over every committed seed and regression input (tests/fuzz_replay.rs).
#![no_main]

#[path = "../properties/usage_line.rs"]
mod usage_line;

libfuzzer_sys::fuzz_target!(|data: &[u8]| usage_line::check(data));
