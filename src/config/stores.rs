//! `[sessions]`, `[users]` and `[redis]`: where sessions and accounts are kept.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive_secs};

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

impl Sessions {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive_secs("sessions.purge_interval", self.purge_interval)?;
        if self.max_per_user == 0 {
            return Err(invalid(
                "sessions.max_per_user",
                "must be at least 1 (it is how many live sessions a user may hold)",
            ));
        }
        if self.backend == SessionBackend::Redis && self.redis_url.is_none() {
            return Err(invalid(
                "sessions.redis_url",
                "is required with sessions.backend = \"redis\"",
            ));
        }
        check_redis_url("sessions.redis_url", self.redis_url.as_deref())
    }
}

impl Users {
    /// `sessions`: where `users.redis_url` defaults to.
    pub(super) fn validate(&self, sessions: &Sessions) -> Result<(), ConfigError> {
        let url = self.redis_url.as_deref().or(sessions.redis_url.as_deref());
        if self.backend == UserBackend::Redis && url.is_none() {
            return Err(invalid(
                "users.redis_url",
                "is required with users.backend = \"redis\" (or set sessions.redis_url)",
            ));
        }
        check_redis_url("users.redis_url", self.redis_url.as_deref())
    }
}

impl Redis {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.connect_timeout_ms == 0 || self.command_timeout_ms == 0 {
            return Err(invalid(
                "redis.connect_timeout_ms / redis.command_timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// A Redis URL is checked wherever it is set, whichever backend is chosen.
fn check_redis_url(key: &'static str, url: Option<&str>) -> Result<(), ConfigError> {
    if let Some(url) = url {
        redis::Client::open(url).map_err(|e| invalid(key, &e.to_string()))?;
    }
    Ok(())
}
