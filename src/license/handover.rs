//! The entitlements file: the checkout as JSON for the workload, next to the `MPGATE_*` variables.
//!
//! Where: `$MPGATE_ENTITLEMENTS_DIR/mpgate-entitlements.json`, default directory `/tmp`. Written to a
//! fresh temporary name (O_EXCL, mode 0600) and renamed into place, so a planted symlink or a half
//! file is never read. When the directory is missing or read-only (a read-only root, `FROM scratch`
//! without /tmp) no file is written, `MPGATE_ENTITLEMENTS_FILE` stays unset and the workload has the
//! variables only; this is logged, not a refusal (the entitlement itself is proven).
//! Must not: put the consumption token in the file (it can return the seat).
#![forbid(unsafe_code)]

use super::Seat;
use crate::entitlement::Entitled;
use crate::platform::Env;
use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Default directory of the entitlements file.
pub const DEFAULT_DIR: &str = "/tmp";
/// File name inside the directory.
pub const FILE_NAME: &str = "mpgate-entitlements.json";

/// The JSON document the workload reads (schema in docs/contract.md).
pub fn document(entitled: &Entitled, seat: Seat) -> Option<serde_json::Value> {
    let l = entitled.licensed()?;
    Some(serde_json::json!({
        "product_sku": entitled.product_code(),
        "pricing_model": entitled.pricing_model().as_str(),
        "license_arn": l.license_arn,
        "license_valid_from": l.valid_from,
        "license_valid_until": l.valid_until,
        "entitlements": l.entitlements.iter().map(|a| serde_json::json!({"name": a.name, "unit": a.unit, "value": a.value})).collect::<Vec<_>>(),
        "checkout_issued_at": l.issued_at,
        "checkout_expiration": l.expiration,
        "verified_at": l.verified_at,
        "region": entitled.region().name,
        "seat": seat.as_str(),
        "signed_token": l.signed_token,
    }))
}

/// Write the file for a contract start; returns `MPGATE_ENTITLEMENTS_FILE` when it was written.
pub fn write(entitled: &Entitled, env: &dyn Env, seat: Seat) -> Vec<(OsString, OsString)> {
    let Some(doc) = document(entitled, seat) else { return Vec::new() };
    let dir = env.get("MPGATE_ENTITLEMENTS_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
    match write_atomically(&dir, doc.to_string().as_bytes()) {
        Ok(path) => vec![(OsString::from("MPGATE_ENTITLEMENTS_FILE"), path.into_os_string())],
        Err(e) => {
            crate::log::info(&format!(
                "entitlements file not written in {} ({e}); the workload gets MPGATE_ENTITLEMENTS only (set MPGATE_ENTITLEMENTS_DIR to a writable directory for the file)",
                dir.display()
            ));
            Vec::new()
        }
    }
}

fn write_atomically(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut r = [0u8; 8];
    getrandom::getrandom(&mut r).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{FILE_NAME}.{:016x}", u64::from_le_bytes(r)));
    let target = dir.join(FILE_NAME);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(target)
}
