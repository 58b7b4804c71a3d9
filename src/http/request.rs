//! Reading requests: JSON bodies with a size limit, the caller's credential, the CSRF
//! defence for cookie-authenticated writes, and who the client is.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::ClientInfo;
use crate::config::Config;
use crate::http::error::ApiError;

pub type HttpRequest = http::Request<Incoming>;

/// Longest user agent kept with a session.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Reads a JSON body: 415 unless `Content-Type: application/json`, 413 past `limit`,
/// 400 for an empty body, malformed JSON or wrong field types.
pub async fn read_json<T: DeserializeOwned>(req: HttpRequest, limit: usize) -> Result<T, ApiError> {
    if !is_json(req.headers()) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    let bytes = read_body(req, limit).await?;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads a form body (the HTML pages): 415 unless `application/x-www-form-urlencoded`, 413
/// past `limit`, 400 when it is not a form of the expected fields.
pub(crate) async fn read_form<T: DeserializeOwned>(
    req: HttpRequest,
    limit: usize,
) -> Result<T, ApiError> {
    if !has_content_type(req.headers(), "application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded",
        });
    }
    let body = read_body(req, limit).await?;
    serde_urlencoded::from_bytes(&body)
        .map_err(|_| ApiError::BadRequest("the form could not be read".into()))
}

/// Whether the request declares a JSON body.
pub fn is_json(headers: &HeaderMap) -> bool {
    has_content_type(headers, "application/json")
}

/// Whether the request's `Content-Type` is `mime` (parameters such as `charset` aside).
pub fn has_content_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime))
}

/// Whether the request announces a body (a length above zero, or chunked).
pub fn has_body(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_LENGTH) {
        Some(len) => len.to_str().ok().and_then(|l| l.parse::<u64>().ok()) != Some(0),
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Reads the whole body, refusing more than `limit` bytes without reading them.
pub async fn read_body(req: HttpRequest, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len = len
            .to_str()
            .ok()
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or_else(|| ApiError::BadRequest("the Content-Length header is invalid".into()))?;
        if len > limit as u64 {
            return Err(too_large);
        }
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Err(_) => Err(ApiError::BadRequest(
            "the request body could not be read".into(),
        )),
    }
}

/// Whether the client asked for cookie mode (`X-Auth-Mode: cookie`).
pub fn wants_cookies(headers: &HeaderMap) -> bool {
    headers
        .get("x-auth-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("cookie"))
}

/// The CSRF defence for a state-changing request authenticated by cookie: its `Origin`
/// (or, without one, its `Referer`) must be gatehouse's own site: `public_url` when set,
/// else the request's own `Host`. A request with neither header is refused.
pub fn check_same_origin(
    method: &Method,
    headers: &HeaderMap,
    config: &Config,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    const MISMATCH: &str = "cross-site request refused: the Origin does not match this site";
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Forbidden(
            "cross-site request refused: a cookie-authenticated request needs an Origin or Referer header",
        ))?;
    let source = Url::parse(source).map_err(|_| ApiError::Forbidden(MISMATCH))?;
    let same = match &config.public_url {
        Some(public) => {
            source.scheme() == public.scheme()
                && source.host_str() == public.host_str()
                && source.port_or_known_default() == public.port_or_known_default()
        }
        None => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            host.is_some_and(|host| authority(&source).eq_ignore_ascii_case(host))
        }
    };
    if same {
        Ok(())
    } else {
        Err(ApiError::Forbidden(MISMATCH))
    }
}

/// `host[:port]` of a URL, the port only when it is not the scheme's default.
fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// The client as recorded with a session and counted by regulation: its address (see
/// [`client_ip`]) and user agent.
pub fn client_info(headers: &HeaderMap, peer: SocketAddr, trusted: &[IpNet]) -> ClientInfo {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
    ClientInfo {
        user_agent,
        ip: Some(client_ip(headers, peer.ip(), trusted).to_string()),
    }
}

/// The client's address, in canonical form (an IPv4-mapped IPv6 address such as a `[::]`
/// listener reports becomes plain IPv4), so regulation and sessions see one form per client.
///
/// The peer, unless it is a trusted proxy: then `X-Forwarded-For` (every such header, in
/// order) is read right to left, each hop vouching for the entry left of it, and the first
/// address that is not a trusted proxy is the client. Entries left of it are whatever the
/// client chose to send and are never believed. An entry that is not an address ends the
/// walk at the last trusted hop (the one right of it): a malformed header must never let a
/// client choose its address. If every entry is trusted, the left-most one counts.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let values: Vec<&HeaderValue> = headers.get_all("x-forwarded-for").iter().collect();
    let entries = values
        .iter()
        .rev()
        .flat_map(|v| v.as_bytes().rsplit(|b| *b == b','));
    for entry in entries {
        match forwarded_address(entry) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`192.0.2.1:8080`,
/// `[2001:db8::1]:443`), surrounded by optional spaces; canonical form.
fn forwarded_address(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    let ip = if let Some(rest) = entry.strip_prefix('[') {
        let (addr, port) = rest.split_once(']')?;
        if !port.is_empty() && !is_port(port.strip_prefix(':')?) {
            return None;
        }
        addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)?
    } else if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else {
        let (addr, port) = entry.split_once(':')?;
        if !is_port(port) {
            return None;
        }
        addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)?
    };
    Some(ip.to_canonical())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The client for a peer and a list of `X-Forwarded-For` header values, with
    /// 10.0.0.0/8 and 2001:db8:ffff::/48 trusted.
    fn walk(peer: &str, forwarded: &[&str]) -> String {
        let trusted: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:ffff::/48".parse().unwrap(),
        ];
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        client_ip(&headers, ip(peer), &trusted).to_string()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let chain = ["6.6.6.6, 203.0.113.7, 10.0.0.2"];
        assert_eq!(walk("10.0.0.1", &chain), "203.0.113.7");
        assert_eq!(walk("198.51.100.1", &chain), "198.51.100.1");
        assert_eq!(walk("10.0.0.1", &[]), "10.0.0.1");
    }

    #[test]
    fn a_malformed_entry_ends_the_walk_at_the_last_trusted_hop() {
        // Right-most entry malformed: nobody trusted vouched for anything, the peer counts.
        assert_eq!(walk("10.0.0.1", &["garbage"]), "10.0.0.1");
        assert_eq!(walk("10.0.0.1", &["6.6.6.6, garbage"]), "10.0.0.1");
        assert_eq!(walk("10.0.0.1", &["6.6.6.6, "]), "10.0.0.1");
        // Garbage in the middle: the trusted hop right of it counts, never what is left of it.
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6, unknown, 10.0.0.2"]),
            "10.0.0.2"
        );
        assert_eq!(walk("10.0.0.1", &["6.6.6.6,,10.0.0.2"]), "10.0.0.2");
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6, 1.2.3.4.5, 203.0.113.7"]),
            "203.0.113.7"
        );
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6, _, 10.0.0.3, 10.0.0.2"]),
            "10.0.0.3"
        );
        // Zone ids, CIDRs and obfuscated identifiers are not addresses.
        assert_eq!(walk("10.0.0.1", &["6.6.6.6, fe80::1%eth0"]), "10.0.0.1");
        assert_eq!(walk("10.0.0.1", &["6.6.6.6, 10.0.0.0/8"]), "10.0.0.1");
    }

    #[test]
    fn ports_and_spaces_are_read() {
        assert_eq!(walk("10.0.0.1", &["  203.0.113.7:4711  "]), "203.0.113.7");
        assert_eq!(walk("10.0.0.1", &["6.6.6.6,\t203.0.113.7 "]), "203.0.113.7");
        assert_eq!(walk("10.0.0.1", &["[2001:db8::7]:443"]), "2001:db8::7");
        assert_eq!(walk("10.0.0.1", &["[2001:db8::7]"]), "2001:db8::7");
        assert_eq!(walk("10.0.0.1", &["2001:db8::7"]), "2001:db8::7");
        // A port that is not a number, or a bracket that does not close, is garbage.
        assert_eq!(walk("10.0.0.1", &["203.0.113.7:http"]), "10.0.0.1");
        assert_eq!(walk("10.0.0.1", &["[2001:db8::7:443"]), "10.0.0.1");
        assert_eq!(walk("10.0.0.1", &["203.0.113.7 4711"]), "10.0.0.1");
    }

    #[test]
    fn several_headers_are_one_list_in_order() {
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6, 203.0.113.7", "10.0.0.2"]),
            "203.0.113.7"
        );
        assert_eq!(walk("10.0.0.1", &["203.0.113.7", "garbage"]), "10.0.0.1");
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6", "garbage, 10.0.0.2"]),
            "10.0.0.2"
        );
    }

    #[test]
    fn all_trusted_means_the_left_most() {
        assert_eq!(walk("10.0.0.1", &["10.0.0.3, 10.0.0.2"]), "10.0.0.3");
        assert_eq!(walk("10.0.0.1", &["10.0.0.3", "10.0.0.2"]), "10.0.0.3");
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        // A `[::]` listener sees IPv4 clients as ::ffff:a.b.c.d: they match IPv4 proxies and
        // are reported as IPv4, wherever they appear.
        assert_eq!(walk("::ffff:10.0.0.1", &["203.0.113.7"]), "203.0.113.7");
        assert_eq!(
            walk("::ffff:198.51.100.1", &["203.0.113.7"]),
            "198.51.100.1"
        );
        assert_eq!(walk("::ffff:10.0.0.1", &[]), "10.0.0.1");
        assert_eq!(walk("10.0.0.1", &["::ffff:203.0.113.7"]), "203.0.113.7");
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6, [::ffff:10.0.0.2]:80"]),
            "6.6.6.6"
        );
        // Plain IPv6 stays IPv6, and IPv6 proxies are walked like IPv4 ones.
        assert_eq!(
            walk("2001:db8:ffff::1", &["2001:db8::9, 2001:db8:ffff::2"]),
            "2001:db8::9"
        );
    }
}
