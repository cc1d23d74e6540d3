//! Which AWS partition a region belongs to, decided before any AWS call.
//!
//! The SDK's endpoint resolver (`endpoint_lib/partition.rs` of every generated client) matches a
//! region first against each partition's listed regions, then against each partition's
//! `regionRegex`, and otherwise falls back to the `aws` partition. That fallback turns a region
//! that exists nowhere (`xx-fake-1`) into `metering.marketplace.xx-fake-1.amazonaws.com`, a name
//! that never resolves, so a start would be retried until its deadline. mpgate refuses such a region
//! at once instead: a region belongs to a partition when the SDK's table lists it (known) or when it
//! matches the partition's `regionRegex` (AWS's own shape for regions of that partition that the
//! table may not list yet: a guess). The table below copies the SDK's `partitions.json` (ids,
//! listed regions, regexes, DNS suffixes); a unit test pins it against the SDK's resolution.
//! Must not: choose an endpoint (the SDK does that) or read the environment.
#![forbid(unsafe_code)]

/// One AWS partition as the SDK's `partitions.json` describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Partition {
    /// The partition id, also the second field of its ARNs (`arn:aws-cn:…`).
    pub id: &'static str,
    /// The DNS suffix of its regional endpoints.
    pub dns_suffix: &'static str,
    /// The first dash-separated words every region name of the partition starts with (its
    /// `regionRegex` is `^<prefix>-\w+-\d+$`), one of them for the `aws` partition.
    prefixes: &'static [&'static str],
    /// The regions the SDK's table lists.
    listed: &'static [&'static str],
}

/// How sure mpgate is that a region belongs to its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// The SDK's table lists the region.
    Listed,
    /// The region only has the partition's shape (`regionRegex`): a region launched after this
    /// build's SDK, or a typo of one.
    Shaped,
}

/// The partitions of aws-sdk-* 1.124 (`endpoint_lib.rs`), in the SDK's order.
pub const PARTITIONS: &[Partition] = &[
    Partition {
        id: "aws",
        dns_suffix: "amazonaws.com",
        prefixes: &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"],
        listed: &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    },
    Partition {
        id: "aws-cn",
        dns_suffix: "amazonaws.com.cn",
        prefixes: &["cn"],
        listed: &["cn-north-1", "cn-northwest-1"],
    },
    Partition { id: "aws-eusc", dns_suffix: "amazonaws.eu", prefixes: &["eusc-de"], listed: &["eusc-de-east-1"] },
    Partition {
        id: "aws-iso",
        dns_suffix: "c2s.ic.gov",
        prefixes: &["us-iso"],
        listed: &["us-iso-east-1", "us-iso-west-1"],
    },
    Partition {
        id: "aws-iso-b",
        dns_suffix: "sc2s.sgov.gov",
        prefixes: &["us-isob"],
        listed: &["us-isob-east-1", "us-isob-west-1"],
    },
    Partition { id: "aws-iso-e", dns_suffix: "cloud.adc-e.uk", prefixes: &["eu-isoe"], listed: &["eu-isoe-west-1"] },
    Partition {
        id: "aws-iso-f",
        dns_suffix: "csp.hci.ic.gov",
        prefixes: &["us-isof"],
        listed: &["us-isof-east-1", "us-isof-south-1"],
    },
    Partition {
        id: "aws-us-gov",
        dns_suffix: "amazonaws.com",
        prefixes: &["us-gov"],
        listed: &["us-gov-east-1", "us-gov-west-1"],
    },
];

/// The partition `region` belongs to, and how sure that is; `None` when the SDK would only reach
/// it by its fallback to `aws`. Listed regions win over shapes, as in the SDK.
pub fn of(region: &str) -> Option<(&'static Partition, Membership)> {
    if let Some(p) = PARTITIONS.iter().find(|p| p.listed.contains(&region)) {
        return Some((p, Membership::Listed));
    }
    PARTITIONS.iter().find(|p| p.prefixes.iter().any(|prefix| shaped(region, prefix))).map(|p| (p, Membership::Shaped))
}

/// `^<prefix>-\w+-\d+$` on a name already checked to be lower-case words and digits joined by
/// dashes (`region::validate`): so `\w+` is one dash-free word.
fn shaped(region: &str, prefix: &str) -> bool {
    let Some(rest) = region.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else { return false };
    let Some((word, number)) = rest.split_once('-') else { return false };
    !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The partition ids, for messages: `aws, aws-cn, …`.
pub fn ids() -> String {
    PARTITIONS.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_regions_belong_to_their_partition() {
        for (region, id) in [
            ("us-east-1", "aws"),
            ("cn-northwest-1", "aws-cn"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-gov-east-1", "aws-us-gov"),
            ("eusc-de-east-1", "aws-eusc"),
            ("us-iso-east-1", "aws-iso"),
            ("eu-isoe-west-1", "aws-iso-e"),
        ] {
            assert_eq!(of(region).map(|(p, m)| (p.id, m)), Some((id, Membership::Listed)), "{region}");
        }
    }

    #[test]
    fn unlisted_regions_of_a_partition_shape_are_a_guess() {
        for (region, id) in [
            ("ap-southeast-9", "aws"),
            ("cn-south-1", "aws-cn"),
            ("us-gov-north-1", "aws-us-gov"),
            ("eusc-de-west-1", "aws-eusc"),
            ("us-isof-west-1", "aws-iso-f"),
        ] {
            assert_eq!(of(region).map(|(p, m)| (p.id, m)), Some((id, Membership::Shaped)), "{region}");
        }
    }

    #[test]
    fn regions_of_no_partition_are_none() {
        for region in ["xx-fake-1", "aws-cn-global", "aws-global", "us-east", "us-east-x", "eusc-fr-east-1", "cn-1", ""]
        {
            assert_eq!(of(region), None, "{region}");
        }
    }

    /// The table agrees with the SDK's own resolution: the DNS suffix of the Metering endpoint the
    /// SDK resolves for each listed region is the partition's.
    #[test]
    fn the_table_matches_the_sdks_partitions() {
        use aws_sdk_marketplacemetering::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for p in PARTITIONS {
            for region in p.listed {
                let params = Params::builder().region(*region).build().expect("params");
                let url = rt.block_on(DefaultResolver::new().resolve_endpoint(&params)).expect("resolves");
                assert!(url.url().ends_with(&format!(".{region}.{}", p.dns_suffix)), "{region}: {}", url.url());
            }
        }
    }
}
