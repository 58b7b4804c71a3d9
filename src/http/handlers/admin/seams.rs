//! What the admin pages need from features that are built on other branches: invitations
//! (email), second-factor resets (second factors) and the audit log. Each is one function
//! with the signature the pages call and a flag that says whether it works in this build.
//! The pages show the form (or the list) only when the flag is on, and otherwise say where
//! to do it instead; the action answers a clear refusal if posted anyway.
//!
//! Wiring one in: make its function call the service method named in its comment, and set
//! its flag to `true`. Nothing else in `admin` changes.

use super::views::AuditRow;
use crate::app::App;
use crate::auth::AuthError;
use crate::domain::Role;
use crate::http::error::ApiError;

/// Whether [`invite`] works.
pub(super) const INVITE: bool = false;

/// Whether [`reset_factors`] works.
pub(super) const RESET_FACTORS: bool = false;

/// Whether [`recent_audit`] reads a store of events.
pub(super) const AUDIT: bool = false;

/// Creates the account without a password and returns the invitation link (which is also
/// mailed when SMTP is configured). `Ok(Err(_))` is a refusal shown on the page (email
/// taken, invalid email); `Err(_)` a failure of the store.
///
/// TODO(merge email): `app.auth.invite(email, role)` (`auth/service/mail.rs` on the email
/// branch, returning an `Invitation`), then its link.
pub(super) async fn invite(
    _app: &App,
    _email: &str,
    _role: Role,
) -> Result<Result<String, AuthError>, ApiError> {
    Err(ApiError::Forbidden(
        "invitations are not available in this build: create the account with a password instead",
    ))
}

/// Removes every second factor of the user and ends their sessions.
///
/// TODO(merge mfa): `app.auth.reset_factors(email)` (`auth/service/factors.rs` on the mfa
/// branch, which records the `factors_reset` audit event itself).
pub(super) async fn reset_factors(
    _app: &App,
    _email: &str,
) -> Result<Result<(), AuthError>, ApiError> {
    Err(ApiError::Forbidden(
        "second factors are not available in this build",
    ))
}

/// The most recent audit events, newest first, at most `limit`.
///
/// TODO(merge mfa, then a store): the mfa branch's `src/audit.rs` writes events as log
/// lines only (target `audit`). Keeping the recent ones needs a store of its own (e.g. a
/// capped list in the session store, `audit:recent`, written by `audit::record`); read it
/// here and map each `audit::Event` to an [`AuditRow`].
pub(super) async fn recent_audit(_app: &App, _limit: usize) -> Result<Vec<AuditRow>, ApiError> {
    Ok(Vec::new())
}
