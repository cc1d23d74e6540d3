//! Where am I running, which region, which credentials — and from which source each answer came.
//!
//! Owns: the run-time discovery of region and credentials, with the source of each remembered so a
//! refusal can name it and say what to fix. Must not: decide entitlement or print anything.
#![forbid(unsafe_code)]

pub mod credentials;
pub mod env;
pub mod metadata;
pub mod partition;
pub mod reach;
pub mod region;

pub use credentials::{CredentialSource, LoadedCredentials};
pub use env::{Env, ProcessEnv};
pub use region::{FoundRegion, RegionSource};
