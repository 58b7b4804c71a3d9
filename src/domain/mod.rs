//! The domain model that the rules (`auth`) and the state (`store`) share: accounts and
//! their roles ([`user`]), email addresses as login names ([`email`]), and a session's
//! stored record and refresh-token format ([`session`]), and the single-use links that
//! are mailed or printed ([`link`]). Groups, second
//! factors and grants join here. Nothing in it knows HTTP or a backend.

pub mod email;
pub mod link;
pub mod session;
pub mod user;

pub use email::{check_email, display_email, normalize_email};
pub use user::{Role, User};
