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
        // Names parsed once, not at every request.
        static FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
        static PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
        static HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
        let forwarded_for = headers.contains_key(&FOR);
        let proto = headers.get(&PROTO);
        let forwarded_host = headers.contains_key(&HOST);
        if !forwarded_for && proto.is_none() && !forwarded_host {
            return;
        }
        let now = crate::clock::now_secs();
        // A load first: a swap on every request would write the shared line from every core.
        if self.recorded_at.load(Ordering::Relaxed) == now
            || self.recorded_at.swap(now, Ordering::Relaxed) == now
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_forwarded_requests_and_no_secrets() {
        let last = LastForwarded::default();
        let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("host", "auth.example.org".parse().unwrap());
        headers.insert("cookie", "gh_access=secret".parse().unwrap());
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        last.observe(&headers, peer, &trusted);
        assert_eq!(last.get(), None, "no forwarded header, nothing recorded");

        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        last.observe(&headers, peer, &trusted);
        let seen = last.get().expect("recorded");
        assert!(seen.peer_trusted && !seen.forwarded_for && !seen.forwarded_host);
        assert_eq!(seen.forwarded_proto.as_deref(), Some("https"));
        assert_eq!(seen.host.as_deref(), Some("auth.example.org"));
        assert!(!serde_json::to_string(&seen).unwrap().contains("secret"));
    }
}
