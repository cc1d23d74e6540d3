//! Command-line definitions only (clap). Parsing helpers for values live here too; nothing runs.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// mpgate proves an AWS Marketplace entitlement, then becomes the workload.
#[derive(Debug, Parser)]
#[command(name = "mpgate", disable_version_flag = true, arg_required_else_help = true)]
#[command(
    after_help = "Examples:\n  mpgate exec -- /app/server --port 8080\n  mpgate version --json\n\nExit codes: see docs/exit-codes.md (80 not entitled, 81 cannot verify, 82 misconfigured, 83 bad build)."
)]
pub struct Cli {
    /// Print the flavour, baked product codes, pricing model and key fingerprints.
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    /// More detail on stderr: -v which source answered and each retry, -vv everything
    /// [env: MPGATE_LOG=error|warn|info|verbose|debug].
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Format of mpgate's stderr lines [env: MPGATE_LOG_FORMAT] [default: text].
    #[arg(long, value_enum, global = true, value_name = "FORMAT")]
    pub log_format: Option<crate::log::Format>,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands. Deferred: clap builds a subcommand's arguments only when it is the one being run
/// (and for help), so `mpgate exec` does not pay for building `check`, `supervise` and the rest.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Prove entitlement, then replace mpgate with CMD (same PID, argv and environment).
    #[command(
        after_help = "Examples:\n  mpgate exec -- /app/server --port 8080\n  MPGATE_PRODUCT_CODE=<a baked code> mpgate exec --deadline 2m -- app\n\nDockerfile:\n  ENTRYPOINT [\"/mpgate\", \"exec\", \"--\"]\n  CMD [\"/app/server\"]"
    )]
    Exec(ExecArgs),
    /// Explain what would stop `mpgate exec` here: platform, region, credentials, IMDS, endpoint, identity.
    #[command(
        after_help = "Examples:\n  mpgate check\n  mpgate check --json > check.json\n  mpgate check --offline        # the baked identity only, no network (seller CI); fails on a test flavour\n  mpgate check --offline --allow-test-flavour   # the same for a test image\n  mpgate check --live           # also call RegisterUsage (starts hourly metering for this task)\n\nExit status: 0 all pass, 86 exec would refuse, 87 could not tell."
    )]
    Check {
        /// Only validate the baked identity; no environment, no network.
        #[arg(long, conflicts_with = "live")]
        offline: bool,
        /// With --offline: accept a test-flavour binary (a test image's CI), which otherwise fails.
        #[arg(long, requires = "offline")]
        allow_test_flavour: bool,
        /// Also call RegisterUsage, which starts hourly metering for this task.
        #[arg(long)]
        live: bool,
        /// Machine-readable report on stdout (schema in docs/check.md).
        #[arg(long)]
        json: bool,
    },
    /// Check the gate pass this container was started with (for start scripts in any language).
    #[command(subcommand)]
    Pass(PassCommand),
    /// Prove entitlement, then run CMD as a child and stay as its init: forward signals, reap zombies,
    /// exit with its status.
    #[command(
        after_help = "Examples:\n  mpgate supervise -- /app/server\n  mpgate supervise --group -- /app/start.sh   # signal the whole process group\n\nDockerfile:\n  ENTRYPOINT [\"/mpgate\", \"supervise\", \"--\"]\n  CMD [\"/app/server\"]"
    )]
    Supervise(SuperviseArgs),
    /// Record custom-metering usage for the supervisor to send (scripts; programs append lines
    /// to the spool's usage.log themselves, see docs/custom-metering.md).
    #[command(
        after_help = "Examples:\n  mpgate meter requests 1\n  mpgate meter gb_processed 20 --tag team=search\n\nExit status 0 when recorded, 2 when refused (unknown dimension or tag key, bad quantity)."
    )]
    Meter(MeterArgs),
    /// Print what this binary was built with.
    #[command(after_help = "Examples:\n  mpgate version\n  mpgate version --json")]
    Version {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// `mpgate pass ...`
#[derive(Debug, Subcommand)]
pub enum PassCommand {
    /// Verify MPGATE_SIGNATURE: signed by AWS for a baked product, made on this host, fresh, and
    /// described truly by MPGATE_PRODUCT_CODE, MPGATE_TIER, MPGATE_PUBLIC_KEY_VERSION and MPGATE_NONCE.
    #[command(
        after_help = "Examples:\n  mpgate pass verify || exit 1\n  tier=$(mpgate pass verify --tier) || exit 1\n  mpgate pass verify --max-age 2m --json\n\nExit status 0 when the pass is valid, 85 when it is not."
    )]
    Verify {
        /// Oldest acceptable pass (e.g. 90s, 5m) [default: 5m].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_age: Option<Duration>,
        /// Print the verified pass as JSON on stdout.
        #[arg(long, conflicts_with = "tier")]
        json: bool,
        /// Print only the tier the pass proves (the baked tier of its product code) on stdout.
        #[arg(long)]
        tier: bool,
    },
    /// Call RegisterUsage now with a nonce the workload generated, verify AWS's answer with the baked
    /// key, and print AWS's signed token on stdout for the workload to verify with its own key.
    #[command(
        after_help = "Examples:\n  token=$(mpgate pass request \"$nonce\") || exit 1\n  echo \"$nonce\" | mpgate pass request - > token\n\nExit status 0 with the token on stdout; otherwise the exit status of `mpgate exec` for the same refusal (docs/exit-codes.md)."
    )]
    Request(RequestArgs),
}

// Arguments of `mpgate pass request` (plain comment: see `ExecArgs`).
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The nonce: 1 to 255 printable ASCII characters without spaces, not starting with `mpgate1:`
    /// (e.g. 32 random hex digits); `-` reads it from the first line of stdin.
    #[arg(allow_hyphen_values = true, value_name = "NONCE")]
    pub nonce: String,
    /// Register this product code instead of the default; must be one baked into the image
    /// [env: MPGATE_PRODUCT_CODE].
    #[arg(long, value_name = "CODE")]
    pub product_code: Option<String>,
    /// Give up after this long (e.g. 90s, 5m) [env: MPGATE_DEADLINE] [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<Duration>,
}

// Arguments of `mpgate exec`. A plain comment, not `///`: with the subcommands deferred, clap would
// take a doc comment here as the subcommand's description and replace the one on `Command::Exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Register this product code instead of the default; must be one baked into the image
    /// [env: MPGATE_PRODUCT_CODE].
    #[arg(long, value_name = "CODE")]
    pub product_code: Option<String>,
    /// Give up proving entitlement after this long (e.g. 90s, 5m) [env: MPGATE_DEADLINE] [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// Where to copy the refusal line for Kubernetes, if the file exists
    /// [env: MPGATE_TERMINATION_LOG] [default: /dev/termination-log].
    #[arg(long, value_name = "PATH")]
    pub termination_log: Option<PathBuf>,
    /// Do not print the admission line on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// The workload and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

// Arguments of `mpgate supervise` (plain comment: see `ExecArgs`).
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// Run the workload in its own process group and forward signals to the whole group.
    #[arg(short, long)]
    pub group: bool,
    /// Custom metering: the spool directory for usage and sender state; must be writable and survive
    /// container restarts (an emptyDir) [env: MPGATE_SPOOL_DIR] [default: /var/run/mpgate].
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Custom metering: how long to keep sending usage after the workload exits
    /// [env: MPGATE_FLUSH_DEADLINE] [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub flush_deadline: Option<Duration>,
    /// Custom metering: while the workload runs, send each dimension's record of the hour that closed
    /// at a random moment within this long after the hour (0 to 30m; 0 sends at once)
    /// [env: MPGATE_METER_SPREAD] [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = crate::metering::spread::parse)]
    pub meter_spread: Option<Duration>,
    /// Custom metering: when AWS answers a usage record that the buyer is not entitled, stop the
    /// workload (SIGTERM, the grace period, SIGKILL; then exit 80) or only warn
    /// [env: MPGATE_ON_NOT_ENTITLED] [default: stop].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_not_entitled: Option<crate::supervise::stop::Policy>,
    /// Contract pricing: re-check the license this often, ±10 % (e.g. 15m, 1h; 1s to 24h)
    /// [env: MPGATE_LICENSE_RECHECK] [default: 15m; 24h with a License Manager license token].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub recheck: Option<Duration>,
    /// Contract pricing: when a re-check finds the license expired, cancelled or without an
    /// entitlement that admits a start: `stop` the workload (SIGTERM, the grace period, then exit 80)
    /// or `warn` and keep it running [env: MPGATE_ON_LICENSE_LOST] [default: stop].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_license_lost: Option<crate::supervise::stop::Policy>,
    /// How long the workload has between SIGTERM and SIGKILL when mpgate stops it (a lost license, a
    /// usage record refused as not entitled) [env: MPGATE_STOP_GRACE] [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_grace: Option<Duration>,
    /// Run the workload as this numeric user (and group; default: the same number) with no
    /// supplementary groups and no new privileges; mpgate must start as root and keeps root, so the
    /// workload can neither signal it nor write its spool state [env: MPGATE_USER].
    #[arg(long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Supervise a custom-metering or counted-seat image without --user even when mpgate is not
    /// PID 1, where the workload could stop it with kill -STOP [env: MPGATE_ALLOW_NOT_PID1=1].
    #[arg(long)]
    pub allow_not_pid1: bool,
    /// The same options as `mpgate exec`.
    #[command(flatten)]
    pub exec: ExecArgs,
}

// Arguments of `mpgate meter` (plain comment: see `ExecArgs`).
#[derive(Debug, clap::Args)]
pub struct MeterArgs {
    /// A dimension baked into this image (see `mpgate version`).
    pub dimension: String,
    /// Units used: an integer from 0 to 2147483647.
    #[arg(allow_hyphen_values = true)]
    pub quantity: String,
    /// Attribute the usage to a tag (a key baked for the dimension); repeat for up to 5 tags.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// The spool whose usage.log to append to: the supervisor's, which sets MPGATE_SPOOL_DIR for the
    /// workload; MPGATE_USAGE_FILE is not read [env: MPGATE_SPOOL_DIR] [default: /var/run/mpgate].
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
}

/// `90`, `90s`, `1500ms`, `5m`, `1h` → Duration (at least 1 s, at most 24 h).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 90s, 5m or 1500ms"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?} has unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
        return Err(format!("{s:?} is outside 1s..24h"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
