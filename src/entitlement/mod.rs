//! The verdict: the only code that can mint `Entitled`, which the exec step requires.
//!
//! Pipeline (read top to bottom): baked identity → product choice → region → credentials →
//! the pricing model's AWS call → verified answer → `Entitled`. Every step that cannot prove
//! entitlement returns an `Error`; there is no switch that skips one.
#![forbid(unsafe_code)]

pub mod classify;
pub mod contract;
pub mod custom;
#[doc(hidden)]
pub mod fuzzing;
pub mod hourly;
pub(crate) mod iso8601;
pub mod jwt;
pub mod nonce;
pub(crate) mod pacing;
pub(crate) mod triage;
pub(crate) mod validity;
mod verdict;

pub use classify::Context;
pub use verdict::Verdict;

use crate::aws::Clients;
use crate::error::Error;
use crate::identity::{self, PricingModel};
use crate::platform::{self, CredentialSource, Env, FoundRegion};
use aws_credential_types::provider::SharedCredentialsProvider;
use std::cell::{Cell, RefCell};
use std::time::Duration;
use tokio::time::Instant;

/// Proof that this start is entitled. Fields are private and there is no public constructor:
/// only `prove` makes one, and `exec::exec` consumes one.
#[derive(Debug)]
pub struct Entitled {
    product_code: &'static str,
    tier: &'static str,
    pricing_model: PricingModel,
    region: FoundRegion,
    source: CredentialSource,
    proof: Proof,
}

/// What AWS answered, per pricing model.
#[derive(Debug)]
pub enum Proof {
    /// Hourly and monthly: the verified RegisterUsage answer.
    Registered(hourly::Registered),
    /// Custom metering: the MeterUsage dry runs that passed.
    Probed(custom::Probed),
    /// Contract pricing: the CheckoutLicense answer (holds a seat until checked in).
    /// Boxed: a checkout carries far more than the other answers.
    Licensed(Box<contract::Licensed>),
}

impl Entitled {
    /// The verified product code.
    pub fn product_code(&self) -> &'static str {
        self.product_code
    }
    /// The tier baked for that code.
    pub fn tier(&self) -> &'static str {
        self.tier
    }
    /// The pricing model of this build.
    pub fn pricing_model(&self) -> PricingModel {
        self.pricing_model
    }
    /// Region of the call and its source.
    pub fn region(&self) -> &FoundRegion {
        &self.region
    }
    /// Source of the signing credentials.
    pub fn credential_source(&self) -> CredentialSource {
        self.source
    }
    /// The verified RegisterUsage answer (hourly and monthly pricing only).
    pub fn registration(&self) -> Option<&hourly::Registered> {
        match &self.proof {
            Proof::Registered(r) => Some(r),
            Proof::Probed(_) | Proof::Licensed(_) => None,
        }
    }
    /// The checkout (contract pricing only).
    pub fn licensed(&self) -> Option<&contract::Licensed> {
        match &self.proof {
            Proof::Licensed(l) => Some(l.as_ref()),
            _ => None,
        }
    }
    /// What AWS answered.
    pub fn proof(&self) -> &Proof {
        &self.proof
    }
}

/// The start-up deadline shared by every step, and the pacing state of the start's retries.
#[derive(Debug)]
pub struct Deadline {
    /// tokio's clock (the real one outside tests), so tests can run the pacing on a paused clock.
    start: Instant,
    total: Duration,
    /// Whether a pause has already been cut short for a last attempt.
    cut: Cell<bool>,
    /// Failed attempts in a row that did not reach the service (`pacing::unreached_pause`).
    unreached: Cell<u32>,
    /// The stop signal that arrived (`signals::prove_or_stop`): no further attempt starts.
    stopped: Cell<Option<nix::sys::signal::Signal>>,
}

impl Deadline {
    /// Starts now.
    pub fn new(total: Duration) -> Self {
        Deadline {
            start: Instant::now(),
            total,
            cut: Cell::new(false),
            unreached: Cell::new(0),
            stopped: Cell::new(None),
        }
    }
    /// Start no further attempt: `signal` is stopping the start (the attempt in flight may finish).
    pub fn stop(&self, signal: nix::sys::signal::Signal) {
        self.stopped.set(Some(signal));
    }
    /// Time left.
    pub fn remaining(&self) -> Duration {
        self.total.saturating_sub(self.start.elapsed())
    }
    /// The whole budget.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// After a transient failure of `call`'s attempt `attempt`: record it, then sleep the pause
    /// `pacing` chooses: if the attempt `reached` the service, for the time since the start (so a
    /// second dimension or key version late in a wait goes on with the windows the start has
    /// reached); if not, for the failures in a row that did not reach it. Each pause is a `-v` line
    /// with its length and the time into the start it ends at. The one retry policy of the start-up calls
    /// to AWS Marketplace and License Manager (RegisterUsage, MeterUsage dry run, CheckoutLicense,
    /// GetLicense; the Containers Anywhere token exchange retries on its own, see
    /// `license::anywhere`). A pause that would cross the deadline is cut short, once per start, to
    /// a random point before the last [`LAST_TRY`] (late in a long wait a window is a fifth of the
    /// wait, so giving up instead would forfeit up to that much of the budget; random, so a fleet
    /// started together does not make its last attempts in the same instant). Otherwise, give up
    /// with `Error::Deadline`.
    pub async fn pause_or_give_up(
        &self,
        progress: &Progress,
        call: &str,
        attempt: u32,
        transient: &str,
        reached: bool,
    ) -> Result<(), Error> {
        let last = format!("{call} attempt {attempt}: {transient}");
        progress.failed(last.clone());
        let waited = self.start.elapsed();
        let wait = if reached {
            self.unreached.set(0);
            pacing::pause(waited)
        } else {
            self.unreached.set(self.unreached.get().saturating_add(1));
            pacing::unreached_pause(self.unreached.get())
        };
        let left = self.remaining();
        let wait = if wait < left {
            wait
        } else if left > LAST_TRY && !self.cut.replace(true) {
            (left - LAST_TRY).mul_f64(pacing::unit_random())
        } else {
            return Err(Error::Deadline { secs: self.total.as_secs(), last });
        };
        crate::log::verbose(&format!(
            "{call} attempt {attempt} {}; next attempt in {:.3} s, at {:.3} s into the start",
            if reached { "reached the service" } else { "did not reach the service" },
            wait.as_secs_f64(),
            (waited + wait).as_secs_f64()
        ));
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Make attempts 1, 2, ... of `call` until one's verdict admits (its value) or refuses (the
    /// error); after each `Retry`, pause as `pause_or_give_up` decides.
    pub async fn retry<T>(
        &self,
        progress: &Progress,
        call: &str,
        mut attempt: impl AsyncFnMut(u32) -> Verdict<T>,
    ) -> Result<T, Error> {
        for n in 1u32.. {
            if let Some(signal) = self.stopped.get() {
                return Err(Error::Stopped { signal, seat: String::new() });
            }
            match attempt(n).await {
                Verdict::Admit(value) => return Ok(value),
                Verdict::Refuse(error) => return Err(error),
                Verdict::Retry { why, reached } => self.pause_or_give_up(progress, call, n, &why, reached).await?,
            }
        }
        Err(Error::Internal("retry loop ended".into()))
    }
}

/// Time kept for the last attempt when a pause is cut short by the deadline: enough to connect
/// (the connector's timeout), so that attempt can at least fail with its own error.
pub(crate) const LAST_TRY: Duration = crate::aws::tls::CONNECT_TIMEOUT;

/// The step in progress and the last transient failure, so a deadline refusal can say where it was
/// stuck and why.
#[derive(Debug, Default)]
pub struct Progress {
    step: RefCell<String>,
    failure: RefCell<Option<String>>,
}

impl Progress {
    /// Record the current step; each step is also a `-v` line.
    pub fn set(&self, step: String) {
        crate::log::verbose(&step);
        *self.step.borrow_mut() = step;
    }
    /// Record a transient failure (also the current step).
    fn failed(&self, failure: String) {
        self.set(failure.clone());
        *self.failure.borrow_mut() = Some(failure);
    }
    /// What was still running when the deadline struck, and the failure before it.
    fn stuck(&self) -> String {
        let step = self.step.borrow();
        match self.failure.borrow().as_deref() {
            Some(failure) if failure != step.as_str() => format!("{step} did not finish (after {failure})"),
            _ => format!("{step} did not finish"),
        }
    }
}

/// The nonce RegisterUsage carries.
#[derive(Clone, Copy, Debug)]
pub enum NonceChoice<'a> {
    /// A fresh `mpgate1:` nonce bound to this host and time (`exec`, `supervise`, `check --live`).
    Fresh,
    /// The workload's own nonce, already checked by `nonce::check_requested` (`mpgate pass request`).
    Given(&'a str),
}

/// Prove entitlement for the product chosen by `selection` (a baked code, or the default).
pub async fn prove(env: &dyn Env, selection: Option<&str>, deadline: &Deadline) -> Result<Entitled, Error> {
    prove_with(env, selection, deadline, NonceChoice::Fresh).await
}

/// `prove`, with the RegisterUsage nonce chosen by the caller. A given nonce needs hourly or monthly
/// pricing: the other models make no RegisterUsage call.
pub async fn prove_with(
    env: &dyn Env,
    selection: Option<&str>,
    deadline: &Deadline,
    nonce: NonceChoice<'_>,
) -> Result<Entitled, Error> {
    let progress = Progress::default();
    match tokio::time::timeout(deadline.remaining(), prove_steps(env, selection, deadline, nonce, &progress)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Deadline { secs: deadline.total().as_secs(), last: progress.stuck() }),
    }
}

async fn prove_steps(
    env: &dyn Env,
    selection: Option<&str>,
    deadline: &Deadline,
    nonce: NonceChoice<'_>,
    progress: &Progress,
) -> Result<Entitled, Error> {
    let baked = identity::baked()?;
    let product = baked.select(selection)?;
    let registers = matches!(baked.pricing_model, PricingModel::Hourly | PricingModel::Monthly);
    if matches!(nonce, NonceChoice::Given(_)) && !registers {
        return Err(Error::Usage(format!(
            "this image is built for {} pricing, which makes no RegisterUsage call and has no gate pass",
            baked.pricing_model.as_str()
        )));
    }
    let clients = Clients::new(env)?;
    let contract = baked.pricing_model == PricingModel::Contract;
    progress.set("finding the region".into());
    let region = match crate::license::anywhere::region(env).filter(|_| contract) {
        Some(r) => r,
        None => platform::region::find(env, Some(&clients)).await?,
    };
    crate::log::verbose(&format!("region {} (from {})", region.name, region.source));
    // Endpoint variables that cannot be used are refused before any AWS call, credentials included.
    crate::aws::check_endpoints(env, &region.name).await?;
    progress.set("loading credentials".into());
    // Contract pricing may use a License Manager license token (Containers Anywhere).
    let token = contract
        .then(|| crate::license::anywhere::LicenseTokenProvider::from_env(env, &clients, &region.name))
        .flatten()
        .map(SharedCredentialsProvider::new);
    let creds =
        platform::credentials::load_with(env, &clients, &region.name, token.clone(), &|step| progress.set(step))
            .await?;
    crate::log::verbose(&format!("credentials from {}", creds.source));
    let hostname = nonce::hostname();
    let ctx = Context { region: &region, source: creds.source, hostname: &hostname };
    // A not-entitled refusal names the account AWS judged: the one the credentials came with (STS's
    // AssumedRoleUser ARN for IRSA and a license token, the container endpoint's AccountId on ECS and
    // EKS Pod Identity), so naming it costs no further call.
    let account = creds.credentials.account_id().map(|a| a.as_str().to_string());
    let proof = prove_model(baked, product, &clients, env, &region, &creds, token, &ctx, nonce, deadline, progress)
        .await
        .map_err(|e| match &account {
            Some(a) => e.with_account(a),
            None => e,
        })?;
    Ok(Entitled {
        product_code: product.code,
        tier: product.tier,
        pricing_model: baked.pricing_model,
        region,
        source: creds.source,
        proof,
    })
}

/// The pricing model's entitlement call(s), once region and credentials are known.
#[allow(clippy::too_many_arguments)]
async fn prove_model(
    baked: &identity::Baked,
    product: &'static identity::BakedProduct,
    clients: &Clients,
    env: &dyn Env,
    region: &FoundRegion,
    creds: &platform::credentials::LoadedCredentials,
    token: Option<SharedCredentialsProvider>,
    ctx: &Context<'_>,
    nonce: NonceChoice<'_>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<Proof, Error> {
    let proof = match baked.pricing_model {
        PricingModel::Hourly | PricingModel::Monthly => {
            let client = clients.metering(env, &region.name, creds.credentials.clone());
            Proof::Registered(hourly::register(&client, product, ctx, nonce, deadline, progress).await?)
        }
        PricingModel::CustomMetering => {
            let client = clients.metering(env, &region.name, creds.credentials.clone());
            Proof::Probed(custom::probe(&client, product, baked.dimensions, ctx, deadline, progress).await?)
        }
        PricingModel::Contract => {
            // The license token's provider refreshes itself inside the client; other sources give
            // fixed credentials that `license::Lease` reloads before they expire.
            let refreshing = token.filter(|_| creds.source == CredentialSource::LicenseToken);
            let client = match &refreshing {
                Some(p) => clients.license_manager(env, &region.name, p.clone()),
                None => clients.license_manager(env, &region.name, creds.credentials.clone()),
            };
            let signer = contract::Signer { credentials: creds.credentials.clone(), refreshing };
            let licensed =
                contract::checkout(&client, product, baked.entitlements, signer, ctx, deadline, progress).await?;
            Proof::Licensed(Box::new(licensed))
        }
    };
    Ok(proof)
}

#[cfg(test)]
mod tests {
    use super::{Deadline, Progress, LAST_TRY};
    use crate::error::Error;
    use std::time::Duration;
    use tokio::time::{advance, Instant};

    const S: fn(u64) -> Duration = Duration::from_secs;
    const THROTTLED: &str = "ThrottlingException (HTTP 400)";

    /// How long one `pause_or_give_up` slept on the paused clock, or the refusal's text.
    async fn pause(deadline: &Deadline, call: &str, attempt: u32) -> Result<Duration, String> {
        let t = Instant::now();
        match deadline.pause_or_give_up(&Progress::default(), call, attempt, THROTTLED, true).await {
            Ok(()) => Ok(t.elapsed()),
            Err(Error::Deadline { last, .. }) if t.elapsed().is_zero() => Err(last),
            Err(other) => panic!("unexpected {other:?} after {:?}", t.elapsed()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_retry_is_in_the_seconds_after_the_first() {
        let slept = pause(&Deadline::new(S(300)), "RegisterUsage", 1).await.expect("fits");
        let (first, floor) = (super::pacing::FIRST_RETRY, super::pacing::FLOOR);
        assert!(slept >= first && slept <= first + floor, "slept {slept:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_that_did_not_reach_the_service_is_retried_soon_and_the_throttle_pacing_goes_on() {
        let deadline = Deadline::new(S(300));
        let refused = |attempt| {
            let deadline = &deadline;
            async move {
                let t = Instant::now();
                let why = "cannot connect to 127.0.0.1:9: Connection refused";
                deadline
                    .pause_or_give_up(&Progress::default(), "RegisterUsage", attempt, why, false)
                    .await
                    .expect("fits");
                t.elapsed()
            }
        };
        let ms = Duration::from_millis;
        let first = refused(1).await;
        assert!(first >= ms(250) && first <= ms(500) + ms(1), "slept {first:?}");
        let second = refused(2).await;
        assert!(second >= ms(500) && second <= S(1) + ms(1), "slept {second:?}");
        // Then a throttle, still in the first second or just after: the first retry's pacing, from
        // the start, whatever the failures before it.
        let at = deadline.start.elapsed();
        let slept = pause(&deadline, "RegisterUsage", 3).await.expect("fits");
        let (first_retry, floor) = (super::pacing::FIRST_RETRY, super::pacing::FLOOR);
        if at < first_retry {
            assert!(at + slept >= first_retry && at + slept <= first_retry + floor, "{at:?} + {slept:?}");
        } else {
            assert!(slept >= floor / 2 && slept <= floor + ms(1), "{at:?} + {slept:?}");
        }
        // A throttle ends the run of failures that did not reach the service: the next one starts over.
        let again = refused(4).await;
        assert!(again >= ms(250) && again <= ms(500) + ms(1), "slept {again:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn windows_go_on_across_the_calls_of_one_start() {
        let deadline = Deadline::new(S(300));
        advance(S(100)).await;
        // First failure of this call, 100 s into the start: the 10-20 s upper half of a 20 s window.
        let slept = pause(&deadline, "MeterUsage dry run (dimension b)", 1).await.expect("fits");
        assert!(slept >= S(10) && slept <= S(20), "slept {slept:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_across_the_deadline_is_cut_once_to_a_random_point_before_the_last_try() {
        let mut cuts = Vec::new();
        for _ in 0..20 {
            // 100 s into a 104 s budget, the window is 20 s: every pause would cross the deadline.
            let deadline = Deadline::new(S(104));
            advance(S(100)).await;
            let cut = pause(&deadline, "RegisterUsage", 21).await.expect("one last try");
            // The draw is below 1 s, but tokio's timer rounds a sleep up to the next millisecond, so
            // a draw in its last millisecond sleeps exactly 1 s.
            assert!(cut <= S(4) - LAST_TRY, "cut to {cut:?}");
            assert!(deadline.remaining() >= LAST_TRY, "{:?} left for the last try", deadline.remaining());
            // That was the last try: the next crossing pause gives up at once.
            let refusal = pause(&deadline, "RegisterUsage", 22).await.expect_err("gives up");
            assert_eq!(refusal, format!("RegisterUsage attempt 22: {THROTTLED}"));
            cuts.push(cut);
        }
        cuts.sort();
        cuts.dedup();
        assert!(cuts.len() > 10, "cut points are drawn, not fixed: {cuts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_more_than_the_last_try_left_a_crossing_pause_gives_up() {
        let deadline = Deadline::new(S(100));
        advance(S(100) - LAST_TRY).await;
        pause(&deadline, "CheckoutLicense", 3).await.expect_err("no cut with only LAST_TRY left");
    }

    #[test]
    fn a_refusal_at_the_deadline_names_the_step_and_the_failure_before_it() {
        let progress = Progress::default();
        progress.set("RegisterUsage attempt 1 (key version 2)".into());
        assert_eq!(progress.stuck(), "RegisterUsage attempt 1 (key version 2) did not finish");
        progress.failed(format!("RegisterUsage attempt 4: {THROTTLED}"));
        progress.set("RegisterUsage attempt 5 (key version 2)".into());
        assert_eq!(
            progress.stuck(),
            format!(
                "RegisterUsage attempt 5 (key version 2) did not finish (after RegisterUsage attempt 4: {THROTTLED})"
            )
        );
    }
}
