//! `[limits]`, `[metrics]` and `[log]`: how the server listens, what it accepts, and what
//! it reports.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

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
