//! The hourly sender `supervise` runs beside the workload: tail `usage.log` into the state, send
//! each closed hour once per dimension (Timestamp = the first usage of the hour, UsageAllocations
//! from the tag sets) at its slot in the hour (`metering::spread`), retry transient errors with
//! backoff, roll refused hours forward; at exit, send the rest at once and name, per {dimension,
//! hour}, what could not be sent (`report.rs`).
//!
//! What each answer means is `answer.rs`. One record never stops the others: a record AWS refuses
//! for a reason no retry can fix is quarantined; one refused for a reason that may pass (IAM, an
//! unknown code) is held for `HOLD` while the others go on. `CustomerNotEntitledException` to a real
//! record follows `--on-not-entitled`: `stop` ends `run` (or `flush`) with the refusal, and
//! `supervise` stops the workload; `warn` reports it and holds the usage.
//! Must not: block `supervise`'s signal forwarding and reaping: every wait here is async.
#![forbid(unsafe_code)]

mod answer;
mod ingest;
mod open;
mod report;

pub use open::Prepared;

use super::compact::Compactor;
use super::spread::Spread;
use super::state::{Bucket, State};
use super::{hour_of, record, Clock, Spool, SystemClock};
use crate::aws::Clients;
use crate::entitlement::pacing::full_jitter;
use crate::error::Error;
use crate::identity::{BakedDimension, BakedProduct};
use crate::platform::{credentials, CredentialSource, Env, FoundRegion};
use crate::supervise::stop::Policy;
use aws_sdk_marketplacemetering::error::SdkError;
use aws_sdk_marketplacemetering::operation::meter_usage::MeterUsageError;
use aws_sdk_marketplacemetering::types::{Tag, UsageAllocation};
use aws_smithy_types::DateTime;
use std::collections::HashMap;
use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime};

/// The records `run` leaves for later in one round: those of the dimensions `waiting` for their slot
/// in the hour starting `hour`, and those of `hour` itself or later, which were not closed when the
/// slots were looked at (an hour that closes during the round waits for its own slots).
struct Slots {
    hour: u64,
    waiting: Vec<String>,
}

impl Slots {
    fn holds(&self, dimension: &str, hour: u64) -> bool {
        hour >= self.hour || self.waiting.iter().any(|w| w == dimension)
    }
}

/// How often the usage file is read and closed hours are sent.
const POLL: Duration = Duration::from_secs(5);
/// How long a record refused for a reason that may pass waits before it is tried again.
const HOLD: Duration = Duration::from_secs(300);

/// Why `send_ready` stopped before every ready record was settled.
enum Halt {
    /// `until` passed while a record's transient failures were retried (the last one quoted).
    Deadline(String),
    /// AWS said the buyer is not entitled, under `--on-not-entitled stop`: the refusal to exit with.
    NotEntitled(Error),
}

/// The sender and everything it needs; borrows the injected environment for credential refreshes.
pub struct Meter<'a> {
    spool: Spool,
    env: &'a dyn Env,
    clock: Box<dyn Clock>,
    product: &'static BakedProduct,
    dimensions: &'static [BakedDimension],
    region: FoundRegion,
    source: CredentialSource,
    hostname: String,
    clients: Option<Clients>,
    client: Option<(aws_sdk_marketplacemetering::Client, Option<SystemTime>)>,
    state: State,
    compactor: Compactor,
    /// The slots of the current hour at which closed hours' records go out while the workload runs.
    spread: Spread,
    on_not_entitled: Policy,
    /// Records refused for a reason that may pass: {dimension, hour} → (tried again from, why).
    held: HashMap<(String, u64), (Instant, String)>,
    /// Set once AWS said the buyer is not entitled under `--on-not-entitled stop`: nothing more is
    /// sent, and every unsent unit is reported with this answer.
    not_entitled: Option<String>,
    /// Why `usage.log` could not be read at the last attempt (reported once per reason).
    unreadable: Option<String>,
}

impl<'a> Meter<'a> {
    /// What the workload is told: where to append usage lines, and the spool `mpgate meter` records to.
    pub fn workload_env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("MPGATE_USAGE_FILE".into(), self.spool.usage_file().into_os_string()),
            ("MPGATE_SPOOL_DIR".into(), self.spool.dir().as_os_str().to_os_string()),
        ]
    }

    /// Run until dropped: read new usage, send closed hours whose slot has come, sleep until the next
    /// poll or slot. Returns only under `--on-not-entitled stop`, with the refusal the workload is to
    /// be stopped for.
    pub async fn run(&mut self) -> Error {
        loop {
            self.ingest(false);
            let (slots, next) = self.slots();
            if let Err(Halt::NotEntitled(refusal)) = self.send_ready(false, None, Some(&slots)).await {
                return refusal;
            }
            self.state.prune(self.clock.now());
            tokio::time::sleep(next.map_or(POLL, |n| n.min(POLL))).await;
        }
    }

    /// Which records wait for their slot in the current hour, and the time until the first of those
    /// slots. A slot drawn now is told on the verbose log.
    fn slots(&mut self) -> (Slots, Option<Duration>) {
        let now_ms = self.clock.now_ms();
        let current = hour_of(now_ms / 1000);
        let mut dimensions: Vec<&str> = self
            .state
            .pending
            .iter()
            .filter(|b| b.hour < current && b.total() > 0)
            .map(|b| b.dimension.as_str())
            .collect();
        dimensions.sort_unstable();
        dimensions.dedup();
        let (mut waiting, mut next) = (Vec::new(), None::<u64>);
        for dimension in dimensions {
            let (after, drawn) = self.spread.slot(current, dimension);
            let at = current * 1000 + after;
            if drawn {
                slot_line(dimension, current, after, self.spread.bound());
            }
            if at > now_ms {
                waiting.push(dimension.to_string());
                next = Some(next.map_or(at - now_ms, |n| n.min(at - now_ms)));
            }
        }
        (Slots { hour: current, waiting }, next.map(Duration::from_millis))
    }

    /// After the workload exited: read the rest of the usage file, send every hour including the
    /// current partial one, within `deadline`. What cannot be sent stays in state.json for the next
    /// start on this spool, and is reported per {dimension, hour}. Returns the refusal to exit with
    /// when AWS said not entitled under `--on-not-entitled stop`, here or before.
    pub async fn flush(&mut self, deadline: Duration) -> Option<Error> {
        let until = Instant::now() + deadline;
        self.ingest(true);
        // Every held record gets one more try; what is refused again is held with its new reason.
        self.held.clear();
        let mut refusal = None;
        let mut late = None;
        if self.not_entitled.is_none() {
            let outcome = tokio::time::timeout_at(until.into(), self.send_ready(true, Some(until), None)).await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(Halt::NotEntitled(e))) => refusal = Some(e),
                Ok(Err(Halt::Deadline(last))) => {
                    late = Some(format!("the {}s flush deadline passed; last error: {last}", deadline.as_secs()));
                }
                Err(_) => late = Some(format!("the {}s flush deadline passed", deadline.as_secs())),
            }
        }
        self.save();
        self.report_unsent(late.as_deref());
        refusal
    }

    /// Save the state; `false` (reported) when it could not be made durable.
    fn save(&self) -> bool {
        match self.state.save(&self.spool) {
            Ok(()) => true,
            Err(e) => {
                warn(&format!("cannot save {}: {e}", self.spool.state_file().display()));
                false
            }
        }
    }

    /// Send every ready record that is not held and, with `slots`, whose slot has come (the in-flight
    /// one first, whatever its slot: it may already be recorded).
    async fn send_ready(&mut self, closing: bool, until: Option<Instant>, slots: Option<&Slots>) -> Result<(), Halt> {
        loop {
            let bucket = match self.state.in_flight.clone() {
                Some(b) => b,
                None => {
                    let (held, now) = (&self.held, Instant::now());
                    let waits = |d: &str, h: u64| {
                        slots.is_some_and(|s| s.holds(d, h))
                            || held.get(&(d.to_string(), h)).is_some_and(|(t, _)| *t > now)
                    };
                    match self.state.next_record(self.clock.now(), closing, &waits) {
                        Some(b) => {
                            // Intent first: after a crash the same request is sent again.
                            self.save();
                            b
                        }
                        None => return Ok(()),
                    }
                }
            };
            self.send_one(&bucket, until).await?;
        }
    }

    /// Send `bucket` (in flight) until its answer settles it; transient failures are retried with
    /// backoff, until `until` when it is given.
    async fn send_one(&mut self, bucket: &Bucket, until: Option<Instant>) -> Result<(), Halt> {
        let cap = if until.is_some() { Duration::from_secs(2) } else { Duration::from_secs(60) };
        let mut attempt = 1u32;
        loop {
            let transient = match self.client().await {
                Err(e) => e,
                Ok(client) => {
                    let token = self.state.client_token(self.product.code, bucket);
                    let answer = send(&client, self.product.code, bucket, token).await;
                    match self.settle(bucket, answer) {
                        answer::Step::Settled => return Ok(()),
                        answer::Step::Stop(refusal) => return Err(Halt::NotEntitled(refusal)),
                        answer::Step::Retry(transient) => transient,
                    }
                }
            };
            let wait = full_jitter(attempt, Duration::from_millis(200), cap);
            if until.is_some_and(|u| Instant::now() + wait >= u) {
                return Err(Halt::Deadline(format!("MeterUsage attempt {attempt}: {transient}")));
            }
            tokio::time::sleep(wait).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// A Metering client with credentials valid for at least five more minutes.
    async fn client(&mut self) -> Result<aws_sdk_marketplacemetering::Client, String> {
        let fresh = |exp: &Option<SystemTime>| exp.is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
        if let Some((c, exp)) = &self.client {
            if fresh(exp) {
                return Ok(c.clone());
            }
        }
        if self.clients.is_none() {
            self.clients = Some(Clients::new(self.env).map_err(|e| e.to_string())?);
        }
        let Some(clients) = &self.clients else { return Err("no HTTP client".into()) };
        let loaded = credentials::load(self.env, clients, &self.region.name)
            .await
            .map_err(|e| format!("loading credentials: {e}"))?;
        let expiry = loaded.credentials.expiry();
        let client = clients.metering(self.env, &self.region.name, loaded.credentials);
        self.client = Some((client.clone(), expiry));
        Ok(client)
    }
}

/// The sender's clock: the system clock, plus the flavour's offset (`flavour::clock_offset`: always 0
/// in the release flavour).
fn clock(env: &dyn Env) -> Box<dyn Clock> {
    match crate::flavour::clock_offset(env) {
        0 => Box::new(SystemClock),
        offset => Box::new(super::OffsetClock(offset)),
    }
}

/// One MeterUsage for `bucket`: Timestamp = the first usage of its hour, allocations when any usage
/// is tagged, and the request's own `ClientToken` (`State::client_token`), never one the SDK draws.
async fn send(
    client: &aws_sdk_marketplacemetering::Client,
    product_code: &str,
    bucket: &Bucket,
    client_token: String,
) -> Result<Option<String>, SdkError<MeterUsageError>> {
    let total = i32::try_from(bucket.total()).unwrap_or(i32::MAX);
    let mut request = client
        .meter_usage()
        .product_code(product_code)
        .timestamp(DateTime::from_secs(i64::try_from(bucket.timestamp()).unwrap_or(i64::MAX)))
        .usage_dimension(&bucket.dimension)
        .usage_quantity(total)
        .client_token(client_token);
    if bucket.usage.keys().any(|k| !k.is_empty()) {
        for (tags, q) in &bucket.usage {
            let mut a = UsageAllocation::builder().allocated_usage_quantity(i32::try_from(*q).unwrap_or(i32::MAX));
            for (k, v) in record::parse_tag_set(tags) {
                if let Ok(tag) = Tag::builder().key(k).value(v).build() {
                    a = a.tags(tag);
                }
            }
            if let Ok(a) = a.build() {
                request = request.usage_allocations(a);
            }
        }
    }
    let out = request.send().await?;
    Ok(out.metering_record_id().map(str::to_string))
}

/// The `-v` line for a slot drawn: when a dimension's closed hours go out in the hour starting `hour`.
fn slot_line(dimension: &str, hour: u64, after_ms: u64, bound: Duration) {
    let at = answer::hour_text(hour + after_ms / 1000);
    crate::log::emit(
        crate::log::Level::Verbose,
        &format!(
            "MeterUsage slot: dimension {dimension}, records of closed hours go out at {at}, {}.{:03} s into the hour (spread {} s)",
            after_ms / 1000,
            after_ms % 1000,
            bound.as_secs()
        ),
        &[
            ("event", "meter_usage_slot".into()),
            ("dimension", dimension.into()),
            ("hour", answer::hour_text(hour).into()),
            ("after_ms", after_ms.into()),
            ("spread_ms", u64::try_from(bound.as_millis()).unwrap_or(u64::MAX).into()),
        ],
    );
}

fn warn(m: &str) {
    crate::log::warn(m);
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn a_round_holds_waiting_dimensions_and_hours_that_closed_during_it() {
        let slots = Slots { hour: 7200, waiting: vec!["requests".into()] };
        assert!(slots.holds("requests", 3600), "its slot has not come");
        assert!(!slots.holds("gb_processed", 3600), "its slot has come");
        assert!(slots.holds("gb_processed", 7200), "closed after the slots were looked at: waits for its own");
    }
}
