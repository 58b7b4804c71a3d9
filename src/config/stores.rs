//! `[sessions]`, `[users]` and `[redis]`: where sessions and accounts are kept.
//!
//! As written, a backend is a name and its Redis URL a separate, optional key (for users,
//! falling back to `sessions.redis_url`). Validated, a Redis backend carries its URL, so a
//! backend without the URL it needs cannot be represented.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive_secs};

/// `sessions.backend` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionBackendKind {
    Embedded,
    Redis,
}

/// `[sessions]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSessions {
    backend: SessionBackendKind,
    /// Redis URL for `backend = "redis"`: `redis://`, `rediss://` (TLS) or `redis+unix://`.
    redis_url: Option<String>,
    cache_capacity: u64,
    purge_interval: u64,
    max_per_user: u64,
}

/// `[sessions]`, validated.
#[derive(Debug, Clone)]
pub struct Sessions {
    pub backend: SessionBackend,
    /// Entries the embedded backend keeps in memory in front of redb.
    pub cache_capacity: u64,
    /// Seconds between sweeps that delete expired entries from disk (positive).
    pub purge_interval: u64,
    /// Live sessions a user may hold (at least 1); a new one ends the oldest.
    pub max_per_user: usize,
}

/// Where sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionBackend {
    /// In the redb database, behind an in-memory cache.
    Embedded,
    /// In Redis, shared by every node that points at it.
    Redis { url: String },
}

impl SessionBackend {
    /// The backend's name, without its URL (which may hold a password).
    pub fn kind(&self) -> SessionBackendKind {
        match self {
            SessionBackend::Embedded => SessionBackendKind::Embedded,
            SessionBackend::Redis { .. } => SessionBackendKind::Redis,
        }
    }
}

/// `users.backend` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserBackendKind {
    Redb,
    Redis,
}

/// `[users]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawUsers {
    backend: UserBackendKind,
    /// Redis URL for `backend = "redis"`; defaults to `sessions.redis_url`.
    redis_url: Option<String>,
}

/// `[users]`, validated.
#[derive(Debug, Clone)]
pub struct Users {
    pub backend: UserBackend,
}

/// Where accounts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserBackend {
    /// In the redb database.
    Redb,
    /// In Redis: `users.redis_url`, else `sessions.redis_url`.
    Redis { url: String },
}

impl UserBackend {
    /// The backend's name, without its URL (which may hold a password).
    pub fn kind(&self) -> UserBackendKind {
        match self {
            UserBackend::Redb => UserBackendKind::Redb,
            UserBackend::Redis { .. } => UserBackendKind::Redis,
        }
    }
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

impl Default for RawSessions {
    fn default() -> Self {
        RawSessions {
            backend: SessionBackendKind::Embedded,
            redis_url: None,
            cache_capacity: 10_000,
            purge_interval: 60,
            max_per_user: 100,
        }
    }
}

impl Default for RawUsers {
    fn default() -> Self {
        RawUsers {
            backend: UserBackendKind::Redb,
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

impl RawSessions {
    pub(super) fn validate(&self) -> Result<Sessions, ConfigError> {
        positive_secs("sessions.purge_interval", self.purge_interval)?;
        if self.max_per_user == 0 {
            return Err(invalid(
                "sessions.max_per_user",
                "must be at least 1 (it is how many live sessions a user may hold)",
            ));
        }
        check_redis_url("sessions.redis_url", self.redis_url.as_deref())?;
        let backend = match (self.backend, &self.redis_url) {
            (SessionBackendKind::Embedded, _) => SessionBackend::Embedded,
            (SessionBackendKind::Redis, Some(url)) => SessionBackend::Redis { url: url.clone() },
            (SessionBackendKind::Redis, None) => {
                return Err(invalid(
                    "sessions.redis_url",
                    "is required with sessions.backend = \"redis\"",
                ));
            }
        };
        Ok(Sessions {
            backend,
            cache_capacity: self.cache_capacity,
            purge_interval: self.purge_interval,
            max_per_user: usize::try_from(self.max_per_user).unwrap_or(usize::MAX),
        })
    }
}

impl RawUsers {
    /// `sessions`: where `users.redis_url` defaults to.
    pub(super) fn validate(&self, sessions: &RawSessions) -> Result<Users, ConfigError> {
        check_redis_url("users.redis_url", self.redis_url.as_deref())?;
        let url = self.redis_url.as_ref().or(sessions.redis_url.as_ref());
        let backend = match (self.backend, url) {
            (UserBackendKind::Redb, _) => UserBackend::Redb,
            (UserBackendKind::Redis, Some(url)) => UserBackend::Redis { url: url.clone() },
            (UserBackendKind::Redis, None) => {
                return Err(invalid(
                    "users.redis_url",
                    "is required with users.backend = \"redis\" (or set sessions.redis_url)",
                ));
            }
        };
        Ok(Users { backend })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(backend: SessionBackendKind, url: Option<&str>) -> RawSessions {
        RawSessions {
            backend,
            redis_url: url.map(Into::into),
            ..RawSessions::default()
        }
    }

    fn users(backend: UserBackendKind, url: Option<&str>) -> RawUsers {
        RawUsers {
            backend,
            redis_url: url.map(Into::into),
        }
    }

    #[test]
    fn redis_backends_carry_their_url() {
        use SessionBackendKind as S;
        use UserBackendKind as U;
        let (a, b) = ("redis://a:6379/0", "redis://b:6379/1");
        let session_backend = |raw: RawSessions| raw.validate().map(|s| s.backend);
        assert_eq!(
            session_backend(sessions(S::Redis, Some(a))).unwrap(),
            SessionBackend::Redis { url: a.into() }
        );
        // A URL without the backend that uses it is checked, and otherwise left alone.
        assert_eq!(
            session_backend(sessions(S::Embedded, Some(a))).unwrap(),
            SessionBackend::Embedded
        );
        let err = session_backend(sessions(S::Redis, None)).unwrap_err();
        assert!(err.to_string().contains("`sessions.redis_url`"), "{err}");

        // users.redis_url, else sessions.redis_url.
        let user_backend = |raw: RawUsers, s: &RawSessions| raw.validate(s).map(|u| u.backend);
        let redis = |url: &str| UserBackend::Redis { url: url.into() };
        let embedded = sessions(S::Embedded, None);
        assert_eq!(
            user_backend(users(U::Redis, Some(b)), &sessions(S::Redis, Some(a))).unwrap(),
            redis(b)
        );
        assert_eq!(
            user_backend(users(U::Redis, None), &sessions(S::Embedded, Some(a))).unwrap(),
            redis(a)
        );
        assert_eq!(
            user_backend(users(U::Redb, Some(b)), &embedded).unwrap(),
            UserBackend::Redb
        );
        let err = user_backend(users(U::Redis, None), &embedded).unwrap_err();
        assert!(err.to_string().contains("`users.redis_url`"), "{err}");
        let err = user_backend(users(U::Redb, Some("http://b")), &embedded).unwrap_err();
        assert!(err.to_string().contains("`users.redis_url`"), "{err}");

        // The names, for check-config, never show the URL.
        assert_eq!(
            format!("{:?}", SessionBackend::Redis { url: a.into() }.kind()),
            "Redis"
        );
        assert_eq!(format!("{:?}", UserBackend::Redb.kind()), "Redb");
    }
}
