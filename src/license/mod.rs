//! Contract seats after admission: giving the seat back (`CheckInLicense`), keeping it out
//! (`ExtendLicenseConsumption`), and the entitlements file the workload reads.
//!
//! Seat policy (docs/contract.md): a build whose entitlements count seats (a `Count` unit) refuses
//! `exec` before any AWS call: a gate that is gone cannot hold a seat, so under `exec` a seat would
//! limit nothing. A build without one may `exec`, which checks its checkout in right before the
//! execve. `supervise` holds the seat: extends it when half its lifetime is gone, and checks it in
//! once the workload has exited (a SIGTERM is forwarded; the workload keeps the seat while it shuts
//! down, and is killed after `--stop-grace` if it has not exited). A supervisor killed with SIGKILL
//! leaks the seat for at most one lifetime (AWS: 60 minutes), after which License Manager returns
//! it. While it holds the seat, `supervise` also re-checks the license (`recheck`).
//! Must not: decide entitlement (that is `entitlement::contract`) or block supervise's signal
//! forwarding and reaping: every wait here is async and bounded.
#![forbid(unsafe_code)]

pub mod anywhere;
pub mod handover;
pub mod recheck;

use crate::aws::Clients;
use crate::entitlement::contract::{Allowed, Licensed};
use crate::entitlement::pacing::full_jitter;
use crate::entitlement::{classify, Context, Entitled, Verdict};
use crate::error::Error;
use crate::identity::{BakedEntitlement, BakedProduct};
use crate::platform::{credentials, CredentialSource, Env, FoundRegion};
use crate::supervise::stop::Policy;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use handover::Live;
use recheck::Watch;
use std::time::{Duration, Instant, SystemTime};

/// The baked entitlements that count seats (unit `Count`): what a running container must hold.
pub fn counted(entitlements: &[BakedEntitlement]) -> Vec<&'static str> {
    entitlements.iter().filter(|e| e.unit == "Count").map(|e| e.name).collect()
}

/// What each mode does with the seat of a contract build with these entitlements, as `mpgate
/// version`, `mpgate check` and docs/contract.md say it.
pub fn seat_note(entitlements: &[BakedEntitlement]) -> String {
    let counted = counted(entitlements);
    if counted.is_empty() {
        return "this build checks out no counted entitlement: mpgate exec checks its checkout in before the workload starts; mpgate supervise holds it while the workload runs".into();
    }
    format!(
        "this build counts seats ({}): mpgate exec refuses to start, use mpgate supervise, which holds the seat while the workload runs and checks it in once the workload has exited",
        counted.join(", ")
    )
}

/// How long a check-in may take before mpgate gives up (the seat then returns after its lifetime).
pub const CHECK_IN_BUDGET: Duration = Duration::from_secs(10);

/// Where a contract checkout's seat is. The entitlements file carries it as `seat` (docs/contract.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seat {
    /// Out with this gate: `supervise` extends it until the workload exits.
    Held,
    /// Back in the license's pool: checked in (by `exec` before the execve, by `supervise` at the
    /// end), or expired without an extension.
    Returned,
}

impl Seat {
    /// The word in the entitlements file.
    pub fn as_str(self) -> &'static str {
        match self {
            Seat::Held => "held",
            Seat::Returned => "returned",
        }
    }
}

/// A checked-out seat and what it takes to extend or return it.
pub struct Lease<'a> {
    env: &'a dyn Env,
    product: &'static BakedProduct,
    region: FoundRegion,
    source: CredentialSource,
    token: String,
    lifetime: Duration,
    seed: Option<Credentials>,
    refreshing: Option<SharedCredentialsProvider>,
    clients: Option<Clients>,
    client: Option<(aws_sdk_licensemanager::Client, Option<SystemTime>)>,
    seat: Seat,
    extended_at: Instant,
    license_arn: String,
    watch: Option<Watch>,
}

impl<'a> Lease<'a> {
    /// The seat of a contract checkout; `None` for the other pricing models.
    pub fn of(entitled: &Entitled, env: &'a dyn Env) -> Option<Lease<'a>> {
        let licensed: &Licensed = entitled.licensed()?;
        let baked = crate::identity::baked().ok()?;
        let product = baked.select(Some(entitled.product_code())).ok()?;
        Some(Lease {
            env,
            product,
            region: entitled.region().clone(),
            source: entitled.credential_source(),
            token: licensed.consumption_token.clone(),
            lifetime: licensed.lifetime,
            seed: Some(licensed.signer.credentials.clone()),
            refreshing: licensed.signer.refreshing.clone(),
            clients: None,
            client: None,
            seat: Seat::Held,
            extended_at: Instant::now(),
            license_arn: licensed.license_arn.clone(),
            watch: None,
        })
    }

    /// Re-check the license while the seat is held: every `every` (default: AWS's 15 minutes, or
    /// once a day with a license token), keeping `live` current and applying `on_lost`.
    pub fn watch(&mut self, every: Option<Duration>, on_lost: Policy, checked_out: Vec<Allowed>, live: Option<Live>) {
        let Ok(baked) = crate::identity::baked() else { return };
        let every = every.unwrap_or(if self.source == CredentialSource::LicenseToken {
            recheck::EVERY_ON_PREMISES
        } else {
            recheck::EVERY
        });
        let policy = match on_lost {
            Policy::Stop => "stop the workload",
            Policy::Warn => "warn and keep it running",
        };
        crate::log::verbose(&format!(
            "supervise re-checks license {} every {} (±10 %); on a lost license: {policy}",
            self.license_arn,
            recheck::human(every)
        ));
        self.watch = Some(Watch::new(every, on_lost, baked.entitlements, checked_out, live));
    }

    /// When the next extension is due: half the seat's lifetime after the last checkout or extension.
    fn extend_due(&self) -> Instant {
        self.extended_at + self.lifetime / 2
    }

    /// Give the seat back, retrying transient errors within `budget`. A seat AWS no longer knows
    /// (`ResourceNotFoundException`: already checked in or expired) counts as returned.
    pub async fn check_in(&mut self, budget: Duration) -> Result<(), String> {
        if self.seat == Seat::Returned {
            return Ok(());
        }
        let until = Instant::now() + budget;
        for attempt in 1u32.. {
            let client = self.client().await?;
            let result = client.check_in_license().license_consumption_token(&self.token).send().await;
            let ctx = Context { region: &self.region, source: self.source, hostname: "" };
            let verdict = match result {
                Ok(_) => Verdict::Admit(()),
                Err(e) => match classify::license_manager(e, "CheckInLicense", self.product, &ctx) {
                    Verdict::Refuse(Error::Aws { code, .. }) if code == "ResourceNotFoundException" => {
                        Verdict::Admit(())
                    }
                    other => other,
                },
            };
            let transient = match verdict {
                Verdict::Admit(()) => {
                    self.seat = Seat::Returned;
                    return Ok(());
                }
                Verdict::Refuse(final_error) => return Err(final_error.to_string()),
                Verdict::Retry { why: transient, .. } => transient,
            };
            let wait = full_jitter(attempt, Duration::from_millis(250), Duration::from_secs(2));
            if Instant::now() + wait >= until {
                return Err(format!("CheckInLicense attempt {attempt}: {transient}"));
            }
            tokio::time::sleep(wait).await;
        }
        Err("retry loop ended".into())
    }

    /// Keep the seat out (supervise checks it in once the workload has exited) and re-check the
    /// license on the watch's cadence. Returns only when a re-check finds the license lost under
    /// `--on-license-lost stop`: the refusal line for supervise to stop the workload with.
    pub async fn hold(&mut self) -> String {
        let mut attempt = 0u32;
        let mut extend_at = self.extend_due();
        let mut recheck_at = self.watch.as_ref().map(|w| Instant::now() + w.next_wait());
        loop {
            let recheck_due = recheck_at.unwrap_or_else(Instant::now);
            tokio::select! {
                () = tokio::time::sleep_until(extend_at.into()), if self.seat == Seat::Held => {
                    attempt = self.extend_step(attempt).await;
                    extend_at = if attempt == 0 {
                        self.extend_due()
                    } else {
                        Instant::now() + full_jitter(attempt, Duration::from_secs(1), Duration::from_secs(60))
                    };
                }
                () = tokio::time::sleep_until(recheck_due.into()), if recheck_at.is_some() => {
                    if let Some(lost) = self.recheck().await {
                        return lost;
                    }
                    recheck_at = self.watch.as_ref().map(|w| Instant::now() + w.next_wait());
                }
                // A seat gone back to the pool and no re-check: nothing left to do until the end.
                else => return std::future::pending().await,
            }
        }
    }

    /// One extension; returns the count of failed attempts in a row (0 after a success).
    async fn extend_step(&mut self, attempt: u32) -> u32 {
        match self.extend().await {
            Ok(()) => 0,
            Err(why) if self.extended_at.elapsed() < self.lifetime => {
                crate::log::verbose(&format!("ExtendLicenseConsumption failed, retrying: {why}"));
                attempt + 1
            }
            Err(why) => {
                // The seat has gone back to the pool: the workload keeps running (the contract
                // gates starts and the re-check), and exit still tries a check-in.
                warn(&format!("could not extend the license seat ({why}); it has returned to the pool"));
                self.seat = Seat::Returned;
                if let Some(live) = self.watch.as_mut().and_then(|w| w.live.as_mut()) {
                    live.set_seat(Seat::Returned);
                }
                attempt + 1
            }
        }
    }

    async fn extend(&mut self) -> Result<(), String> {
        let client = self.client().await?;
        let result = client.extend_license_consumption().license_consumption_token(&self.token).send().await;
        let verdict = match result {
            Ok(out) => {
                if let Some(t) = out.license_consumption_token() {
                    self.token = t.to_string();
                }
                self.extended_at = Instant::now();
                crate::log::verbose(&format!(
                    "license seat extended until {}",
                    out.expiration().unwrap_or("an unspecified time")
                ));
                Verdict::Admit(())
            }
            Err(e) => {
                let ctx = Context { region: &self.region, source: self.source, hostname: "" };
                classify::license_manager(e, "ExtendLicenseConsumption", self.product, &ctx)
            }
        };
        match verdict {
            Verdict::Admit(()) => Ok(()),
            Verdict::Retry { why: transient, .. } => Err(transient),
            Verdict::Refuse(final_error) => Err(final_error.to_string()),
        }
    }

    /// A License Manager client with credentials valid for at least five more minutes: first the
    /// ones the checkout used, then a fresh load from the same chain; with a license token, one
    /// client whose provider refreshes itself.
    async fn client(&mut self) -> Result<aws_sdk_licensemanager::Client, String> {
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
        if let Some(provider) = &self.refreshing {
            // A license token: the SDK asks the provider again before the credentials expire.
            let client = clients.license_manager(self.env, &self.region.name, provider.clone());
            self.client = Some((client.clone(), None));
            return Ok(client);
        }
        let creds = match self.seed.take() {
            Some(c) if fresh(&c.expiry()) => c,
            _ => {
                credentials::load(self.env, clients, &self.region.name)
                    .await
                    .map_err(|e| format!("loading credentials: {e}"))?
                    .credentials
            }
        };
        let expiry = creds.expiry();
        let client = clients.license_manager(self.env, &self.region.name, creds);
        self.client = Some((client.clone(), expiry));
        Ok(client)
    }
}

fn warn(m: &str) {
    crate::log::warn(m);
}

#[cfg(test)]
mod tests {
    use super::{counted, seat_note, Seat};
    use crate::identity::BakedEntitlement;

    #[test]
    fn only_count_entitlements_are_seats_and_the_note_says_exec_refuses_them() {
        let e = |name, unit, value| BakedEntitlement { name, unit, value, admits: false };
        let features = [e("BasicTier", "None", None), e("Storage", "Gigabytes", Some(5))];
        assert!(counted(&features).is_empty());
        assert!(seat_note(&features).contains("no counted entitlement"), "{}", seat_note(&features));
        let seats = [e("BasicTier", "None", None), e("Seats", "Count", Some(1)), e("Users", "Count", Some(2))];
        assert_eq!(counted(&seats), ["Seats", "Users"]);
        let note = seat_note(&seats);
        assert!(note.contains("(Seats, Users): mpgate exec refuses to start, use mpgate supervise"), "{note}");
    }

    #[test]
    fn the_seat_words_the_workload_reads_are_fixed() {
        assert_eq!(Seat::Held.as_str(), "held");
        assert_eq!(Seat::Returned.as_str(), "returned");
    }
}
