//! The original request that a proxy asks about, taken apart strictly.
//!
//! The proxy routes on the authority and the path exactly as the client sent them, so
//! gatehouse must not read them any other way. A general URL parser is the wrong tool: it
//! drops user info (`x@status.example.org` becomes `status.example.org`), decodes and
//! normalises hosts (`%73tatus`, `127.1`, IDNA), and resolves the path, each time choosing
//! a host or path that the proxy never routed on. So an authority is accepted only in the
//! plain forms that every proxy reads the same way, and anything else is refused (400).

use std::fmt;
use std::net::Ipv6Addr;

/// Why the original request cannot be judged; answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

/// The original request: scheme, host and path as the proxy sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
}

impl<'a> Target<'a> {
    /// Traefik and Caddy: `X-Forwarded-Proto` (the first entry of a list: a chained proxy
    /// appends its own), `X-Forwarded-Host` and `X-Forwarded-Uri` (the request target).
    pub fn forwarded(proto: &'a str, host: &'a str, uri: &'a str) -> Result<Self, Refused> {
        let scheme = proto.split(',').next().unwrap_or(proto).trim();
        check_scheme(scheme)?;
        if host.contains(',') {
            return Err(Refused(
                "X-Forwarded-Host is a list of hosts; the proxy must send the one host it routes on",
            ));
        }
        let host = authority(host)?;
        if !uri.starts_with('/') {
            return Err(Refused(
                "X-Forwarded-Uri must start with '/' (the path and query of the request)",
            ));
        }
        let path = request_target(uri)?;
        Ok(Target { scheme, host, path })
    }

    /// nginx: `X-Original-URL`, `$scheme://$http_host$request_uri`.
    pub fn original_url(url: &'a str) -> Result<Self, Refused> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(Refused("the original URL is not an absolute http(s) URL"))?;
        check_scheme(scheme)?;
        // The authority ends at the first `/`; a `?` or `#` before it is refused with it.
        let end = rest.find('/').unwrap_or(rest.len());
        let host = authority(&rest[..end])?;
        let path = match &rest[end..] {
            "" => "/",
            target => request_target(target)?,
        };
        Ok(Target { scheme, host, path })
    }

    /// `http` or `https`, in the case it was sent.
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// The host without the port and without a trailing dot, in the case it was sent
    /// (rules compare it without case); an IPv6 literal keeps its brackets.
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The path as sent: starts with `/`, without the query, nothing decoded.
    pub fn path(&self) -> &'a str {
        self.path
    }
}

fn check_scheme(scheme: &str) -> Result<(), Refused> {
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Ok(())
    } else {
        Err(Refused("the original URL's scheme must be http or https"))
    }
}

/// `host[:port]`, strictly: the host is a name of letters, digits, `-` and `.` (one
/// trailing dot allowed, as in DNS), a dotted-quad IPv4 address or a bracketed IPv6
/// address; the port is 1 to 5 digits. Returns the host without the port and the trailing
/// dot. Everything else is refused, because proxies and URL parsers disagree on it: user
/// info, percent-encoding, non-ASCII names, spaces, lists, empty hosts, other IPv4 forms.
pub fn authority(authority: &str) -> Result<&str, Refused> {
    if authority.is_empty() {
        return Err(Refused("the host is empty"));
    }
    if let Some(bad) = authority
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')))
    {
        return Err(Refused(match bad {
            b'@' => "the host carries user info ('@'); it is refused, not guessed at",
            b'%' => "the host is percent-encoded; send the plain name",
            b',' => "the host is a list of hosts; the proxy must send the one host it routes on",
            b if !b.is_ascii() => "the host is not ASCII; send the IDNA (xn--) form",
            _ => {
                "the host must be a DNS name, an IPv4 address or a bracketed IPv6 address, with an optional port"
            }
        }));
    }
    let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
        let (inside, rest) = literal
            .split_once(']')
            .ok_or(Refused("the IPv6 address misses its ']'"))?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(Refused("the host is not a valid IPv6 address"));
        }
        let port = match rest {
            "" => None,
            _ => Some(
                rest.strip_prefix(':')
                    .ok_or(Refused("only a port may follow an IPv6 address"))?,
            ),
        };
        (&authority[..inside.len() + 2], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        (name(host)?, port)
    };
    if let Some(port) = port {
        let valid = (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65535);
        if !valid {
            return Err(Refused("the port must be a number from 0 to 65535"));
        }
    }
    Ok(host)
}

/// A DNS name or a dotted-quad IPv4 address; returns it without its trailing dot.
fn name(host: &str) -> Result<&str, Refused> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err(Refused(
            "the host must be a DNS name (letters, digits, '-' and '.', no empty label) or an IP address",
        ));
    }
    // A name that ends in a number is an IPv4 address to URL parsers (`127.1`, `0x7f.1`,
    // `010.0.0.1` all mean something else than they spell): only the canonical form passes.
    let last = host.rsplit('.').next().unwrap_or(host);
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric && !is_dotted_quad(host) {
        return Err(Refused(
            "an IPv4 host must be four decimal numbers from 0 to 255 without leading zeros",
        ));
    }
    Ok(host)
}

fn is_dotted_quad(host: &str) -> bool {
    let mut parts = 0;
    for part in host.split('.') {
        parts += 1;
        let canonical = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
            && part.parse::<u16>().is_ok_and(|n| n <= 255);
        if !canonical {
            return false;
        }
    }
    parts == 4
}

/// The path of a request target (`/path?query`), which must be visible ASCII without `#`
/// (a space is tolerated in the query, which no rule looks at).
fn request_target(target: &str) -> Result<&str, Refused> {
    let (path, query) = match target.find('?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, ""),
    };
    let visible = |b: u8| b.is_ascii_graphic() && b != b'#';
    if !path.bytes().all(visible) {
        return Err(Refused(
            "the path must be visible ASCII without '#' (encode anything else)",
        ));
    }
    if !query.bytes().all(|b| visible(b) || b == b' ') {
        return Err(Refused(
            "the query must be ASCII without '#' or control characters",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_authorities_pass() {
        for (sent, host) in [
            ("app.example.org", "app.example.org"),
            ("App.Example.ORG", "App.Example.ORG"),
            ("app.example.org.", "app.example.org"),
            ("app.example.org:8443", "app.example.org"),
            ("app.example.org.:8443", "app.example.org"),
            ("localhost", "localhost"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("my-app", "my-app"),
            ("10.0.0.1", "10.0.0.1"),
            ("192.168.0.255:80", "192.168.0.255"),
            ("0.0.0.0", "0.0.0.0"),
            ("[::1]", "[::1]"),
            ("[2001:db8::1]:8080", "[2001:db8::1]"),
            ("[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]"),
            ("a.b:0", "a.b"),
            ("a.b:65535", "a.b"),
        ] {
            assert_eq!(authority(sent), Ok(host), "{sent}");
        }
    }

    #[test]
    fn ambiguous_authorities_are_refused() {
        for bad in [
            "",
            ":8080",
            ".",
            "x@status.example.org",
            "user:pw@status.example.org",
            "status.example.org@evil.org",
            "%73tatus.example.org",
            "status%2eexample.org",
            "status.example.org%00",
            "app.example.org, public.example.org",
            "app.example.org,public.example.org",
            "bücher.example",
            "app example.org",
            "app.example.org\t",
            "app..example.org",
            ".app.example.org",
            "app.example.org..",
            "app_1.example.org",
            "app.example.org:",
            "app.example.org:80:80",
            "app.example.org:123456",
            "app.example.org:65536",
            "app.example.org:+80",
            "app.example.org:0x50",
            "app.example.org/x",
            "app.example.org?x",
            "app.example.org#x",
            "app.example.org\\x",
            "127.1",
            "127.0.0.01",
            "0x7f.0.0.1",
            "1.2.3.256",
            "1.2.3.4.5",
            "2130706433",
            "app.0x10",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[fe80::1%25eth0]",
            "[v1.x]",
            "[1.2.3.4]",
            "::1",
            "[::1]@evil.org",
        ] {
            assert!(authority(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(authority("x@a.b").unwrap_err().0.contains("user info"));
        assert!(authority("%61.b").unwrap_err().0.contains("percent"));
    }

    #[test]
    fn forwarded_headers() {
        let t = Target::forwarded("https", "App.example.org:8443", "/a/b?q=1#").unwrap_err();
        assert!(t.0.contains("'#'"), "{t}");
        let t = Target::forwarded("https, http", "App.example.org.:8443", "/a/b?q=a b").unwrap();
        assert_eq!(
            (t.scheme(), t.host(), t.path()),
            ("https", "App.example.org", "/a/b")
        );
        assert!(Target::forwarded("ftp", "a.b", "/").is_err());
        assert!(Target::forwarded("https", "a.b", ".evil.org/").is_err());
        assert!(Target::forwarded("https", "a.b", "").is_err());
        assert!(Target::forwarded("https", "a.b", "*").is_err());
        assert!(Target::forwarded("https", "a.b", "/a b").is_err());
        assert!(Target::forwarded("https", "a.b", "/a\tb").is_err());
        assert!(Target::forwarded("https", "a.b", "/a?b\tc").is_err());
        assert!(Target::forwarded("https", "a.b", "/caf\u{e9}").is_err());
        assert!(Target::forwarded("https", "a.b,c.d", "/").is_err());
        assert!(Target::forwarded("https", "x@a.b", "/").is_err());
    }

    #[test]
    fn original_urls() {
        let t = Target::original_url("HTTPS://app.example.org:8443/x/../y?q=/admin").unwrap();
        assert_eq!(
            (t.scheme(), t.host(), t.path()),
            ("HTTPS", "app.example.org", "/x/../y")
        );
        assert_eq!(
            Target::original_url("http://a.b").unwrap().path(),
            "/",
            "no path is the root"
        );
        assert_eq!(
            Target::original_url("http://a.b//admin").unwrap().path(),
            "//admin"
        );
        for bad in [
            "javascript:alert(1)",
            "https:/a.b/",
            "https:\\\\a.b/",
            "//a.b/",
            "/relative",
            "ftp://a.b/",
            "https://x@status.example.org/",
            "https://status.example.org@evil.org/",
            "https://%73tatus.example.org/",
            "https://a.b?/admin",
            "https://a.b#/admin",
            "https://a.b\\admin",
            "https:///x",
            "https://a.b/x#frag",
            "https://a.b/x y",
        ] {
            assert!(Target::original_url(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
