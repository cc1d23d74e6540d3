//! mpgate's own lines on stderr: one line per event, as `mpgate: …` text (the default) or as one JSON
//! object per line (`--log-format json` / `MPGATE_LOG_FORMAT=json`) for log pipelines.
//!
//! Levels, most to least severe: error (refusals), warn, info (the admission line), verbose (`-v`:
//! which source answered, each retry), debug (`-vv`). `MPGATE_LOG` sets the level by name; `-v`,
//! `-vv` and `-q` on the command line win. Stdout belongs to the workload and is never used here.
//! Must not: print a secret (callers pass only what they would show a person).
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A refusal.
    Error,
    /// Something to fix, not fatal.
    Warn,
    /// The admission line and other normal news.
    Info,
    /// Sources, attempts, retries.
    Verbose,
    /// Everything.
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Verbose => "verbose",
            Level::Debug => "debug",
        }
    }

    /// `MPGATE_LOG` values: `error`, `warn`, `info`, `verbose`, `debug` (`quiet` = `warn`).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" | "quiet" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "verbose" => Some(Level::Verbose),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// Line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `mpgate: …`
    Text,
    /// One JSON object per line: `ts`, `level`, `msg` and event fields.
    Json,
}

static CONFIG: OnceLock<(Level, Format)> = OnceLock::new();

/// Set the threshold and format once, early in `run`; later calls are ignored.
pub fn configure(level: Level, format: Format) {
    let _ = CONFIG.set((level, format));
}

fn config() -> (Level, Format) {
    CONFIG.get().copied().unwrap_or((Level::Info, Format::Text))
}

/// Whether a line at `level` would be printed.
pub fn enabled(level: Level) -> bool {
    level <= config().0
}

/// The text form of an event (also what goes to the termination log).
pub fn text(level: Level, msg: &str) -> String {
    match level {
        Level::Warn => format!("mpgate: warning: {msg}"),
        _ => format!("mpgate: {msg}"),
    }
}

/// Print one event if its level is enabled. `fields` are extra JSON members (ignored in text).
pub fn emit(level: Level, msg: &str, fields: &[(&str, serde_json::Value)]) {
    let (threshold, format) = config();
    if level > threshold {
        return;
    }
    let msg = crate::error::one_line(msg);
    match format {
        Format::Text => eprintln!("{}", text(level, &msg)),
        Format::Json => {
            let mut doc = serde_json::Map::new();
            let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            doc.insert("ts".into(), serde_json::json!((ts * 1000.0).round() / 1000.0));
            doc.insert("level".into(), level.name().into());
            doc.insert("msg".into(), msg.into());
            for (k, v) in fields {
                doc.insert((*k).to_string(), v.clone());
            }
            eprintln!("{}", serde_json::Value::Object(doc));
        }
    }
}

/// A warning.
pub fn warn(msg: &str) {
    emit(Level::Warn, msg, &[]);
}

/// Normal news.
pub fn info(msg: &str) {
    emit(Level::Info, msg, &[]);
}

/// `-v` detail.
pub fn verbose(msg: &str) {
    emit(Level::Verbose, msg, &[]);
}
