//! The HTTP contract, endpoint by endpoint, against each session backend.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};

backend_tests!(
    register_login_me,
    emails_are_unique_case_insensitively,
    registration_validates_and_can_be_closed,
    failed_logins_look_the_same,
    refresh_rotates_and_detects_reuse,
    repeated_refresh_within_grace_gets_the_same_successor,
    logout_revokes_at_once,
    logout_all_ends_every_session,
    password_change_ends_every_other_session,
    sessions_list_and_revoke,
    cookie_mode_and_csrf,
    expired_access_token_is_refused,
    state_survives_restart,
    health_and_readiness,
    logs_hold_no_secrets,
);

fn claims(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    let payload = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&header).unwrap(),
        serde_json::from_slice(&payload).unwrap(),
    )
}

async fn register_login_me(backend: Backend) {
    let server = Server::start(backend);
    let email = email("ada");
    let r = server.register(&email, PASSWORD).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["email"], email);
    assert_eq!(created["role"], "user");
    let id = created["id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&id).expect("id is a UUID");

    let r = server.login(&email, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 604_800);
    let tokens = Tokens::from(body);

    let (header, c) = claims(&tokens.access);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].is_string());
    assert_eq!(c["sub"], id);
    assert_eq!(c["email"], email);
    assert_eq!(c["role"], "user");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 900);
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let r = server.get_auth("/auth/me", &tokens.access).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["id"], id);
    assert_eq!(me["email"], email);
    assert_eq!(me["role"], "user");
    assert!(me["created_at"].as_str().unwrap().ends_with('Z'));

    // Each token gets its own jti.
    let again = server.relogin(&email).await;
    assert_ne!(claims(&again.access).1["jti"], c["jti"]);
}

async fn emails_are_unique_case_insensitively(backend: Backend) {
    let server = Server::start(backend);
    let lower = email("grace");
    let upper = lower.to_uppercase();
    assert_eq!(server.register(&upper, PASSWORD).await.status(), 201);
    let problem = assert_problem(server.register(&lower, PASSWORD).await, 409).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    assert_eq!(server.login(&lower, PASSWORD).await.status(), 200);
}

async fn registration_validates_and_can_be_closed(backend: Backend) {
    let server = Server::start(backend.clone());
    let problem = assert_problem(server.register("not-an-email", PASSWORD).await, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("email"));
    let problem = assert_problem(server.register(&email("weak"), "short").await, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("at least 8"));
    let long = "x".repeat(1025);
    assert_problem(server.register(&email("long"), &long).await, 422).await;

    let closed = Server::builder(backend)
        .env("GATEHOUSE_REGISTRATION", "closed")
        .start();
    assert_problem(closed.register(&email("late"), PASSWORD).await, 403).await;
}

async fn failed_logins_look_the_same(backend: Backend) {
    let server = Server::start(backend);
    let known = email("known");
    server.register(&known, PASSWORD).await;
    let wrong = server.login(&known, "wrong password!").await;
    let unknown = server.login(&email("nobody"), "wrong password!").await;
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    assert_eq!(unknown.headers()["www-authenticate"], "Bearer");
    let wrong = assert_problem(wrong, 401).await;
    let unknown = assert_problem(unknown, 401).await;
    assert_eq!(wrong, unknown);
}

async fn refresh_rotates_and_detects_reuse(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "1")
        .start();
    let t0 = server.signup(&email("rot")).await;
    let r = server.refresh(&t0.refresh).await;
    assert_eq!(r.status(), 200);
    let t1 = Tokens::from(r.json::<Value>().await.unwrap());
    assert_ne!(t1.refresh, t0.refresh);
    assert_eq!(server.me_status(&t1.access).await, 200);

    // After the grace window, presenting the used token again is reuse: the session dies.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_problem(server.refresh(&t0.refresh).await, 401).await;
    assert_problem(server.refresh(&t1.refresh).await, 401).await;
    assert_eq!(server.me_status(&t1.access).await, 401);
    assert_eq!(server.me_status(&t0.access).await, 401);

    // Garbage and well-shaped but unknown tokens are plain 401s.
    assert_problem(server.refresh("nonsense").await, 401).await;
    let fake = format!("{}.{}", "0".repeat(32), "A".repeat(43));
    assert_problem(server.refresh(&fake).await, 401).await;
}

async fn repeated_refresh_within_grace_gets_the_same_successor(backend: Backend) {
    let server = Server::start(backend);
    let t0 = server.signup(&email("tabs")).await;
    // Two tabs refresh at the same instant.
    let (a, b) = tokio::join!(server.refresh(&t0.refresh), server.refresh(&t0.refresh));
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    let a = Tokens::from(a.json::<Value>().await.unwrap());
    let b = Tokens::from(b.json::<Value>().await.unwrap());
    assert_eq!(a.refresh, b.refresh, "both tabs get the same successor");
    assert_eq!(server.me_status(&a.access).await, 200);
    assert_eq!(server.me_status(&b.access).await, 200);
    // The session lives on: the successor rotates normally.
    let r = server.refresh(&a.refresh).await;
    assert_eq!(r.status(), 200);
}

async fn logout_revokes_at_once(backend: Backend) {
    let server = Server::start(backend);
    let user = email("bye");
    let t = server.signup(&user).await;
    let other = server.relogin(&user).await;
    assert_eq!(server.me_status(&t.access).await, 200);
    let r = server.post_auth("/auth/logout", &t.access).await;
    assert_eq!(r.status(), 204);
    assert_problem(server.get_auth("/auth/me", &t.access).await, 401).await;
    assert_problem(server.refresh(&t.refresh).await, 401).await;
    assert_problem(server.post_auth("/auth/logout", &t.access).await, 401).await;
    // The user's other session is untouched.
    assert_eq!(server.me_status(&other.access).await, 200);
}

async fn logout_all_ends_every_session(backend: Backend) {
    let server = Server::start(backend);
    let user = email("all");
    let a = server.signup(&user).await;
    let b = server.relogin(&user).await;
    let stranger = server.signup(&email("stranger")).await;
    assert_eq!(
        server
            .post_auth("/auth/logout-all", &a.access)
            .await
            .status(),
        204
    );
    for t in [&a, &b] {
        assert_eq!(server.me_status(&t.access).await, 401);
        assert_eq!(server.refresh(&t.refresh).await.status(), 401);
    }
    assert_eq!(server.me_status(&stranger.access).await, 200);
    // Logging in again works.
    assert_eq!(server.login(&user, PASSWORD).await.status(), 200);
}

async fn password_change_ends_every_other_session(backend: Backend) {
    let server = Server::start(backend);
    let user = email("pw");
    let caller = server.signup(&user).await;
    let other = server.relogin(&user).await;
    let change = |current: &str, new: &str| {
        server
            .http
            .post(server.url("/auth/password"))
            .bearer_auth(&caller.access)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    assert_problem(
        change("not my password", "another good one").await.unwrap(),
        401,
    )
    .await;
    assert_problem(change(PASSWORD, "short").await.unwrap(), 422).await;
    let r = change(PASSWORD, "a brand new passphrase").await.unwrap();
    assert_eq!(r.status(), 200);
    let fresh = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(server.me_status(&fresh.access).await, 200);
    for t in [&caller, &other] {
        assert_eq!(server.me_status(&t.access).await, 401);
        assert_eq!(server.refresh(&t.refresh).await.status(), 401);
    }
    assert_eq!(server.login(&user, PASSWORD).await.status(), 401);
    assert_eq!(
        server.login(&user, "a brand new passphrase").await.status(),
        200
    );
}

async fn sessions_list_and_revoke(backend: Backend) {
    let server = Server::start(backend);
    let user = email("list");
    let a = server.signup(&user).await;
    let b = Tokens::from(
        server
            .http
            .post(server.url("/auth/login"))
            .header("user-agent", "second-device/1.0")
            .json(&json!({"email": user, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
    );
    let r = server.get_auth("/auth/sessions", &a.access).await;
    assert_eq!(r.status(), 200);
    let list: Vec<Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 2);
    for s in &list {
        for field in ["id", "created_at", "last_seen_at", "ip"] {
            assert!(s[field].is_string(), "{field} missing in {s}");
        }
        assert!(s.get("user_agent").is_some());
    }
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let b_sid = claims(&b.access).1["sid"].as_str().unwrap().to_owned();
    let b_entry = list.iter().find(|s| s["id"] == b_sid.as_str()).unwrap();
    assert_eq!(b_entry["user_agent"], "second-device/1.0");
    assert_eq!(b_entry["current"], false);

    // Another user cannot end it; the owner can.
    let stranger = server.signup(&email("other")).await;
    let delete = |token: &str, id: &str| {
        server
            .http
            .delete(server.url(&format!("/auth/sessions/{id}")))
            .bearer_auth(token)
            .send()
    };
    assert_problem(delete(&stranger.access, &b_sid).await.unwrap(), 404).await;
    assert_eq!(server.me_status(&b.access).await, 200);
    assert_eq!(delete(&a.access, &b_sid).await.unwrap().status(), 204);
    assert_eq!(server.me_status(&b.access).await, 401);
    assert_eq!(server.refresh(&b.refresh).await.status(), 401);
    assert_problem(delete(&a.access, &b_sid).await.unwrap(), 404).await;
    assert_problem(delete(&a.access, "nonexistent").await.unwrap(), 404).await;
    let list: Vec<Value> = server
        .get_auth("/auth/sessions", &a.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
}

async fn cookie_mode_and_csrf(backend: Backend) {
    let server = Server::start(backend);
    let user = email("browser");
    server.register(&user, PASSWORD).await;
    let origin = format!("http://{}", server.addr);
    let login = |origin: Option<&str>| {
        let mut req = server
            .http
            .post(server.url("/auth/login"))
            .header("x-auth-mode", "cookie")
            .json(&json!({"email": user, "password": PASSWORD}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    // Login CSRF: a foreign origin cannot log the browser in.
    assert_problem(login(Some("https://evil.example")).await.unwrap(), 403).await;

    let r = login(Some(&origin)).await.unwrap();
    assert_eq!(r.status(), 200);
    // Without cookies.domain every cookie is host-only; the refresh cookie is for /auth only.
    let set = set_cookies(r.headers());
    assert_token_cookies(&set, None, false);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    assert_eq!(body["token_type"], "Bearer");
    let cookies = browser_cookies(&set, "/auth/me");
    assert!(cookies.contains("gatehouse_refresh="), "{cookies}");
    assert!(!browser_cookies(&set, "/").contains("gatehouse_refresh="));

    let me = server
        .http
        .get(server.url("/auth/me"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // Cookie-authenticated writes need a same-site Origin.
    let post = |path: &str, origin: Option<&str>| {
        let mut req = server
            .http
            .post(server.url(path))
            .header("cookie", &cookies);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    assert_problem(post("/auth/logout", None).await.unwrap(), 403).await;
    assert_problem(
        post("/auth/logout", Some("https://evil.example"))
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_problem(
        post("/auth/refresh", Some("https://evil.example"))
            .await
            .unwrap(),
        403,
    )
    .await;

    // Refresh from the cookie sets new cookies.
    let r = post("/auth/refresh", Some(&origin)).await.unwrap();
    assert_eq!(r.status(), 200);
    let rotated = set_cookies(r.headers());
    assert_token_cookies(&rotated, None, false);
    let cookies = browser_cookies(&rotated, "/auth/logout");
    let r = server
        .http
        .post(server.url("/auth/logout"))
        .header("cookie", &cookies)
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_token_cookies(&set_cookies(r.headers()), None, true);
    let me = server
        .http
        .get(server.url("/auth/me"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_problem(me, 401).await;
}

async fn expired_access_token_is_refused(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_TOKENS__ACCESS_TTL", "1")
        .env("GATEHOUSE_TOKENS__LEEWAY", "0")
        .start();
    let t = server.signup(&email("short")).await;
    assert_eq!(server.me_status(&t.access).await, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let problem = assert_problem(server.get_auth("/auth/me", &t.access).await, 401).await;
    assert!(problem["detail"].as_str().unwrap().contains("expired"));
    // The refresh token still works and gives a fresh access token.
    let r = server.refresh(&t.refresh).await;
    assert_eq!(r.status(), 200);
    let fresh = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(server.me_status(&fresh.access).await, 200);
}

async fn state_survives_restart(backend: Backend) {
    let server = Server::start(backend);
    let user = email("durable");
    let kept = server.signup(&user).await;
    let ended = server.relogin(&user).await;
    assert_eq!(
        server
            .post_auth("/auth/logout", &ended.access)
            .await
            .status(),
        204
    );

    let server = server.restart();
    assert_eq!(
        server.me_status(&kept.access).await,
        200,
        "sessions survive"
    );
    assert_eq!(
        server.me_status(&ended.access).await,
        401,
        "revocations survive"
    );
    assert_eq!(server.refresh(&ended.refresh).await.status(), 401);
    assert_eq!(
        server.login(&user, PASSWORD).await.status(),
        200,
        "users survive"
    );
    let r = server.refresh(&kept.refresh).await;
    assert_eq!(r.status(), 200, "refresh tokens survive");
}

async fn health_and_readiness(backend: Backend) {
    let server = Server::start(backend);
    for path in ["/healthz", "/readyz"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    assert_problem(
        server.http.get(server.url("/nope")).send().await.unwrap(),
        404,
    )
    .await;
    let r = server
        .http
        .delete(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    assert_problem(r, 405).await;
}

async fn logs_hold_no_secrets(backend: Backend) {
    let secret = "a-test-secret-that-is-long-enough-0123456789";
    let server = Server::builder(backend).env("JWT_SECRET", secret).start();
    let t = server.signup(&email("quiet")).await;
    server.login(&email("nobody"), "wrong password").await;
    server.refresh(&t.refresh).await;
    server.post_auth("/auth/logout", &t.access).await;
    let logs = server.logs();
    assert!(
        logs.contains("login_ok"),
        "audit events are logged:\n{logs}"
    );
    for secret_text in [secret, PASSWORD, "wrong password", &t.access, &t.refresh] {
        assert!(
            !logs.contains(secret_text),
            "logs contain {secret_text:?}:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashes_are_upgraded_on_login() {
    let mut server = Server::start(Backend::Embedded);
    let user = email("upgrade");
    assert_eq!(server.register(&user, PASSWORD).await.status(), 201);
    let dir = server.data_dir.clone();
    server.stop();

    let stored_hash = |dir: &std::path::Path| {
        let db = redb::Database::open(dir.join("gatehouse.redb")).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let users: redb::ReadOnlyTable<u128, &[u8]> =
            txn.open_table(redb::TableDefinition::new("users")).unwrap();
        let (_, value) = redb::ReadableTable::iter(&users)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let user: Value = serde_json::from_slice(value.value()).unwrap();
        user["password_hash"].as_str().unwrap().to_owned()
    };
    assert!(stored_hash(&dir).contains("m=256,t=1,p=1"));

    let mut server = Server::builder(Backend::Embedded)
        .data_dir(&dir)
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "512")
        .start();
    assert_eq!(server.login(&user, PASSWORD).await.status(), 200);
    server.stop();
    assert!(stored_hash(&dir).contains("m=512,t=1,p=1"));

    let server = Server::builder(Backend::Embedded)
        .data_dir(&dir)
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "512")
        .start();
    assert_eq!(server.login(&user, PASSWORD).await.status(), 200);
}
