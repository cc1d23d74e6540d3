//! mpgate-emulator: all of AWS that mpgate touches (Marketplace Metering, STS, the ECS and EKS
//! credential endpoints, ECS task metadata, IMDS) on loopback, for integration tests. It models a
//! world of accounts, products and workloads, and derives every answer from that situation.
//! Test-only: it trusts nothing but also protects nothing (keys are public test keys).

#![forbid(unsafe_code)]

mod control;
mod env;
mod model;
mod server;
mod services;
mod state;
mod wire;

pub use model::demo::{
    ACCOUNT, CONTRACT_LICENSE, CONTRACT_SKU, EXPIRED_REGISTRATION_TOKEN, FREE, IRSA_ROLE, LICENSE_TOKEN_ROLE, METERED,
    PAID, REGISTRATION_TOKEN, SAAS, SELLER_ACCOUNT, UNSUBSCRIBED_ACCOUNT,
};
pub use model::fault::{Fault, TokenMutation};
pub use model::ledger::{Allocation, MeteringRecord, Recorded, Registration, Seat, SeatState};
pub use model::world::{
    Account, BeforeStartAnswer, ClaimStyle, CredentialKind, DryRunAnswer, License, LicenseEntitlement, Platform,
    Product, Quotas, RegistrationToken, Workload, World, MARKETPLACE_FINGERPRINT,
};
pub use model::{clock, keys};
pub use wire::{jwt, sigv4};

use server::Site;
use state::Shared;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Where the emulator listens. The defaults are loopback with ephemeral ports, which any user can
/// bind; the real link-local addresses (`ECS_AGENT`, `IMDS`) need a network namespace of one's own
/// (tests/netns.rs), where the workload's environment then carries no endpoint override at all.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The AWS APIs, STS, the control API and the loopback forms of the container endpoints.
    pub main: SocketAddr,
    /// The ECS agent: `/v2/credentials/<id>` (what `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` points
    /// at) and task metadata v4 `/v4/<container id>`. Off by default.
    pub ecs_agent: Option<SocketAddr>,
    /// Workload id → address of the IMDS it sees, instead of 127.0.0.1:0.
    pub imds: Vec<(String, SocketAddr)>,
    /// A second main port speaking HTTPS (same APIs, same world and ledger), with the test certificate
    /// for 127.0.0.1/localhost from testdata/emulator-tls. Off by default. The container credential
    /// endpoints in `workload_env` keep pointing at the plain port, as ECS's are plain http.
    pub tls_main: Option<SocketAddr>,
}

impl Listen {
    /// Where ECS serves task credentials and metadata (aws-wire.md §6.1).
    pub const ECS_AGENT: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 170, 2)), 80);
    /// Where EC2 serves IMDS.
    pub const IMDS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254)), 80);
}

impl Default for Listen {
    fn default() -> Listen {
        Listen { main: SocketAddr::from(([127, 0, 0, 1], 0)), ecs_agent: None, imds: Vec::new(), tls_main: None }
    }
}

/// A running emulator. Dropping it stops the server and every listener.
pub struct Emulator {
    shared: Arc<Shared>,
    tls_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1:0, runs the server on its own thread with its own tokio runtime, returns once listening.
    pub fn start(world: World) -> io::Result<Emulator> {
        Self::start_on(world, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// As `start`, on a chosen address for the main port (IMDS ports are always 127.0.0.1:0).
    pub fn start_on(world: World, addr: SocketAddr) -> io::Result<Emulator> {
        Self::start_with(world, Listen { main: addr, ..Listen::default() })
    }

    /// As `start`, with every listening address chosen (see `Listen`).
    pub fn start_with(world: World, listen: Listen) -> io::Result<Emulator> {
        let main = TcpListener::bind(listen.main)?;
        let url = format!("http://{}", main.local_addr()?);
        let mut listeners = vec![(Site::Main, main)];
        let mut addrs = HashMap::new();
        for w in world.workloads.iter().filter(|w| w.has_imds()) {
            let want =
                listen.imds.iter().find(|(id, _)| *id == w.id).map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |p| p.1);
            let l = TcpListener::bind(want)?;
            addrs.insert(w.id.clone(), l.local_addr()?);
            listeners.push((Site::Imds(w.id.clone()), l));
        }
        if let Some((id, _)) = listen.imds.iter().find(|(id, _)| !addrs.contains_key(id)) {
            let why = format!("workload {id:?} has no IMDS (not on EC2, no node)");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        }
        let ecs_agent = match listen.ecs_agent {
            Some(a) => {
                let l = TcpListener::bind(a)?;
                let bound = l.local_addr()?;
                listeners.push((Site::EcsAgent, l));
                Some(bound)
            }
            None => None,
        };
        let (tls, tls_url) = match listen.tls_main {
            Some(a) => {
                let l = TcpListener::bind(a)?;
                let tls_url = format!("https://{}", l.local_addr()?);
                listeners.push((Site::Main, l));
                (Some(server::tls_acceptor()?), Some(tls_url))
            }
            None => (None, None),
        };
        let tls_index = tls.as_ref().map(|_| listeners.len() - 1);
        let shared = Arc::new(Shared::new(world, url, &addrs, ecs_agent)?);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let mut tokio_listeners = Vec::new();
        for (site, l) in listeners {
            l.set_nonblocking(true)?;
            let _guard = rt.enter();
            tokio_listeners.push((site, tokio::net::TcpListener::from_std(l)?));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let for_thread = shared.clone();
        // The runtime lives on a thread of its own, so that `Drop` may shut it down even when the
        // handle is dropped inside another runtime (an async test), where dropping one panics.
        let thread = std::thread::Builder::new().name("mpgate-emulator".into()).spawn(move || {
            rt.block_on(async move {
                for (i, (site, l)) in tokio_listeners.into_iter().enumerate() {
                    let tls = if Some(i) == tls_index { tls.clone() } else { None };
                    tokio::spawn(server::serve(l, for_thread.clone(), site, tls));
                }
                // Either an explicit stop or the handle being dropped ends the server.
                let _ = stopped.await;
            });
            // Every socket the emulator opened, listening or connected, is owned by a task on this
            // runtime. Dropping the runtime cancels every task (a `Fault::Hang` answer waits on a
            // future that is dropped, not on a thread) and joins the worker threads, so the sockets
            // are all closed when this thread ends, which `Drop` waits for. `shutdown_background`
            // would return at once and leave the workers to drop the tasks afterwards: a listener
            // could still accept after `Drop` returned, and open connections outlived it.
            drop(rt);
        })?;
        Ok(Emulator { shared, tls_url, stop: Some(stop), thread: Some(thread) })
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// "https://127.0.0.1:PORT" when started with `Listen::tls_main`.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_url.clone()
    }

    /// Writes the workload's token files into `dir` and returns the environment its container
    /// would see (see `env.rs` for the variable names per credential kind).
    pub fn workload_env(&self, workload_id: &str, dir: &Path) -> io::Result<Vec<(String, String)>> {
        env::workload_env(&self.shared, workload_id, dir)
    }

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
        services::license::expire_seats(&mut inner);
        inner.seats.clone()
    }

    /// Each call of `op` suffers `fault` with `probability` (0.0–1.0) until `clear_faults`.
    pub fn inject_random(&self, op: &str, fault: Fault, probability: f64) {
        self.shared.lock().faults.push_random(op, fault, probability);
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

    /// Overrides every product's `dry_run` answer (None: back to each product's own).
    pub fn set_dry_run_answer(&self, answer: Option<DryRunAnswer>) {
        self.shared.lock().dry_run = answer;
    }

    /// Overrides every license's `checkout_commit_ms` (None: back to each license's own), the time
    /// within which a second checkout of the same license answers `ConflictException`.
    pub fn set_checkout_commit(&self, ms: Option<u64>) {
        self.shared.lock().checkout_commit_ms = ms;
    }

    /// The ids of every workload in the world (for writing env files).
    pub fn workload_ids(&self) -> Vec<String> {
        self.shared.world.workloads.iter().map(|w| w.id.clone()).collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
