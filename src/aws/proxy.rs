//! The egress proxy for mpgate's AWS calls, read once from the environment: which proxy (if any)
//! each AWS host is reached through. Pure: no I/O; `tunnel` opens the connections.
//!
//! Sources, in precedence order (the conventions of curl and the AWS SDKs):
//! 1. `HTTPS_PROXY` / `https_proxy`
//! 2. `ALL_PROXY` / `all_proxy`
//!
//! and `NO_PROXY` / `no_proxy` for the hosts reached directly. A blank value counts as unset. When
//! both spellings of one variable are set and differ, mpgate cannot know which one the operator
//! meant (curl prefers the lower case, other tools the upper), so it refuses to start (82) instead
//! of guessing. `HTTP_PROXY` is not read: every AWS call is HTTPS.
//!
//! A proxy is `http://[user[:password]@]host[:port][/]` (no scheme means `http://`; the port
//! defaults to 80; user and password are percent-decoded). mpgate asks it to `CONNECT host:443`
//! and runs TLS to the AWS host inside that tunnel with the compiled-in roots, so a proxy can see
//! which host is reached but cannot read or forge an answer. `https://` and `socks*://` proxies and
//! anything else are refused at once (82), naming the variable and never printing its value.
//!
//! `NO_PROXY` is a comma-separated list; each entry is one of: `*` (no host is proxied); a domain
//! (`amazonaws.com`, `.amazonaws.com` or `*.amazonaws.com`, all matching that name and every name
//! under it, on label boundaries: `amazonaws.com` does not match `evilamazonaws.com`); an IPv4 or
//! IPv6 address (`[::1]` or `::1`); a CIDR block (`10.0.0.0/8`, `fd00::/8`), matching addresses
//! written as such only (host names are not resolved). A domain or address may carry a `:port`,
//! and then matches that port only. Matching ignores case and a trailing dot.
//!
//! The metadata endpoints (IMDS, the ECS and Pod Identity credential endpoints) never use these
//! settings: their clients are built without a proxy (`aws::Clients`).
//! Must not: read the process environment itself, or print a proxy's credentials (`Debug` and
//! `Display` leave them out).
#![forbid(unsafe_code)]

use crate::error::Error;
use crate::platform::Env;
use std::fmt;
use std::net::IpAddr;

/// The proxy variables in precedence order, each with its lower-case spelling.
const PROXY_VARIABLES: &[(&str, &str)] = &[("HTTPS_PROXY", "https_proxy"), ("ALL_PROXY", "all_proxy")];
/// The exemption list and its lower-case spelling.
const NO_PROXY: (&str, &str) = ("NO_PROXY", "no_proxy");

/// Where AWS calls go: a proxy and the hosts exempted from it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    proxy: Option<Proxy>,
    exempt: Vec<Exempt>,
}

/// An HTTP proxy reached with `CONNECT`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The variable it was read from, for every message that names the proxy.
    pub variable: &'static str,
    /// `user:password`, percent-decoded: only ever sent as `Proxy-Authorization: Basic`.
    credentials: Option<Vec<u8>>,
}

/// How one host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// No proxy is configured.
    Direct,
    /// A proxy is configured, but this `NO_PROXY` entry exempts the host.
    Exempted(String),
    /// Through this proxy.
    Via(&'a Proxy),
}

impl Settings {
    /// No proxy: what the metadata clients use.
    pub fn direct() -> Settings {
        Settings::default()
    }

    /// Read the proxy variables from `env` (see the module header for the rules).
    pub fn from_env(env: &dyn Env) -> Result<Settings, Error> {
        let mut proxy = None;
        for &(upper, lower) in PROXY_VARIABLES {
            if let Some((variable, value)) = one_spelling(env, upper, lower)? {
                proxy = Some(Proxy::parse(variable, &value).map_err(Error::Proxy)?);
                break;
            }
        }
        let exempt = match one_spelling(env, NO_PROXY.0, NO_PROXY.1)? {
            Some((variable, value)) => parse_no_proxy(variable, &value).map_err(Error::Proxy)?,
            None => Vec::new(),
        };
        Ok(Settings { proxy, exempt })
    }

    /// The proxy, if one is configured.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    /// How `host` (a name or an IP address, IPv6 without brackets) on `port` is reached.
    pub fn route(&self, host: &str, port: u16) -> Route<'_> {
        let Some(proxy) = &self.proxy else { return Route::Direct };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.exempt.iter().find(|e| e.matches(&host, port)) {
            Some(e) => Route::Exempted(e.to_string()),
            None => Route::Via(proxy),
        }
    }
}

/// The value of `upper` or `lower`, with the name it came from; an error when both are set and differ.
fn one_spelling(
    env: &dyn Env,
    upper: &'static str,
    lower: &'static str,
) -> Result<Option<(&'static str, String)>, Error> {
    match (env.get(upper), env.get(lower)) {
        (Some(u), Some(l)) if u.trim() != l.trim() => Err(Error::Proxy(format!(
            "both {upper} and {lower} are set, to different values, and tools disagree on which one wins; set only one of them (docs/configuration.md)"
        ))),
        (Some(u), _) => Ok(Some((upper, u))),
        (None, Some(l)) => Ok(Some((lower, l))),
        (None, None) => Ok(None),
    }
}

impl Proxy {
    /// Parse `value` of `variable`. The error names the variable and the problem, never the value.
    fn parse(variable: &'static str, value: &str) -> Result<Proxy, String> {
        let bad = |why: &str| {
            format!(
                "{variable} is not a proxy mpgate can use: {why}; give http://[user:password@]host[:port] of an HTTP proxy that allows CONNECT (docs/configuration.md)"
            )
        };
        let value = value.trim();
        let rest = match value.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad("it is an https:// proxy, and mpgate reaches proxies over plain http:// only (TLS to AWS runs end to end inside the CONNECT tunnel)"))
            }
            Some((scheme, _)) if !scheme.is_empty() && scheme.len() <= 10 && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                return Err(bad(&format!("its scheme is {}://, not http://", scheme.to_ascii_lowercase())))
            }
            Some(_) => return Err(bad("it is not a URL")),
            None => value,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it has a path, query or blank after the host"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, password) = u.split_once(':').unwrap_or((u, ""));
                let decode = |s: &str| -> Result<Vec<u8>, String> {
                    if s.split('%').skip(1).any(|h| h.len() < 2 || !h.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit))
                    {
                        return Err(bad("its user name or password has a % that is not followed by two hex digits"));
                    }
                    Ok(percent_encoding::percent_decode_str(s).collect())
                };
                let (user, password) = (decode(user)?, decode(password)?);
                if user.is_empty() {
                    return Err(bad("it has an @ but no user name"));
                }
                Some([user, b":".to_vec(), password].concat())
            }
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("its host or port is not valid"))?;
        let port = port.unwrap_or(80);
        if port == 0 || !valid_host(&host) {
            return Err(bad("its host or port is not valid"));
        }
        Ok(Proxy { host: host.to_ascii_lowercase(), port, variable, credentials })
    }

    /// `http://host:port` without credentials: what connections go to and messages name.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }

    /// Whether the variable carried a user name and password.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The `Proxy-Authorization` header value, when the variable carried credentials.
    pub fn authorization(&self) -> Option<String> {
        use base64::Engine as _;
        self.credentials.as_ref().map(|c| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c)))
    }
}

/// `http://host:port (VARIABLE)`: never the credentials.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.url(), self.variable)
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = if self.credentials.is_some() { "** redacted **" } else { "none" };
        write!(f, "Proxy({self}, credentials: {credentials})")
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; `None` when the port is not a number.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host.to_string(), None)),
            _ => Some((host.to_string(), Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    if s.matches(':').count() > 1 {
        s.parse::<std::net::Ipv6Addr>().ok()?;
        return Some((s.to_string(), None));
    }
    match s.split_once(':') {
        Some((host, port)) => Some((host.to_string(), Some(port.parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

/// A DNS name (letters, digits, `-`, `_`, dots between non-empty labels) or an IP address.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exempt {
    All,
    /// A name and every name under it (lower case, no leading or trailing dot).
    Domain(String, Option<u16>),
    Address(IpAddr, Option<u16>),
    Block(IpAddr, u8),
}

fn parse_no_proxy(variable: &str, value: &str) -> Result<Vec<Exempt>, String> {
    let mut entries = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = parse_exempt(entry).ok_or_else(|| {
            format!("{variable} has an entry mpgate cannot read ({}); give host names, .domains, IP addresses or CIDR blocks separated by commas (docs/configuration.md)", crate::error::one_line(entry))
        })?;
        entries.push(parsed);
    }
    Ok(entries)
}

fn parse_exempt(entry: &str) -> Option<Exempt> {
    if entry == "*" {
        return Some(Exempt::All);
    }
    if let Some((net, bits)) = entry.split_once('/') {
        let net: IpAddr = net.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some(Exempt::Block(net, bits));
    }
    let (host, port) = split_host_port(entry)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Exempt::Address(ip, port));
    }
    let name = host.strip_prefix("*.").or_else(|| host.strip_prefix('.')).unwrap_or(&host);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    valid_host(&name).then_some(Exempt::Domain(name, port))
}

impl Exempt {
    /// Whether the entry exempts `host` (lower case, no trailing dot) on `port`.
    fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        let ip = host.parse::<IpAddr>().ok();
        match self {
            Exempt::All => true,
            Exempt::Domain(d, p) => {
                ip.is_none()
                    && port_ok(p)
                    && (host == d || host.strip_suffix(d.as_str()).is_some_and(|h| h.ends_with('.')))
            }
            Exempt::Address(a, p) => ip == Some(*a) && port_ok(p),
            Exempt::Block(net, bits) => ip.is_some_and(|ip| in_block(ip, *net, *bits)),
        }
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl fmt::Display for Exempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: &Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
        match self {
            Exempt::All => f.write_str("*"),
            Exempt::Domain(d, p) => write!(f, "{d}{}", port(p)),
            Exempt::Address(IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
            Exempt::Address(a, p) => write!(f, "{a}{}", port(p)),
            Exempt::Block(n, b) => write!(f, "{n}/{b}"),
        }
    }
}

#[cfg(test)]
mod tests;
