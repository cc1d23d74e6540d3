//! The product identity baked in at build time (see build.rs), and the one rule for choosing among it.
//!
//! Owns: the baked product codes with their tiers, the pricing model, the seller's public keys, and
//! for custom metering the dimensions with their allowed tag keys, for contract pricing the product
//! SKU (as the one product "code") and the entitlements to check out.
//! Must not: read anything at run time that could change these values. A run-time selection (flag or
//! `MPGATE_PRODUCT_CODE`) can only pick one of the baked codes; its tier always comes from the bake.
#![forbid(unsafe_code)]

use crate::error::Error;

/// Pricing model of the listing; decides which AWS call proves entitlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PricingModel {
    /// Hourly pricing: RegisterUsage at start.
    Hourly,
    /// Fixed monthly pricing: also RegisterUsage at start.
    Monthly,
    /// Custom metering: MeterUsage dry runs at start, then hourly MeterUsage records (supervise only).
    CustomMetering,
    /// Contract pricing: CheckoutLicense from AWS License Manager at start (docs/contract.md).
    Contract,
}

/// The key fingerprint of licenses AWS Marketplace issues (docs/aws-behaviour.md §4.2): a constant, never baked.
pub const MARKETPLACE_KEY_FINGERPRINT: &str = "aws:294406891311:AWS/Marketplace:issuer-fingerprint";

/// One contract entitlement to check out, as baked from `MPGATE_ENTITLEMENTS`.
#[derive(Debug)]
pub struct BakedEntitlement {
    /// Entitlement name as in the license.
    pub name: &'static str,
    /// License Manager unit (`None` for features and tiers, `Count` for seats, ...).
    pub unit: &'static str,
    /// Units one container checks out (`None` unit: no value).
    pub value: Option<u64>,
    /// Whether AWS allowing this entitlement admits a start.
    pub admits: bool,
}

impl PricingModel {
    /// The name used in `MPGATE_PRICING_MODEL`, the CLI output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            PricingModel::Hourly => "hourly",
            PricingModel::Monthly => "monthly",
            PricingModel::CustomMetering => "custom-metering",
            PricingModel::Contract => "contract",
        }
    }
}

/// One AWS-issued public key for one key version.
#[derive(Debug)]
pub struct BakedKey {
    /// `PublicKeyVersion` this key belongs to.
    pub version: u32,
    /// Modulus size.
    pub bits: u32,
    /// Lower-case hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub sha256: &'static str,
    /// SubjectPublicKeyInfo DER.
    pub der: &'static [u8],
}

/// One product code the gate may register, with its tier and keys (sorted by version).
#[derive(Debug)]
pub struct BakedProduct {
    /// Marketplace product code.
    pub code: &'static str,
    /// Tier the workload is told when this code is verified (`paid`, `free`, ...).
    pub tier: &'static str,
    /// Public keys, ascending by version.
    pub keys: &'static [BakedKey],
}

/// One custom-metering dimension, as in the product load form, and the tag keys a record may carry.
#[derive(Debug)]
pub struct BakedDimension {
    /// `UsageDimension` name.
    pub name: &'static str,
    /// Tag keys allowed in usage allocations for this dimension (empty: untagged only).
    pub tag_keys: &'static [&'static str],
}

/// The whole baked identity. The first product is the default.
#[derive(Debug)]
pub struct Baked {
    /// Pricing model of every baked code.
    pub pricing_model: PricingModel,
    /// Custom-metering dimensions (empty for the other models).
    pub dimensions: &'static [BakedDimension],
    /// Contract entitlements (empty for the other models).
    pub entitlements: &'static [BakedEntitlement],
    /// Products (contract: the one product SKU); `products[0]` is `MPGATE_PRODUCT_CODE` at build time.
    pub products: &'static [BakedProduct],
}

include!(concat!(env!("OUT_DIR"), "/baked_identity.rs"));

/// The identity of this build, or the refusal every start of an unbaked build gets.
pub fn baked() -> Result<&'static Baked, Error> {
    match &BAKED {
        Some(b) => Ok(b),
        None => Err(Error::Unbaked),
    }
}

impl Baked {
    /// The baked dimension called `name`.
    pub fn dimension(&self, name: &str) -> Option<&'static BakedDimension> {
        self.dimensions.iter().find(|d| d.name == name)
    }

    /// Choose the product to register: the default, or a run-time choice that must be baked.
    pub fn select(&'static self, requested: Option<&str>) -> Result<&'static BakedProduct, Error> {
        match requested {
            None => self.products.first().ok_or(Error::Unbaked),
            Some(code) => self
                .products
                .iter()
                .find(|p| p.code == code)
                .ok_or_else(|| Error::UntrustedProductCode(code.to_string())),
        }
    }
}
