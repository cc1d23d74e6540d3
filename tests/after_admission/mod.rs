//! After admission: what the buyer still controls once the gate has let the workload start (its
//! command line, the container's signals, PID 1, the spool and the files the workload can write).
//! Each row is an attempt an adversarial buyer makes, and what it must end in.

mod order;
mod pass;
mod seats;
mod spool;
