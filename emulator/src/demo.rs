//! `World::demo()`: the world the gate's integration tests and the binary's default run against.
//! Every workload id here is part of the emulator's contract with those tests.

use crate::keys;
use crate::world::{Account, ClaimStyle, CredentialKind, Platform, Product, Workload, World};
use std::collections::BTreeMap;

pub const PAID: &str = "8f3kq2demopaid0mpgate01";
pub const FREE: &str = "5x7wq9demofree0mpgate01";
pub const ACCOUNT: &str = "111122223333";
pub const UNSUBSCRIBED_ACCOUNT: &str = "444455556666";
pub const IRSA_ROLE: &str = "arn:aws:iam::111122223333:role/mpgate-irsa";

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
    }
}

impl World {
    pub fn demo() -> World {
        let irsa = || CredentialKind::Irsa { role_arn: IRSA_ROLE.to_string() };
        let node1 = Some("node-1".to_string());
        let workloads = vec![
            workload("ecs-task", Platform::EcsFargate, CredentialKind::EcsTaskRole),
            Workload {
                // Old ECS agents on EC2 inject no region variables (aws-wire.md §6.1).
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
        ];
        World {
            accounts: vec![
                Account { id: ACCOUNT.to_string(), subscriptions: vec![PAID.to_string(), FREE.to_string()] },
                Account { id: UNSUBSCRIBED_ACCOUNT.to_string(), subscriptions: vec![] },
            ],
            products: vec![
                Product {
                    code: PAID.to_string(),
                    key_versions: vec![1, 2],
                    expired_versions: vec![],
                    signing_keys: BTreeMap::from([(1, keys::PAID_V1.to_string()), (2, keys::PAID_V2.to_string())]),
                    claim_style: ClaimStyle::CamelCase,
                    iat_millis: false,
                },
                Product {
                    code: FREE.to_string(),
                    key_versions: vec![1],
                    expired_versions: vec![],
                    signing_keys: BTreeMap::from([(1, keys::FREE_V1.to_string())]),
                    claim_style: ClaimStyle::CamelCase,
                    iat_millis: false,
                },
            ],
            workloads,
        }
    }
}
