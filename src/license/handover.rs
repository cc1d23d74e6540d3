//! The entitlements file: the checkout as JSON for the workload, next to the `MPGATE_*` variables.
//!
//! Where: `$MPGATE_ENTITLEMENTS_DIR/mpgate-entitlements.json`, default directory `/tmp`. Written to a
//! fresh temporary name (O_EXCL, mode 0600) and renamed into place, so a planted symlink or a half
//! file is never read. When the directory is missing or read-only (a read-only root, `FROM scratch`
//! without /tmp) no file is written, `MPGATE_ENTITLEMENTS_FILE` stays unset and the workload has the
//! variables only; this is logged, not a refusal (the entitlement itself is proven).
//! `supervise` keeps the file current (`Live`): after every re-check of the license it is replaced the
//! same way, so a reader sees the old document or the new one, never a mix.
//! Under `supervise --user` the workload's user reads the file and cannot change it: it is mpgate's,
//! group the workload's gid, mode 0640; and it is not written at all (logged, as for a read-only
//! directory) in a directory that user could write to, unless the directory is sticky (`/tmp`), where
//! it cannot replace a file that is not its own.
//! Must not: put the consumption token in the file (it can return the seat).
#![forbid(unsafe_code)]

use super::Seat;
use crate::entitlement::contract::Allowed;
use crate::entitlement::validity::Standing;
use crate::entitlement::Entitled;
use crate::platform::Env;
use crate::supervise::user::User;
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
    let mut doc = serde_json::json!({
        "product_sku": entitled.product_code(),
        "pricing_model": entitled.pricing_model().as_str(),
        "license_arn": l.license_arn,
        "license_valid_from": l.valid_from,
        "license_valid_until": l.valid_until,
        "license_status": "AVAILABLE",
        "license_lost": null,
        "entitlements": [],
        "checkout_issued_at": l.issued_at,
        "checkout_expiration": l.expiration,
        "verified_at": l.verified_at,
        "rechecked_at": null,
        "region": entitled.region().name,
        "seat": seat.as_str(),
        "signed_token": l.signed_token,
        "env": {},
    });
    set_entitlements(&mut doc, &l.entitlements);
    Some(doc)
}

/// The entitlements in the document, and the `env` object: the documented variables as they would
/// be set now (`MPGATE_ENTITLEMENTS`, `MPGATE_LICENSE_VALID_FROM`, `MPGATE_LICENSE_VALID_UNTIL`), for
/// workloads that read them again while running: a process's own environment cannot change.
fn set_entitlements(doc: &mut serde_json::Value, allowed: &[Allowed]) {
    doc["entitlements"] = allowed
        .iter()
        .map(|a| serde_json::json!({"name": a.name, "unit": a.unit, "value": a.value}))
        .collect::<Vec<_>>()
        .into();
    let listed = allowed
        .iter()
        .map(|a| match &a.value {
            Some(v) if a.unit != "None" => format!("{}:{}:{v}", a.name, a.unit),
            _ => format!("{}:{}", a.name, a.unit),
        })
        .collect::<Vec<_>>()
        .join(",");
    doc["env"] = serde_json::json!({
        "MPGATE_ENTITLEMENTS": listed,
        "MPGATE_LICENSE_VALID_FROM": doc["license_valid_from"].clone(),
        "MPGATE_LICENSE_VALID_UNTIL": doc["license_valid_until"].clone(),
    });
}

/// A written hand-over file the supervisor keeps current.
pub struct Live {
    dir: PathBuf,
    doc: serde_json::Value,
    reader: Option<User>,
}

impl Live {
    /// Replace the file (temporary name, then rename) after a re-check at `now` (Unix seconds):
    /// the license's dates and status, the entitlements it allows now, and why it counts as lost
    /// while it does (`None` once it holds again).
    pub fn update(&mut self, standing: &Standing, allowed: Option<&[Allowed]>, lost: Option<&str>, now: u64) {
        self.doc["license_valid_from"] = standing.valid_from.clone().into();
        self.doc["license_valid_until"] = standing.valid_until.clone().into();
        self.doc["license_status"] = standing.status.clone().into();
        self.doc["license_lost"] = lost.map(str::to_string).into();
        self.doc["rechecked_at"] = now.into();
        if let Some(allowed) = allowed {
            set_entitlements(&mut self.doc, allowed);
        } else {
            let (from, until) = (self.doc["license_valid_from"].clone(), self.doc["license_valid_until"].clone());
            self.doc["env"]["MPGATE_LICENSE_VALID_FROM"] = from;
            self.doc["env"]["MPGATE_LICENSE_VALID_UNTIL"] = until;
        }
        self.rewrite();
    }

    /// Record where the seat is now (`held`, or `returned` once it went back to the pool).
    pub fn set_seat(&mut self, seat: Seat) {
        if self.doc["seat"] != seat.as_str() {
            self.doc["seat"] = seat.as_str().into();
            self.rewrite();
        }
    }

    fn rewrite(&self) {
        if let Err(e) = write_atomically(&self.dir, self.doc.to_string().as_bytes(), self.reader) {
            crate::log::warn(&format!("could not update the entitlements file in {} ({e})", self.dir.display()));
        }
    }
}

/// Write the file for a contract start; returns `MPGATE_ENTITLEMENTS_FILE` when it was written, and
/// the file to keep current. `reader`: the workload's user under `supervise --user`.
pub fn write(
    entitled: &Entitled,
    env: &dyn Env,
    seat: Seat,
    reader: Option<User>,
) -> (Vec<(OsString, OsString)>, Option<Live>) {
    let Some(doc) = document(entitled, seat) else { return (Vec::new(), None) };
    let dir = env.get("MPGATE_ENTITLEMENTS_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
    if let Some(user) = reader {
        if std::fs::metadata(&dir).is_ok_and(|m| user.may_write(&m, true)) {
            crate::log::warn(&format!(
                "entitlements file not written: uid {} (--user) can write {} and so replace the file; the workload gets MPGATE_ENTITLEMENTS only (set MPGATE_ENTITLEMENTS_DIR to a directory only root can write, or /tmp)",
                user.uid,
                dir.display()
            ));
            return (Vec::new(), None);
        }
    }
    match write_atomically(&dir, doc.to_string().as_bytes(), reader) {
        Ok(path) => {
            (vec![(OsString::from("MPGATE_ENTITLEMENTS_FILE"), path.into_os_string())], Some(Live { dir, doc, reader }))
        }
        Err(e) => {
            crate::log::info(&format!(
                "entitlements file not written in {} ({e}); the workload gets MPGATE_ENTITLEMENTS only (set MPGATE_ENTITLEMENTS_DIR to a writable directory for the file)",
                dir.display()
            ));
            (Vec::new(), None)
        }
    }
}

/// Write `bytes` to a fresh temporary name, then rename it into place; with `reader`, the file is
/// readable by the reader's group before it gets its name.
fn write_atomically(dir: &Path, bytes: &[u8], reader: Option<User>) -> std::io::Result<PathBuf> {
    let mut r = [0u8; 8];
    getrandom::getrandom(&mut r).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{FILE_NAME}.{:016x}", u64::from_le_bytes(r)));
    let target = dir.join(FILE_NAME);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let readable = match reader {
        Some(user) => std::os::unix::fs::fchown(&f, None, Some(user.gid)).and_then(|()| {
            f.set_permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o640))
        }),
        None => Ok(()),
    };
    let written = readable
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(target)
}
