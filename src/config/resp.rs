//! `[resp]`: the read-only Redis-protocol listener over the session store (`crate::resp`).
//!
//! As written, every key is optional; validated, a listener carries its password, so a
//! listener without one cannot be represented.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive_secs};

/// Fewest characters in `resp.password`: the listener faces the network and is guessed at
/// only as fast as regulation allows, but a short password is still a weak one.
const MIN_PASSWORD: usize = 16;

/// `[resp]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawResp {
    listen: Option<SocketAddr>,
    #[serde(deserialize_with = "secret")]
    password: Option<String>,
    max_connections: usize,
    idle_timeout: u64,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// A secret that must be written as a string. Anything else (an environment variable of
/// digits reads as a number) is refused without showing the value, which the default error
/// would print into the logs; and never turned into a string, which could change it
/// (`0123` would become `123`).
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Secret;
    impl<'de> serde::de::Visitor<'de> for Secret {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        // Unset (the built-in default).
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(Secret).map_err(|_: D::Error| {
        serde::de::Error::custom(
            "must be a string (the value is not shown); in the environment, quote it: GATEHOUSE_RESP__PASSWORD='\"...\"'",
        )
    })
}

impl Default for RawResp {
    fn default() -> Self {
        RawResp {
            listen: None,
            password: None,
            max_connections: 1024,
            idle_timeout: 300,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The RESP listener, when `resp.listen` is set.
#[derive(Clone)]
pub struct RespListener {
    pub listen: SocketAddr,
    /// What `AUTH` must present.
    pub password: String,
    /// Connections served at once; more are refused with Redis' "max number of clients".
    pub max_connections: usize,
    /// How long a connection may stay silent (or leave an answer unread) before it is closed.
    pub idle_timeout: Duration,
    /// PEM files; when set, the listener speaks TLS only.
    pub tls: Option<RespTls>,
}

/// Never prints the password.
impl std::fmt::Debug for RespListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespListener")
            .field("listen", &self.listen)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct RespTls {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl RawResp {
    pub(super) fn validate(&self) -> Result<Option<RespListener>, ConfigError> {
        if self.max_connections == 0 {
            return Err(invalid("resp.max_connections", "must be at least 1"));
        }
        positive_secs("resp.idle_timeout", self.idle_timeout)?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(RespTls {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "resp.tls_cert / resp.tls_key",
                    "set both or neither",
                ));
            }
        };
        let Some(listen) = self.listen else {
            return Ok(None);
        };
        let password = match &self.password {
            None => {
                return Err(invalid(
                    "resp.password",
                    "is required when resp.listen is set",
                ));
            }
            Some(p) if p.chars().count() < MIN_PASSWORD => {
                return Err(invalid(
                    "resp.password",
                    &format!("must be at least {MIN_PASSWORD} characters"),
                ));
            }
            Some(p) => p.clone(),
        };
        Ok(Some(RespListener {
            listen,
            password,
            max_connections: self.max_connections,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            tls,
        }))
    }
}
