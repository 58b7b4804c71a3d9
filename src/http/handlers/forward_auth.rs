//! Forward-auth for reverse proxies: the proxy asks gatehouse about every request before
//! passing it on.
//!
//! - `GET /authz/forward-auth`: Traefik `ForwardAuth` and Caddy `forward_auth`; the original
//!   request is `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`.
//! - `GET /authz/auth-request`: nginx `auth_request`; the original request is
//!   `X-Original-URL` and `X-Original-Method`.
//!
//! The access rules decide what the request needs. A live session (access cookie or
//! `Authorization: Bearer`) answers 200 with the `Remote-*` headers; the hot path is one
//! token check plus one store read (`Service::authenticate`), with the identity taken from
//! the token's claims. Without a session, browsers are sent to the login page (302/303 for
//! Traefik and Caddy; 401 with `X-Redirection-URL` for nginx, which redirects itself) and
//! everyone else gets 401. A `two_factor` rule sends a browser whose session has one factor
//! to the login's second step (a step-up), or to the account page when the user has no
//! factor yet; API clients get 401. A session limited to enrolment (`mfa.required`) gets
//! 403, browsers the account page. These are GET requests from the proxy: no CSRF check.

use std::borrow::Cow;
use std::sync::Once;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use crate::app::App;
use crate::auth::access::{Decide, Decision, Refused, Target, target};
use crate::auth::tokens::AccessClaims;
use crate::http::caller::{self, Caller};
use crate::http::error::ApiError;
use crate::http::redirect;
use crate::http::request::HttpRequest;
use crate::http::response::{HttpResponse, empty};

// The headers read and written on every answer, as names parsed once: a `&str` name is
// parsed (checked and lower-cased) again at every lookup and insert (BENCHMARKS.md,
// *profile*).
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
static REMOTE_EMAIL: HeaderName = HeaderName::from_static("remote-email");
static REMOTE_ROLE: HeaderName = HeaderName::from_static("remote-role");
static REMOTE_USER_ID: HeaderName = HeaderName::from_static("remote-user-id");
static REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");

/// Which proxy convention the request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Traefik and Caddy: redirect browsers ourselves.
    ForwardAuth,
    /// nginx: 401 plus `X-Redirection-URL`; nginx sends the redirect.
    AuthRequest,
}

/// The request the proxy asks about, borrowed from the proxy's headers.
struct Original<'h> {
    method: Method,
    /// What the rules judge.
    target: Target<'h>,
    /// The URL as sent, for `rd`.
    sent: Sent<'h>,
}

enum Sent<'h> {
    Forwarded { host: &'h str, uri: &'h str },
    Url(&'h str),
}

impl Original<'_> {
    /// The original URL exactly as sent (the scheme: the first entry of a list).
    fn url(&self) -> Cow<'_, str> {
        match self.sent {
            Sent::Forwarded { host, uri } => {
                Cow::Owned(format!("{}://{host}{uri}", self.target.scheme()))
            }
            Sent::Url(url) => Cow::Borrowed(url),
        }
    }
}

pub(crate) async fn handle(
    app: &App,
    req: HttpRequest,
    flavor: Flavor,
) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    let original = match flavor {
        Flavor::ForwardAuth => from_forwarded(headers)?,
        Flavor::AuthRequest => from_original_url(headers)?,
    };
    let decision = app
        .config
        .access_control
        .decide(original.target.host(), original.target.path())
        .map_err(|refused| refusal("the original URL", refused))?;
    let requirements = match decision {
        Decision::Bypass => return Ok(allowed(None)),
        Decision::Deny => {
            return Err(ApiError::Forbidden(
                "access to this resource is denied by policy",
            ));
        }
        Decision::Authenticated(requirements) => requirements,
    };
    let Some(Caller { claims, .. }) = caller::signed_in(app, headers).await? else {
        return Ok(unauthenticated(app, headers, &original, flavor));
    };
    if claims.enrolment_only {
        // `mfa.required` and no second factor yet: browsers go and set one up.
        let account = redirect::page_url(&app.config, "account", None);
        return Ok(send_browser(
            headers,
            &original,
            flavor,
            &account,
            ApiError::EnrolmentRequired,
        ));
    }
    // Groups change without ending sessions: read them fresh (a cache at most seconds old),
    // and with them whether the account still exists and is enabled.
    let profile = match app.auth.profile(claims.sub).await? {
        Some(user) if !user.disabled => user,
        _ => return Ok(unauthenticated(app, headers, &original, flavor)),
    };
    if !requirements.allow_role(claims.role) {
        return Err(ApiError::Forbidden(
            "your account does not have a role that this resource requires",
        ));
    }
    if !requirements.allow(claims.role, &profile.groups) {
        return Err(ApiError::Forbidden(
            "your account is not in a group that this resource requires",
        ));
    }
    if requirements.two_factor() && !claims.amr.is_two_factor() {
        // A step-up: the second step of the login page, or the account page to set up a
        // factor first (one user read, only on this path).
        let status = app.auth.mfa_status(&claims).await?;
        let location = if status.totp || !status.passkeys.is_empty() {
            redirect::page_url(&app.config, "login/second-factor", Some(&original.url()))
        } else {
            redirect::page_url(&app.config, "account", None)
        };
        return Ok(send_browser(
            headers,
            &original,
            flavor,
            &location,
            ApiError::StepUpRequired,
        ));
    }
    Ok(allowed(Some((&claims, &profile.groups))))
}

/// Sends a browser to `location` (302 for GET/HEAD, 303 otherwise; nginx: 401 with
/// `X-Redirection-URL`, and nginx redirects); anyone else gets `otherwise`.
fn send_browser(
    headers: &HeaderMap,
    original: &Original<'_>,
    flavor: Flavor,
    location: &str,
    otherwise: ApiError,
) -> HttpResponse {
    if !is_browser(headers) {
        return otherwise.into_response();
    }
    let Ok(location) = HeaderValue::from_str(location) else {
        return otherwise.into_response();
    };
    match flavor {
        Flavor::AuthRequest => {
            let mut response = ApiError::MissingToken.into_response();
            response.headers_mut().insert("x-redirection-url", location);
            response
        }
        Flavor::ForwardAuth => {
            let status = if matches!(original.method, Method::GET | Method::HEAD) {
                StatusCode::FOUND
            } else {
                StatusCode::SEE_OTHER
            };
            let mut response = empty(status);
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
    }
}

fn refusal(what: &str, refused: Refused) -> ApiError {
    ApiError::BadRequest(format!(
        "{what} cannot be judged: {refused}; gatehouse decides on exactly what the proxy routes on"
    ))
}

/// A header of the original request: sent at most once, visible ASCII; empty counts as
/// absent. A header that is there but unreadable is refused, never taken for absent (an
/// unreadable `X-Forwarded-Uri` must not become `/`).
fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "the {name} header is sent more than once; the proxy must send one"
        )));
    }
    let value = value.to_str().map_err(|_| {
        ApiError::BadRequest(format!(
            "the {name} header must be visible ASCII (percent-encode the rest)"
        ))
    })?;
    Ok(Some(value.trim()).filter(|v| !v.is_empty()))
}

fn method(headers: &HeaderMap, name: &HeaderName) -> Result<Method, ApiError> {
    match header_str(headers, name)? {
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| ApiError::BadRequest(format!("the {name} header is not a method"))),
        None => Ok(Method::GET),
    }
}

fn missing(name: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "the {name} header is missing; call this endpoint from a reverse proxy's forward-auth"
    ))
}

/// Traefik/Caddy: `X-Forwarded-Proto` + `://` + `X-Forwarded-Host` + `X-Forwarded-Uri`.
fn from_forwarded(headers: &HeaderMap) -> Result<Original<'_>, ApiError> {
    let proto =
        header_str(headers, &X_FORWARDED_PROTO)?.ok_or_else(|| missing("X-Forwarded-Proto"))?;
    let host =
        header_str(headers, &X_FORWARDED_HOST)?.ok_or_else(|| missing("X-Forwarded-Host"))?;
    let uri = header_str(headers, &X_FORWARDED_URI)?.unwrap_or("/");
    let target = Target::forwarded(proto, host, uri)
        .map_err(|refused| refusal("the X-Forwarded-* request", refused))?;
    Ok(Original {
        method: method(headers, &X_FORWARDED_METHOD)?,
        target,
        sent: Sent::Forwarded { host, uri },
    })
}

/// nginx: `X-Original-URL` as sent. With `X-Original-Host` (nginx's `$host`, the host it
/// chose the `server` by), the URL's host must be that host: a request line
/// `GET http://app.example.org/admin` with `Host: public.example.org` is routed by nginx
/// to `app` while `$http_host` names `public`.
fn from_original_url(headers: &HeaderMap) -> Result<Original<'_>, ApiError> {
    static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
    static X_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-original-host");
    static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
    let url = header_str(headers, &X_ORIGINAL_URL)?.ok_or_else(|| {
        ApiError::BadRequest(
            "the X-Original-URL header is missing; set it in nginx: proxy_set_header X-Original-URL $scheme://$http_host$request_uri"
                .into(),
        )
    })?;
    let target = Target::original_url(url).map_err(|refused| refusal("X-Original-URL", refused))?;
    match header_str(headers, &X_ORIGINAL_HOST)? {
        Some(routed) => {
            let routed =
                target::authority(routed).map_err(|refused| refusal("X-Original-Host", refused))?;
            if !routed.eq_ignore_ascii_case(target.host()) {
                return Err(ApiError::BadRequest(format!(
                    "X-Original-URL names the host {:?} but nginx routed the request by {routed:?} (X-Original-Host); refused",
                    target.host()
                )));
            }
        }
        None => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "nginx sends no X-Original-Host: a request line naming one host with a Host header naming another is judged by the wrong host's rules; add `proxy_set_header X-Original-Host $host;` (README)"
                )
            });
        }
    }
    Ok(Original {
        method: method(headers, &X_ORIGINAL_METHOD)?,
        target,
        sent: Sent::Url(url),
    })
}

/// 200, with the identity headers when there is a session.
fn allowed(identity: Option<(&AccessClaims, &[String])>) -> HttpResponse {
    let mut response = empty(StatusCode::OK);
    let headers = response.headers_mut();
    if let Some((claims, groups)) = identity {
        // Fail closed: a 200 without the identity would pass an anonymous request on.
        // `from_bytes` lets an internationalized (UTF-8) email through as obs-text.
        let (Ok(email), Ok(id)) = (
            HeaderValue::from_bytes(claims.email.as_bytes()),
            HeaderValue::from_str(&claims.sub.to_string()),
        ) else {
            tracing::error!(user_id = %claims.sub, "the email cannot be sent as a header");
            return ApiError::Internal.into_response();
        };
        headers.insert(&REMOTE_USER, email.clone());
        headers.insert(&REMOTE_EMAIL, email);
        headers.insert(&REMOTE_ROLE, HeaderValue::from_static(claims.role.as_str()));
        headers.insert(&REMOTE_USER_ID, id);
        // Group names are `[a-z0-9_.-]` (checked when made), sorted on the record: always a
        // valid header value; empty when the user is in none.
        match HeaderValue::from_str(&groups.join(",")) {
            Ok(groups) => headers.insert(&REMOTE_GROUPS, groups),
            Err(_) => return ApiError::Internal.into_response(),
        };
    }
    response
}

/// A browser: `Accept` names `text/html` and it is not an XHR.
pub(crate) fn is_browser(headers: &HeaderMap) -> bool {
    let html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    let xhr = headers
        .get("x-requested-with")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("xmlhttprequest"));
    html && !xhr
}

fn unauthenticated(
    app: &App,
    headers: &HeaderMap,
    original: &Original<'_>,
    flavor: Flavor,
) -> HttpResponse {
    let login = redirect::login_url(&app.config, &original.url());
    send_browser(headers, original, flavor, &login, ApiError::MissingToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_told_apart() {
        let mut h = HeaderMap::new();
        assert!(!is_browser(&h));
        h.insert(
            header::ACCEPT,
            "text/html,application/xhtml+xml".parse().unwrap(),
        );
        assert!(is_browser(&h));
        h.insert("x-requested-with", "XMLHttpRequest".parse().unwrap());
        assert!(!is_browser(&h));
    }
}
