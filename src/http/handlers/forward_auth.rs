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
//! everyone else gets 401. These are GET requests from the proxy: no CSRF check.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use url::Url;

use crate::app::App;
use crate::auth::AuthError;
use crate::auth::access::Decision;
use crate::auth::tokens::AccessClaims;
use crate::error::ApiError;
use crate::http::cookies;
use crate::http::redirect;
use crate::http::request::HttpRequest;
use crate::http::response::HttpResponse;

/// Which proxy convention the request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Traefik and Caddy: redirect browsers ourselves.
    ForwardAuth,
    /// nginx: 401 plus `X-Redirection-URL`; nginx sends the redirect.
    AuthRequest,
}

/// The request the proxy asks about.
struct Original {
    method: Method,
    /// As sent by the proxy; what `rd` carries.
    url: String,
    /// Without port, lower case.
    host: String,
    path: String,
}

pub async fn handle(app: &App, req: HttpRequest, flavor: Flavor) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    let original = match flavor {
        Flavor::ForwardAuth => from_forwarded(headers)?,
        Flavor::AuthRequest => from_original_url(headers)?,
    };
    let roles = match app
        .config
        .access_control
        .decide(&original.host, &original.path)
    {
        Decision::Bypass => return Ok(allowed(None)),
        Decision::Deny => {
            return Err(ApiError::Forbidden(
                "access to this resource is denied by policy",
            ));
        }
        Decision::Authenticated { roles } => roles,
    };
    let claims = match token(headers) {
        Some(token) => match app.auth.authenticate(token).await {
            Ok(claims) => Some(claims),
            Err(AuthError::Store(e)) => return Err(AuthError::Store(e).into()),
            Err(_) => None,
        },
        None => None,
    };
    let Some(claims) = claims else {
        return Ok(unauthenticated(app, headers, &original, flavor));
    };
    if !roles.is_empty() && !roles.iter().any(|r| r == claims.role.as_str()) {
        return Err(ApiError::Forbidden(
            "your account does not have a role that this resource requires",
        ));
    }
    Ok(allowed(Some(&claims)))
}

/// The access token: a `Bearer` authorization, else the access cookie. Another
/// authorization scheme (an app's own Basic auth) does not hide the cookie.
fn token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    bearer.or_else(|| cookies::get(headers, cookies::ACCESS).filter(|t| !t.is_empty()))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn method(headers: &HeaderMap, name: &str) -> Result<Method, ApiError> {
    match header_str(headers, name) {
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| ApiError::BadRequest(format!("the {name} header is not a method"))),
        None => Ok(Method::GET),
    }
}

/// Traefik/Caddy: `X-Forwarded-Proto` + `://` + `X-Forwarded-Host` + `X-Forwarded-Uri`.
fn from_forwarded(headers: &HeaderMap) -> Result<Original, ApiError> {
    let missing = |name: &str| {
        ApiError::BadRequest(format!(
            "the {name} header is missing; call this endpoint from a reverse proxy's forward-auth"
        ))
    };
    let proto =
        header_str(headers, "x-forwarded-proto").ok_or_else(|| missing("X-Forwarded-Proto"))?;
    let host =
        header_str(headers, "x-forwarded-host").ok_or_else(|| missing("X-Forwarded-Host"))?;
    let uri = header_str(headers, "x-forwarded-uri").unwrap_or("/");
    // A proxy may send a list when chained; the first entry is the client's.
    let proto = proto.split(',').next().unwrap_or(proto).trim();
    let host = host.split(',').next().unwrap_or(host).trim();
    let url = format!("{proto}://{host}{uri}");
    parse(url, method(headers, "x-forwarded-method")?)
}

/// nginx: `X-Original-URL` as sent.
fn from_original_url(headers: &HeaderMap) -> Result<Original, ApiError> {
    let url = header_str(headers, "x-original-url").ok_or_else(|| {
        ApiError::BadRequest(
            "the X-Original-URL header is missing; set it in nginx: proxy_set_header X-Original-URL $scheme://$http_host$request_uri"
                .into(),
        )
    })?;
    parse(url.to_owned(), method(headers, "x-original-method")?)
}

fn parse(url: String, method: Method) -> Result<Original, ApiError> {
    let invalid = || ApiError::BadRequest("the original URL is not an absolute http(s) URL".into());
    let parsed = Url::parse(&url).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid());
    }
    let host = parsed.host_str().ok_or_else(invalid)?;
    // Rules name host names; an IPv6 literal keeps its brackets in host_str.
    let host = host.to_ascii_lowercase();
    // The raw path as sent (before the url crate's own normalization); the rules normalize.
    let path = raw_path(&url).to_owned();
    Ok(Original {
        method,
        url,
        host,
        path,
    })
}

/// The path of an absolute URL as written: after the authority, before `?` or `#`.
fn raw_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |i| &after_scheme[i..]);
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// 200, with the identity headers when there is a session.
fn allowed(claims: Option<&AccessClaims>) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(claims) = claims {
        // Fail closed: a 200 without the identity would pass an anonymous request on.
        // `from_bytes` lets an internationalized (UTF-8) email through as obs-text.
        let (Ok(email), Ok(id)) = (
            HeaderValue::from_bytes(claims.email.as_bytes()),
            HeaderValue::from_str(&claims.sub.to_string()),
        ) else {
            tracing::error!(user_id = %claims.sub, "the email cannot be sent as a header");
            return ApiError::Internal.into_response();
        };
        headers.insert("remote-user", email.clone());
        headers.insert("remote-email", email);
        headers.insert(
            "remote-role",
            HeaderValue::from_static(claims.role.as_str()),
        );
        headers.insert("remote-user-id", id);
    }
    response
}

/// A browser: `Accept` names `text/html` and it is not an XHR.
fn is_browser(headers: &HeaderMap) -> bool {
    let html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    let xhr = header_str(headers, "x-requested-with")
        .is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"));
    html && !xhr
}

fn unauthenticated(
    app: &App,
    headers: &HeaderMap,
    original: &Original,
    flavor: Flavor,
) -> HttpResponse {
    if !is_browser(headers) {
        return ApiError::MissingToken.into_response();
    }
    let login = redirect::login_url(&app.config, &original.url);
    let Ok(location) = HeaderValue::from_str(&login) else {
        return ApiError::MissingToken.into_response();
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
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            let h = response.headers_mut();
            h.insert(header::LOCATION, location);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths() {
        assert_eq!(raw_path("https://a.b/x/../y?q=/admin#f"), "/x/../y");
        assert_eq!(raw_path("https://a.b:8080"), "");
        assert_eq!(raw_path("https://a.b?x"), "");
        assert_eq!(raw_path("http://a.b//admin"), "//admin");
    }

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

    #[test]
    fn bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; gatehouse_access=tok".parse().unwrap());
        assert_eq!(token(&h), Some("tok"));
        h.insert(header::AUTHORIZATION, "Basic dXNlcjpwdw==".parse().unwrap());
        assert_eq!(token(&h), Some("tok"));
        h.insert(header::AUTHORIZATION, "Bearer jwt".parse().unwrap());
        assert_eq!(token(&h), Some("jwt"));
    }
}
