//! The one rule by which the release flavour accepts an endpoint from the environment: the name of
//! an interface VPC endpoint (AWS PrivateLink) created without private DNS, for the service and the
//! run's region, under the partition's own DNS suffix (docs/security.md, "VPC endpoints").
//!
//! Accepted, and nothing else: `https://` + a host of the form
//! `vpce-<id>-<suffix>[-<az>].<service>.<region>.vpce.<partition DNS suffix>` + nothing or `/`,
//! where `<id>` is 8 to 17 lower-case hex digits, `<suffix>` lower-case letters and digits, and
//! `<az>` the run's region followed by one letter (a zonal name). The host must be spelled as AWS
//! spells it: lower-case ASCII, no trailing dot, no port, no user information, no percent-encoding,
//! no query or fragment. The certificate is still verified against the compiled-in roots, so only
//! AWS's own server for that name can answer; the rule makes sure that the name is AWS's.
//! Must not: read the environment, resolve a name or decide what a refusal costs (the caller does).
#![forbid(unsafe_code)]

use crate::platform::partition::Partition;

/// The service segment of each service's VPC endpoint names (docs/aws-behaviour.md §6.6).
pub const METERING: &str = "metering.marketplace";
/// License Manager's segment.
pub const LICENSE_MANAGER: &str = "license-manager";
/// STS's segment.
pub const STS: &str = "sts";

/// `value` as the canonical `https://<host>` URL when it names a VPC endpoint of `service` in
/// `region` of `partition`; otherwise why not, in words that complete "… is not used: ".
pub fn check(value: &str, service: &str, region: &str, partition: &Partition) -> Result<String, String> {
    let shape =
        format!("vpce-<id>-<suffix>.{service}.{region}.vpce.{}, as the VPC console shows it", partition.dns_suffix);
    let Some(rest) = value.strip_prefix("https://") else {
        return Err(format!("only an https:// URL of a VPC endpoint name is accepted ({shape})"));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(format!("the URL has a path, query or fragment ({tail:?}); give only https://{shape}"));
    }
    if host.contains('@') {
        return Err("the URL has user information before the host (an @)".to_string());
    }
    if host.contains(':') || host.starts_with('[') {
        return Err("the URL names a port or an IP address; give the endpoint's name without a port".to_string());
    }
    if !host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
        return Err(format!(
            "the host {host:?} is not spelled as AWS spells endpoint names (lower-case letters, digits, '-' and '.')"
        ));
    }
    let tail = format!(".{service}.{region}.vpce.{}", partition.dns_suffix);
    let Some(label) = host.strip_suffix(tail.as_str()) else {
        return Err(format!("the host {host:?} is not a VPC endpoint name of this service and region ({shape})"));
    };
    if !endpoint_label(label, region) {
        return Err(format!("the host {host:?} does not start with a VPC endpoint id ({shape})"));
    }
    Ok(format!("https://{host}"))
}

/// `vpce-<8..=17 hex>-<alnum>` or, zonal, `vpce-<8..=17 hex>-<alnum>-<region><letter>`.
fn endpoint_label(label: &str, region: &str) -> bool {
    let Some(rest) = label.strip_prefix("vpce-") else { return false };
    let Some((id, rest)) = rest.split_once('-') else { return false };
    let (suffix, zone) = match rest.split_once('-') {
        Some((suffix, zone)) => (suffix, Some(zone)),
        None => (rest, None),
    };
    let hex = |s: &str| (8..=17).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
    let alnum = |s: &str| (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let zonal = |z: &str| {
        z.strip_prefix(region).is_some_and(|letter| letter.len() == 1 && letter.bytes().all(|b| b.is_ascii_lowercase()))
    };
    label.len() <= 63 && hex(id) && alnum(suffix) && zone.is_none_or(zonal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::partition::of;

    fn at(value: &str, service: &str, region: &str) -> Result<String, String> {
        check(value, service, region, of(region).expect("a partition").0)
    }

    const GOOD: &str = "https://vpce-0a1b2c3d4e5f60718-abcd1234.metering.marketplace.us-east-1.vpce.amazonaws.com";

    #[test]
    fn well_formed_names_of_each_partition_are_accepted() {
        for (value, service, region) in [
            (GOOD, METERING, "us-east-1"),
            (&format!("{GOOD}/") as &str, METERING, "us-east-1"),
            ("https://vpce-1a2b3c4d-5e6f.sts.eu-west-1.vpce.amazonaws.com", STS, "eu-west-1"),
            (
                "https://vpce-1a2b3c4d-5e6f-eu-west-1b.license-manager.eu-west-1.vpce.amazonaws.com",
                LICENSE_MANAGER,
                "eu-west-1",
            ),
            ("https://vpce-0123456789abcdef0-xyz.sts.cn-northwest-1.vpce.amazonaws.com.cn", STS, "cn-northwest-1"),
            (
                "https://vpce-0123456789abcdef0-xyz.metering.marketplace.us-gov-west-1.vpce.amazonaws.com",
                METERING,
                "us-gov-west-1",
            ),
            ("https://vpce-0123456789abcdef0-xyz.sts.eusc-de-east-1.vpce.amazonaws.eu", STS, "eusc-de-east-1"),
        ] {
            let url = at(value, service, region).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(url, value.trim_end_matches('/'), "canonical: no trailing slash");
        }
    }

    /// Every way to dress another host up as a VPC endpoint name, refused with a reason.
    #[test]
    fn look_alikes_are_refused() {
        let h = "vpce-0a1b2c3d4e5f60718-abcd1234.metering.marketplace.us-east-1.vpce.amazonaws.com";
        for (value, why) in [
            (format!("http://{h}"), "https://"),
            (format!("HTTPS://{h}"), "https://"),
            (format!(" https://{h}"), "https://"),
            (format!("https://{h} "), "not spelled"),
            (format!("https://{h}.evil.example"), "not a VPC endpoint name"),
            ("https://vpce-amazonaws.com".to_string(), "not a VPC endpoint name"),
            (format!("https://{h}@evil.example"), "user information"),
            (format!("https://user:pw@{h}"), "user information"),
            (format!("https://{h}."), "not a VPC endpoint name"),
            (format!("https://{}", h.to_uppercase()), "not spelled"),
            (format!("https://{}", h.replacen("vpce-0a", "VPCE-0a", 1)), "not spelled"),
            (format!("https://{}", h.replace("metering", "m\u{e9}tering")), "not spelled"),
            (format!("https://{}", h.replace("metering", "xn--mtering-bva")), "not a VPC endpoint name"),
            (format!("https://{}", h.replace(".vpce.", "%2evpce.")), "not spelled"),
            (format!("https://{}", h.replace("amazonaws", "amazonaws%2ecom.evil")), "not spelled"),
            (format!("https://{h}:443"), "port"),
            (format!("https://{h}:8443"), "port"),
            ("https://10.0.0.5".to_string(), "not a VPC endpoint name"),
            ("https://[fd00::5]".to_string(), "IP address"),
            ("https://3232235777".to_string(), "not a VPC endpoint name"),
            (format!("https://{h}/x"), "path"),
            (format!("https://{h}?a=b"), "path, query"),
            (format!("https://{h}#f"), "fragment"),
            (format!("https://{h}//"), "path"),
            ("https://".to_string(), "not a VPC endpoint name"),
            (String::new(), "https://"),
            (format!("https://{}", h.replace("us-east-1.vpce", "us-west-2.vpce")), "not a VPC endpoint name"),
            (format!("https://{}", h.replace("amazonaws.com", "amazonaws.com.cn")), "not a VPC endpoint name"),
            (format!("https://{}", h.replace(".vpce.amazonaws", ".amazonaws")), "not a VPC endpoint name"),
            (format!("https://{}", h.replace("metering.marketplace", "sts")), "not a VPC endpoint name"),
            ("https://metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(), "not a VPC endpoint name"),
            ("https://evil.metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(), "VPC endpoint id"),
            (
                "https://vpce-0a1b2c3d-x.y.metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(),
                "VPC endpoint id",
            ),
            (
                "https://vpce-0a1b2c3g-x.metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(),
                "VPC endpoint id",
            ),
            ("https://vpce-0a1b2c3-x.metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(), "VPC endpoint id"),
            ("https://vpce-0a1b2c3d-.metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(), "VPC endpoint id"),
            (
                "https://vpce-0a1b2c3d-x-us-west-2a.metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(),
                "VPC endpoint id",
            ),
            (
                "https://vpce-0a1b2c3d-x-us-east-1ab.metering.marketplace.us-east-1.vpce.amazonaws.com".to_string(),
                "VPC endpoint id",
            ),
        ] {
            match at(&value, METERING, "us-east-1") {
                Ok(url) => panic!("{value:?} accepted as {url}"),
                Err(e) => assert!(e.contains(why), "{value:?}: {e}"),
            }
        }
    }

    #[test]
    fn a_name_of_another_partition_is_refused() {
        let cn = "https://vpce-0123456789abcdef0-xyz.sts.cn-northwest-1.vpce.amazonaws.com.cn";
        assert!(at(cn, STS, "cn-northwest-1").is_ok());
        let (aws, _) = of("us-east-1").expect("aws");
        assert!(check(cn, STS, "cn-northwest-1", aws).is_err(), "the aws suffix for a China region");
        let gov = "https://vpce-0123456789abcdef0-xyz.sts.us-gov-west-1.vpce.amazonaws.com";
        assert!(at(gov, STS, "us-east-1").is_err(), "a GovCloud name for a commercial region");
    }
}
