//! Custom metering after admission: the spool the workload records usage into, the durable state of
//! what was consumed and sent, and the hourly sender `supervise` runs beside the workload.
//!
//! Layout of the spool directory (an emptyDir or volume that survives container restarts in the pod):
//! - `usage.log`: the workload appends one line per record (`record.rs` has the format); mpgate reads it
//!   and releases the blocks it has durably consumed (`compact.rs`), never renaming or truncating it.
//! - `state.json`: consumed offset, unsent hourly aggregates, sent and in-flight records (`state.rs`),
//!   replaced atomically (write temp, fsync, rename, fsync dir).
//! - `quarantine.log`: copies of lines that are not valid records, and usage lines of records AWS
//!   refused for a reason no retry can fix, each reported once on stderr.
//!
//! Clock: the sender reads "now" through `Clock` (the system clock in production). It decides which
//! hours are closed and which are too old by that clock; AWS's own verdict (`TimestampOutOfBounds`)
//! still wins, so a skewed pod clock delays usage into later hours rather than losing it.
//! Must not: decide entitlement, or touch the workload process (that is `supervise`).
#![forbid(unsafe_code)]

pub mod compact;
pub mod lines;
pub mod record;
pub mod seal;
pub mod send;
pub mod spread;
pub mod state;
pub mod usage_file;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Default spool directory (`--spool` / `MPGATE_SPOOL_DIR`).
pub const DEFAULT_SPOOL: &str = "/var/run/mpgate";
/// Default bound on the exit flush (`--flush-deadline` / `MPGATE_FLUSH_DEADLINE`).
pub const DEFAULT_FLUSH_DEADLINE: Duration = Duration::from_secs(20);
/// AWS accepts MeterUsage records up to 6 hours old (docs/aws-behaviour.md §2.3).
pub const WINDOW_SECS: u64 = 6 * 3600;
/// One hour.
pub const HOUR: u64 = 3600;

/// The spool directory and the files in it.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Spool { dir: dir.into() }
    }
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Where the workload appends usage lines (`MPGATE_USAGE_FILE`).
    pub fn usage_file(&self) -> PathBuf {
        self.dir.join("usage.log")
    }
    /// The durable sender state.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// Copies of rejected lines.
    pub fn quarantine_file(&self) -> PathBuf {
        self.dir.join("quarantine.log")
    }
}

/// A source of wall-clock time, injected so the sender's hour arithmetic can be tested.
pub trait Clock: Send + Sync {
    /// Unix seconds now.
    fn now(&self) -> u64;
    /// Unix milliseconds now (for the slots of `spread`).
    fn now_ms(&self) -> u64 {
        self.now() * 1000
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// The system clock plus a fixed number of seconds (test flavour: `MPGATE_TEST_CLOCK_OFFSET`).
#[derive(Clone, Copy, Debug)]
pub struct OffsetClock(pub u64);

impl Clock for OffsetClock {
    fn now(&self) -> u64 {
        SystemClock.now() + self.0
    }
    fn now_ms(&self) -> u64 {
        SystemClock.now_ms() + self.0 * 1000
    }
}

/// Start of the hour containing `t`.
pub fn hour_of(t: u64) -> u64 {
    t - t % HOUR
}
