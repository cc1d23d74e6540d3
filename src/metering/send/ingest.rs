//! The sender's reading side: `usage.log` from the saved offset, a chunk at a time, cut into lines
//! (`metering::lines`), each record added to the state's hourly aggregates and every other line
//! copied to `quarantine.log`. The offset is saved before the blocks it covers are released.
#![forbid(unsafe_code)]

use super::{warn, Meter};
use crate::metering::usage_file::{self, Access};
use crate::metering::{lines, record};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

/// Read the usage file in chunks of this size (bounds memory; state is saved after each).
const CHUNK: usize = 1 << 20;

impl Meter<'_> {
    /// Consume complete lines after the saved offset, a chunk at a time. With `last`, a final
    /// unterminated line is consumed too (the workload has exited, so nothing will complete it): as
    /// a corrupt record.
    pub(super) fn ingest(&mut self, last: bool) {
        let path = self.spool.usage_file();
        let Some(mut file) = self.open_usage(&path, last) else { return };
        loop {
            let mut buf = Vec::new();
            let read = file
                .seek(SeekFrom::Start(self.state.offset))
                .and_then(|_| (&mut file).take(CHUNK as u64).read_to_end(&mut buf));
            if let Err(e) = read {
                return warn(&format!("cannot read {}: {e}", path.display()));
            }
            let consumed = self.take(&buf, last, &path);
            if consumed == 0 {
                return;
            }
            self.advance(consumed, &path);
            if buf.len() < CHUNK {
                return;
            }
        }
    }

    /// The usage file, to be read from the start again (reported) when it is shorter than the
    /// offset already consumed. A file that cannot be read (replaced by a link, a FIFO...) is
    /// reported when the reason changes, and once more at exit (`last`): what the workload wrote
    /// there is not billed.
    fn open_usage(&mut self, path: &Path, last: bool) -> Option<std::fs::File> {
        let file = match usage_file::open(path, Access::Read) {
            Ok(f) => f,
            Err(why) => {
                if last {
                    warn(&format!("at exit, usage could not be read: {why}; usage written there since is not billed"));
                } else if self.unreadable.as_deref() != Some(why.as_str()) {
                    warn(&format!("cannot read usage: {why}"));
                }
                self.unreadable = Some(why);
                return None;
            }
        };
        self.unreadable = None;
        let len = file.metadata().map_or(0, |m| m.len());
        if len < self.state.offset {
            warn(&format!(
                "{} is shorter than the {} bytes already read (truncated or replaced?); reading it from the start",
                path.display(),
                self.state.offset
            ));
            self.state.offset = 0;
        }
        Some(file)
    }

    /// Add the records among `buf`'s lines (read at the saved offset) to the state and quarantine
    /// the other lines; returns the bytes consumed.
    fn take(&mut self, buf: &[u8], last: bool, path: &Path) -> usize {
        let now = self.clock.now();
        let split = lines::split(buf, last);
        let mut bad = Vec::new();
        for line in &split.lines {
            let parsed = match &line.text {
                Ok(text) => record::parse(self.dimensions, text),
                Err(why) => Err(why.clone()),
            };
            match parsed {
                // Usage dated in the future counts as now: a record is never dated ahead.
                Ok(r) => self.state.add(&r.dimension, r.at.min(now), &r.tag_set(), r.quantity),
                Err(why) => bad.push((self.state.offset + line.at as u64, line.bytes.to_vec(), why)),
            }
        }
        if !bad.is_empty() {
            self.quarantine(&bad);
        }
        if split.zeros > 0 {
            warn(&format!(
                "{}: skipped {} zero bytes after byte {} (usage already released: was state.json replaced?)",
                path.display(),
                split.zeros,
                self.state.offset
            ));
        }
        split.consumed
    }

    /// Move the offset past `consumed` bytes and save it; then release the consumed blocks, only
    /// once the offset that covers them is durable.
    fn advance(&mut self, consumed: usize, path: &Path) {
        self.state.offset += consumed as u64;
        if self.save() {
            if let Some(w) = self.compactor.release(path, self.state.offset) {
                warn(&w);
            }
        }
    }

    fn quarantine(&self, bad: &[(u64, Vec<u8>, String)]) {
        let path = self.spool.quarantine_file();
        let mut copy = Vec::new();
        for (at, line, why) in bad {
            warn(&format!("usage.log byte {at}: not a usage record ({why}); copied to {}", path.display()));
            copy.extend_from_slice(line);
            copy.push(b'\n');
        }
        self.append_quarantine(&copy);
    }
}
