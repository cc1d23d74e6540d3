//! `mpgate exec` and `mpgate supervise`, in four steps read top to bottom: resolve the options and the
//! workload's program (and refuse what needs no AWS call to refuse), prove entitlement, announce the admission on stderr,
//! hand over to the workload (replace mpgate with it, or run it as a child and stay as its init).
//! Must not: decide entitlement (`entitlement::prove`) or replace the process image (`exec.rs`).
#![forbid(unsafe_code)]

use crate::entitlement::{self, Entitled, Proof};
use crate::error::Error;
use crate::identity::{self, PricingModel};
use crate::license::{self, Seat};
use crate::platform::Env;
use crate::{cli, exec, log, metering, signals, supervise, Failure, DEFAULT_DEADLINE, DEFAULT_TERMINATION_LOG};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the workload runs once admitted.
pub(crate) enum Mode {
    /// `mpgate exec`: mpgate is replaced by the workload.
    Exec,
    /// `mpgate supervise`: the workload runs as a child of mpgate, which stays as its init.
    Supervise(supervise::Options, metering::Spool),
}

impl Mode {
    /// The subcommand, as usage errors name it.
    fn command(&self) -> &'static str {
        match self {
            Mode::Exec => "exec",
            Mode::Supervise(..) => "supervise",
        }
    }
}

/// `mpgate supervise`'s own options: flag, then `MPGATE_FLUSH_DEADLINE` / `MPGATE_METER_SPREAD` /
/// `MPGATE_SPOOL_DIR` / `MPGATE_ON_NOT_ENTITLED` / `MPGATE_LICENSE_RECHECK` / `MPGATE_ON_LICENSE_LOST` / `MPGATE_STOP_GRACE`,
/// then the defaults.
pub(crate) fn supervise_mode(args: &cli::SuperviseArgs, env: &dyn Env) -> Result<Mode, Error> {
    let duration = |flag: Option<Duration>, value: Option<String>, var: &str| -> Result<Option<Duration>, Error> {
        match (flag, value) {
            (Some(d), _) => Ok(Some(d)),
            (None, Some(v)) => cli::parse_duration(&v).map(Some).map_err(|why| Error::Usage(format!("{var}: {why}"))),
            (None, None) => Ok(None),
        }
    };
    let flush_deadline = duration(args.flush_deadline, env.get("MPGATE_FLUSH_DEADLINE"), "MPGATE_FLUSH_DEADLINE")?
        .unwrap_or(metering::DEFAULT_FLUSH_DEADLINE);
    let meter_spread = match (args.meter_spread, env.get("MPGATE_METER_SPREAD")) {
        (Some(d), _) => d,
        (None, Some(v)) => {
            metering::spread::parse(&v).map_err(|why| Error::Usage(format!("MPGATE_METER_SPREAD: {why}")))?
        }
        (None, None) => metering::spread::DEFAULT,
    };
    let options = supervise::Options {
        group: args.group,
        flush_deadline,
        meter_spread,
        on_not_entitled: policy(args.on_not_entitled, env, "MPGATE_ON_NOT_ENTITLED")?,
        recheck: duration(args.recheck, env.get("MPGATE_LICENSE_RECHECK"), "MPGATE_LICENSE_RECHECK")?,
        on_license_lost: policy(args.on_license_lost, env, "MPGATE_ON_LICENSE_LOST")?,
        stop_grace: duration(args.stop_grace, env.get("MPGATE_STOP_GRACE"), "MPGATE_STOP_GRACE")?
            .unwrap_or(supervise::stop::GRACE),
        user: workload_user(args, env)?,
    };
    Ok(Mode::Supervise(options, crate::spool_dir(args.spool.clone(), env)))
}

/// `--user` / `MPGATE_USER`, and the rule that an image whose supervisor has a duty is not
/// supervised from below PID 1 without it (`supervise::user`), both before any AWS call.
fn workload_user(args: &cli::SuperviseArgs, env: &dyn Env) -> Result<Option<supervise::user::User>, Error> {
    use supervise::user;
    let workload = user::resolve(args.user.as_deref(), env.get("MPGATE_USER"), nix::unistd::geteuid().as_raw())?;
    let allow = user::allow_not_pid1(args.allow_not_pid1, env.get("MPGATE_ALLOW_NOT_PID1"))?;
    user::not_pid1_rule(user::duty(), std::process::id(), workload, allow)?;
    Ok(workload)
}

/// A stop-or-warn policy: the flag, then the variable `var`, then `stop` (fail closed).
fn policy(flag: Option<supervise::stop::Policy>, env: &dyn Env, var: &str) -> Result<supervise::stop::Policy, Error> {
    match (flag, env.get(var)) {
        (Some(p), _) => Ok(p),
        (None, Some(v)) => supervise::stop::Policy::parse(&v)
            .ok_or_else(|| Error::Usage(format!("{var}: {v:?} is neither stop nor warn"))),
        (None, None) => Ok(supervise::stop::Policy::default()),
    }
}

/// Resolve, prove, announce, hand over. `Exec` returns only on failure; `Supervise` returns the
/// workload's exit status. Every refusal also goes to the termination log.
pub(crate) fn start(
    args: cli::ExecArgs,
    mode: Mode,
    env: &dyn Env,
    base_env: Vec<(OsString, OsString)>,
) -> Result<u8, Failure> {
    let termination_log = termination_log(&args, env);
    let fail = |error: Error| Failure { error: Box::new(error), termination_log: termination_log.clone() };
    let deadline = resolve(&args, &mode, env).map_err(&fail)?;
    let runs_as = match &mode {
        Mode::Supervise(options, _) => options.user.map(|u| (u.uid, u.gid)),
        Mode::Exec => None,
    };
    let program = crate::program::find(&args.command, &base_env, runs_as).map_err(&fail)?;
    let spool = prepare_spool(&mode, env).map_err(&fail)?;
    let selection = args.product_code.clone().or_else(|| env.get("MPGATE_PRODUCT_CODE"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(Error::Internal(format!("cannot start the async runtime: {e}"))))?;
    let mut stop = catch_stop_signals(&runtime).map_err(&fail)?;
    let deadline = entitlement::Deadline::new(deadline);
    let entitled =
        runtime.block_on(signals::prove_or_stop(env, selection.as_deref(), &deadline, &mut stop)).map_err(&fail)?;
    announce(&entitled);
    match mode {
        Mode::Exec => Err(fail(exec_workload(entitled, (&program, &args.command), runtime, stop, env, base_env))),
        Mode::Supervise(options, _) => {
            let handover = supervise::Handover { runtime, stop };
            supervise_workload(entitled, (&program, &args.command), options, spool, handover, env, base_env)
                .map_err(fail)
        }
    }
}

/// Custom metering under `supervise`: the spool, opened and checked before any AWS call
/// (`metering::send::Prepared`).
fn prepare_spool(mode: &Mode, env: &dyn Env) -> Result<Option<metering::send::Prepared>, Error> {
    match mode {
        Mode::Supervise(options, spool) if metered() => {
            metering::send::Prepared::open(spool.clone(), options.user, env).map(Some)
        }
        _ => Ok(None),
    }
}

/// Catch the stop signals (`signals::STOP`) before the first AWS call: from here until the workload
/// starts, SIGTERM, SIGINT, SIGHUP or SIGQUIT ends the start (exit 128 + n) instead of being lost
/// (PID 1 has no default action) or killing mpgate while a license seat is out.
fn catch_stop_signals(runtime: &tokio::runtime::Runtime) -> Result<signals::StopSignals, Error> {
    let _inside = runtime.enter();
    signals::StopSignals::install()
}

/// Where a refusal is copied: flag, then `MPGATE_TERMINATION_LOG`, then Kubernetes' default.
fn termination_log(args: &cli::ExecArgs, env: &dyn Env) -> Option<PathBuf> {
    args.termination_log
        .clone()
        .or_else(|| env.get("MPGATE_TERMINATION_LOG").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from(DEFAULT_TERMINATION_LOG)))
}

/// The start-up deadline (flag, then `MPGATE_DEADLINE`, then the default), after the refusals that
/// need no AWS call: a mistyped option, and `exec` on a build that needs mpgate to stay (a contract
/// that counts seats, custom metering).
fn resolve(args: &cli::ExecArgs, mode: &Mode, env: &dyn Env) -> Result<Duration, Error> {
    let deadline = match (args.deadline, env.get("MPGATE_DEADLINE")) {
        (Some(d), _) => d,
        (None, Some(v)) => cli::parse_duration(&v).map_err(|why| Error::Usage(format!("MPGATE_DEADLINE: {why}")))?,
        (None, None) => DEFAULT_DEADLINE,
    };
    // CMD takes values that start with '-' (its own arguments), so an option mpgate does not know
    // lands there too: refuse it before proving anything. No workload's name starts with '-'.
    if let Some(first) = args.command.first().map(|c| c.to_string_lossy()).filter(|c| c.starts_with('-')) {
        let sub = mode.command();
        return Err(Error::Usage(format!(
            "{first} is not an option of mpgate {sub}; options go before the workload, the workload after -- (mpgate {sub} -- /app/server)"
        )));
    }
    if let (Some(b), Mode::Exec) = (identity::BAKED.as_ref(), mode) {
        let counted = license::counted(b.entitlements);
        if !counted.is_empty() {
            return Err(Error::Usage(format!(
                "this image is built for a contract that counts seats ({}), which needs mpgate to stay and hold the seat while the workload runs: use `mpgate supervise -- CMD` instead of `mpgate exec`",
                counted.join(", ")
            )));
        }
    }
    if metered() && matches!(mode, Mode::Exec) {
        return Err(Error::Usage(
            "this image is built for custom-metering pricing, which needs mpgate to stay and send usage every hour: use `mpgate supervise -- CMD` instead of `mpgate exec`".into(),
        ));
    }
    Ok(deadline)
}

/// Whether this build is for custom metering (which needs `supervise`).
fn metered() -> bool {
    identity::BAKED.as_ref().is_some_and(|b| b.pricing_model == PricingModel::CustomMetering)
}

/// The admission on stderr: AWS's key-rotation warning when it sent one, then the `admitted` line
/// (info level, so `-q` leaves it out).
fn announce(entitled: &Entitled) {
    if let Some(warning) = entitled.registration().and_then(|r| r.rotation.as_ref()) {
        log::warn(warning);
    }
    if !log::enabled(log::Level::Info) {
        return;
    }
    let msg = format!(
        "admitted: product {} (tier {}, {}) in {} (region from {}, credentials from {}), {}",
        entitled.product_code(),
        entitled.tier(),
        entitled.pricing_model().as_str(),
        entitled.region().name,
        entitled.region().source,
        entitled.credential_source(),
        proof(entitled.proof()),
    );
    log::emit(
        log::Level::Info,
        &msg,
        &[
            ("event", "admitted".into()),
            ("product_code", entitled.product_code().into()),
            ("tier", entitled.tier().into()),
            ("pricing_model", entitled.pricing_model().as_str().into()),
            ("region", entitled.region().name.clone().into()),
            ("credential_source", entitled.credential_source().to_string().into()),
        ],
    );
}

/// What AWS answered, as the admitted line ends.
fn proof(proof: &Proof) -> String {
    match proof {
        Proof::Registered(r) => format!("key version {}", r.key_version),
        Proof::Probed(p) => format!("dimensions {}", p.dimensions.join(", ")),
        Proof::Licensed(l) => format!(
            "license {} allows {}",
            l.license_arn,
            l.entitlements.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `mpgate exec`: a contract's checkout (one without counted seats: `resolve` refuses the others)
/// is checked in before the gate is gone (docs/contract.md, seat policy) and the entitlements file
/// says so; a stop signal that arrived meanwhile ends the start here; then the runtime (threads,
/// sockets) is dropped and the process image replaced. Returns only the reason the exec failed.
fn exec_workload(
    entitled: Entitled,
    command: (&Path, &[OsString]),
    runtime: tokio::runtime::Runtime,
    mut stop: signals::StopSignals,
    env: &dyn Env,
    base_env: Vec<(OsString, OsString)>,
) -> Error {
    let mut extra = Vec::new();
    let lease = license::Lease::of(&entitled, env);
    let checked_out = lease.is_some();
    if let Some(mut lease) = lease {
        if let Err(why) = runtime.block_on(lease.check_in(license::CHECK_IN_BUDGET)) {
            log::warn(&format!(
                "could not check the license seat in before starting the workload ({why}); License Manager returns it when the checkout expires"
            ));
        }
        extra = license::handover::write(&entitled, env, Seat::Returned, None).0;
    }
    if let Some(signal) = runtime.block_on(stop.pending()) {
        let seat = if checked_out { "; its license checkout was checked in" } else { "" };
        return Error::Stopped { signal, seat: seat.to_string() };
    }
    // From here to the execve the handlers catch a stop signal that nothing acts on any more: the
    // limit docs/security.md states (a blocked signal would stay blocked in the workload).
    drop(stop);
    drop(runtime);
    exec::exec(entitled, command.0, command.1, base_env, extra)
}

/// `mpgate supervise`: open the spool (custom metering) and keep the seat (contract), then run the
/// workload as a child until it exits.
fn supervise_workload(
    entitled: Entitled,
    command: (&Path, &[OsString]),
    options: supervise::Options,
    spool: Option<metering::send::Prepared>,
    handover: supervise::Handover,
    env: &dyn Env,
    base_env: Vec<(OsString, OsString)>,
) -> Result<u8, Error> {
    let meter = match spool {
        Some(prepared) => {
            Some(metering::send::Meter::open(prepared, &entitled, env, options.on_not_entitled, options.meter_spread)?)
        }
        None => None,
    };
    let mut lease = license::Lease::of(&entitled, env);
    let mut extra = Vec::new();
    if let (Some(lease), Some(licensed)) = (lease.as_mut(), entitled.licensed()) {
        let (vars, live) = license::handover::write(&entitled, env, Seat::Held, options.user);
        extra = vars;
        lease.watch(options.recheck, options.on_license_lost, licensed.entitlements.clone(), live);
    }
    supervise::supervise(entitled, command, base_env, options, handover, meter, lease, extra)
}
