//! Single sign-on over real HTTP: the forward-auth endpoints (Traefik/Caddy and nginx
//! conventions), access rules, the login and logout pages with their redirects (no open
//! redirect), token introspection and JWKS. Each test runs on both backends.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, PASSWORD, Server, assert_problem, email};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

const PUBLIC: &str = "http://auth.example.org:9091";
const CLIENT_ID: &str = "resource-server";
const CLIENT_SECRET: &str = "introspection-secret-0123456789";

const CONFIG: &str = r#"
public_url = "http://auth.example.org:9091"
[cookies]
domain = "example.org"
[introspection]
client_id = "resource-server"
client_secret = "introspection-secret-0123456789"
[access_control]
default_policy = "deny"
[[access_control.rules]]
domain = "public.example.org"
policy = "bypass"
[[access_control.rules]]
domain = "app.example.org"
path = "/public"
policy = "bypass"
[[access_control.rules]]
domain = "app.example.org"
path = "/admin"
roles = ["admin"]
[[access_control.rules]]
domain = "app.example.org"
path = "/blocked"
policy = "deny"
[[access_control.rules]]
domain = "*.example.org"
"#;

/// A server with the SSO config above (plus `extra` env).
fn start(backend: Backend, extra: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, CONFIG).expect("write config");
    let mut builder = Server::builder(backend).env("GATEHOUSE_CONFIG", &path.display().to_string());
    for (k, v) in extra {
        builder = builder.env(k, v);
    }
    (builder.start(), dir)
}

/// A forward-auth request as Traefik or Caddy sends it.
fn traefik(
    server: &Server,
    method: &str,
    proto: &str,
    host: &str,
    uri: &str,
) -> reqwest::RequestBuilder {
    server
        .http
        .get(server.url("/authz/forward-auth"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-proto", proto)
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-for", "203.0.113.9")
}

/// An `auth_request` subrequest as nginx sends it.
fn nginx(server: &Server, method: &str, url: &str) -> reqwest::RequestBuilder {
    server
        .http
        .get(server.url("/authz/auth-request"))
        .header("x-original-method", method)
        .header("x-original-url", url)
}

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The cookies a response sets, as sent (empty values included).
fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// The `Cookie` header that a browser would send back after this response to an app, to
/// forward-auth or to `/logout` (anywhere outside `/auth`).
fn cookie_header(headers: &HeaderMap) -> String {
    common::browser_cookies(&common::set_cookies(headers), "/")
}

/// Logs in through the login page (form post); returns the response.
async fn form_login(
    server: &Server,
    user: &str,
    password: &str,
    rd: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("email", user), ("password", password)];
    if let Some(rd) = rd {
        form.push(("rd", rd));
    }
    server
        .http
        .post(server.url("/login"))
        .header("origin", PUBLIC)
        .form(&form)
        .send()
        .await
        .expect("request")
}

/// Creates an admin account with the CLI (through the running server's admin socket, or
/// on the Redis user store).
fn add_admin(server: &Server, user: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["user", "add", user, "--role", "admin"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATA_DIR", &server.data_dir)
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
        .env("GATEHOUSE_ARGON2__ITERATIONS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Backend::Redis(redis) = &server.backend {
        cmd.env("GATEHOUSE_SESSIONS__BACKEND", "redis")
            .env("GATEHOUSE_SESSIONS__REDIS_URL", redis.url())
            .env("GATEHOUSE_USERS__BACKEND", "redis");
    }
    let mut child = cmd.spawn().expect("spawn gatehouse user add");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .expect("write password");
    }
    let out = child.wait_with_output().expect("user add");
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn forward_auth_passes_a_session_with_remote_headers(backend: Backend) {
    let (server, _dir) = start(backend, &[]);
    let ada = email("ada");
    let tokens = server.signup(&ada).await;
    let me: Value = server
        .get_auth("/auth/me", &tokens.access)
        .await
        .json()
        .await
        .unwrap();

    let check = |r: &reqwest::Response| {
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(header(h, "remote-user"), Some(ada.as_str()));
        assert_eq!(header(h, "remote-email"), Some(ada.as_str()));
        assert_eq!(header(h, "remote-role"), Some("user"));
        assert_eq!(header(h, "remote-user-id"), me["id"].as_str());
    };
    // Bearer (API clients behind the proxy) on both conventions.
    let r = traefik(&server, "GET", "https", "app.example.org", "/x?y=1")
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    check(&r);
    let r = nginx(&server, "POST", "https://wiki.example.org:8443/page")
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    check(&r);
    // The access cookie (browsers), next to an app's own Basic authorization.
    let r = traefik(&server, "GET", "https", "app.example.org:8443", "/")
        .header(
            "cookie",
            format!("theme=dark; gatehouse_access={}", tokens.access),
        )
        .header("authorization", "Basic dXNlcjpwdw==")
        .header("accept", BROWSER)
        .send()
        .await
        .unwrap();
    check(&r);

    // The hot path: one token check and one store read. Measure it.
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let r = traefik(&server, "GET", "https", "app.example.org", "/")
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        times.push(started.elapsed());
    }
    times.sort();
    let (p50, p99) = (times[100], times[198]);
    eprintln!("forward-auth round trip over loopback HTTP: p50 {p50:?}, p99 {p99:?}");
    assert!(p50 < Duration::from_millis(20), "p50 {p50:?}");

    // Revoked: the very next check fails.
    assert_eq!(
        server
            .post_auth("/auth/logout", &tokens.access)
            .await
            .status(),
        204
    );
    let r = traefik(&server, "GET", "https", "app.example.org", "/")
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
    let r = nginx(&server, "GET", "https://app.example.org/")
        .header("cookie", format!("gatehouse_access={}", tokens.access))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
}

async fn anonymous_browsers_are_redirected_and_apis_get_401(backend: Backend) {
    let (server, _dir) = start(backend, &[]);
    let original = "https://app.example.org:8443/path?q=a b&x=%2F";
    let expected = format!("{PUBLIC}/login?rd={}", form_urlencoded_encode(original));

    // Traefik/Caddy: 302 for GET and HEAD, 303 for other methods.
    for (method, status) in [("GET", 302), ("HEAD", 302), ("POST", 303), ("DELETE", 303)] {
        let r = traefik(
            &server,
            method,
            "https",
            "app.example.org:8443",
            "/path?q=a b&x=%2F",
        )
        .header("accept", BROWSER)
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), status, "{method}");
        assert_eq!(
            header(r.headers(), "location"),
            Some(expected.as_str()),
            "{method}"
        );
    }
    // A garbage or expired cookie is no session either.
    let r = traefik(
        &server,
        "GET",
        "https",
        "app.example.org:8443",
        "/path?q=a b&x=%2F",
    )
    .header("accept", BROWSER)
    .header("cookie", "gatehouse_access=garbage")
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 302);
    // XHR and API clients: 401 problem+json with a Bearer challenge, no redirect.
    let r = traefik(&server, "GET", "https", "app.example.org", "/api")
        .header("accept", BROWSER)
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(header(r.headers(), "www-authenticate"), Some("Bearer"));
    assert_problem(r, 401).await;
    let r = traefik(&server, "GET", "https", "app.example.org", "/api")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(LOCATION).is_none());
    assert_problem(r, 401).await;

    // nginx: 401 with X-Redirection-URL for browsers, plain 401 for the rest.
    let r = nginx(&server, "GET", original)
        .header("accept", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(r.headers(), "x-redirection-url"),
        Some(expected.as_str())
    );
    assert_problem(r, 401).await;
    let r = nginx(&server, "GET", original).send().await.unwrap();
    assert!(r.headers().get("x-redirection-url").is_none());
    assert_problem(r, 401).await;

    // Without the proxy's headers the endpoint cannot know the request: 400, not a 500.
    let r = server
        .http
        .get(server.url("/authz/forward-auth"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
    let r = server
        .http
        .get(server.url("/authz/auth-request"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
    let r = nginx(&server, "GET", "javascript:alert(1)")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
    let r = server
        .http
        .post(server.url("/authz/forward-auth"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 405).await;
}

fn form_urlencoded_encode(s: &str) -> String {
    // What the server uses for `rd`: application/x-www-form-urlencoded bytes.
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn access_rules_bypass_deny_and_roles(backend: Backend) {
    let (server, _dir) = start(backend, &[]);
    let user = server.signup(&email("user")).await;
    let boss = email("boss");
    add_admin(&server, &boss);
    let r = server.login(&boss, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let admin = common::Tokens::from(r.json::<Value>().await.unwrap());

    let status = |host: &'static str, uri: &'static str, token: Option<String>| {
        let req = traefik(&server, "GET", "https", host, uri).header("accept", BROWSER);
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        async move { req.send().await.unwrap() }
    };
    // bypass: anyone, without identity headers.
    let r = status("public.example.org", "/", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("remote-user").is_none());
    // deny: everyone, signed in or not.
    assert_eq!(
        status("app.example.org", "/blocked/x", None).await.status(),
        403
    );
    assert_problem(
        status("app.example.org", "/blocked", Some(admin.access.clone())).await,
        403,
    )
    .await;
    // The default policy (deny) for hosts no rule names.
    assert_eq!(
        status("other.org", "/", Some(user.access.clone()))
            .await
            .status(),
        403
    );
    assert_eq!(
        status("example.org.evil.org", "/", Some(user.access.clone()))
            .await
            .status(),
        403
    );
    // roles: the admin passes, a user without the role gets 403, anonymous is redirected.
    let r = status(
        "app.example.org",
        "/admin/users",
        Some(admin.access.clone()),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "remote-role"), Some("admin"));
    assert_problem(
        status("app.example.org", "/admin", Some(user.access.clone())).await,
        403,
    )
    .await;
    for sneaky in ["//admin", "/%61dmin/", "/ADMIN"] {
        assert_eq!(
            status("app.example.org", sneaky, Some(user.access.clone()))
                .await
                .status(),
            403,
            "{sneaky}"
        );
    }
    // A `..` segment is refused rather than resolved (see the next test).
    assert_problem(
        status("app.example.org", "/x/../admin", Some(user.access.clone())).await,
        400,
    )
    .await;
    assert_eq!(
        status("app.example.org", "/admin", None).await.status(),
        302
    );
    // Not under /admin: any signed-in user.
    assert_eq!(
        status(
            "app.example.org",
            "/administrator",
            Some(user.access.clone())
        )
        .await
        .status(),
        200
    );
    // nginx's endpoint follows the same rules.
    let r = nginx(&server, "GET", "https://app.example.org/admin")
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;
}

/// Issue #19: the decision is made on exactly what the proxy routes on. An authority that
/// parses differently from how proxies route is refused; no spelling of a path gets past a
/// `deny` or `roles` rule, on either endpoint, anonymous or signed in without the role.
async fn ambiguous_requests_never_get_a_more_permissive_rule(backend: Backend) {
    let (server, _dir) = start(backend, &[]);
    let user = server.signup(&email("user")).await;
    let boss = email("boss");
    add_admin(&server, &boss);
    let r = server.login(&boss, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let admin = common::Tokens::from(r.json::<Value>().await.unwrap());

    // Authorities: user info, percent-encoding, lists, look-alike IPv4 forms: 400, on both
    // endpoints, whatever the path (`public.example.org` is a bypass host).
    for host in [
        "x@public.example.org",
        "app.example.org@public.example.org",
        "x:y@public.example.org:443",
        "%70ublic.example.org",
        "public.example.org%2F",
        "public.example.org, app.example.org",
        "public.example.org,app.example.org",
        "public..example.org",
        "public.example.org:",
        "public.example.org:99999",
        "public.example.org x",
        "127.1",
    ] {
        let r = traefik(&server, "GET", "https", host, "/admin")
            .send()
            .await
            .unwrap();
        assert_problem(r, 400).await;
        let r = nginx(&server, "GET", &format!("https://{host}/admin"))
            .send()
            .await
            .unwrap();
        assert_problem(r, 400).await;
    }
    let r = traefik(&server, "GET", "https", "x@public.example.org", "/")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("user info"),
        "{body}"
    );
    // The plain forms still work: case, a trailing dot, a port.
    for host in [
        "PUBLIC.example.org",
        "public.example.org.",
        "public.example.org:8443",
    ] {
        let r = traefik(&server, "GET", "https", host, "/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    // X-Forwarded-Uri must be a path: `.evil.org/` after the host would change the host.
    let r = traefik(
        &server,
        "GET",
        "https",
        "public.example.org",
        ".evil.org/admin",
    )
    .send()
    .await
    .unwrap();
    assert_problem(r, 400).await;
    // A header sent twice, or one that is not ASCII, is refused, never taken for absent.
    let r = traefik(&server, "GET", "https", "app.example.org", "/admin")
        .header("x-forwarded-host", "public.example.org")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
    let r = server
        .http
        .get(server.url("/authz/forward-auth"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "public.example.org")
        .header(
            "x-forwarded-uri",
            reqwest::header::HeaderValue::from_bytes(b"/admin/\xff").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
    for target in ["/admin#x", "/admin\tx"] {
        let r = traefik(&server, "GET", "https", "app.example.org", target)
            .send()
            .await
            .unwrap();
        assert_problem(r, 400).await;
    }
    // nginx: the host it routed by ($host, as X-Original-Host) must be the URL's host. An
    // absolute-form request line `GET http://app.example.org/admin` with
    // `Host: public.example.org` is routed to app while $http_host names public.
    let r = nginx(&server, "GET", "https://public.example.org/admin")
        .header("x-original-host", "app.example.org")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
    let r = nginx(&server, "GET", "https://Public.example.org.:8443/admin")
        .header("x-original-host", "public.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Paths: every spelling of /admin or /blocked, as the issue's review and its variants.
    let restricted = [
        "/admin/..%2Fpublic/x",
        "/admin/..%2fpublic/x",
        "/admin/%2e%2e/public/x",
        "/admin%2F..%2Fpublic/x",
        "/public/..%2Fadmin",
        "/public/..%2Fadmin/x",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/..;/admin",
        "/public/..;x=1/admin",
        "/public\\..\\admin",
        "/public/..%5Cadmin",
        "/public/%252e%252e/admin",
        "/public/%25252e%25252e/admin",
        "/public/x/../../admin",
        "/public/../admin",
        "/public/.../admin",
        "/public/..%20/admin",
        "/admin;x=1/",
        "/admin;jsessionid=ABC",
        "/ADMIN",
        "/Admin/",
        "/aDmIn/users",
        "/%61dmin",
        "/%2561dmin",
        "/%41DMIN",
        "//admin",
        "///admin/x",
        "/./admin",
        "/.%2Fadmin",
        "\\admin",
        "/admin.",
        "/admin%20",
        "/admin%3F",
        "/admin%23x",
        "/admin%00",
        "/%2e/admin",
    ];
    let blocked = [
        "/blocked",
        "/BLOCKED/x",
        "/blocked;x",
        "/%62locked",
        "/public/..%2Fblocked",
        "/public;/..;/blocked",
        "/public\\..\\blocked",
    ];
    let check = |endpoint: &'static str, path: &'static str, token: Option<String>| {
        let req = match endpoint {
            "forward-auth" => traefik(&server, "GET", "https", "app.example.org", path),
            _ => nginx(&server, "GET", &format!("https://app.example.org{path}")),
        };
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        async move { req.send().await.unwrap() }
    };
    for endpoint in ["forward-auth", "auth-request"] {
        for path in restricted.iter().chain(&blocked) {
            for (who, token) in [("anonymous", None), ("user", Some(user.access.clone()))] {
                let r = check(endpoint, path, token).await;
                let status = r.status().as_u16();
                assert!(
                    matches!(status, 400 | 401 | 403),
                    "{endpoint} {path} as {who}: {status}"
                );
                assert!(r.headers().get("remote-user").is_none());
            }
            // The admin passes wherever the spelling is unambiguous; never past `deny`.
            let r = check(endpoint, path, Some(admin.access.clone())).await;
            let status = r.status().as_u16();
            if blocked.contains(path) {
                assert!(
                    matches!(status, 400 | 403),
                    "{endpoint} {path} as admin: {status}"
                );
            } else {
                assert!(
                    matches!(status, 200 | 400),
                    "{endpoint} {path} as admin: {status}"
                );
            }
        }
        // The bypass still bypasses, with or without a session.
        for path in [
            "/public/x",
            "/public",
            "/public/",
            "//public//x",
            "/public/a%2Fb",
        ] {
            let r = check(endpoint, path, None).await;
            assert_eq!(r.status(), 200, "{endpoint} {path}");
            assert!(r.headers().get("remote-user").is_none());
        }
        // A spelling outside /public is not a bypass; here any signed-in user.
        for path in ["/PUBLIC/x", "/public;x/y"] {
            let r = check(endpoint, path, None).await;
            assert_eq!(r.status(), 401, "{endpoint} {path}");
        }
    }
}

async fn login_page_signs_in_and_redirects_only_to_allowed_hosts(backend: Backend) {
    let (server, _dir) = start(backend, &[]);
    let ada = email("ada");
    server.signup(&ada).await;

    // The page: labelled inputs, password type, the title, rd escaped in a hidden field.
    let evil_rd = "https://app.example.org/\"><script>alert(1)</script>";
    let r = server
        .http
        .get(server.url("/login"))
        .query(&[("rd", evil_rd)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(r.headers(), "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        header(r.headers(), "content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'"))
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("<label for=\"email\">"), "{page}");
    assert!(page.contains("<label for=\"password\">"), "{page}");
    assert!(
        page.contains("id=\"password\" name=\"password\" type=\"password\""),
        "{page}"
    );
    assert!(page.contains("autofocus"));
    assert!(page.contains("gatehouse") && page.contains("<h1>Sign in</h1>"));
    assert!(!page.contains("<script>"), "rd must be escaped: {page}");
    assert!(
        page.contains("name=\"rd\" value=\"https://app.example.org/&#34;&#62;&#60;script&#62;"),
        "{page}"
    );

    // Login CSRF: a form post from another site is refused.
    let r = server
        .http
        .post(server.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", ada.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;
    let r = server
        .http
        .post(server.url("/login"))
        .form(&[("email", ada.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;

    // Wrong password: the page again, with the error in words, the email kept, no cookie.
    let r = form_login(
        &server,
        &ada,
        "wrong password",
        Some("https://app.example.org/"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(set_cookies(r.headers()).is_empty());
    let page = r.text().await.unwrap();
    assert!(
        page.contains("role=\"alert\"") && page.contains("The email or password is wrong"),
        "{page}"
    );
    assert!(page.contains(&format!("value=\"{ada}\"")));
    assert!(page.contains("name=\"rd\" value=\"https://app.example.org/\""));

    // Success: 303 to rd; the access cookie for the whole domain, the refresh cookie only
    // for gatehouse's own /auth.
    let rd = "https://app.example.org:8443/deep/page?x=1";
    let r = form_login(&server, &ada, PASSWORD, Some(rd)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(r.headers(), "location"), Some(rd));
    common::assert_token_cookies(
        &common::set_cookies(r.headers()),
        Some("example.org"),
        false,
    );
    let cookie = cookie_header(r.headers());
    assert!(!cookie.contains("gatehouse_refresh"), "{cookie}");
    let r = traefik(
        &server,
        "GET",
        "https",
        "app.example.org:8443",
        "/deep/page?x=1",
    )
    .header("cookie", &cookie)
    .header("accept", BROWSER)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "remote-user"), Some(ada.as_str()));

    // Signed in already: the login page goes straight on to an allowed rd.
    let r = server
        .http
        .get(server.url("/login"))
        .query(&[("rd", "https://wiki.example.org/")])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        header(r.headers(), "location"),
        Some("https://wiki.example.org/")
    );

    // No open redirect: anything else falls back to public_url.
    for bad in [
        "//evil.example",
        "https://evil.example",
        "https://evil.example/https://app.example.org",
        "javascript:alert(1)",
        "https:/\\evil.example",
        "https:\\\\evil.example",
        "/\\evil.example",
        "https://example.org.evil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "https://evil.example%2F.example.org",
        "https://user@evil.example",
        "https://app.example.org@evil.example",
        "https://app.example.org\t.evil.example",
        "",
    ] {
        let r = form_login(&server, &ada, PASSWORD, Some(bad)).await;
        assert_eq!(r.status(), 303, "{bad}");
        assert_eq!(
            header(r.headers(), "location"),
            Some(format!("{PUBLIC}/").as_str()),
            "{bad}"
        );
    }
    // Not a form: 415 problem+json.
    let r = server
        .http
        .post(server.url("/login"))
        .header("origin", PUBLIC)
        .json(&serde_json::json!({"email": ada, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 415).await;
}

async fn login_page_is_regulated(backend: Backend) {
    let (server, _dir) = start(backend, &[("GATEHOUSE_REGULATION__MAX_RETRIES", "2")]);
    let ada = email("ada");
    server.signup(&ada).await;
    for _ in 0..2 {
        assert_eq!(
            form_login(&server, &ada, "wrong password", None)
                .await
                .status(),
            200
        );
    }
    let r = form_login(&server, &ada, PASSWORD, None).await;
    assert_eq!(r.status(), 429);
    assert!(header(r.headers(), "retry-after").is_some());
    assert!(set_cookies(r.headers()).is_empty());
    let page = r.text().await.unwrap();
    assert!(page.contains("Too many failed sign-in attempts"), "{page}");
}

async fn logout_page_ends_the_session_only_from_our_site(backend: Backend) {
    let (server, _dir) = start(backend, &[]);
    let ada = email("ada");
    server.signup(&ada).await;
    let login = form_login(&server, &ada, PASSWORD, None).await;
    assert_eq!(login.status(), 303);
    let cookie = cookie_header(login.headers());
    let alive = |cookie: String| {
        let req = traefik(&server, "GET", "https", "app.example.org", "/").header("cookie", cookie);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(alive(cookie.clone()).await, 200);

    // A foreign link (or an image) to /logout: a page whose button posts, nothing ended.
    for headers in [
        vec![],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("referer", "https://app.example.org/"),
        ],
        vec![("referer", "https://evil.example/")],
    ] {
        let mut req = server
            .http
            .get(server.url("/logout"))
            .query(&[("rd", "https://app.example.org/\"><b>")])
            .header("cookie", &cookie);
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{headers:?}");
        assert!(set_cookies(r.headers()).is_empty());
        let page = r.text().await.unwrap();
        assert!(
            page.contains("<form method=\"post\" action=\"logout\">"),
            "{page}"
        );
        assert!(
            page.contains("value=\"https://app.example.org/&#34;&#62;&#60;b&#62;\""),
            "{page}"
        );
        assert_eq!(alive(cookie.clone()).await, 200, "{headers:?}");
    }
    // A cross-site POST is refused.
    let r = server
        .http
        .post(server.url("/logout"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;
    assert_eq!(alive(cookie.clone()).await, 200);

    // From our own site: the session ends, the cookies are cleared, "signed out".
    let r = server
        .http
        .get(server.url("/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    common::assert_token_cookies(&common::set_cookies(r.headers()), Some("example.org"), true);
    assert!(r.text().await.unwrap().contains("You have been signed out"));
    assert_eq!(alive(cookie.clone()).await, 401);

    // The button's POST, with an allowed rd: 303 there; a foreign rd: the page.
    let login = form_login(&server, &ada, PASSWORD, None).await;
    let cookie = cookie_header(login.headers());
    let r = server
        .http
        .post(server.url("/logout"))
        .header("cookie", &cookie)
        .header("origin", PUBLIC)
        .form(&[("rd", "https://app.example.org/bye")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        header(r.headers(), "location"),
        Some("https://app.example.org/bye")
    );
    assert_eq!(alive(cookie).await, 401);

    let login = form_login(&server, &ada, PASSWORD, None).await;
    let cookie = cookie_header(login.headers());
    let r = server
        .http
        .get(server.url("/logout"))
        .query(&[("rd", "https://evil.example/")])
        .header("cookie", &cookie)
        .header("referer", format!("{PUBLIC}/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You have been signed out"));
    assert_eq!(alive(cookie).await, 401);

    // A refresh cookie as older versions set it (`Path=/`, so it reaches /logout) still
    // ends the session when the access cookie is no token of ours.
    let login = form_login(&server, &ada, PASSWORD, None).await;
    let cookie = cookie_header(login.headers());
    let refresh = common::set_cookies(login.headers())
        .into_iter()
        .find(|c| c.name() == "gatehouse_refresh" && !c.value().is_empty())
        .unwrap();
    let r = server
        .http
        .post(server.url("/logout"))
        .header(
            "cookie",
            format!(
                "gatehouse_access=garbage; gatehouse_refresh={}",
                refresh.value()
            ),
        )
        .header("origin", PUBLIC)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(alive(cookie).await, 401);
}

/// `/logout` never receives the refresh cookie (`Path=/auth`): an access cookie whose token
/// has expired still names the session, and logging out ends it.
async fn logout_page_ends_a_session_whose_access_token_expired(backend: Backend) {
    let (server, _dir) = start(
        backend,
        &[
            ("GATEHOUSE_TOKENS__ACCESS_TTL", "1"),
            ("GATEHOUSE_TOKENS__LEEWAY", "0"),
        ],
    );
    let ada = email("ada");
    server.register(&ada, PASSWORD).await;
    let login = form_login(&server, &ada, PASSWORD, None).await;
    let set = common::set_cookies(login.headers());
    // The access cookie outlives its token: it lives as long as the session.
    let access = set.iter().find(|c| c.name() == "gatehouse_access").unwrap();
    assert_eq!(access.max_age().unwrap().whole_seconds(), 604_800);
    let to_logout = common::browser_cookies(&set, "/logout");
    let to_refresh = common::browser_cookies(&set, "/auth/refresh");
    assert!(!to_logout.contains("gatehouse_refresh"), "{to_logout}");
    tokio::time::sleep(Duration::from_millis(2200)).await;

    // Someone else's token (a forged signature) ends nothing.
    let forged = {
        let token = access.value();
        let (rest, _) = token.rsplit_once('.').unwrap();
        format!("gatehouse_access={rest}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    };
    let r = server
        .http
        .get(server.url("/logout"))
        .header("cookie", forged)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refresh = |cookie: String| {
        let req = server
            .http
            .post(server.url("/auth/refresh"))
            .header("cookie", cookie)
            .header("origin", PUBLIC);
        async move { req.send().await.unwrap() }
    };
    let r = refresh(to_refresh.clone()).await;
    assert_eq!(r.status(), 200, "the session lives on");
    let set = common::set_cookies(r.headers());
    let to_logout = common::browser_cookies(&set, "/logout");
    let to_refresh = common::browser_cookies(&set, "/auth/refresh");
    tokio::time::sleep(Duration::from_millis(2200)).await;

    // The expired access cookie alone: the session ends, its refresh token with it.
    let r = server
        .http
        .get(server.url("/logout"))
        .header("cookie", &to_logout)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    common::assert_token_cookies(&common::set_cookies(r.headers()), Some("example.org"), true);
    assert!(r.text().await.unwrap().contains("You have been signed out"));
    assert_problem(refresh(to_refresh).await, 401).await;
    assert!(
        server.logs().contains("event=\"logout\""),
        "{}",
        server.logs()
    );
}

async fn introspection_answers_active_for_live_tokens_only(backend: Backend) {
    let (server, _dir) = start(backend, &[]);
    let ada = email("ada");
    let tokens = server.signup(&ada).await;
    let introspect = |auth: Option<(&str, &str)>, token: &str| {
        let mut req = server
            .http
            .post(server.url("/auth/introspect"))
            .form(&[("token", token)]);
        if let Some((id, secret)) = auth {
            req = req.basic_auth(id, Some(secret));
        }
        async move { req.send().await.unwrap() }
    };
    // Client authentication first.
    let r = introspect(None, &tokens.access).await;
    assert_eq!(
        header(r.headers(), "www-authenticate"),
        Some("Basic realm=\"gatehouse introspection\"")
    );
    assert_problem(r, 401).await;
    assert_problem(
        introspect(Some((CLIENT_ID, "wrong-secret-0123456789")), &tokens.access).await,
        401,
    )
    .await;
    assert_problem(
        introspect(Some(("other", CLIENT_SECRET)), &tokens.access).await,
        401,
    )
    .await;
    // A bearer token is not client authentication.
    let r = server
        .http
        .post(server.url("/auth/introspect"))
        .bearer_auth(&tokens.access)
        .form(&[("token", tokens.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;

    let ok = Some((CLIENT_ID, CLIENT_SECRET));
    let r = introspect(ok, &tokens.access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "cache-control"), Some("no-store"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["email"], ada.as_str());
    assert_eq!(v["username"], ada.as_str());
    assert_eq!(v["role"], "user");
    for claim in ["sub", "exp", "iat", "jti", "sid"] {
        assert!(!v[claim].is_null(), "{claim}: {v}");
    }
    // JSON works too.
    let r = server
        .http
        .post(server.url("/auth/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .json(&serde_json::json!({"token": tokens.access, "token_type_hint": "access_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    // Garbage, a refresh token, a tampered token: inactive, and nothing else said.
    let mut tampered = tokens.access.clone();
    tampered.pop();
    for token in ["garbage", tokens.refresh.as_str(), tampered.as_str(), ""] {
        let v: Value = introspect(ok, token).await.json().await.unwrap();
        assert_eq!(v, serde_json::json!({"active": false}), "{token}");
    }
    // Missing token: 400; wrong content type: 415.
    let r = server
        .http
        .post(server.url("/auth/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("nothing", "here")])
        .send()
        .await
        .unwrap();
    assert_problem(r, 400).await;
    let r = server
        .http
        .post(server.url("/auth/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .body("token=x")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415).await;
    // Revoked: inactive at once.
    assert_eq!(
        server
            .post_auth("/auth/logout", &tokens.access)
            .await
            .status(),
        204
    );
    let v: Value = introspect(ok, &tokens.access).await.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"active": false}));
}

async fn jwks_is_empty_under_hs256_and_introspection_is_off_by_default(backend: Backend) {
    let server = Server::start(backend);
    let r = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        serde_json::json!({"keys": []})
    );
    let r = server
        .http
        .post(server.url("/auth/introspect"))
        .basic_auth("any", Some("thing"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(r, 404).await;
}

/// EdDSA and ES256: tokens carry the `kid` of a key published at the JWKS endpoint, verify
/// with it outside gatehouse, survive a restart (the generated key is reused), and an
/// HS256 token is refused whatever its `kid`.
async fn asymmetric_keys_are_published_and_verify(backend: Backend) {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    for (algorithm, kty) in [("EdDSA", "OKP"), ("ES256", "EC")] {
        let server = Server::builder(backend.clone())
            .env("GATEHOUSE_TOKENS__ALGORITHM", algorithm)
            .start();
        let tokens = server.signup(&email("ada")).await;
        let header = decode_header(&tokens.access).unwrap();
        assert_eq!(format!("{:?}", header.alg), algorithm);
        let kid = header.kid.clone().expect("kid");
        let r = server
            .http
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(raw["keys"].as_array().unwrap().len(), 1, "{text}");
        assert_eq!(raw["keys"][0]["kty"], kty);
        assert_eq!(raw["keys"][0]["kid"], kid.as_str());
        assert!(raw["keys"][0].get("d").is_none(), "no private part: {text}");
        let set: JwkSet = serde_json::from_str(&text).unwrap();
        let jwk = set.find(&kid).expect("the token's kid is published");
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let claims: Value = decode(&tokens.access, &key, &Validation::new(header.alg))
            .expect("verifies with the published key")
            .claims;
        assert_eq!(claims["role"], "user");
        assert_eq!(server.me_status(&tokens.access).await, 200);

        // An HS256 token naming the published kid (keyed with the public key) is refused.
        let mut forged = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        forged.kid = Some(kid.clone());
        let public = serde_json::to_vec(&raw["keys"][0]).unwrap();
        let forged = jsonwebtoken::encode(
            &forged,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&public),
        )
        .unwrap();
        assert_eq!(server.me_status(&forged).await, 401);

        // The key is kept in the data dir: same kid, old tokens still good after a restart.
        let server = server.restart();
        assert_eq!(server.me_status(&tokens.access).await, 200);
        let again: Value = server
            .http
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(again["keys"][0]["kid"], kid.as_str());
    }
}

backend_tests!(
    forward_auth_passes_a_session_with_remote_headers,
    anonymous_browsers_are_redirected_and_apis_get_401,
    access_rules_bypass_deny_and_roles,
    ambiguous_requests_never_get_a_more_permissive_rule,
    login_page_signs_in_and_redirects_only_to_allowed_hosts,
    login_page_is_regulated,
    logout_page_ends_the_session_only_from_our_site,
    logout_page_ends_a_session_whose_access_token_expired,
    introspection_answers_active_for_live_tokens_only,
    jwks_is_empty_under_hs256_and_introspection_is_off_by_default,
    asymmetric_keys_are_published_and_verify,
);
