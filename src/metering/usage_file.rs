//! Opening `usage.log`, for every reader and writer mpgate has (the supervisor at start, its sender
//! and compactor, `mpgate meter`): never through a symbolic link (`O_NOFOLLOW`), never anything but a regular file
//! with one link, checked on the open descriptor (`fstat`), so a link to `/dev/null`, a FIFO, a
//! directory or a hard link to another file is refused with a line that names the path instead of
//! taking usage somewhere the sender never reads it.
//! Must not: create the file for `mpgate meter` (the supervisor creates it before the workload
//! starts; a missing file means no supervisor reads that spool).
#![forbid(unsafe_code)]

use nix::fcntl::OFlag;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// What the opener does with the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The supervisor at start: create it when missing (mode 0600), read and append.
    Create,
    /// `mpgate meter`: append to the file the supervisor created.
    Append,
    /// The sender: read.
    Read,
    /// The sender's compactor: write (to punch holes).
    Release,
}

/// Open `path` as the usage file; the error names the path and what to do.
pub fn open(path: &Path, access: Access) -> Result<File, String> {
    // lstat first only for a precise message; the descriptor's own fstat below decides.
    match std::fs::symlink_metadata(path) {
        Ok(meta) => refuse_kind(path, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && access == Access::Create => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} does not exist, so no supervisor reads this spool; run the workload under `mpgate supervise` and record to its spool (docs/custom-metering.md)",
                path.display()
            ))
        }
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    }
    let mut options = std::fs::OpenOptions::new();
    match access {
        Access::Create => options.read(true).append(true).create(true).mode(0o600),
        Access::Append => options.append(true),
        Access::Read => options.read(true),
        Access::Release => options.write(true),
    };
    // O_NONBLOCK: a FIFO put in its place between the lstat and the open must not block the open.
    options.custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits());
    let file = options.open(path).map_err(|e| match e.raw_os_error() {
        Some(code) if code == nix::errno::Errno::ELOOP as i32 => not_regular(path, "a symbolic link"),
        _ => format!("cannot open {}: {e}", path.display()),
    })?;
    let meta = file.metadata().map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    refuse_kind(path, &meta)?;
    Ok(file)
}

/// Refuse anything but a regular file with one link.
fn refuse_kind(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if !kind.is_file() {
        "not a regular file"
    } else if meta.nlink() > 1 {
        return Err(format!(
            "{} has {} hard links: usage written through another name would not be the spool's; remove the other links or the file",
            path.display(),
            meta.nlink()
        ));
    } else {
        return Ok(());
    };
    Err(not_regular(path, what))
}

fn not_regular(path: &Path, what: &str) -> String {
    format!(
        "{} is {what}, not a regular file: usage recorded there would never be sent; remove it and let mpgate supervise create the file",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_with_one_link_is_opened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let log = dir.join("usage.log");
        let e = open(&log, Access::Append).expect_err("missing");
        assert!(e.contains("does not exist"), "{e}");
        open(&log, Access::Create).expect("created");
        open(&log, Access::Append).expect("append");
        open(&log, Access::Read).expect("read");
        std::fs::hard_link(&log, dir.join("other")).expect("link");
        let e = open(&log, Access::Read).expect_err("two links");
        assert!(e.contains("2 hard links"), "{e}");
        std::fs::remove_file(dir.join("other")).expect("unlink");

        let link = dir.join("link.log");
        std::os::unix::fs::symlink("/dev/null", &link).expect("symlink");
        let sub = dir.join("sub.log");
        std::fs::create_dir(&sub).expect("dir");
        let fifo = dir.join("fifo.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        for (path, what) in [(&link, "a symbolic link"), (&sub, "a directory"), (&fifo, "a FIFO")] {
            for access in [Access::Create, Access::Append, Access::Read, Access::Release] {
                let e = open(path, access).expect_err(what);
                assert!(e.contains(&format!("{} is {what}, not a regular file", path.display())), "{e}");
            }
        }
        let e = open(Path::new("/dev/null"), Access::Append).expect_err("device");
        assert!(e.contains("a device"), "{e}");
    }
}
