//! `mpgate supervise`: mpgate stays as the workload's parent and does an init's job — for pricing
//! models that need work after start (hourly metering records, license seats).
//!
//! Duties, as tini does them: forward every catchable asynchronous signal to the workload (or to its
//! process group with `--group`); reap every child that exits, so zombies never pile up when mpgate is
//! PID 1; register as child subreaper when it is not PID 1, so orphans of the workload come back to
//! it; exit with the workload's status (128+n when a signal n killed it).
//! Custom metering: the hourly sender (`metering::send::Meter`) runs as one more branch of the same
//! `select!`, so its network waits never delay a signal or a reap; once the workload has exited, the
//! sender flushes the rest (bounded by the flush deadline) before mpgate exits with the status. When
//! AWS answers the sender that the buyer is not entitled and `--on-not-entitled` is `stop`, the branch
//! ends with that refusal: the workload is stopped (`stop`) and mpgate exits with the refusal instead.
//! Contract pricing: the seat (`license::Lease`) is held by one more branch of the `select!`, which
//! extends it before it expires. The seat follows the workload: SIGTERM is forwarded and the seat
//! stays out while the workload shuts down (a second start that needs the seat is refused meanwhile);
//! a workload still running `--stop-grace` after that SIGTERM is killed (SIGKILL) and reaped; once
//! the workload has exited the seat is checked in, before mpgate exits with its status. The same
//! branch re-checks the license (`license::recheck`); when it finds the license lost and the policy is
//! to stop, the workload gets SIGTERM, SIGKILL once `--stop-grace` has passed, and mpgate exits 80 with
//! the re-check's refusal line instead of the workload's status.
//! Must not: decide entitlement (it takes an `Entitled`) or replace the process image (`exec.rs`).
#![forbid(unsafe_code)]

pub mod stop;
pub mod user;

use crate::entitlement::Entitled;
use crate::error::Error;
use crate::license::{Lease, CHECK_IN_BUDGET};
use crate::metering::send::Meter;
use crate::signals::StopSignals;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::Duration;
use stop::{Reason, Stopping};
use tokio::signal::unix::{signal, Signal as Stream, SignalKind};

/// Signals forwarded to the workload. The synchronous ones (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT),
/// SIGKILL/SIGSTOP (uncatchable), SIGCHLD (ours) and the terminal-stop ones are not.
const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
    Signal::SIGPIPE,
];

/// How to supervise.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Put the workload in its own process group and signal the whole group.
    pub group: bool,
    /// Custom metering: how long to keep sending after the workload exits.
    pub flush_deadline: Duration,
    /// Custom metering: the bound of the slot in each hour at which closed hours' records go out
    /// while the workload runs (`metering::spread`).
    pub meter_spread: Duration,
    /// Custom metering: what a `CustomerNotEntitledException` to a usage record does.
    pub on_not_entitled: stop::Policy,
    /// Contract pricing: time between license re-checks (`None`: the default for the credential source).
    pub recheck: Option<Duration>,
    /// Contract pricing: what a lost license does to the workload.
    pub on_license_lost: stop::Policy,
    /// SIGTERM to SIGKILL when mpgate stops the workload (a refused usage record, a lost license).
    pub stop_grace: Duration,
    /// `--user`: run the workload as this user while mpgate keeps root (`user.rs`).
    pub user: Option<user::User>,
}

/// What the start hands over: the runtime it proved entitlement on, and the stop signals it has
/// caught since before the first AWS call (`signals`).
pub struct Handover {
    /// The start's runtime: the stop signals' handlers belong to it.
    pub runtime: tokio::runtime::Runtime,
    /// The stop signals, still caught until the forwarding handlers are in place.
    pub stop: StopSignals,
}

/// Start the workload (the path `program::find` found, and its `argv` with `argv[0]` as given) as
/// a child and supervise it until it exits; returns its exit status, or the refusal the workload
/// was stopped for.
#[allow(clippy::too_many_arguments)] // each is one input of the one pipeline; a struct would only rename them
pub fn supervise(
    entitled: Entitled,
    (program, argv): (&Path, &[OsString]),
    base_env: Vec<(OsString, OsString)>,
    options: Options,
    handover: Handover,
    mut meter: Option<Meter<'_>>,
    mut lease: Option<Lease<'_>>,
    mut extra: Vec<(OsString, OsString)>,
) -> Result<u8, Error> {
    let (name, args) = argv.split_first().ok_or_else(|| Error::Usage("no command given after --".into()))?;
    if options.user.is_some() {
        user::no_new_privileges()?;
    }
    if std::process::id() != 1 {
        // Orphans of the workload are re-parented to us rather than to the host's init.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::Internal(format!("cannot become a child subreaper: {e}")))?;
    }
    let Handover { runtime, mut stop } = handover;
    runtime.block_on(async {
        // Handlers first, then the child: a signal can never find mpgate with its default action.
        let mut signals = Signals::install()?;
        // A stop signal that came after the admission and before these handlers: the workload is
        // not started (as during the proof), and the seat goes back.
        if let Some(signal) = stop.pending().await {
            let seat = match lease.as_mut().map(|l| l.check_in(CHECK_IN_BUDGET)) {
                Some(checking_in) => match checking_in.await {
                    Ok(()) => "; its license seat was checked in".to_string(),
                    Err(why) => format!("; its license seat could not be checked in ({why}): License Manager returns it when the checkout expires"),
                },
                None => String::new(),
            };
            return Err(Error::Stopped { signal, seat });
        }
        drop(stop);
        extra.extend(meter.as_ref().map(Meter::workload_env).unwrap_or_default());
        let env = crate::exec::child_env(&entitled, base_env, extra);
        let workload = match spawn((program, name), args, env, options.group, options.user) {
            Ok(child) => child,
            Err(e) => {
                if let Some(l) = lease.as_mut() {
                    release(l).await;
                }
                return Err(e);
            }
        };
        let workload = pid(workload)?;
        let (status, stopped) = wait(workload, &mut signals, &options, meter.as_mut(), lease.as_mut()).await;
        let refused = wind_down(meter.as_mut(), lease.as_mut(), options.flush_deadline).await;
        match stopped.and_then(|s| s.into_error(status)).or(refused) {
            // The workload's own status is not the gate's answer: it was stopped, or AWS refused.
            Some(reason) => Err(reason),
            None => Ok(status),
        }
    })
}

/// The signals mpgate handles while the workload runs: SIGCHLD (reap) and the `FORWARDED` ones.
struct Signals {
    children: Stream,
    forwarded: tokio::sync::mpsc::UnboundedReceiver<Signal>,
}

impl Signals {
    /// Install every handler; each forwarded signal arrives on one channel, in order.
    fn install() -> Result<Signals, Error> {
        let children = signal(SignalKind::child()).map_err(|e| Error::Internal(format!("SIGCHLD handler: {e}")))?;
        let (tx, forwarded) = tokio::sync::mpsc::unbounded_channel::<Signal>();
        for &sig in FORWARDED {
            let mut stream: Stream =
                signal(SignalKind::from_raw(sig as i32)).map_err(|e| Error::Internal(format!("{sig} handler: {e}")))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    let _ = tx.send(sig);
                }
            });
        }
        Ok(Signals { children, forwarded })
    }
}

/// Start `program` (the path `program::find` found, and `argv[0]` as given) with exactly `env`, in
/// its own process group with `group`, as `user` when given.
fn spawn(
    (path, name): (&Path, &OsStr),
    args: &[OsString],
    env: Vec<(OsString, OsString)>,
    group: bool,
    user: Option<user::User>,
) -> Result<std::process::Child, Error> {
    let mut command = std::process::Command::new(path);
    command.arg0(name).args(args).env_clear().envs(env);
    if group {
        command.process_group(0);
    }
    if let Some(u) = user {
        as_user(&mut command, u);
    }
    command.spawn().map_err(|e| Error::Exec {
        program: name.to_string_lossy().into_owned(),
        errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc_enoexec())),
    })
}

/// Run the child as `user`: std sets the gid, clears the supplementary groups (`setgroups(0)`, as
/// root) and sets the uid, in that order, between fork and exec.
fn as_user(command: &mut std::process::Command, user: user::User) {
    command.uid(user.uid).gid(user.gid);
}

/// The workload's pid. std's `Child` is never waited on: every child is reaped with waitpid(-1).
fn pid(child: std::process::Child) -> Result<Pid, Error> {
    Ok(Pid::from_raw(i32::try_from(child.id()).map_err(|_| Error::Internal("child pid out of range".into()))?))
}

/// Forward signals and reap children until the workload exits; returns its status, and why it was
/// stopped, if it was. The sender and the seat holder run as branches of the same `select!`, so
/// their network waits never delay a signal or a reap. A sender that ends hands over a refusal, a
/// holder that ends a lost license (`--on-license-lost stop`): the workload is stopped (SIGTERM, then
/// SIGKILL once the grace period is over, as a container runtime's stop does). SIGTERM from outside
/// while a seat is held starts the same grace period (the holder keeps the seat meanwhile): the seat
/// is returned only after the workload has exited or been killed and reaped.
async fn wait(
    workload: Pid,
    signals: &mut Signals,
    options: &Options,
    meter: Option<&mut Meter<'_>>,
    lease: Option<&mut Lease<'_>>,
) -> (u8, Option<Stopping>) {
    let group = options.group;
    let sender = async {
        match meter {
            Some(m) => m.run().await,
            None => std::future::pending().await,
        }
    };
    let holding = lease.is_some();
    let holder = async {
        match lease {
            Some(l) => l.hold().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sender);
    tokio::pin!(holder);
    let mut stopping: Option<Stopping> = None;
    loop {
        if let Some(status) = reap(workload) {
            return (status, stopping);
        }
        let kill_due = async {
            match &stopping {
                Some(s) => s.kill_due().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signals.children.recv() => {}
            Some(sig) = signals.forwarded.recv() => {
                forward(workload, sig, group);
                if sig == Signal::SIGTERM && holding && stopping.is_none() {
                    stopping = Some(Stopping::after_term(options.stop_grace));
                }
            }
            reason = &mut sender, if stopping.is_none() => {
                stopping = Some(Stopping::begin(workload, group, Reason::Refused(reason), options.stop_grace));
            }
            line = &mut holder, if stopping.as_ref().is_none_or(Stopping::keeps_holding) => {
                stopping = Some(Stopping::begin(workload, group, Reason::LicenseLost(line), options.stop_grace));
            }
            () = kill_due => {
                if let Some(s) = stopping.as_mut() {
                    s.kill(workload, group);
                }
            }
        }
    }
}

/// After the workload exited: check the seat in if it is still out, then send the rest of the usage
/// within `flush_deadline`; returns the refusal the flush met, if AWS said not entitled there under
/// `--on-not-entitled stop`.
async fn wind_down(
    meter: Option<&mut Meter<'_>>,
    lease: Option<&mut Lease<'_>>,
    flush_deadline: Duration,
) -> Option<crate::error::Error> {
    // The holder is dropped mid-call at worst; the check-in below is then simply repeated.
    if let Some(l) = lease {
        release(l).await;
    }
    // The sender is dropped mid-call at worst: its record is marked in flight and re-sent as is.
    match meter {
        Some(m) => m.flush(flush_deadline).await,
        None => None,
    }
}

/// Check the seat in (bounded); on failure say when it comes back by itself.
async fn release(lease: &mut Lease<'_>) {
    if let Err(why) = lease.check_in(CHECK_IN_BUDGET).await {
        crate::log::warn(&format!(
            "could not check the license seat in ({why}); License Manager returns it when the checkout expires"
        ));
    }
}

/// ENOEXEC, for a spawn error that carries no OS error.
fn libc_enoexec() -> i32 {
    nix::errno::Errno::ENOEXEC as i32
}

fn forward(pid: Pid, sig: Signal, group: bool) {
    // The child may have just exited; a failed delivery is then expected and harmless.
    let _ = if group { nix::sys::signal::killpg(pid, sig) } else { nix::sys::signal::kill(pid, sig) };
}

/// Reap every exited child; return the workload's exit status once it has exited.
fn reap(workload: Pid) -> Option<u8> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == workload => result = Some(u8::try_from(code & 0xff).unwrap_or(1)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == workload => result = Some(128u8.saturating_add(sig as u8)),
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => continue,
        }
    }
}
