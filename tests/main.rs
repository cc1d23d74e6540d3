//! The one integration test binary. Every test runs the real `mpgate` binary against the emulator over
//! real HTTP on 127.0.0.1 and asserts exit status, the stderr line, what the emulator received and
//! what the workload received.

mod support;

mod after_admission;
mod check;
mod contract;
mod docs;
mod endpoints;
mod exec_identity;
mod fuzz_replay;
mod gate_pass;
mod hourly;
mod https;
mod hygiene;
mod logging;
mod metering;
mod netns;
mod packaging;
mod proxy;
mod release;
mod rootfs;
mod supervise;
mod tamper;
mod tokens;
mod unreached;
mod variance;
mod vpce;
