//! The hourly sender `supervise` runs beside the workload: tail `usage.log` into the state, send
//! each closed hour once per dimension (Timestamp = start of the hour, UsageAllocations from the tag
//! sets), retry transient errors with backoff, roll refused hours forward; at exit, send the rest.
//!
//! Answers and what they mean (docs/aws-behaviour.md §2.3, §8): a MeteringRecordId is success (also for an
//! identical repeat after a restart); `DuplicateRequestException` means this pod's hour already holds
//! another quantity, so the usage rolls into the next hour; `TimestampOutOfBoundsException` means the
//! hour left AWS's window, so it rolls forward too; throttling, 5xx and network errors are retried;
//! anything else is reported and the usage stays pending (retried every `FINAL_PAUSE`).
//! Must not: block `supervise`'s signal forwarding and reaping: every wait here is async.
#![forbid(unsafe_code)]

mod ingest;

use super::compact::Compactor;
use super::state::{Bucket, State};
use super::{record, Clock, Spool, SystemClock};
use crate::aws::Clients;
use crate::entitlement::pacing::full_jitter;
use crate::entitlement::{classify, Context, Entitled, Verdict};
use crate::error::Error;
use crate::identity::{self, BakedDimension, BakedProduct};
use crate::platform::{credentials, CredentialSource, Env, FoundRegion};
use aws_sdk_marketplacemetering::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_marketplacemetering::operation::meter_usage::MeterUsageError;
use aws_sdk_marketplacemetering::types::{Tag, UsageAllocation};
use aws_smithy_types::DateTime;
use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime};

/// How often the usage file is read and closed hours are sent.
const POLL: Duration = Duration::from_secs(5);
/// Pause after a final (non-retryable) refusal before trying again.
const FINAL_PAUSE: Duration = Duration::from_secs(300);

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
    paused_until: Option<Instant>,
    compactor: Compactor,
}

impl<'a> Meter<'a> {
    /// Open (creating if needed) the spool and load its state. Refuses an unusable spool before the
    /// workload starts, so usage is never recorded where it cannot be sent.
    pub fn open(spool: Spool, entitled: &Entitled, env: &'a dyn Env) -> Result<Meter<'a>, Error> {
        let baked = identity::baked()?;
        let product = baked.select(Some(entitled.product_code()))?;
        let fail = |what: String| {
            Error::Spool(format!(
                "spool directory {}: {what}; mount a writable emptyDir or volume there or set --spool / MPGATE_SPOOL_DIR (docs/custom-metering.md)",
                spool.dir().display()
            ))
        };
        std::fs::create_dir_all(spool.dir()).map_err(|e| fail(format!("cannot create it: {e}")))?;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(spool.usage_file())
            .map_err(|e| fail(format!("cannot open usage.log: {e}")))?;
        let state = State::load(&spool).map_err(fail)?;
        state.save(&spool).map_err(|e| fail(format!("cannot write state.json: {e}")))?;
        Ok(Meter {
            spool,
            env,
            clock: clock(env),
            product,
            dimensions: baked.dimensions,
            region: entitled.region().clone(),
            source: entitled.credential_source(),
            hostname: crate::entitlement::nonce::hostname(),
            clients: None,
            client: None,
            state,
            paused_until: None,
            compactor: Compactor::default(),
        })
    }

    /// What the workload is told: where to append usage lines.
    pub fn workload_env(&self) -> Vec<(OsString, OsString)> {
        vec![("MPGATE_USAGE_FILE".into(), self.spool.usage_file().into_os_string())]
    }

    /// Run until dropped: read new usage, send closed hours, sleep.
    pub async fn run(&mut self) {
        loop {
            self.ingest(false);
            if self.paused_until.is_none_or(|t| Instant::now() >= t) {
                self.paused_until = None;
                if let Err(e) = self.send_ready(false, None).await {
                    warn(&format!("usage not sent yet: {e}; retrying in {}s", FINAL_PAUSE.as_secs()));
                    self.paused_until = Some(Instant::now() + FINAL_PAUSE);
                }
            }
            let now = self.clock.now();
            self.state.prune(now);
            tokio::time::sleep(POLL).await;
        }
    }

    /// After the workload exited: read the rest of the usage file, send every hour including the
    /// current partial one, within `deadline`. What cannot be sent stays in state.json for the next
    /// start on this spool, and is reported.
    pub async fn flush(&mut self, deadline: Duration) {
        let until = Instant::now() + deadline;
        self.ingest(true);
        let outcome = tokio::time::timeout_at(until.into(), self.send_ready(true, Some(until))).await;
        let why = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("the {}s flush deadline passed", deadline.as_secs())),
        };
        if let Err(e) = self.state.save(&self.spool) {
            warn(&format!("cannot save {}: {e}", self.spool.state_file().display()));
        }
        let unsent = self.state.unsent();
        if let (Some(why), true) = (why, unsent > 0) {
            warn(&format!(
                "{unsent} units of usage not sent at exit ({why}); they stay in {} and are sent by the next start on this spool",
                self.spool.state_file().display()
            ));
        }
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

    /// Send every ready record (the in-flight one first). `Err` on a final refusal.
    async fn send_ready(&mut self, closing: bool, until: Option<Instant>) -> Result<(), String> {
        loop {
            let bucket = match self.state.in_flight.clone() {
                Some(b) => b,
                None => {
                    let next = self.state.next_record(self.clock.now(), closing);
                    match next {
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

    async fn send_one(&mut self, bucket: &Bucket, until: Option<Instant>) -> Result<(), String> {
        let cap = if until.is_some() { Duration::from_secs(2) } else { Duration::from_secs(60) };
        for attempt in 1u32.. {
            let transient = match self.client().await {
                Err(e) => e,
                Ok(client) => {
                    let answer = send(&client, self.product.code, bucket).await;
                    match self.settle(bucket, answer) {
                        Verdict::Admit(()) => return Ok(()),
                        Verdict::Refuse(final_error) => return Err(final_error.to_string()),
                        Verdict::Retry(transient) => transient,
                    }
                }
            };
            let wait = full_jitter(attempt, Duration::from_millis(200), cap);
            if until.is_some_and(|u| Instant::now() + wait >= u) {
                return Err(format!("MeterUsage attempt {attempt}: {transient}"));
            }
            tokio::time::sleep(wait).await;
        }
        Err("retry loop ended".into())
    }

    /// What one MeterUsage answer for the in-flight `bucket` means, with the state change it makes:
    /// accepted, or rolled into the next hour (admit: the record is settled); returned to the pending
    /// usage (refuse); unchanged (retry).
    fn settle(&mut self, bucket: &Bucket, answer: Result<Option<String>, SdkError<MeterUsageError>>) -> Verdict<()> {
        let verdict = match answer {
            Ok(id) => {
                self.state.accepted(id);
                Verdict::Admit(())
            }
            Err(SdkError::ServiceError(s)) if s.err().code() == Some("DuplicateRequestException") => {
                warn(&format!(
                    "AWS already holds another {} record for the hour starting {}; its {} units roll into the next hour",
                    bucket.dimension, bucket.hour, bucket.total()
                ));
                self.state.roll_in_flight(self.clock.now(), true);
                Verdict::Admit(())
            }
            Err(SdkError::ServiceError(s)) if s.err().code() == Some("TimestampOutOfBoundsException") => {
                warn(&format!(
                    "AWS no longer accepts the hour starting {} for {}; its {} units roll into the next hour",
                    bucket.hour,
                    bucket.dimension,
                    bucket.total()
                ));
                self.state.roll_in_flight(self.clock.now(), false);
                Verdict::Admit(())
            }
            Err(e) => {
                let ctx = Context { region: &self.region, source: self.source, hostname: &self.hostname };
                match classify::metering(e, "MeterUsage", self.product, &ctx) {
                    Verdict::Refuse(final_error) => {
                        self.state.return_in_flight();
                        Verdict::Refuse(final_error)
                    }
                    retry => return retry,
                }
            }
        };
        self.save();
        verdict
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

/// One MeterUsage for `bucket`: Timestamp = start of the hour, allocations when any usage is tagged.
async fn send(
    client: &aws_sdk_marketplacemetering::Client,
    product_code: &str,
    bucket: &Bucket,
) -> Result<Option<String>, SdkError<MeterUsageError>> {
    let total = i32::try_from(bucket.total()).unwrap_or(i32::MAX);
    let mut request = client
        .meter_usage()
        .product_code(product_code)
        .timestamp(DateTime::from_secs(i64::try_from(bucket.hour).unwrap_or(i64::MAX)))
        .usage_dimension(&bucket.dimension)
        .usage_quantity(total);
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

fn warn(m: &str) {
    crate::log::warn(m);
}
