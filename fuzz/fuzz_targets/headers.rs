//! The request headers an attacker controls: the credential (Authorization, then the
//! access cookie), cookie parsing, cookie mode, body detection, the CSRF origin check, the
//! client address behind trusted proxies (X-Forwarded-For) and the `rd` redirect check.
//!
//! The input is split at `\n` (which no header value may contain); the pieces fill the
//! headers below in order, cycling, so several Cookie and X-Forwarded-For headers can
//! occur. Pieces that are not valid header values are skipped, which also lets the fuzzer
//! leave a header out.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use gatehouse::config::Config;
use gatehouse::http::cookies;
use gatehouse::http::redirect;
use gatehouse::http::caller::{Via, access_token};
use gatehouse::http::request::{
    check_same_origin, client_info, client_ip, has_body, is_json, wants_cookies,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use libfuzzer_sys::fuzz_target;

const NAMES: [HeaderName; 13] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::ORIGIN,
    header::HOST,
    header::REFERER,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("x-auth-mode"),
    HeaderName::from_static("x-forwarded-for"),
    header::USER_AGENT,
    header::COOKIE,
    HeaderName::from_static("x-forwarded-for"),
];

/// The default config, and one with `public_url`, a cookie domain and trusted proxies.
fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let custom = Config::from_toml_str(
            r#"
            public_url = "https://auth.example.org:8443/"
            trusted_proxies = ["10.0.0.0/8", "::1"]
            [cookies]
            domain = "example.org"
            "#,
        )
        .expect("the fuzz config is valid");
        [Config::default(), custom]
    })
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for (i, piece) in data.split(|&b| b == b'\n').enumerate().take(64) {
        if let Ok(value) = HeaderValue::from_bytes(piece) {
            headers.append(NAMES[i % NAMES.len()].clone(), value);
        }
    }

    match access_token(&headers) {
        Some((token, Via::Bearer)) => assert!(!token.is_empty() && token == token.trim()),
        Some((token, Via::Cookie)) => assert!(!token.is_empty()),
        None => {}
    }
    let _ = cookies::get(&headers, cookies::ACCESS);
    let _ = cookies::get(&headers, cookies::REFRESH);
    let _ = wants_cookies(&headers);
    let _ = is_json(&headers);
    let _ = has_body(&headers);
    for config in configs() {
        let trusted = &config.trusted_networks;
        for peer in [
            SocketAddr::from(([192, 0, 2, 1], 40000)),
            SocketAddr::from(([10, 1, 2, 3], 40000)),
        ] {
            let _ = client_info(&headers, peer, trusted);
            let ip = client_ip(&headers, peer.ip(), trusted);
            // Only a trusted peer may name another address.
            assert!(ip == peer.ip() || trusted.iter().any(|net| net.contains(&peer.ip())));
        }
        let _ = check_same_origin(&Method::POST, &headers, config);
        let _ = check_same_origin(&Method::DELETE, &headers, config);
        assert!(check_same_origin(&Method::GET, &headers, config).is_ok());
        // The Referer value doubles as an `rd` parameter.
        let rd = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
        if let Some(rd) = rd {
            if let Some(url) = redirect::allowed(rd, config) {
                assert!(matches!(url.scheme(), "http" | "https"), "{rd:?} allowed");
            }
        }
        let _ = redirect::target(rd, config);
    }
});
