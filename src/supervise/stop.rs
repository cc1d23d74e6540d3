//! Stopping the workload because AWS said, after the start, that the buyer is not entitled: SIGTERM
//! to the workload (its process group with `--group`), a grace period for it to exit (`--stop-grace`),
//! then SIGKILL; `supervise` then exits with the refusal's status and its one line instead of the
//! workload's status. The same grace period bounds a workload that SIGTERM from outside reached
//! while a license seat is held (`Reason::Terminated`): the seat is checked in only once the
//! workload has exited, so a workload that ignores SIGTERM is killed when the grace period is over,
//! and mpgate exits with its status.
//!
//! Any branch of `supervise`'s `select!` that learns of such a refusal (the metering sender under
//! `--on-not-entitled stop`, the license re-check under `--on-license-lost stop`) hands its `Reason`
//! to `Stopping::begin`; whether to stop at all is the branch's `Policy`, decided before. Signals a
//! stopping workload receives from outside are still forwarded, and it is still reaped, as any other.
//! Must not: decide entitlement, or exit: the status comes from the `Error` through `main`.
#![forbid(unsafe_code)]

use crate::error::{Class, Error};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::time::Duration;
use tokio::time::Instant;

/// How long a workload told to stop has to exit after SIGTERM before it is killed (`--stop-grace`).
pub const GRACE: Duration = Duration::from_secs(10);

/// What to do when AWS says, while the workload runs, that the buyer is not entitled
/// (`--on-not-entitled`, `--on-license-lost`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Stop the workload (SIGTERM, `GRACE`, SIGKILL) and exit with the refusal's status (80).
    #[default]
    Stop,
    /// Say so on stderr and keep the workload running.
    Warn,
}

impl Policy {
    /// The word on the command line and in the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Stop => "stop",
            Policy::Warn => "warn",
        }
    }

    /// `stop` or `warn`, as a variable gives it.
    pub fn parse(s: &str) -> Option<Policy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stop" => Some(Policy::Stop),
            "warn" => Some(Policy::Warn),
            _ => None,
        }
    }
}

/// Why the workload is being stopped.
#[derive(Debug)]
pub enum Reason {
    /// AWS refused a usage record: the buyer is not entitled (custom metering).
    Refused(Error),
    /// A license re-check found the license lost; the text says how (contract pricing).
    LicenseLost(String),
    /// SIGTERM came from outside (the container is being stopped) while a license seat is held:
    /// the seat stays out until the workload has exited, and the grace period bounds how long that
    /// takes. Not a refusal: mpgate exits with the workload's status.
    Terminated,
}

/// A workload being stopped, and why.
#[derive(Debug)]
pub struct Stopping {
    reason: Reason,
    grace: Duration,
    kill_at: Instant,
    killed: bool,
}

impl Stopping {
    /// Send SIGTERM to the workload now; SIGKILL follows when `grace` passes (`kill_due`, `kill`).
    pub fn begin(workload: Pid, group: bool, reason: Reason, grace: Duration) -> Stopping {
        signal(workload, group, Signal::SIGTERM);
        Stopping { reason, grace, kill_at: Instant::now() + grace, killed: false }
    }

    /// Start the grace period of a workload that SIGTERM from outside already reached (it was
    /// forwarded): SIGKILL follows when `grace` passes.
    pub fn after_term(grace: Duration) -> Stopping {
        Stopping { reason: Reason::Terminated, grace, kill_at: Instant::now() + grace, killed: false }
    }

    /// Whether the seat holder keeps running while the workload stops: it does, unless the stop is
    /// the holder's own (a lost license) or AWS refused usage.
    pub fn keeps_holding(&self) -> bool {
        matches!(self.reason, Reason::Terminated)
    }

    /// The refusal mpgate exits with once the workload, which ended with `status`, is gone; `None`
    /// when the stop was not a refusal (SIGTERM from outside).
    pub fn into_error(self, status: u8) -> Option<Error> {
        Some(match self.reason {
            Reason::Terminated => return None,
            Reason::Refused(e) => e,
            Reason::LicenseLost(line) => {
                let how = if self.killed {
                    format!("SIGTERM and, {}s later, SIGKILL", self.grace.as_secs())
                } else {
                    "SIGTERM".to_string()
                };
                Error::License {
                    class: Class::NotEntitled,
                    detail: format!(
                        "{line}; mpgate stopped the workload with {how} (its status was {status}); set --on-license-lost warn to keep it running instead"
                    ),
                }
            }
        })
    }

    /// Resolves when the grace period is over and the workload has not been killed yet; never after.
    pub async fn kill_due(&self) {
        if self.killed {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep_until(self.kill_at).await;
    }

    /// SIGKILL the workload (once).
    pub fn kill(&mut self, workload: Pid, group: bool) {
        if matches!(self.reason, Reason::Terminated) {
            crate::log::warn(&format!(
                "the workload had not exited {}s after SIGTERM: mpgate kills it (SIGKILL) so that the license seat can be checked in; give it longer with --stop-grace / MPGATE_STOP_GRACE (and the container runtime's stop timeout more than that)",
                self.grace.as_secs()
            ));
        }
        signal(workload, group, Signal::SIGKILL);
        self.killed = true;
    }
}

fn signal(pid: Pid, group: bool, sig: Signal) {
    // The workload may have just exited; a failed delivery is then expected and harmless.
    let _ = if group { nix::sys::signal::killpg(pid, sig) } else { nix::sys::signal::kill(pid, sig) };
}

#[cfg(test)]
mod tests {
    use super::Policy;

    #[test]
    fn policies_parse_from_their_words_only() {
        for p in [Policy::Stop, Policy::Warn] {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
        }
        assert_eq!(Policy::parse(" WARN "), Some(Policy::Warn));
        assert_eq!(Policy::parse("kill"), None);
        assert_eq!(Policy::parse(""), None);
        assert_eq!(Policy::default(), Policy::Stop, "fail closed");
    }
}
