//! Opening the spool, in two steps: `Prepared::open` before any AWS call (the directory, `usage.log`
//! as a regular file, the ownership `supervise --user` needs, `state.json` loaded and checked), so an
//! unusable or tampered spool is refused or reported before admission; then `Meter::open` once
//! entitlement is proven, with the product and region to send to.
#![forbid(unsafe_code)]

use super::{clock, warn, Meter};
use crate::entitlement::Entitled;
use crate::error::Error;
use crate::identity;
use crate::metering::compact::Compactor;
use crate::metering::spread::Spread;
use crate::metering::state::{Bucket, State};
use crate::metering::usage_file::{self, Access};
use crate::metering::Spool;
use crate::platform::Env;
use crate::supervise::stop::Policy;
use crate::supervise::user::User;
use std::collections::HashMap;

/// A spool ready for the sender: usable, its state loaded, checked and saved.
pub struct Prepared {
    spool: Spool,
    state: State,
    /// Usage `state.json` held that can never be sent, quarantined once the sender exists.
    quarantine: Vec<(Bucket, String)>,
}

impl Prepared {
    /// Open (creating if needed) the spool and load its state; every reset `State::check` makes is
    /// reported here. Refuses an unusable spool before the workload starts, so usage is never
    /// recorded where it cannot be sent. With `user` (the workload's uid and gid under
    /// `supervise --user`), the spool is sealed (`metering::seal`).
    pub fn open(spool: Spool, user: Option<User>, env: &dyn Env) -> Result<Prepared, Error> {
        let baked = identity::baked()?;
        let fail = |what: String| {
            Error::Spool(format!(
                "spool directory {}: {what}; mount a writable emptyDir or volume there or set --spool / MPGATE_SPOOL_DIR (docs/custom-metering.md)",
                spool.dir().display()
            ))
        };
        std::fs::create_dir_all(spool.dir()).map_err(|e| fail(format!("cannot create it: {e}")))?;
        let usage = usage_file::open(&spool.usage_file(), Access::Create).map_err(Error::Spool)?;
        if let Some(user) = user {
            crate::metering::seal::seal(&spool, &usage, user).map_err(Error::Spool)?;
        }
        let usage_len = usage.metadata().map_or(0, |m| m.len());
        let mut state = State::load(&spool).map_err(fail)?;
        let found = state.check(baked.dimensions, clock(env).now(), usage_len);
        for line in &found.lines {
            warn(line);
        }
        state.ensure_salt().map_err(fail)?;
        state.save(&spool).map_err(|e| fail(format!("cannot write state.json: {e}")))?;
        Ok(Prepared { spool, state, quarantine: found.quarantine })
    }
}

impl<'a> Meter<'a> {
    /// The sender over a prepared spool, for the product and region `entitled` was proven for.
    pub fn open(
        prepared: Prepared,
        entitled: &Entitled,
        env: &'a dyn Env,
        on_not_entitled: Policy,
        spread: std::time::Duration,
    ) -> Result<Meter<'a>, Error> {
        let baked = identity::baked()?;
        let product = baked.select(Some(entitled.product_code()))?;
        let meter = Meter {
            spool: prepared.spool,
            env,
            clock: clock(env),
            product,
            dimensions: baked.dimensions,
            region: entitled.region().clone(),
            source: entitled.credential_source(),
            hostname: crate::entitlement::nonce::hostname(),
            clients: None,
            client: None,
            state: prepared.state,
            compactor: Compactor::default(),
            spread: Spread::new(spread, crate::flavour::spread_seed(env)),
            on_not_entitled,
            held: HashMap::new(),
            not_entitled: None,
            unreadable: None,
        };
        for (bucket, why) in &prepared.quarantine {
            meter.quarantine_usage(bucket, why);
        }
        Ok(meter)
    }
}
