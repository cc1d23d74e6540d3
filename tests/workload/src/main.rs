//! A static test workload: reports what it received from the exec (PID, parent PID, argv bytes,
//! environment bytes, open descriptors) as JSON, then exits with the status it was told.
//!
//! Usage: `mpgate-test-workload report FILE [EXIT]` — `FILE` `-` means stdout.
//!        `mpgate-test-workload exit N`
//!        `mpgate-test-workload sleep-ms N`
//!        `mpgate-test-workload orphans FILE` — leaves a grandchild orphaned, reports its parent PID
//!        while it lives and, after it has exited, how many zombies the PID namespace holds.

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

/// Parent PID of `pid`, from /proc.
fn ppid_of(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Zombies in this PID namespace.
fn zombies() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return usize::MAX };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .count()
}

fn orphans(me: &OsString, file: &str) -> i32 {
    let Ok(out) = std::process::Command::new(me).arg("orphan-parent").output() else { return 97 };
    let grandchild = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let orphan_ppid = ppid_of(&grandchild).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let text = format!("{{\"orphan_ppid\":{orphan_ppid},\"zombies\":{}}}\n", zombies());
    if std::fs::write(file, text).is_err() {
        return 99;
    }
    0
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
        "sleep-ms" => {
            std::thread::sleep(std::time::Duration::from_millis(word(2).parse().unwrap_or(0)));
            0
        }
        "orphan-parent" => {
            // Start a grandchild and exit at once without waiting: the grandchild is orphaned.
            // Its stdio must not be the caller's pipes, or the caller's output() would wait for it to exit.
            match std::process::Command::new(&args[0])
                .args(["sleep-ms", "300"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                Ok(c) => {
                    println!("{}", c.id());
                    0
                }
                Err(_) => 98,
            }
        }
        "orphans" => orphans(&args[0], word(2)),
        _ => {
            eprintln!("usage: mpgate-test-workload report FILE [EXIT] | exit N");
            64
        }
    };
    std::process::exit(code);
}
