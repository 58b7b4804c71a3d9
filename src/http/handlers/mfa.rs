//! Second factors over JSON (GD-0010; README "Second factors"): `/auth/mfa/*` for the
//! signed-in user (these also serve a session limited to enrolling a factor under
//! `mfa.required`), the second step of a login (`/auth/login/second-factor`) and signing in
//! with a passkey (`/auth/passkey/*`).

use std::net::SocketAddr;

use http::StatusCode;
use serde::Serialize;

use crate::app::App;
use crate::auth::service::factors::{Ceremony, PasskeyInfo};
use crate::auth::{Code, Issued};
use crate::clock::rfc3339;
use crate::http::bodies::{
    CodeBody, PasskeyAssertion, PasskeyLoginOptions, PasskeyRegisterOptions, PasskeyRegistration,
    PasswordBody, SecondFactorBody,
};
use crate::http::caller::{self, Caller, Via};
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::handlers::auth::tokens;
use crate::http::request::{
    HttpRequest, check_same_origin, client_info, has_body, read_json, wants_cookies,
};
use crate::http::response::{HttpResponse, json, no_content};

#[derive(Serialize)]
struct PasskeyBody<'a> {
    id: &'a str,
    name: &'a str,
    created_at: String,
}

impl<'a> From<&'a PasskeyInfo> for PasskeyBody<'a> {
    fn from(p: &'a PasskeyInfo) -> Self {
        PasskeyBody {
            id: &p.id,
            name: &p.name,
            created_at: rfc3339(p.created_at),
        }
    }
}

#[derive(Serialize)]
struct StatusBody<'a> {
    totp: bool,
    passkeys: Vec<PasskeyBody<'a>>,
    recovery_codes_left: usize,
}

#[derive(Serialize)]
struct CodesBody {
    recovery_codes: Vec<String>,
}

#[derive(Serialize)]
struct TotpBody {
    secret: String,
    otpauth_uri: String,
}

#[derive(Serialize)]
struct NewPasskeyBody<'a> {
    #[serde(flatten)]
    passkey: PasskeyBody<'a>,
    recovery_codes: Vec<String>,
}

/// A ceremony as the browser gets it: `{"ceremony": id, "publicKey": {…}}`.
fn ceremony(ceremony: Ceremony) -> HttpResponse {
    let mut body = match ceremony.options {
        serde_json::Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("publicKey".into(), other);
            map
        }
    };
    body.insert("ceremony".into(), ceremony.id.into());
    json(StatusCode::OK, &body)
}

/// After an enrolment, a browser's access cookie is replaced: the session may have been
/// limited to enrolment, and now holds the new factor.
async fn refresh_cookie(
    app: &App,
    caller: &Caller,
    response: &mut HttpResponse,
) -> Result<(), ApiError> {
    if caller.via == Via::Cookie {
        let token = app.auth.reissue_access(&caller.claims).await?;
        cookies::set_access(
            response.headers_mut(),
            &app.config,
            &token,
            app.config.tokens.refresh_ttl,
        );
    }
    Ok(())
}

/// `GET /auth/mfa`
pub(crate) async fn status(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let status = app.auth.mfa_status(&caller.claims).await?;
    Ok(json(
        StatusCode::OK,
        &StatusBody {
            totp: status.totp,
            passkeys: status.passkeys.iter().map(PasskeyBody::from).collect(),
            recovery_codes_left: status.recovery_codes_left,
        },
    ))
}

/// `POST /auth/mfa/totp`, `DELETE /auth/mfa/totp`
pub(crate) async fn totp(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let delete = req.method() == http::Method::DELETE;
    let body: PasswordBody = read_json(req, app.config.limits.max_body).await?;
    if delete {
        app.auth
            .totp_remove(&caller.claims, &body.password, &client)
            .await?;
        return Ok(no_content());
    }
    let enrolment = app
        .auth
        .totp_begin(&caller.claims, &body.password, &client)
        .await?;
    Ok(json(
        StatusCode::OK,
        &TotpBody {
            secret: enrolment.secret,
            otpauth_uri: enrolment.otpauth_uri,
        },
    ))
}

/// `POST /auth/mfa/totp/confirm`
pub(crate) async fn totp_confirm(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let body: CodeBody = read_json(req, app.config.limits.max_body).await?;
    let recovery_codes = app.auth.totp_confirm(&caller.claims, &body.code).await?;
    let mut response = json(StatusCode::OK, &CodesBody { recovery_codes });
    refresh_cookie(app, &caller, &mut response).await?;
    Ok(response)
}

/// `POST /auth/mfa/recovery-codes`
pub(crate) async fn recovery_codes(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let body: PasswordBody = read_json(req, app.config.limits.max_body).await?;
    let recovery_codes = app
        .auth
        .regenerate_recovery_codes(&caller.claims, &body.password, &client)
        .await?;
    Ok(json(StatusCode::OK, &CodesBody { recovery_codes }))
}

/// `POST /auth/mfa/passkeys/options`
pub(crate) async fn passkey_register_options(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let body: PasskeyRegisterOptions = read_json(req, app.config.limits.max_body).await?;
    let options = app
        .auth
        .passkey_register_begin(&caller.claims, &body.name, &body.password, &client)
        .await?;
    Ok(ceremony(options))
}

/// `POST /auth/mfa/passkeys`
pub(crate) async fn passkey_register(
    app: &App,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let body: PasskeyRegistration = read_json(req, app.config.limits.max_body).await?;
    let (passkey, recovery_codes) = app
        .auth
        .passkey_register_finish(&caller.claims, &body.ceremony, &body.credential)
        .await?;
    let mut response = json(
        StatusCode::CREATED,
        &NewPasskeyBody {
            passkey: PasskeyBody::from(&passkey),
            recovery_codes,
        },
    );
    refresh_cookie(app, &caller, &mut response).await?;
    Ok(response)
}

/// `DELETE /auth/mfa/passkeys/{id}`
pub(crate) async fn passkey_remove(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let body: PasswordBody = read_json(req, app.config.limits.max_body).await?;
    app.auth
        .passkey_remove(&caller.claims, id, &body.password, &client)
        .await?;
    Ok(no_content())
}

/// `POST /auth/login/second-factor`
pub(crate) async fn second_factor(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let cookie_mode = wants_cookies(req.headers());
    if cookie_mode {
        check_same_origin(req.method(), req.headers(), &app.config)?;
    }
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let body: SecondFactorBody = read_json(req, app.config.limits.max_body).await?;
    let code = Code::named(&body.method, &body.code).ok_or(ApiError::InvalidSecondFactor(
        "unknown method: use \"totp\" or \"recovery\" here (passkeys: POST /auth/passkey/options)",
    ))?;
    let (_, issued) = app
        .auth
        .login_second_factor(&body.mfa_token, code, &client)
        .await?;
    Ok(tokens(app, &issued, cookie_mode))
}

/// `POST /auth/passkey/options`
pub(crate) async fn passkey_login_options(
    app: &App,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let body: PasskeyLoginOptions = if has_body(req.headers()) {
        read_json(req, app.config.limits.max_body).await?
    } else {
        PasskeyLoginOptions::default()
    };
    let options = app
        .auth
        .passkey_login_begin(body.mfa_token.as_deref())
        .await?;
    Ok(ceremony(options))
}

/// `POST /auth/passkey/login`. In cookie mode a browser's earlier session of the same user
/// (signed in with one factor, stepping up with a passkey) ends: the new one replaces it.
pub(crate) async fn passkey_login(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let cookie_mode = wants_cookies(req.headers());
    if cookie_mode {
        check_same_origin(req.method(), req.headers(), &app.config)?;
    }
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let earlier = match cookie_mode {
        true => caller::signed_in(app, req.headers()).await?,
        false => None,
    };
    let body: PasskeyAssertion = read_json(req, app.config.limits.max_body).await?;
    let (user, issued): (_, Issued) = app
        .auth
        .passkey_login_finish(
            &body.ceremony,
            &body.credential,
            body.mfa_token.as_deref(),
            &client,
        )
        .await?;
    if let Some(earlier) = earlier.filter(|c| c.claims.sub == user.id) {
        app.auth.logout(&earlier.claims).await?;
    }
    Ok(tokens(app, &issued, cookie_mode))
}
