//! Faults a test can queue per operation, and the queue that hands them out: queued faults FIFO,
//! one per call, then standing random rules (each fires with its probability). The server decides
//! what a fault means on each wire protocol; this file only stores and draws them. The random rules
//! draw from a seeded generator: the seed is reported, and setting it repeats a run's draws.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// What the next call of an operation should suffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// 400 `ThrottlingException` (metering), `Throttling` (STS), 429 elsewhere.
    Throttle,
    /// 500 `InternalServiceErrorException` (metering) or the protocol's 500.
    InternalError,
    /// An arbitrary status and error code.
    Status(u16, String),
    /// Sleep, then answer normally.
    Delay(Duration),
    /// Accept the request and never answer (until the client gives up or the emulator stops).
    Hang,
    /// Drop the connection without any response.
    CloseConnection,
    /// Do what was asked (record it, bill it), then drop the connection without an answer: the
    /// client cannot tell whether the call took effect, as when an answer is lost on the way back.
    AnswerLost,
    /// Do what was asked (record it, bill it, take the seat), then hold the answer until the test
    /// releases held answers (`Emulator::release_held`, `POST /_emulator/release`): a client can be
    /// caught between a call that took effect and its answer, as long as the test needs.
    Held,
    /// Answer normally but corrupt the RegisterUsage `Signature` as named.
    Token(TokenMutation),
    /// Reset the connection (TCP RST, SO_LINGER 0) without any response.
    ConnectionReset,
    /// Announce the full `content-length`, send half the body, then close.
    TruncatedBody,
    /// 200 with a body that is not valid JSON (the real answer cut short, unterminated).
    MalformedJson,
    /// The real answer followed by this many bytes of JSON whitespace (still valid, just huge).
    OversizedBody(usize),
    /// The real answer labelled `text/html; charset=utf-8`.
    WrongContentType,
    /// Answer normally, but with exactly this string as the RegisterUsage `Signature`: a forgery the
    /// test built itself (framing, other algorithms, edited payloads), sent through the real wire.
    Signature(String),
}

/// Ways to corrupt the RegisterUsage JWT; each is an attack or bug the gate's verifier must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenMutation {
    FlipSignatureByte,
    WrongNonce,
    WrongProductCode,
    WrongKeyVersion,
    AlgNone,
    AlgHs256WithPublicKey,
    AlgRs256,
    SignWithAttackerKey,
    BothClaimCasings,
    IatFarFuture,
    /// `iat` a day before the call: a replayed or stockpiled answer, correct in every other claim.
    IatFarPast,
    NotAJwt,
}

#[derive(Debug)]
pub struct FaultQueue {
    queues: HashMap<String, VecDeque<Fault>>,
    random: HashMap<String, Vec<(Fault, f64)>>,
    /// The seed of `draws`: drawn from the OS at start unless set with `seed_random`.
    seed: u64,
    draws: StdRng,
}

impl Default for FaultQueue {
    fn default() -> Self {
        let seed = rand::random();
        FaultQueue { queues: HashMap::new(), random: HashMap::new(), seed, draws: StdRng::seed_from_u64(seed) }
    }
}

/// `Fault::Signature`: swap the `Signature` of a successful JSON answer for `signature`. Errors and
/// answers without a `Signature` pass unchanged, so the fault never turns a refusal into a token.
pub(crate) fn replace_signature(body: &str, signature: &str) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    let slot = v.as_object_mut()?.get_mut("Signature")?;
    *slot = serde_json::Value::String(signature.to_string());
    Some(v.to_string())
}

impl FaultQueue {
    pub fn push(&mut self, op: &str, fault: Fault) {
        self.queues.entry(op.to_string()).or_default().push_back(fault);
    }

    /// A standing rule: every call of `op` suffers `fault` with `probability` (0.0–1.0).
    pub fn push_random(&mut self, op: &str, fault: Fault, probability: f64) {
        self.random.entry(op.to_string()).or_default().push((fault, probability.clamp(0.0, 1.0)));
    }

    /// Forgets every queued fault and random rule for `op` ("*" = all operations).
    pub fn clear(&mut self, op: &str) {
        if op == "*" {
            self.queues.clear();
            self.random.clear();
        } else {
            self.queues.remove(op);
            self.random.remove(op);
        }
    }

    /// Restart the random rules' draws from `seed`: the same seed and the same calls give the same faults.
    pub fn seed_random(&mut self, seed: u64) {
        self.seed = seed;
        self.draws = StdRng::seed_from_u64(seed);
    }

    /// The seed the random rules' draws started from.
    pub fn random_seed(&self) -> u64 {
        self.seed
    }

    pub fn next(&mut self, op: &str) -> Option<Fault> {
        if let Some(f) = self.queues.get_mut(op).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        let rules = self.random.get(op)?;
        let draws = &mut self.draws;
        rules.iter().find(|(_, p)| draws.gen_bool(*p)).map(|(f, _)| f.clone())
    }
}
