//! `World::demo()`: the world the gate's integration tests and the binary's default run against.
//! Every workload id here is part of the emulator's contract with those tests.

use super::keys;
use super::world::{
    Account, BeforeStartAnswer, ClaimStyle, CredentialKind, DryRunAnswer, DryRunChecks, License, LicenseEntitlement,
    MeterIdempotency, OutsideHomeRegion, Platform, Product, Quotas, RedirectLocation, RegistrationToken, TagPattern,
    Workload, World, MARKETPLACE_FINGERPRINT,
};
use std::collections::BTreeMap;

pub const PAID: &str = "8f3kq2demopaid0mpgate01";
pub const FREE: &str = "5x7wq9demofree0mpgate01";
pub const ACCOUNT: &str = "111122223333";
pub const UNSUBSCRIBED_ACCOUNT: &str = "444455556666";
pub const IRSA_ROLE: &str = "arn:aws:iam::111122223333:role/mpgate-irsa";
/// A custom-metering (MeterUsage) container product with dimensions `requests` and `gb_processed`.
pub const METERED: &str = "3m7kd9demometer0mpgate01";
/// A SaaS product (BatchMeterUsage, ResolveCustomer) sold by `SELLER_ACCOUNT`.
pub const SAAS: &str = "9s2aa4demosaas00mpgate01";
/// The seller of every demo product: its own calls run in preview mode.
pub const SELLER_ACCOUNT: &str = "999988887777";
/// The contract product's Marketplace product id (`CheckoutLicense.ProductSKU`).
pub const CONTRACT_SKU: &str = "prod-demo0contract0mpgate";
pub const CONTRACT_LICENSE: &str = "arn:aws:license-manager::294406891311:license:l-0123456789abcdef0123456789abcdef";
/// The role created with the demo license token (trusts openid-license-manager.amazonaws.com).
pub const LICENSE_TOKEN_ROLE: &str = "arn:aws:iam::111122223333:role/mpgate-license-token";
/// `ResolveCustomer` tokens: valid, and expired.
pub const REGISTRATION_TOKEN: &str = "demo-registration-token-0001";
pub const EXPIRED_REGISTRATION_TOKEN: &str = "demo-registration-token-expired";
/// When the demo account's metered subscription began, and when the demo workloads started (but
/// `FRESH_TASK`).
pub const NEW_YEAR: &str = "2026-01-01T00:00:00Z";
/// An ECS task that starts when the demo world is built: MeterUsage dated before that instant is
/// usage before start.
pub const FRESH_TASK: &str = "fresh-task";

fn product(code: &str, versions: Vec<i32>, keys: BTreeMap<i32, String>, dimensions: &[&str]) -> Product {
    Product {
        code: code.to_string(),
        key_versions: versions,
        expired_versions: vec![],
        signing_keys: keys,
        claim_style: ClaimStyle::CamelCase,
        iat_millis: false,
        iat_fraction: false,
        dimensions: dimensions.iter().map(|d| d.to_string()).collect(),
        dry_run: DryRunAnswer::Empty,
        seller: Some(SELLER_ACCOUNT.to_string()),
        before_start: BeforeStartAnswer::TimestampOutOfBounds,
        dry_run_checks: DryRunChecks::Full,
        tag_pattern: TagPattern::Literal,
        meter_idempotency: MeterIdempotency::HourRounding,
    }
}

fn entitlement(name: &str, unit: &str, max_count: Option<i64>) -> LicenseEntitlement {
    LicenseEntitlement {
        name: name.to_string(),
        unit: unit.to_string(),
        max_count,
        value: None,
        overage: false,
        allow_check_in: true,
    }
}

fn workload(id: &str, platform: Platform, credential: CredentialKind) -> Workload {
    Workload {
        id: id.to_string(),
        platform,
        region: "us-east-1".to_string(),
        account: ACCOUNT.to_string(),
        credential,
        inject_region_env: true,
        imds_reachable: true,
        node: None,
        denied_actions: Vec::new(),
        // The demo's tasks and pods have run since the metered subscription began.
        started: Some(NEW_YEAR.to_string()),
    }
}

impl World {
    pub fn demo() -> World {
        let irsa = || CredentialKind::Irsa { role_arn: IRSA_ROLE.to_string() };
        let node1 = Some("node-1".to_string());
        let workloads = vec![
            workload("ecs-task", Platform::EcsFargate, CredentialKind::EcsTaskRole),
            Workload {
                started: Some(super::clock::rfc3339(std::time::SystemTime::now())),
                ..workload(FRESH_TASK, Platform::EcsFargate, CredentialKind::EcsTaskRole)
            },
            Workload {
                // Old ECS agents on EC2 inject no region variables (docs/aws-behaviour.md §6.1).
                inject_region_env: false,
                ..workload("ecs-ec2-old-agent", Platform::EcsEc2, CredentialKind::EcsTaskRole)
            },
            Workload {
                // Hop limit 1: the pod cannot reach the node's IMDS.
                imds_reachable: false,
                node: node1.clone(),
                ..workload("eks-irsa", Platform::Eks, irsa())
            },
            Workload {
                inject_region_env: false,
                node: node1.clone(),
                ..workload("eks-irsa-no-region", Platform::Eks, irsa())
            },
            workload("eks-pod-identity", Platform::Eks, CredentialKind::PodIdentity),
            Workload {
                node: node1,
                ..workload(
                    "eks-node-role",
                    Platform::Eks,
                    CredentialKind::InstanceRole { role: "eks-node-role".to_string() },
                )
            },
            Workload {
                inject_region_env: false,
                ..workload("ec2-instance", Platform::Ec2, CredentialKind::InstanceRole { role: "ec2-role".to_string() })
            },
            workload("laptop", Platform::Local, CredentialKind::StaticKeys),
            Workload {
                account: UNSUBSCRIBED_ACCOUNT.to_string(),
                ..workload("unsubscribed-task", Platform::EcsFargate, CredentialKind::EcsTaskRole)
            },
            Workload {
                region: "eu-west-1".to_string(),
                ..workload("eu-task", Platform::EcsFargate, CredentialKind::EcsTaskRole)
            },
            // A task role without the Marketplace policy attached.
            Workload {
                denied_actions: vec!["aws-marketplace:RegisterUsage".into(), "aws-marketplace:MeterUsage".into()],
                ..workload("ecs-task-no-iam", Platform::EcsFargate, CredentialKind::EcsTaskRole)
            },
            // A task role with none of the License Manager actions the seller guide lists (§4.6).
            Workload {
                denied_actions: [
                    "CheckoutLicense",
                    "CheckInLicense",
                    "ExtendLicenseConsumption",
                    "GetLicense",
                    "ListReceivedLicenses",
                ]
                .iter()
                .map(|a| format!("license-manager:{a}"))
                .collect(),
                ..workload("ecs-task-no-license-iam", Platform::EcsFargate, CredentialKind::EcsTaskRole)
            },
            // A task role with only AWSLicenseManagerConsumptionPolicy, which lacks ListReceivedLicenses (§4.6).
            Workload {
                denied_actions: vec!["license-manager:ListReceivedLicenses".into()],
                ..workload("ecs-task-lm-consumption-policy", Platform::EcsFargate, CredentialKind::EcsTaskRole)
            },
            Workload {
                // Containers Anywhere: License Manager refresh token + role, no AWS platform.
                inject_region_env: false,
                ..workload(
                    "onprem-license",
                    Platform::Local,
                    CredentialKind::LicenseToken {
                        role_arn: LICENSE_TOKEN_ROLE.to_string(),
                        license_arn: CONTRACT_LICENSE.to_string(),
                    },
                )
            },
            Workload {
                // The seller's own test task: preview mode (no entitlement check).
                account: SELLER_ACCOUNT.to_string(),
                ..workload("seller-preview-task", Platform::EcsFargate, CredentialKind::EcsTaskRole)
            },
            Workload {
                // The seller's SaaS backend, calling with long-term keys from anywhere.
                account: SELLER_ACCOUNT.to_string(),
                ..workload("seller-saas", Platform::Local, CredentialKind::StaticKeys)
            },
        ];
        World {
            accounts: vec![
                Account {
                    id: ACCOUNT.to_string(),
                    subscriptions: [PAID, FREE, METERED, SAAS].iter().map(|c| c.to_string()).collect(),
                    customer_identifier: None,
                    // The metered product's subscription began on New Year's Day: MeterUsage for an
                    // hour before it is usage before start.
                    subscribed_since: BTreeMap::from([(METERED.to_string(), NEW_YEAR.to_string())]),
                },
                Account {
                    id: UNSUBSCRIBED_ACCOUNT.to_string(),
                    subscriptions: vec![],
                    customer_identifier: None,
                    subscribed_since: BTreeMap::new(),
                },
                Account {
                    id: SELLER_ACCOUNT.to_string(),
                    subscriptions: vec![],
                    customer_identifier: None,
                    subscribed_since: BTreeMap::new(),
                },
            ],
            products: vec![
                product(
                    PAID,
                    vec![1, 2],
                    BTreeMap::from([(1, keys::PAID_V1.to_string()), (2, keys::PAID_V2.to_string())]),
                    &[],
                ),
                product(FREE, vec![1], BTreeMap::from([(1, keys::FREE_V1.to_string())]), &[]),
                product(METERED, vec![1], BTreeMap::new(), &["requests", "gb_processed"]),
                product(SAAS, vec![1], BTreeMap::new(), &["users", "api_calls"]),
            ],
            workloads,
            licenses: vec![
                License {
                    arn: CONTRACT_LICENSE.to_string(),
                    product_sku: CONTRACT_SKU.to_string(),
                    product_name: "mpgate demo contract product".to_string(),
                    account: ACCOUNT.to_string(),
                    key_fingerprint: MARKETPLACE_FINGERPRINT.to_string(),
                    issuer: "AWS/Marketplace".to_string(),
                    home_region: "us-east-1".to_string(),
                    status: "AVAILABLE".to_string(),
                    begin: "2026-01-01T00:00:00Z".to_string(),
                    end: Some("2099-01-01T00:00:00Z".to_string()),
                    entitlements: vec![
                        entitlement("BasicTier", "None", None),
                        entitlement("Seats", "Count", Some(3)),
                        entitlement("DataConsumption", "Gigabytes", Some(100)),
                    ],
                    provisional_ttl_minutes: 60,
                    checkout_commit_ms: 0,
                    date_style: None,
                    outside_home_region: OutsideHomeRegion::Accept,
                    redirect_location: RedirectLocation::Both,
                },
                License {
                    // A second, expired contract: filters and pagination have something to skip.
                    arn: "arn:aws:license-manager::294406891311:license:l-fedcba9876543210fedcba9876543210".to_string(),
                    product_sku: "prod-demo0expired0mpgate".to_string(),
                    product_name: "mpgate demo expired contract".to_string(),
                    account: ACCOUNT.to_string(),
                    key_fingerprint: MARKETPLACE_FINGERPRINT.to_string(),
                    issuer: "AWS/Marketplace".to_string(),
                    home_region: "us-east-1".to_string(),
                    status: "EXPIRED".to_string(),
                    begin: "2025-01-01T00:00:00Z".to_string(),
                    end: Some("2026-01-01T00:00:00Z".to_string()),
                    entitlements: vec![entitlement("BasicTier", "None", None)],
                    provisional_ttl_minutes: 60,
                    checkout_commit_ms: 0,
                    date_style: None,
                    outside_home_region: OutsideHomeRegion::Accept,
                    redirect_location: RedirectLocation::Both,
                },
            ],
            // Off: AWS publishes rates but not bursts, and suites that fire calls back to back
            // would be throttled at random. Turn on per world, or at run time (docs/emulator.md).
            quotas: Quotas::default(),
            registration_tokens: vec![
                RegistrationToken {
                    token: REGISTRATION_TOKEN.to_string(),
                    product_code: SAAS.to_string(),
                    account: ACCOUNT.to_string(),
                    expired: false,
                },
                RegistrationToken {
                    token: EXPIRED_REGISTRATION_TOKEN.to_string(),
                    product_code: SAAS.to_string(),
                    account: ACCOUNT.to_string(),
                    expired: true,
                },
            ],
        }
    }
}
