//! The browser pages: `GET`/`POST /login` and `GET`/`POST /logout` (server-rendered HTML,
//! no JavaScript needed). Success sets or clears the token cookies and sends the browser on
//! to `rd` when it is allowed (`crate::http::redirect`), else to `public_url`.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;

use crate::app::App;
use crate::auth::AuthError;
use crate::http::caller;
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::pages::{LoginPage, LogoutConfirmPage, SignedInPage, SignedOutPage, render};
use crate::http::redirect;
use crate::http::request::{HttpRequest, check_same_origin, client_info, read_form};
use crate::http::response::{HttpResponse, html};

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

fn see_other(location: &str) -> HttpResponse {
    crate::http::response::redirect(StatusCode::SEE_OTHER, location)
        .or_else(|| crate::http::response::redirect(StatusCode::SEE_OTHER, "/"))
        .unwrap_or_else(|| ApiError::Internal.into_response())
}

/// `GET /login`: the form; a browser that is already signed in goes straight on to `rd`.
pub(crate) async fn page(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let rd = query_rd(&req);
    let title = app.config.login.title.as_str();
    if let Some(caller) = caller::signed_in(app, req.headers()).await? {
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
    Ok(html(
        StatusCode::OK,
        render(&LoginPage {
            title,
            rd: rd.as_deref(),
            ..LoginPage::default()
        }),
    ))
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
    let form: LoginForm = read_form(req, app.config.limits.max_body).await?;
    let title = app.config.login.title.as_str();
    let rd = form.rd.as_deref().filter(|rd| !rd.is_empty());
    let again = |status: StatusCode, error: &str| {
        html(
            status,
            render(&LoginPage {
                title,
                rd,
                email: form.email.as_str(),
                error: Some(error),
            }),
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
        Ok((_, issued)) => {
            let mut response = see_other(&redirect::target(rd, &app.config));
            cookies::set_tokens(response.headers_mut(), &app.config, &issued);
            Ok(response)
        }
        Err(AuthError::InvalidCredentials) => Ok(again(
            StatusCode::OK,
            "The email or password is wrong. Check both and try again.",
        )),
        Err(AuthError::EmailNotVerified) => Ok(again(
            StatusCode::FORBIDDEN,
            "Your email address is not confirmed yet. Open the link that was mailed to you when you registered.",
        )),
        Err(AuthError::Regulated { retry_after }) => {
            let minutes = retry_after.div_ceil(60).max(1);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            let mut response = again(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed sign-in attempts. Try again in {minutes} {unit}."),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            Ok(response)
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
            read_form::<RdForm>(req, app.config.limits.max_body)
                .await?
                .rd
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
            }),
        ),
    };
    cookies::clear(response.headers_mut(), &app.config);
    Ok(response)
}
