//! Credentials the emulator hands out and the principal each is bound to: the authentication
//! services look a key up here, and every service reads who is calling from `Principal`.

/// The credential source a principal authenticated with; decides RegisterUsage platform support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    EcsTaskRole,
    Irsa,
    PodIdentity,
    InstanceRole,
    StaticKeys,
    /// Assumed with a License Manager access token (Containers Anywhere).
    LicenseToken,
}

/// Who a credential belongs to; every credential handed out is bound to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: String,
    pub workload: String,
    pub kind: PrincipalKind,
    pub region: String,
}

#[derive(Debug, Clone)]
pub struct IssuedCred {
    pub access_key_id: String,
    pub secret: String,
    /// None for long-term (`AKIA…`) keys.
    pub session_token: Option<String>,
    pub principal: Principal,
}
