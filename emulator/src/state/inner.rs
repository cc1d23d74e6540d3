//! The mutable half of the state, behind `Shared`'s one lock: the ledgers, the fault queues, the
//! credentials and tokens issued so far, the clocks' offsets and the run-time overrides of the
//! world's settings.

use super::credentials::IssuedCred;
use crate::model::clock::Clock;
use crate::model::fault::FaultQueue;
use crate::model::ledger::{MeteringRecord, Recorded, Registration, Seat};
use crate::model::quota::Buckets;
use crate::model::world::{DryRunAnswer, DryRunChecks, License};
use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub struct Inner {
    pub ledger: Vec<Recorded>,
    pub faults: FaultQueue,
    pub registrations: Vec<Registration>,
    pub creds: HashMap<String, IssuedCred>,
    /// (workload, product code) pairs whose entitlement was checked once already.
    pub registered: HashSet<(String, String)>,
    /// (workload, product code) pairs whose MeterUsage entitlement was checked once already (the
    /// first-call rule, as `registered` is for RegisterUsage).
    pub metered: HashSet<(String, String)>,
    /// Run-time changes to the world's subscriptions: (account, product code) → subscribed.
    pub subscriptions: HashMap<(String, String), bool>,
    pub imds_tokens: HashSet<String>,
    pub clock: Clock,
    pub metering: Vec<MeteringRecord>,
    /// (account, ClientToken) → (request fingerprint, MeteringRecordId).
    pub client_tokens: HashMap<(String, String), (String, String)>,
    pub buckets: Buckets,
    /// Runtime overrides of the world's settings.
    pub quotas_enabled: Option<bool>,
    /// Run-time quota rates (requests/s) by operation, over the world's `quotas.rates`.
    pub quota_rates: HashMap<String, f64>,
    /// How far the service's wall clock (the `Date` header and SigV4's 5-minute window) is ahead of
    /// the real clock, in seconds; negative is behind. Models a client whose clock is off.
    pub wall_skew_secs: i64,
    pub dry_run: Option<DryRunAnswer>,
    /// Runtime override of every product's `dry_run_checks`.
    pub dry_run_checks: Option<DryRunChecks>,
    pub seats: Vec<Seat>,
    /// CheckoutLicense (account, ClientToken) → (request fingerprint, index into `seats`).
    pub checkout_tokens: HashMap<(String, String), (String, usize)>,
    /// License Manager access tokens issued by GetAccessToken → (workload, expiry Unix secs).
    pub lm_access_tokens: HashMap<String, (String, i64)>,
    /// License ARN → (when its last checkout was committed, by which ClientToken).
    pub license_commits: HashMap<String, (std::time::Instant, String)>,
    /// Runtime override of every license's `checkout_commit_ms`.
    pub checkout_commit_ms: Option<u64>,
    /// Real-time expiry of session credentials STS issued, by access key id: past it, signed calls
    /// are refused with `ExpiredTokenException` (clients run on the real clock, so this does too).
    pub cred_expiry: HashMap<String, std::time::SystemTime>,
    /// Lifetime of the session credentials STS issues (None: AWS's default of one hour). Tests
    /// shorten it to watch a client refresh without waiting an hour.
    pub session_lifetime: Option<std::time::Duration>,
    /// Licenses changed or added at run time (by ARN): a renewal, a cancellation, an entitlement
    /// taken away while workloads run. They replace the world's license of the same ARN.
    pub license_overrides: std::collections::BTreeMap<String, License>,
    /// Variance mode: answers drawn so far per draw stream, and connections accepted so far.
    pub variance_draws: HashMap<String, u64>,
    pub variance_connections: u64,
}
