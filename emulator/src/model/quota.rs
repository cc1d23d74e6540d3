//! Request quotas: one token bucket per (account, operation), refilled continuously at the
//! operation's published rate (docs/aws-behaviour.md §2.7). Real time, not the emulated clock: a test that
//! jumps the clock forward must not refill every bucket at once.

use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Buckets {
    buckets: HashMap<(String, String), (f64, Instant)>,
}

impl Buckets {
    /// Takes one token for `account`'s call of `op` at `rate`/s (capacity `rate`, at least 1);
    /// false when the bucket is empty.
    pub fn take(&mut self, account: &str, op: &str, rate: f64) -> bool {
        let capacity = rate.max(1.0);
        let now = Instant::now();
        let (tokens, last) = self.buckets.entry((account.to_string(), op.to_string())).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_of_rate_then_throttled() {
        let mut b = Buckets::default();
        let granted = (0..8).filter(|_| b.take("111122223333", "RegisterUsage", 5.0)).count();
        assert_eq!(granted, 5);
        assert!(b.take("444455556666", "RegisterUsage", 5.0), "buckets are per account");
        assert!(b.take("111122223333", "MeterUsage", 10.0), "and per operation");
    }
}
