//! One module per group of endpoints.

pub mod auth;
pub mod forward_auth;
pub mod health;
pub mod introspect;
pub mod login;
pub mod sessions;
