//! The Rust control surface of a running `Emulator`: its ledgers (requests, registrations,
//! metering, seats) and its knobs (faults, clocks, quotas, dry-run answers and checks, subscriptions,
//! checkout commit time, session lifetime). `control.rs` offers the same over HTTP.

use super::emulator::Emulator;
use crate::model::fault::Fault;
use crate::model::ledger::{MeteringRecord, Recorded, Registration, Seat};
use crate::model::world::{DryRunAnswer, DryRunChecks, License};
use crate::services::license;
use std::time::{Duration, SystemTime};

impl Emulator {
    /// The request ledger, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().ledger.clone()
    }

    /// The JSON bodies of the ledger's `op` requests, in arrival order. For tests: panics on a body
    /// that is not JSON (every JSON-protocol call the gate makes has one).
    pub fn bodies(&self, op: &str) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|r| r.op == op)
            .map(|r| {
                serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{op} body is not JSON ({e}): {:?}", r.body))
            })
            .collect()
    }

    /// Answers every call held by `Fault::Held` so far (each was carried out when it arrived).
    pub fn release_held(&self) {
        self.shared.release_held();
    }

    /// Queues `fault` for the next call of `op`; faults are consumed FIFO, one per call.
    pub fn inject(&self, op: &str, fault: Fault) {
        self.shared.lock().faults.push(op, fault);
    }

    /// Successful RegisterUsage calls (the billing ledger).
    pub fn registrations(&self) -> Vec<Registration> {
        self.shared.lock().registrations.clone()
    }

    /// Every usage record accepted by MeterUsage and BatchMeterUsage, in acceptance order.
    pub fn metering(&self) -> Vec<MeteringRecord> {
        self.shared.lock().metering.clone()
    }

    /// Every License Manager checkout with its current state (expiry applied as of now).
    pub fn seats(&self) -> Vec<Seat> {
        let mut inner = self.shared.lock();
        license::expire_seats(&mut inner);
        inner.seats.clone()
    }

    /// Each call of `op` suffers `fault` with `probability` (0.0–1.0) until `clear_faults`.
    pub fn inject_random(&self, op: &str, fault: Fault, probability: f64) {
        self.shared.lock().faults.push_random(op, fault, probability);
    }

    /// Restart the draws of the random rules from `seed` (to repeat a run); `random_fault_seed` says
    /// which seed a run used.
    pub fn seed_random_faults(&self, seed: u64) {
        self.shared.lock().faults.seed_random(seed);
    }

    /// The seed the random rules' draws started from.
    pub fn random_fault_seed(&self) -> u64 {
        self.shared.lock().faults.random_seed()
    }

    /// Drops queued faults and random rules for `op` ("*" for every operation).
    pub fn clear_faults(&self, op: &str) {
        self.shared.lock().faults.clear(op);
    }

    /// The emulated service clock (real time plus the offset set by `advance_clock`/`set_clock`).
    pub fn now(&self) -> SystemTime {
        self.shared.now()
    }

    /// Moves the emulated clock forward (MeterUsage windows, seat expiry). SigV4 skew checks and
    /// credential expirations keep using real time.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock.advance(by);
    }

    /// Sets the emulated clock to `to` (it keeps running from there).
    pub fn set_clock(&self, to: SystemTime) {
        self.shared.lock().clock.set(to);
    }

    /// Sets how far the service's wall clock is ahead of real time (negative: behind), as if the
    /// client's clock were off by the opposite: the `Date` header and SigV4's 5-minute window follow it.
    /// Independent of the business clock (`set_clock`, `advance_clock`).
    pub fn set_wall_skew(&self, secs: i64) {
        self.shared.lock().wall_skew_secs = secs;
    }

    /// Sets the lifetime of the session credentials STS issues from now on (AWS: one hour); they
    /// are refused with `ExpiredTokenException` once it has passed on the real clock. Tests shorten it
    /// to watch a client refresh credentials in seconds instead of an hour.
    pub fn set_session_lifetime(&self, lifetime: Duration) {
        self.shared.lock().session_lifetime = Some(lifetime);
    }

    /// Turns the per-account token-bucket quotas on or off, overriding `World::quotas.enabled`.
    pub fn set_quotas(&self, enabled: bool) {
        self.shared.lock().quotas_enabled = Some(enabled);
    }

    /// Sets `op`'s quota rate (requests/s; the bucket holds one second of it, at least one token)
    /// from now on, over `World::quotas.rates`: e.g. to run one product alone on the share of the
    /// RegisterUsage quota another product of the account leaves it.
    pub fn set_quota_rate(&self, op: &str, rate: f64) {
        self.shared.lock().quota_rates.insert(op.to_string(), rate);
    }

    /// Overrides every product's `dry_run` answer (None: back to each product's own).
    pub fn set_dry_run_answer(&self, answer: Option<DryRunAnswer>) {
        self.shared.lock().dry_run = answer;
    }

    /// The license with this ARN as it stands now (the world's, or its run-time replacement).
    pub fn license(&self, arn: &str) -> Option<License> {
        self.shared.license(arn)
    }

    /// Replaces the license with `license.arn` from now on (or adds it): a cancellation (`status`),
    /// a renewal or an expiry (`end`), an entitlement taken away, while workloads hold its seats.
    /// Seats already out stay out.
    pub fn set_license(&self, license: License) {
        self.shared.lock().license_overrides.insert(license.arn.clone(), license);
    }

    /// Overrides every product's `dry_run_checks` (None: back to each product's own).
    pub fn set_dry_run_checks(&self, checks: Option<DryRunChecks>) {
        self.shared.lock().dry_run_checks = checks;
    }

    /// Subscribes `account` to product `code`, or (false) cancels the subscription, from now on: what
    /// a buyer does in the AWS Marketplace console while their tasks run. Tasks whose first call was
    /// accepted keep being served (the first-call rule of RegisterUsage and MeterUsage).
    pub fn set_subscribed(&self, account: &str, code: &str, subscribed: bool) {
        self.shared.lock().subscriptions.insert((account.to_string(), code.to_string()), subscribed);
    }

    /// Overrides every license's `checkout_commit_ms` (None: back to each license's own), the time
    /// within which a second checkout of the same license answers `ConflictException`.
    pub fn set_checkout_commit(&self, ms: Option<u64>) {
        self.shared.lock().checkout_commit_ms = ms;
    }
}
