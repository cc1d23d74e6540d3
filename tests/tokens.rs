//! Answers that must not verify, and the legitimate variants that must.

use crate::hourly::{gate_as, with_workload, PAID};
use crate::support::{scratch, Report};
use mpgate_emulator::{ClaimStyle, Emulator, Fault, TokenMutation, World};

fn refused_with(mutation: TokenMutation, needle: &str) {
    let emu = Emulator::start(World::demo()).expect("emulator");
    emu.inject("RegisterUsage", Fault::Token(mutation));
    let dir = scratch();
    with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("the RegisterUsage answer did not verify")
        .expect_stderr_contains(needle)
        .check();
    assert!(!dir.path().join("report.json").exists(), "the workload must not run");
    assert_eq!(emu.requests().iter().filter(|r| r.op == "RegisterUsage").count(), 1, "a bad answer is final");
}

#[test]
fn tampered_signature() {
    refused_with(TokenMutation::FlipSignatureByte, "signature does not verify");
}

#[test]
fn wrong_nonce() {
    refused_with(TokenMutation::WrongNonce, "nonce claim is not the nonce sent");
}

#[test]
fn wrong_product_code_in_the_token() {
    refused_with(TokenMutation::WrongProductCode, "productCode claim");
}

#[test]
fn wrong_key_version_in_the_token() {
    refused_with(TokenMutation::WrongKeyVersion, "publicKeyVersion claim");
}

#[test]
fn alg_none() {
    refused_with(TokenMutation::AlgNone, "algorithm \"none\" is not PS256");
}

#[test]
fn alg_hs256_keyed_with_the_public_key() {
    refused_with(TokenMutation::AlgHs256WithPublicKey, "algorithm \"HS256\" is not PS256");
}

#[test]
fn alg_rs256_with_the_right_key() {
    refused_with(TokenMutation::AlgRs256, "algorithm \"RS256\" is not PS256");
}

#[test]
fn valid_signature_from_another_key() {
    refused_with(TokenMutation::SignWithAttackerKey, "signature does not verify");
}

#[test]
fn both_claim_casings() {
    refused_with(TokenMutation::BothClaimCasings, "both productCode and ProductCode");
}

#[test]
fn issued_in_the_future() {
    refused_with(TokenMutation::IatFarFuture, "from the local clock");
}

#[test]
fn not_a_jwt() {
    refused_with(TokenMutation::NotAJwt, "not a compact JWS");
}

fn admitted_in(world: World) {
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path()).run().check();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
}

#[test]
fn pascal_case_claims_are_accepted() {
    let mut world = World::demo();
    world.products.iter_mut().for_each(|p| p.claim_style = ClaimStyle::PascalCase);
    admitted_in(world);
}

#[test]
fn iat_in_milliseconds_is_accepted() {
    let mut world = World::demo();
    world.products.iter_mut().for_each(|p| p.iat_millis = true);
    admitted_in(world);
}
