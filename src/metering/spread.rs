//! When the records of a closed hour go out. Every supervisor of a fleet closes the hour at the same
//! instant, and MeterUsage is limited to 10 requests per second per account and region
//! (docs/aws-behaviour.md §2.7): 1,000 pods × 3 dimensions sent at :00 are 3,000 requests in the same
//! second. So while the workload runs, each {dimension} record of the closed hours waits until its
//! slot: a delay drawn uniformly in [0, `--meter-spread`] after the start of the current hour, drawn
//! anew for every hour and every dimension.
//!
//! Why per hour and per dimension: a fixed per-process offset would give two unlucky pods the same
//! second every hour, and one draw per pod would send a pod's records in a clump; independent draws
//! spread the fleet's records evenly (modelled by bench/meter-hour-model, docs/performance.md).
//! Why the bound is safe: a record of the hour starting H is dated at H or later and, sent by
//! H + 1 h + `MAX`, is at most 1 h 30 min old, against AWS's 6 hours; the retries of a throttled record
//! and the 5-minute hold of a refused one still leave over 4 hours.
//! Must not: delay the exit flush (`Meter::flush` sends everything at once), the record in flight
//! (re-sent first after a restart), or the start-up dry run.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::time::Duration;

/// `--meter-spread` / `MPGATE_METER_SPREAD` when neither is given: 1,000 pods × 3 dimensions are
/// 3,000 requests, which need 300 s at 10 requests/s; over 600 s they average 5 per second, half the
/// account's quota.
pub const DEFAULT: Duration = Duration::from_secs(600);
/// The largest spread accepted: keeps every record within 1 h 30 min of its hour (module header).
pub const MAX: Duration = Duration::from_secs(1800);

/// `0`, `45s`, `1500ms`, `10m` → a spread from 0 to `MAX`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 0, 90s or 10m"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{s:?} has unknown unit {unit:?} (use ms, s or m)")),
    };
    if d > MAX {
        return Err(format!(
            "{s:?} is over {} minutes: records would come too close to AWS's 6-hour window",
            MAX.as_secs() / 60
        ));
    }
    Ok(d)
}

/// The slots of the current hour, drawn once per {hour, dimension}.
#[derive(Debug)]
pub struct Spread {
    bound_ms: u64,
    /// Test flavour only (`flavour::spread_seed`): slots drawn from this seed, so a test can repeat them.
    seed: Option<u64>,
    /// (hour, dimension) → milliseconds after the hour's start.
    drawn: HashMap<(u64, String), u64>,
}

impl Spread {
    /// Slots within `bound` of each hour's start; from `seed` when given, else from the OS.
    pub fn new(bound: Duration, seed: Option<u64>) -> Spread {
        Spread { bound_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX), seed, drawn: HashMap::new() }
    }

    /// The bound, for messages.
    pub fn bound(&self) -> Duration {
        Duration::from_millis(self.bound_ms)
    }

    /// When `dimension`'s records may go out in the hour starting `hour`: milliseconds after the
    /// hour's start, and whether it was drawn just now. Slots of earlier hours are forgotten.
    pub fn slot(&mut self, hour: u64, dimension: &str) -> (u64, bool) {
        if self.bound_ms == 0 {
            return (0, false);
        }
        self.drawn.retain(|(h, _), _| *h >= hour);
        if let Some(ms) = self.drawn.get(&(hour, dimension.to_string())) {
            return (*ms, false);
        }
        let r = match self.seed {
            Some(seed) => mix(seed ^ hour.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ fnv(dimension)),
            None => random_u64(),
        };
        let ms = r % (self.bound_ms + 1);
        self.drawn.insert((hour, dimension.to_string()), ms);
        (ms, true)
    }
}

/// A random u64 from the OS; from the time and pid if the OS has none (a slot is not a secret).
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::getrandom(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            mix(nanos as u64 ^ u64::from(std::process::id()))
        }
    }
}

/// SplitMix64's finaliser: a well-mixed u64 from any u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of a dimension name.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_parsed_from_zero_to_its_maximum() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("10m"), Ok(DEFAULT));
        assert_eq!(parse("30m"), Ok(MAX));
        for bad in ["31m", "1801s", "1h", "-1", "", "soon", "5 m", "18446744073709551616"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn slots_stay_within_the_bound_once_per_hour_and_dimension() {
        let bound = Duration::from_secs(600);
        let mut spread = Spread::new(bound, None);
        let (first, drawn) = spread.slot(7200, "requests");
        assert!(drawn && first <= 600_000);
        assert_eq!(spread.slot(7200, "requests"), (first, false), "drawn once per hour");
        let slots: Vec<u64> = (0..2000).map(|h| spread.slot(h * 3600, "requests").0).collect();
        assert!(slots.iter().all(|&s| s <= 600_000));
        // Uniform: each tenth of the bound gets about a tenth of 2,000 draws.
        for tenth in 0..10 {
            let n = slots.iter().filter(|&&s| s / 60_000 == tenth).count();
            assert!((120..=280).contains(&n), "tenth {tenth}: {n} of 2000");
        }
    }

    #[test]
    fn a_seed_repeats_its_slots_and_dimensions_draw_apart() {
        let bound = Duration::from_secs(60);
        let (mut a, mut b) = (Spread::new(bound, Some(7)), Spread::new(bound, Some(7)));
        assert_eq!(a.slot(3600, "requests"), b.slot(3600, "requests"));
        assert_eq!(a.slot(3600, "gb_processed"), b.slot(3600, "gb_processed"));
        let differ = (1..50).filter(|h| a.slot(h * 3600, "requests").0 != a.slot(h * 3600, "gb_processed").0).count();
        assert!(differ > 40, "dimensions share their slot in {} of 49 hours", 49 - differ);
    }

    #[test]
    fn a_zero_spread_sends_at_the_top_of_the_hour() {
        let mut spread = Spread::new(Duration::ZERO, None);
        assert_eq!(spread.slot(3600, "requests"), (0, false));
    }
}
