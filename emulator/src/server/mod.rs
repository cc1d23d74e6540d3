//! Server layer, the top: the `Emulator` handle and its listeners, the HTTP side of every request
//! (accepting, reading, routing to a service, applying faults and variance forms, the request
//! ledger), the control API
//! and the environment each workload would see. It may use every layer below (`model`, `wire`,
//! `state`, `services`); nothing below may use it.

mod accept;
mod api;
mod control;
mod emulator;
mod env;
mod handle;
mod http;
mod listen;
mod routing;
mod tls;
mod variance;

pub use emulator::Emulator;
pub use listen::Listen;
