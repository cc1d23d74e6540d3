//! What the sender tells the operator about usage it does not send: a record AWS refused for a
//! reason no retry can fix goes to `quarantine.log` (as usage lines, one per tag set, so it can be
//! appended to `usage.log` again once the cause is fixed) with one stderr line; at exit, every
//! {dimension, hour} still unsent is named in one stderr line with its quantity and why, and stays
//! in `state.json` for the next start on the spool.
#![forbid(unsafe_code)]

use super::answer::hour_text;
use super::{warn, Meter};
use crate::metering::hour_of;
use crate::metering::record::parse_tag_set;
use crate::metering::state::Bucket;
use std::collections::BTreeMap;
use std::io::Write as _;

impl Meter<'_> {
    /// Copy `bucket` to the quarantine as usage lines and say so once; `why` is AWS's answer.
    pub(super) fn quarantine_usage(&self, bucket: &Bucket, why: &str) {
        let path = self.spool.quarantine_file();
        let mut lines = String::new();
        for (tags, quantity) in &bucket.usage {
            lines.push_str(&format!("{} {} {quantity}", bucket.timestamp(), bucket.dimension));
            for (k, v) in parse_tag_set(tags) {
                lines.push_str(&format!(" {k}={v}"));
            }
            lines.push('\n');
        }
        let sets: Vec<&str> = bucket.usage.keys().map(|k| if k.is_empty() { "untagged" } else { k.as_str() }).collect();
        warn(&format!(
            "{} units of {} for the hour starting {} ({}) were refused: {why}; no retry can fix that, so they were copied to {} and are not sent",
            bucket.total(),
            bucket.dimension,
            hour_text(bucket.hour),
            sets.join(", "),
            path.display()
        ));
        self.append_quarantine(lines.as_bytes());
    }

    /// Append to `quarantine.log`, reporting a failure.
    pub(super) fn append_quarantine(&self, bytes: &[u8]) {
        let path = self.spool.quarantine_file();
        let written =
            std::fs::OpenOptions::new().append(true).create(true).open(&path).and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            warn(&format!("cannot write {}: {e}", path.display()));
        }
    }

    /// At exit: one line per {dimension, hour} left unsent, with the quantity and why. `late` says
    /// that the flush deadline passed, and with which error.
    pub(super) fn report_unsent(&self, late: Option<&str>) {
        let mut left: BTreeMap<(u64, &str), u64> = BTreeMap::new();
        for b in self.state.pending.iter().chain(self.state.in_flight.as_ref()) {
            *left.entry((b.hour, b.dimension.as_str())).or_default() += b.total();
        }
        let current = hour_of(self.clock.now());
        for ((hour, dimension), units) in left.into_iter().filter(|(_, units)| *units > 0) {
            let held = self.held.get(&(dimension.to_string(), hour)).map(|(_, why)| why.as_str());
            let why = match (&self.not_entitled, held, late) {
                (Some(refusal), _, _) => refusal.clone(),
                (None, Some(why), _) => why.to_string(),
                (None, None, _) if hour > current => format!(
                    "AWS refused an earlier hour for this usage and the next one it may go to, this one, had not begun at exit (now {})",
                    hour_text(self.clock.now())
                ),
                (None, None, Some(late)) => late.to_string(),
                (None, None, None) => "no attempt was left to send it before exit".to_string(),
            };
            warn(&format!(
                "{units} units of {dimension} for the hour starting {} were not sent ({why}); they stay in {} and the next start on this spool sends them",
                hour_text(hour),
                self.spool.state_file().display()
            ));
        }
    }
}
