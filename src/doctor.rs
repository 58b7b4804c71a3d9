//! `gatehouse doctor`: checks a running install and says what to fix.
//!
//! Each check yields [`Finding`]s: `ok`, `warn` (works, but probably not as meant) or `FAIL`
//! (something is broken). The checks read the config, the data dir and the running server
//! from outside (its HTTP listener, its admin socket, its Redis); none opens the database,
//! which the server holds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Config, SessionBackend, UserBackend};
use crate::http::forwarded::ForwardedRequest;

/// How long a probe (HTTP, Redis) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Clock skew against Redis beyond which the doctor warns (it fails beyond `tokens.leeway`).
const SKEW_WARN_MS: u64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) level: Level,
    pub(crate) check: &'static str,
    pub(crate) message: String,
}

impl Finding {
    pub(crate) fn ok(check: &'static str, message: impl Into<String>) -> Finding {
        Finding::new(Level::Ok, check, message)
    }

    pub(crate) fn fail(check: &'static str, message: impl Into<String>) -> Finding {
        Finding::new(Level::Fail, check, message)
    }

    fn new(level: Level, check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            level,
            check,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<4}  {:<10}  {}",
            self.level.label(),
            self.check,
            self.message
        )
    }
}

/// Runs every check after the config's, in order.
pub(crate) async fn run(config: &Config) -> Vec<Finding> {
    // Ask for the last proxied request before probing the listener.
    let last = crate::admin::send(&config.data_dir, &crate::admin::AdminRequest::LastForwarded)
        .await
        .and_then(|json| {
            serde_json::from_str::<Option<ForwardedRequest>>(&json).map_err(|e| e.to_string())
        });
    let mut findings = data_dir(config);
    findings.extend(listener(config.listen).await);
    findings.extend(redis(config).await);
    findings.extend(public_url(config));
    findings.push(proxy(config, last));
    findings
}

/// The data dir: present, owned by this user, 0700, no secret readable by others.
pub(crate) fn data_dir(config: &Config) -> Vec<Finding> {
    const CHECK: &str = "data dir";
    let dir = &config.data_dir;
    let meta = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => {
            return vec![Finding::new(
                Level::Fail,
                CHECK,
                format!("{} is not a directory", dir.display()),
            )];
        }
        Err(e) => {
            return vec![Finding::new(
                Level::Fail,
                CHECK,
                format!(
                    "{} cannot be read ({e}): create it (mode 0700) for the user gatehouse runs as",
                    dir.display()
                ),
            )];
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mut findings = Vec::new();
        // Linux: /proc/self belongs to the effective user (no unsafe geteuid needed).
        if let Ok(me) = std::fs::metadata("/proc/self") {
            if me.uid() != meta.uid() {
                findings.push(Finding::new(
                    Level::Fail,
                    CHECK,
                    format!(
                        "{} belongs to uid {}, not to this user (uid {}): run the doctor as the \
                         service's user, or chown the data dir to it",
                        dir.display(),
                        meta.uid(),
                        me.uid()
                    ),
                ));
            }
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            findings.push(Finding::new(
                Level::Fail,
                CHECK,
                format!(
                    "{} has mode {mode:04o}: other users can enter it; chmod 0700 {0}",
                    dir.display()
                ),
            ));
        }
        let mut secrets: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        secrets.push(config.database_path());
        secrets.extend(config.tokens.private_keys.iter().map(|key| dir.join(key)));
        secrets.sort();
        secrets.dedup();
        for path in secrets {
            let Ok(file) = std::fs::metadata(&path) else {
                continue;
            };
            let mode = file.permissions().mode() & 0o7777;
            if mode & 0o044 != 0 {
                findings.push(Finding::new(
                    Level::Fail,
                    CHECK,
                    format!(
                        "{} has mode {mode:04o}: other users can read it; chmod 0600 {0}",
                        path.display()
                    ),
                ));
            }
        }
        if findings.is_empty() {
            findings.push(Finding::new(
                Level::Ok,
                CHECK,
                format!(
                    "{} is private (mode {mode:04o}, its files readable by their owner only)",
                    dir.display()
                ),
            ));
        }
        findings
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        vec![Finding::new(
            Level::Ok,
            CHECK,
            format!("{} exists", dir.display()),
        )]
    }
}

/// The address to connect to for a listen address (the unspecified address means loopback).
pub(crate) fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /healthz` and `GET /readyz` on the listener answer 200.
async fn listener(listen: SocketAddr) -> Vec<Finding> {
    const CHECK: &str = "listener";
    if listen.port() == 0 {
        return vec![Finding::new(
            Level::Warn,
            CHECK,
            "listen has port 0 (any free port): set a fixed port to let the doctor reach it",
        )];
    }
    let addr = probe_address(listen);
    let mut findings = Vec::new();
    match get_status(addr, "/healthz").await {
        Ok(200) => findings.push(Finding::new(
            Level::Ok,
            CHECK,
            format!("http://{addr}/healthz answers 200"),
        )),
        Ok(status) => {
            return vec![Finding::new(
                Level::Fail,
                CHECK,
                format!(
                    "http://{addr}/healthz answers {status}, not 200: is something else listening on {listen}?"
                ),
            )];
        }
        Err(e) => {
            return vec![Finding::new(
                Level::Fail,
                CHECK,
                format!(
                    "nothing answers at {addr} ({e}): is `gatehouse serve` running, with this config?"
                ),
            )];
        }
    }
    findings.push(match get_status(addr, "/readyz").await {
        Ok(200) => Finding::new(
            Level::Ok,
            "store",
            "the server's store answers (/readyz 200)",
        ),
        Ok(status) => Finding::new(
            Level::Fail,
            "store",
            format!("the server's store does not answer (/readyz {status}): see the server's logs"),
        ),
        Err(e) => Finding::new(Level::Fail, "store", format!("/readyz: {e}")),
    });
    findings
}

/// The status code of a plain `GET path` on `addr`.
async fn get_status(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..n]);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| format!("no answer in {} s", PROBE_TIMEOUT.as_secs()))?
}

/// Each configured Redis answers PING, and its clock agrees with ours.
async fn redis(config: &Config) -> Vec<Finding> {
    let mut urls = Vec::new();
    if let SessionBackend::Redis { url } = &config.sessions.backend {
        urls.push(url.clone());
    }
    if let UserBackend::Redis { url } = &config.users.backend {
        if !urls.contains(url) {
            urls.push(url.clone());
        }
    }
    let mut findings = Vec::new();
    for url in urls {
        // The URL may hold a password: name the server by host and port only.
        let name = url::Url::parse(&url)
            .ok()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("?"),
                    u.port().unwrap_or(6379)
                )
            })
            .unwrap_or_else(|| "Redis".into());
        match redis_time(&url).await {
            Ok(redis_ms) => {
                findings.push(Finding::new(
                    Level::Ok,
                    "redis",
                    format!("{name} answers PING"),
                ));
                let skew = redis_ms.abs_diff(crate::clock::now_ms());
                findings.push(clock_skew(&name, skew, config.tokens.leeway));
            }
            Err(e) => findings.push(Finding::new(
                Level::Fail,
                "redis",
                format!("{name} does not answer ({e}): start Redis or fix the redis_url"),
            )),
        }
    }
    findings
}

/// PING, then TIME (in Unix milliseconds).
async fn redis_time(url: &str) -> Result<u64, String> {
    let probe = async {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(secs * 1000 + micros / 1000)
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| format!("no answer in {} s", PROBE_TIMEOUT.as_secs()))?
}

/// The verdict on a clock difference: tokens are checked against our clock and sessions
/// expire on Redis' clock, so a skew past `tokens.leeway` rejects or keeps tokens wrongly.
pub(crate) fn clock_skew(name: &str, skew_ms: u64, leeway_secs: u64) -> Finding {
    let level = if skew_ms > leeway_secs * 1000 {
        Level::Fail
    } else if skew_ms > SKEW_WARN_MS {
        Level::Warn
    } else {
        Level::Ok
    };
    let message = match level {
        Level::Ok => format!("clock within {skew_ms} ms of {name}'s"),
        _ => format!(
            "clock {:.1} s off {name}'s (tokens.leeway is {leeway_secs} s): run NTP on both hosts",
            skew_ms as f64 / 1000.0
        ),
    };
    Finding::new(level, "clock", message)
}

/// `public_url` agrees with `cookies.domain` and `cookies.secure`.
pub(crate) fn public_url(config: &Config) -> Vec<Finding> {
    const CHECK: &str = "public url";
    let Some(url) = &config.public_url else {
        return vec![Finding::new(
            Level::Ok,
            CHECK,
            "public_url is not set: nothing to compare with the cookie settings",
        )];
    };
    let mut findings = Vec::new();
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    if let Some(domain) = &config.cookies.domain {
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        if host != domain && !host.ends_with(&format!(".{domain}")) {
            findings.push(Finding::new(
                Level::Fail,
                CHECK,
                format!(
                    "public_url's host {host} is not within cookies.domain {domain}: browsers \
                     would refuse the cookies; fix one of them"
                ),
            ));
        }
    }
    match (url.scheme(), config.cookies.secure) {
        ("http", true) => findings.push(Finding::new(
            Level::Fail,
            CHECK,
            format!(
                "cookies.secure is true but public_url {url} is http: browsers drop secure \
                 cookies over http; serve it over https"
            ),
        )),
        ("https", false) => findings.push(Finding::new(
            Level::Warn,
            CHECK,
            format!(
                "public_url {url} is https but cookies.secure is false: set cookies.secure = true"
            ),
        )),
        _ => {}
    }
    if findings.is_empty() {
        findings.push(Finding::new(
            Level::Ok,
            CHECK,
            format!("{url} agrees with the cookie settings"),
        ));
    }
    findings
}

/// What the last proxied request says about the proxy set-up.
pub(crate) fn proxy(config: &Config, last: Result<Option<ForwardedRequest>, String>) -> Finding {
    const CHECK: &str = "proxy";
    let last = match last {
        Ok(Some(last)) => last,
        Ok(None) => {
            return Finding::new(
                Level::Ok,
                CHECK,
                "no request with X-Forwarded-* headers since the server started",
            );
        }
        Err(e) => {
            return Finding::new(
                Level::Warn,
                CHECK,
                format!("cannot ask the server about proxied requests: {e}"),
            );
        }
    };
    let peer = last.peer.ip().to_canonical();
    if last.forwarded_for && !last.peer_trusted {
        return Finding::new(
            Level::Warn,
            CHECK,
            format!(
                "requests from {peer} carry X-Forwarded-For, but {peer} is not in \
                 trusted_proxies: if it is your proxy, add it (else every client counts as \
                 {peer} for bans and sessions)"
            ),
        );
    }
    if let Some(url) = &config.public_url {
        if url.scheme() == "https"
            && last
                .forwarded_proto
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("http"))
        {
            return Finding::new(
                Level::Warn,
                CHECK,
                format!(
                    "public_url is https but the proxy at {peer} says the last request came over \
                     http (X-Forwarded-Proto: http): redirect http to https at the proxy"
                ),
            );
        }
        let host = last
            .host
            .as_deref()
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name));
        if let (Some(host), Some(public)) = (host, url.host_str()) {
            if !last.forwarded_host && !host.eq_ignore_ascii_case(public) {
                return Finding::new(
                    Level::Warn,
                    CHECK,
                    format!(
                        "the proxy at {peer} passes Host: {host}, not public_url's {public}: \
                         pass the original Host (nginx: proxy_set_header Host $host)"
                    ),
                );
            }
        }
    }
    Finding::new(
        Level::Ok,
        CHECK,
        format!(
            "last proxied request from {peer} ({}trusted proxy)",
            if last.peer_trusted { "" } else { "not a " }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_thresholds() {
        assert_eq!(clock_skew("r", 0, 5).level, Level::Ok);
        assert_eq!(clock_skew("r", 2_000, 5).level, Level::Ok);
        assert_eq!(clock_skew("r", 2_001, 5).level, Level::Warn);
        assert_eq!(clock_skew("r", 5_000, 5).level, Level::Warn);
        assert_eq!(clock_skew("r", 5_001, 5).level, Level::Fail);
        // A leeway below the warning threshold fails first.
        assert_eq!(clock_skew("r", 1_500, 1).level, Level::Fail);
    }

    fn config(toml: &str) -> Config {
        Config::from_toml_str(toml).expect("config")
    }

    fn proxied(peer: &str, trusted: bool) -> ForwardedRequest {
        ForwardedRequest {
            at: 0,
            peer: peer.parse().unwrap(),
            peer_trusted: trusted,
            forwarded_for: true,
            forwarded_proto: Some("https".into()),
            forwarded_host: false,
            host: Some("auth.example.org:443".into()),
        }
    }

    #[test]
    fn proxy_verdicts() {
        let https = config("public_url = \"https://auth.example.org\"");
        let verdict = |last: ForwardedRequest| proxy(&https, Ok(Some(last))).level;
        assert_eq!(verdict(proxied("10.0.0.5:4000", true)), Level::Ok);
        // A proxy nobody trusted, loopback or not.
        assert_eq!(verdict(proxied("10.0.0.5:4000", false)), Level::Warn);
        assert_eq!(verdict(proxied("127.0.0.1:4000", false)), Level::Warn);
        // Without X-Forwarded-For an untrusted peer claims nothing about clients.
        let mut no_xff = proxied("10.0.0.5:4000", false);
        no_xff.forwarded_for = false;
        assert_eq!(verdict(no_xff), Level::Ok);
        let mut plain = proxied("10.0.0.5:4000", true);
        plain.forwarded_proto = Some("HTTP".into());
        assert_eq!(verdict(plain), Level::Warn);
        let mut other_host = proxied("10.0.0.5:4000", true);
        other_host.host = Some("127.0.0.1:8080".into());
        assert_eq!(verdict(other_host.clone()), Level::Warn);
        other_host.forwarded_host = true;
        assert_eq!(verdict(other_host), Level::Ok);
        assert_eq!(proxy(&https, Ok(None)).level, Level::Ok);
        assert_eq!(proxy(&https, Err("down".into())).level, Level::Warn);
    }

    #[test]
    fn public_url_against_cookies() {
        let levels = |toml: &str| -> Vec<Level> {
            public_url(&config(toml)).iter().map(|f| f.level).collect()
        };
        let url = "public_url = \"https://auth.example.org\"\n";
        assert_eq!(levels(url), [Level::Ok]);
        assert_eq!(
            levels(&format!("{url}[cookies]\ndomain = \"example.org\"")),
            [Level::Ok]
        );
        assert_eq!(
            levels(&format!("{url}[cookies]\ndomain = \".example.org\"")),
            [Level::Ok]
        );
        assert_eq!(
            levels(&format!("{url}[cookies]\ndomain = \"auth.example.org\"")),
            [Level::Ok]
        );
        // A suffix that is not a parent domain.
        assert_eq!(
            levels(&format!("{url}[cookies]\ndomain = \"ample.org\"")),
            [Level::Fail]
        );
        assert_eq!(
            levels(&format!("{url}[cookies]\nsecure = false")),
            [Level::Warn]
        );
        assert_eq!(
            levels("public_url = \"http://auth.example.org\""),
            [Level::Fail]
        );
        assert_eq!(
            levels("public_url = \"http://auth.example.org\"\n[cookies]\nsecure = false"),
            [Level::Ok]
        );
        assert_eq!(levels(""), [Level::Ok]);
    }

    #[test]
    fn unspecified_listen_addresses_are_probed_on_loopback() {
        let probe = |s: &str| probe_address(s.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(probe("[::]:8080"), "[::1]:8080");
        assert_eq!(probe("10.1.2.3:80"), "10.1.2.3:80");
    }
}
