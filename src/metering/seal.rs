//! The spool under `supervise --user`: the workload's user may append to `usage.log` and touch
//! nothing else. The directory becomes mpgate's (its owner, mode 0755: no one else can create,
//! rename or remove an entry) and no directory above it may let the user rename it away; `usage.log`
//! becomes the workload's (owner uid, group mpgate's, mode 0660; changed on the open descriptor, so a
//! name swapped in between cannot redirect the change); `state.json` is mpgate's by construction (every
//! save renames a file mpgate created) and `quarantine.log` is given back to mpgate.
//! Must not: follow a symbolic link when it changes an owner.
#![forbid(unsafe_code)]

use super::Spool;
use crate::supervise::user::User;
use std::fs::File;
use std::os::unix::fs::PermissionsExt as _;

/// Give the spool to mpgate and `usage` (the open `usage.log`) to `user`.
pub fn seal(spool: &Spool, usage: &File, user: User) -> Result<(), String> {
    let dir = spool.dir();
    let (me, my_group) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    let named = |what: &str, e: &dyn std::fmt::Display| format!("spool directory {}: {what}: {e}", dir.display());
    let meta = std::fs::symlink_metadata(dir).map_err(|e| named("cannot inspect it", &e))?;
    if !meta.is_dir() {
        return Err(format!(
            "spool directory {} is not a directory (a symbolic link?); under --user mpgate needs a real directory it owns",
            dir.display()
        ));
    }
    std::os::unix::fs::lchown(dir, Some(me), Some(my_group)).map_err(|e| named("cannot take ownership", &e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| named("cannot set mode 0755", &e))?;
    let full = std::fs::canonicalize(dir).map_err(|e| named("cannot resolve it", &e))?;
    for above in full.ancestors().skip(1) {
        let meta = std::fs::metadata(above).map_err(|e| named(&format!("cannot inspect {}", above.display()), &e))?;
        if user.may_write(&meta, true) {
            return Err(format!(
                "spool directory {}: uid {} can write {} above it and so replace the spool; put the spool under directories only root can write",
                dir.display(),
                user.uid,
                above.display()
            ));
        }
    }
    // Mode first, while the file is still mpgate's (no CAP_FOWNER needed), then the owner. The group
    // stays mpgate's, so mpgate reads the file and punches holes in it without CAP_DAC_OVERRIDE.
    let path = spool.usage_file();
    usage
        .set_permissions(std::fs::Permissions::from_mode(0o660))
        .and_then(|()| std::os::unix::fs::fchown(usage, Some(user.uid), Some(my_group)))
        .map_err(|e| format!("cannot give {} to uid {}: {e}", path.display(), user.uid))?;
    let quarantine = spool.quarantine_file();
    match std::os::unix::fs::lchown(&quarantine, Some(me), Some(my_group)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot take ownership of {}: {e}", quarantine.display()))
        }
        _ => Ok(()),
    }
}
