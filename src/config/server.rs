//! `[limits]`, `[metrics]` and `[log]`: how the server listens, what it accepts, and what
//! it reports.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive_secs};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body, bytes.
    pub max_body: usize,
    /// Largest accepted request head (request line and headers), bytes.
    pub max_header_bytes: usize,
    /// Most headers accepted in one request.
    pub max_headers: usize,
    /// Seconds a client has to send the request head.
    pub header_read_timeout: u64,
    /// Seconds a request may take from head to response.
    pub request_timeout: u64,
    /// Open connections accepted at once; further ones wait in the kernel backlog.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Separate address for `GET /metrics`; unset serves it on `listen`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `gatehouse=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 65_536,
            max_header_bytes: 16_384,
            max_headers: 64,
            header_read_timeout: 10,
            request_timeout: 30,
            max_connections: 4_096,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Limits {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive_secs("limits.header_read_timeout", self.header_read_timeout)?;
        positive_secs("limits.request_timeout", self.request_timeout)?;
        if self.max_body < 1024 {
            return Err(invalid("limits.max_body", "must be at least 1024 bytes"));
        }
        if self.max_header_bytes < 8192 {
            // hyper's smallest read buffer.
            return Err(invalid(
                "limits.max_header_bytes",
                "must be at least 8192 bytes",
            ));
        }
        if self.max_headers == 0 {
            return Err(invalid("limits.max_headers", "must be at least 1"));
        }
        if self.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

impl Log {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map_err(|e| invalid("log.level", &e.to_string()))?;
        Ok(())
    }
}

/// `trusted_proxies`, parsed: each entry `10.0.0.0/8`, `::1/128`, or a bare address (one
/// host).
pub(super) fn trusted_networks(proxies: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    proxies
        .iter()
        .map(|p| {
            let text = p.trim();
            text.parse::<IpNet>()
                .ok()
                .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
                .ok_or_else(|| {
                    invalid(
                        "trusted_proxies",
                        &format!("{p:?} is not an address or CIDR"),
                    )
                })
        })
        .collect()
}
