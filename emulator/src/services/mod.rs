//! Services layer: the AWS operations themselves, one file per service or concern, each turning a
//! request into an answer from the world and the state. Marketplace Metering (`metering` dispatches;
//! `meter`, `saas`, `usage`), License Manager (`license` dispatches; `license_info`,
//! `license_situations`), STS (`sts`), IMDS (`imds`), the container endpoints (`container`) and
//! SigV4 authentication shared by the signed APIs (`auth`). Builds on `model`, `wire` and `state`;
//! it must not depend on `server`: which listener a request came in on, faults and the ledger of
//! requests are the server's business.

mod auth;
pub mod container;
pub mod imds;
pub mod license;
mod license_info;
mod license_situations;
mod meter;
pub mod metering;
mod saas;
pub mod sts;
mod usage;
