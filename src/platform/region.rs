//! The AWS region, found at run time and never baked.
//!
//! Sources, in precedence order (AWS: "obtain the region at runtime; use the environment variable if
//! present and only then fall back to instance metadata"):
//! 1. `AWS_REGION`
//! 2. `AWS_DEFAULT_REGION`
//! 3. ECS task metadata v4: `${ECS_CONTAINER_METADATA_URI_V4}/task`, region field of `TaskARN`
//!    (ECS agents before 2026 did not inject a region on EC2; aws-config has no such provider)
//! 4. IMDSv2 `placement/region`, with short timeouts (hop limit 1 makes it hang inside containers)
//!
//! A profile file is deliberately not a source: the region must be where the task runs, not where a
//! config file says.
#![forbid(unsafe_code)]

use super::{metadata, Env};
use crate::error::Error;
use std::fmt;
use std::time::Duration;

/// Where the region came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionSource {
    /// `AWS_REGION`.
    AwsRegion,
    /// `AWS_DEFAULT_REGION`.
    AwsDefaultRegion,
    /// ECS task metadata v4 `TaskARN`.
    EcsTaskMetadata,
    /// IMDSv2 `placement/region`.
    Imds,
    /// Contract pricing with a License Manager license token and no region variable: `us-east-1`,
    /// the default of AWS's Containers Anywhere Helm chart (docs/contract.md).
    LicenseTokenDefault,
}

impl fmt::Display for RegionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegionSource::AwsRegion => "AWS_REGION",
            RegionSource::AwsDefaultRegion => "AWS_DEFAULT_REGION",
            RegionSource::EcsTaskMetadata => "ECS task metadata",
            RegionSource::Imds => "EC2 instance metadata",
            RegionSource::LicenseTokenDefault => {
                "the Containers Anywhere default (license token configured, AWS_REGION unset)"
            }
        })
    }
}

/// A region and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundRegion {
    /// The region name, e.g. `us-east-1`.
    pub name: String,
    /// Its source.
    pub source: RegionSource,
}

/// Time allowed for the task metadata endpoint (a local agent; it answers in milliseconds).
const TMDE_TIMEOUT: Duration = Duration::from_secs(2);

/// Walk the sources in order. IMDS is asked last and only if `imds` gives its client.
pub async fn find(env: &dyn Env, imds: Option<&crate::aws::Clients>) -> Result<FoundRegion, Error> {
    for (var, source) in
        [("AWS_REGION", RegionSource::AwsRegion), ("AWS_DEFAULT_REGION", RegionSource::AwsDefaultRegion)]
    {
        if let Some(v) = env.get(var) {
            return validate(&v, source).map_err(|why| unknown(&format!("{var}={v:?}"), &why));
        }
    }
    let mut tried = vec!["AWS_REGION", "AWS_DEFAULT_REGION"];
    if let Some(base) = env.get("ECS_CONTAINER_METADATA_URI_V4") {
        tried.push("ECS task metadata");
        let url = format!("{}/task", base.trim_end_matches('/'));
        let body = metadata::get(&url, TMDE_TIMEOUT).await.map_err(|e| region_error(&tried, &e))?;
        let arn = task_arn(&body).ok_or_else(|| region_error(&tried, "the task metadata has no TaskARN"))?;
        let name = arn_region(&arn).ok_or_else(|| region_error(&tried, &format!("TaskARN {arn:?} has no region")))?;
        return validate(name, RegionSource::EcsTaskMetadata)
            .map_err(|why| unknown(&format!("the region {name:?} of the ECS TaskARN"), &why));
    }
    if let Some(clients) = imds {
        tried.push("EC2 instance metadata");
        let region =
            aws_config::imds::region::ImdsRegionProvider::builder().imds_client(clients.imds()).build().region().await;
        if let Some(r) = region {
            return validate(r.as_ref(), RegionSource::Imds)
                .map_err(|why| unknown(&format!("the EC2 instance metadata region {:?}", r.as_ref()), &why));
        }
    }
    Err(Error::NoRegion(tried.join(", ")))
}

/// The refusal for a region found but unusable: `what` names it and its source.
fn unknown(what: &str, why: &str) -> Error {
    Error::UnknownRegion(format!(
        "{what} {why}; set AWS_REGION to the region the task or pod runs in, exactly as AWS spells it (docs/aws-behaviour.md, Partitions)"
    ))
}

fn region_error(tried: &[&str], why: &str) -> Error {
    Error::NoRegion(format!("{}; {why}", tried.join(", ")))
}

fn task_arn(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc.get("TaskARN")?.as_str().map(str::to_string)
}

/// `arn:<partition>:ecs:<region>:<account>:task/...` → region.
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    (parts.next()? == "arn").then_some(())?;
    let _partition = parts.next()?;
    let _service = parts.next()?;
    parts.next().filter(|r| !r.is_empty())
}

/// Region names are lower-case words and digits joined by dashes (`us-east-1`, `eusc-de-east-1`),
/// taken as given: no trimming or case folding, as the SDK signs and resolves the name it is given.
/// A name must also belong to an AWS partition (`partition::of`): the SDK would send any other to
/// the `aws` partition, a host that never resolves, and the start would wait for its deadline.
fn validate(name: &str, source: RegionSource) -> Result<FoundRegion, String> {
    let ok = (3..=32).contains(&name.len())
        && name.split('-').count() >= 3
        && name.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    if !ok {
        return Err("is not an AWS region name (like us-east-1)".to_string());
    }
    if super::partition::of(name).is_none() {
        return Err(format!(
            "is a region of no AWS partition: the AWS SDK in this build neither lists it nor matches it to the region names of {}",
            super::partition::ids()
        ));
    }
    Ok(FoundRegion { name: name.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::env::MapEnv;

    fn run(env: &MapEnv) -> Result<FoundRegion, Error> {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(find(env, None))
    }

    #[test]
    fn aws_region_wins_over_default_region() {
        let env = MapEnv::from_pairs(&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "us-east-1")]);
        assert_eq!(run(&env).ok(), Some(FoundRegion { name: "eu-west-1".into(), source: RegionSource::AwsRegion }));
    }

    #[test]
    fn default_region_is_second() {
        let env = MapEnv::from_pairs(&[("AWS_DEFAULT_REGION", "ap-south-1")]);
        assert_eq!(run(&env).ok().map(|r| r.source), Some(RegionSource::AwsDefaultRegion));
    }

    #[test]
    fn garbage_region_is_misconfigured_naming_the_variable() {
        let env = MapEnv::from_pairs(&[("AWS_REGION", "us east 1")]);
        let err = run(&env).expect_err("must refuse");
        assert_eq!(err.class(), crate::error::Class::Misconfigured);
        assert!(err.to_string().contains("AWS_REGION=\"us east 1\" is not an AWS region name"), "{err}");
    }

    #[test]
    fn a_region_of_no_partition_is_refused_naming_it() {
        for (var, value) in [
            ("AWS_REGION", "xx-fake-1"),
            ("AWS_REGION", "aws-cn-global"),
            ("AWS_DEFAULT_REGION", "eusc-fr-east-1"),
            ("AWS_REGION", "us-east-1 "),
            ("AWS_REGION", " us-east-1"),
            ("AWS_REGION", "US-EAST-1"),
        ] {
            let err = run(&MapEnv::from_pairs(&[(var, value)])).expect_err("must refuse");
            assert!(matches!(err, Error::UnknownRegion(_)), "{value:?}: {err:?}");
            assert!(err.to_string().starts_with(&format!("misconfigured: {var}={value:?} is ")), "{err}");
        }
    }

    #[test]
    fn a_region_of_every_partition_is_accepted() {
        for region in ["us-east-1", "cn-northwest-1", "cn-north-1", "us-gov-west-1", "us-gov-east-1", "eusc-de-east-1"]
        {
            let found = run(&MapEnv::from_pairs(&[("AWS_REGION", region)])).expect("accepted");
            assert_eq!(found.name, region);
        }
    }

    #[test]
    fn nothing_set_names_what_was_tried() {
        let err = run(&MapEnv::default()).expect_err("must refuse");
        assert!(matches!(err, Error::NoRegion(_)));
        assert!(err.to_string().contains("AWS_REGION, AWS_DEFAULT_REGION"), "{err}");
    }

    #[test]
    fn arn_region_parses_task_arns() {
        assert_eq!(arn_region("arn:aws:ecs:eu-central-1:111122223333:task/c/abc"), Some("eu-central-1"));
        assert_eq!(arn_region("arn:aws:ecs::111122223333:task/c/abc"), None);
        assert_eq!(arn_region("not-an-arn"), None);
    }
}
