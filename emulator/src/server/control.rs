//! The emulator's own HTTP control surface for sellers' CI, where tests cannot call the Rust API.
//! Ledgers: `GET /_emulator/requests`, `/_emulator/registrations`, `/_emulator/metering`,
//! `/_emulator/seats`. Knobs: `POST /_emulator/faults` (`{"op","fault","count"}` or
//! `{"op","fault","probability"[,"seed"]}`, answering `{"seed"}`: the seed of the random draws),
//! `POST /_emulator/faults/clear` (`{"op"}`, "*" = all), `POST /_emulator/release` (answer every
//! call held by the `Held` fault),
//! `GET|POST /_emulator/clock` (`{"advance_secs"}` or `{"set_unix"}`), `POST /_emulator/quotas`
//! (`{"enabled"}`), `POST /_emulator/dry-run` (`{"answer": "Empty"|"RecordId"|"DryRunOperationError"|null}`),
//! `POST /_emulator/dry-run-checks` (`{"checks": "Full"|"FullFirstCall"|"IamOnly"|null}`),
//! `POST /_emulator/subscriptions` (`{"account", "product_code", "subscribed": true|false}`),
//! `POST /_emulator/checkout-commit` (`{"ms": 2000}` or `{"ms": null}`: every license's `checkout_commit_ms`),
//! `GET /_emulator/licenses` (every license as it stands now), `POST /_emulator/license` (a license in the world file's form: replaces the one with its ARN, or adds it).
//! Environment: `GET /_emulator/env/<workload>?dir=DIR`.

use crate::model::fault::Fault;
use crate::model::world::{DryRunAnswer, DryRunChecks, License};
use crate::services::license;
use crate::state::Shared;
use crate::wire::proto::{plain, Outcome};
use crate::wire::request::Incoming;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

#[derive(Deserialize)]
struct FaultRequest {
    op: String,
    /// Serde form of `Fault`: "Throttle", {"Status":[503,"X"]}, {"Token":"AlgNone"}, {"Delay":{"secs":1,"nanos":0}}.
    fault: Fault,
    #[serde(default = "one")]
    count: u32,
    /// When present, a standing rule firing with this probability instead of `count` queued faults.
    #[serde(default)]
    probability: Option<f64>,
    /// Restarts the random rules' draws from this seed (to repeat a run).
    #[serde(default)]
    seed: Option<u64>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct OpRequest {
    op: String,
}

#[derive(Deserialize)]
struct ClockRequest {
    #[serde(default)]
    advance_secs: Option<f64>,
    #[serde(default)]
    set_unix: Option<f64>,
    /// How far the service's wall clock (answers' `Date`, SigV4's 5-minute window) runs ahead of
    /// real time, in seconds; negative is behind.
    #[serde(default)]
    wall_skew_secs: Option<i64>,
}

#[derive(Deserialize)]
struct QuotaRequest {
    enabled: bool,
    /// Rates (requests/s) by operation, over the world's `quotas.rates`.
    #[serde(default)]
    rates: std::collections::BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct CommitRequest {
    ms: Option<u64>,
}

#[derive(Deserialize)]
struct DryRunRequest {
    answer: Option<DryRunAnswer>,
}

#[derive(Deserialize)]
struct DryRunChecksRequest {
    checks: Option<DryRunChecks>,
}

#[derive(Deserialize)]
struct SubscriptionRequest {
    account: String,
    product_code: String,
    subscribed: bool,
}

fn json(v: String) -> Outcome {
    Outcome::new(200, "application/json", v)
}

/// `GET /_emulator/env/<workload>?dir=DIR`: writes the workload's token files into DIR and
/// answers its container environment as `[["K","V"], …]` (what `mpgate-emulator env` prints).
fn workload_env(shared: &Shared, id: &str, req: &Incoming) -> Outcome {
    let dir = form_urlencoded::parse(req.query.as_bytes()).find(|(k, _)| k == "dir").map(|(_, v)| v.into_owned());
    let Some(dir) = dir else {
        return plain(400, "dir query parameter required");
    };
    let dir = std::path::PathBuf::from(dir).join(id);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return plain(500, &format!("{}: {e}", dir.display()));
    }
    match super::env::workload_env(shared, id, &dir) {
        Ok(env) => json(serde_json::to_string(&env).unwrap_or_default()),
        Err(e) => plain(404, &e.to_string()),
    }
}

fn clock_json(shared: &Shared) -> Outcome {
    let inner = shared.lock();
    let now = inner.clock.now();
    json(
        json!({
            "now_unix": crate::model::clock::unix_millis_signed(now) as f64 / 1000.0,
            "now": crate::model::clock::rfc3339(now),
            "offset_secs": inner.clock.offset_millis() as f64 / 1000.0,
        })
        .to_string(),
    )
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Box<Outcome>> {
    serde_json::from_slice(body).map_err(|e| Box::new(plain(400, &format!("bad control request: {e}"))))
}

pub fn handle(shared: &Shared, req: &Incoming) -> Outcome {
    let r = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/_emulator/requests") => Ok(json(serde_json::to_string(&shared.lock().ledger).unwrap_or_default())),
        ("GET", "/_emulator/registrations") => {
            Ok(json(serde_json::to_string(&shared.lock().registrations).unwrap_or_default()))
        }
        ("GET", "/_emulator/metering") => Ok(json(serde_json::to_string(&shared.lock().metering).unwrap_or_default())),
        ("GET", "/_emulator/seats") => {
            let mut inner = shared.lock();
            license::expire_seats(&mut inner);
            Ok(json(serde_json::to_string(&inner.seats).unwrap_or_default()))
        }
        ("POST", "/_emulator/faults") => parse::<FaultRequest>(&req.body).map(|f| {
            let mut inner = shared.lock();
            if let Some(seed) = f.seed {
                inner.faults.seed_random(seed);
            }
            match f.probability {
                Some(p) => inner.faults.push_random(&f.op, f.fault, p),
                None => (0..f.count).for_each(|_| inner.faults.push(&f.op, f.fault.clone())),
            }
            json(json!({ "seed": inner.faults.random_seed() }).to_string())
        }),
        ("POST", "/_emulator/release") => {
            shared.release_held();
            Ok(json("{}".into()))
        }
        ("POST", "/_emulator/faults/clear") => parse::<OpRequest>(&req.body).map(|r| {
            shared.lock().faults.clear(&r.op);
            json("{}".into())
        }),
        ("GET", "/_emulator/clock") => Ok(clock_json(shared)),
        ("POST", "/_emulator/clock") => parse::<ClockRequest>(&req.body).map(|c| {
            {
                let mut inner = shared.lock();
                if let Some(t) = c.set_unix {
                    inner.clock.set(crate::model::clock::from_unix_secs(0) + Duration::from_secs_f64(t.max(0.0)));
                }
                if let Some(s) = c.advance_secs {
                    inner.clock.advance(Duration::from_secs_f64(s.max(0.0)));
                }
                if let Some(skew) = c.wall_skew_secs {
                    inner.wall_skew_secs = skew;
                }
            }
            clock_json(shared)
        }),
        ("POST", "/_emulator/quotas") => parse::<QuotaRequest>(&req.body).and_then(|q| {
            if let Some((op, rate)) = q.rates.iter().find(|(_, r)| !(r.is_finite() && **r > 0.0)) {
                let why = format!(
                    "bad control request: quota rate of {op} must be a positive number of requests/s, not {rate}"
                );
                return Err(Box::new(plain(400, &why)));
            }
            let mut inner = shared.lock();
            inner.quotas_enabled = Some(q.enabled);
            inner.quota_rates.extend(q.rates);
            Ok(json("{}".into()))
        }),
        ("POST", "/_emulator/dry-run") => parse::<DryRunRequest>(&req.body).map(|d| {
            shared.lock().dry_run = d.answer;
            json("{}".into())
        }),
        ("POST", "/_emulator/dry-run-checks") => parse::<DryRunChecksRequest>(&req.body).map(|d| {
            shared.lock().dry_run_checks = d.checks;
            json("{}".into())
        }),
        ("POST", "/_emulator/subscriptions") => parse::<SubscriptionRequest>(&req.body).map(|r| {
            shared.lock().subscriptions.insert((r.account, r.product_code), r.subscribed);
            json("{}".into())
        }),
        ("POST", "/_emulator/checkout-commit") => parse::<CommitRequest>(&req.body).map(|c| {
            shared.lock().checkout_commit_ms = c.ms;
            json("{}".into())
        }),
        ("GET", "/_emulator/licenses") => Ok(json(serde_json::to_string(&shared.licenses()).unwrap_or_default())),
        ("POST", "/_emulator/license") => parse::<License>(&req.body).map(|l| {
            shared.lock().license_overrides.insert(l.arn.clone(), l);
            json("{}".into())
        }),
        ("GET", p) if p.starts_with("/_emulator/env/") => Ok(workload_env(shared, &p["/_emulator/env/".len()..], req)),
        _ => Ok(plain(404, "unknown emulator control path")),
    };
    r.unwrap_or_else(|e| *e)
}
