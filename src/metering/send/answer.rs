//! What one MeterUsage answer to the record in flight means, and the state change it makes
//! (docs/aws-behaviour.md §2.3, §2.6, §8):
//!
//! | Answer | Meaning | The record |
//! |---|---|---|
//! | a `MeteringRecordId` | accepted (also an identical repeat after a restart) | sent |
//! | `DuplicateRequestException` | this task already holds another quantity for the hour | rolls into the next hour |
//! | `TimestampOutOfBoundsException` | the hour is out of AWS's window | rolls into the next hour |
//! | `InvalidTagException`, `InvalidUsageAllocationsException` | one of its tag sets is bad (AWS does not say which) | narrowed down to that tag set (`State::refused_tag_set`), which is quarantined |
//! | `InvalidUsageDimensionException` | the dimension is not the product's | quarantined |
//! | `CustomerNotEntitledException` | the buyer is not subscribed | `--on-not-entitled`: stop, or warn and hold |
//! | throttling, 5xx, no answer | transient | retried with backoff |
//! | anything else (IAM, credentials, an unknown code) | may pass once the cause is fixed | held for `HOLD`; the others go on |
#![forbid(unsafe_code)]

use super::{warn, Meter, HOLD};
use crate::entitlement::{classify, Context, Verdict};
use crate::error::Error;
use crate::metering::state::Bucket;
use crate::supervise::stop::Policy;
use aws_sdk_marketplacemetering::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_marketplacemetering::operation::meter_usage::MeterUsageError;
use std::convert::Infallible;
use std::time::Instant;

/// What the sender does after one answer.
pub(super) enum Step {
    /// The record is settled (sent, rolled, narrowed, quarantined or held): go on with the next.
    Settled,
    /// Transient: send the same record again after a pause.
    Retry(String),
    /// Not entitled under `--on-not-entitled stop`: stop sending; the workload is to be stopped.
    Stop(Error),
}

impl Meter<'_> {
    /// Apply the answer to the in-flight `bucket` and save the state.
    pub(super) fn settle(
        &mut self,
        bucket: &Bucket,
        answer: Result<Option<String>, SdkError<MeterUsageError>>,
    ) -> Step {
        let step = match answer {
            Ok(id) => {
                sent_line(bucket, id.as_deref());
                self.state.accepted(id);
                Step::Settled
            }
            Err(SdkError::ServiceError(s)) if s.err().code() == Some("DuplicateRequestException") => {
                warn(&format!(
                    "AWS already holds another {} record for the hour starting {}; its {} units roll into the next hour",
                    bucket.dimension,
                    hour_text(bucket.hour),
                    bucket.total()
                ));
                self.state.roll_in_flight(self.clock.now(), true);
                Step::Settled
            }
            Err(SdkError::ServiceError(s)) if s.err().code() == Some("TimestampOutOfBoundsException") => {
                warn(&format!(
                    "AWS no longer accepts the hour starting {} for {} (TimestampOutOfBoundsException for a record dated {}); its {} units roll into the next hour",
                    hour_text(bucket.hour),
                    bucket.dimension,
                    hour_text(bucket.timestamp()),
                    bucket.total()
                ));
                self.state.roll_in_flight(self.clock.now(), false);
                Step::Settled
            }
            Err(e) => {
                let ctx = Context { region: &self.region, source: self.source, hostname: &self.hostname };
                match classify::metering::<Infallible, _>(e, "MeterUsage", self.product, &ctx) {
                    Verdict::Admit(never) => match never {},
                    Verdict::Retry { why: transient, .. } => return Step::Retry(transient),
                    Verdict::Refuse(refusal) => self.refused(bucket, refusal),
                }
            }
        };
        self.save();
        step
    }

    /// A final refusal of the in-flight `bucket`, by its code.
    fn refused(&mut self, bucket: &Bucket, refusal: Error) -> Step {
        let code = match &refusal {
            Error::Aws { code, .. } => code.as_str(),
            _ => "",
        };
        match code {
            "InvalidTagException" | "InvalidUsageAllocationsException" => {
                match self.state.refused_tag_set() {
                    Some(alone) => self.quarantine_usage(&alone, &answered(&refusal)),
                    None => crate::log::verbose(&format!(
                        "MeterUsage answered {code} for the {} record of the hour starting {}; trying half of its {} tag sets to find the one AWS refuses",
                        bucket.dimension,
                        hour_text(bucket.hour),
                        bucket.usage.len()
                    )),
                }
                Step::Settled
            }
            "InvalidUsageDimensionException" => {
                if let Some(record) = self.state.refused_record() {
                    self.quarantine_usage(&record, &answered(&refusal));
                }
                Step::Settled
            }
            "CustomerNotEntitledException" => {
                self.state.return_in_flight();
                self.not_entitled(bucket, refusal)
            }
            _ => {
                self.state.return_in_flight();
                self.hold(bucket, refusal.to_string());
                Step::Settled
            }
        }
    }

    /// AWS says the buyer is not entitled (AWS: only a task's first call can get this, §2.3; any
    /// record that gets it is treated alike).
    fn not_entitled(&mut self, bucket: &Bucket, refusal: Error) -> Step {
        match self.on_not_entitled {
            Policy::Stop => {
                self.not_entitled = Some(answered(&refusal));
                Step::Stop(match refusal {
                    Error::Aws { class, call, code, message, request_id, advice } => Error::Aws {
                        class,
                        call,
                        code,
                        message,
                        request_id,
                        advice: format!(
                            "{advice}; mpgate stopped the workload (--on-not-entitled stop; warn keeps it running)"
                        ),
                    },
                    other => other,
                })
            }
            Policy::Warn => {
                self.hold(bucket, format!("{refusal}; the workload keeps running (--on-not-entitled warn)"));
                Step::Settled
            }
        }
    }

    /// Leave `bucket`'s {dimension, hour} for `HOLD`, saying why; the other records go on.
    fn hold(&mut self, bucket: &Bucket, why: String) {
        warn(&format!(
            "the {} record for the hour starting {} was not sent: {why}; it is tried again in {} minutes and other usage keeps being sent",
            bucket.dimension,
            hour_text(bucket.hour),
            HOLD.as_secs() / 60
        ));
        self.held.insert((bucket.dimension.clone(), bucket.hour), (Instant::now() + HOLD, why));
    }
}

/// `MeterUsage answered CODE: message (request id …)`: AWS's answer without the refusal's advice.
pub(super) fn answered(refusal: &Error) -> String {
    match refusal {
        Error::Aws { call, code, message, request_id, .. } => {
            let mut s = format!("{call} answered {code}");
            if !message.is_empty() {
                s.push_str(&format!(": {}", crate::error::one_line(message)));
            }
            if let Some(id) = request_id {
                s.push_str(&format!(" (request id {id})"));
            }
            s
        }
        other => other.to_string(),
    }
}

/// An hour (or any time) as RFC 3339 UTC, e.g. `2026-12-06T20:00:00Z`.
/// The `-v` line for a record AWS accepted: what is billed, so a seller sees it without the ledger.
fn sent_line(bucket: &Bucket, record_id: Option<&str>) {
    let hour = hour_text(bucket.hour);
    let id = record_id.unwrap_or("none");
    crate::log::emit(
        crate::log::Level::Verbose,
        &format!(
            "MeterUsage sent: dimension {}, hour {hour}, quantity {}, record id {id}",
            bucket.dimension,
            bucket.total()
        ),
        &[
            ("event", "meter_usage_sent".into()),
            ("dimension", bucket.dimension.as_str().into()),
            ("hour", hour.as_str().into()),
            ("quantity", bucket.total().into()),
            ("record_id", record_id.into()),
        ],
    );
}

pub(super) fn hour_text(secs: u64) -> String {
    let t = aws_smithy_types::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
    t.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_else(|_| secs.to_string())
}
