//! What the last proxied request looked like, for `gatehouse doctor`.
//!
//! Only requests that carry an `X-Forwarded-*` header are recorded, at most once a second:
//! a request without them (a token check from a client on the same host, the doctor's own
//! probes) costs three header lookups and nothing else. The record holds no secret: no
//! cookie, no `Authorization`, only the peer, the `Host` header and which forwarded headers
//! came.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Longest `Host` or `X-Forwarded-Proto` value kept.
const MAX_VALUE_CHARS: usize = 256;

/// The summary of one proxied request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ForwardedRequest {
    /// Unix time of the request.
    pub(crate) at: u64,
    pub(crate) peer: SocketAddr,
    /// Whether the peer is in `trusted_proxies` (so its `X-Forwarded-For` is believed).
    pub(crate) peer_trusted: bool,
    pub(crate) forwarded_for: bool,
    /// The `X-Forwarded-Proto` value, if any.
    pub(crate) forwarded_proto: Option<String>,
    pub(crate) forwarded_host: bool,
    /// The `Host` header, if any.
    pub(crate) host: Option<String>,
}

/// The most recent [`ForwardedRequest`], shared by all connections.
#[derive(Debug, Default)]
pub(crate) struct LastForwarded {
    /// Unix second of the last record: one record a second at most.
    recorded_at: AtomicU64,
    last: Mutex<Option<ForwardedRequest>>,
}

impl LastForwarded {
    /// Records the request if it carries a forwarded header and nothing was recorded this
    /// second.
    pub(crate) fn observe(&self, headers: &HeaderMap, peer: SocketAddr, trusted: &[IpNet]) {
        let forwarded_for = headers.contains_key("x-forwarded-for");
        let proto = headers.get("x-forwarded-proto");
        let forwarded_host = headers.contains_key("x-forwarded-host");
        if !forwarded_for && proto.is_none() && !forwarded_host {
            return;
        }
        let now = crate::clock::now_secs();
        if self.recorded_at.swap(now, Ordering::Relaxed) == now {
            return;
        }
        let text = |v: &http::HeaderValue| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(MAX_VALUE_CHARS)
                .collect::<String>()
        };
        let ip = peer.ip().to_canonical();
        let record = ForwardedRequest {
            at: now,
            peer,
            peer_trusted: trusted.iter().any(|net| net.contains(&ip)),
            forwarded_for,
            forwarded_proto: proto.map(text),
            forwarded_host,
            host: headers.get(http::header::HOST).map(text),
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some(record);
        }
    }

    /// The last record, if any.
    pub(crate) fn get(&self) -> Option<ForwardedRequest> {
        self.last.lock().ok().and_then(|last| last.clone())
    }
}
