//! What the admin pages need from other features: invitations, second-factor resets and
//! the audit log (the ring of recent events `crate::audit` keeps). Each is one function
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
pub(super) const INVITE: bool = true;

/// Whether [`reset_factors`] works.
pub(super) const RESET_FACTORS: bool = true;

/// Whether [`recent_audit`] reads a store of events.
pub(super) const AUDIT: bool = true;

/// Creates the account without a password and returns the invitation link (which is also
/// mailed when SMTP is configured). `Ok(Err(_))` is a refusal shown on the page (email
/// taken, invalid email); `Err(_)` a failure of the store.
pub(super) async fn invite(
    app: &App,
    email: &str,
    role: Role,
) -> Result<Result<String, AuthError>, ApiError> {
    match app.auth.invite(email, role).await {
        Ok(invitation) => Ok(Ok(invitation.link)),
        Err(AuthError::Store(e)) => Err(AuthError::Store(e).into()),
        Err(refused) => Ok(Err(refused)),
    }
}

/// Removes every second factor of the user and ends their sessions (the service records
/// the `factors_reset` audit event).
pub(super) async fn reset_factors(
    app: &App,
    email: &str,
) -> Result<Result<(), AuthError>, ApiError> {
    Ok(app.auth.reset_factors(email).await.map(|_| ()))
}

/// The most recent audit events, newest first, at most `limit`, with the email of each
/// user (the id when the account is gone).
pub(super) async fn recent_audit(app: &App, limit: usize) -> Result<Vec<AuditRow>, ApiError> {
    let events = crate::audit::recent(app.auth.store(), limit)
        .await
        .map_err(AuthError::Store)?;
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        let user = match app.auth.profile(event.user_id).await? {
            Some(user) => user.email.clone(),
            None => event.user_id.to_string(),
        };
        rows.push(AuditRow {
            at: crate::clock::rfc3339(event.at),
            what: event.kind.as_str().replace('_', " "),
            user,
            by: match event.by {
                crate::audit::Actor::User => "the user".to_owned(),
                crate::audit::Actor::Admin => "an administrator".to_owned(),
            },
            detail: event.detail.unwrap_or_default(),
        });
    }
    Ok(rows)
}
