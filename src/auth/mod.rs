//! The rules of authentication, independent of HTTP and of storage backends.
//!
//! - [`access`]: forward-auth: the original request taken apart strictly, and the access
//!   decision (host, path, policy, roles) over every reading of its path.
//! - [`passwords`]: argon2id hashing on a fixed pool of low-priority threads.
//! - [`tokens`]: signing and strictly verifying access tokens (JWT).
//! - [`secret`]: where the signing secret comes from; [`keys`]: asymmetric key pairs.
//! - [`oidc`]: the OpenID Connect provider's clients, scopes, id_token keys and discovery.
//! - [`regulation`]: bans after repeated failed logins.
//! - [`sealing`]: AES-256-GCM for TOTP secrets at rest and authorization codes in flight.
//! - [`service`]: the operations (register, login, refresh, logout, …) that the HTTP
//!   handlers and the CLI call.

pub mod access;
pub(crate) mod factors;
pub(crate) mod keys;
pub mod oidc;
pub(crate) mod passwords;
pub mod policy;
pub(crate) mod regulation;
pub mod sealing;
pub mod secret;
pub(crate) mod service;
pub mod tokens;

pub use service::factors::{Code, LoginOutcome};
pub use service::{AuthError, ClientInfo, Issued, Service};
