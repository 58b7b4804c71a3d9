//! `GET /auth/sessions` and `DELETE /auth/sessions/{id}`.

use http::StatusCode;
use serde::Serialize;

use crate::app::App;
use crate::clock::rfc3339;
use crate::http::caller;
use crate::http::error::ApiError;
use crate::http::request::HttpRequest;
use crate::http::response::{HttpResponse, json, no_content};

#[derive(Serialize)]
struct SessionBody {
    id: String,
    created_at: String,
    last_seen_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
    /// For an OpenID Connect grant: the relying party it was granted to. Ending the session
    /// also withdraws the consent to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
}

pub(crate) async fn list(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let claims = caller::requires(app, &req).await?.claims;
    let sessions: Vec<SessionBody> = app
        .auth
        .sessions(claims.sub)
        .await?
        .into_iter()
        .map(|s| SessionBody {
            current: s.id == claims.sid,
            id: s.id,
            created_at: rfc3339(s.record.created_at),
            last_seen_at: rfc3339(s.record.last_seen_at),
            user_agent: s.record.user_agent,
            ip: s.record.ip,
            client_id: s.record.grant.map(|g| g.client),
        })
        .collect();
    Ok(json(StatusCode::OK, &sessions))
}

pub(crate) async fn revoke(
    app: &App,
    req: HttpRequest,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let claims = caller::requires(app, &req).await?.claims;
    app.auth.revoke_own_session(claims.sub, id).await?;
    Ok(no_content())
}
