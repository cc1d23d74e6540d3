//! What `state.json` may claim, checked when it is loaded: the file is the supervisor's, but a
//! workload that shares its uid (no `supervise --user`) or an earlier container on the same volume
//! could have written it. Each field is either reset, with a line, or its usage quarantined, with a
//! line; none is trusted silently, and none refuses the start (a refusal would keep every unit in the
//! file unsent, which serves a forger better than a reset does).
//!
//! - `sent` (the hours this spool already used): an entry for a dimension that is not baked, an
//!   hour that is not the start of an hour, or an hour that has not begun is forgotten. A forged
//!   "already sent" hour would otherwise push real usage past it; forgetting a genuine entry (a pod
//!   clock that went back) costs nothing, as AWS answers the hour's second record as taken.
//! - `in_flight`: its usage goes back to pending, under the pending rules, when its dimension is not
//!   baked or its hour is not a begun hour.
//! - `pending`: usage of a dimension that is not baked is quarantined (AWS would refuse it);
//!   an hour that is not the start of an hour is moved to its hour; usage dated further ahead than
//!   the sender ever rolls it (past the next hour) is moved to the current hour; units that overflow
//!   a 64-bit sum are quarantined.
//! - `offset` beyond the end of `usage.log`: reset to 0, and the file read from the start.
//! - `salt` that is not 32 hex digits: drawn again (`ClientToken`s then differ from the old ones,
//!   which only matters for a record in flight, re-sent with a new token: AWS still answers its
//!   hour as taken).
#![forbid(unsafe_code)]

use super::{Bucket, State};
use crate::identity::BakedDimension;
use crate::metering::{hour_of, HOUR};

/// What loading found: lines to report (warnings), and usage to quarantine with why.
#[derive(Debug, Default)]
pub struct Found {
    /// One line per reset, each naming state.json's field.
    pub lines: Vec<String>,
    /// Usage that can never be sent, to be quarantined.
    pub quarantine: Vec<(Bucket, String)>,
}

impl State {
    /// Check what the file claims against the baked `dimensions`, the clock (`now`) and the size
    /// of `usage.log`; reset or set aside what cannot be true (module doc).
    pub fn check(&mut self, dimensions: &[BakedDimension], now: u64, usage_len: u64) -> Found {
        let mut found = Found::default();
        let current = hour_of(now);
        let baked = |d: &str| dimensions.iter().any(|b| b.name == d);
        let begun = |h: u64| h % HOUR == 0 && h <= current;

        let before = self.sent.len();
        let mut forgot = Vec::new();
        self.sent.retain(|s| {
            let keep = baked(&s.dimension) && begun(s.hour);
            if !keep {
                forgot.push(format!("{} {}", s.dimension, when(s.hour)));
            }
            keep
        });
        if self.sent.len() < before {
            found.lines.push(format!(
                "state.json lists {} records as sent for hours that have not begun or dimensions this image does not meter ({}); forgetting them, so usage for those hours is sent",
                before - self.sent.len(),
                forgot.join(", ")
            ));
        }

        if let Some(b) = self.in_flight.take() {
            if baked(&b.dimension) && begun(b.hour) {
                self.in_flight = Some(b);
            } else {
                found.lines.push(format!(
                    "state.json's record in flight ({} for {}) is not one this image could have sent; its usage goes back to pending",
                    b.dimension,
                    when(b.hour)
                ));
                self.pending.push(b);
            }
        }

        let mut keep: Vec<Bucket> = Vec::new();
        for mut b in std::mem::take(&mut self.pending) {
            if !baked(&b.dimension) {
                let why = format!("dimension {:?} in state.json is not one this image meters", b.dimension);
                found.quarantine.push((b, why));
                continue;
            }
            if b.usage.values().try_fold(0u64, |sum, q| sum.checked_add(*q)).is_none() {
                let why = format!("the units state.json holds for {} overflow a 64-bit sum", b.dimension);
                found.quarantine.push((b, why));
                continue;
            }
            let hour = if b.hour > current.saturating_add(HOUR) {
                found.lines.push(format!(
                    "state.json holds {} units of {} for {}, further ahead than usage is ever put; moving them to the current hour",
                    b.total(),
                    b.dimension,
                    when(b.hour)
                ));
                current
            } else {
                hour_of(b.hour)
            };
            b.narrow = 0;
            if hour == current && b.hour > current {
                b.first = now;
            }
            b.hour = hour;
            match keep.iter_mut().find(|k| k.dimension == b.dimension && k.hour == hour) {
                Some(k) => {
                    for (tags, q) in b.usage {
                        let slot = k.usage.entry(tags).or_default();
                        *slot = slot.saturating_add(q);
                    }
                    k.first = k.first.min(b.first);
                }
                None => keep.push(b),
            }
        }
        self.pending = keep;

        if self.offset > usage_len {
            found.lines.push(format!(
                "state.json says {} bytes of usage.log were read, but it has {usage_len}; reading usage.log from the start",
                self.offset
            ));
            self.offset = 0;
        }
        let salt_ok = self.salt.len() == 32 && self.salt.bytes().all(|c| c.is_ascii_hexdigit());
        if !self.salt.is_empty() && !salt_ok {
            found.lines.push("state.json's ClientToken salt is not 32 hex digits; drawing a new one".into());
            self.salt.clear();
        }
        found
    }
}

/// An hour as AWS's date-time text.
fn when(secs: u64) -> String {
    let t = aws_smithy_types::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
    t.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_else(|_| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::Sent;
    use super::*;

    const DIMS: &[BakedDimension] = &[BakedDimension { name: "r", tag_keys: &[] }];
    const NOW: u64 = 1_800_001_800;

    fn sent(dimension: &str, hour: u64) -> Sent {
        Sent { dimension: dimension.into(), hour, quantity: 1, record_id: Some("forged".into()) }
    }

    #[test]
    fn future_or_foreign_sent_hours_are_forgotten_and_begun_ones_kept() {
        let h = hour_of(NOW);
        let mut s = State {
            sent: vec![
                sent("r", h - HOUR),
                sent("r", h),
                sent("r", h + HOUR),
                sent("r", h + 900 * HOUR),
                sent("x", h),
                sent("r", h + 1),
            ],
            ..State::default()
        };
        let found = s.check(DIMS, NOW, 0);
        assert_eq!(s.sent, vec![sent("r", h - HOUR), sent("r", h)]);
        assert_eq!(found.lines.len(), 1, "{:?}", found.lines);
        assert!(found.lines[0].contains("lists 4 records as sent"), "{:?}", found.lines);
        // Usage of the current hour that rolls forward now lands in the next hour, not past the forgery.
        s.add("r", NOW, "", 5);
        s.roll_forward(NOW);
        assert_eq!(s.pending[0].hour, h + HOUR);
    }

    #[test]
    fn unknown_dimensions_are_quarantined_and_far_hours_come_back() {
        let h = hour_of(NOW);
        let mut s = State::default();
        s.add("x", NOW, "", 3);
        s.add("r", h + 1000 * HOUR, "", 4);
        s.add("r", NOW, "", 1);
        s.pending.push(Bucket { dimension: "r".into(), hour: h + 7, ..Bucket::default() });
        s.pending.last_mut().expect("pushed").usage.insert(String::new(), 2);
        s.in_flight = Some(Bucket {
            dimension: "r".into(),
            hour: h + 5 * HOUR,
            usage: [(String::new(), 6)].into(),
            ..Bucket::default()
        });
        let found = s.check(DIMS, NOW, 0);
        assert_eq!(found.quarantine.len(), 1);
        assert_eq!((found.quarantine[0].0.dimension.as_str(), found.quarantine[0].0.total()), ("x", 3));
        assert!(s.in_flight.is_none());
        // All of it in the current hour: the far-future 4, the current 1, the misaligned 2, the in-flight 6.
        assert_eq!(s.pending.iter().map(|b| (b.hour, b.total())).collect::<Vec<_>>(), vec![(h, 13)]);
        assert_eq!(found.lines.len(), 3, "{:?}", found.lines);
    }

    #[test]
    fn an_offset_past_the_file_and_a_bad_salt_are_reset() {
        let mut s = State { offset: 500, salt: "not hex".into(), ..State::default() };
        let found = s.check(DIMS, NOW, 100);
        assert_eq!((s.offset, s.salt.as_str()), (0, ""));
        assert_eq!(found.lines.len(), 2);
        let mut ok = State { offset: 100, salt: "0123456789abcdef0123456789abcdef".into(), ..State::default() };
        assert!(ok.check(DIMS, NOW, 100).lines.is_empty());
        assert_eq!(ok.offset, 100);
        let mut overflow = State::default();
        overflow.add("r", NOW, "", u64::MAX);
        overflow.add("r", NOW, "team=a", 2);
        assert_eq!(overflow.check(DIMS, NOW, 0).quarantine.len(), 1);
    }
}
