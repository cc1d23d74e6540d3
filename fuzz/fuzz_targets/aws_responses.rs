//! libFuzzer entry point; the property is in fuzz/properties/aws_responses.rs, which the test suite also runs
//! over every committed seed and regression input (tests/fuzz_replay.rs).
#![no_main]

#[path = "../properties/common.rs"]
mod common;
#[path = "../properties/aws_responses.rs"]
mod aws_responses;

libfuzzer_sys::fuzz_target!(|data: &[u8]| aws_responses::check(data));
