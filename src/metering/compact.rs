//! Keeps `usage.log` from filling the spool without renaming or truncating it: once `state.json`
//! durably records that the bytes before `offset` are consumed, their disk blocks are released with
//! `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`.
//!
//! Why a hole and not a rename: workloads keep their `O_APPEND` descriptor open (one system call per
//! record), so a renamed file would keep receiving lines nobody reads, and a truncate races with an
//! append that lands between the last read and the truncate. A hole changes neither the file's size
//! nor any offset: writers are unaffected, the consumed offset stays valid, and the punched bytes
//! are never read again because they lie before the durable offset.
//! Crash safety, step by step: (1) lines are appended; (2) read; (3) the offset and the aggregates it
//! produced are saved atomically; (4) the consumed range is punched. A crash before (3) re-reads the
//! lines from the old offset (nothing punched there); a crash during or after (4) leaves a hole, or
//! part of one, only before the saved offset. Punching only ever follows a successful save.
//! Must not: punch past the offset it is given, or run before that offset is durable.
#![forbid(unsafe_code)]

use nix::fcntl::{fallocate, FallocateFlags};
use std::path::Path;

/// Punch whole 4 KiB blocks only, and only when at least this much more has been consumed.
const STEP: u64 = 64 * 1024;
const BLOCK: u64 = 4096;

/// What has been released so far, for one supervisor run (a restart punches again from 0: cheap,
/// since punching an existing hole is a no-op).
#[derive(Debug, Default)]
pub struct Compactor {
    punched: u64,
    unsupported: bool,
}

impl Compactor {
    /// Release the blocks of `path` before `durable_offset`. Returns a warning to report, once, when
    /// the filesystem cannot punch holes (then `usage.log` grows: docs/custom-metering.md, sizing).
    pub fn release(&mut self, path: &Path, durable_offset: u64) -> Option<String> {
        let end = durable_offset - durable_offset % BLOCK;
        if self.unsupported || end < self.punched + STEP {
            return None;
        }
        // Never through a link: holes punched in whatever file a link named would zero its data.
        let file = match super::usage_file::open(path, super::usage_file::Access::Release) {
            Ok(f) => f,
            Err(why) => return Some(format!("cannot release consumed usage: {why}")),
        };
        let (Ok(start), Ok(len)) = (i64::try_from(self.punched), i64::try_from(end - self.punched)) else {
            return None;
        };
        let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(&file, mode, start, len) {
            Ok(()) => {
                self.punched = end;
                None
            }
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                self.unsupported = true;
                Some(format!(
                    "the filesystem of {} cannot punch holes, so consumed usage is not released and the file keeps growing; use an emptyDir on local disk or tmpfs (docs/custom-metering.md)",
                    path.display()
                ))
            }
            Err(e) => Some(format!("cannot release consumed usage in {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn consumed_blocks_are_released_and_the_rest_is_untouched() {
        let dir = std::env::temp_dir().join(format!("mpgate-compact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("usage.log");
        let line = b"1800000000 requests 7\n";
        let mut f = std::fs::File::create(&path).expect("create");
        for _ in 0..20_000 {
            f.write_all(line).expect("write");
        }
        f.sync_all().expect("sync");
        let before = std::fs::metadata(&path).expect("meta");
        let offset = 15_000 * line.len() as u64;
        let mut c = Compactor::default();
        let warning = c.release(&path, offset);
        let after = std::fs::metadata(&path).expect("meta");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        if warning.as_deref().is_some_and(|w| w.contains("cannot punch holes")) {
            return; // a filesystem without holes: the caller reports it; nothing else to check here
        }
        assert_eq!(warning, None);
        assert_eq!(after.len(), before.len(), "the size (and every offset) stays");
        assert!(after.blocks() < before.blocks() / 2, "blocks {} -> {}", before.blocks(), after.blocks());
        let end = (offset - offset % BLOCK) as usize;
        assert!(bytes[..end].iter().all(|&b| b == 0), "the consumed range reads as zeros");
        assert!(bytes[end..offset as usize].iter().any(|&b| b != 0), "a partial block is kept");
        let tail: Vec<u8> = line.iter().copied().cycle().take(bytes.len() - offset as usize).collect();
        assert_eq!(&bytes[offset as usize..], &tail[..], "nothing after the offset changed");
        assert_eq!(c.release(&path, offset + 10), None, "below one step more: nothing to do");
    }
}
