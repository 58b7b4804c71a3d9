//! The RESP listener (`resp.listen`): gatehouse answers the Redis protocol, read-only, over
//! the session-store key layout, so that a service checks a session with any Redis client
//! (`EXISTS gatehouse:session:<sid>`) whether sessions live in the embedded store or in
//! Redis (GD-0008).
//!
//! A request flows: [`server`] (accept, connection cap, TLS) → [`connection`] (read,
//! pipelining, idle timeout and AUTH deadline, bounded buffers) → [`frame::parse`] (bounded
//! RESP parser) → [`command::execute`] (NOAUTH / READONLY / unknown by [`table`], then the
//! connection's commands there, or a key command of [`reads`], answered from `App::auth`'s
//! session store) → [`frame::Reply`] encoded as RESP2 or RESP3 → the socket. [`client`]
//! holds the listener's and each connection's state; [`metrics`] counts connections,
//! commands and `AUTH` results; [`tls`] loads the certificate.
//!
//! Like `http`, this layer knows its protocol and nothing else: `AUTH` is checked by
//! `auth::Service::check_secret` (regulated like logins), keys are judged by `store::keys`.

pub(crate) mod client;
pub(crate) mod command;
pub(crate) mod connection;
#[doc(hidden)]
pub mod frame;
pub(crate) mod metrics;
pub(crate) mod reads;
pub(crate) mod server;
pub(crate) mod table;
pub(crate) mod tls;

pub(crate) use server::{bind, serve};
