//! The verdict: the only code that can mint `Entitled`, which the exec step requires.
//!
//! Pipeline (read top to bottom): baked identity → product choice → region → credentials →
//! the pricing model's AWS call → verified answer → `Entitled`. Every step that cannot prove
//! entitlement returns an `Error`; there is no switch that skips one.
#![forbid(unsafe_code)]

pub mod contract;
pub mod custom;
#[doc(hidden)]
pub mod fuzzing;
pub mod hourly;
pub mod jwt;
pub mod nonce;
mod triage;

use crate::aws::Clients;
use crate::error::Error;
use crate::identity::{self, PricingModel};
use crate::platform::{self, CredentialSource, Env, FoundRegion};
use aws_credential_types::provider::SharedCredentialsProvider;
use std::cell::RefCell;
use std::time::{Duration, Instant};

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

/// The start-up deadline shared by every step.
#[derive(Debug)]
pub struct Deadline {
    start: Instant,
    total: Duration,
}

impl Deadline {
    /// Starts now.
    pub fn new(total: Duration) -> Self {
        Deadline { start: Instant::now(), total }
    }
    /// Time left.
    pub fn remaining(&self) -> Duration {
        self.total.saturating_sub(self.start.elapsed())
    }
    /// The whole budget.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// After a transient failure of `call`'s attempt `attempt`: record it, then sleep the backoff, or
    /// give up with `Error::Deadline` when the backoff would not fit in the time left. The one retry
    /// policy of every start-up call (RegisterUsage, MeterUsage dry run, CheckoutLicense).
    pub async fn pause_or_give_up(
        &self,
        progress: &Progress,
        call: &str,
        attempt: u32,
        transient: &str,
    ) -> Result<(), Error> {
        let last = format!("{call} attempt {attempt}: {transient}");
        progress.set(last.clone());
        let wait = hourly::full_jitter(attempt);
        if self.remaining() <= wait {
            return Err(Error::Deadline { secs: self.total.as_secs(), last });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// The step in progress, so a deadline refusal can say where it was stuck.
#[derive(Debug, Default)]
pub struct Progress(RefCell<String>);

impl Progress {
    /// Record the current step.
    /// Record the current step; each step is also a `-v` line.
    pub fn set(&self, step: String) {
        crate::log::verbose(&step);
        *self.0.borrow_mut() = step;
    }
    fn get(&self) -> String {
        self.0.borrow().clone()
    }
}

/// Prove entitlement for the product chosen by `selection` (a baked code, or the default).
pub async fn prove(env: &dyn Env, selection: Option<&str>, deadline: &Deadline) -> Result<Entitled, Error> {
    let progress = Progress::default();
    match tokio::time::timeout(deadline.remaining(), prove_steps(env, selection, deadline, &progress)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Deadline {
            secs: deadline.total().as_secs(),
            last: format!("{} did not finish", progress.get()),
        }),
    }
}

async fn prove_steps(
    env: &dyn Env,
    selection: Option<&str>,
    deadline: &Deadline,
    progress: &Progress,
) -> Result<Entitled, Error> {
    let baked = identity::baked()?;
    let product = baked.select(selection)?;
    let clients = Clients::new()?;
    let imds = clients.imds();
    let contract = baked.pricing_model == PricingModel::Contract;
    progress.set("finding the region".into());
    let region = match crate::license::anywhere::region(env).filter(|_| contract) {
        Some(r) => r,
        None => platform::region::find(env, Some(&imds)).await?,
    };
    crate::log::verbose(&format!("region {} (from {})", region.name, region.source));
    progress.set("loading credentials".into());
    // Contract pricing may use a License Manager license token (Containers Anywhere).
    let token = contract
        .then(|| crate::license::anywhere::LicenseTokenProvider::from_env(env, &clients, &region.name))
        .flatten()
        .map(SharedCredentialsProvider::new);
    let config = clients.provider_config(&region.name);
    let creds = platform::credentials::load_with(env, &config, imds, token.clone()).await?;
    crate::log::verbose(&format!("credentials from {}", creds.source));
    let hostname = nonce::hostname();
    let ctx = hourly::Context { region: &region, source: creds.source, hostname: &hostname };
    let proof = match baked.pricing_model {
        PricingModel::Hourly | PricingModel::Monthly => {
            let client = clients.metering(env, &region.name, creds.credentials.clone());
            Proof::Registered(hourly::register(&client, product, &ctx, deadline, progress).await?)
        }
        PricingModel::CustomMetering => {
            let client = clients.metering(env, &region.name, creds.credentials.clone());
            Proof::Probed(custom::probe(&client, product, baked.dimensions, &ctx, deadline, progress).await?)
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
                contract::checkout(&client, product, baked.entitlements, signer, &ctx, deadline, progress).await?;
            Proof::Licensed(Box::new(licensed))
        }
    };
    Ok(Entitled {
        product_code: product.code,
        tier: product.tier,
        pricing_model: baked.pricing_model,
        region,
        source: creds.source,
        proof,
    })
}
