//! Gatehouse: a single-binary authentication server.
//!
//! People log in with email and password and receive short-lived JWTs (ADR-004).
//! A request flows through these parts, top to bottom:
//!
//! - [`cli`]: the command line (`serve`, `check-config`, `doctor`, `user …`, `ban …`,
//!   `backup`, `restore`); `main.rs` only calls it. [`doctor`]: the checks of a running
//!   install behind `gatehouse doctor`.
//! - [`serve`]: the running server's start-up and shutdown; [`systemd`]: readiness and
//!   watchdog notifications.
//! - [`admin`]: account administration, run by the CLI directly or, while a server holds the
//!   database, through the server's admin socket. `audit`: events of changes to how an
//!   account signs in (second factors), today structured log lines at target `audit`.
//! - [`config`]: layered configuration (defaults < `config.toml` < `GATEHOUSE_*` env),
//!   validated once into typed sections; it knows nothing of `auth`.
//! - [`app`]: builds the shared [`app::App`] (stores, hasher, keys) from a [`config::Config`].
//! - [`http`]: the hyper listener (connection cap, load shedding, graceful shutdown), one
//!   route table, who is calling ([`http::caller`]), body and cookie handling, one response
//!   builder, the problem+json error type, metrics, the login pages, the admin pages
//!   (`/admin`), and one module per group of endpoints (the JSON API, forward-auth,
//!   introspection). Handlers call [`auth::Service`].
//! - [`resp`]: the optional read-only Redis-protocol listener (`resp.listen`): services check
//!   a session with a plain Redis client, answered from the session store whichever backend
//!   runs (GD-0008).
//! - [`auth`]: the rules: passwords (argon2id on a bounded thread pool, strength policy),
//!   tokens (JWT, key rotation), regulation of failed logins, forward-auth access rules,
//!   second factors (TOTP, passkeys, recovery codes: GD-0010), and the session life cycle
//!   (login, rotation with reuse detection, revocation), one file of [`auth::service`] per
//!   concept.
//! - [`store`]: the [`store::SessionStore`] and [`store::UserStore`] traits and their backends
//!   (embedded moka + redb, Redis), plus backup. The handlers never know which backend runs.
//! - [`mail`]: the mail gatehouse sends (reset, verification, email change, invitation
//!   links and notices): composed from templates, queued in a durable outbox in the session
//!   store, and delivered through the SMTP relay by a task of the running server.
//! - [`files`]: files that hold secrets (backups, generated keys, the data dir), created
//!   private rather than narrowed afterwards.
//! - [`domain`]: the model `auth` and `store` share: users, roles, email addresses, a
//!   session's record and refresh-token format, the single-use links that are mailed.
//! - [`clock`]: Unix time helpers.
//!
//! What may depend on what: docs/adr/GD-0007-module-boundaries.md.
//!
//! A token check (`GET /auth/me`, forward-auth): [`http::router`] → [`http::caller`]
//! → [`auth::Service::authenticate`] (signature, claims, then one [`store::SessionStore::get`]
//! of the session) → the handler.

pub(crate) mod admin;
pub mod app;
pub(crate) mod audit;
pub mod auth;
pub mod cli;
pub(crate) mod clock;
pub mod config;
pub(crate) mod doctor;
pub mod domain;
pub(crate) mod files;
pub mod http;
pub(crate) mod mail;
#[doc(hidden)]
pub mod resp;
pub(crate) mod serve;
pub mod store;
pub(crate) mod systemd;
