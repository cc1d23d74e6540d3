//! `Emulator`: binds every listener, runs the server on a thread of its own with its own tokio
//! runtime, and on `Drop` stops it with every socket closed. The ledgers and knobs tests use are
//! in `api.rs`.

use super::accept::serve;
use super::listen::Listen;
use super::routing::Site;
use super::{env, tls};
use crate::model::world::World;
use crate::state::Shared;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running emulator. Dropping it stops the server and every listener.
pub struct Emulator {
    pub(super) shared: Arc<Shared>,
    tls_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1:0, runs the server on its own thread with its own tokio runtime, returns once listening.
    pub fn start(world: World) -> io::Result<Emulator> {
        Self::start_on(world, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// As `start`, on a chosen address for the main port (IMDS ports are port 0 on the same host).
    pub fn start_on(world: World, addr: SocketAddr) -> io::Result<Emulator> {
        Self::start_with(world, Listen { main: addr, ..Listen::default() })
    }

    /// As `start`, with every listening address chosen (see `Listen`).
    pub fn start_with(world: World, listen: Listen) -> io::Result<Emulator> {
        let main = TcpListener::bind(listen.main)?;
        let url = format!("http://{}", reachable(main.local_addr()?));
        let mut listeners = vec![(Site::Main, main)];
        let mut addrs = HashMap::new();
        // An IMDS without an address of its own listens beside the main port, so that a main port on
        // an IPv6 address needs no IPv4 address at all; beside a wildcard main port, on loopback.
        let host = if listen.main.ip().is_unspecified() { [127, 0, 0, 1].into() } else { listen.main.ip() };
        let beside = SocketAddr::new(host, 0);
        for w in world.workloads.iter().filter(|w| w.has_imds()) {
            let want = listen.imds.iter().find(|(id, _)| *id == w.id).map_or(beside, |p| p.1);
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
        let pod_identity_agent = match listen.pod_identity_agent {
            Some(a) => {
                let l = TcpListener::bind(a)?;
                let bound = l.local_addr()?;
                listeners.push((Site::PodIdentityAgent, l));
                Some(bound)
            }
            None => None,
        };
        let (tls, tls_url) = match listen.tls_main {
            Some(a) => {
                let l = TcpListener::bind(a)?;
                let tls_url = format!("https://{}", reachable(l.local_addr()?));
                listeners.push((Site::Main, l));
                (Some(tls::tls_acceptor()?), Some(tls_url))
            }
            None => (None, None),
        };
        let tls_index = tls.as_ref().map(|_| listeners.len() - 1);
        let mut shared = Shared::new(world, url, &addrs, ecs_agent, listen.variance)?;
        shared.pod_identity_agent = pod_identity_agent;
        let shared = Arc::new(shared);
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
                    tokio::spawn(serve(l, for_thread.clone(), site, tls));
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

    /// The variance seed the emulator runs with, if any (`Listen::variance`).
    pub fn variance(&self) -> Option<u64> {
        self.shared.variance
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

/// The address a client in the same network namespace dials for a listener bound to `addr`: loopback
/// for the wildcard (`0.0.0.0`, `::`), because the URL goes into the workload's environment, and AWS
/// SDKs accept a plain-HTTP `AWS_CONTAINER_CREDENTIALS_FULL_URI` only on a loopback address.
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}
