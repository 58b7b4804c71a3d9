//! The email flows of the JSON API: `POST /auth/password/forgot`, `/auth/password/reset`,
//! `/auth/verify`, `/auth/verify/resend`, `/auth/email` and `/auth/email/confirm`.
//! Without `smtp.host`, the three that send mail answer 501 before reading anything.

use std::net::SocketAddr;

use http::StatusCode;
use serde::Serialize;

use crate::app::App;
use crate::http::bodies::{EmailAddress, EmailChange, LinkToken, PasswordReset};
use crate::http::caller;
use crate::http::error::ApiError;
use crate::http::request::{HttpRequest, client_info, read_json};
use crate::http::response::{HttpResponse, json, no_content};

/// The one answer of forgot and resend, whether or not the account exists.
#[derive(Serialize)]
struct Accepted {
    detail: &'static str,
}

fn accepted(detail: &'static str) -> HttpResponse {
    json(StatusCode::ACCEPTED, &Accepted { detail })
}

fn mail_on(app: &App) -> Result<(), ApiError> {
    app.auth.mail().map(|_| ()).ok_or(ApiError::MailOff)
}

/// `POST /auth/password/forgot`: 202 after the same work for every address.
pub(crate) async fn forgot(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    mail_on(app)?;
    let body: EmailAddress = read_json(req, app.config.limits.max_body).await?;
    app.auth.forgot_password(&body.email).await?;
    Ok(accepted(
        "if an account has this email, a link to reset its password is on its way",
    ))
}

/// `POST /auth/password/reset`: 204; every session of the user has ended.
pub(crate) async fn reset(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let body: PasswordReset = read_json(req, app.config.limits.max_body).await?;
    app.auth
        .reset_password(&body.token, &body.new_password)
        .await?;
    Ok(no_content())
}

/// `POST /auth/verify`: 204.
pub(crate) async fn verify(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let body: LinkToken = read_json(req, app.config.limits.max_body).await?;
    app.auth.verify_email(&body.token).await?;
    Ok(no_content())
}

/// `POST /auth/verify/resend`: 202, as forgot.
pub(crate) async fn resend(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    mail_on(app)?;
    let body: EmailAddress = read_json(req, app.config.limits.max_body).await?;
    app.auth.resend_verification(&body.email).await?;
    Ok(accepted(
        "if an account has this email and it is not confirmed yet, a link is on its way",
    ))
}

/// `POST /auth/email` (signed in): 202; a link goes to the new address, a notice to the old.
pub(crate) async fn change(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let claims = caller::requires(app, &req).await?.claims;
    mail_on(app)?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let body: EmailChange = read_json(req, app.config.limits.max_body).await?;
    app.auth
        .request_email_change(&claims, &body.new_email, &body.password, &client)
        .await?;
    Ok(accepted(
        "a link to confirm the new email was sent to it; until it is used, the account keeps its email",
    ))
}

/// `POST /auth/email/confirm`: 204; the email has changed, sessions stay.
pub(crate) async fn confirm(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let body: LinkToken = read_json(req, app.config.limits.max_body).await?;
    app.auth.confirm_email_change(&body.token).await?;
    Ok(no_content())
}
