//! What the listener keeps: [`Shared`] by every connection (the app, the password's digest,
//! the key prefix, the metrics) and [`Client`] per connection (authenticated or not, its
//! protocol and names, its deadline to authenticate).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::frame::Protocol;
use super::metrics::RespMetrics;
use crate::app::App;
use crate::store::{KeyKind, SessionStore, keys};

/// What the listener shares between its connections.
pub(crate) struct Shared {
    pub(crate) app: Arc<App>,
    /// SHA-256 of `resp.password`: compared in constant time with that of the one given,
    /// so neither its bytes nor its length leak through timing.
    password: [u8; 32],
    prefix: String,
    pub(crate) metrics: RespMetrics,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(app: Arc<App>, password: &str, metrics: RespMetrics) -> Self {
        let prefix = app.config.redis.prefix.clone();
        Shared {
            app,
            password: Sha256::digest(password.as_bytes()).into(),
            prefix,
            metrics,
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn store(&self) -> &dyn SessionStore {
        self.app.auth.store()
    }

    /// The store key a client's key names, and what it holds by the layout; `None` for a
    /// key outside the prefix, outside what services may read, or not UTF-8: such a key
    /// does not exist.
    pub(crate) fn key<'a>(&self, raw: &'a [u8]) -> Option<(&'a str, KeyKind)> {
        let key = std::str::from_utf8(raw.strip_prefix(self.prefix.as_bytes())?).ok()?;
        Some((key, keys::readable_by_services(key)?))
    }

    pub(crate) fn password_matches(&self, given: &[u8]) -> bool {
        let given: [u8; 32] = Sha256::digest(given).into();
        bool::from(given.ct_eq(&self.password))
    }
}

/// One connection's state.
pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    /// The address regulation counts failed `AUTH`s under: the peer itself (no proxy stands
    /// in front of a Redis client), in canonical form.
    pub(crate) ip: String,
    pub(crate) authenticated: bool,
    /// When the connection was accepted: it must authenticate within [`AUTH_DEADLINE`].
    since: std::time::Instant,
    pub(crate) protocol: Protocol,
    pub(crate) name: Option<Bytes>,
    pub(crate) lib_name: Option<Bytes>,
    pub(crate) lib_ver: Option<Bytes>,
    /// `QUIT` was answered: close once the answer is written.
    pub(crate) quit: bool,
}

/// Time a connection gets to authenticate (when shorter than `resp.idle_timeout`): without
/// it, clients that never authenticate could hold every connection slot for the whole idle
/// timeout and shut the services that do out.
pub(crate) const AUTH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

impl Client {
    /// How long the connection may now wait for the client's next bytes: the idle timeout;
    /// before `AUTH`, only until [`AUTH_DEADLINE`] (or the idle timeout, if shorter) after it
    /// was accepted, busy or not. `None`: that time is up.
    pub(crate) fn patience(&self, idle: std::time::Duration) -> Option<std::time::Duration> {
        if self.authenticated {
            Some(idle)
        } else {
            idle.min(AUTH_DEADLINE).checked_sub(self.since.elapsed())
        }
    }

    pub(crate) fn new(shared: &Shared, peer: SocketAddr) -> Self {
        Client {
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            ip: peer.ip().to_canonical().to_string(),
            authenticated: false,
            since: std::time::Instant::now(),
            protocol: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            quit: false,
        }
    }
}
