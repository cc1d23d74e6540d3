//! What is decided once, at start, for the whole run: the parsed signing keys, and each workload's
//! setup (its task id, and the tokens or long-term keys its platform hands it), so that the
//! environment `workload_env` reports is stable and the binary can write it to files.

use super::credentials::{IssuedCred, Principal, PrincipalKind};
use crate::model::world::{CredentialKind, Workload, World};
use crate::wire::ids::{random_string, random_upper, request_id};
use crate::wire::tokens;
use rand::Rng;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

/// Per-workload facts fixed at start so `workload_env` is stable and the binary can write them.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub ecs_token: Option<String>,
    pub irsa_token: Option<String>,
    pub pod_token: Option<String>,
    pub static_key: Option<String>,
    /// License Manager refresh token (Containers Anywhere).
    pub lm_refresh_token: Option<String>,
    pub task_id: String,
    /// Where this workload's IMDS listens, if it can see one.
    pub imds_addr: Option<SocketAddr>,
    /// The `/v2/credentials/<id>` path id the ECS agent serves this task's role under (the real
    /// agent uses a UUID; the path itself is the secret, there is no authorization header).
    pub ecs_credentials_id: Option<String>,
}

/// The private keys the emulator signs with: its own, the attacker's (for the forged-token
/// faults) and each product's per key version.
pub struct Keys {
    pub emulator: RsaPrivateKey,
    pub attacker: RsaPrivateKey,
    pub products: HashMap<(String, i32), RsaPrivateKey>,
}

fn parse_key(pem: &str, what: &str) -> io::Result<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")))
}

impl Keys {
    pub fn load(world: &World) -> io::Result<Keys> {
        let mut products = HashMap::new();
        for p in &world.products {
            for (v, pem) in &p.signing_keys {
                products.insert((p.code.clone(), *v), parse_key(pem, &format!("key {} v{v}", p.code))?);
            }
        }
        Ok(Keys {
            emulator: parse_key(crate::model::keys::EMULATOR, "emulator key")?,
            attacker: parse_key(crate::model::keys::ATTACKER, "attacker key")?,
            products,
        })
    }
}

impl Setup {
    /// `w`'s setup, and the long-term key it is given if its platform hands it static keys.
    pub fn for_workload(w: &Workload, keys: &Keys, imds_addr: Option<SocketAddr>) -> (Setup, Option<IssuedCred>) {
        let mut s = Setup { task_id: hex::encode(rand::thread_rng().gen::<[u8; 16]>()), imds_addr, ..Setup::default() };
        let mut static_key = None;
        match &w.credential {
            CredentialKind::EcsTaskRole => {
                s.ecs_token = Some(random_string(48));
                s.ecs_credentials_id = Some(request_id());
            }
            CredentialKind::Irsa { .. } => s.irsa_token = Some(tokens::service_account(&keys.emulator, w)),
            CredentialKind::PodIdentity => s.pod_token = Some(tokens::service_account(&keys.emulator, w)),
            CredentialKind::StaticKeys => {
                let cred = IssuedCred {
                    access_key_id: format!("AKIA{}", random_upper(16)),
                    secret: random_string(40),
                    session_token: None,
                    principal: Principal {
                        account: w.account.clone(),
                        workload: w.id.clone(),
                        kind: PrincipalKind::StaticKeys,
                        region: w.region.clone(),
                    },
                };
                s.static_key = Some(cred.access_key_id.clone());
                static_key = Some(cred);
            }
            CredentialKind::LicenseToken { .. } => s.lm_refresh_token = Some(tokens::refresh_token(&keys.emulator, w)),
            CredentialKind::InstanceRole { .. } | CredentialKind::None => {}
        }
        (s, static_key)
    }
}
