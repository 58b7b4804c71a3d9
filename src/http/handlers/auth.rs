//! `/auth/*`: register, login, refresh, logout, logout-all, me, password.

use std::net::SocketAddr;

use http::StatusCode;
use serde::Serialize;

use crate::app::App;
use crate::auth::{Issued, LoginOutcome};
use crate::clock::rfc3339;
use crate::http::bodies::{Credentials, PasswordChange, RefreshBody};
use crate::http::caller::{self, Via};
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::request::{
    HttpRequest, check_same_origin, client_info, has_body, is_json, read_json, wants_cookies,
};
use crate::http::response::{HttpResponse, json, no_content};

#[derive(Serialize)]
struct UserBody<'a> {
    id: String,
    email: &'a str,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    token_type: &'static str,
    expires_in: u64,
    refresh_expires_in: u64,
}

/// The answer to login, refresh and password change: the tokens in the body, or in cookies
/// (and not in the body) for browsers.
pub(crate) fn tokens(app: &App, issued: &Issued, cookie_mode: bool) -> HttpResponse {
    let body = TokenBody {
        access_token: (!cookie_mode).then_some(issued.access_token.as_str()),
        refresh_token: (!cookie_mode).then_some(issued.refresh_token.as_str()),
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_expires_in: issued.refresh_expires_in,
    };
    let mut response = json(StatusCode::OK, &body);
    if cookie_mode {
        cookies::set_tokens(response.headers_mut(), &app.config, issued);
    }
    response
}

pub(crate) async fn register(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let body: Credentials = read_json(req, app.config.limits.max_body).await?;
    let user = app.auth.register(&body.email, &body.password).await?;
    Ok(json(
        StatusCode::CREATED,
        &UserBody {
            id: user.id.to_string(),
            email: &user.email,
            role: user.role.as_str(),
            created_at: None,
        },
    ))
}

pub(crate) async fn login(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let cookie_mode = wants_cookies(req.headers());
    if cookie_mode {
        // Login CSRF: a foreign page must not log a browser into an attacker's account.
        check_same_origin(req.method(), req.headers(), &app.config)?;
    }
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let body: Credentials = read_json(req, app.config.limits.max_body).await?;
    match app.auth.login(&body.email, &body.password, &client).await? {
        LoginOutcome::Signed(_, issued) => Ok(tokens(app, &issued, cookie_mode)),
        LoginOutcome::SecondFactor(step) => Err(ApiError::SecondFactorRequired {
            mfa_token: step.mfa_token,
            methods: step.methods,
        }),
    }
}

pub(crate) async fn refresh(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (token, cookie_mode) = if has_body(req.headers()) || is_json(req.headers()) {
        let cookie_mode = wants_cookies(req.headers());
        let body: RefreshBody = read_json(req, app.config.limits.max_body).await?;
        (body.refresh_token, cookie_mode)
    } else {
        let token = cookies::get(req.headers(), cookies::REFRESH)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::InvalidRefreshToken)?
            .to_owned();
        check_same_origin(req.method(), req.headers(), &app.config)?;
        (token, true)
    };
    let issued = app.auth.refresh(&token).await?;
    Ok(tokens(app, &issued, cookie_mode))
}

pub(crate) async fn logout(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let claims = caller::requires_enrolling(app, &req).await?.claims;
    app.auth.logout(&claims).await?;
    let mut response = no_content();
    cookies::clear(response.headers_mut(), &app.config);
    Ok(response)
}

pub(crate) async fn logout_all(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let claims = caller::requires_enrolling(app, &req).await?.claims;
    app.auth.logout_all(claims.sub).await?;
    let mut response = no_content();
    cookies::clear(response.headers_mut(), &app.config);
    Ok(response)
}

pub(crate) async fn me(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let claims = caller::requires(app, &req).await?.claims;
    // The profile (at most `PROFILE_FRESHNESS` old on another node; this node's own writes
    // are seen at once) rather than a user read per request: whatever ends access (a
    // password or role change, disabling) ends the session, which `requires` checked.
    let user = app.auth.current_profile(claims.sub).await?;
    Ok(json(
        StatusCode::OK,
        &UserBody {
            id: user.id.to_string(),
            email: &user.email,
            role: user.role.as_str(),
            created_at: Some(rfc3339(user.created_at)),
        },
    ))
}

pub(crate) async fn change_password(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires(app, &req).await?;
    let claims = caller.claims;
    let cookie_mode = wants_cookies(req.headers()) || caller.via == Via::Cookie;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let body: PasswordChange = read_json(req, app.config.limits.max_body).await?;
    let issued = app
        .auth
        .change_password(&claims, &body.current_password, &body.new_password, &client)
        .await?;
    Ok(tokens(app, &issued, cookie_mode))
}
