//! The emulated AWS world: accounts, products, workloads. Entitlement is derived from this
//! situation (who is subscribed, where a workload runs, which credentials it has), never from
//! per-test switches. Serde so the binary can load a world from JSON. No behaviour lives here.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the emulator knows about. Built once and fixed for the emulator's lifetime.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct World {
    pub accounts: Vec<Account>,
    pub products: Vec<Product>,
    pub workloads: Vec<Workload>,
}

/// A buyer account and the product codes it is subscribed to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    /// 12 digits.
    pub id: String,
    #[serde(default)]
    pub subscriptions: Vec<String>,
}

/// A Marketplace container product as the metering service sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// `iat` in milliseconds instead of seconds (the unit is undocumented; aws-wire.md §3).
    #[serde(default)]
    pub iat_millis: bool,
}

/// Casing of the JWT payload claims; AWS documents both (aws-wire.md §3).
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
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Platform {
    EcsEc2,
    EcsFargate,
    Eks,
    Ec2,
    Local,
}

/// How the platform hands the workload its AWS credentials (aws-wire.md §6.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum CredentialKind {
    EcsTaskRole,
    Irsa { role_arn: String },
    PodIdentity,
    InstanceRole { role: String },
    StaticKeys,
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
}

impl Workload {
    /// Whether this workload can see an IMDS at all (a host of its own, or a node it runs on).
    pub fn has_imds(&self) -> bool {
        self.platform == Platform::Ec2 || self.node.is_some()
    }
}
