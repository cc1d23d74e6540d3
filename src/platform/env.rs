//! Read access to the process environment, injected so unit tests never read the real one.
#![forbid(unsafe_code)]

use std::collections::HashMap;

/// A source of environment variables.
pub trait Env: Send + Sync {
    /// The variable's value if it is set, valid UTF-8 and not blank (a blank value counts as unset,
    /// as in aws-config).
    fn get(&self, key: &str) -> Option<String>;

    /// Whether the variable is set at all, blank or not: what `std::env::var(key).is_ok()` says,
    /// which is how some SDK code reads the environment (`aws::SDK_PARTITION_VARIABLE`).
    fn is_set(&self, key: &str) -> bool;
}

/// The real process environment. The only place mpgate's own logic reads it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        #[allow(clippy::disallowed_methods)] // this is the one sanctioned reader
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }

    fn is_set(&self, key: &str) -> bool {
        #[allow(clippy::disallowed_methods)] // this is the one sanctioned reader
        std::env::var(key).is_ok()
    }
}

/// A fixed set of variables, for tests.
#[derive(Clone, Debug, Default)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// Build from pairs.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        MapEnv(pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect())
    }
}

impl Env for MapEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|v| !v.trim().is_empty()).cloned()
    }

    fn is_set(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}
