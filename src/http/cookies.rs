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

/// Sets both token cookies.
pub fn set_tokens(headers: &mut HeaderMap, config: &Config, issued: &Issued) {
    append(
        headers,
        config,
        ACCESS,
        &issued.access_token,
        issued.expires_in,
    );
    append(
        headers,
        config,
        REFRESH,
        &issued.refresh_token,
        issued.refresh_expires_in,
    );
}

/// Expires both token cookies.
pub fn clear(headers: &mut HeaderMap, config: &Config) {
    append(headers, config, ACCESS, "", 0);
    append(headers, config, REFRESH, "", 0);
}

fn append(headers: &mut HeaderMap, config: &Config, name: &'static str, value: &str, max_age: u64) {
    let mut cookie = Cookie::build((name, value.to_owned()))
        .http_only(true)
        .secure(config.cookies.secure)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ));
    if let Some(domain) = &config.cookies.domain {
        cookie = cookie.domain(domain.clone());
    }
    // Token characters are all valid in a header value; skip rather than panic if not.
    if let Ok(value) = HeaderValue::from_str(&cookie.build().to_string()) {
        headers.append(header::SET_COOKIE, value);
    }
}
