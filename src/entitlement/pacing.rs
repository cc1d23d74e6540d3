//! How long a start-up call waits before its next attempt after a throttle, a 5xx or a network
//! error, and after a failure that never reached the service. Owns the numbers and the randomness;
//! `Deadline::pause_or_give_up` owns the sleeping.
//!
//! The case that shapes it is a fleet start: N gates of one AWS account start together against
//! RegisterUsage's 5 requests/s quota (docs/aws-behaviour.md §2.7), which other products of the
//! account may share, and the fleet cannot be through before N/5 s. A gate knows neither N nor how
//! many are ahead of it: a `ThrottlingException` says only "not now" (no Retry-After), and until its
//! one success a gate sees nothing else, so whatever it does is one random schedule of attempt times
//! set by the time since it started. Two costs pull against each other:
//! - **the tail**: once few gates are left the quota idles, and the last one starts only at its next
//!   attempt, so the wait between attempts late in a start is added to the fleet's total time;
//! - **the storm**: every attempt while the quota is exhausted is a throttled request.
//!
//! The first attempt goes out at once (a gate alone is admitted at once); the first retry is drawn
//! uniformly from [`FIRST_RETRY`, `FIRST_RETRY` + [`FLOOR`]), so a gate makes one request in its
//! first second and the gates of a fleet spread their retries over the following seconds. After
//! that the pause is drawn from the upper half of a window of [`FLOOR`] or a share ([`SHARE`]) of
//! the time since the gate started, whichever is longer. A gate that has waited T comes back within
//! T/5, which keeps the fleet's tail a small share of the ideal N/5 s, and a gate makes O(log T)
//! attempts, so requests per admission grow with log N. Equal jitter, not a fixed grid of times per
//! gate: on a grid, a gate whose times fall just after another's would lose the token to it at every
//! round, and the gates throttled late in a start would be the same ones each time
//! (bench/pacing-model compares both).
//! docs/performance.md ("Fleet start against the 5 requests/s quota") gives the model and the
//! measured figures, and why a gate that sees only its own throttles cannot do with a constant
//! number of requests per admission.
//!
//! All of this is for attempts that reached the service: an HTTP answer came back (a throttle, a
//! 5xx), or the request was sent and may have been served (no answer in time, a connection closed
//! before the answer). An attempt that failed before its request could be sent (the name did not
//! resolve, the connection was refused, reset or timed out, the TLS handshake or the proxy's tunnel
//! failed: a mesh sidecar, egress proxy or DNS not ready yet at pod start) costs the account's quota
//! nothing, so it is paced apart: equal jitter on a window of [`UNREACHED_FIRST`] doubling with each
//! such failure in a row up to [`UNREACHED_CAP`], so pauses of 0.25-0.5 s, 0.5-1 s, then 1-2 s.
//! Never shorter than 0.25 s: a refused connection fails at once, so the pause is the whole period
//! of the loop, and that keeps a gate to at most 4 connection attempts (and DNS lookups, which the
//! fleet's gates share a resolver for) a second while its network is not up. The cap keeps the fleet's load on a local resolver or proxy
//! bounded however long the outage. These pauses are not counted from the start: the windows a
//! throttle then gets are those of the time since the start, as if the attempts that did not reach
//! the service had not been made, and a gate still makes at most one request that reaches AWS in its
//! first second (every pause after one ends at least [`FIRST_RETRY`] into the start).
//!
//! The tail bound holds while the fleet fits in the start-up deadline: with the default 5 minutes,
//! about 1,300 gates of one account and region can start at once (300 s / 1.15 x 5/s); beyond that
//! the last ones are refused (exit 81) and retried by their orchestrator.
#![forbid(unsafe_code)]

use std::time::Duration;

/// No retry before this time into the start: every gate's first second holds one request.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The shortest window: the first retry is drawn from [`FIRST_RETRY`, `FIRST_RETRY` + `FLOOR`), and
/// windows are never shorter, however short the wait so far, so a fleet of a few dozen gates (ideal
/// a few seconds) does not retry every few hundred milliseconds.
pub const FLOOR: Duration = Duration::from_secs(4);
/// Beyond [`FLOOR`], a window is this share of the time already waited.
pub const SHARE: f64 = 0.2;

/// The window a pause is drawn from (its upper half), `waited` into the start.
pub fn window(waited: Duration) -> Duration {
    FLOOR.max(waited.mul_f64(SHARE))
}

/// The pause after a failed attempt `waited` into the start, for `draw` uniform in [0, 1): before
/// [`FIRST_RETRY`], to a point of [`FIRST_RETRY`, `FIRST_RETRY` + [`FLOOR`]); after it, equal
/// jitter, uniform in [w/2, w] of [`window`].
pub fn pause_for(waited: Duration, draw: f64) -> Duration {
    let draw = draw.clamp(0.0, 1.0);
    if let Some(early) = FIRST_RETRY.checked_sub(waited).filter(|d| !d.is_zero()) {
        return early + FLOOR.mul_f64(draw);
    }
    let half = window(waited) / 2;
    half + half.mul_f64(draw)
}

/// The pause after a failed attempt `waited` into the start, drawn from the OS.
pub fn pause(waited: Duration) -> Duration {
    pause_for(waited, unit_random())
}

/// After an attempt that did not reach the service, the first window a pause is drawn from (its
/// upper half); each further such failure in a row doubles it, up to [`UNREACHED_CAP`].
pub const UNREACHED_FIRST: Duration = Duration::from_millis(500);
/// The longest window after an attempt that did not reach the service.
pub const UNREACHED_CAP: Duration = Duration::from_secs(2);

/// The window after the `in_a_row`-th failed attempt in a row (1 for the first) that did not reach
/// the service: [`UNREACHED_FIRST`] doubled for each one before it, at most [`UNREACHED_CAP`].
pub fn unreached_window(in_a_row: u32) -> Duration {
    doubling(UNREACHED_FIRST, in_a_row).min(UNREACHED_CAP)
}

/// The pause after the `in_a_row`-th failed attempt in a row that did not reach the service, for
/// `draw` uniform in [0, 1): equal jitter, uniform in [w/2, w] of [`unreached_window`]. It does not
/// depend on the time since the start, so the throttle pacing that follows goes on with the windows
/// that time has reached.
pub fn unreached_pause_for(in_a_row: u32, draw: f64) -> Duration {
    let half = unreached_window(in_a_row) / 2;
    half + half.mul_f64(draw.clamp(0.0, 1.0))
}

/// The pause after the `in_a_row`-th failed attempt in a row that did not reach the service, drawn
/// from the OS.
pub fn unreached_pause(in_a_row: u32) -> Duration {
    unreached_pause_for(in_a_row, unit_random())
}

/// `base` doubled for every attempt after the first (`base * 2^(attempt-1)`), the doubling stopping
/// at 2^16 so that no count of attempts overflows.
fn doubling(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
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

    /// A seeded stream of draws in [0, 1) (splitmix64), so a failing property names the seed that
    /// reproduces it. `MPGATE_PACING_SEED` picks the seed; the default is fixed.
    struct Draws(u64);
    impl Draws {
        fn seeded() -> Self {
            #[allow(clippy::disallowed_methods)] // the test harness is configured by its environment
            let seed = std::env::var("MPGATE_PACING_SEED").ok().map(|s| {
                s.trim().parse::<u64>().unwrap_or_else(|e| panic!("MPGATE_PACING_SEED={s:?} is not a u64: {e}"))
            });
            let seed = seed.unwrap_or(20);
            println!("pacing draws: MPGATE_PACING_SEED={seed}");
            Draws(seed)
        }
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The attempt times of one gate throttled at every attempt until `until`, attempts taking no time.
    fn schedule(draws: &mut Draws, until: Duration) -> Vec<Duration> {
        let mut times = vec![Duration::ZERO];
        loop {
            let last = *times.last().expect("never empty");
            let next = last + pause_for(last, draws.next());
            if next > until {
                return times;
            }
            times.push(next);
        }
    }

    #[test]
    fn one_request_in_a_gates_first_second_then_retries_spread_over_the_floor() {
        let mut draws = Draws::seeded();
        let mut first_retries = Vec::new();
        for _ in 0..2000 {
            let times = schedule(&mut draws, S(300));
            assert_eq!(times.iter().filter(|t| **t < FIRST_RETRY).count(), 1, "{times:?}");
            first_retries.push(times[1]);
        }
        assert!(first_retries.iter().all(|t| *t >= FIRST_RETRY && *t < FIRST_RETRY + FLOOR), "{first_retries:?}");
        // Spread over the whole window, not bunched: each second of it holds about a quarter.
        for second in 1..5 {
            let n = first_retries.iter().filter(|t| t.as_secs() == second).count();
            assert!((400..600).contains(&n), "{n} of 2000 first retries in second {second}");
        }
        // Whenever an early attempt failed (a slow connect, a second call), the retry still waits.
        for waited in [0, 1, 500, 999] {
            let waited = Duration::from_millis(waited);
            assert!(waited + pause_for(waited, 0.0) >= FIRST_RETRY, "after {waited:?}");
        }
    }

    #[test]
    fn every_gap_is_in_the_upper_half_of_the_floor_or_of_a_fifth_of_the_wait() {
        let mut draws = Draws::seeded();
        for _ in 0..200 {
            let times = schedule(&mut draws, S(300));
            for pair in times[1..].windows(2) {
                let (at, gap) = (pair[0], pair[1] - pair[0]);
                let w = FLOOR.max(at.mul_f64(SHARE));
                assert!(gap >= w / 2 && gap <= w, "at {at:?}: gap {gap:?} outside [{:?}, {w:?}]", w / 2);
            }
        }
        assert_eq!(window(S(10)), FLOOR, "the floor holds below 20 s");
        assert_eq!(window(S(100)), S(20));
        assert_eq!(pause_for(S(100), 0.0), S(10));
        assert_eq!(pause_for(S(100), 1.0), S(20));
        assert_eq!(pause_for(Duration::MAX, 2.0), Duration::MAX.mul_f64(SHARE), "no overflow, draw clamped");
    }

    #[test]
    fn attempts_grow_with_the_log_of_the_wait() {
        let mut draws = Draws::seeded();
        let counts: Vec<usize> = [S(20), S(60), S(200), S(300)]
            .into_iter()
            .map(|until| (0..200).map(|_| schedule(&mut draws, until).len()).max().expect("200 gates"))
            .collect();
        // 20 s: the first attempt, the first retry and floor-sized pauses (at least 2 s) after it;
        // then each further attempt at least 1.1x the wait before it.
        assert!(counts[0] <= 2 + 19 / 2, "{counts:?}");
        assert!(counts[3] <= counts[0] + 29, "past 20 s at most ln(300/20)/ln(1.1) = 28.4 attempts: {counts:?}");
        assert!(counts.windows(2).all(|c| c[0] <= c[1]), "{counts:?}");
    }

    #[test]
    fn a_failure_that_did_not_reach_the_service_pauses_a_quarter_second_or_more_doubling_to_the_cap() {
        let mut draws = Draws::seeded();
        let ms = Duration::from_millis;
        for (in_a_row, low, high) in [(1, ms(250), ms(500)), (2, ms(500), S(1)), (3, S(1), S(2)), (40, S(1), S(2))] {
            let pauses: Vec<Duration> = (0..500).map(|_| unreached_pause_for(in_a_row, draws.next())).collect();
            assert!(pauses.iter().all(|p| *p >= low && *p <= high), "failure {in_a_row}: {pauses:?}");
            let middle = (low + high) / 2;
            assert!(pauses.iter().filter(|p| **p < middle).count() > 150, "failure {in_a_row}: bunched high");
            assert!(pauses.iter().filter(|p| **p >= middle).count() > 150, "failure {in_a_row}: bunched low");
        }
        for in_a_row in [0, 1, 5, u32::MAX] {
            let (low, high) = (unreached_pause_for(in_a_row, -1.0), unreached_pause_for(in_a_row, 2.0));
            assert!(low >= UNREACHED_FIRST / 2 && high <= UNREACHED_CAP, "{in_a_row}: [{low:?}, {high:?}]");
        }
        // Well under the first retry after a throttle, so a gate whose sidecar or DNS was not ready
        // is not made to wait the fleet's pacing.
        assert!(unreached_pause_for(1, 1.0) <= FIRST_RETRY / 2);
    }

    /// One gate's attempts until `until`: the first `unreached` fail before their request is sent,
    /// every later one is throttled; paced as `Deadline::pause_or_give_up` paces them. Each entry is
    /// the attempt's time and whether it reached the service.
    fn mixed_schedule(draws: &mut Draws, unreached: usize, until: Duration) -> Vec<(Duration, bool)> {
        let mut attempts = vec![(Duration::ZERO, unreached == 0)];
        let mut in_a_row = 0;
        loop {
            let (at, reached) = *attempts.last().expect("never empty");
            let pause = if reached {
                in_a_row = 0;
                pause_for(at, draws.next())
            } else {
                in_a_row += 1;
                unreached_pause_for(in_a_row, draws.next())
            };
            if at + pause > until {
                return attempts;
            }
            attempts.push((at + pause, attempts.len() >= unreached));
        }
    }

    #[test]
    fn a_throttle_after_failures_that_did_not_reach_the_service_follows_the_fleet_pacing() {
        let mut draws = Draws::seeded();
        for unreached in [1, 2, 3, 5, 20] {
            for _ in 0..200 {
                let attempts = mixed_schedule(&mut draws, unreached, S(300));
                // At most one request that reached AWS in the gate's first second.
                let early = attempts.iter().filter(|(at, reached)| *reached && *at < FIRST_RETRY).count();
                assert!(early <= 1, "{unreached} not reached, then {attempts:?}");
                for pair in attempts.windows(2) {
                    let ((at, reached), (next, _)) = (pair[0], pair[1]);
                    let gap = next - at;
                    if !reached {
                        assert!(gap <= UNREACHED_CAP, "at {at:?}: {gap:?} after a failure that was not sent");
                    } else if at < FIRST_RETRY {
                        assert!(next >= FIRST_RETRY && next < FIRST_RETRY + FLOOR, "at {at:?}: next at {next:?}");
                    } else {
                        // The window of the time since the start, as if the attempts that did not
                        // reach the service had not been made.
                        let w = window(at);
                        assert!(gap >= w / 2 && gap <= w, "at {at:?}: gap {gap:?} outside [{:?}, {w:?}]", w / 2);
                    }
                }
            }
        }
        // A gate whose network comes up late (40 failures, at least 0.25 + 0.5 + 38 x 1 s): its first
        // throttle gets the window of the time since the start (a fifth of it), not the first retry's.
        let late = mixed_schedule(&mut draws, 40, S(300));
        let ((at, reached), (next, _)) = (late[40], late[41]);
        assert!(reached && at >= Duration::from_millis(38_750), "{late:?}");
        assert!(window(at) > FLOOR && next - at >= window(at) / 2 && next - at <= window(at), "{late:?}");
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
