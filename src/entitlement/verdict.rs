//! What one AWS answer means for the start: admit, retry, or refuse. Each pricing model's `judge`
//! and the error tables in `classify` return a `Verdict`; `Deadline::retry` acts on it.
//! Must not: mint `Entitled` (an admitting verdict carries the proof `prove` builds it from).
#![forbid(unsafe_code)]

use crate::error::Error;

/// What one answer to a call means.
#[derive(Debug)]
pub enum Verdict<T> {
    /// The answer gives what the call asked for: the proof of entitlement for a start-up call.
    Admit(T),
    /// A transient failure worth another attempt inside the deadline. `why` says why (a deadline
    /// refusal quotes the last one); `reached` says whether the attempt reached the service (an HTTP
    /// answer came back, or the request was sent and may have been served) or failed before its
    /// request could be sent (DNS, TCP connect, TLS handshake, the proxy's tunnel), which costs the
    /// account's request quotas nothing and is paced apart (`pacing::unreached_pause`).
    Retry {
        /// The failure, as the deadline refusal quotes it.
        why: String,
        /// Whether the failed attempt reached the service.
        reached: bool,
    },
    /// A final refusal: the `Error` becomes the exit status and the one stderr line.
    Refuse(Error),
}

impl<T> Verdict<T> {
    /// The same verdict with the admitted value mapped by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Verdict<U> {
        match self {
            Verdict::Admit(t) => Verdict::Admit(f(t)),
            Verdict::Retry { why, reached } => Verdict::Retry { why, reached },
            Verdict::Refuse(e) => Verdict::Refuse(e),
        }
    }
}

/// A step that either proves or refuses, never retried as a whole.
impl<T> From<Result<T, Error>> for Verdict<T> {
    fn from(result: Result<T, Error>) -> Self {
        match result {
            Ok(t) => Verdict::Admit(t),
            Err(e) => Verdict::Refuse(e),
        }
    }
}
