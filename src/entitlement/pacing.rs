//! How long a start-up call waits before its next attempt after a throttle, a 5xx or a network
//! error. Owns the numbers and the randomness; `Deadline::pause_or_give_up` owns the sleeping.
//!
//! The case that shapes it is a fleet start: N gates of one AWS account start together against
//! RegisterUsage's 5 requests/s quota (docs/aws-behaviour.md §2.7), and the fleet cannot be through before
//! N/5 s. A gate knows neither N nor how many are ahead of it: a `ThrottlingException` says only "not
//! now" (no Retry-After). Two costs pull against each other:
//! - **the tail**: once few gates are left the quota idles, and the last one starts only at its next
//!   attempt, so the wait between attempts late in a start is added to the fleet's total time;
//! - **the storm**: every attempt while the quota is exhausted is a throttled request.
//!
//! A fixed cap on the pause (full jitter up to a few seconds) keeps the tail short, but a gate then
//! retries every few seconds however long it waits: its requests grow with its wait, and so with N.
//! Here the pause is drawn from the upper half of a window that doubles from [`FIRST`] with every
//! failed attempt of the start and is capped at [`FLOOR`] or a share ([`SHARE`]) of the time since
//! the gate started, whichever is longer. A gate that has waited T when the quota frees up comes back
//! within T/5, so the fleet's tail stays within about 1.2x the ideal N/5 s, and a gate makes
//! O(log T) attempts instead of O(T): requests per admission grow with log N, not N (both policies
//! measured with bench/fleet.py in docs/performance.md, "Fleet start against the 5 requests/s
//! quota"). Equal jitter instead of full jitter, because a draw near zero is a wasted request while
//! the quota is exhausted; the spread of the half window keeps gates that started together from
//! falling into step. Because the wait grows with the time already spent, a
//! transient outage costs at most about a fifth more than the outage itself.
//!
//! The tail bound holds while the fleet fits in the start-up deadline: with the default 5 minutes,
//! about 1,300 gates of one account and region can start at once (300 s / 1.15 x 5/s); beyond that
//! the last ones are refused (exit 81) and retried by their orchestrator. bench/pacing-model models
//! both, with the deadline.
#![forbid(unsafe_code)]

use std::time::Duration;

/// The window of the first retry; each later window doubles it.
pub const FIRST: Duration = Duration::from_millis(500);
/// Windows may always grow to this, however short the wait so far: a fleet of a few dozen gates
/// (ideal a few seconds) must not retry every few milliseconds.
pub const FLOOR: Duration = Duration::from_secs(3);
/// Beyond [`FLOOR`], a window is at most this share of the time already waited.
pub const SHARE: f64 = 0.2;

/// The window after the `attempt`th failed attempt (1-based), `waited` into the start.
pub fn window(attempt: u32, waited: Duration) -> Duration {
    doubling(FIRST, attempt).min(FLOOR.max(waited.mul_f64(SHARE)))
}

/// `base` doubled for every attempt after the first (`base * 2^(attempt-1)`), the doubling stopping
/// at 2^16 so that no count of attempts overflows.
fn doubling(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
}

/// The pause after the `attempt`th failed attempt: equal jitter, uniform in [w/2, w] of [`window`].
pub fn pause(attempt: u32, waited: Duration) -> Duration {
    let half = window(attempt, waited) / 2;
    half + half.mul_f64(unit_random())
}

/// Full jitter, for the retries that keep their own bounded attempt counts outside the start-up
/// pacing (the supervisor's metering sends and seat extensions, the Containers Anywhere token
/// exchange): uniform in [0, min(cap, base * 2^(attempt-1))].
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration) -> Duration {
    doubling(base, attempt).min(cap).mul_f64(unit_random())
}

/// Uniform in [0, 1) from the OS; 0.5 if the OS has no randomness to give (a pause is not a secret,
/// and gates that cannot draw still back off, only in step).
pub fn unit_random() -> f64 {
    let mut r = [0u8; 8];
    match getrandom::getrandom(&mut r) {
        Ok(()) => (u64::from_le_bytes(r) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn windows_double_from_the_first_up_to_the_floor_early_in_a_start() {
        let w: Vec<_> = (1..=5).map(|a| window(a, S(1))).collect();
        assert_eq!(w, [Duration::from_millis(500), S(1), S(2), S(3), S(3)]);
    }

    #[test]
    fn late_in_a_start_a_window_is_a_fifth_of_the_wait() {
        assert_eq!(window(30, S(100)), S(20));
        assert_eq!(window(30, S(10)), S(3), "the floor holds below 15 s");
        assert_eq!(window(2, S(100)), S(1), "doubling still limits the early attempts");
        assert_eq!(window(u32::MAX, Duration::MAX), Duration::from_millis(500).saturating_mul(1 << 16));
    }

    #[test]
    fn pauses_stay_in_the_upper_half_of_their_window() {
        for attempt in 1..40 {
            for waited in [S(0), S(7), S(60), S(280)] {
                let (w, p) = (window(attempt, waited), pause(attempt, waited));
                assert!(
                    p >= w / 2 && p <= w,
                    "attempt {attempt} waited {waited:?}: {p:?} outside [{:?}, {w:?}]",
                    w / 2
                );
            }
        }
    }

    #[test]
    fn full_jitter_spreads_under_its_doubling_ceiling() {
        let (base, cap) = (Duration::from_millis(200), S(2));
        for attempt in 1..40 {
            let ceiling = base.saturating_mul(1 << (attempt - 1).min(16)).min(cap);
            let draws: Vec<Duration> = (0..50).map(|_| full_jitter(attempt, base, cap)).collect();
            assert!(draws.iter().all(|d| *d <= ceiling), "attempt {attempt}: {draws:?} above {ceiling:?}");
            assert!(draws.iter().any(|d| *d < ceiling / 2) && draws.iter().any(|d| *d > ceiling / 2), "{draws:?}");
        }
    }

    #[test]
    fn draws_are_uniform_enough() {
        let draws: Vec<f64> = (0..4000).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_half = draws.iter().filter(|d| **d < 0.5).count();
        assert!((1700..2300).contains(&below_half), "{below_half} of 4000 below 0.5");
    }
}
