//! Shared emulator state: the fixed world and its per-workload setup (tokens, static keys, task
//! ids) decided at start, plus the mutable ledgers, fault queues and issued credentials.
//! Locks are never held across an await.

use crate::model::clock::Clock;
use crate::model::fault::{Fault, FaultQueue};
use crate::model::ledger::{MeteringRecord, Recorded, Registration, Seat};
use crate::model::quota::Buckets;
use crate::model::world::{CredentialKind, DryRunAnswer, World};
use crate::wire::ids::{random_string, random_upper, request_id};
use rand::Rng;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

/// The credential source a principal authenticated with; decides RegisterUsage platform support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    EcsTaskRole,
    Irsa,
    PodIdentity,
    InstanceRole,
    StaticKeys,
    /// Assumed with a License Manager access token (Containers Anywhere).
    LicenseToken,
}

/// Who a credential belongs to; every credential handed out is bound to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: String,
    pub workload: String,
    pub kind: PrincipalKind,
    pub region: String,
}

#[derive(Debug, Clone)]
pub struct IssuedCred {
    pub access_key_id: String,
    pub secret: String,
    /// None for long-term (`AKIA…`) keys.
    pub session_token: Option<String>,
    pub principal: Principal,
}

/// Per-workload facts fixed at start so `workload_env` is stable and the binary can write them.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub ecs_token: Option<String>,
    pub irsa_token: Option<String>,
    pub pod_token: Option<String>,
    pub static_key: Option<String>,
    /// License Manager refresh token (Containers Anywhere).
    pub lm_refresh_token: Option<String>,
    pub task_id: String,
    /// Where this workload's IMDS listens, if it can see one.
    pub imds_addr: Option<SocketAddr>,
    /// The `/v2/credentials/<id>` path id the ECS agent serves this task's role under (the real
    /// agent uses a UUID; the path itself is the secret, there is no authorization header).
    pub ecs_credentials_id: Option<String>,
}

#[derive(Default)]
pub struct Inner {
    pub ledger: Vec<Recorded>,
    pub faults: FaultQueue,
    pub registrations: Vec<Registration>,
    pub creds: HashMap<String, IssuedCred>,
    /// (workload, product code) pairs whose entitlement was checked once already.
    pub registered: HashSet<(String, String)>,
    pub imds_tokens: HashSet<String>,
    pub clock: Clock,
    pub metering: Vec<MeteringRecord>,
    /// (account, ClientToken) → (request fingerprint, MeteringRecordId).
    pub client_tokens: HashMap<(String, String), (String, String)>,
    pub buckets: Buckets,
    /// Runtime overrides of the world's settings.
    pub quotas_enabled: Option<bool>,
    /// How far the service's wall clock (the `Date` header and SigV4's 5-minute window) is ahead of
    /// the real clock, in seconds; negative is behind. Models a client whose clock is off.
    pub wall_skew_secs: i64,
    pub dry_run: Option<DryRunAnswer>,
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
}

pub struct Keys {
    pub emulator: RsaPrivateKey,
    pub attacker: RsaPrivateKey,
    pub products: HashMap<(String, i32), RsaPrivateKey>,
}

pub struct Shared {
    pub world: World,
    pub keys: Keys,
    pub setup: HashMap<String, Setup>,
    pub url: String,
    /// Where the ECS agent endpoints (relative credentials URI, TMDE v4) listen, if anywhere.
    pub ecs_agent: Option<SocketAddr>,
    inner: Mutex<Inner>,
}

fn parse_key(pem: &str, what: &str) -> io::Result<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")))
}

impl Keys {
    pub fn load(world: &World) -> io::Result<Keys> {
        let mut products = HashMap::new();
        for p in &world.products {
            for (v, pem) in &p.signing_keys {
                products.insert((p.code.clone(), *v), parse_key(pem, &format!("key {} v{v}", p.code))?);
            }
        }
        Ok(Keys {
            emulator: parse_key(crate::model::keys::EMULATOR, "emulator key")?,
            attacker: parse_key(crate::model::keys::ATTACKER, "attacker key")?,
            products,
        })
    }
}

impl Shared {
    pub fn new(
        world: World,
        url: String,
        imds_addrs: &HashMap<String, SocketAddr>,
        ecs_agent: Option<SocketAddr>,
    ) -> io::Result<Shared> {
        let keys = Keys::load(&world)?;
        let mut inner = Inner::default();
        let mut setup = HashMap::new();
        for w in &world.workloads {
            let mut s = Setup {
                task_id: hex::encode(rand::thread_rng().gen::<[u8; 16]>()),
                imds_addr: imds_addrs.get(&w.id).copied(),
                ..Setup::default()
            };
            match &w.credential {
                CredentialKind::EcsTaskRole => {
                    s.ecs_token = Some(random_string(48));
                    s.ecs_credentials_id = Some(request_id());
                }
                CredentialKind::Irsa { .. } => {
                    s.irsa_token = Some(crate::wire::tokens::service_account(&keys.emulator, w))
                }
                CredentialKind::PodIdentity => {
                    s.pod_token = Some(crate::wire::tokens::service_account(&keys.emulator, w))
                }
                CredentialKind::StaticKeys => {
                    let cred = IssuedCred {
                        access_key_id: format!("AKIA{}", random_upper(16)),
                        secret: random_string(40),
                        session_token: None,
                        principal: Principal {
                            account: w.account.clone(),
                            workload: w.id.clone(),
                            kind: PrincipalKind::StaticKeys,
                            region: w.region.clone(),
                        },
                    };
                    s.static_key = Some(cred.access_key_id.clone());
                    inner.creds.insert(cred.access_key_id.clone(), cred);
                }
                CredentialKind::LicenseToken { .. } => {
                    s.lm_refresh_token = Some(crate::wire::tokens::refresh_token(&keys.emulator, w))
                }
                CredentialKind::InstanceRole { .. } | CredentialKind::None => {}
            }
            setup.insert(w.id.clone(), s);
        }
        Ok(Shared { world, keys, setup, url, ecs_agent, inner: Mutex::new(inner) })
    }

    /// A poisoned lock only means a handler panicked mid-update; the ledgers are still usable.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn next_fault(&self, op: &str) -> Option<Fault> {
        self.lock().faults.next(op)
    }

    /// IAM's denial message if `workload`'s role lacks `action`, as IAM words it.
    pub fn denied(&self, workload: &str, action: &str) -> Option<String> {
        let w = self.world.workload(workload)?;
        w.denied_actions.iter().any(|a| a == action).then(|| {
            format!(
                "User: arn:aws:sts::{}:assumed-role/{}-role/{workload} is not authorized to perform: {action} because no identity-based policy allows the {action} action",
                w.account, w.id
            )
        })
    }

    /// Whether `account`'s call of `op` exceeds its quota (always false while quotas are off).
    pub fn throttled(&self, account: &str, op: &str) -> bool {
        let mut inner = self.lock();
        let Some(rate) = self.world.quotas.rates.get(op).copied() else {
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
