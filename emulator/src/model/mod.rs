//! Model layer, the bottom of the emulator: the situation it emulates and the records it keeps.
//! The world (accounts, products, licenses, workloads) and the demo world, the ledgers, the faults
//! a test can queue, the emulated clock, the test keys and the quota buckets. Plain data and pure
//! rules on it: nothing here speaks HTTP or an AWS protocol, holds the shared state or knows a
//! service, so it depends on no other layer (`wire`, `state`, `services`, `server`).

pub mod clock;
pub mod demo;
pub mod fault;
pub mod keys;
pub mod ledger;
pub mod quota;
pub mod scenario;
pub mod variance;
pub mod world;
