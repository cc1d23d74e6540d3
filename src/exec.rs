//! The only place the process image is replaced.
//!
//! Takes an `Entitled` (which only the verdict can mint), adds the documented `MPGATE_*` variables to
//! the environment it was given, and `execve`s the program `program::find` found before the proof
//! (PATH lookup as execvp): same PID, argv passed byte for byte (non-UTF-8 included), `argv[0]` as
//! given. Every descriptor mpgate opened is close-on-exec (Rust
//! std and tokio open everything O_CLOEXEC, and the runtime is dropped before this runs); descriptors
//! inherited from mpgate's parent belong to the workload and pass through.
#![forbid(unsafe_code)]

use crate::entitlement::{Entitled, Proof};
use crate::error::Error;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Variables mpgate sets for the workload; any incoming value of these is replaced or removed.
pub const OUTPUT_VARS: &[&str] = &[
    "MPGATE_PRODUCT_CODE",
    "MPGATE_TIER",
    "MPGATE_PRICING_MODEL",
    "MPGATE_PUBLIC_KEY_VERSION",
    "MPGATE_NONCE",
    "MPGATE_SIGNATURE",
    "MPGATE_REGION",
    "MPGATE_VERIFIED_AT",
];

/// Variables `supervise` adds for custom metering; also replaced or removed when incoming.
pub const METERING_VARS: &[&str] = &["MPGATE_USAGE_FILE"];

/// Variables added for contract pricing (docs/contract.md), instead of the key version, nonce and
/// signature; also replaced or removed when incoming, whatever the pricing model.
pub const CONTRACT_VARS: &[&str] = &[
    "MPGATE_ENTITLEMENTS",
    "MPGATE_LICENSE_ARN",
    "MPGATE_LICENSE_VALID_FROM",
    "MPGATE_LICENSE_VALID_UNTIL",
    "MPGATE_CHECKOUT_EXPIRATION",
    "MPGATE_ENTITLEMENTS_FILE",
];

/// The variables describing what was verified, in `OUTPUT_VARS` order. Custom metering has no
/// signed pass: the key version, nonce and signature are left unset (`MPGATE_USAGE_FILE` is added
/// by `supervise`, which owns the spool).
pub fn verdict_env(e: &Entitled) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("MPGATE_PRODUCT_CODE", e.product_code().to_string()),
        ("MPGATE_TIER", e.tier().to_string()),
        ("MPGATE_PRICING_MODEL", e.pricing_model().as_str().to_string()),
    ];
    let verified_at = match e.proof() {
        Proof::Registered(r) => {
            env.push(("MPGATE_PUBLIC_KEY_VERSION", r.key_version.to_string()));
            env.push(("MPGATE_NONCE", r.nonce.clone()));
            env.push(("MPGATE_SIGNATURE", r.signature.clone()));
            r.issued_at
        }
        Proof::Probed(p) => p.verified_at,
        Proof::Licensed(l) => {
            let list: Vec<String> = l
                .entitlements
                .iter()
                .map(|a| match &a.value {
                    Some(v) if a.unit != "None" => format!("{}:{}:{v}", a.name, a.unit),
                    _ => format!("{}:{}", a.name, a.unit),
                })
                .collect();
            env.push(("MPGATE_ENTITLEMENTS", list.join(",")));
            env.push(("MPGATE_LICENSE_ARN", l.license_arn.clone()));
            env.push(("MPGATE_LICENSE_VALID_FROM", l.valid_from.clone()));
            if let Some(end) = &l.valid_until {
                env.push(("MPGATE_LICENSE_VALID_UNTIL", end.clone()));
            }
            env.push(("MPGATE_CHECKOUT_EXPIRATION", l.expiration.clone()));
            l.verified_at
        }
    };
    env.push(("MPGATE_REGION", e.region().name.clone()));
    env.push(("MPGATE_VERIFIED_AT", verified_at.to_string()));
    env
}

/// The workload's environment: `base_env` without any incoming `MPGATE_*` variable mpgate sets, plus
/// the verdict, plus `extra` variables set by the caller (from `METERING_VARS` or `CONTRACT_VARS`).
pub fn child_env(
    entitled: &Entitled,
    base_env: Vec<(OsString, OsString)>,
    extra: Vec<(OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = base_env
        .into_iter()
        .filter(|(k, _)| {
            !OUTPUT_VARS.iter().chain(METERING_VARS).chain(CONTRACT_VARS).any(|o| k.as_bytes() == o.as_bytes())
        })
        .collect();
    env.extend(verdict_env(entitled).into_iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
    env.extend(extra);
    env
}

/// Replace this process with `program` (what `argv[0]` names, as `program::find` found it), its
/// arguments `argv`, its environment `child_env(entitled, base_env, extra)`. Returns only if the
/// exec failed.
pub fn exec(
    entitled: Entitled,
    program: &Path,
    argv: &[OsString],
    base_env: Vec<(OsString, OsString)>,
    extra: Vec<(OsString, OsString)>,
) -> Error {
    if argv.is_empty() {
        return Error::Usage("no command given after --".into());
    }
    let mut env: Vec<CString> = Vec::with_capacity(base_env.len() + OUTPUT_VARS.len());
    for (k, v) in child_env(&entitled, base_env, extra) {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        match CString::new(kv) {
            Ok(c) => env.push(c),
            // A real environment entry has no NUL inside; a verdict value never does.
            Err(_) => return Error::Internal(format!("environment entry {k:?} contains a NUL byte")),
        }
    }
    let mut args = Vec::with_capacity(argv.len());
    for a in argv {
        match CString::new(a.as_bytes()) {
            Ok(c) => args.push(c),
            Err(_) => return Error::Usage(format!("argument {a:?} contains a NUL byte")),
        }
    }
    let name = argv[0].to_string_lossy().into_owned();
    let Ok(file) = CString::new(program.as_os_str().as_bytes()) else {
        return Error::Usage(format!("program {program:?} contains a NUL byte"));
    };
    match nix::unistd::execve(&file, &args, &env) {
        Ok(never) => match never {},
        Err(errno) => Error::Exec { program: name, errno },
    }
}
