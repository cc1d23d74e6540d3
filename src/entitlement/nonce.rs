//! The RegisterUsage nonce: fresh per start, and shaped so the workload can later check that the
//! pass it receives was minted for this container, now.
//!
//! Format: `mpgate1:<unix seconds>:<hostname>:<32 hex random>` — at most 8+20+64+32+3 = 127 chars,
//! inside the model's 255. Hostname is the container's (pod name on Kubernetes, task id prefix on ECS),
//! reduced to the characters a hostname can have.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh nonce for this start.
pub fn fresh(now: SystemTime, hostname: &str) -> Result<String, String> {
    let mut random = [0u8; 16];
    getrandom::getrandom(&mut random).map_err(|e| format!("no randomness from the kernel: {e}"))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let host: String =
        hostname.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').take(64).collect();
    Ok(format!("mpgate1:{secs}:{host}:{hex}"))
}

/// The container's hostname, or empty if the kernel will not say.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_fresh_bounded_and_carry_time_and_host() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let a = fresh(now, "pod-7f9c\n;evil").expect("nonce");
        let b = fresh(now, "pod-7f9c").expect("nonce");
        assert_ne!(a, b);
        assert!(a.starts_with("mpgate1:1800000000:pod-7f9cevil:"), "{a}");
        assert!(fresh(now, &"h".repeat(300)).expect("nonce").len() <= 255);
    }
}
