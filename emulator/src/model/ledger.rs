//! What the emulator saw and what it billed: the request ledger, the registrations ledger, the
//! metering ledger and the License Manager seat ledger. Tests assert on these ("nothing lost,
//! nothing billed twice, no seat leaked") instead of on emulator internals.

use serde::Serialize;

/// One request as received, with the emulator's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// "RegisterUsage", "AssumeRoleWithWebIdentity", "EcsCredentials", "PodIdentityCredentials",
    /// "EcsTaskMetadata", "ImdsToken", "ImdsRegion", "ImdsRoleName", "ImdsCredentials", ...
    pub op: String,
    pub method: String,
    pub path: String,
    /// Lower-cased names, arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// 0 when no answer was sent (Hang, CloseConnection, unreachable IMDS).
    pub status: u16,
    pub error_code: Option<String>,
    /// The workload of the authenticated principal (or of the IMDS host that was asked).
    pub workload: Option<String>,
    /// SigV4 credential-scope region, when the request carried a parsable signature.
    pub signing_region: Option<String>,
    /// When the answer was decided, real wall-clock milliseconds since the Unix epoch (not the
    /// emulated clock): request rates over time (bench/fleet.py). A client's X-Amz-Date cannot serve,
    /// the SDK shifts it by the clock skew it reads from the one-second `Date` of earlier answers.
    pub at_unix_ms: u64,
}

/// A successful RegisterUsage: what AWS would start billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub workload: String,
    pub product_code: String,
    pub key_version: i32,
    pub nonce: Option<String>,
}

/// One usage record AWS accepted (MeterUsage or BatchMeterUsage): what the seller gets paid for.
/// Idempotent repeats do not add records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeteringRecord {
    pub metering_record_id: String,
    /// "MeterUsage" or "BatchMeterUsage".
    pub op: String,
    pub product_code: String,
    /// The metering workload (MeterUsage); for BatchMeterUsage the seller's calling workload.
    pub workload: String,
    /// The buyer account billed.
    pub account: String,
    pub dimension: String,
    /// The hour the record counts for (Unix seconds, rounded down; AWS dedupes on it).
    pub hour: i64,
    /// The `Timestamp` as sent, in Unix milliseconds.
    pub timestamp_millis: i64,
    pub quantity: i64,
    pub allocations: Vec<Allocation>,
    pub client_token: Option<String>,
}

/// A `UsageAllocation`: part of a record's quantity attributed to a tag set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct Allocation {
    pub quantity: i64,
    /// (Key, Value) pairs in the order sent.
    pub tags: Vec<(String, String)>,
}

/// One License Manager checkout (a seat, or units drawn down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seat {
    pub consumption_token: String,
    pub license_arn: String,
    pub account: String,
    pub workload: String,
    /// "PROVISIONAL" or "PERPETUAL".
    pub checkout_type: String,
    /// (entitlement name, units consumed; 0 for feature/tier entitlements).
    pub entitlements: Vec<(String, i64)>,
    pub node_id: Option<String>,
    /// Emulated-clock Unix seconds.
    pub issued_at: i64,
    pub expires_at: i64,
    pub state: SeatState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SeatState {
    /// A PROVISIONAL checkout still out.
    Out,
    CheckedIn,
    /// A PROVISIONAL checkout that was neither checked in nor extended in time.
    Expired,
    /// PERPETUAL: consumed for good.
    Consumed,
}
