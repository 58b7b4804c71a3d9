//! The HTTP side: [`server`] (listener, connection cap and shedding, graceful shutdown),
//! [`router`] (method and path to handler), [`caller`] (who is signed in, if anyone),
//! [`request`] (bodies, CSRF, client address), [`bodies`] (the JSON request types), [`response`], [`cookies`], [`metrics`]
//! (Prometheus), [`pages`] (the login and logout HTML), [`redirect`] (safe `rd` targets), and
//! [`handlers`], one module per group of endpoints (the admin pages are `handlers::admin`).

pub mod bodies;
pub mod caller;
pub mod cookies;
pub mod error;
pub(crate) mod forwarded;
pub(crate) mod handlers;
pub(crate) mod metrics;
pub(crate) mod pages;
pub mod redirect;
pub mod request;
pub mod response;
pub mod router;
pub mod server;

pub use server::serve;
