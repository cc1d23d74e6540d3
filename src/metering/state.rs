//! The sender's durable state and the pure rules over it: aggregation per {dimension, hour, tag set},
//! which hour a record may still go to (roll-forward), what to send next, and how a record AWS
//! refuses for one of its tag sets is narrowed down to that tag set.
//!
//! Crash safety comes from one file replaced atomically: the consumed offset moves together with the
//! aggregates it produced, and a record is marked in flight (with its exact quantity, allocations and
//! timestamp) before it is sent, so a restart re-sends the identical request, which AWS answers with
//! the same MeteringRecordId (one record per {dimension, hour} per task/pod; docs/aws-behaviour.md §2.3).
//! Identical includes its `ClientToken`, which is derived from the request and a random salt kept
//! here: whether AWS de-duplicates by the hour or by the token, a re-sent record is the same record
//! (§10.5), and two pods' identical records are not.
//!
//! Timestamp: a record is dated at the first usage in its hour, never at the top of the hour, which
//! may lie before the task or pod started (AWS: a timestamp must not precede the start of usage,
//! §2.3); AWS rounds it down to the hour, so the one record per {dimension, hour} is unchanged.
//! Usage rolled into a later hour is dated at the start of that hour.
#![forbid(unsafe_code)]

use super::{hour_of, Spool, HOUR, WINDOW_SECS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

/// Keep this much of the 6-hour window in hand: an hour whose start is older than
/// `WINDOW_SECS - SEND_MARGIN` is treated as unsendable and rolls forward.
pub const SEND_MARGIN: u64 = 300;
/// AWS's cap on `UsageAllocations` per record.
pub const MAX_ALLOCATIONS: usize = 2500;
/// `UsageQuantity` maximum.
pub const MAX_QUANTITY: u64 = i32::MAX as u64;

/// Usage of one dimension in one hour, per canonical tag set (`""` = untagged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Dimension name.
    pub dimension: String,
    /// Start of the hour (Unix seconds).
    pub hour: u64,
    /// Tag-set text → quantity.
    pub usage: BTreeMap<String, u64>,
    /// When the first usage of the hour happened (Unix seconds): the record's `Timestamp`. 0 when
    /// unknown (a state.json without it): the start of the hour.
    #[serde(default)]
    pub first: u64,
    /// While AWS refuses this {dimension, hour}'s record for one of its tag sets: how many tag sets
    /// (the first, in order) the next attempt carries. 0: all of them.
    #[serde(default)]
    pub narrow: usize,
}

impl Bucket {
    /// Sum over tag sets.
    pub fn total(&self) -> u64 {
        self.usage.values().sum()
    }

    /// The record's `Timestamp`: the first usage of the hour, inside the hour.
    pub fn timestamp(&self) -> u64 {
        self.first.clamp(self.hour, self.hour + HOUR - 1)
    }
}

/// A record AWS accepted (or, with no id, an hour AWS says is already taken with another quantity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Dimension name.
    pub dimension: String,
    /// Start of the hour.
    pub hour: u64,
    /// Quantity accepted.
    pub quantity: u64,
    /// AWS's MeteringRecordId.
    pub record_id: Option<String>,
}

/// Everything that must survive a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Bytes of `usage.log` consumed.
    pub offset: u64,
    /// Aggregates not yet sent.
    pub pending: Vec<Bucket>,
    /// The record being sent: re-sent identically after a restart.
    pub in_flight: Option<Bucket>,
    /// Records sent in the last hours (older ones are pruned: their hours can no longer be sent).
    pub sent: Vec<Sent>,
    /// This spool's secret part of every `ClientToken` (hex; drawn once, `ensure_salt`).
    #[serde(default)]
    pub salt: String,
}

impl State {
    /// Load from the spool; a missing file is a fresh state.
    pub fn load(spool: &Spool) -> Result<State, String> {
        let path = spool.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{} is not valid: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Draw this spool's salt if it has none yet; true when it was drawn (the state must be saved).
    pub fn ensure_salt(&mut self) -> Result<bool, String> {
        if !self.salt.is_empty() {
            return Ok(false);
        }
        let mut b = [0u8; 16];
        getrandom::getrandom(&mut b).map_err(|e| format!("no randomness for the ClientToken salt: {e}"))?;
        self.salt = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(true)
    }

    /// The `ClientToken` of the MeterUsage request for `bucket` (product `code`): the same for the
    /// same request from this spool, different for any other request or spool. 32 hex characters
    /// (the model allows 1–64).
    pub fn client_token(&self, code: &str, bucket: &Bucket) -> String {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        let fields = serde_json::json!([self.salt, code, bucket.dimension, bucket.timestamp(), bucket.usage]);
        h.update(fields.to_string().as_bytes());
        h.finalize().iter().take(16).map(|x| format!("{x:02x}")).collect()
    }

    /// Replace the state file atomically: write a temp file, fsync it, rename, fsync the directory.
    pub fn save(&self, spool: &Spool) -> std::io::Result<()> {
        let tmp = spool.dir().join("state.json.tmp");
        // A fresh file, never one left (or planted, as a link) under that name.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, spool.state_file())?;
        std::fs::File::open(spool.dir())?.sync_all()
    }

    /// Add usage that happened at `at` (Unix seconds) to the aggregate of {dimension, hour of `at`,
    /// tag set}.
    pub fn add(&mut self, dimension: &str, at: u64, tag_set: &str, quantity: u64) {
        self.put(dimension, hour_of(at), at, tag_set, quantity);
    }

    /// Add usage to the aggregate of {dimension, `hour`, tag set}; `at` is when it happened, as far
    /// as this hour is concerned.
    fn put(&mut self, dimension: &str, hour: u64, at: u64, tag_set: &str, quantity: u64) {
        if quantity == 0 {
            return;
        }
        let i = match self.pending.iter().position(|b| b.dimension == dimension && b.hour == hour) {
            Some(i) => i,
            None => {
                let first = at;
                self.pending.push(Bucket { dimension: dimension.to_string(), hour, first, ..Bucket::default() });
                self.pending.len() - 1
            }
        };
        let b = &mut self.pending[i];
        b.first = b.first.min(at);
        *b.usage.entry(tag_set.to_string()).or_default() += quantity;
    }

    /// Move `bucket`'s usage into `hour` (its own, or a later one it rolls into).
    fn merge(&mut self, bucket: Bucket, hour: u64) {
        let at = bucket.timestamp().max(hour);
        for (tags, q) in bucket.usage {
            self.put(&bucket.dimension, hour, at, &tags, q);
        }
    }

    /// Has this pod already used (or is it using) the hour's one record for `dimension`?
    pub fn taken(&self, dimension: &str, hour: u64) -> bool {
        self.sent.iter().any(|s| s.dimension == dimension && s.hour == hour)
            || self.in_flight.as_ref().is_some_and(|b| b.dimension == dimension && b.hour == hour)
    }

    /// The first hour after `after` that is neither taken nor too old at `now`.
    pub fn next_sendable(&self, dimension: &str, after: u64, now: u64) -> u64 {
        let oldest = hour_of(now.saturating_sub(WINDOW_SECS - SEND_MARGIN) + HOUR - 1);
        let mut h = (after + HOUR).max(oldest);
        while self.taken(dimension, h) {
            h += HOUR;
        }
        h
    }

    /// Move usage of hours that can no longer be sent (already sent by this pod, or too old) into
    /// the next sendable hour, as AWS asks ("roll missed usage into a following hour's record").
    pub fn roll_forward(&mut self, now: u64) {
        let limit = WINDOW_SECS - SEND_MARGIN;
        let (movers, keep): (Vec<Bucket>, Vec<Bucket>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|b| self.taken(&b.dimension, b.hour) || now.saturating_sub(b.hour) > limit);
        self.pending = keep;
        for b in movers {
            let to = self.next_sendable(&b.dimension, b.hour, now);
            self.merge(b, to);
        }
    }

    /// Take the next record to send, mark it in flight, and roll what does not fit one record
    /// (over 2^31-1 units or 2500 tag sets) into the next sendable hour. Ready: hours before the
    /// current one, or every hour up to the current one when `closing`, but not a {dimension, hour}
    /// `held` names. A narrowed bucket sends its first `narrow` tag sets; the others stay in its hour.
    pub fn next_record(&mut self, now: u64, closing: bool, held: &dyn Fn(&str, u64) -> bool) -> Option<Bucket> {
        self.roll_forward(now);
        self.pending.retain(|b| b.total() > 0);
        let current = hour_of(now);
        let ready = |b: &Bucket| (b.hour < current || (closing && b.hour <= current)) && !held(&b.dimension, b.hour);
        let i = (0..self.pending.len())
            .filter(|&i| ready(&self.pending[i]))
            .min_by_key(|&i| (self.pending[i].hour, self.pending[i].dimension.clone()))?;
        let mut bucket = self.pending.remove(i);
        if let Some(key) = bucket.usage.keys().nth(bucket.narrow).filter(|_| bucket.narrow > 0).cloned() {
            let stay = bucket.usage.split_off(&key);
            self.pending.push(Bucket { usage: stay, narrow: 0, ..bucket.clone() });
        }
        bucket.narrow = 0;
        let (mut send, mut rest) =
            (Bucket { usage: BTreeMap::new(), ..bucket.clone() }, Bucket { usage: BTreeMap::new(), ..bucket.clone() });
        let mut total = 0;
        for (tags, q) in bucket.usage {
            let room = if send.usage.len() < MAX_ALLOCATIONS { MAX_QUANTITY - total } else { 0 };
            let take = q.min(room);
            if take > 0 {
                send.usage.insert(tags.clone(), take);
                total += take;
            }
            if q > take {
                rest.usage.insert(tags, q - take);
            }
        }
        self.in_flight = Some(send.clone());
        if rest.total() > 0 {
            let to = self.next_sendable(&rest.dimension, rest.hour, now);
            self.merge(rest, to);
        }
        Some(send)
    }

    /// AWS accepted the in-flight record.
    pub fn accepted(&mut self, record_id: Option<String>) {
        if let Some(b) = self.in_flight.take() {
            self.sent.push(Sent { dimension: b.dimension.clone(), hour: b.hour, quantity: b.total(), record_id });
        }
    }

    /// AWS refused the in-flight record for its hour (already taken with another quantity, or out
    /// of the window): its usage rolls forward; `taken` also marks the hour used.
    pub fn roll_in_flight(&mut self, now: u64, taken: bool) {
        if let Some(b) = self.in_flight.take() {
            if taken {
                self.sent.push(Sent { dimension: b.dimension.clone(), hour: b.hour, quantity: 0, record_id: None });
            }
            let to = self.next_sendable(&b.dimension, b.hour, now);
            self.merge(b, to);
        }
    }

    /// AWS refused the in-flight record for a reason that is not about its hour: keep it pending.
    pub fn return_in_flight(&mut self) {
        if let Some(b) = self.in_flight.take() {
            let hour = b.hour;
            self.merge(b, hour);
        }
    }

    /// AWS refused the in-flight record because of one of its tag sets (which one, AWS does not
    /// say). A record of one tag set is returned, to be quarantined; a larger one goes back to its
    /// hour, narrowed to the first half of its tag sets for the next attempt. A refused record uses
    /// up nothing, so each half is tried in the same hour: a bad tag set is found within
    /// log2(tag sets) + 1 refusals, and the first half AWS accepts takes the hour while the rest rolls on.
    pub fn refused_tag_set(&mut self) -> Option<Bucket> {
        let b = self.in_flight.take()?;
        if b.usage.len() <= 1 {
            return Some(b);
        }
        let (dimension, hour, half) = (b.dimension.clone(), b.hour, b.usage.len() / 2);
        self.merge(b, hour);
        if let Some(p) = self.pending.iter_mut().find(|p| p.dimension == dimension && p.hour == hour) {
            p.narrow = half;
        }
        None
    }

    /// AWS refused the in-flight record as a whole, for a reason no retry can fix (its dimension):
    /// returned, to be quarantined.
    pub fn refused_record(&mut self) -> Option<Bucket> {
        self.in_flight.take()
    }

    /// Forget sent records whose hours are out of AWS's window anyway.
    pub fn prune(&mut self, now: u64) {
        self.sent.retain(|s| s.hour + WINDOW_SECS + HOUR > now);
    }

    /// Units not yet sent (pending and in flight), for reports.
    pub fn unsent(&self) -> u64 {
        self.pending.iter().chain(self.in_flight.as_ref()).map(Bucket::total).sum()
    }
}

mod check;
pub use check::Found;

#[cfg(test)]
mod tests;
