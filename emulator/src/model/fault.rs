//! Faults a test can queue per operation, and the queue that hands them out: queued faults FIFO,
//! one per call, then standing random rules (each fires with its probability). The server decides
//! what a fault means on each wire protocol; this file only stores and draws them.

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

#[derive(Debug, Default)]
pub struct FaultQueue {
    queues: HashMap<String, VecDeque<Fault>>,
    random: HashMap<String, Vec<(Fault, f64)>>,
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

    pub fn next(&mut self, op: &str) -> Option<Fault> {
        if let Some(f) = self.queues.get_mut(op).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        let rules = self.random.get(op)?;
        let mut rng = rand::thread_rng();
        rules.iter().find(|(_, p)| rand::Rng::gen_bool(&mut rng, *p)).map(|(f, _)| f.clone())
    }
}
