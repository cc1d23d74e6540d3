//! Privilege separation for `supervise`: `--user UID[:GID]` (or `MPGATE_USER`) runs the workload as
//! that numeric user while mpgate keeps root, as gosu and su-exec do: supplementary groups cleared
//! (std's `CommandExt::uid` calls `setgroups(0)` when it drops from root), no new privileges (set on
//! the supervisor before the spawn and inherited: a set-uid program in the image cannot give the
//! workload root back), and capabilities gone with the uid change. The workload then cannot signal
//! mpgate (`kill` needs a matching uid) nor write what mpgate owns (the spool but `usage.log`, the
//! entitlements file).
//! Also the rule for supervising without it: a custom-metering or counted-seat image refuses to be
//! supervised when mpgate is not PID 1, unless `--allow-not-pid1` (or `MPGATE_ALLOW_NOT_PID1=1`) is
//! given, because the workload could stop its parent (`kill -STOP $PPID`) and freeze the hourly
//! records or the seat. The kernel drops a signal sent to a PID namespace's init from inside the
//! namespace unless the init handles it, and SIGSTOP cannot be handled, so as PID 1 mpgate is safe.
//! Names are not supported: they need /etc/passwd, which images `FROM scratch` lack.
//! Must not: decide entitlement, or run anything in the child between fork and exec (no `unsafe`).
#![forbid(unsafe_code)]

use crate::error::Error;
use crate::identity::{self, PricingModel};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

/// The workload's numeric user and group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id (the uid's number when not given).
    pub gid: u32,
}

impl User {
    /// `UID` or `UID:GID`, both numbers, neither 0 (root would undo the separation).
    pub fn parse(value: &str) -> Result<User, String> {
        let (uid, gid) = match value.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (value, None),
        };
        let number = |part: &str, what: &str| -> Result<u32, String> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{value:?} is not UID[:GID]: the {what} must be a number (names need /etc/passwd, which images FROM scratch lack; `id -u NAME` gives the number)"
                ));
            }
            match part.parse::<u32>() {
                Ok(0) => Err(format!(
                    "{value:?} names {what} 0 (root): the workload could then signal mpgate and write its spool; give a non-root {what}, or leave --user out"
                )),
                Ok(n) if n != u32::MAX => Ok(n),
                _ => Err(format!("{value:?}: the {what} must be below 4294967295")),
            }
        };
        let uid = number(uid, "uid")?;
        let gid = match gid {
            Some(g) => number(g, "gid")?,
            None => uid,
        };
        Ok(User { uid, gid })
    }

    /// Whether this user could create, rename or remove entries of the directory `meta` describes,
    /// or write the file it describes: owner (who may chmod), group or others with write permission.
    /// A sticky directory (`/tmp`) lets others create entries but not touch this user's, so it
    /// counts as not writable when `sticky_ok`.
    pub fn may_write(&self, meta: &std::fs::Metadata, sticky_ok: bool) -> bool {
        let mode = meta.permissions().mode();
        if sticky_ok && meta.is_dir() && mode & 0o1000 != 0 && meta.uid() != self.uid {
            return false;
        }
        meta.uid() == self.uid || (meta.gid() == self.gid && mode & 0o020 != 0) || mode & 0o002 != 0
    }
}

/// The workload's user: the flag, then `MPGATE_USER`; refused when mpgate is not root (`euid`).
pub fn resolve(flag: Option<&str>, var: Option<String>, euid: u32) -> Result<Option<User>, Error> {
    let Some((value, name)) = flag.map(|f| (f.to_string(), "--user")).or(var.map(|v| (v, "MPGATE_USER"))) else {
        return Ok(None);
    };
    let user = User::parse(&value).map_err(|why| Error::Usage(format!("{name}: {why}")))?;
    if euid != 0 {
        return Err(Error::Usage(format!(
            "{name} {value} needs mpgate to start as root to run the workload as another user, but it runs as uid {euid}; keep the image's USER root (mpgate keeps root, the workload gets uid {}) or leave {name} out",
            user.uid
        )));
    }
    Ok(Some(user))
}

/// `MPGATE_ALLOW_NOT_PID1`: `1`/`true` or `0`/`false`.
pub fn allow_not_pid1(flag: bool, var: Option<String>) -> Result<bool, Error> {
    match var.as_deref().map(str::to_ascii_lowercase).as_deref() {
        _ if flag => Ok(true),
        None | Some("" | "0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(Error::Usage(format!("MPGATE_ALLOW_NOT_PID1: {other:?} is neither 1 nor 0"))),
    }
}

/// What this image's supervisor must keep doing while the workload runs, if anything a stopped
/// supervisor would silently not do: send custom metering's hourly records, or extend a counted
/// seat (a baked entitlement with the `Count` unit).
pub fn duty() -> Option<String> {
    let baked = identity::BAKED.as_ref()?;
    match baked.pricing_model {
        PricingModel::CustomMetering => {
            Some("custom-metering pricing, whose usage records the supervisor sends every hour".into())
        }
        PricingModel::Contract => baked.entitlements.iter().find(|e| e.unit == "Count").map(|e| {
            format!("contract pricing with a counted seat ({}), which the supervisor extends while it is held", e.name)
        }),
        PricingModel::Hourly | PricingModel::Monthly => None,
    }
}

/// Refuse to supervise an image with a `duty` when mpgate is not PID 1 (`pid`), runs the workload as
/// itself, and `--allow-not-pid1` was not given.
pub fn not_pid1_rule(duty: Option<String>, pid: u32, user: Option<User>, allow: bool) -> Result<(), Error> {
    match duty {
        Some(duty) if pid != 1 && user.is_none() && !allow => Err(Error::Usage(format!(
            "this image is built for {duty}, but mpgate is not PID 1 here (pid {pid}: docker --init, ECS initProcessEnabled or a shared process namespace), so the workload could stop it with kill -STOP $PPID; start mpgate as root with --user UID[:GID] to run the workload as another user, run mpgate as PID 1, or pass --allow-not-pid1 to accept that"
        ))),
        _ => Ok(()),
    }
}

/// Before the workload is spawned as `user`: no program it execs gains privileges (set-uid bits,
/// file capabilities). Set on the supervisor's thread and inherited by the child; mpgate itself
/// execs nothing afterwards, so it loses nothing.
pub fn no_new_privileges() -> Result<(), Error> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| Error::Internal(format!("cannot set no_new_privs: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_users_only_and_never_root() {
        assert_eq!(User::parse("1000"), Ok(User { uid: 1000, gid: 1000 }));
        assert_eq!(User::parse("1000:2000"), Ok(User { uid: 1000, gid: 2000 }));
        for (bad, want) in [
            ("app", "names need /etc/passwd"),
            ("1000:app", "the gid must be a number"),
            ("", "the uid must be a number"),
            ("1000:", "the gid must be a number"),
            (":1000", "the uid must be a number"),
            ("-1", "must be a number"),
            ("+5", "must be a number"),
            ("0", "uid 0 (root)"),
            ("1000:0", "gid 0 (root)"),
            ("4294967295", "below 4294967295"),
            ("99999999999", "below 4294967295"),
            ("1:2:3", "the gid must be a number"),
        ] {
            let e = User::parse(bad).expect_err(bad);
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert!(matches!(resolve(Some("1000"), None, 1000), Err(Error::Usage(m)) if m.contains("runs as uid 1000")));
        assert_eq!(resolve(None, Some("7:8".into()), 0).expect("root"), Some(User { uid: 7, gid: 8 }));
        assert_eq!(resolve(None, None, 1000).expect("none"), None);
    }

    #[test]
    fn the_pid_1_rule_applies_only_to_images_whose_supervisor_has_a_duty() {
        let duty = || Some("custom-metering pricing".to_string());
        let user = Some(User { uid: 1, gid: 1 });
        assert!(matches!(not_pid1_rule(duty(), 42, None, false), Err(Error::Usage(m)) if m.contains("pid 42")));
        assert!(not_pid1_rule(duty(), 1, None, false).is_ok());
        assert!(not_pid1_rule(duty(), 42, user, false).is_ok());
        assert!(not_pid1_rule(duty(), 42, None, true).is_ok());
        assert!(not_pid1_rule(None, 42, None, false).is_ok());
        assert_eq!(allow_not_pid1(false, Some("1".into())).ok(), Some(true));
        assert_eq!(allow_not_pid1(false, Some("0".into())).ok(), Some(false));
        assert!(allow_not_pid1(false, Some("yes".into())).is_err());
    }
}
