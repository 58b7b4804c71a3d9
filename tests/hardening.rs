//! The defences of the hardening issue, over real HTTP and raw sockets.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

backend_tests!(
    repeated_failures_ban_the_account_and_the_address,
    weak_passwords_are_refused_with_reasons,
    forwarded_for_through_an_ipv6_listener,
);

async fn login_from(server: &Server, ip: &str, email: &str, password: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn repeated_failures_ban_the_account_and_the_address(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "3")
        .env("GATEHOUSE_REGULATION__BAN_TIME", "2")
        .start();
    let (x, y) = (email("victim"), email("bystander"));
    server.register(&x, PASSWORD).await;
    server.register(&y, PASSWORD).await;
    let (attacker, other) = ("203.0.113.9", "198.51.100.4");

    for _ in 0..3 {
        assert_problem(
            login_from(&server, attacker, &x, "not the password").await,
            401,
        )
        .await;
    }
    // The account is banned everywhere, even with the right password…
    let r = login_from(&server, other, &x, PASSWORD).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_problem(r, 429).await;
    // …and the attacking address is banned for every account.
    assert_problem(login_from(&server, attacker, &y, PASSWORD).await, 429).await;
    // Others are not affected.
    assert_eq!(login_from(&server, other, &y, PASSWORD).await.status(), 200);
    // Unknown accounts are banned alike: a ban reveals nothing about which emails exist.
    let ghost = email("ghost");
    for _ in 0..3 {
        assert_problem(
            login_from(&server, "192.0.2.50", &ghost, "whatever it is").await,
            401,
        )
        .await;
    }
    assert_problem(
        login_from(&server, "192.0.2.1", &ghost, "whatever it is").await,
        429,
    )
    .await;

    // The CLI lists the bans and lifts one, through the running server's admin socket.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env("GATEHOUSE_DATA_DIR", &server.data_dir)
            .envs(match &server.backend {
                Backend::Embedded => vec![],
                Backend::Redis(r) => vec![
                    ("GATEHOUSE_SESSIONS__BACKEND", "redis".to_owned()),
                    ("GATEHOUSE_SESSIONS__REDIS_URL", r.url()),
                    ("GATEHOUSE_USERS__BACKEND", "redis".to_owned()),
                ],
            })
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = cli(&["ban", "list"]);
    assert!(listed.contains(&format!("user:{x}")), "{listed}");
    assert!(listed.contains(&format!("ip:{attacker}")), "{listed}");
    let lifted = cli(&["ban", "lift", &x]);
    assert!(lifted.contains(&format!("user:{x}")), "{lifted}");
    assert_eq!(login_from(&server, other, &x, PASSWORD).await.status(), 200);

    // Bans end by themselves.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        login_from(&server, attacker, &y, PASSWORD).await.status(),
        200
    );
    assert!(server.logs().contains("login_regulated"));
    assert!(server.logs().contains("login_banned"));

    // Without trusted proxies, X-Forwarded-For is ignored: everyone is 127.0.0.1.
    let plain = Server::builder(server.backend.clone())
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "2")
        .start();
    let z = email("plain");
    plain.register(&z, PASSWORD).await;
    for ip in ["203.0.113.1", "203.0.113.2"] {
        assert_problem(
            login_from(&plain, ip, &email("nobody"), "bad password").await,
            401,
        )
        .await;
    }
    assert_problem(login_from(&plain, "203.0.113.3", &z, PASSWORD).await, 429).await;
}

/// A `[::]` listener reached over IPv4 sees the peer as `::ffff:127.0.0.1`: it still matches
/// `trusted_proxies = ["127.0.0.1"]`, X-Forwarded-For is walked from the right, and addresses
/// are recorded in their IPv4 form.
async fn forwarded_for_through_an_ipv6_listener(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_LISTEN", "[::]:0")
        .env("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .start();
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    assert!(server.addr.starts_with("[::]:"), "{}", server.addr);
    let base = format!("http://127.0.0.1:{port}");
    let ada = email("ada");
    let r = server
        .http
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": ada, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The address each login is recorded under, newest session last.
    let login_ip = |forwarded: Option<&'static str>| {
        let (http, base, ada) = (server.http.clone(), base.clone(), ada.clone());
        async move {
            let mut request = http
                .post(format!("{base}/auth/login"))
                .json(&json!({"email": ada, "password": PASSWORD}));
            if let Some(forwarded) = forwarded {
                request = request.header("x-forwarded-for", forwarded);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let access = r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
            let sessions: Value = http
                .get(format!("{base}/auth/sessions"))
                .bearer_auth(&access)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let current = sessions
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["current"] == true)
                .cloned()
                .unwrap();
            current["ip"].as_str().unwrap().to_owned()
        }
    };
    // Honoured from the trusted (mapped) peer; the forged left-most entry is not believed.
    assert_eq!(login_ip(Some("203.0.113.7")).await, "203.0.113.7");
    assert_eq!(login_ip(Some("6.6.6.6, 203.0.113.7")).await, "203.0.113.7");
    assert_eq!(
        login_ip(Some("6.6.6.6, 203.0.113.7:5123, 127.0.0.1")).await,
        "203.0.113.7"
    );
    // Garbage cannot pick an address: the walk stops at the last trusted hop.
    assert_eq!(login_ip(Some("6.6.6.6, not-an-address")).await, "127.0.0.1");
    assert_eq!(
        login_ip(Some("6.6.6.6, garbage, 127.0.0.1")).await,
        "127.0.0.1"
    );
    // The peer itself, in IPv4 form, never as ::ffff:127.0.0.1.
    assert_eq!(login_ip(None).await, "127.0.0.1");
}

async fn weak_passwords_are_refused_with_reasons(backend: Backend) {
    let server = Server::start(backend);
    let problem = assert_problem(server.register(&email("weak"), "password123").await, 422).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("too easy to guess"), "{detail}");
    let problem = assert_problem(
        server
            .register("margaret.hamilton@example.org", "margaret.hamilton")
            .await,
        422,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("too easy"));
    let problem = assert_problem(
        server.register(&email("long"), &"a".repeat(1025)).await,
        422,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("1024"));
    assert_eq!(
        server
            .register(&email("strong"), "tiny-plum-89-orbit")
            .await
            .status(),
        201
    );
}

/// Reads from a raw socket until EOF or the deadline; returns what arrived and whether the
/// server closed the connection.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_connection_floods_are_bounded() {
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_LIMITS__HEADER_READ_TIMEOUT", "1")
        .env("GATEHOUSE_LIMITS__REQUEST_TIMEOUT", "1")
        .env("GATEHOUSE_LIMITS__MAX_CONNECTIONS", "3")
        .start();

    // Slowloris: a request head that never ends is cut off.
    let mut slow = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "the server kept a never-ending request head open");

    // A body that never arrives: 408 after the request timeout.
    let mut stalled = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    stalled
        .write_all(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // Connection cap: with 3 connections held open, a 4th is answered 503 at once, and
    // served normally once a slot is free again.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        // Each holds its slot with a keep-alive request.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut shed = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    shed.write_all(request).await.unwrap();
    let (answer, closed) = read_until_closed(&mut shed, Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(closed);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut later = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    later.write_all(request).await.unwrap();
    let (late, _) = read_until_closed(&mut later, Duration::from_secs(5)).await;
    assert!(
        late.starts_with("HTTP/1.1 200"),
        "not served after a slot freed: {late:?}"
    );
}

fn forge(secret: &str, claims: &Value) -> String {
    let kid = {
        use sha2::Digest;
        URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(secret.as_bytes())[..8])
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_and_audience_are_set_and_required() {
    let secret = "issuer-audience-test-secret-0123456789abcdef";
    let server = Server::builder(Backend::Embedded)
        .env("JWT_SECRET", secret)
        .env("GATEHOUSE_TOKENS__ISSUER", "https://auth.example.org")
        .env("GATEHOUSE_TOKENS__AUDIENCE", "homelab")
        .start();
    let t = server.signup(&email("aud")).await;
    let claims = payload(&t.access);
    assert_eq!(claims["iss"], "https://auth.example.org");
    assert_eq!(claims["aud"], "homelab");
    assert_eq!(server.me_status(&t.access).await, 200);

    // Same secret, same live session, but the wrong or a missing iss/aud: refused.
    for (key, value) in [
        ("aud", Some("elsewhere")),
        ("iss", Some("https://evil.example")),
        ("aud", None),
        ("iss", None),
    ] {
        let mut forged = claims.clone();
        match value {
            Some(v) => forged[key] = json!(v),
            None => {
                forged.as_object_mut().unwrap().remove(key);
            }
        }
        let token = forge(secret, &forged);
        let problem = assert_problem(server.get_auth("/auth/me", &token).await, 401).await;
        assert!(problem["detail"].is_string());
    }
    // The untouched claims re-signed pass: the forging is right.
    assert_eq!(server.me_status(&forge(secret, &claims)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_rotate_without_logging_anyone_out() {
    let old = "old-secret-old-secret-old-secret-0123456789";
    let new = "new-secret-new-secret-new-secret-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets");
    std::fs::write(&file, format!("{old}\n")).unwrap();
    let file_env = file.display().to_string();

    let mut server = Server::builder(Backend::Embedded)
        .env("JWT_SECRET_FILE", &file_env)
        .start();
    let data = server.data_dir.clone();
    let t = server.signup(&email("rotate")).await;
    server.stop();

    // New secret first, old one kept: old tokens verify, new ones are signed with the new key.
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, "{new}\n{old}").unwrap();
    let mut server = Server::builder(Backend::Embedded)
        .data_dir(&data)
        .env("JWT_SECRET_FILE", &file_env)
        .start();
    assert_eq!(server.me_status(&t.access).await, 200);
    let r = server.refresh(&t.refresh).await;
    assert_eq!(r.status(), 200);
    let fresh = Tokens::from(r.json::<Value>().await.unwrap());
    let kid = |token: &str| -> Value {
        let part = token.split('.').next().unwrap();
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()["kid"]
            .clone()
    };
    assert_ne!(kid(&fresh.access), kid(&t.access));
    server.stop();

    // Old secret removed: tokens signed with it are refused, the new ones still pass.
    std::fs::write(&file, format!("{new}\n")).unwrap();
    let server = Server::builder(Backend::Embedded)
        .data_dir(&data)
        .env("JWT_SECRET_FILE", &file_env)
        .start();
    let problem = assert_problem(server.get_auth("/auth/me", &t.access).await, 401).await;
    assert!(problem["detail"].as_str().unwrap().contains("unknown key"));
    assert_eq!(server.me_status(&fresh.access).await, 200);
}

/// Failed logins take the same time whether or not the email exists: the median latencies
/// of a few hundred interleaved attempts differ by less than 20 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_latency_does_not_reveal_accounts() {
    let server = Server::builder(Backend::Embedded)
        // Enough argon2 work to dominate the request, cheap enough for a test.
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "4096")
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "0")
        .start();
    let known = email("known");
    server.register(&known, PASSWORD).await;
    let unknown = email("unknown");
    let mut times = (Vec::new(), Vec::new());
    for i in 0..400 {
        let who = if i % 2 == 0 { &known } else { &unknown };
        let started = Instant::now();
        let r = server.login(who, "definitely wrong").await;
        let took = started.elapsed();
        assert_eq!(r.status(), 401);
        if i >= 20 {
            // the first rounds warm up connections and caches
            if i % 2 == 0 {
                times.0.push(took)
            } else {
                times.1.push(took)
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (k, u) = (median(&mut times.0), median(&mut times.1));
    let ratio = k.max(u) / k.min(u);
    assert!(
        ratio < 1.2,
        "known {:.2} ms vs unknown {:.2} ms",
        k * 1e3,
        u * 1e3
    );
}
