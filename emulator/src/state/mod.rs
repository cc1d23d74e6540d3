//! State layer: everything the services share while the emulator runs. The fixed part (the world,
//! the keys and each workload's setup, decided at start) and, behind one lock, the mutable part
//! (ledgers, fault queues, issued credentials, clock offsets). Locks are never held across an await.
//! Builds on `model` and `wire`; it must not depend on `services` or `server`: it stores and hands
//! out, and never decides an answer.

mod credentials;
mod inner;
mod setup;

pub use credentials::{IssuedCred, Principal, PrincipalKind};
pub use inner::Inner;
pub use setup::{Keys, Setup};

use crate::model::fault::Fault;
use crate::model::variance::Forms;
use crate::model::world::{License, World};
use crate::wire::ids::{random_string, random_upper};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

/// What every handler is given: the fixed world, keys and setup, and the locked mutable part.
pub struct Shared {
    pub world: World,
    pub keys: Keys,
    pub setup: HashMap<String, Setup>,
    pub url: String,
    /// Where the ECS agent endpoints (relative credentials URI, TMDE v4) listen, if anywhere.
    pub ecs_agent: Option<SocketAddr>,
    /// Where the EKS Pod Identity agent (`GET /v1/credentials`) listens, if anywhere.
    pub pod_identity_agent: Option<SocketAddr>,
    /// The variance seed: answers take forms drawn from it (`model::variance`); `None` answers in
    /// the one form of each answer the emulator builds.
    pub variance: Option<u64>,
    /// How many times held answers (`Fault::Held`) were released; a held answer waits for it to grow.
    released: tokio::sync::watch::Sender<u64>,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(
        world: World,
        url: String,
        imds_addrs: &HashMap<String, SocketAddr>,
        ecs_agent: Option<SocketAddr>,
        variance: Option<u64>,
    ) -> io::Result<Shared> {
        let keys = Keys::load(&world)?;
        let mut inner = Inner::default();
        let mut setup = HashMap::new();
        for w in &world.workloads {
            let (s, static_key) = Setup::for_workload(w, &keys, imds_addrs.get(&w.id).copied());
            if let Some(cred) = static_key {
                inner.creds.insert(cred.access_key_id.clone(), cred);
            }
            setup.insert(w.id.clone(), s);
        }
        let released = tokio::sync::watch::Sender::new(0);
        Ok(Shared {
            world,
            keys,
            setup,
            url,
            ecs_agent,
            pod_identity_agent: None,
            variance,
            released,
            inner: Mutex::new(inner),
        })
    }

    /// A poisoned lock only means a handler panicked mid-update; the ledgers are still usable.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The forms of the next answer of draw stream `stream` (an operation, or a part of one's
    /// answer such as the RegisterUsage token) in variance mode; `None` otherwise.
    pub fn forms(&self, stream: &str) -> Option<Forms> {
        let seed = self.variance?;
        let mut inner = self.lock();
        let n = inner.variance_draws.entry(stream.to_string()).or_insert(0);
        let forms = Forms::draw(seed, stream, *n);
        *n += 1;
        Some(forms)
    }

    /// Whether the next connection writes Title-Case header names (variance mode only).
    pub fn title_case_connection(&self) -> bool {
        let Some(seed) = self.variance else {
            return false;
        };
        let mut inner = self.lock();
        inner.variance_connections += 1;
        Forms::title_case_headers(seed, inner.variance_connections)
    }

    pub fn next_fault(&self, op: &str) -> Option<Fault> {
        self.lock().faults.next(op)
    }

    /// A ticket for a held answer (`Fault::Held`), taken before the call takes effect so that a
    /// release that comes at any moment after is not missed.
    pub fn hold_ticket(&self) -> tokio::sync::watch::Receiver<u64> {
        self.released.subscribe()
    }

    /// Let every answer held so far go.
    pub fn release_held(&self) {
        self.released.send_modify(|n| *n += 1);
    }

    /// IAM's denial message if `workload`'s role lacks `action`, as IAM words it, naming the role
    /// the scenario gives the workload (`Workload::role_name`).
    pub fn denied(&self, workload: &str, action: &str) -> Option<String> {
        let w = self.world.workload(workload)?;
        w.denied_actions.iter().any(|a| a == action).then(|| {
            format!(
                "User: arn:aws:sts::{}:assumed-role/{}/{workload} is not authorized to perform: {action} because no identity-based policy allows the {action} action",
                w.account,
                w.role_name()
            )
        })
    }

    /// The license with this ARN as it stands now: the world's, or its run-time replacement.
    pub fn license(&self, arn: &str) -> Option<License> {
        let inner = self.lock();
        inner.license_overrides.get(arn).cloned().or_else(|| self.world.license(arn).cloned())
    }

    /// Every license as it stands now, the world's first (in order), then those added at run time.
    pub fn licenses(&self) -> Vec<License> {
        let inner = self.lock();
        let mut all: Vec<License> =
            self.world.licenses.iter().map(|l| inner.license_overrides.get(&l.arn).unwrap_or(l).clone()).collect();
        let added = inner.license_overrides.values().filter(|o| self.world.license(&o.arn).is_none());
        all.extend(added.cloned());
        all
    }

    /// Whether `account` is subscribed to product `code`: the world's subscriptions, as changed at
    /// run time (`Emulator::set_subscribed`).
    pub fn subscribed(&self, account: &str, code: &str) -> bool {
        let changed = self.lock().subscriptions.get(&(account.to_string(), code.to_string())).copied();
        changed
            .unwrap_or_else(|| self.world.account(account).is_some_and(|a| a.subscriptions.iter().any(|s| s == code)))
    }

    /// Whether `account`'s call of `op` exceeds its quota (always false while quotas are off). One
    /// bucket per account and operation, whatever the product: every product of the account draws
    /// on the same RegisterUsage quota (docs/aws-behaviour.md §2.7).
    pub fn throttled(&self, account: &str, op: &str) -> bool {
        let mut inner = self.lock();
        let rate = inner.quota_rates.get(op).or_else(|| self.world.quotas.rates.get(op)).copied();
        let Some(rate) = rate else {
            return false;
        };
        if !inner.quotas_enabled.unwrap_or(self.world.quotas.enabled) {
            return false;
        }
        !inner.buckets.take(account, op, rate)
    }

    /// The emulated service clock.
    pub fn now(&self) -> std::time::SystemTime {
        self.lock().clock.now()
    }

    /// The service's wall clock: real time plus the configured skew. Deliberately not the business
    /// clock: moving that one (hours of MeterUsage history) must not make every signature "expired",
    /// and a `Date` header from it would make the SDK's clock-skew correction sign with it.
    pub fn wall_now(&self) -> std::time::SystemTime {
        let skew = self.lock().wall_skew_secs;
        let real = std::time::SystemTime::now();
        let d = std::time::Duration::from_secs(skew.unsigned_abs());
        if skew >= 0 {
            real + d
        } else {
            real.checked_sub(d).unwrap_or(real)
        }
    }

    /// Mints fresh session credentials (`ASIA…`) bound to `principal`.
    pub fn issue(&self, principal: Principal) -> IssuedCred {
        let cred = IssuedCred {
            access_key_id: format!("ASIA{}", random_upper(16)),
            secret: random_string(40),
            session_token: Some(format!("IQoJb3JpZ2luX2VjE{}", random_string(180))),
            principal,
        };
        self.lock().creds.insert(cred.access_key_id.clone(), cred.clone());
        cred
    }
}
