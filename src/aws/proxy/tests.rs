//! Table tests of the proxy settings: which variable wins, which URLs are proxies, which hosts
//! `NO_PROXY` exempts.

use super::*;
use crate::error::Class;
use crate::platform::env::MapEnv;

const METERING: &str = "metering.marketplace.us-east-1.amazonaws.com";

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, Error> {
    Settings::from_env(&MapEnv::from_pairs(pairs))
}

fn proxied(pairs: &[(&str, &str)]) -> Proxy {
    settings(pairs).expect("settings").proxy().cloned().expect("a proxy")
}

#[test]
fn precedence_https_proxy_then_all_proxy_either_spelling_blank_is_unset() {
    for (pairs, url, variable) in [
        (&[("HTTPS_PROXY", "http://a:1")][..], "http://a:1", "HTTPS_PROXY"),
        (&[("https_proxy", "http://a:1")][..], "http://a:1", "https_proxy"),
        (&[("HTTPS_PROXY", "http://a:1"), ("https_proxy", "http://a:1")][..], "http://a:1", "HTTPS_PROXY"),
        (&[("HTTPS_PROXY", "http://a:1"), ("ALL_PROXY", "http://b:2")][..], "http://a:1", "HTTPS_PROXY"),
        (&[("all_proxy", "http://b:2"), ("https_proxy", "http://a:1")][..], "http://a:1", "https_proxy"),
        (&[("ALL_PROXY", "http://b:2")][..], "http://b:2", "ALL_PROXY"),
        (&[("all_proxy", "http://b:2")][..], "http://b:2", "all_proxy"),
        (&[("HTTPS_PROXY", " "), ("ALL_PROXY", "http://b:2")][..], "http://b:2", "ALL_PROXY"),
    ] {
        let p = proxied(pairs);
        assert_eq!((p.url().as_str(), p.variable), (url, variable), "{pairs:?}");
    }
    for pairs in [
        &[][..],
        &[("HTTP_PROXY", "http://a:1"), ("http_proxy", "http://a:1")][..],
        &[("HTTPS_PROXY", ""), ("https_proxy", "  ")][..],
        &[("NO_PROXY", "*")][..],
    ] {
        assert!(settings(pairs).expect("settings").proxy().is_none(), "{pairs:?}");
    }
}

#[test]
fn both_spellings_set_and_different_is_refused_naming_both() {
    for (upper, lower) in [("HTTPS_PROXY", "https_proxy"), ("ALL_PROXY", "all_proxy"), ("NO_PROXY", "no_proxy")] {
        let e = settings(&[(upper, "http://a:1"), (lower, "http://b:1")]).expect_err("refused");
        assert_eq!(e.class(), Class::Misconfigured);
        let line = e.to_string();
        assert!(line.starts_with("misconfigured: both ") && line.contains(upper) && line.contains(lower), "{line}");
    }
}

#[test]
fn proxy_urls_host_port_and_credentials() {
    for (value, url, authorization) in [
        ("http://proxy.corp:3128", "http://proxy.corp:3128", None),
        ("http://proxy.corp:3128/", "http://proxy.corp:3128", None),
        ("HTTP://Proxy.Corp:3128", "http://proxy.corp:3128", None),
        ("proxy.corp:3128", "http://proxy.corp:3128", None),
        ("http://proxy.corp", "http://proxy.corp:80", None),
        ("http://10.0.0.1:8080", "http://10.0.0.1:8080", None),
        ("http://[fd00::1]:3128", "http://[fd00::1]:3128", None),
        ("http://[fd00::1]", "http://[fd00::1]:80", None),
        ("  http://p:1  ", "http://p:1", None),
        ("http://user:pass@p:1", "http://p:1", Some("Basic dXNlcjpwYXNz")),
        // Percent-decoded: "us@r" and "p:ss/w"; an @ in the password is the last @ that counts.
        ("http://us%40r:p%3Ass%2Fw@p:1", "http://p:1", Some("Basic dXNAcjpwOnNzL3c=")),
        ("http://user:p@ss@p:1", "http://p:1", Some("Basic dXNlcjpwQHNz")),
        ("http://user@p:1", "http://p:1", Some("Basic dXNlcjo=")),
    ] {
        let p = proxied(&[("HTTPS_PROXY", value)]);
        assert_eq!(p.url(), url, "{value}");
        assert_eq!(p.authorization().as_deref(), authorization, "{value}");
        assert_eq!(p.has_credentials(), authorization.is_some(), "{value}");
    }
}

#[test]
fn bad_proxy_urls_are_refused_naming_the_variable_and_never_the_password() {
    for (value, why) in [
        ("https://user:s3cret@p:1", "https:// proxy"),
        ("socks5://user:s3cret@p:1080", "socks5://"),
        ("socks5h://p:1080", "socks5h://"),
        ("ftp://p:1", "ftp://"),
        ("http://", "host or port"),
        ("http://:3128", "host or port"),
        ("http://user:s3cret@", "host or port"),
        ("http://p:notaport", "host or port"),
        ("http://p:0", "host or port"),
        ("http://p:65536", "host or port"),
        ("http://p:1/path", "path"),
        ("http://p:1?x=1", "path"),
        ("http://p q:1", "blank"),
        ("http://user:s3cret%zz@p:1", "hex digits"),
        ("http://:s3cret@p:1", "no user name"),
        ("http://bad_host!:1", "host or port"),
        ("http://[::1:1", "host or port"),
        ("http://a..b:1", "host or port"),
        ("://p:1", "not a URL"),
    ] {
        let e = settings(&[("https_proxy", value)]).expect_err(value);
        assert_eq!(e.class(), Class::Misconfigured, "{value}");
        let line = e.to_string();
        assert!(line.starts_with("misconfigured: https_proxy is not a proxy mpgate can use: "), "{line}");
        assert!(line.contains(why), "{value}: {why:?} missing from {line}");
        assert!(!line.contains("s3cret"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn debug_and_display_never_show_the_credentials() {
    let p = proxied(&[("HTTPS_PROXY", "http://alice:s3cret@proxy.corp:3128")]);
    assert_eq!(p.to_string(), "http://proxy.corp:3128 (HTTPS_PROXY)");
    let s = settings(&[("HTTPS_PROXY", "http://alice:s3cret@proxy.corp:3128")]).expect("settings");
    for text in [format!("{p:?}"), format!("{s:?}"), format!("{:?}", s.route(METERING, 443))] {
        assert!(!text.contains("s3cret") && !text.contains("alice"), "{text}");
    }
    assert!(format!("{p:?}").contains("redacted"));
}

/// `NO_PROXY` value, host, port, and the entry that exempts it (`None`: through the proxy).
#[test]
fn no_proxy_entries_match_on_label_boundaries_addresses_blocks_and_ports() {
    for (no_proxy, host, port, exempted_by) in [
        ("*", METERING, 443, Some("*")),
        ("amazonaws.com", METERING, 443, Some("amazonaws.com")),
        (".amazonaws.com", METERING, 443, Some("amazonaws.com")),
        ("*.amazonaws.com", METERING, 443, Some("amazonaws.com")),
        (".amazonaws.com", "amazonaws.com", 443, Some("amazonaws.com")),
        ("AmazonAWS.com.", "METERING.marketplace.us-east-1.amazonaws.com.", 443, Some("amazonaws.com")),
        (METERING, METERING, 443, Some(METERING)),
        ("us-east-1.amazonaws.com", METERING, 443, Some("us-east-1.amazonaws.com")),
        // Look-alikes: a suffix that does not start at a label boundary does not match.
        ("amazonaws.com", "evilamazonaws.com", 443, None),
        (".amazonaws.com", "evilamazonaws.com", 443, None),
        ("amazonaws.com", "amazonaws.com.evil.example", 443, None),
        ("marketplace.us-east-1.amazonaws.com", "xmarketplace.us-east-1.amazonaws.com", 443, None),
        ("sts.amazonaws.com", METERING, 443, None),
        ("com", METERING, 443, Some("com")),
        // Several entries, blanks and empty ones ignored; the first that matches is named.
        (" localhost , ,169.254.169.254,.amazonaws.com ", METERING, 443, Some("amazonaws.com")),
        ("localhost,169.254.169.254", METERING, 443, None),
        // Ports: an entry with a port matches that port only.
        ("amazonaws.com:443", METERING, 443, Some("amazonaws.com:443")),
        ("amazonaws.com:8443", METERING, 443, None),
        ("127.0.0.1:4567", "127.0.0.1", 4567, Some("127.0.0.1:4567")),
        ("127.0.0.1:4567", "127.0.0.1", 4568, None),
        ("[::1]:4567", "::1", 4567, Some("[::1]:4567")),
        // Addresses and blocks match addresses only; names are not resolved.
        ("127.0.0.1", "127.0.0.1", 1, Some("127.0.0.1")),
        ("127.0.0.1", "127.0.0.10", 1, None),
        ("127.0.0.0/8", "127.9.8.7", 1, Some("127.0.0.0/8")),
        ("127.0.0.0/8", "128.0.0.1", 1, None),
        ("10.1.0.0/16", "10.1.255.255", 1, Some("10.1.0.0/16")),
        ("10.1.0.0/16", "10.2.0.0", 1, None),
        ("0.0.0.0/0", "192.0.2.1", 1, Some("0.0.0.0/0")),
        ("0.0.0.0/0", METERING, 443, None),
        ("10.0.0.0/8", "localhost", 1, None),
        ("::1", "::1", 1, Some("::1")),
        ("[::1]", "::1", 1, Some("::1")),
        ("fd00::/8", "fd00:ec2::23", 80, Some("fd00::/8")),
        ("fd00::/8", "fe80::1", 80, None),
        ("fd00::/8", "10.0.0.1", 80, None),
        ("127.0.0.1", "localhost", 1, None),
        // A domain entry never matches an address literal.
        ("0.1", "127.0.0.1", 1, None),
    ] {
        let s = settings(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", no_proxy)]).expect(no_proxy);
        let route = s.route(host, port);
        let expected = match exempted_by {
            Some(e) => Route::Exempted(e.to_string()),
            None => Route::Via(s.proxy().expect("proxy")),
        };
        assert_eq!(route, expected, "NO_PROXY={no_proxy:?} host {host} port {port}");
    }
}

#[test]
fn no_proxy_without_a_proxy_routes_directly_and_no_proxy_lower_case_counts() {
    let s = settings(&[("NO_PROXY", "*")]).expect("settings");
    assert_eq!(s.route(METERING, 443), Route::Direct);
    let s = settings(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", ".amazonaws.com")]).expect("settings");
    assert_eq!(s.route(METERING, 443), Route::Exempted("amazonaws.com".into()));
    assert_eq!(Settings::direct().route(METERING, 443), Route::Direct);
}

#[test]
fn unreadable_no_proxy_entries_are_refused_naming_the_entry() {
    for entry in ["10.0.0.0/33", "fd00::/129", "10.0.0.0/x", "host/8", "bad host", "a:b:c", "x:99999", "[::1"] {
        let e =
            settings(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", &format!("localhost,{entry}"))]).expect_err(entry);
        assert_eq!(e.class(), Class::Misconfigured);
        let line = e.to_string();
        assert!(line.starts_with("misconfigured: NO_PROXY has an entry mpgate cannot read ("), "{line}");
        assert!(line.contains(entry), "{line}");
    }
}
