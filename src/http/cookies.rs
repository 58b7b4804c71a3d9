//! Cookie mode for browsers: the tokens travel in `HttpOnly` cookies instead of the body.

use cookie::time::Duration;
use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};

use crate::auth::Issued;
use crate::config::Config;

pub const ACCESS: &str = "gatehouse_access";
pub const REFRESH: &str = "gatehouse_refresh";

/// The value of the named cookie in the request, if any.
pub fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// The refresh cookie's path: it must reach `POST /auth/refresh`; `/auth/` is gatehouse's
/// own API, never an app's.
pub const REFRESH_PATH: &str = "/auth";

/// Sets both token cookies (and expires a refresh cookie left by an older version).
///
/// The access cookie goes to every path and, with `cookies.domain`, to every app in that
/// domain: forward-auth needs it there. The refresh cookie is host-only (never a `Domain`)
/// with `Path=/auth`, so no upstream app ever receives it. The access cookie lives as long
/// as the session, not the token: once the token has expired it still names its session, so
/// `/logout`, outside the refresh cookie's path, can end that session.
pub fn set_tokens(headers: &mut HeaderMap, config: &Config, issued: &Issued) {
    append(
        headers,
        config,
        ACCESS,
        &issued.access_token,
        true,
        "/",
        issued.refresh_expires_in,
    );
    append(
        headers,
        config,
        REFRESH,
        &issued.refresh_token,
        false,
        REFRESH_PATH,
        issued.refresh_expires_in,
    );
    expire_legacy_refresh(headers, config);
}

/// Replaces the access cookie alone (a step-up or an enrolment changed what the session's
/// tokens say; its refresh token stays). It lives `max_age` seconds, the session's lifetime.
pub fn set_access(headers: &mut HeaderMap, config: &Config, access_token: &str, max_age: u64) {
    append(headers, config, ACCESS, access_token, true, "/", max_age);
}

/// Expires both token cookies.
pub fn clear(headers: &mut HeaderMap, config: &Config) {
    append(headers, config, ACCESS, "", true, "/", 0);
    append(headers, config, REFRESH, "", false, REFRESH_PATH, 0);
    expire_legacy_refresh(headers, config);
}

/// Releases before the refresh cookie was narrowed set it like the access cookie (`Path=/`
/// and the configured `Domain`), which sent it to every app; a browser keeps such a copy
/// until it expires unless told to drop it with the same path and domain.
fn expire_legacy_refresh(headers: &mut HeaderMap, config: &Config) {
    append(headers, config, REFRESH, "", false, "/", 0);
    if config.cookies.domain.is_some() {
        append(headers, config, REFRESH, "", true, "/", 0);
    }
}

/// Appends one `Set-Cookie`; `domain` says whether it carries `cookies.domain` (if set).
fn append(
    headers: &mut HeaderMap,
    config: &Config,
    name: &'static str,
    value: &str,
    domain: bool,
    path: &'static str,
    max_age: u64,
) {
    let mut cookie = Cookie::build((name, value.to_owned()))
        .http_only(true)
        .secure(config.cookies.secure)
        .same_site(SameSite::Lax)
        .path(path)
        .max_age(Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ));
    if let (true, Some(domain)) = (domain, &config.cookies.domain) {
        cookie = cookie.domain(domain.clone());
    }
    // Token characters are all valid in a header value; skip rather than panic if not.
    if let Ok(value) = HeaderValue::from_str(&cookie.build().to_string()) {
        headers.append(header::SET_COOKIE, value);
    }
}
