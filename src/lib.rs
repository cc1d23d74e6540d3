//! mpgate: an AWS Marketplace entitlement gate for container ENTRYPOINTs.
//!
//! `run` is the whole program: parse → prove entitlement → exec. `main.rs` only maps the result to
//! an exit status and prints the one refusal line.
#![forbid(unsafe_code)]

pub mod aws;
pub mod check;
pub mod cli;
pub mod entitlement;
pub mod error;
pub mod exec;
pub mod identity;
pub mod license;
pub mod log;
pub mod metering;
pub mod pass;
pub mod platform;
pub mod supervise;
pub mod version;

use clap::Parser as _;
use error::Error;
use platform::Env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Default start-up deadline: long enough for a fleet start against the 5 requests/s quota.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);
/// Kubernetes' default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// A refusal and where to copy it for the orchestrator.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong (boxed: the error carries AWS's answer and is large).
    pub error: Box<Error>,
    /// The termination-log path to write the line to, if it exists.
    pub termination_log: Option<PathBuf>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error: Box::new(error), termination_log: None }
    }
}

/// Run mpgate. Returns the exit status of commands that finish (version, help, check, pass);
/// `exec` only returns on failure. `base_env` is the environment handed to the workload.
pub fn run(args: Vec<OsString>, env: &dyn Env, base_env: Vec<(OsString, OsString)>) -> Result<u8, Failure> {
    let parsed = cli::Cli::try_parse_from(args);
    configure_logging(parsed.as_ref().ok(), env);
    if cfg!(feature = "insecure-test-endpoints") {
        log::warn("test flavour (insecure-test-endpoints): honours AWS_ENDPOINT_URL and trusts the public emulator key; never ship this binary");
    }
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            print!("{e}");
            return Ok(0);
        }
        Err(e) => {
            // clap's first paragraph, on one line: "the following required arguments were not
            // provided:" alone would leave out which ones.
            let rendered = e.render().to_string();
            let head = rendered.split("\n\n").next().unwrap_or_default();
            let line = head.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
            let line = line.trim_start_matches("error: ");
            let line = if line.is_empty() { "invalid arguments" } else { line };
            return Err(Error::Usage(line.to_string()).into());
        }
    };
    if cli.version {
        print!("{}", version::text());
        return Ok(0);
    }
    match cli.command {
        Some(cli::Command::Version { json: true }) => println!("{}", version::json()),
        Some(cli::Command::Version { json: false }) => print!("{}", version::text()),
        Some(cli::Command::Exec(args)) => return start(args, None, env, base_env),
        Some(cli::Command::Supervise(args)) => {
            let flush_deadline = match (args.flush_deadline, env.get("MPGATE_FLUSH_DEADLINE")) {
                (Some(d), _) => d,
                (None, Some(v)) => {
                    cli::parse_duration(&v).map_err(|why| Error::Usage(format!("MPGATE_FLUSH_DEADLINE: {why}")))?
                }
                (None, None) => metering::DEFAULT_FLUSH_DEADLINE,
            };
            let spool = spool_dir(args.spool, env);
            let options = supervise::Options { group: args.group, flush_deadline };
            return start(args.exec, Some((options, spool)), env, base_env);
        }
        Some(cli::Command::Meter(args)) => meter_command(args, env)?,
        Some(cli::Command::Pass(cli::PassCommand::Verify { max_age, json })) => pass_verify(env, max_age, json)?,
        Some(cli::Command::Check { offline, live, json }) => {
            return check_command(env, check::Options { offline, live }, json)
        }
        None => return Err(Error::Usage("no command given".into()).into()),
    }
    Ok(0)
}

/// The spool directory: flag, then `MPGATE_SPOOL_DIR`, then the default.
fn spool_dir(flag: Option<PathBuf>, env: &dyn Env) -> metering::Spool {
    metering::Spool::new(
        flag.or_else(|| env.get("MPGATE_SPOOL_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(metering::DEFAULT_SPOOL)),
    )
}

/// `mpgate meter`: validate against the baked dimensions at once, then append one usage line.
fn meter_command(args: cli::MeterArgs, env: &dyn Env) -> Result<(), Failure> {
    use metering::Clock as _;
    let baked = identity::baked()?;
    if baked.pricing_model != identity::PricingModel::CustomMetering {
        return Err(Error::Usage(format!(
            "this image is built for {} pricing, not custom-metering: there is nothing to meter",
            baked.pricing_model.as_str()
        ))
        .into());
    }
    let now = metering::SystemClock.now();
    let record = metering::record::validate(baked.dimensions, now, &args.dimension, &args.quantity, &args.tags)
        .map_err(|why| Error::Usage(format!("mpgate meter: {why}")))?;
    let file =
        env.get("MPGATE_USAGE_FILE").map(PathBuf::from).unwrap_or_else(|| spool_dir(args.spool, env).usage_file());
    metering::record::append(&file, &record).map_err(|e| {
        Error::Spool(format!(
            "cannot append to the usage file {}: {e}; run under `mpgate supervise` with a writable spool (docs/custom-metering.md)",
            file.display()
        ))
    })?;
    Ok(())
}

/// `mpgate check`: the report on stdout, the verdict as the exit status.
fn check_command(env: &dyn Env, options: check::Options, json: bool) -> Result<u8, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    let checks = runtime.block_on(check::run(env, options));
    if json {
        println!("{}", check::render_json(&checks));
    } else {
        use std::io::IsTerminal as _;
        let colour = std::io::stdout().is_terminal() && env.get("NO_COLOR").is_none();
        print!("{}", check::render_text(&checks, colour));
    }
    Ok(check::verdict(&checks).exit_code())
}

/// Level and format from the command line, else `MPGATE_LOG` / `MPGATE_LOG_FORMAT`, else info/text.
fn configure_logging(cli: Option<&cli::Cli>, env: &dyn Env) {
    let quiet = matches!(cli.map(|c| &c.command), Some(Some(cli::Command::Exec(a)))  if a.quiet)
        || matches!(cli.map(|c| &c.command), Some(Some(cli::Command::Supervise(a))) if a.exec.quiet);
    let level = match cli.map_or(0, |c| c.verbose) {
        0 if quiet => log::Level::Warn,
        0 => env.get("MPGATE_LOG").and_then(|l| log::Level::parse(&l)).unwrap_or(log::Level::Info),
        1 => log::Level::Verbose,
        _ => log::Level::Debug,
    };
    let format = cli.and_then(|c| c.log_format).unwrap_or_else(|| {
        match env.get("MPGATE_LOG_FORMAT").map(|f| f.to_ascii_lowercase()) {
            Some(f) if f == "json" => log::Format::Json,
            _ => log::Format::Text,
        }
    });
    log::configure(level, format);
}

/// `mpgate pass verify`: the pass in `MPGATE_SIGNATURE` against the baked keys.
fn pass_verify(env: &dyn Env, max_age: Option<Duration>, json: bool) -> Result<(), Failure> {
    let token = env.get("MPGATE_SIGNATURE").ok_or_else(|| Error::NoPass("MPGATE_SIGNATURE is not set".into()))?;
    let policy = pass::Policy::here(max_age.unwrap_or(pass::DEFAULT_MAX_AGE));
    let verified = pass::verify(&token, &pass::baked_keys(), &policy).map_err(Error::NoPass)?;
    let tier = identity::BAKED
        .as_ref()
        .and_then(|b| b.products.iter().find(|p| p.code == verified.product_code))
        .map_or("unknown", |p| p.tier);
    if json {
        let doc = serde_json::json!({
            "product_code": verified.product_code,
            "tier": tier,
            "key_version": verified.key_version,
            "started_at": verified.started_at,
            "age_secs": verified.age_secs,
            "hostname": verified.hostname,
        });
        println!("{doc}");
    } else {
        log::info(&format!(
            "gate pass ok: product {} (tier {tier}), key version {}, started {}s ago on host {}",
            verified.product_code, verified.key_version, verified.age_secs, verified.hostname
        ));
    }
    Ok(())
}

/// `mpgate exec` (`supervise` is `None`: returns only on failure) and `mpgate supervise` (returns the
/// workload's exit status).
fn start(
    args: cli::ExecArgs,
    supervise: Option<(supervise::Options, metering::Spool)>,
    env: &dyn Env,
    base_env: Vec<(OsString, OsString)>,
) -> Result<u8, Failure> {
    let termination_log = args
        .termination_log
        .clone()
        .or_else(|| env.get("MPGATE_TERMINATION_LOG").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from(DEFAULT_TERMINATION_LOG)));
    let fail = |error: Error| Failure { error: Box::new(error), termination_log: termination_log.clone() };
    let deadline = match (args.deadline, env.get("MPGATE_DEADLINE")) {
        (Some(d), _) => d,
        (None, Some(v)) => match cli::parse_duration(&v) {
            Ok(d) => d,
            Err(why) => return Err(fail(Error::Usage(format!("MPGATE_DEADLINE: {why}")))),
        },
        (None, None) => DEFAULT_DEADLINE,
    };
    // CMD takes values that start with '-' (its own arguments), so an option mpgate does not know
    // lands there too: refuse it before proving anything. No workload's name starts with '-'.
    if let Some(first) = args.command.first().map(|c| c.to_string_lossy()).filter(|c| c.starts_with('-')) {
        let sub = if supervise.is_some() { "supervise" } else { "exec" };
        return Err(fail(Error::Usage(format!(
            "{first} is not an option of mpgate {sub}; options go before the workload, the workload after -- (mpgate {sub} -- /app/server)"
        ))));
    }
    let metered = identity::BAKED.as_ref().is_some_and(|b| b.pricing_model == identity::PricingModel::CustomMetering);
    if metered && supervise.is_none() {
        return Err(fail(Error::Usage(
            "this image is built for custom-metering pricing, which needs mpgate to stay and send usage every hour: use `mpgate supervise -- CMD` instead of `mpgate exec`".into(),
        )));
    }
    let selection = args.product_code.clone().or_else(|| env.get("MPGATE_PRODUCT_CODE"));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return Err(fail(Error::Internal(format!("cannot start the async runtime: {e}")))),
    };
    let deadline = entitlement::Deadline::new(deadline);
    let verdict = runtime.block_on(entitlement::prove(env, selection.as_deref(), &deadline));
    let entitled = match verdict {
        Ok(e) => e,
        Err(error) => return Err(fail(error)),
    };
    if let Some(warning) = entitled.registration().and_then(|r| r.rotation.as_ref()) {
        log::warn(warning);
    }
    if log::enabled(log::Level::Info) {
        let proof = match entitled.proof() {
            entitlement::Proof::Registered(r) => format!("key version {}", r.key_version),
            entitlement::Proof::Probed(p) => format!("dimensions {}", p.dimensions.join(", ")),
            entitlement::Proof::Licensed(l) => format!(
                "license {} allows {}",
                l.license_arn,
                l.entitlements.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
        let msg = format!(
            "admitted: product {} (tier {}, {}) in {} (region from {}, credentials from {}), {proof}",
            entitled.product_code(),
            entitled.tier(),
            entitled.pricing_model().as_str(),
            entitled.region().name,
            entitled.region().source,
            entitled.credential_source(),
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
    match supervise {
        None => {
            // Contract: give the seat back before the gate is gone (docs/contract.md, seat policy).
            let mut extra = Vec::new();
            if let Some(mut lease) = license::Lease::of(&entitled, env) {
                if let Err(why) = runtime.block_on(lease.check_in(license::CHECK_IN_BUDGET)) {
                    log::warn(&format!(
                        "could not check the license seat in before starting the workload ({why}); License Manager returns it when the checkout expires"
                    ));
                }
                extra = license::handover::write(&entitled, env, license::Seat::Returned);
            }
            // Drop the runtime (threads, sockets) before the process image is replaced.
            drop(runtime);
            Err(fail(exec::exec(entitled, &args.command, base_env, extra)))
        }
        Some((options, spool)) => {
            drop(runtime);
            let meter =
                if metered { Some(metering::send::Meter::open(spool, &entitled, env).map_err(&fail)?) } else { None };
            let lease = license::Lease::of(&entitled, env);
            let extra = if lease.is_some() {
                license::handover::write(&entitled, env, license::Seat::Held)
            } else {
                Vec::new()
            };
            supervise::supervise(entitled, &args.command, base_env, options, meter, lease, extra).map_err(fail)
        }
    }
}
