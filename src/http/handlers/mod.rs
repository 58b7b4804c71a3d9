//! One module per group of endpoints.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod email;
pub(crate) mod forward_auth;
pub(crate) mod health;
pub(crate) mod introspect;
pub(crate) mod links;
pub(crate) mod login;
pub(crate) mod mfa;
pub(crate) mod oidc;
pub(crate) mod sessions;
