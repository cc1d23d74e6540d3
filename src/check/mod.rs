//! `mpgate check`: run each step the gate would run and report it as pass / warn / fail / skip /
//! unknown, with the evidence, the method that found it and the fix, for a buyer's operator or a CI
//! job. What was deliberately not verified (the subscription and IAM permission of an hourly or
//! contract build without `--live`) makes the verdict `unverified`, never `pass`.
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
pub const SCHEMA_VERSION: u32 = 2;

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
    /// How the row was found (a local read, which call to AWS, or none).
    pub method: String,
    /// Deliberately not verified (it would bill or hold something): the verdict cannot be `pass`.
    pub unverified: bool,
}

impl Check {
    fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Check {
        Check {
            id,
            status,
            summary: summary.into(),
            fix: None,
            method: default_method(id).to_string(),
            unverified: false,
        }
    }
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
    fn via(mut self, method: impl Into<String>) -> Check {
        self.method = method.into();
        self
    }
    fn unverified(mut self) -> Check {
        self.unverified = true;
        self
    }
}

/// How each row is found unless the probe says otherwise.
fn default_method(id: &str) -> &'static str {
    match id {
        "identity" | "flavour" => "read from this binary (no call)",
        "overrides" => "environment variables (no call)",
        "platform" => "environment variables and the imds row (no AWS call)",
        "imds" => "IMDSv2 token and placement/region (link-local HTTP, no AWS API call)",
        "region" => "the gate's region chain (environment, ECS task metadata, IMDS)",
        "irsa-token" => "reads the token file (no call)",
        "proxy" => "HTTPS_PROXY, ALL_PROXY, NO_PROXY (no call)",
        "credentials" => "the gate's credential chain (ECS or Pod Identity endpoint, STS AssumeRoleWithWebIdentity; none of them bills)",
        "endpoint" => "HTTPS GET of the endpoint's root (DNS, TLS, Date header; no AWS API call)",
        "entitlement" => "not called",
        "environment" => "not probed",
        "http-client" => "building the HTTP client (no call)",
        _ => "",
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
    /// Nothing failed and nothing timed out, but something was deliberately not verified (the
    /// subscription and IAM permission without `--live`).
    Unverified,
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
    } else if checks.iter().any(|c| c.unverified) {
        Verdict::Unverified
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
            Verdict::Unverified => crate::error::Class::CheckUnverified.exit_code(),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::WouldRefuse => "would-refuse",
            Verdict::CouldNotTell => "could-not-tell",
            Verdict::Unverified => "unverified",
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
        let _ = writeln!(s, "  {:<7} {:<width$}  via: {}", "", "", c.method);
        if let Some(fix) = &c.fix {
            let _ = writeln!(s, "  {:<7} {:<width$}  fix: {fix}", "", "");
        }
    }
    let v = verdict(checks);
    let _ = writeln!(s, "verdict: {} (exit {})", v.as_str(), v.exit_code());
    let unverified: Vec<&str> = checks.iter().filter(|c| c.unverified).map(|c| c.id).collect();
    if v == Verdict::Unverified {
        let _ = writeln!(s, "not verified: {} (see above; mpgate check --live verifies it)", unverified.join(", "));
    }
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
        "not_verified": checks.iter().filter(|c| c.unverified).map(|c| c.id).collect::<Vec<_>>(),
        "checks": checks.iter().map(|c| json!({
            "id": c.id,
            "status": c.status.as_str(),
            "summary": c.summary,
            "method": c.method,
            "fix": c.fix,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}
