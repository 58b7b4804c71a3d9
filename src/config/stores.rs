//! `[sessions]`, `[users]` and `[redis]`: where sessions and accounts are kept.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionBackend {
    Embedded,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    pub backend: SessionBackend,
    /// Redis URL for `backend = "redis"`: `redis://`, `rediss://` (TLS) or `redis+unix://`.
    pub redis_url: Option<String>,
    /// Entries the embedded backend keeps in memory in front of redb.
    pub cache_capacity: u64,
    /// Seconds between sweeps that delete expired entries from disk.
    pub purge_interval: u64,
    /// Live sessions a user may hold; a new one ends the oldest.
    pub max_per_user: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserBackend {
    Redb,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Users {
    pub backend: UserBackend,
    /// Redis URL for `backend = "redis"`; defaults to `sessions.redis_url`.
    pub redis_url: Option<String>,
}

/// Settings shared by the Redis backends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Redis {
    /// Prepended to every key gatehouse writes.
    pub prefix: String,
    /// Milliseconds to establish a connection.
    pub connect_timeout_ms: u64,
    /// Milliseconds for one command; past it the request answers 503.
    pub command_timeout_ms: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            backend: SessionBackend::Embedded,
            redis_url: None,
            cache_capacity: 10_000,
            purge_interval: 60,
            max_per_user: 100,
        }
    }
}

impl Default for Users {
    fn default() -> Self {
        Users {
            backend: UserBackend::Redb,
            redis_url: None,
        }
    }
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            prefix: "gatehouse:".to_owned(),
            connect_timeout_ms: 2_000,
            command_timeout_ms: 1_000,
        }
    }
}
