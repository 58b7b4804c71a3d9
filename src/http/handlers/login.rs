//! The browser pages: `GET`/`POST /login`, its second step `GET`/`POST /login/second-factor`
//! (after a right password, or a step-up of a session signed in with one factor) and
//! `GET`/`POST /logout` (server-rendered HTML that works without JavaScript; passkeys, a
//! JavaScript API, use `/static/webauthn.js`). Success sets or clears the token cookies and
//! sends the browser on to `rd` when it is allowed (`crate::http::redirect`), else to
//! `public_url`.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;

use crate::app::App;
use crate::auth::{AuthError, Code, LoginOutcome};
use crate::http::caller;
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::pages::{
    LoginPage, LogoutConfirmPage, SecondFactorPage, SignedInPage, SignedOutPage, render,
};
use crate::http::redirect;
use crate::http::request::{HttpRequest, check_same_origin, client_info, read_body};
use crate::http::response::{HttpResponse, html, html_with_scripts};

/// The login form's fields (`application/x-www-form-urlencoded`).
#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    rd: Option<String>,
}

/// The second step's fields: a code, and the login's `mfa_token` (none for a step-up).
#[derive(Debug, Default, Deserialize)]
struct SecondFactorForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    mfa_token: Option<String>,
    #[serde(default)]
    rd: Option<String>,
    /// Set when the form offered a passkey (to offer it again after a wrong code).
    #[serde(default)]
    passkey: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RdForm {
    #[serde(default)]
    rd: Option<String>,
}

/// `rd` from the query string.
fn query_rd(req: &HttpRequest) -> Option<String> {
    let query = req.uri().query()?;
    serde_urlencoded::from_str::<RdForm>(query)
        .ok()?
        .rd
        .filter(|rd| !rd.is_empty())
}

/// Reads a form body: 415 unless `application/x-www-form-urlencoded`, 413 past the limit.
async fn read_form<T: for<'de> Deserialize<'de> + Default>(
    app: &App,
    req: HttpRequest,
) -> Result<T, ApiError> {
    let is_form =
        crate::http::request::has_content_type(req.headers(), "application/x-www-form-urlencoded");
    if !is_form {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded",
        });
    }
    let body = read_body(req, app.config.limits.max_body).await?;
    serde_urlencoded::from_bytes(&body)
        .map_err(|_| ApiError::BadRequest("the form could not be read".into()))
}

fn see_other(location: &str) -> HttpResponse {
    crate::http::response::redirect(StatusCode::SEE_OTHER, location)
        .or_else(|| crate::http::response::redirect(StatusCode::SEE_OTHER, "/"))
        .unwrap_or_else(|| ApiError::Internal.into_response())
}

/// `GET /login`: the form; a browser that is already signed in goes straight on to `rd`.
pub(crate) async fn page(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = page_query(&req);
    let rd = query.rd.filter(|rd| !rd.is_empty());
    let title = app.config.login.title.as_str();
    // `prompt=login` (an OpenID Connect client asked for a fresh sign-in): the form, even
    // for a browser that is signed in.
    let fresh = query.prompt.as_deref() == Some("login");
    let signed_in = if fresh {
        None
    } else {
        caller::signed_in(app, req.headers()).await?
    };
    if let Some(caller) = signed_in {
        if let Some(target) = rd
            .as_deref()
            .and_then(|rd| redirect::allowed(rd, &app.config))
        {
            return Ok(see_other(target.as_str()));
        }
        return Ok(html(
            StatusCode::OK,
            render(&SignedInPage {
                title,
                email: &caller.claims.email,
            }),
        ));
    }
    let root = redirect::root(&app.config);
    let next = redirect::target(rd.as_deref(), &app.config);
    Ok(login_page(
        app,
        StatusCode::OK,
        LoginPage {
            title,
            rd: rd.as_deref(),
            email: query.login_hint.as_deref().unwrap_or(""),
            passkeys: app.auth.passkeys_enabled(),
            root: &root,
            next: &next,
            ..LoginPage::default()
        },
    ))
}

/// The login page's query: `rd`, and from OpenID Connect clients `prompt` and `login_hint`.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    #[serde(default)]
    rd: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    login_hint: Option<String>,
}

fn page_query(req: &HttpRequest) -> PageQuery {
    req.uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// The login page, with the passkey script when passkeys are on.
fn login_page(app: &App, status: StatusCode, page: LoginPage<'_>) -> HttpResponse {
    if app.auth.passkeys_enabled() {
        html_with_scripts(status, render(&page))
    } else {
        html(status, render(&page))
    }
}

/// The second step's page (scripts for the passkey button).
fn second_factor_page(status: StatusCode, page: SecondFactorPage<'_>) -> HttpResponse {
    html_with_scripts(status, render(&page))
}

/// `POST /login`: checks the form's origin (login CSRF), then the credentials; success
/// sets the cookies and answers 303 to `rd` (if allowed). A failure shows the form again
/// with the reason in words (200; 429 while banned; 503 when busy).
pub(crate) async fn submit(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(req.method(), req.headers(), &app.config)?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let form: LoginForm = read_form(app, req).await?;
    let title = app.config.login.title.as_str();
    let rd = form.rd.as_deref().filter(|rd| !rd.is_empty());
    let root = redirect::root(&app.config);
    let next = redirect::target(rd, &app.config);
    let again = |status: StatusCode, error: &str| {
        login_page(
            app,
            status,
            LoginPage {
                title,
                rd,
                email: form.email.as_str(),
                error: Some(error),
                passkeys: app.auth.passkeys_enabled(),
                root: &root,
                next: &next,
            },
        )
    };
    if form.email.trim().is_empty() || form.password.is_empty() {
        return Ok(again(StatusCode::OK, "Enter your email and your password."));
    }
    match app
        .auth
        .login(form.email.trim(), &form.password, &client)
        .await
    {
        Ok(LoginOutcome::Signed(_, issued)) => {
            let mut response = see_other(&next);
            cookies::set_tokens(response.headers_mut(), &app.config, &issued);
            Ok(response)
        }
        Ok(LoginOutcome::SecondFactor(step)) => Ok(second_factor_page(
            StatusCode::OK,
            SecondFactorPage {
                title,
                rd,
                mfa_token: Some(&step.mfa_token),
                error: None,
                passkey: step.methods.contains(&"passkey") && app.auth.passkeys_enabled(),
                root: &root,
                next: &next,
            },
        )),
        Err(AuthError::InvalidCredentials) => Ok(again(
            StatusCode::OK,
            "The email or password is wrong. Check both and try again.",
        )),
        Err(AuthError::Regulated { retry_after }) => {
            Ok(regulated(retry_after, |status, text| again(status, text)))
        }
        Err(AuthError::Busy | AuthError::Store(_)) => {
            let mut response = again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy right now. Try again in a moment.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

/// A page saying how long a ban lasts (429 with `Retry-After`).
fn regulated(retry_after: u64, page: impl Fn(StatusCode, &str) -> HttpResponse) -> HttpResponse {
    let minutes = retry_after.div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("Too many failed sign-in attempts. Try again in {minutes} {unit}."),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}

/// `GET /login/second-factor?rd=…`: where forward-auth sends a browser whose session has one
/// factor for a `two_factor` rule (a step-up). Without a session: the login page; with two
/// factors already: on to `rd`; without a second factor: the account page, to set one up.
pub(crate) async fn second_factor_page_get(
    app: &App,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let rd = query_rd(&req);
    let Some(caller) = caller::signed_in(app, req.headers()).await? else {
        let login = match &rd {
            Some(rd) => redirect::page_url(&app.config, "login", Some(rd)),
            None => redirect::page_url(&app.config, "login", None),
        };
        return Ok(found(&login));
    };
    if caller.claims.amr.is_two_factor() {
        return Ok(found(&redirect::target(rd.as_deref(), &app.config)));
    }
    let status = app.auth.mfa_status(&caller.claims).await?;
    if !status.totp && status.passkeys.is_empty() {
        return Ok(found(&redirect::page_url(&app.config, "account", None)));
    }
    let root = redirect::root(&app.config);
    let next = redirect::target(rd.as_deref(), &app.config);
    Ok(second_factor_page(
        StatusCode::OK,
        SecondFactorPage {
            title: &app.config.login.title,
            rd: rd.as_deref(),
            mfa_token: None,
            error: None,
            passkey: !status.passkeys.is_empty() && app.auth.passkeys_enabled(),
            root: &root,
            next: &next,
        },
    ))
}

/// `POST /login/second-factor`: a code for a login's second step (`mfa_token`) or for a
/// step-up of the signed-in session. Success: cookies and 303 to `rd`; a wrong code: the form
/// again with the reason in words.
pub(crate) async fn second_factor_submit(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(req.method(), req.headers(), &app.config)?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let headers = req.headers().clone();
    let form: SecondFactorForm = read_form(app, req).await?;
    let title = app.config.login.title.as_str();
    let rd = form.rd.as_deref().filter(|rd| !rd.is_empty());
    let token = form.mfa_token.as_deref().filter(|t| !t.is_empty());
    let root = redirect::root(&app.config);
    let next = redirect::target(rd, &app.config);
    let again = |status: StatusCode, error: &str| {
        second_factor_page(
            status,
            SecondFactorPage {
                title,
                rd,
                mfa_token: token,
                error: Some(error),
                passkey: form.passkey.is_some() && app.auth.passkeys_enabled(),
                root: &root,
                next: &next,
            },
        )
    };
    let code = Code::typed(form.code.trim());
    let result = match token {
        Some(token) => app
            .auth
            .login_second_factor(token, code, &client)
            .await
            .map(|(_, issued)| {
                let mut response = see_other(&next);
                cookies::set_tokens(response.headers_mut(), &app.config, &issued);
                response
            }),
        None => {
            let Some(caller) = caller::signed_in(app, &headers).await? else {
                return Ok(see_other(&redirect::login_url(&app.config, &next)));
            };
            app.auth
                .step_up(&caller.claims, code, &client)
                .await
                .map(|access| {
                    let mut response = see_other(&next);
                    cookies::set_access(
                        response.headers_mut(),
                        &app.config,
                        &access,
                        app.config.tokens.refresh_ttl,
                    );
                    response
                })
        }
    };
    match result {
        Ok(response) => Ok(response),
        Err(AuthError::InvalidSecondFactor(_)) => Ok(again(
            StatusCode::OK,
            "That code is wrong, expired or already used. Try the current code.",
        )),
        Err(AuthError::InvalidMfaToken | AuthError::NoSecondFactor) => {
            let page = LoginPage {
                title,
                rd,
                error: Some("Your sign-in expired. Sign in again."),
                passkeys: app.auth.passkeys_enabled(),
                root: &root,
                next: &next,
                ..LoginPage::default()
            };
            Ok(login_page(app, StatusCode::OK, page))
        }
        Err(AuthError::Regulated { retry_after }) => Ok(regulated(retry_after, again)),
        Err(AuthError::Busy | AuthError::Store(_)) => {
            let mut response = again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy right now. Try again in a moment.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

fn found(location: &str) -> HttpResponse {
    crate::http::response::redirect(StatusCode::FOUND, location)
        .unwrap_or_else(|| ApiError::Internal.into_response())
}

/// Whether a `GET /logout` comes from gatehouse's own site: `Sec-Fetch-Site: same-origin`,
/// or an `Origin`/`Referer` of its site.
fn from_own_site(headers: &HeaderMap, app: &App) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if let Some(site) = fetch_site {
        // Browsers that send Sec-Fetch-Site say exactly where the request came from.
        return site.eq_ignore_ascii_case("same-origin");
    }
    check_same_origin(&Method::POST, headers, &app.config).is_ok()
}

/// `GET /logout`: ends the session when asked from gatehouse's own site; otherwise a page
/// whose button posts to `/logout`, so a foreign link or image cannot sign anyone out.
pub(crate) async fn logout_page(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let rd = query_rd(&req);
    if from_own_site(req.headers(), app) {
        return end_session(app, req.headers(), rd.as_deref()).await;
    }
    Ok(html(
        StatusCode::OK,
        render(&LogoutConfirmPage {
            title: &app.config.login.title,
            rd: rd.as_deref(),
        }),
    ))
}

/// `POST /logout` (the logout button): origin-checked, ends the session, clears the cookies.
pub(crate) async fn logout_submit(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    check_same_origin(req.method(), req.headers(), &app.config)?;
    let headers = req.headers().clone();
    let rd = match query_rd(&req) {
        Some(rd) => Some(rd),
        None if crate::http::request::has_body(req.headers()) => {
            read_form::<RdForm>(app, req).await?.rd
        }
        None => None,
    };
    end_session(app, &headers, rd.as_deref().filter(|rd| !rd.is_empty())).await
}

async fn end_session(
    app: &App,
    headers: &HeaderMap,
    rd: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    // The access cookie names the session even after its token expired. A refresh cookie
    // reaches this page only as older versions set it (`Path=/`); it still counts.
    let access = cookies::get(headers, cookies::ACCESS).filter(|t| !t.is_empty());
    let legacy_refresh = cookies::get(headers, cookies::REFRESH).filter(|t| !t.is_empty());
    let mut ended = false;
    if let Some(token) = access {
        ended = app.auth.logout_by_access_token(token).await?;
    }
    if let (false, Some(token)) = (ended, legacy_refresh) {
        app.auth.logout_by_refresh_token(token).await?;
    }
    let mut response = match rd.and_then(|rd| redirect::allowed(rd, &app.config)) {
        Some(target) => see_other(target.as_str()),
        None => html(
            StatusCode::OK,
            render(&SignedOutPage {
                title: &app.config.login.title,
                login_href: "login",
            }),
        ),
    };
    cookies::clear(response.headers_mut(), &app.config);
    Ok(response)
}
