//! Where a browser may be sent after login or logout (`rd`), and the login page's address.
//!
//! `rd` is followed only when it is an absolute `http(s)` URL without user info whose host
//! is the host of `public_url` or lies within `cookies.domain`. Everything else (relative
//! and scheme-relative URLs, other schemes, backslashes, control characters, look-alike
//! hosts) falls back to `public_url`, or `/` when that is unset: no open redirect.

use url::Url;

use crate::config::Config;

/// `rd` when it is allowed (see the module doc), as a parsed URL.
pub fn allowed(rd: &str, config: &Config) -> Option<Url> {
    // Browsers treat `\` like `/` and drop tabs and newlines: refuse rather than guess.
    if rd.is_empty()
        || rd.len() > 4096
        || rd
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    {
        return None;
    }
    let lower = rd.get(..8).unwrap_or(rd).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    let url = Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let public_host = config
        .public_url
        .as_ref()
        .and_then(|u| u.host_str())
        .map(str::to_ascii_lowercase);
    if public_host.as_deref() == Some(host.as_str()) || within_cookie_domain(&host, config) {
        Some(url)
    } else {
        None
    }
}

/// Whether `host` is `cookies.domain` or one of its subdomains.
pub fn within_cookie_domain(host: &str, config: &Config) -> bool {
    let Some(domain) = config.cookies.domain.as_deref() else {
        return false;
    };
    let domain = domain.trim_start_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        return false;
    }
    host == domain
        || host
            .strip_suffix(domain.as_str())
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
}

/// Where a browser goes when `rd` is missing or not allowed: `public_url`, else `/`.
pub fn fallback(config: &Config) -> String {
    config
        .public_url
        .as_ref()
        .map_or_else(|| "/".to_owned(), |u| u.to_string())
}

/// `rd` if allowed, else [`fallback`].
pub fn target(rd: Option<&str>, config: &Config) -> String {
    rd.and_then(|rd| allowed(rd, config))
        .map_or_else(|| fallback(config), |u| u.to_string())
}

/// `<public_url>/login?rd=<original, percent-encoded>` (relative `/login?…` without
/// `public_url`).
pub fn login_url(config: &Config, original: &str) -> String {
    page_url(config, "login", Some(original))
}

/// `<public_url>/<page>`, with `?rd=<rd, percent-encoded>` when given (relative `/<page>`
/// without `public_url`): the login page, its second step (`login/second-factor`), the
/// account page.
pub fn page_url(config: &Config, page: &str, rd: Option<&str>) -> String {
    let base = config
        .public_url
        .as_ref()
        .map_or("", |u| u.as_str().trim_end_matches('/'));
    match rd {
        Some(rd) => {
            let rd: String = form_urlencoded::byte_serialize(rd.as_bytes()).collect();
            format!("{base}/{page}?rd={rd}")
        }
        None => format!("{base}/{page}"),
    }
}

/// The path under which gatehouse's pages live, ending in `/`: the path of `public_url`
/// (gatehouse behind a proxy under a prefix), else `/`. Pages name their scripts and form
/// targets from it, so the same links work on every page, however deep.
pub fn root(config: &Config) -> String {
    let path = config.public_url.as_ref().map_or("/", |u| u.path());
    format!("{}/", path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_url: Option<&str>, domain: Option<&str>) -> Config {
        let mut config = Config {
            public_url: public_url.map(|u| Url::parse(u).unwrap()),
            ..Config::default()
        };
        config.cookies.domain = domain.map(Into::into);
        config
    }

    #[test]
    fn only_own_hosts_are_followed() {
        let c = config(Some("https://auth.example.org"), Some("example.org"));
        for ok in [
            "https://auth.example.org/",
            "https://app.example.org/x?y=1#z",
            "http://example.org:8080/",
            "HTTPS://App.Example.ORG/",
        ] {
            assert!(allowed(ok, &c).is_some(), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "//evil.example",
            "///evil.example",
            "https://evil.example",
            "https://evil.example/https://app.example.org",
            "javascript:alert(1)",
            "JavaScript:alert(1)//https://app.example.org",
            "data:text/html,hi",
            "https:/\\evil.example",
            "https:\\\\evil.example",
            "\\\\evil.example",
            "/\\evil.example",
            "https://example.org.evil.example",
            "https://evilexample.org",
            "https://user@evil.example",
            "https://app.example.org@evil.example",
            "https://user:pw@app.example.org/",
            "https%3A%2F%2Fevil.example",
            "%2F%2Fevil.example",
            "https://evil.example%2F.example.org",
            "https://evil.example%23.example.org",
            "https://app.example.org%2F@evil.example",
            " https://app.example.org",
            "https://app.exa\tmple.org",
            "https://app.example.org/\nLocation: x",
            "ftp://app.example.org/",
        ] {
            assert!(allowed(bad, &c).is_none(), "{bad}");
        }
        assert_eq!(
            target(Some("//evil.example"), &c),
            "https://auth.example.org/"
        );
        assert_eq!(target(None, &c), "https://auth.example.org/");
    }

    #[test]
    fn without_cookie_domain_only_the_public_host() {
        let c = config(Some("https://auth.example.org/gate/"), None);
        assert!(allowed("https://auth.example.org/other", &c).is_some());
        assert!(allowed("https://app.example.org/", &c).is_none());
        let none = config(None, None);
        assert!(allowed("https://auth.example.org/", &none).is_none());
        assert_eq!(target(Some("https://x.org"), &none), "/");
    }

    #[test]
    fn login_url_encodes_the_original() {
        let c = config(Some("https://auth.example.org/gate/"), None);
        assert_eq!(
            login_url(&c, "https://app.example.org/a?b=1&c=2"),
            "https://auth.example.org/gate/login?rd=https%3A%2F%2Fapp.example.org%2Fa%3Fb%3D1%26c%3D2"
        );
        assert_eq!(login_url(&Config::default(), "x"), "/login?rd=x");
        assert_eq!(
            page_url(&c, "account", None),
            "https://auth.example.org/gate/account"
        );
        assert_eq!(root(&c), "/gate/");
        assert_eq!(root(&Config::default()), "/");
    }
}
