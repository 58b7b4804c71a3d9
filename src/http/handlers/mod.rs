//! One module per group of endpoints.

pub mod auth;
pub mod forward_auth;
pub mod health;
pub mod introspect;
pub mod login;
pub mod sessions;

use super::request::{Credential, HttpRequest, check_same_origin, credential};
use crate::app::App;
use crate::auth::tokens::AccessClaims;
use crate::error::ApiError;

/// Authenticates the request: a valid access token of a live session, and for cookies the
/// CSRF check on state-changing methods.
pub async fn authenticate(
    app: &App,
    req: &HttpRequest,
) -> Result<(AccessClaims, Credential), ApiError> {
    let credential = credential(req.headers())?;
    if matches!(credential, Credential::Cookie(_)) {
        check_same_origin(req.method(), req.headers(), &app.config)?;
    }
    let claims = app.auth.authenticate(credential.token()).await?;
    Ok((claims, credential))
}
