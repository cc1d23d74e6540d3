//! The stop signals during a start: caught from before the first AWS call until the hand-over, so
//! that `docker stop` (SIGTERM), Ctrl-C (SIGINT), a closed terminal (SIGHUP) or SIGQUIT ends the
//! start instead of being lost (as PID 1, a signal without a handler is ignored: the workload would
//! start anyway) or killing mpgate while a license seat is out (it would stay out for its lifetime).
//!
//! A stop during the proof: hourly, monthly and custom metering abandon the call in flight (nothing
//! is held); a contract start lets the call in flight answer (a checkout may have taken a seat),
//! starts no other attempt, and checks in the seat it got (`start`). After the admission, the
//! hand-over looks once more (`pending`) right before the workload is started.
//! Handlers stay installed until the execve, which resets caught signals to their default action for
//! the workload, or until `supervise` takes over forwarding them.
//! Must not: decide entitlement, or exit: the status comes from `Error::Stopped` through `main`.
#![forbid(unsafe_code)]

use crate::error::Error;
use nix::sys::signal::Signal;
use std::task::{Context, Poll, Waker};
use tokio::signal::unix::{signal, Signal as Stream, SignalKind};

/// The signals that stop a start; each gets exit status 128 + its number (`error::EXIT_TABLE`).
pub const STOP: &[Signal] = &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT];

/// How long a contract start stopped by a signal waits for the call in flight to answer, so that a
/// seat it took can be checked in (the runtime's stop timeout is 10 s by default on Docker).
pub const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(5);

/// The handlers of the `STOP` signals, installed on the current runtime.
pub struct StopSignals {
    streams: Vec<(Signal, Stream)>,
}

impl StopSignals {
    /// Install a handler for every `STOP` signal; must run inside the runtime that will poll them.
    pub fn install() -> Result<StopSignals, Error> {
        let mut streams = Vec::with_capacity(STOP.len());
        for &sig in STOP {
            let stream =
                signal(SignalKind::from_raw(sig as i32)).map_err(|e| Error::Internal(format!("{sig} handler: {e}")))?;
            streams.push((sig, stream));
        }
        Ok(StopSignals { streams })
    }

    /// The next stop signal.
    pub async fn recv(&mut self) -> Signal {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }

    /// A stop signal that arrived and was not taken yet, if any. Yields to the runtime first, so a
    /// signal whose handler has run is delivered to its stream before the look.
    pub async fn pending(&mut self) -> Option<Signal> {
        tokio::task::yield_now().await;
        match self.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(sig) => Some(sig),
            Poll::Pending => None,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Signal> {
        for (sig, stream) in &mut self.streams {
            if stream.poll_recv(cx).is_ready() {
                return Poll::Ready(*sig);
            }
        }
        Poll::Pending
    }
}

/// Prove entitlement (`entitlement::prove`) unless a stop signal comes first: then no workload
/// starts, and a contract start returns the seat its checkout took (see the module header).
pub async fn prove_or_stop(
    env: &dyn crate::platform::Env,
    selection: Option<&str>,
    deadline: &crate::entitlement::Deadline,
    stop: &mut StopSignals,
) -> Result<crate::entitlement::Entitled, Error> {
    let proving = crate::entitlement::prove(env, selection, deadline);
    tokio::pin!(proving);
    let signal = tokio::select! {
        biased;
        signal = stop.recv() => signal,
        proved = &mut proving => return proved,
    };
    let contract =
        crate::identity::BAKED.as_ref().is_some_and(|b| b.pricing_model == crate::identity::PricingModel::Contract);
    if !contract {
        return Err(Error::Stopped { signal, seat: String::new() });
    }
    // A checkout in flight may have taken a seat that only its answer can return: let it answer,
    // but start no other attempt.
    deadline.stop(signal);
    let seat = match tokio::time::timeout(IN_FLIGHT, &mut proving).await {
        Ok(Ok(entitled)) => match crate::license::Lease::of(&entitled, env) {
            Some(mut lease) => match lease.check_in(crate::license::CHECK_IN_BUDGET).await {
                Ok(()) => "; the license seat it had checked out was checked in".to_string(),
                Err(why) => format!(
                    "; the license seat it had checked out could not be checked in ({why}): License Manager returns it when the checkout expires"
                ),
            },
            None => String::new(),
        },
        // A checkout refused or cut short returns its seat itself, and says so.
        Ok(Err(Error::Stopped { seat, .. })) => seat,
        Ok(Err(_)) => String::new(),
        Err(_) => format!(
            "; a License Manager call was still unanswered {}s later: if it took a seat, License Manager returns it when the checkout expires",
            IN_FLIGHT.as_secs()
        ),
    };
    Err(Error::Stopped { signal, seat })
}
