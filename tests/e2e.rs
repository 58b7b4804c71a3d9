//! End-to-end single sign-on with real reverse proxies and a real browser:
//!
//! - nginx (`auth_request` to `/authz/auth-request`) and Caddy (`forward_auth` to
//!   `/authz/forward-auth`) in front of a tiny upstream app that echoes the `Remote-*`
//!   headers: anonymous browser → login page; API request → 401; logged in → the upstream
//!   with the headers; logout → locked again; role rule → 403. Then issue #19: raw request
//!   lines that spell the admin area differently (`/admin/..%2Fpublic/x`, `..;`, `\`,
//!   double encoding, case, an absolute-form request line naming another host) never reach
//!   the upstream's admin area, which routes on any reading of the path.
//! - Chromium, headless, driven over WebDriver (chromedriver) through nginx: open a
//!   protected URL, land on the login page, type the credentials, arrive at the app, sign
//!   out. A screenshot of the login page goes to `target/test-artifacts/login.png`.
//!
//! Host names `auth.gatehouse.test` and `app.gatehouse.test` point at 127.0.0.1 (reqwest's
//! `resolve`, Chromium's `--host-resolver-rules`), with `cookies.domain = "gatehouse.test"`.
//! A missing `nginx`, `caddy`, `chromium` or `chromedriver` skips its test loudly; with
//! `CI=true` it fails it (`.ci/run` installs them).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::browser::{Proc, WebDriver, free_port, require};
use common::{Backend, PASSWORD, Server, email};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AUTH_HOST: &str = "auth.gatehouse.test";
const APP_HOST: &str = "app.gatehouse.test";
/// A host whose every path is public (a bypass rule); nginx and Caddy serve no site by it.
const PUBLIC_HOST: &str = "public.gatehouse.test";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The upstream app: answers every request with a small HTML page that shows the
/// `Remote-*` headers it received, the area the path routes to (see [`area`]), and a
/// sign-out link to `logout_url`. Counts the requests that reached its admin area.
async fn upstream(logout_url: String) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let port = listener.local_addr().expect("addr").port();
    let admin_hits = Arc::new(AtomicUsize::new(0));
    let hits = admin_hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let logout_url = logout_url.clone();
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("?")
                    .to_owned();
                let area = area(&path);
                if area == "admin" {
                    hits.fetch_add(1, Ordering::SeqCst);
                }
                let mut seen: Vec<String> = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(k, _)| k.trim().to_ascii_lowercase().starts_with("remote-"))
                    .map(|(k, v)| format!("{}: {}", k.trim().to_ascii_lowercase(), v.trim()))
                    .collect();
                seen.sort();
                // The names of the cookies it received: never the refresh cookie.
                let cookies: Vec<String> = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(k, _)| k.trim().eq_ignore_ascii_case("cookie"))
                    .flat_map(|(_, v)| v.split(';'))
                    .filter_map(|c| c.split_once('='))
                    .map(|(name, _)| format!("cookie: {}", name.trim()))
                    .collect();
                let body = format!(
                    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Upstream app</title></head>\
<body><h1>Upstream app</h1><p id=\"path\">{}</p><p id=\"area\">area: {area}</p><pre id=\"headers\">{}</pre><pre id=\"cookies\">{}</pre>\
<a id=\"logout\" href=\"{}\">Sign out</a></body></html>",
                    html_escape::encode_text(&path),
                    html_escape::encode_text(&seen.join("\n")),
                    html_escape::encode_text(&cookies.join("\n")),
                    html_escape::encode_double_quoted_attribute(&logout_url),
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, admin_hits)
}

/// Where the upstream routes a request target: `admin` when any way an application may
/// read the path starts with `/admin` (as sent, decoded, with dot segments resolved; `\`
/// as `/`, `;` parameters dropped, without case, trailing dots and spaces trimmed), as the
/// app of issue #19 did; else `public` or `app` by the path as sent.
fn area(target: &str) -> &'static str {
    fn decode(s: &str) -> String {
        let bytes: Vec<u8> = percent_decode(s.as_bytes());
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn percent_decode(input: &[u8]) -> Vec<u8> {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            if input[i] == b'%' && i + 2 < input.len() {
                if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }
    /// The first segment as sent and with dot segments resolved, normalised.
    fn first_segments(path: &str) -> [String; 2] {
        let path = path.split(['?', '#', '\0']).next().unwrap_or_default();
        let segments = path
            .split(['/', '\\'])
            .map(|s| {
                s.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(' ')
            })
            .filter(|s| !s.is_empty());
        let normal = |s: &str| s.trim_end_matches(['.', ' ']).to_ascii_lowercase();
        let as_sent = segments.clone().next().map(normal).unwrap_or_default();
        let mut resolved = Vec::new();
        for segment in segments {
            match segment {
                "." => {}
                ".." | "..." => {
                    resolved.pop();
                }
                s => resolved.push(s),
            }
        }
        [
            as_sent,
            resolved.first().copied().map(normal).unwrap_or_default(),
        ]
    }
    let path = target.split('?').next().unwrap_or_default();
    let mut readings = vec![path.to_owned()];
    let mut decoded = path.to_owned();
    for _ in 0..4 {
        decoded = decode(&decoded);
        readings.push(decoded.clone());
    }
    let admin = readings
        .iter()
        .any(|r| first_segments(r).iter().any(|s| s == "admin"));
    if admin {
        "admin"
    } else if path.starts_with("/public/") || path == "/public" {
        "public"
    } else {
        "app"
    }
}

/// Gatehouse configured for the proxy on `proxy_port`.
fn gatehouse(proxy_port: u16, dir: &Path) -> Server {
    let config = dir.join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            r#"
public_url = "http://{AUTH_HOST}:{proxy_port}"
trusted_proxies = ["127.0.0.1"]
[cookies]
domain = "gatehouse.test"
[login]
title = "Gatehouse test lab"
[access_control]
default_policy = "deny"
[[access_control.rules]]
domain = "{APP_HOST}"
path = "/admin"
roles = ["admin"]
[[access_control.rules]]
domain = "{APP_HOST}"
path = "/public"
policy = "bypass"
[[access_control.rules]]
domain = "{PUBLIC_HOST}"
policy = "bypass"
[[access_control.rules]]
domain = "*.gatehouse.test"
"#
        ),
    )
    .expect("write config");
    Server::builder(Backend::Embedded)
        .env("GATEHOUSE_CONFIG", &config.display().to_string())
        .start()
}

/// nginx in front of gatehouse (`auth.`) and the upstream (`app.`, behind `auth_request`).
fn nginx(binary: &Path, dir: &Path, port: u16, gatehouse: &str, upstream: u16) -> Proc {
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join("tmp").join(sub)).expect("nginx temp dir");
    }
    let d = dir.display();
    let conf = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    # gatehouse itself: the login and logout pages.
    server {{
        listen 127.0.0.1:{port};
        server_name {AUTH_HOST};
        location / {{
            proxy_pass http://{gatehouse};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}

    # A protected app.
    server {{
        listen 127.0.0.1:{port};
        server_name {APP_HOST};

        location = /internal/gatehouse {{
            internal;
            proxy_pass http://{gatehouse}/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Host $host;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        location / {{
            auth_request /internal/gatehouse;
            auth_request_set $gatehouse_user $upstream_http_remote_user;
            auth_request_set $gatehouse_email $upstream_http_remote_email;
            auth_request_set $gatehouse_role $upstream_http_remote_role;
            auth_request_set $gatehouse_user_id $upstream_http_remote_user_id;
            auth_request_set $gatehouse_redirect $upstream_http_x_redirection_url;
            error_page 401 = @gatehouse_login;

            proxy_set_header Remote-User $gatehouse_user;
            proxy_set_header Remote-Email $gatehouse_email;
            proxy_set_header Remote-Role $gatehouse_role;
            proxy_set_header Remote-User-Id $gatehouse_user_id;
            proxy_pass http://127.0.0.1:{upstream};
        }}

        # Browsers go to the login page; API clients keep the 401.
        location @gatehouse_login {{
            if ($gatehouse_redirect) {{
                return 302 $gatehouse_redirect;
            }}
            return 401;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let mut proc = Proc::spawn(
        "nginx",
        Command::new(binary)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path),
        dir.join("nginx.out"),
    );
    proc.wait_for_port(port);
    proc
}

/// Caddy in front of gatehouse and the upstream (`forward_auth`).
fn caddy(binary: &Path, dir: &Path, port: u16, gatehouse: &str, upstream: u16) -> Proc {
    let conf = format!(
        r#"{{
    admin off
    auto_https off
}}

http://{AUTH_HOST}:{port} {{
    bind 127.0.0.1
    reverse_proxy {gatehouse}
}}

http://{APP_HOST}:{port} {{
    bind 127.0.0.1
    forward_auth {gatehouse} {{
        uri /authz/forward-auth
        copy_headers Remote-User Remote-Email Remote-Role Remote-User-Id
    }}
    reverse_proxy 127.0.0.1:{upstream}
}}
"#
    );
    let path = dir.join("Caddyfile");
    std::fs::write(&path, conf).expect("write Caddyfile");
    let mut proc = Proc::spawn(
        "caddy",
        Command::new(binary)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config")),
        dir.join("caddy.out"),
    );
    proc.wait_for_port(port);
    proc
}

/// A client that resolves the test hosts to the proxy and follows no redirects.
fn client(port: u16) -> reqwest::Client {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(AUTH_HOST, addr)
        .resolve(APP_HOST, addr)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The `Cookie` header a browser sends to the app (and to `/logout`) after this response:
/// the refresh cookie is for gatehouse's `/auth` only.
fn cookie_header(r: &reqwest::Response) -> String {
    common::browser_cookies(&common::set_cookies(r.headers()), "/")
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The walk through a proxy on `port` that the issue asks for, over plain HTTP.
async fn walk_through_proxy(server: &Server, port: u16) {
    let http = client(port);
    let auth = format!("http://{AUTH_HOST}:{port}");
    let app = format!("http://{APP_HOST}:{port}");
    let ada = email("ada");
    server.signup(&ada).await;

    // Anonymous browser: sent to the login page with the original URL in rd.
    let r = http
        .get(format!("{app}/dashboard?tab=1"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let login_url = location(&r);
    let expected_rd: String =
        form_urlencoded::byte_serialize(format!("{app}/dashboard?tab=1").as_bytes()).collect();
    assert_eq!(login_url, format!("{auth}/login?rd={expected_rd}"));
    // A forged Remote-User from the client does not get through either.
    let r = http
        .get(format!("{app}/dashboard"))
        .header("remote-user", "admin@example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "API client");
    // The bypass rule: no session needed.
    let r = http.get(format!("{app}/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The login page, through the proxy.
    let r = http
        .get(&login_url)
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Gatehouse test lab"), "{page}");
    assert!(page.contains("type=\"password\""));

    // Log in with the form: 303 back to the app, the access cookie for the whole domain, the
    // refresh cookie for gatehouse's own host and /auth only.
    let r = http
        .post(format!("{auth}/login"))
        .header("origin", &auth)
        .form(&[
            ("email", ada.as_str()),
            ("password", PASSWORD),
            ("rd", &format!("{app}/dashboard?tab=1")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{app}/dashboard?tab=1"));
    common::assert_token_cookies(
        &common::set_cookies(r.headers()),
        Some("gatehouse.test"),
        false,
    );
    let cookie = cookie_header(&r);
    assert!(cookie.contains("gatehouse_access="), "{cookie}");

    // Logged in: the upstream is reached with the Remote-* headers (and no forged ones).
    let r = http
        .get(format!("{app}/dashboard?tab=1"))
        .header("accept", BROWSER_ACCEPT)
        .header("cookie", &cookie)
        .header("remote-user", "admin@example.org")
        .header("remote-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("remote-user: {ada}")), "{body}");
    assert!(body.contains(&format!("remote-email: {ada}")), "{body}");
    assert!(body.contains("remote-role: user"), "{body}");
    assert!(body.contains("remote-user-id: "), "{body}");
    assert!(!body.contains("admin@example.org"), "{body}");
    assert!(body.contains("/dashboard?tab=1"), "{body}");

    // Role rule: a signed-in user without the admin role gets 403.
    let r = http
        .get(format!("{app}/admin/settings"))
        .header("accept", BROWSER_ACCEPT)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Logout through the proxy (the confirmation's POST), then locked again.
    let r = http
        .post(format!("{auth}/logout"))
        .header("origin", &auth)
        .header("cookie", &cookie)
        .form(&[("rd", format!("{app}/dashboard"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{app}/dashboard"));
    let r = http
        .get(format!("{app}/dashboard"))
        .header("accept", BROWSER_ACCEPT)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with(&format!("{auth}/login?rd=")));
}

/// One raw request to the proxy on `port` (no URL library in between to tidy the target):
/// the status and the body.
async fn raw_request(
    port: u16,
    request_line_target: &str,
    host: &str,
    cookie: Option<&str>,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the proxy");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {request_line_target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{cookie}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the proxy answers")
        .expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Issue #19 through a real proxy: request lines that spell the admin area differently
/// (the review's `/admin/..%2Fpublic/x` and variants) never reach the upstream's admin
/// area, anonymous or signed in without the admin role; `/public/x` still does not need a
/// session.
async fn admin_area_stays_closed(server: &Server, port: u16, admin_hits: &AtomicUsize) {
    let app = format!("{APP_HOST}:{port}");
    let user = server.signup(&email("eve")).await;
    let cookie = format!("gatehouse_access={}", user.access);
    let variants = [
        "/admin/..%2Fpublic/x",
        "/admin/..%2fpublic/x",
        "/admin%2F..%2Fpublic/x",
        "/admin/%2e%2e/public/x",
        "/admin/..;/public/x",
        "/admin\\..\\public/x",
        "/admin/..%5Cpublic/x",
        "/admin/%252e%252e%252fpublic/x",
        "/admin;x=1/",
        "/admin;/settings",
        "/ADMIN/settings",
        "/Admin/",
        "/%61dmin/settings",
        "/%2561dmin/settings",
        "//admin/settings",
        "/./admin/settings",
        "/public/..%2Fadmin/settings",
        "/public/%2e%2e/admin",
        "/public/..;/admin",
        "/public\\..\\admin",
        "/admin./settings",
        "/admin%20/settings",
        "/admin%3F/settings",
    ];
    for target in variants {
        assert_eq!(
            area(target),
            "admin",
            "the upstream takes {target} for the admin area"
        );
        for cookie in [None, Some(cookie.as_str())] {
            let (status, body) = raw_request(port, target, &app, cookie).await;
            assert!(
                !body.contains("area: admin"),
                "{target} (session: {}) reached the admin area: {status} {body}",
                cookie.is_some()
            );
            assert_ne!(status, 200, "{target}: {body}");
        }
    }
    // An absolute-form request line names the host the proxy routes by; the Host header
    // (nginx's $http_host) names a bypass host.
    let absolute = format!("http://{app}/admin/settings");
    let (status, body) = raw_request(port, &absolute, &format!("{PUBLIC_HOST}:{port}"), None).await;
    assert!(
        !body.contains("area: admin"),
        "absolute form: {status} {body}"
    );
    assert_ne!(status, 200, "absolute form: {body}");
    // The bypass still works, anonymously.
    let (status, body) = raw_request(port, "/public/x", &app, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("area: public"), "{body}");
    assert_eq!(
        admin_hits.load(Ordering::SeqCst),
        0,
        "requests reached the admin area"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request() {
    let Some(binary) = require("nginx", "nginx") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = gatehouse(port, dir.path());
    let (upstream, admin_hits) = upstream(format!("http://{AUTH_HOST}:{port}/logout")).await;
    let _nginx = nginx(&binary, dir.path(), port, &server.addr, upstream);
    walk_through_proxy(&server, port).await;
    admin_area_stays_closed(&server, port, &admin_hits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth() {
    let Some(binary) = require("caddy", "caddy") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = gatehouse(port, dir.path());
    let (upstream, admin_hits) = upstream(format!("http://{AUTH_HOST}:{port}/logout")).await;
    let _caddy = caddy(&binary, dir.path(), port, &server.addr, upstream);
    walk_through_proxy(&server, port).await;
    admin_area_stays_closed(&server, port, &admin_hits).await;
}

// --- the browser ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_through_nginx_and_out() {
    let (Some(nginx_bin), Some(chromium), Some(driver_bin)) = (
        require("nginx", "nginx"),
        require("chromium", "chromium"),
        require("chromedriver", "chromium-driver"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = gatehouse(port, dir.path());
    let ada = email("ada");
    server.signup(&ada).await;
    let auth = format!("http://{AUTH_HOST}:{port}");
    let app = format!("http://{APP_HOST}:{port}");
    let (upstream, _) = upstream(format!("{auth}/logout?rd={app}/")).await;
    let _nginx = nginx(&nginx_bin, dir.path(), port, &server.addr, upstream);

    let browser = WebDriver::start(
        &chromium,
        &driver_bin,
        dir.path(),
        &[
            "--window-size=900,700",
            "--host-resolver-rules=MAP *.gatehouse.test 127.0.0.1",
        ],
    )
    .await;

    // A protected URL sends the browser to the login page.
    browser.goto(&format!("{app}/dashboard?tab=1")).await;
    let url = browser
        .wait_url("the login page", |u| {
            u.starts_with(&format!("{auth}/login?rd="))
        })
        .await;
    assert!(url.contains("dashboard"), "{url}");
    let page = browser.source().await;
    assert!(page.contains("Gatehouse test lab"), "{page}");
    assert_eq!(
        browser.active_element_id().await,
        "email",
        "the email field has the focus"
    );
    let artifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/login.png");
    browser.screenshot(&artifact).await;
    eprintln!("login page screenshot: {}", artifact.display());

    // A wrong password: the error in words, still on the login page.
    browser.type_into("#email", &ada).await;
    browser.type_into("#password", "not the password").await;
    browser.click("button[type=submit]").await;
    browser
        .wait_url("the login page again", |u| {
            u.starts_with(&format!("{auth}/login"))
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser
        .source()
        .await
        .contains("The email or password is wrong")
    {
        assert!(Instant::now() < deadline, "no error text");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let artifact_error =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/login-error.png");
    browser.screenshot(&artifact_error).await;

    // The right one: the app, with the identity headers.
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_url("the app", |u| u == format!("{app}/dashboard?tab=1"))
        .await;
    let page = browser.source().await;
    assert!(page.contains(&format!("remote-user: {ada}")), "{page}");
    assert!(page.contains("remote-role: user"), "{page}");
    // The browser sends the app the access cookie (forward-auth needs it), never the
    // refresh token.
    assert!(page.contains("cookie: gatehouse_access"), "{page}");
    assert!(!page.contains("gatehouse_refresh"), "{page}");

    // Sign out from the app: gatehouse asks to confirm (the link came from another
    // origin), the button posts, and the app is locked again.
    browser.click("#logout").await;
    browser
        .wait_url("the logout confirmation", |u| {
            u.starts_with(&format!("{auth}/logout"))
        })
        .await;
    assert!(browser.source().await.contains("Do you want to sign out?"));
    browser.click("button[type=submit]").await;
    browser
        .wait_url("the login page after logout", |u| {
            u.starts_with(&format!("{auth}/login?rd="))
        })
        .await;
    browser.goto(&format!("{app}/dashboard")).await;
    browser
        .wait_url("the login page", |u| {
            u.starts_with(&format!("{auth}/login?rd="))
        })
        .await;
    browser.quit().await;
    let _ = std::io::stderr().flush();
}
