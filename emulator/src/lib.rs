//! mpgate-emulator: all of AWS that mpgate touches (Marketplace Metering, STS, the ECS and EKS
//! credential endpoints, ECS task metadata, IMDS) on loopback, for integration tests. It models a
//! world of accounts, products and workloads, and derives every answer from that situation.
//! Test-only: it trusts nothing but also protects nothing (keys are public test keys).
//!
//! Read it bottom-up; each layer depends only on those before it (tests/layers.rs enforces it):
//! `model` (the world, ledgers, faults, clock, keys), `wire` (AWS's protocols: request, answer
//! shapes, validation, SigV4, tokens), `state` (what the services share while running),
//! `services` (the AWS operations), `server` (the `Emulator` handle, HTTP, routing, faults, control
//! API). This file only declares them and re-exports the public API.

#![forbid(unsafe_code)]

mod model;
mod server;
mod services;
mod state;
mod wire;

pub use model::demo::{
    ACCOUNT, CONTRACT_LICENSE, CONTRACT_SKU, EXPIRED_REGISTRATION_TOKEN, FREE, FRESH_TASK, IRSA_ROLE,
    LICENSE_TOKEN_ROLE, METERED, NEW_YEAR, PAID, REGISTRATION_TOKEN, SAAS, SELLER_ACCOUNT, UNSUBSCRIBED_ACCOUNT,
};
pub use model::fault::{Fault, TokenMutation};
pub use model::ledger::{Allocation, MeteringRecord, Recorded, Registration, Seat, SeatState};
pub use model::variance::DateForm;
pub use model::world::{
    Account, BeforeStartAnswer, ClaimStyle, CredentialKind, DateStyle, DryRunAnswer, DryRunChecks, License,
    LicenseEntitlement, MeterIdempotency, OutsideHomeRegion, Platform, Product, Quotas, RedirectLocation,
    RegistrationToken, TagPattern, Workload, World, MARKETPLACE_FINGERPRINT,
};
pub use model::{clock, keys};
pub use server::{Emulator, Listen};
pub use wire::{forms, jwt, sigv4};
