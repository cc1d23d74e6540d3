//! The token attack corpus, end to end: each forgery reaches the real gate binary as the Signature of
//! a RegisterUsage answer over HTTP, and each must be refused with exit 82 (bad answer) and one
//! stderr line, the workload must not run, and the emulator ledger must show the one call answered.
//! Mutations the emulator applies while signing (it knows the nonce the gate sent) come first, then
//! forgeries this file builds itself and hands over verbatim (`Fault::Signature`). The legitimate
//! variants that must still verify are at the end.

use crate::hourly::{gate_as, with_workload, PAID};
use crate::support::{scratch, Report};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mpgate_emulator::{ClaimStyle, Emulator, Fault, TokenMutation, World};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use serde_json::{json, Value};

/// The demo product's newest key, the version the gate registers with first: forgeries signed with
/// it carry a signature that verifies, so only the check each test names can refuse them.
const PAID_V2: &str = include_str!("../testdata/keys/paid-v2.key.pem");

fn refused(fault: Fault, needle: &str) {
    let emu = Emulator::start(World::demo()).expect("emulator");
    emu.inject("RegisterUsage", fault.clone());
    let dir = scratch();
    let mut run = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("the RegisterUsage answer did not verify")
        .expect_stderr_contains(needle);
    if let Fault::Signature(token) = &fault {
        // No secret in output: the refusal names the defect, never the token's signature.
        if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() >= 16) {
            run = run.expect_stderr_lacks(&sig[..16]);
        }
    }
    run.check();
    assert!(!dir.path().join("report.json").exists(), "the workload must not run");
    let ops: Vec<String> = emu.requests().iter().map(|r| r.op.clone()).collect();
    assert_eq!(ops.iter().filter(|op| *op == "RegisterUsage").count(), 1, "a bad answer is final: {ops:?}");
    assert_eq!(ops.last().map(String::as_str), Some("RegisterUsage"), "nothing after the refusal: {ops:?}");
    let billed = emu.registrations();
    assert_eq!(billed.len(), 1, "the emulator answered (and billed) exactly one registration");
    assert_eq!(billed[0].product_code, PAID);
}

fn refused_with(mutation: TokenMutation, needle: &str) {
    refused(Fault::Token(mutation), needle);
}

fn forged(token: String, needle: &str) {
    refused(Fault::Signature(token), needle);
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims that would pass every claim check except the nonce, which no forger can know in advance.
fn claims() -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    json!({"productCode": PAID, "publicKeyVersion": 2, "nonce": "forged-nonce", "iat": now})
}

/// `header.payload.signature`, the signature made with `sign` over the first two parts.
fn signed(header: &Value, payload: &[u8], sign: impl Fn(&str) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
    let sig = sign(&input);
    format!("{input}.{}", b64(&sig))
}

fn paid_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_pem(PAID_V2).expect("test key")
}

fn ps256(input: &str) -> Vec<u8> {
    let signer = rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(paid_key());
    signer.sign_with_rng(&mut rsa::rand_core::OsRng, input.as_bytes()).to_vec()
}

fn ps256_token(payload: &[u8]) -> String {
    signed(&json!({"alg": "PS256", "typ": "JWT"}), payload, ps256)
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

#[test]
fn issued_long_ago() {
    refused_with(TokenMutation::IatFarPast, "from the local clock");
}

#[test]
fn alg_ps384_signed_with_the_product_key() {
    let token = signed(&json!({"alg": "PS384", "typ": "JWT"}), claims().to_string().as_bytes(), |input| {
        let signer = rsa::pss::BlindedSigningKey::<sha2::Sha384>::new(paid_key());
        signer.sign_with_rng(&mut rsa::rand_core::OsRng, input.as_bytes()).to_vec()
    });
    forged(token, "algorithm \"PS384\" is not PS256");
}

#[test]
fn payload_edited_after_signing() {
    let token = ps256_token(claims().to_string().as_bytes());
    let parts: Vec<&str> = token.split('.').collect();
    let mut edited = claims();
    edited["productCode"] = json!("0000000edited0product000");
    let token = format!("{}.{}.{}", parts[0], b64(edited.to_string().as_bytes()), parts[2]);
    forged(token, "signature does not verify");
}

#[test]
fn non_json_payload_with_a_valid_signature() {
    forged(ps256_token(b"productCode=8f3kq2demopaid0mpgate01"), "payload is not JSON");
}

#[test]
fn truncated_signature() {
    let token = ps256_token(claims().to_string().as_bytes());
    // Cut inside the signature at a multiple of 4 characters, so it still decodes as base64url.
    let keep = token.rfind('.').expect("three parts") + 1 + 128;
    forged(token[..keep].to_string(), "signature does not verify");
}

#[test]
fn extra_segments() {
    let token = ps256_token(claims().to_string().as_bytes());
    forged(format!("{token}.{}", b64(b"{}")), "not a compact JWS: 4 parts instead of 3");
}

#[test]
fn bad_base64_in_the_signature() {
    // Standard base64 instead of base64url: a 256-byte signature always ends in `==` padding.
    let token = ps256_token(claims().to_string().as_bytes());
    let (input, sig) = token.rsplit_once('.').expect("three parts");
    let standard = base64::engine::general_purpose::STANDARD.encode(URL_SAFE_NO_PAD.decode(sig).expect("sig"));
    assert!(standard.ends_with("=="), "{standard}");
    forged(format!("{input}.{standard}"), "signature is not base64url");
}

#[test]
fn huge_token() {
    // A valid signature over a payload padded to 64 KiB: refused on size before any parsing.
    let mut payload = claims();
    payload["pad"] = json!("A".repeat(64 * 1024));
    let token = ps256_token(payload.to_string().as_bytes());
    let needle = format!("token is {} bytes, more than 16384", token.len());
    forged(token, &needle);
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

#[test]
fn iat_with_a_fraction_is_accepted_in_seconds_and_in_milliseconds() {
    for millis in [false, true] {
        let mut world = World::demo();
        world.products.iter_mut().for_each(|p| {
            p.iat_fraction = true;
            p.iat_millis = millis;
        });
        admitted_in(world);
    }
}
