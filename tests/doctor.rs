//! `gatehouse doctor`: a healthy install is all ok, and each check fails (or warns) on a
//! broken set-up the test makes.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Backend, Server};

/// A loopback address with a port that was free a moment ago: the doctor probes `listen`
/// as configured, so the server cannot take any free port (`:0`).
fn free_listen() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").to_string()
}

fn start(backend: Backend, env: &[(&str, &str)]) -> Server {
    let listen = free_listen();
    let mut builder = Server::builder(backend)
        .env("GATEHOUSE_LISTEN", &listen)
        .env("GATEHOUSE_COOKIES__SECURE", "false");
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    builder.start()
}

struct Report {
    code: Option<i32>,
    stdout: String,
}

impl Report {
    /// The lines of one check.
    fn lines(&self, check: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| line.get(6..).is_some_and(|rest| rest.starts_with(check)))
            .collect()
    }

    /// Asserts that `check` has a line at `level` containing `text`.
    fn has(&self, level: &str, check: &str, text: &str) {
        assert!(
            self.lines(check)
                .iter()
                .any(|line| line.starts_with(level) && line.contains(text)),
            "expected a `{level}` line for {check} saying {text:?}; got:\n{}",
            self.stdout
        );
    }
}

fn doctor(server: &Server) -> Report {
    let out = server.cli(&["doctor"], "");
    Report {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_install_is_all_ok() {
    let server = start(Backend::Embedded, &[]);
    let report = doctor(&server);
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    for check in [
        "config",
        "data dir",
        "listener",
        "store",
        "public url",
        "proxy",
    ] {
        let lines = report.lines(check);
        assert!(!lines.is_empty(), "no {check} line:\n{}", report.stdout);
        assert!(
            lines.iter().all(|line| line.starts_with("ok ")),
            "{check} not ok:\n{}",
            report.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_open_to_others_fails() {
    let server = start(Backend::Embedded, &[]);
    std::fs::set_permissions(&server.data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = doctor(&server);
    assert_eq!(report.code, Some(2), "{}", report.stdout);
    report.has("FAIL", "data dir", "mode 0755");
    report.has("FAIL", "data dir", "chmod 0700");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_readable_by_others_fails() {
    let server = start(Backend::Embedded, &[]);
    let secret = server.data_dir.join("jwt_secret");
    assert!(secret.exists(), "the server generates its secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = doctor(&server);
    assert_eq!(report.code, Some(2), "{}", report.stdout);
    report.has("FAIL", "data dir", "jwt_secret has mode 0644");
    report.has("ok", "listener", "answers 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_fails() {
    let mut server = start(Backend::Embedded, &[]);
    // Not asserted clean: a SIGTERM this soon after "listening" can land before the server
    // installs its signal handler (a start-up race of `serve`, not the doctor's business).
    let status = server.stop();
    eprintln!("server stopped: {status}");
    let report = doctor(&server);
    assert_eq!(report.code, Some(2), "{}", report.stdout);
    report.has("FAIL", "listener", "nothing answers");
    report.has("ok", "data dir", "is private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_domain_without_the_public_host_fails() {
    let server = start(
        Backend::Embedded,
        &[
            ("GATEHOUSE_PUBLIC_URL", "http://auth.example.org"),
            ("GATEHOUSE_COOKIES__DOMAIN", "example.com"),
        ],
    );
    let report = doctor(&server);
    assert_eq!(report.code, Some(2), "{}", report.stdout);
    report.has(
        "FAIL",
        "public url",
        "not within cookies.domain example.com",
    );

    // Within the domain: ok.
    drop(server);
    let server = start(
        Backend::Embedded,
        &[
            ("GATEHOUSE_PUBLIC_URL", "http://auth.example.org"),
            ("GATEHOUSE_COOKIES__DOMAIN", ".example.org"),
        ],
    );
    let report = doctor(&server);
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    report.has("ok", "public url", "agrees with the cookie settings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookies_with_an_http_public_url_fail() {
    let server = start(
        Backend::Embedded,
        &[
            ("GATEHOUSE_PUBLIC_URL", "http://auth.example.org"),
            ("GATEHOUSE_COOKIES__SECURE", "true"),
        ],
    );
    let report = doctor(&server);
    assert_eq!(report.code, Some(2), "{}", report.stdout);
    report.has("FAIL", "public url", "cookies.secure is true");

    // The other way round only warns: it works, less safely.
    drop(server);
    let server = start(
        Backend::Embedded,
        &[("GATEHOUSE_PUBLIC_URL", "https://auth.example.org")],
    );
    let report = doctor(&server);
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    report.has("warn", "public url", "cookies.secure is false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answering_and_its_clock_are_ok_and_redis_down_fails() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let Backend::Redis(redis) = backend.clone() else {
        unreachable!()
    };
    let server = start(backend, &[]);
    let report = doctor(&server);
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    report.has("ok", "redis", "answers PING");
    report.has("ok", "clock", "clock within");

    redis.kill();
    let report = doctor(&server);
    assert_eq!(report.code, Some(2), "{}", report.stdout);
    report.has("FAIL", "redis", "does not answer");
    report.has("FAIL", "store", "/readyz 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_from_an_untrusted_peer_warn() {
    let server = start(Backend::Embedded, &[]);
    let r = server
        .http
        .get(server.url("/healthz"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("cookie", "secret-cookie")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report = doctor(&server);
    assert_eq!(
        report.code,
        Some(0),
        "warnings do not fail: {}",
        report.stdout
    );
    report.has("warn", "proxy", "is not in trusted_proxies");
    assert!(!report.stdout.contains("secret-cookie"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_saying_http_under_an_https_public_url_warns() {
    let server = start(
        Backend::Embedded,
        &[
            ("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
            ("GATEHOUSE_PUBLIC_URL", "https://auth.example.org"),
            ("GATEHOUSE_COOKIES__SECURE", "true"),
        ],
    );
    let r = server
        .http
        .get(server.url("/healthz"))
        .header("host", "auth.example.org")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report = doctor(&server);
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    report.has("warn", "proxy", "X-Forwarded-Proto: http");
}

#[test]
fn an_invalid_config_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("doctor")
        .env_clear()
        .env("GATEHOUSE_DATA_DIR", dir.path())
        .env("GATEHOUSE_TOKENS__ACCESS_TTL", "soon")
        .output()
        .unwrap();
    let report = Report {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    assert_eq!(report.code, Some(2), "{}", report.stdout);
    report.has("FAIL", "config", "ACCESS_TTL");
}
