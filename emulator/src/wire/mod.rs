//! Wire layer: how AWS's protocols look on the wire, with no knowledge of who is asking. The
//! request as read (`request`), the answer shapes and error bodies of each protocol (`proto`),
//! awsJson member validation (`input`), SigV4 verification (`sigv4`), the RegisterUsage JWT
//! (`jwt`), the other tokens the emulator mints (`tokens`) and AWS-shaped random ids (`ids`), and the
//! other forms an answer may take in variance mode (`forms`).
//! Builds on `model` only: it must not reach the shared state, a service or the server, so every
//! function here takes what it needs as arguments.

pub mod forms;
pub mod ids;
pub mod input;
pub mod jwt;
pub mod proto;
pub mod request;
pub mod sigv4;
pub mod tokens;
