//! Gatehouse: a single-binary authentication server.
//!
//! People log in with email and password and receive short-lived JWTs (ADR-004).
//! A request flows through these parts, top to bottom:
//!
//! - [`cli`]: the command line (`serve`, `check-config`, `user …`); `main.rs` only calls it.
//! - [`admin`]: account administration, run by the CLI directly or, while a server holds the
//!   database, through the server's admin socket.
//! - [`config`]: layered configuration (defaults < `config.toml` < `GATEHOUSE_*` env) and its validation.
//! - [`app`]: builds the shared [`app::App`] (stores, hasher, keys) from a [`config::Config`].
//! - [`http`]: the hyper listener, graceful shutdown, routing, body and cookie handling,
//!   and one module per group of endpoints. Handlers call [`auth::Service`] only.
//! - [`auth`]: the rules: passwords (argon2id on a bounded thread pool), tokens (JWT),
//!   and the session life cycle (login, rotation with reuse detection, revocation).
//! - [`store`]: the [`store::SessionStore`] and [`store::UserStore`] traits and their backends.
//!   The handlers never know which backend runs.
//! - [`error`]: the one error type that every endpoint renders as `application/problem+json`.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod store;
