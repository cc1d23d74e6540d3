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
    Ok(format!("mpgate1:{secs}:{}:{hex}", host_part(hostname)))
}

/// The hostname as it appears in a nonce: the characters a hostname can have, at most 64.
pub fn host_part(hostname: &str) -> String {
    hostname.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').take(64).collect()
}

/// A nonce mpgate made, taken apart: when and on which host it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Unix seconds at which the gate made the nonce.
    pub made_at: u64,
    /// The host part.
    pub host: String,
}

/// Parse `mpgate1:<secs>:<host>:<32 hex>`; anything else is not a nonce mpgate made.
pub fn parse(nonce: &str) -> Option<Parsed> {
    let mut parts = nonce.split(':');
    let (Some("mpgate1"), Some(secs), Some(host), Some(random), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let hex_ok = random.len() == 32 && random.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secs_ok = !secs.is_empty() && secs.len() <= 20 && secs.bytes().all(|b| b.is_ascii_digit());
    let made_at = secs.parse().ok().filter(|_| secs_ok)?;
    (hex_ok && host_part(host) == host).then(|| Parsed { made_at, host: host.to_string() })
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

    #[test]
    fn parse_round_trips_and_rejects_lookalikes() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let n = fresh(now, "web-1.local").expect("nonce");
        assert_eq!(parse(&n), Some(Parsed { made_at: 1_800_000_000, host: "web-1.local".into() }));
        for bad in [
            "",
            "mpgate1:1:h",
            "mpgate2:1:h:0123456789abcdef0123456789abcdef",
            "mpgate1:x:h:0123456789abcdef0123456789abcdef",
            "mpgate1:1:h:0123456789ABCDEF0123456789abcdef",
            "mpgate1:1:h h:0123456789abcdef0123456789abcdef",
            "mpgate1:1:h:0123456789abcdef0123456789abcdef:extra",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
