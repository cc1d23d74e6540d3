//! The RegisterUsage nonce: fresh per start, and shaped so the workload can later check that the
//! pass it receives was minted for this container, now.
//!
//! Format: `mpgate1:<unix seconds>:<host part>:<32 hex random>`, at most 8+20+1+96+1+32 = 158
//! characters, inside the model's 255. The host part is the container's hostname (pod name on
//! Kubernetes, task id prefix on ECS) written so that two hostnames never share one: letters, digits,
//! `-` and `.` stay as they are, every other byte (`_` included) becomes `_` and two lowercase hex
//! digits, and a result longer than 96 characters keeps its first 63 and ends in `~` and the first
//! 128 bits of the SHA-256 of the whole hostname, in hex. An empty hostname has an empty host part,
//! which no pass check accepts (`crate::pass`).
//!
//! `mpgate pass request` sends a nonce the workload chose instead ([`check_requested`]).
#![forbid(unsafe_code)]

use sha2::Digest as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest host part written out in full; a longer one is cut and ends in a hash of the hostname.
pub const MAX_HOST_PART: usize = 96;
/// Characters of the written-out host part kept before the hash.
const HASHED_PREFIX: usize = MAX_HOST_PART - 33;
/// Prefix of the nonces the gate makes itself; `mpgate pass request` refuses nonces that start so.
pub const PREFIX: &str = "mpgate1:";
/// RegisterUsage's limit on `Nonce` (Metering model, docs/aws-behaviour.md §2.1).
pub const MAX_NONCE: usize = 255;

/// A fresh nonce for this start.
pub fn fresh(now: SystemTime, hostname: &str) -> Result<String, String> {
    let mut random = [0u8; 16];
    getrandom::getrandom(&mut random).map_err(|e| format!("no randomness from the kernel: {e}"))?;
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(format!("{PREFIX}{secs}:{}:{}", host_part(hostname), hex(&random)))
}

/// The hostname as it appears in a nonce (the rule is in the module header): distinct hostnames give
/// distinct host parts, and none is longer than [`MAX_HOST_PART`].
pub fn host_part(hostname: &str) -> String {
    let mut out = String::with_capacity(hostname.len());
    for b in hostname.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    if out.len() <= MAX_HOST_PART {
        return out;
    }
    let digest = sha2::Sha256::digest(hostname.as_bytes());
    format!("{}~{}", &out[..HASHED_PREFIX], hex(&digest[..16]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `host` can be a host part: the characters [`host_part`] writes, and not too long.
fn is_host_part(host: &str) -> bool {
    host.len() <= MAX_HOST_PART && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A nonce a workload chose for `mpgate pass request`: 1 to 255 printable ASCII characters, no
/// space, and not one of the gate's own (`mpgate1:`), so a requested pass can never pass for the
/// pass `exec` hands over on some other host.
pub fn check_requested(nonce: &str) -> Result<(), String> {
    if nonce.is_empty() {
        return Err("the nonce is empty".into());
    }
    if nonce.len() > MAX_NONCE {
        return Err(format!("the nonce is {} bytes, more than RegisterUsage's {MAX_NONCE}", nonce.len()));
    }
    if let Some(c) = nonce.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("the nonce holds {c:?}; use printable ASCII without spaces (e.g. 32 random hex digits)"));
    }
    if nonce.starts_with(PREFIX) {
        return Err(format!(
            "nonces starting with {PREFIX:?} are the gate's own; choose another (e.g. 32 random hex digits)"
        ));
    }
    Ok(())
}

/// A nonce mpgate made, taken apart: when and on which host it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Unix seconds at which the gate made the nonce.
    pub made_at: u64,
    /// The host part.
    pub host: String,
}

/// Parse `mpgate1:<secs>:<host part>:<32 hex>`; anything else is not a nonce mpgate made.
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
    (hex_ok && is_host_part(host)).then(|| Parsed { made_at, host: host.to_string() })
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
        assert!(a.starts_with("mpgate1:1800000000:pod-7f9c_0a_3bevil:"), "{a}");
        assert!(fresh(now, &"h".repeat(300)).expect("nonce").len() <= 255);
        assert!(fresh(now, &"\u{1F600}".repeat(64)).expect("nonce").len() <= 255);
    }

    #[test]
    fn distinct_hostnames_never_share_a_host_part() {
        let long = "a".repeat(MAX_HOST_PART);
        let names = [
            "web_1".to_string(),
            "web1".into(),
            "web-1".into(),
            "web_5f1".into(),
            "WEB1".into(),
            String::new(),
            "_".into(),
            "__".into(),
            "é".into(),
            "_c3_a9".into(),
            long.clone(),
            format!("{long}a"),
            format!("{long}b"),
            "x".repeat(64),
            "_".repeat(64),
            "_".repeat(65),
        ];
        let parts: Vec<String> = names.iter().map(|n| host_part(n)).collect();
        for (i, a) in parts.iter().enumerate() {
            for (j, b) in parts.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{:?} and {:?} share a host part", names[i], names[j]);
            }
            assert!(a.len() <= MAX_HOST_PART && is_host_part(a), "{:?} -> {a:?}", names[i]);
        }
        assert_eq!(host_part("web_1"), "web_5f1");
        assert_eq!(host_part("web1"), "web1");
        assert_eq!(host_part(""), "");
        assert_eq!(host_part(&"x".repeat(64)), "x".repeat(64), "a kernel-sized name is kept whole");
        let hashed = host_part(&"_".repeat(64));
        assert_eq!(hashed.len(), MAX_HOST_PART);
        // The value docs/gate-pass.md's Python, Node and Go checks compute for the same name.
        assert_eq!(hashed, format!("{}~89ec7e9081cd930b3d5ebc6befd97e8a", "_5f".repeat(21)));
    }

    #[test]
    fn requested_nonces_are_printable_bounded_and_not_the_gates_own() {
        check_requested("3f1c0e9a7b2d4c6e8f0a1b2c3d4e5f60").expect("hex");
        check_requested(&"n".repeat(255)).expect("255 characters");
        for (bad, why) in [
            ("", "is empty"),
            (&*"n".repeat(256), "more than RegisterUsage's 255"),
            ("caf\u{e9}", "printable ASCII"),
            ("two words", "printable ASCII"),
            ("line\n", "printable ASCII"),
            ("mpgate1:1800000000:web-1:0123456789abcdef0123456789abcdef", "the gate's own"),
        ] {
            let err = check_requested(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn parse_round_trips_and_rejects_lookalikes() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let n = fresh(now, "web-1.local").expect("nonce");
        assert_eq!(parse(&n), Some(Parsed { made_at: 1_800_000_000, host: "web-1.local".into() }));
        let n = fresh(now, "web_1").expect("nonce");
        assert_eq!(parse(&n).map(|p| p.host), Some("web_5f1".into()));
        let n = fresh(now, "").expect("nonce");
        assert_eq!(parse(&n).map(|p| p.host), Some(String::new()), "parsed; the pass check refuses it");
        for bad in [
            "",
            "mpgate1:1:h",
            "mpgate2:1:h:0123456789abcdef0123456789abcdef",
            "mpgate1:x:h:0123456789abcdef0123456789abcdef",
            "mpgate1:1:h:0123456789ABCDEF0123456789abcdef",
            "mpgate1:1:h h:0123456789abcdef0123456789abcdef",
            "mpgate1:1:h/g:0123456789abcdef0123456789abcdef",
            "mpgate1:1:h:0123456789abcdef0123456789abcdef:extra",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
