//! Method and path to handler, through one table of routes ([`Route`]) that also names the
//! metrics' `route` label. Every failure becomes a problem+json response here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;

use super::handlers::forward_auth::{self, Flavor};
use super::handlers::links::LinkPage;
use super::handlers::{
    account, admin, auth, email, health, introspect, links, login, mfa, oidc, sessions,
};
use super::metrics;
use super::request::{HttpRequest, has_body};
use super::response::{HttpResponse, script};
use crate::app::App;
use crate::http::error::ApiError;

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The API (and `/metrics` unless `metrics.listen` moves it).
    Api,
    /// Only `/metrics`, on `metrics.listen`.
    Metrics,
}

/// Answers one request; never fails, never panics on bad input.
pub async fn handle(app: &App, req: HttpRequest, peer: SocketAddr) -> HttpResponse {
    handle_on(app, req, peer, Surface::Api).await
}

/// Answers one request on the given surface, and records its metrics.
pub async fn handle_on(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
    surface: Surface,
) -> HttpResponse {
    let started = Instant::now();
    app.last_forwarded
        .observe(req.headers(), peer, &app.config.trusted_networks);
    let label = Route::find(req.uri().path()).map_or("other", Route::pattern);
    let response = answer(app, req, peer, surface).await;
    metrics::record_request(label, response.status(), started.elapsed());
    response
}

async fn answer(app: &App, req: HttpRequest, peer: SocketAddr, surface: Surface) -> HttpResponse {
    let metrics_here = match surface {
        Surface::Api => app.config.metrics.listen.is_none(),
        Surface::Metrics => true,
    };
    if req.uri().path() == "/metrics" && metrics_here {
        return match Route::Metrics.allow(req.method()) {
            Ok(()) => metrics::render(app).await,
            Err(e) => e.into_response(),
        };
    }
    if surface == Surface::Metrics {
        return ApiError::NotFound.into_response();
    }
    let limit = Duration::from_secs(app.config.limits.request_timeout);
    let had_body = has_body(req.headers());
    let result = match tokio::time::timeout(limit, route(app, req, peer)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::RequestTimeout),
    };
    result.unwrap_or_else(|err| {
        let mut response = err.into_response();
        if had_body {
            // The body may be left unread (413, or refused before reading): the connection
            // cannot carry another request, so tell the client instead of resetting it.
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        response
    })
}

/// Every endpoint, once: its path pattern (the `route` label of the metrics) and the
/// methods it answers (the `Allow` header of a 405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Register,
    Login,
    Refresh,
    Logout,
    LogoutAll,
    Me,
    Password,
    Sessions,
    Session,
    Introspect,
    ForwardAuth,
    AuthRequest,
    LoginPage,
    LogoutPage,
    Jwks,
    Discovery,
    OidcAuthorize,
    OidcToken,
    OidcUserinfo,
    OidcRevoke,
    OidcIntrospect,
    OidcLogout,
    Metrics,
    Healthz,
    Readyz,
    Mfa,
    MfaTotp,
    MfaTotpConfirm,
    MfaRecoveryCodes,
    MfaPasskeyOptions,
    MfaPasskeys,
    MfaPasskey,
    LoginSecondFactor,
    PasskeyOptions,
    PasskeyLogin,
    SecondFactorPage,
    WebauthnScript,
    Account,
    PasswordForgot,
    PasswordReset,
    Verify,
    VerifyResend,
    EmailChange,
    EmailConfirm,
    ResetPage,
    InvitePage,
    VerifyPage,
    EmailConfirmPage,
    AdminOverview,
    AdminUsers,
    AdminUser,
    AdminGroups,
    AdminClients,
    AdminBans,
    AdminAudit,
}

/// The fixed paths; `/auth/sessions/{id}` and `/admin/users/{id}` are matched by prefix in
/// [`Route::find`].
const TABLE: &[(&str, Route)] = &[
    ("/auth/register", Route::Register),
    ("/auth/login", Route::Login),
    ("/auth/refresh", Route::Refresh),
    ("/auth/logout", Route::Logout),
    ("/auth/logout-all", Route::LogoutAll),
    ("/auth/me", Route::Me),
    ("/auth/password", Route::Password),
    ("/auth/sessions", Route::Sessions),
    ("/auth/introspect", Route::Introspect),
    ("/authz/forward-auth", Route::ForwardAuth),
    ("/authz/auth-request", Route::AuthRequest),
    ("/login", Route::LoginPage),
    ("/logout", Route::LogoutPage),
    ("/.well-known/jwks.json", Route::Jwks),
    ("/.well-known/openid-configuration", Route::Discovery),
    ("/oidc/authorize", Route::OidcAuthorize),
    ("/oidc/token", Route::OidcToken),
    ("/oidc/userinfo", Route::OidcUserinfo),
    ("/oidc/revoke", Route::OidcRevoke),
    ("/oidc/introspect", Route::OidcIntrospect),
    ("/oidc/logout", Route::OidcLogout),
    ("/metrics", Route::Metrics),
    ("/healthz", Route::Healthz),
    ("/readyz", Route::Readyz),
    ("/auth/mfa", Route::Mfa),
    ("/auth/mfa/totp", Route::MfaTotp),
    ("/auth/mfa/totp/confirm", Route::MfaTotpConfirm),
    ("/auth/mfa/recovery-codes", Route::MfaRecoveryCodes),
    ("/auth/mfa/passkeys/options", Route::MfaPasskeyOptions),
    ("/auth/mfa/passkeys", Route::MfaPasskeys),
    ("/auth/login/second-factor", Route::LoginSecondFactor),
    ("/auth/passkey/options", Route::PasskeyOptions),
    ("/auth/passkey/login", Route::PasskeyLogin),
    ("/login/second-factor", Route::SecondFactorPage),
    ("/static/webauthn.js", Route::WebauthnScript),
    ("/account", Route::Account),
    ("/auth/password/forgot", Route::PasswordForgot),
    ("/auth/password/reset", Route::PasswordReset),
    ("/auth/verify", Route::Verify),
    ("/auth/verify/resend", Route::VerifyResend),
    ("/auth/email", Route::EmailChange),
    ("/auth/email/confirm", Route::EmailConfirm),
    ("/reset", Route::ResetPage),
    ("/invite", Route::InvitePage),
    ("/verify", Route::VerifyPage),
    ("/email/confirm", Route::EmailConfirmPage),
    ("/admin", Route::AdminOverview),
    ("/admin/users", Route::AdminUsers),
    ("/admin/groups", Route::AdminGroups),
    ("/admin/clients", Route::AdminClients),
    ("/admin/bans", Route::AdminBans),
    ("/admin/audit", Route::AdminAudit),
];

/// The passkey ceremonies of the login and account pages, compiled in.
const WEBAUTHN_JS: &str = include_str!("../../static/webauthn.js");

const SESSION_PREFIX: &str = "/auth/sessions/";
const PASSKEY_PREFIX: &str = "/auth/mfa/passkeys/";

/// The id in `<prefix><id>`: one non-empty segment.
fn id_after<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    path.strip_prefix(prefix)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

impl Route {
    pub fn find(path: &str) -> Option<Route> {
        if let Some((_, route)) = TABLE.iter().find(|(p, _)| *p == path) {
            return Some(*route);
        }
        if id_after(path, SESSION_PREFIX).is_some() {
            return Some(Route::Session);
        }
        if id_after(path, admin::USER_PREFIX).is_some() {
            return Some(Route::AdminUser);
        }
        id_after(path, PASSKEY_PREFIX).map(|_| Route::MfaPasskey)
    }

    /// The path as a pattern, so that ids do not explode the metrics' series count.
    pub fn pattern(self) -> &'static str {
        match self {
            Route::Session => "/auth/sessions/{id}",
            Route::MfaPasskey => "/auth/mfa/passkeys/{id}",
            Route::AdminUser => "/admin/users/{id}",
            route => TABLE
                .iter()
                .find(|(_, r)| *r == route)
                .map_or("other", |(p, _)| p),
        }
    }

    /// The methods the route answers, as the `Allow` header writes them.
    fn methods(self) -> &'static str {
        match self {
            Route::Register
            | Route::Login
            | Route::Refresh
            | Route::Logout
            | Route::LogoutAll
            | Route::Password
            | Route::Introspect
            | Route::OidcToken
            | Route::OidcRevoke
            | Route::OidcIntrospect
            | Route::MfaTotpConfirm
            | Route::MfaRecoveryCodes
            | Route::MfaPasskeyOptions
            | Route::MfaPasskeys
            | Route::LoginSecondFactor
            | Route::PasskeyOptions
            | Route::PasskeyLogin
            | Route::PasswordForgot
            | Route::PasswordReset
            | Route::Verify
            | Route::VerifyResend
            | Route::EmailChange
            | Route::EmailConfirm => "POST",
            Route::MfaTotp => "POST, DELETE",
            Route::Session | Route::MfaPasskey => "DELETE",
            Route::LoginPage
            | Route::LogoutPage
            | Route::SecondFactorPage
            | Route::Account
            | Route::OidcAuthorize
            | Route::OidcUserinfo
            | Route::OidcLogout
            | Route::ResetPage
            | Route::InvitePage
            | Route::VerifyPage
            | Route::EmailConfirmPage
            | Route::AdminUsers
            | Route::AdminUser
            | Route::AdminGroups
            | Route::AdminBans => "GET, HEAD, POST",
            Route::Me
            | Route::Sessions
            | Route::ForwardAuth
            | Route::AuthRequest
            | Route::Jwks
            | Route::Discovery
            | Route::Metrics
            | Route::Healthz
            | Route::Readyz
            | Route::Mfa
            | Route::WebauthnScript
            | Route::AdminOverview
            | Route::AdminClients
            | Route::AdminAudit => "GET, HEAD",
        }
    }

    /// 405 with `Allow` unless the route answers `method`.
    fn allow(self, method: &Method) -> Result<(), ApiError> {
        let allowed = self.methods();
        if allowed.split(", ").any(|m| m == method.as_str()) {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed { allow: allowed })
        }
    }
}

async fn route(app: &App, req: HttpRequest, peer: SocketAddr) -> Result<HttpResponse, ApiError> {
    let route = match Route::find(req.uri().path()) {
        // `/metrics` is served before routing, on the surface that has it; here it is not.
        None | Some(Route::Metrics) => return Err(ApiError::NotFound),
        Some(route) => route,
    };
    route.allow(req.method())?;
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    match route {
        Route::Register => auth::register(app, req).await,
        Route::Login => auth::login(app, req, peer).await,
        Route::Refresh => auth::refresh(app, req).await,
        Route::Logout => auth::logout(app, req).await,
        Route::LogoutAll => auth::logout_all(app, req).await,
        Route::Me => auth::me(app, req).await,
        Route::Password => auth::change_password(app, req, peer).await,
        Route::Sessions => sessions::list(app, req).await,
        Route::Session => {
            let id = req.uri().path()[SESSION_PREFIX.len()..].to_owned();
            sessions::revoke(app, req, &id).await
        }
        Route::Introspect => introspect::introspect(app, req, peer).await,
        Route::ForwardAuth => forward_auth::handle(app, req, Flavor::ForwardAuth).await,
        Route::AuthRequest => forward_auth::handle(app, req, Flavor::AuthRequest).await,
        Route::LoginPage if reading => login::page(app, req).await,
        Route::LoginPage => login::submit(app, req, peer).await,
        Route::LogoutPage if reading => login::logout_page(app, req).await,
        Route::LogoutPage => login::logout_submit(app, req).await,
        Route::Jwks => Ok(introspect::jwks(app)),
        Route::Discovery => oidc::discovery(app),
        Route::OidcAuthorize => oidc::authorize(app, req).await,
        Route::OidcToken => oidc::token(app, req, peer).await,
        Route::OidcUserinfo => oidc::userinfo(app, req).await,
        Route::OidcRevoke => oidc::revoke(app, req, peer).await,
        Route::OidcIntrospect => oidc::introspect(app, req, peer).await,
        Route::OidcLogout => oidc::end_session(app, req).await,
        Route::Healthz => Ok(health::healthz()),
        Route::Readyz => Ok(health::readyz(app).await),
        Route::PasswordForgot => email::forgot(app, req).await,
        Route::PasswordReset => email::reset(app, req).await,
        Route::Verify => email::verify(app, req).await,
        Route::VerifyResend => email::resend(app, req).await,
        Route::EmailChange => email::change(app, req, peer).await,
        Route::EmailConfirm => email::confirm(app, req).await,
        Route::ResetPage if reading => links::show(app, req, LinkPage::Reset).await,
        Route::ResetPage => links::submit(app, req, LinkPage::Reset).await,
        Route::InvitePage if reading => links::show(app, req, LinkPage::Invite).await,
        Route::InvitePage => links::submit(app, req, LinkPage::Invite).await,
        Route::VerifyPage if reading => links::show(app, req, LinkPage::Verify).await,
        Route::VerifyPage => links::submit(app, req, LinkPage::Verify).await,
        Route::EmailConfirmPage if reading => links::show(app, req, LinkPage::EmailConfirm).await,
        Route::EmailConfirmPage => links::submit(app, req, LinkPage::EmailConfirm).await,
        Route::Metrics => Err(ApiError::NotFound),
        Route::Mfa => mfa::status(app, req).await,
        Route::MfaTotp => mfa::totp(app, req, peer).await,
        Route::MfaTotpConfirm => mfa::totp_confirm(app, req).await,
        Route::MfaRecoveryCodes => mfa::recovery_codes(app, req, peer).await,
        Route::MfaPasskeyOptions => mfa::passkey_register_options(app, req, peer).await,
        Route::MfaPasskeys => mfa::passkey_register(app, req).await,
        Route::MfaPasskey => {
            let id = req.uri().path()[PASSKEY_PREFIX.len()..].to_owned();
            mfa::passkey_remove(app, req, peer, &id).await
        }
        Route::LoginSecondFactor => mfa::second_factor(app, req, peer).await,
        Route::PasskeyOptions => mfa::passkey_login_options(app, req).await,
        Route::PasskeyLogin => mfa::passkey_login(app, req, peer).await,
        Route::SecondFactorPage if reading => login::second_factor_page_get(app, req).await,
        Route::SecondFactorPage => login::second_factor_submit(app, req, peer).await,
        Route::WebauthnScript => Ok(script(WEBAUTHN_JS)),
        Route::Account if reading => account::page(app, req).await,
        Route::Account => account::submit(app, req, peer).await,
        Route::AdminOverview
        | Route::AdminUsers
        | Route::AdminUser
        | Route::AdminGroups
        | Route::AdminClients
        | Route::AdminBans
        | Route::AdminAudit => admin::handle(app, req, route).await,
    }
}
