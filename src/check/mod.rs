//! `mpgate check`: run each step the gate would run and report it as pass / warn / fail / skip /
//! unknown, with the evidence and the fix, for a buyer's operator or a CI job.
//!
//! Owns: the report (types, verdict, human and JSON rendering). The probes are in `probes.rs`.
//! Must not: bill or hold anything: RegisterUsage starts hourly metering for the task, so it is only
//! called with `--live`. Must not print a secret.
#![forbid(unsafe_code)]

mod contract;
mod metering;
mod probes;

use crate::platform::Env;
use serde_json::json;
use std::fmt::Write as _;

/// JSON schema version of `mpgate check --json` (docs/check.md).
pub const SCHEMA_VERSION: u32 = 1;

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Works.
    Pass,
    /// Works, but something deserves attention.
    Warn,
    /// The gate would refuse because of this.
    Fail,
    /// Not applicable here, or deliberately not run.
    Skip,
    /// Could not be determined (e.g. a timeout).
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Unknown => "unknown",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Check {
    /// Stable identifier (`region`, `credentials`, ...).
    pub id: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found, with its source.
    pub summary: String,
    /// What to do, when something should change.
    pub fix: Option<String>,
}

impl Check {
    fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Check {
        Check { id, status, summary: summary.into(), fix: None }
    }
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// What the report concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed (warnings allowed).
    Pass,
    /// At least one check failed: `mpgate exec` would refuse here.
    WouldRefuse,
    /// Nothing failed, but something could not be determined.
    CouldNotTell,
}

/// Options of `mpgate check`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Only the baked identity, no environment or network.
    pub offline: bool,
    /// With `offline`: a test-flavour binary warns instead of failing.
    pub allow_test_flavour: bool,
    /// Also call the entitlement API even where that bills (RegisterUsage).
    pub live: bool,
}

/// Run the checks.
pub async fn run(env: &dyn Env, options: Options) -> Vec<Check> {
    let mut checks = probes::identity();
    checks.push(probes::flavour(options.offline && !options.allow_test_flavour));
    if options.offline {
        return checks;
    }
    checks.push(probes::overrides(env));
    checks.extend(probes::environment(env, options.live).await);
    checks
}

/// The verdict of a set of checks.
pub fn verdict(checks: &[Check]) -> Verdict {
    if checks.iter().any(|c| c.status == Status::Fail) {
        Verdict::WouldRefuse
    } else if checks.iter().any(|c| c.status == Status::Unknown) {
        Verdict::CouldNotTell
    } else {
        Verdict::Pass
    }
}

impl Verdict {
    /// Exit status of `mpgate check` (docs/exit-codes.md).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::WouldRefuse => crate::error::Class::CheckWouldRefuse.exit_code(),
            Verdict::CouldNotTell => crate::error::Class::CheckCouldNotTell.exit_code(),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::WouldRefuse => "would-refuse",
            Verdict::CouldNotTell => "could-not-tell",
        }
    }
}

/// The report for a person; `colour` adds ANSI colours to the status words.
pub fn render_text(checks: &[Check], colour: bool) -> String {
    let width = checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut s = format!("mpgate check ({} flavour)\n", crate::flavour::NAME);
    for c in checks {
        let word = c.status.as_str().to_uppercase();
        let painted = match (colour, c.status) {
            (true, Status::Pass) => format!("\x1b[32m{word:<7}\x1b[0m"),
            (true, Status::Warn | Status::Unknown) => format!("\x1b[33m{word:<7}\x1b[0m"),
            (true, Status::Fail) => format!("\x1b[31m{word:<7}\x1b[0m"),
            _ => format!("{word:<7}"),
        };
        let _ = writeln!(s, "  {painted} {:<width$}  {}", c.id, c.summary);
        if let Some(fix) = &c.fix {
            let _ = writeln!(s, "  {:<7} {:<width$}  fix: {fix}", "", "");
        }
    }
    let v = verdict(checks);
    let _ = writeln!(s, "verdict: {} (exit {})", v.as_str(), v.exit_code());
    s
}

/// The report for machines (schema in docs/check.md).
pub fn render_json(checks: &[Check]) -> String {
    let v = verdict(checks);
    json!({
        "schema_version": SCHEMA_VERSION,
        "mpgate_version": env!("CARGO_PKG_VERSION"),
        "flavour": crate::flavour::NAME,
        "verdict": v.as_str(),
        "exit_code": v.exit_code(),
        "checks": checks.iter().map(|c| json!({
            "id": c.id,
            "status": c.status.as_str(),
            "summary": c.summary,
            "fix": c.fix,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}
