//! The emulator's own HTTP control surface for sellers' CI, where tests cannot call the Rust
//! API: `GET /_emulator/requests` (the ledger), `GET /_emulator/registrations`, and
//! `POST /_emulator/faults` with `{"op":"RegisterUsage","fault":"Throttle","count":3}`.

use crate::fault::Fault;
use crate::proto::{plain, Outcome};
use crate::server::Incoming;
use crate::state::Shared;
use serde::Deserialize;

#[derive(Deserialize)]
struct FaultRequest {
    op: String,
    /// Serde form of `Fault`: "Throttle", {"Status":[503,"X"]}, {"Token":"AlgNone"}, {"Delay":{"secs":1,"nanos":0}}.
    fault: Fault,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

fn json(v: String) -> Outcome {
    Outcome::new(200, "application/json", v)
}

pub fn handle(shared: &Shared, req: &Incoming) -> Outcome {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/_emulator/requests") => json(serde_json::to_string(&shared.lock().ledger).unwrap_or_default()),
        ("GET", "/_emulator/registrations") => {
            json(serde_json::to_string(&shared.lock().registrations).unwrap_or_default())
        }
        ("POST", "/_emulator/faults") => match serde_json::from_slice::<FaultRequest>(&req.body) {
            Ok(f) => {
                let mut inner = shared.lock();
                for _ in 0..f.count {
                    inner.faults.push(&f.op, f.fault.clone());
                }
                json("{}".into())
            }
            Err(e) => plain(400, &format!("bad fault request: {e}")),
        },
        _ => plain(404, "unknown emulator control path"),
    }
}
