//! mpgate: an AWS Marketplace entitlement gate for container ENTRYPOINTs.
//!
//! `run` is the whole program: parse the command line, then run the command; `exec` and `supervise`
//! go through `start` (resolve → prove entitlement → announce → hand over to the workload).
//! `main.rs` only maps the result to an exit status and prints the one refusal line.
#![forbid(unsafe_code)]

pub mod aws;
// build.rs's rules (it includes the file), compiled here only for their unit tests.
#[cfg(test)]
mod bake;
pub mod check;
pub mod cli;
pub mod entitlement;
pub mod error;
pub mod exec;
pub mod flavour;
pub mod identity;
pub mod license;
pub mod log;
pub mod metering;
pub mod pass;
pub mod platform;
pub mod program;
pub mod signals;
mod start;
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
    if let Some(warning) = flavour::RUN_WARNING {
        log::warn(warning);
    }
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return not_parsed(&e),
    };
    if cli.version {
        print!("{}", version::text());
        return Ok(0);
    }
    match cli.command {
        Some(cli::Command::Version { json: true }) => println!("{}", version::json()),
        Some(cli::Command::Version { json: false }) => print!("{}", version::text()),
        Some(cli::Command::Exec(args)) => return start::start(args, start::Mode::Exec, env, base_env),
        Some(cli::Command::Supervise(args)) => {
            let mode = start::supervise_mode(&args, env)?;
            return start::start(args.exec, mode, env, base_env);
        }
        Some(cli::Command::Meter(args)) => meter_command(args, env)?,
        Some(cli::Command::Pass(cli::PassCommand::Verify { max_age, json, tier })) => {
            pass_verify(env, max_age, json, tier)?
        }
        Some(cli::Command::Pass(cli::PassCommand::Request(args))) => pass_request(args, env)?,
        Some(cli::Command::Check { offline, allow_test_flavour, live, json }) => {
            return check_command(env, check::Options { offline, allow_test_flavour, live }, json)
        }
        None => return Err(Error::Usage("no command given".into()).into()),
    }
    Ok(0)
}

/// A command line clap did not parse: help that was asked for (status 0), or the usage error.
fn not_parsed(e: &clap::Error) -> Result<u8, Failure> {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        print!("{e}");
        return Ok(0);
    }
    // clap's first paragraph, on one line: "the following required arguments were not provided:"
    // alone would leave out which ones.
    let rendered = e.render().to_string();
    let head = rendered.split("\n\n").next().unwrap_or_default();
    let line = head.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    let line = line.trim_start_matches("error: ");
    let line = if line.is_empty() { "invalid arguments" } else { line };
    Err(Error::Usage(line.to_string()).into())
}

/// The spool directory: flag, then `MPGATE_SPOOL_DIR`, then the default.
pub(crate) fn spool_dir(flag: Option<PathBuf>, env: &dyn Env) -> metering::Spool {
    metering::Spool::new(
        flag.or_else(|| env.get("MPGATE_SPOOL_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(metering::DEFAULT_SPOOL)),
    )
}

/// `mpgate meter`: validate against the baked dimensions at once, then append one usage line to the
/// spool's `usage.log`, which must already exist (the supervisor creates it).
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
    // The spool is the one place usage is read from: MPGATE_USAGE_FILE only tells the workload
    // where that is, so a value naming another file (a CMD that re-exported it) is not followed.
    let file = spool_dir(args.spool, env).usage_file();
    if let Some(told) = env.get("MPGATE_USAGE_FILE").filter(|told| std::path::Path::new(told) != file) {
        log::warn(&format!(
            "MPGATE_USAGE_FILE is {told:?}, not this spool's usage file {}; recording to {} (the variable tells where usage goes, it does not choose it: --spool or MPGATE_SPOOL_DIR choose the spool)",
            file.display(),
            file.display()
        ));
    }
    metering::record::append(&file, &record).map_err(|why| Error::Spool(format!("mpgate meter: {why}")))?;
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

/// `mpgate pass verify`: the pass in `MPGATE_SIGNATURE` against the baked keys, and the variables that
/// describe it against the pass. The tier printed is the baked tier of the pass's product code.
fn pass_verify(env: &dyn Env, max_age: Option<Duration>, json: bool, tier_only: bool) -> Result<(), Failure> {
    let token = env.get("MPGATE_SIGNATURE").ok_or_else(|| Error::NoPass("MPGATE_SIGNATURE is not set".into()))?;
    let policy = pass::Policy::here(max_age.unwrap_or(pass::DEFAULT_MAX_AGE));
    let verified = pass::verify(&token, &pass::baked_keys(), &policy).map_err(Error::NoPass)?;
    let tier = identity::BAKED
        .as_ref()
        .and_then(|b| b.products.iter().find(|p| p.code == verified.product_code))
        .map_or("unknown", |p| p.tier);
    pass::environment_agrees(&verified, tier, |name| env.get(name)).map_err(Error::NoPass)?;
    if tier_only {
        println!("{tier}");
    } else if json {
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

/// `mpgate pass request`: RegisterUsage with the workload's nonce, through the same steps as `exec`
/// (baked identity, region, credentials, endpoint lock, deadline, verification of the answer), then
/// AWS's token on stdout.
fn pass_request(args: cli::RequestArgs, env: &dyn Env) -> Result<(), Failure> {
    let nonce = if args.nonce == "-" { nonce_from_stdin()? } else { args.nonce };
    entitlement::nonce::check_requested(&nonce).map_err(|why| Error::Usage(format!("mpgate pass request: {why}")))?;
    let deadline = match (args.deadline, env.get("MPGATE_DEADLINE")) {
        (Some(d), _) => d,
        (None, Some(v)) => cli::parse_duration(&v).map_err(|why| Error::Usage(format!("MPGATE_DEADLINE: {why}")))?,
        (None, None) => DEFAULT_DEADLINE,
    };
    let selection = args.product_code.or_else(|| env.get("MPGATE_PRODUCT_CODE"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    let deadline = entitlement::Deadline::new(deadline);
    let given = entitlement::NonceChoice::Given(&nonce);
    let entitled = runtime.block_on(entitlement::prove_with(env, selection.as_deref(), &deadline, given))?;
    let registered =
        entitled.registration().ok_or_else(|| Error::Internal("RegisterUsage was proven but left no answer".into()))?;
    if let Some(warning) = &registered.rotation {
        log::warn(warning);
    }
    println!("{}", registered.signature);
    Ok(())
}

/// The nonce from the first line of stdin (at most 1 KiB is read; the line end is not part of it).
fn nonce_from_stdin() -> Result<String, Error> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(1024)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Usage(format!("mpgate pass request: cannot read the nonce from stdin: {e}")))?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8(line.to_vec())
        .map_err(|_| Error::Usage("mpgate pass request: the nonce on stdin is not printable ASCII".into()))
}
