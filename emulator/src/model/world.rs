//! The emulated AWS world: accounts, products, workloads. Entitlement is derived from this
//! situation (who is subscribed, where a workload runs, which credentials it has), never from
//! per-test switches. Serde so the binary can load a world from JSON. No behaviour lives here.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the emulator knows about. Built once and fixed for the emulator's lifetime.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct World {
    pub accounts: Vec<Account>,
    pub products: Vec<Product>,
    pub workloads: Vec<Workload>,
    /// License Manager licenses the accounts have received (contract pricing).
    #[serde(default)]
    pub licenses: Vec<License>,
    /// Per-account request quotas (docs/aws-behaviour.md §2.7); off unless `enabled`.
    #[serde(default)]
    pub quotas: Quotas,
    /// SaaS registration tokens `ResolveCustomer` knows.
    #[serde(default)]
    pub registration_tokens: Vec<RegistrationToken>,
}

/// A buyer account and the product codes it is subscribed to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// 12 digits.
    pub id: String,
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// SaaS `CustomerIdentifier` of this account; `None` means `c-<account id>`.
    #[serde(default)]
    pub customer_identifier: Option<String>,
    /// Product code → RFC 3339 time the subscription began; MeterUsage for an earlier hour is
    /// usage before start (`Product::before_start`). Absent: no start known, nothing refused.
    #[serde(default)]
    pub subscribed_since: BTreeMap<String, String>,
}

impl Account {
    pub fn customer_id(&self) -> String {
        self.customer_identifier.clone().unwrap_or_else(|| format!("c-{}", self.id))
    }
}

/// A Marketplace container product as the metering service sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub code: String,
    /// Versions RegisterUsage accepts without comment.
    pub key_versions: Vec<i32>,
    /// Versions still accepted, but the answer carries `PublicKeyRotationTimestamp`.
    #[serde(default)]
    pub expired_versions: Vec<i32>,
    /// PKCS#8 PEM private key per version; a version without one is signed with the emulator key.
    #[serde(default)]
    pub signing_keys: BTreeMap<i32, String>,
    #[serde(default)]
    pub claim_style: ClaimStyle,
    /// `iat` in milliseconds instead of seconds (the unit is undocumented; docs/aws-behaviour.md §3).
    #[serde(default)]
    pub iat_millis: bool,
    /// `iat` with a fraction (`1767225600.375`), in the unit `iat_millis` chooses (RFC 7519 allows
    /// a fractional NumericDate; AWS does not say whether it sends one).
    #[serde(default)]
    pub iat_fraction: bool,
    /// Custom-metering dimension names from the product load form; MeterUsage and BatchMeterUsage
    /// reject any other name with `InvalidUsageDimensionException`.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// What a successful `MeterUsage(DryRun=true)` answers (undocumented; docs/aws-behaviour.md §10.4).
    #[serde(default)]
    pub dry_run: DryRunAnswer,
    /// The seller's account: its own calls run in preview mode (no entitlement check), and only it
    /// may call the SaaS operations for this product.
    #[serde(default)]
    pub seller: Option<String>,
    /// What MeterUsage answers for a `Timestamp` before the start of usage (undocumented beyond
    /// "must not precede start of usage"; docs/aws-behaviour.md §2.3).
    #[serde(default)]
    pub before_start: BeforeStartAnswer,
    /// What a `MeterUsage` dry run checks before it answers (the model says only "checks whether you
    /// have the permissions"; docs/aws-behaviour.md §10.4).
    #[serde(default)]
    pub dry_run_checks: DryRunChecks,
    /// How MeterUsage and BatchMeterUsage read the Tag pattern `^[a-zA-Z0-9+ -=._:\/@]+$`
    /// (docs/aws-behaviour.md §10.15).
    #[serde(default)]
    pub tag_pattern: TagPattern,
    /// What MeterUsage makes of a record sent again (docs/aws-behaviour.md §10.5).
    #[serde(default)]
    pub meter_idempotency: MeterIdempotency,
}

/// The readings of MeterUsage's idempotency: the model says requests identical after rounding to the
/// hour get the same MeteringRecordId back, and marks `ClientToken` as an idempotency token without
/// saying what it does on ECS and EKS. A repeated token with the same parameters is the same record
/// under every reading.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum MeterIdempotency {
    /// Identical after rounding to the hour: the same record, whatever the token (the model's text).
    #[default]
    HourRounding,
    /// Only a repeated token is the same record: an identical record with a new token finds its hour
    /// taken (`DuplicateRequestException`).
    TokenTakesTheHour,
    /// Only a repeated token is the same record: an identical record with a new token is recorded,
    /// and billed, again.
    TokenOnly,
}

/// The plausible meanings of a `MeterUsage` dry run; AWS documents only "checks permissions".
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum DryRunChecks {
    /// Everything a real record is checked for (platform, region, product, subscription, dimension,
    /// time, allocations); it is not the task's first call, so the first real record checks the
    /// subscription again.
    #[default]
    Full,
    /// As `Full`, and a dry run that passes counts as the task's first call: no later call of the
    /// task checks the subscription (docs/aws-behaviour.md §2.3, first-call rule).
    FullFirstCall,
    /// The signature, the IAM permission and the input's shape only: an unsubscribed buyer, a wrong
    /// product or dimension all pass.
    IamOnly,
}

/// The two readings of the Tag pattern's `+ -=`: three characters, or the range space..`=`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum TagPattern {
    /// `+`, space, `-` and `=` as listed characters (what AWS's tagging rules everywhere else allow).
    #[default]
    Literal,
    /// A regex engine's reading: every character from space to `=`, so `!"#$%&'()*,;<` too.
    Range,
}

/// The plausible answers to a MeterUsage record dated before usage started.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum BeforeStartAnswer {
    /// 400 `TimestampOutOfBoundsException`, the modeled error for a timestamp outside what is
    /// accepted (our guess of what AWS does).
    #[default]
    TimestampOutOfBounds,
    /// Accepted like any timestamp in the 6-hour window.
    Accept,
}

/// The plausible answers to a successful `MeterUsage` dry run; AWS documents none of them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum DryRunAnswer {
    /// 200 `{}`.
    #[default]
    Empty,
    /// 200 `{"MeteringRecordId": "<uuid>"}`; nothing is recorded.
    RecordId,
    /// 412 with `__type` `DryRunOperation` (the EC2 convention the model text borrows).
    DryRunOperationError,
}

/// Token buckets per account and operation, refilled at `rate` per second up to `rate` tokens
/// (AWS publishes rates, not burst sizes: one second of burst is our choice).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    #[serde(default)]
    pub enabled: bool,
    /// Operation → requests per second.
    #[serde(default = "Quotas::aws_rates")]
    pub rates: BTreeMap<String, f64>,
}

impl Quotas {
    /// RegisterUsage 5/s, MeterUsage 10/s, BatchMeterUsage 10/s (docs/aws-behaviour.md §2.7).
    pub fn aws_rates() -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("RegisterUsage".to_string(), 5.0),
            ("MeterUsage".to_string(), 10.0),
            ("BatchMeterUsage".to_string(), 10.0),
        ])
    }
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas { enabled: false, rates: Quotas::aws_rates() }
    }
}

/// A SaaS registration token (what the buyer's browser posts to the seller's landing page).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistrationToken {
    pub token: String,
    pub product_code: String,
    pub account: String,
    #[serde(default)]
    pub expired: bool,
}

/// The AWS Marketplace issuer fingerprint a Marketplace-issued license carries (docs/aws-behaviour.md §4.2).
pub const MARKETPLACE_FINGERPRINT: &str = "aws:294406891311:AWS/Marketplace:issuer-fingerprint";

/// A license an account received (docs/aws-behaviour.md §4.4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct License {
    pub arn: String,
    /// The Marketplace product id (`CheckoutLicense.ProductSKU`).
    pub product_sku: String,
    #[serde(default)]
    pub product_name: String,
    /// The account that received it (the buyer).
    pub account: String,
    #[serde(default = "License::marketplace_fingerprint")]
    pub key_fingerprint: String,
    #[serde(default = "License::marketplace_issuer")]
    pub issuer: String,
    #[serde(default = "License::us_east_1")]
    pub home_region: String,
    #[serde(default = "License::available")]
    pub status: String,
    /// RFC 3339 validity window; `end` None = open-ended.
    pub begin: String,
    #[serde(default)]
    pub end: Option<String>,
    pub entitlements: Vec<LicenseEntitlement>,
    /// Minutes a PROVISIONAL checkout stays out unless extended (60 for Marketplace licenses).
    #[serde(default = "License::sixty")]
    pub provisional_ttl_minutes: u32,
    /// Milliseconds License Manager takes to commit a checkout; another checkout of this license
    /// in that time answers `ConflictException` (409). 0: checkouts never race.
    #[serde(default)]
    pub checkout_commit_ms: u64,
    /// How every date sent for this license is written (`IssuedAt`, `Expiration`, `Validity`).
    /// None: the emulator's own dates end in `Z` and `begin`/`end` go out exactly as written here
    /// (so a test can send any string). The model allows several forms (docs/aws-behaviour.md §4.1).
    #[serde(default)]
    pub date_style: Option<DateStyle>,
    /// What a CheckoutLicense signed in another region than `home_region` gets: AWS documents that
    /// licenses are consumed globally, and models a `RedirectException` (docs/aws-behaviour.md §4.8).
    #[serde(default)]
    pub outside_home_region: OutsideHomeRegion,
    /// Where a `RedirectException` carries its `Location`: the model's body member, the HTTP
    /// header, or both.
    #[serde(default)]
    pub redirect_location: RedirectLocation,
}

/// The forms of License Manager's `ISO8601DateTime` the emulator can write, and one it does not allow.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum DateStyle {
    /// `2026-01-01T00:00:00Z`.
    Zulu,
    /// `2026-01-01T00:00:00+00:00` (AWS's Containers Anywhere test script writes this form).
    UtcOffset,
    /// `2026-01-01T00:00:00.000Z`: fractional seconds.
    Fraction,
    /// The same instant written with this many minutes east of UTC, e.g. 330 → `05:30:00+05:30`.
    Offset(i32),
    /// `2026-01-01T00:00:00` without a zone, as the Seller Guide's examples show; the model's pattern
    /// does not allow it.
    Unzoned,
}

/// What License Manager answers a CheckoutLicense outside the license's home region.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum OutsideHomeRegion {
    /// The checkout succeeds ("licenses can be consumed globally"); seats are counted once, globally.
    #[default]
    Accept,
    /// 308 `RedirectException` naming the home region's endpoint.
    Redirect,
}

/// Where a `RedirectException` names the home region's endpoint.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum RedirectLocation {
    /// The `Location` body member and the `Location` header.
    #[default]
    Both,
    /// Only the `Location` body member (the one the model defines).
    Body,
    /// Only the HTTP `Location` header.
    Header,
}

impl License {
    fn marketplace_fingerprint() -> String {
        MARKETPLACE_FINGERPRINT.to_string()
    }
    fn marketplace_issuer() -> String {
        "AWS/Marketplace".to_string()
    }
    fn us_east_1() -> String {
        "us-east-1".to_string()
    }
    fn available() -> String {
        "AVAILABLE".to_string()
    }
    fn sixty() -> u32 {
        60
    }
}

/// One entitlement of a license: a feature/tier (`unit` "None", optional `value`) or a counted
/// resource (`max_count` in `unit`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LicenseEntitlement {
    pub name: String,
    pub unit: String,
    #[serde(default)]
    pub max_count: Option<i64>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub overage: bool,
    #[serde(default = "LicenseEntitlement::yes")]
    pub allow_check_in: bool,
}

impl LicenseEntitlement {
    fn yes() -> bool {
        true
    }
}

/// Casing of the JWT payload claims; AWS documents both (docs/aws-behaviour.md §3).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum ClaimStyle {
    /// `productCode`, `publicKeyVersion`, `nonce`, `iat` (what AWS's reference verifier reads).
    #[default]
    CamelCase,
    /// `ProductCode`, `PublicKeyVersion`, `Nonce`, `iat` (the doc's illustrative payload).
    PascalCase,
}

/// One running container (an ECS task, an EKS pod, a process on EC2 or a laptop).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub id: String,
    pub platform: Platform,
    pub region: String,
    /// Account id that owns the workload (and so the subscriptions that apply).
    pub account: String,
    pub credential: CredentialKind,
    /// Whether the platform injects `AWS_REGION` and `AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub inject_region_env: bool,
    /// False simulates IMDS hop limit 1 from a container: the token PUT never answers.
    #[serde(default)]
    pub imds_reachable: bool,
    /// The EKS/ECS host the workload runs on; such a workload sees that host's IMDS.
    #[serde(default)]
    pub node: Option<String>,
    /// IAM actions the workload's role is not granted (e.g. `aws-marketplace:RegisterUsage`): calls
    /// of them are denied as IAM denies them, after authentication.
    #[serde(default)]
    pub denied_actions: Vec<String>,
    /// RFC 3339 time the task/pod started; MeterUsage for an earlier time is usage before start
    /// (`Product::before_start`). Absent: no start known.
    #[serde(default)]
    pub started: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Platform {
    EcsEc2,
    EcsFargate,
    Eks,
    Ec2,
    Local,
}

/// How the platform hands the workload its AWS credentials (docs/aws-behaviour.md §6.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub enum CredentialKind {
    EcsTaskRole,
    Irsa {
        role_arn: String,
    },
    PodIdentity,
    InstanceRole {
        role: String,
    },
    StaticKeys,
    /// Containers Anywhere: a License Manager refresh token plus the role created with it
    /// (docs/aws-behaviour.md §5): GetAccessToken, then STS AssumeRoleWithWebIdentity.
    LicenseToken {
        role_arn: String,
        license_arn: String,
    },
    None,
}

impl World {
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }
    pub fn product(&self, code: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.code == code)
    }
    pub fn workload(&self, id: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.id == id)
    }
    pub fn license(&self, arn: &str) -> Option<&License> {
        self.licenses.iter().find(|l| l.arn == arn)
    }
}

impl Workload {
    /// Whether this workload can see an IMDS at all (a host of its own, or a node it runs on).
    pub fn has_imds(&self) -> bool {
        self.platform == Platform::Ec2 || self.node.is_some()
    }

    /// The name of the IAM role the workload's calls run as: the one its credential names (the last
    /// part of an IRSA or license-token `role_arn`, an instance profile's `role`), else
    /// `<id>-role` (a task role or Pod Identity association the scenario does not name).
    pub fn role_name(&self) -> String {
        match &self.credential {
            CredentialKind::Irsa { role_arn } | CredentialKind::LicenseToken { role_arn, .. } => {
                role_arn.rsplit('/').next().unwrap_or(role_arn).to_string()
            }
            CredentialKind::InstanceRole { role } => role.clone(),
            _ => format!("{}-role", self.id),
        }
    }
}
