//! `mpgate check` for custom-metering builds: the entitlement line is one `MeterUsage` dry run per
//! baked dimension, each reported, so an operator sees which dimension AWS refuses (e.g. a dimension
//! the product load form lacks) rather than only the first failure.
//! A dry run records nothing and bills nothing, and AWS answers it as the real record would
//! (`CustomerNotEntitledException`, `AccessDeniedException`), so it is sent with or without `--live`:
//! the subscription and the IAM permission are verified at no cost.
//! Must not: send a real record, or touch the spool (`check` leaves no state behind).
#![forbid(unsafe_code)]

use super::{Check, Status};
use crate::aws::Clients;
use crate::entitlement::{custom, nonce, Context, Deadline, Progress};
use crate::error::{Class, Error};
use crate::identity;
use crate::platform::{self, Env};
use std::time::Duration;

/// Is this a custom-metering build?
pub fn applies() -> bool {
    identity::baked().is_ok_and(|b| b.pricing_model == identity::PricingModel::CustomMetering)
}

/// The `entitlement` check of a custom-metering build, with or without `--live`.
pub async fn entitlement(env: &dyn Env) -> Check {
    let deadline =
        env.get("MPGATE_DEADLINE").and_then(|d| crate::cli::parse_duration(&d).ok()).unwrap_or(Duration::from_secs(30));
    let deadline = Deadline::new(deadline);
    let check = match tokio::time::timeout(deadline.remaining(), probe(env, &deadline)).await {
        Ok(check) => check,
        Err(_) => Check::new(
            "entitlement",
            Status::Unknown,
            format!("the MeterUsage dry runs did not finish within {}s", deadline.total().as_secs()),
        ),
    };
    check.via("MeterUsage with DryRun per baked dimension (records and bills nothing)")
}

async fn probe(env: &dyn Env, deadline: &Deadline) -> Check {
    let setup = async {
        let baked = identity::baked()?;
        let product = baked.select(env.get("MPGATE_PRODUCT_CODE").as_deref())?;
        let clients = Clients::new(env)?;
        let region = platform::region::find(env, Some(&clients)).await?;
        crate::aws::check_endpoints(env, &region.name).await?;
        let creds = platform::credentials::load(env, &clients, &region.name).await?;
        let client = clients.metering(env, &region.name, creds.credentials.clone());
        Ok::<_, Error>((baked.dimensions, product, region, creds.source, client))
    };
    let (dimensions, product, region, source, client) = match setup.await {
        Ok(s) => s,
        Err(e) => return failed(&e, e.to_string()),
    };
    let hostname = nonce::hostname();
    let ctx = Context { region: &region, source, hostname: &hostname };
    let progress = Progress::default();
    let mut passed = Vec::new();
    for d in dimensions {
        if let Err(e) = custom::probe_one(&client, product, d.name, &ctx, deadline, &progress).await {
            let ok = if passed.is_empty() { String::new() } else { format!(" (passed: {})", passed.join(", ")) };
            return failed(&e, format!("MeterUsage dry run for dimension {}: {e}{ok}", d.name));
        }
        passed.push(d.name);
    }
    Check::new(
        "entitlement",
        Status::Pass,
        format!("MeterUsage dry runs admitted product {} for every dimension: {}", product.code, passed.join(", ")),
    )
}

fn failed(e: &Error, summary: String) -> Check {
    let status = if e.class() == Class::CannotVerify { Status::Unknown } else { Status::Fail };
    Check::new("entitlement", status, summary)
}
