//! The User-Agent of mpgate's hand-built AWS clients when `AWS_EXECUTION_ENV` cannot be put in it.
//!
//! The SDK's `UserAgentInterceptor` reads `AWS_EXECUTION_ENV` from the process environment (not
//! from an injected one) and writes it into the `x-amz-user-agent` and `User-Agent` headers as
//! `exec-env/<value>`. A value with a byte no header value may carry (a control character other
//! than tab, or DEL) makes every request fail before it is sent, and no retry changes that. The
//! variable belongs to the workload's environment, which the gate hands over untouched; so instead
//! of changing it, the clients mpgate builds get an interceptor that hands the SDK a User-Agent
//! without the execution environment, which the SDK's interceptor then uses as is.
//! Must not: change the process environment or the workload's.
#![forbid(unsafe_code)]

use crate::platform::Env;
use aws_runtime::user_agent::{ApiMetadata, AwsUserAgent};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_types::config_bag::ConfigBag;

static WARNED: std::sync::Once = std::sync::Once::new();

/// The variable the SDK puts into its User-Agent.
pub const VARIABLE: &str = "AWS_EXECUTION_ENV";

/// Whether `value` can be carried in an HTTP header value as the SDK builds it (`http`'s rule:
/// visible ASCII, space, tab and bytes from 0x80 up; no other control character, no DEL).
pub fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// The interceptor to add to every client mpgate builds, when the environment's
/// `AWS_EXECUTION_ENV` would break the SDK's User-Agent; `None` when the SDK's own is fine. A blank
/// value (which `Env::get` treats as unset) says nothing worth sending either way, so it is left out
/// too. Says so once, on stderr, when a value is left out.
pub fn without_bad_execution_env(env: &dyn Env) -> Option<SharedInterceptor> {
    if !env.is_set(VARIABLE) {
        return None;
    }
    match env.get(VARIABLE) {
        Some(value) if header_safe(&value) => return None,
        // Clients are built again by supervise's sender and seat holder: say it once.
        Some(_) => WARNED.call_once(|| {
            crate::log::warn(&format!(
                "{VARIABLE} holds a character an HTTP header cannot carry; mpgate leaves it out of the User-Agent of its AWS calls (the workload still gets it unchanged); set it to the platform's name, e.g. AWS_ECS_FARGATE, or unset it"
            ))
        }),
        None => {}
    }
    Some(SharedInterceptor::new(PlainUserAgent))
}

/// Stores the SDK's own User-Agent, built from an environment without `AWS_EXECUTION_ENV`, before
/// the SDK's interceptor would build one from the process environment.
#[derive(Debug)]
struct PlainUserAgent;

impl Intercept for PlainUserAgent {
    fn name(&self) -> &'static str {
        "mpgate::PlainUserAgent"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(api) = cfg.load::<ApiMetadata>().cloned() {
            let ua = AwsUserAgent::new_from_environment(aws_types::os_shim_internal::Env::from_slice(&[]), api);
            cfg.interceptor_state().store_put(ua);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::env::MapEnv;

    #[test]
    fn only_what_a_header_cannot_carry_is_left_out() {
        for ok in ["AWS_ECS_FARGATE", "AWS_ECS_EC2", "with space", "tab\there", "caf\u{e9}"] {
            assert!(header_safe(ok), "{ok:?}");
            assert!(without_bad_execution_env(&MapEnv::from_pairs(&[(VARIABLE, ok)])).is_none(), "{ok:?}");
        }
        for bad in ["AWS_ECS\nx", "AWS_ECS\x7f", "AWS\rECS", "\u{1b}[31m", "\n"] {
            assert!(!header_safe(bad), "{bad:?}");
            assert!(without_bad_execution_env(&MapEnv::from_pairs(&[(VARIABLE, bad)])).is_some(), "{bad:?}");
        }
        assert!(without_bad_execution_env(&MapEnv::default()).is_none());
    }
}
