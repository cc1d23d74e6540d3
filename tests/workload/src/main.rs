//! A static test workload: reports what it received from the exec (PID, parent PID, argv bytes,
//! environment bytes, open descriptors) as JSON, then exits with the status it was told.
//!
//! Usage: `mpgate-test-workload report FILE [EXIT]` — `FILE` `-` means stdout.
//!        `mpgate-test-workload exit N`

#![allow(clippy::disallowed_methods)] // a test program: it reports its environment and exits as told

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ppid() -> u32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Field 4, after the parenthesised command name (which may contain spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn report() -> String {
    let argv: Vec<String> = std::env::args_os().map(|a| format!("\"{}\"", hex(a.as_bytes()))).collect();
    let env: Vec<String> =
        std::env::vars_os().map(|(k, v)| format!("[\"{}\",\"{}\"]", hex(k.as_bytes()), hex(v.as_bytes()))).collect();
    let mut fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    fds.sort_unstable();
    let fds: Vec<String> = fds.iter().map(u32::to_string).collect();
    format!(
        "{{\"pid\":{},\"ppid\":{},\"argv_hex\":[{}],\"env_hex\":[{}],\"fds\":[{}]}}\n",
        std::process::id(),
        ppid(),
        argv.join(","),
        env.join(","),
        fds.join(",")
    )
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let word = |i: usize| args.get(i).and_then(|a| a.to_str()).unwrap_or("");
    let code: i32 = match word(1) {
        "report" => {
            let text = report();
            if word(2) == "-" {
                let _ = std::io::stdout().write_all(text.as_bytes());
            } else if let Err(e) = std::fs::write(word(2), text) {
                eprintln!("mpgate-test-workload: cannot write {}: {e}", word(2));
                std::process::exit(99);
            }
            word(3).parse().unwrap_or(0)
        }
        "exit" => word(2).parse().unwrap_or(0),
        _ => {
            eprintln!("usage: mpgate-test-workload report FILE [EXIT] | exit N");
            64
        }
    };
    std::process::exit(code);
}
