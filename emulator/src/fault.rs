//! Faults a test can queue per operation, and the FIFO queue that hands them out one per call.
//! The server decides what a fault means on each wire protocol; this file only stores them.

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
    NotAJwt,
}

#[derive(Debug, Default)]
pub struct FaultQueue {
    queues: HashMap<String, VecDeque<Fault>>,
}

impl FaultQueue {
    pub fn push(&mut self, op: &str, fault: Fault) {
        self.queues.entry(op.to_string()).or_default().push_back(fault);
    }

    pub fn next(&mut self, op: &str) -> Option<Fault> {
        self.queues.get_mut(op).and_then(VecDeque::pop_front)
    }
}
