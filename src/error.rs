//! The one error type of mpgate and the one table that maps each failure class to an exit status.
//!
//! Owns: how every refusal is worded (one line, `mpgate: ` prefix, lower case, what failed and what
//! to do) and which exit status it gets. `docs/exit-codes.md` mirrors `EXIT_TABLE`; a test pins both.
//! Must not: decide policy (that is `entitlement`), or print (that is `main`).
#![forbid(unsafe_code)]

use std::fmt;

/// A class of failure; each has exactly one exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Bad command line.
    Usage,
    /// AWS said the buyer is not entitled.
    NotEntitled,
    /// Entitlement could not be proven in time (throttling, 5xx, network, deadline).
    CannotVerify,
    /// The environment cannot work as it is (region, credentials, platform, IAM, signature).
    Misconfigured,
    /// This binary was built without a valid product identity.
    BadBuild,
    /// `mpgate pass verify`: no valid, fresh gate pass for this container.
    NoPass,
    /// `mpgate check`: at least one check failed.
    CheckWouldRefuse,
    /// `mpgate check`: nothing failed but something could not be determined.
    CheckCouldNotTell,
    /// `mpgate check`: nothing failed, but the subscription and IAM permission were not verified
    /// (no `--live`).
    CheckUnverified,
    /// A bug or resource exhaustion inside mpgate.
    Internal,
    /// The workload was found but could not be executed.
    ExecNotExecutable,
    /// The workload was not found.
    ExecNotFound,
    /// A stop signal (`signals::STOP`) ended the start before the workload ran: 128 + its number.
    StoppedByHup,
    /// See `StoppedByHup`.
    StoppedByInt,
    /// See `StoppedByHup`.
    StoppedByQuit,
    /// See `StoppedByHup`.
    StoppedByTerm,
}

/// Exit status, name and meaning of each class: the single source for `docs/exit-codes.md`.
pub const EXIT_TABLE: &[(Class, u8, &str, &str)] = &[
    (Class::Usage, 2, "usage", "the command line is wrong; see `mpgate --help`"),
    (Class::NotEntitled, 80, "not-entitled", "AWS Marketplace says this AWS account is not subscribed to the product"),
    (Class::CannotVerify, 81, "cannot-verify", "entitlement could not be proven before the deadline (throttling, AWS errors, network); retrying later may succeed"),
    (Class::Misconfigured, 82, "misconfigured", "the environment cannot work as it is: region, credentials, platform, IAM permission, product code or key version, or a response that failed verification"),
    (Class::BadBuild, 83, "bad-build", "this mpgate binary carries no valid product identity; the seller must rebuild it"),
    (Class::Internal, 84, "internal", "an internal error in mpgate (a bug or resource exhaustion)"),
    (Class::NoPass, 85, "no-gate-pass", "`mpgate pass verify`: the environment carries no valid, fresh gate pass for this container"),
    (Class::CheckWouldRefuse, 86, "check-would-refuse", "`mpgate check`: at least one check failed, so `mpgate exec` would refuse here"),
    (Class::CheckCouldNotTell, 87, "check-could-not-tell", "`mpgate check`: nothing failed, but something could not be determined (e.g. a timeout)"),
    (Class::CheckUnverified, 88, "check-unverified", "`mpgate check`: nothing failed, but the subscription and IAM permission were not verified because that would bill or take a seat; `--live` verifies them"),
    (Class::ExecNotExecutable, 126, "exec-not-executable", "the workload was found but could not be executed (permission, format)"),
    (Class::ExecNotFound, 127, "exec-not-found", "the workload program was not found (PATH lookup as execvp)"),
    (Class::StoppedByHup, 129, "stopped-by-sighup", "SIGHUP arrived before the workload started: no workload, any license seat taken was checked in"),
    (Class::StoppedByInt, 130, "stopped-by-sigint", "SIGINT arrived before the workload started: no workload, any license seat taken was checked in"),
    (Class::StoppedByQuit, 131, "stopped-by-sigquit", "SIGQUIT arrived before the workload started: no workload, any license seat taken was checked in"),
    (Class::StoppedByTerm, 143, "stopped-by-sigterm", "SIGTERM arrived before the workload started (`docker stop`): no workload, any license seat taken was checked in"),
];

impl Class {
    /// The class's name as in `docs/exit-codes.md`, e.g. `not-entitled`.
    pub fn name(self) -> &'static str {
        EXIT_TABLE.iter().find(|row| row.0 == self).map_or("internal", |row| row.2)
    }

    /// The process exit status for this class.
    pub fn exit_code(self) -> u8 {
        EXIT_TABLE.iter().find(|row| row.0 == self).map_or(84, |row| row.1)
    }
}

/// Every way mpgate can refuse. `Display` is the one stderr line without the `mpgate: ` prefix; it
/// always starts with the class's name (`not-entitled: `, `misconfigured: `, …), which
/// docs/operating.md promises operators as the stable part of the line.
#[derive(Debug)]
pub enum Error {
    /// Bad command line or run-time setting.
    Usage(String),
    /// No identity was baked into this build.
    Unbaked,
    /// A run-time product code that is not in the baked list.
    UntrustedProductCode(String),
    /// No region from any source.
    NoRegion(String),
    /// A region that is not an AWS region name or belongs to no AWS partition (the message names
    /// it and where it came from).
    UnknownRegion(String),
    /// No credentials from any source, or a source that cannot work.
    Credentials { class: Class, detail: String },
    /// An error answer from AWS.
    Aws { class: Class, call: &'static str, code: String, message: String, request_id: Option<String>, advice: String },
    /// The answer came back but did not verify.
    BadSignature(String),
    /// Transient failures until the start-up deadline ran out.
    Deadline { secs: u64, last: String },
    /// The workload could not be executed.
    Exec { program: String, errno: nix::errno::Errno },
    /// The workload's program cannot be run, found before any AWS call (`program::find`): not
    /// found (127) or found but not executable (126).
    NotRunnable { class: Class, program: String, why: String },
    /// The gate pass did not verify.
    NoPass(String),
    /// Contract pricing refused the start for a reason that is not an AWS error code (e.g. no
    /// admitting entitlement among those allowed).
    License { class: Class, detail: String },
    /// The custom-metering spool cannot be used (missing, read-only, corrupt state).
    Spool(String),
    /// A variable in the environment would let it choose where mpgate's AWS calls go (the message
    /// names it and says what to do).
    UnsafeEnvironment(String),
    /// The TLS certificate presented for an AWS endpoint did not verify against the compiled-in roots
    /// (TLS interception, or the name resolving to another server): no retry can fix it.
    /// `via` names the proxy whose `CONNECT` tunnel the TLS ran in, when there was one.
    UntrustedCertificate { call: &'static str, host: String, problem: String, via: Option<String> },
    /// The egress proxy settings cannot be used, or the proxy refused a `CONNECT` for a reason no
    /// retry changes (407, 403): the message names the proxy (never its credentials) and what to do.
    Proxy(String),
    /// The endpoint answered with an HTTP redirect that is not an AWS error answer: AWS's APIs do not
    /// redirect, and neither the SDK nor mpgate follows one, so no retry can fix it.
    Redirected { call: &'static str, status: u16, location: Option<String> },
    /// A stop signal arrived before the workload started; `seat` says what became of a license
    /// seat the start had taken (empty when it took none).
    Stopped { signal: nix::sys::signal::Signal, seat: String },
    /// The AWS SDK could not build or send the request for a reason no retry changes (it failed to
    /// construct it, or one of its interceptors refused it): final at once.
    Unsendable { call: &'static str, detail: String },
    /// A bug or resource exhaustion.
    Internal(String),
}

impl Error {
    /// The class, hence the exit status.
    pub fn class(&self) -> Class {
        match self {
            Error::Usage(_) => Class::Usage,
            Error::Unbaked => Class::BadBuild,
            Error::UntrustedProductCode(_)
            | Error::NoRegion(_)
            | Error::UnknownRegion(_)
            | Error::BadSignature(_)
            | Error::Spool(_)
            | Error::UnsafeEnvironment(_)
            | Error::Proxy(_)
            | Error::UntrustedCertificate { .. }
            | Error::Redirected { .. }
            | Error::Unsendable { .. } => Class::Misconfigured,
            Error::Credentials { class, .. }
            | Error::Aws { class, .. }
            | Error::License { class, .. }
            | Error::NotRunnable { class, .. } => *class,
            Error::Deadline { .. } => Class::CannotVerify,
            Error::Exec { errno, .. } => match errno {
                nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => Class::ExecNotFound,
                _ => Class::ExecNotExecutable,
            },
            Error::NoPass(_) => Class::NoPass,
            Error::Stopped { signal, .. } => match signal {
                nix::sys::signal::Signal::SIGHUP => Class::StoppedByHup,
                nix::sys::signal::Signal::SIGINT => Class::StoppedByInt,
                nix::sys::signal::Signal::SIGQUIT => Class::StoppedByQuit,
                _ => Class::StoppedByTerm,
            },
            Error::Internal(_) => Class::Internal,
        }
    }
}

impl Error {
    /// A not-entitled refusal with the AWS account that was judged, so the operator knows which
    /// account must subscribe; any other error unchanged.
    pub fn with_account(self, account: &str) -> Error {
        let note = format!(" (the calls were signed by AWS account {account})");
        match self {
            Error::Aws { class: Class::NotEntitled, call, code, message, request_id, advice } => {
                Error::Aws { class: Class::NotEntitled, call, code, message, request_id, advice: advice + &note }
            }
            Error::License { class: Class::NotEntitled, detail } => {
                Error::License { class: Class::NotEntitled, detail: detail + &note }
            }
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = self.class().name();
        let body = Body(self).to_string();
        // A detail built elsewhere (a license refusal) may already open with its class word.
        match body.strip_prefix(class).and_then(|rest| rest.strip_prefix(": ")) {
            Some(_) => f.write_str(&body),
            None => write!(f, "{class}: {body}"),
        }
    }
}

/// The refusal's text after its class word.
struct Body<'a>(&'a Error);

impl fmt::Display for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Error::Usage(m) => write!(f, "{m}; see mpgate --help"),
            Error::Unbaked => f.write_str(
                "this binary has no product identity baked in; the seller must rebuild mpgate with MPGATE_PRODUCT_CODE, MPGATE_PRICING_MODEL and MPGATE_PUBLIC_KEYS",
            ),
            Error::UntrustedProductCode(c) => write!(
                f,
                "product code {c:?} was requested at run time but is not one this image trusts; unset MPGATE_PRODUCT_CODE / --product-code or pick a code listed by `mpgate version`"
            ),
            Error::NoRegion(tried) => write!(
                f,
                "no AWS region found (tried {tried}); set AWS_REGION to the region the task or pod runs in"
            ),
            Error::Credentials { detail, .. } | Error::License { detail, .. } => write!(f, "{detail}"),
            Error::Aws { call, code, message, request_id, advice, .. } => {
                write!(f, "{call} answered {code}")?;
                if !message.is_empty() {
                    write!(f, ": {}", one_line(message))?;
                }
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                write!(f, "; {advice}")
            }
            Error::BadSignature(why) => write!(
                f,
                "the RegisterUsage answer did not verify: {why}; refusing to start (this is not a network problem: the image's baked key or the endpoint it reached is wrong)"
            ),
            Error::Deadline { secs, last } => write!(
                f,
                "could not verify entitlement within the {secs}s start-up deadline (last error: {}); the container may be restarted to try again, or raise --deadline",
                one_line(last)
            ),
            Error::Exec { program, errno } => write!(
                f,
                "cannot execute {program:?}: {}; check the image's CMD and PATH",
                errno.desc().to_lowercase()
            ),
            Error::NotRunnable { program, why, .. } => write!(
                f,
                "cannot execute {program:?}: {why}; check the image's CMD and PATH (nothing was sent to AWS)"
            ),
            Error::NoPass(why) => write!(
                f,
                "no valid gate pass: {why}; start this container through its ENTRYPOINT (mpgate exec) and check the pass right away"
            ),
            Error::Spool(m) | Error::UnsafeEnvironment(m) | Error::UnknownRegion(m) | Error::Proxy(m) => f.write_str(m),
            Error::UntrustedCertificate { call, host, problem, via: Some(proxy) } => write!(
                f,
                "{call} did not reach AWS: the TLS certificate presented for {host} through the proxy {proxy} {problem}; mpgate verifies TLS with AWS end to end inside the proxy's CONNECT tunnel, so a proxy that intercepts TLS is refused: exempt {host} from TLS interception on the proxy (docs/operating.md, Behind an HTTP proxy; mpgate trusts only the Mozilla root certificates compiled into it and never reads SSL_CERT_FILE or AWS_CA_BUNDLE)"
            ),
            Error::UntrustedCertificate { call, host, problem, via: None } => write!(
                f,
                "{call} did not reach AWS: the TLS certificate presented for {host} {problem}; something between this container and AWS intercepts TLS (a proxy or firewall), or {host} resolves to a server that is not AWS; let {host} through without TLS interception (mpgate trusts only the Mozilla root certificates compiled into it and never reads SSL_CERT_FILE or AWS_CA_BUNDLE)"
            ),
            Error::Redirected { call, status, location } => write!(
                f,
                "{call} was answered with an HTTP {status} redirect{}, which no AWS endpoint sends and mpgate does not follow; something between this container and AWS answers in its place (a proxy, a captive portal, or the endpoint's name resolving to another server): let the AWS endpoint through",
                location.as_deref().map(|l| format!(" to {l:?}")).unwrap_or_default()
            ),
            Error::Stopped { signal, seat } => write!(
                f,
                "{signal} arrived before the workload started, so it was not started{seat}; start the container again to run it"
            ),
            Error::Unsendable { call, detail } => write!(
                f,
                "{call} could not be sent: the AWS SDK could not build the request ({}); no retry can fix it: check this container's AWS_* variables (AWS_EXECUTION_ENV among them), and report it if they look right",
                one_line(detail)
            ),
            Error::Internal(m) => write!(f, "{m}; please report it"),
        }
    }
}

impl std::error::Error for Error {}

/// An error and its sources as one line of their `Display` texts joined by ": ", leaving out a source
/// whose text the line already holds (the SDK's wrappers often repeat their cause). Unlike the SDK's
/// `DisplayErrorContext`, it appends no `Debug` dump of the whole chain (response bodies and all).
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(e);
    // Bounded: a chain is a handful of wrappers; a cycle would otherwise never end.
    for _ in 0..32 {
        let Some(err) = next else { break };
        let text = one_line(&err.to_string());
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = err.source();
    }
    line
}

/// Collapse whitespace so an AWS message cannot break the one-line contract.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::{Class, Error, EXIT_TABLE};
    use nix::errno::Errno;
    use nix::sys::signal::Signal;

    /// One of every variant (and every class a variant can carry).
    fn every_refusal() -> Vec<Error> {
        let mut all = vec![
            Error::Usage("--deadline needs a duration".into()),
            Error::Unbaked,
            Error::UntrustedProductCode("other".into()),
            Error::NoRegion("AWS_REGION, IMDS".into()),
            Error::UnknownRegion("AWS_REGION=\"xx-fake-1\" is in no AWS partition".into()),
            Error::BadSignature("the nonce differs".into()),
            Error::Deadline { secs: 300, last: "ThrottlingException".into() },
            Error::Exec { program: "server".into(), errno: Errno::ENOENT },
            Error::Exec { program: "server".into(), errno: Errno::EACCES },
            Error::NoPass("expired".into()),
            Error::Spool("/var/lib/mpgate is read-only; mount a volume".into()),
            Error::UnsafeEnvironment("SMITHY_CLIENT_SDK_CUSTOM_PARTITION is set; unset it".into()),
            Error::UntrustedCertificate {
                call: "RegisterUsage",
                host: "h".into(),
                problem: "has expired".into(),
                via: None,
            },
            Error::UntrustedCertificate {
                call: "RegisterUsage",
                host: "h".into(),
                problem: "is not issued by a public certificate authority".into(),
                via: Some("http://proxy.corp:3128 (HTTPS_PROXY)".into()),
            },
            Error::Proxy("the proxy http://proxy.corp:3128 (HTTPS_PROXY) answered 407".into()),
            Error::Redirected { call: "RegisterUsage", status: 307, location: Some("http://elsewhere/".into()) },
            Error::Unsendable { call: "RegisterUsage", detail: "bad header".into() },
            Error::Internal("out of memory".into()),
        ];
        for class in [Class::NotEntitled, Class::CannotVerify, Class::Misconfigured] {
            all.push(Error::Credentials { class, detail: "cannot load credentials from EKS IRSA: …".into() });
            all.push(Error::License { class, detail: "the license … has expired".into() });
            all.push(Error::Aws {
                class,
                call: "RegisterUsage",
                code: "CustomerNotEntitledException".into(),
                message: "no".into(),
                request_id: Some("r-1".into()),
                advice: "subscribe".into(),
            });
        }
        for class in [Class::ExecNotFound, Class::ExecNotExecutable] {
            all.push(Error::NotRunnable { class, program: "server".into(), why: "not found in PATH".into() });
        }
        for signal in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM] {
            all.push(Error::Stopped { signal, seat: String::new() });
        }
        all
    }

    /// docs/operating.md promises that every refusal line opens with its class word, once.
    #[test]
    fn every_refusal_opens_with_its_class_word_once() {
        for e in every_refusal() {
            let line = e.to_string();
            let word = e.class().name();
            let rest = line.strip_prefix(&format!("{word}: ")).unwrap_or_else(|| panic!("{word}: {line}"));
            assert!(!rest.starts_with(&format!("{word}:")), "class word twice: {line}");
            assert!(EXIT_TABLE.iter().any(|row| row.2 == word), "{word} is not in the exit table");
        }
    }

    /// A detail that already opens with its class word (a license refusal) is not prefixed twice.
    #[test]
    fn a_detail_with_its_class_word_keeps_one() {
        let e = Error::License { class: Class::NotEntitled, detail: "not-entitled: the license has expired".into() };
        assert_eq!(e.to_string(), "not-entitled: the license has expired");
    }

    #[test]
    fn a_not_entitled_refusal_names_the_account_and_no_other_does() {
        let not_entitled = Error::Aws {
            class: Class::NotEntitled,
            call: "RegisterUsage",
            code: "CustomerNotEntitledException".into(),
            message: String::new(),
            request_id: None,
            advice: "subscribe".into(),
        };
        assert!(not_entitled.with_account("111122223333").to_string().contains("AWS account 111122223333"));
        let other = Error::NoRegion("AWS_REGION".into()).with_account("111122223333");
        assert!(!other.to_string().contains("111122223333"));
    }
}
