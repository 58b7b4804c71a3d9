//! The domain model that the rules (`auth`) and the state (`store`) share: accounts and
//! their roles ([`user`]), email addresses as login names ([`email`]), and a session's
//! stored record and refresh-token format ([`session`]), group names ([`group`]), and second
//! factors and how a session was signed in ([`factors`]). Nothing in it knows HTTP or a
//! backend.

pub mod email;
pub mod factors;
pub mod group;
pub mod session;
pub mod user;

pub use email::{check_email, display_email, normalize_email};
pub use group::GroupName;
pub use user::{Consent, Role, User};
