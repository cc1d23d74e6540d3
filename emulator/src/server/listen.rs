//! Where and how the emulator listens (`Listen`: addresses, and the variance seed), and the real link-local addresses of the ECS agent and
//! IMDS, which decide whether a workload's environment needs an endpoint override at all.

use std::net::SocketAddr;

/// Where the emulator listens. The defaults are loopback with ephemeral ports, which any user can
/// bind; the real link-local addresses (`ECS_AGENT`, `IMDS`) need a network namespace of one's own
/// (tests/netns.rs), where the workload's environment then carries no endpoint override at all.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The AWS APIs, STS, the control API and the loopback forms of the container endpoints.
    pub main: SocketAddr,
    /// The ECS agent: `/v2/credentials/<id>` (what `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` points
    /// at) and task metadata v4 `/v4/<container id>`. Off by default.
    pub ecs_agent: Option<SocketAddr>,
    /// The EKS Pod Identity agent: `GET /v1/credentials`, what `AWS_CONTAINER_CREDENTIALS_FULL_URI`
    /// points at on EKS (169.254.170.23:80, or `[fd00:ec2::23]:80` on IPv6 clusters). Off by default:
    /// Pod Identity workloads are then served on the main port.
    pub pod_identity_agent: Option<SocketAddr>,
    /// Workload id → address of the IMDS it sees, instead of port 0 on the main address's host.
    pub imds: Vec<(String, SocketAddr)>,
    /// A second main port speaking HTTPS (same APIs, same world and ledger), with the test certificate
    /// for 127.0.0.1/localhost from testdata/emulator-tls. Off by default. The container credential
    /// endpoints in `workload_env` keep pointing at the plain port, as ECS's are plain http.
    pub tls_main: Option<SocketAddr>,
    /// Variance mode: every answer takes, drawn from this seed, one of the forms AWS's protocols and
    /// documents allow for it (docs/emulator.md, "Variance"). `None` (the default): one fixed form.
    pub variance: Option<u64>,
}

impl Listen {
    /// Where ECS serves task credentials and metadata (docs/aws-behaviour.md §6.1).
    pub const ECS_AGENT: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 170, 2)), 80);
    /// Where EC2 serves IMDS.
    pub const IMDS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254)), 80);
    /// Where EC2 serves IMDS over IPv6 (`AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`).
    pub const IMDS_V6: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), 80);
    /// Where the EKS Pod Identity agent listens on IPv6 clusters.
    pub const POD_IDENTITY_AGENT_V6: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)), 80);
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            main: SocketAddr::from(([127, 0, 0, 1], 0)),
            ecs_agent: None,
            pod_identity_agent: None,
            imds: Vec::new(),
            tls_main: None,
            variance: None,
        }
    }
}
