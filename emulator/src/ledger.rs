//! What the emulator saw and what it billed: the request ledger and the registrations ledger.
//! Tests assert on these instead of on emulator internals.

use serde::Serialize;

/// One request as received, with the emulator's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// "RegisterUsage", "AssumeRoleWithWebIdentity", "EcsCredentials", "PodIdentityCredentials",
    /// "EcsTaskMetadata", "ImdsToken", "ImdsRegion", "ImdsRoleName", "ImdsCredentials", ...
    pub op: String,
    pub method: String,
    pub path: String,
    /// Lower-cased names, arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// 0 when no answer was sent (Hang, CloseConnection, unreachable IMDS).
    pub status: u16,
    pub error_code: Option<String>,
    /// The workload of the authenticated principal (or of the IMDS host that was asked).
    pub workload: Option<String>,
    /// SigV4 credential-scope region, when the request carried a parsable signature.
    pub signing_region: Option<String>,
}

/// A successful RegisterUsage: what AWS would start billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub workload: String,
    pub product_code: String,
    pub key_version: i32,
    pub nonce: Option<String>,
}
