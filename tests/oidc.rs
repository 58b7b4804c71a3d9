//! The OpenID Connect provider over real HTTP, on both backends: the code flow through the
//! login page and the consent page, the token endpoint's grants and client authentication,
//! userinfo, refresh with reuse detection, revocation, introspection, RP-initiated logout,
//! grants as gatehouse sessions, and every RFC 6749 error of the issue. (Third-party
//! relying parties drive the provider in tests/oidc_rp.rs.)

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, PASSWORD, Server, email};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SECRET: &str = "app-secret-0123456789abcdef";
const CB: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A server whose `public_url` is its own address, with four clients.
fn start(backend: Backend) -> (Server, tempfile::TempDir) {
    start_with(backend, &[])
}

fn start_with(backend: Backend, env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[[oidc.clients]]
id = "app"
name = "The App"
secret = "{SECRET}"
redirect_uris = ["{CB}"]
post_logout_redirect_uris = ["http://127.0.0.1:9/bye"]
[[oidc.clients]]
id = "spa"
redirect_uris = ["{CB}"]
consent = "implicit"
scopes = ["openid", "email"]
[[oidc.clients]]
id = "media"
secret = "{SECRET}"
redirect_uris = ["{CB}"]
consent = "implicit"
groups = ["media"]
[[oidc.clients]]
id = "edwards"
secret = "{SECRET}"
redirect_uris = ["{CB}"]
consent = "implicit"
id_token_signing_alg = "EdDSA"
"#
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut builder = Server::builder(backend)
        .env("GATEHOUSE_CONFIG", &path.display().to_string())
        .env("GATEHOUSE_LISTEN", &format!("127.0.0.1:{port}"));
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    (builder.start(), dir)
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

/// The access cookie a form login sets.
async fn browser_login(server: &Server, who: &str) -> String {
    let r = server
        .http
        .post(server.url("/login"))
        .header("origin", &server.base)
        .form(&[("email", who), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    cookie_of(r.headers(), "gatehouse_access").expect("access cookie")
}

fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

fn query_of(location: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An authorization request of `client` with PKCE; `extra` adds or replaces parameters
/// (an empty value leaves the parameter out).
fn authorize_url(server: &Server, client: &str, extra: &[(&str, &str)]) -> String {
    let challenge = challenge();
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", client),
        ("redirect_uri", CB),
        ("response_type", "code"),
        ("scope", "openid email profile groups offline_access"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        match params.iter_mut().find(|(name, _)| name == k) {
            Some(p) => p.1 = v,
            None => params.push((k, v)),
        }
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    server.url(&format!("/oidc/authorize?{}", q.finish()))
}

async fn authorize(server: &Server, url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = server.http.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// Through the consent page (when shown) to the code.
async fn code_for(server: &Server, client: &str, cookie: &str, extra: &[(&str, &str)]) -> String {
    let url = authorize_url(server, client, extra);
    let mut r = authorize(server, &url, Some(cookie)).await;
    if r.status() == 200 {
        let page = r.text().await.unwrap();
        assert!(page.contains("value=\"allow\""), "{page}");
        let fields: Vec<(String, String)> = url::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .chain([("decision".to_owned(), "allow".to_owned())])
            .collect();
        r = server
            .http
            .post(server.url("/oidc/authorize"))
            .header("cookie", cookie)
            .header("origin", &server.base)
            .form(&fields)
            .send()
            .await
            .unwrap();
    }
    assert!(matches!(r.status().as_u16(), 302 | 303), "{:?}", r.status());
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(CB), "{location}");
    let q = query_of(&location);
    assert_eq!(get(&q, "state"), Some("st-1"));
    assert_eq!(get(&q, "iss"), Some(server.base.as_str()));
    get(&q, "code")
        .unwrap_or_else(|| panic!("no code: {location}"))
        .to_owned()
}

async fn token(
    server: &Server,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = server.http.post(server.url("/oidc/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

async fn exchange(server: &Server, client: &str, code: &str) -> reqwest::Response {
    token(
        server,
        Some((client, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header_of(jwt: &str) -> Value {
    let head = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

async fn userinfo(server: &Server, access: &str) -> reqwest::Response {
    server
        .http
        .get(server.url("/oidc/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

async fn oauth_error(r: reqwest::Response, status: u16, error: &str) {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

async fn code_flow_end_to_end(backend: Backend) {
    let (server, _dir) = start(backend);
    let ada = email("ada");
    let first_party = server.signup(&ada).await;

    // Discovery names everything an RP needs.
    let d: Value = server
        .http
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], server.base.as_str());
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        assert!(d[key].as_str().unwrap().starts_with(&server.base), "{key}");
    }

    // Without a session: to the login page and back.
    let url = authorize_url(&server, "app", &[]);
    let r = authorize(&server, &url, None).await;
    assert_eq!(r.status(), 302);
    let login = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        login.starts_with(&format!("{}/login?rd=", server.base)),
        "{login}"
    );
    let rd = get(&query_of(&login), "rd").unwrap().to_owned();
    assert!(
        rd.starts_with(&format!("{}/oidc/authorize?", server.base)),
        "{rd}"
    );
    let r = server
        .http
        .post(server.url("/login"))
        .header("origin", &server.base)
        .form(&[
            ("email", ada.as_str()),
            ("password", PASSWORD),
            ("rd", rd.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION].to_str().unwrap(), rd);
    let cookie = cookie_of(r.headers(), "gatehouse_access").unwrap();

    // Consent: shown once, denied → access_denied; allowed → a code; then remembered.
    let r = authorize(&server, &rd, Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("The App") && page.contains("your email address"),
        "{page}"
    );
    let mut deny: Vec<(String, String)> = query_of(&rd);
    deny.push(("decision".into(), "deny".into()));
    let r = server
        .http
        .post(server.url("/oidc/authorize"))
        .header("cookie", &cookie)
        .header("origin", &server.base)
        .form(&deny)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let q = query_of(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!(get(&q, "error"), Some("access_denied"));
    assert_eq!(get(&q, "state"), Some("st-1"));
    // A consent answer from another site is refused.
    let r = server
        .http
        .post(server.url("/oidc/authorize"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&deny)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let code = code_for(&server, "app", &cookie, &[]).await;
    let r = authorize(&server, &authorize_url(&server, "app", &[]), Some(&cookie)).await;
    assert_eq!(r.status(), 302, "consent is remembered");

    // The exchange.
    let r = exchange(&server, "app", &code).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    let id = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(header_of(t["id_token"].as_str().unwrap())["alg"], "RS256");
    assert_eq!(id["iss"], server.base.as_str());
    assert_eq!(id["aud"], "app");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email"], ada.as_str());
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id["groups"], serde_json::json!([]));
    assert!(id["auth_time"].as_u64().unwrap() > 0);
    assert_eq!(id["sub"], claims_of(&first_party.access)["sub"]);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();

    // The id_token's key is published under its kid.
    let jwks: Value = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header_of(t["id_token"].as_str().unwrap())["kid"].clone();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid && k["kty"] == "RSA")
    );

    // Userinfo; the RP's token is no gatehouse token, and gatehouse's is no RP token.
    let info: Value = userinfo(&server, &access).await.json().await.unwrap();
    assert_eq!(info["email"], ada.as_str());
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(server.me_status(&access).await, 401);
    assert_eq!(userinfo(&server, &first_party.access).await.status(), 401);
    let r = server
        .http
        .post(server.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "an RP's refresh token buys no gatehouse session"
    );

    // The grant is listed with the user's sessions.
    let list: Value = server
        .get_auth("/auth/sessions", &first_party.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");

    // Refresh rotates; the old token is reuse and ends the grant.
    let form = |rt: &str| {
        [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt.to_owned()),
        ]
    };
    let r = server
        .http
        .post(server.url("/oidc/token"))
        .basic_auth("app", Some(SECRET))
        .form(&form(&refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    let refresh2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert!(
        claims_of(t2["id_token"].as_str().unwrap())
            .get("nonce")
            .is_none()
    );
    // Another client cannot use it.
    let r = server
        .http
        .post(server.url("/oidc/token"))
        .basic_auth("media", Some(SECRET))
        .form(&form(&refresh2))
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_grant").await;
    // Introspection by the client it was issued to.
    let intro: Value = server
        .http
        .post(server.url("/oidc/introspect"))
        .basic_auth("app", Some(SECRET))
        .form(&[("token", t2["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro["active"], true);
    assert_eq!(intro["client_id"], "app");
    let other: Value = server
        .http
        .post(server.url("/oidc/introspect"))
        .basic_auth("media", Some(SECRET))
        .form(&[("token", t2["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["active"], false);
    // Reuse of the first refresh token (grace is 10 s: it answers the same successor).
    let r = server
        .http
        .post(server.url("/oidc/token"))
        .basic_auth("app", Some(SECRET))
        .form(&form(&refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["refresh_token"], refresh2.as_str());
    // Rotate once more: the first token is now reuse.
    let r = server
        .http
        .post(server.url("/oidc/token"))
        .basic_auth("app", Some(SECRET))
        .form(&form(&refresh2))
        .send()
        .await
        .unwrap();
    let t3: Value = r.json().await.unwrap();
    let r = server
        .http
        .post(server.url("/oidc/token"))
        .basic_auth("app", Some(SECRET))
        .form(&form(&refresh))
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(
        userinfo(&server, t3["access_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "reuse ended the grant"
    );

    // Code reuse: invalid_grant, and what the first use issued is revoked.
    let code = code_for(&server, "app", &cookie, &[]).await;
    let first: Value = exchange(&server, "app", &code).await.json().await.unwrap();
    let a = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, a).await.status(), 200);
    oauth_error(exchange(&server, "app", &code).await, 400, "invalid_grant").await;
    assert_eq!(userinfo(&server, a).await.status(), 401);
    let r = server
        .http
        .post(server.url("/oidc/token"))
        .basic_auth("app", Some(SECRET))
        .form(&form(first["refresh_token"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_grant").await;

    // Revocation (RFC 7009) of an access token ends its grant.
    let code = code_for(&server, "app", &cookie, &[]).await;
    let t: Value = exchange(&server, "app", &code).await.json().await.unwrap();
    let a = t["access_token"].as_str().unwrap();
    let r = server
        .http
        .post(server.url("/oidc/revoke"))
        .basic_auth("app", Some(SECRET))
        .form(&[("token", a)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(userinfo(&server, a).await.status(), 401);

    // Ending the grant from the session list withdraws the consent: the app asks again.
    let code = code_for(&server, "app", &cookie, &[]).await;
    let t: Value = exchange(&server, "app", &code).await.json().await.unwrap();
    let list: Value = server
        .get_auth("/auth/sessions", &first_party.access)
        .await
        .json()
        .await
        .unwrap();
    let grant = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["client_id"] == "app")
        .unwrap_or_else(|| panic!("{list}"));
    let r = server
        .http
        .delete(server.url(&format!("/auth/sessions/{}", grant["id"].as_str().unwrap())))
        .bearer_auth(&first_party.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let r = authorize(&server, &authorize_url(&server, "app", &[]), Some(&cookie)).await;
    assert_eq!(r.status(), 200, "the consent page again");

    // Logout-all ends every grant at once.
    let code = code_for(&server, "app", &cookie, &[]).await;
    let t: Value = exchange(&server, "app", &code).await.json().await.unwrap();
    let a = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, a).await.status(), 200);
    assert_eq!(
        server
            .post_auth("/auth/logout-all", &first_party.access)
            .await
            .status(),
        204
    );
    assert_eq!(userinfo(&server, a).await.status(), 401);
    let r = server
        .http
        .post(server.url("/oidc/token"))
        .basic_auth("app", Some(SECRET))
        .form(&form(t["refresh_token"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_grant").await;
}

async fn public_clients_groups_and_logout(backend: Backend) {
    let (server, _dir) = start(backend);
    let bo = email("bo");
    server.signup(&bo).await;
    let cookie = browser_login(&server, &bo).await;

    // A public client: PKCE required, no secret, implicit consent, only its scopes.
    let spa = |extra: &[(&str, &str)]| {
        let mut all = vec![("scope", "openid email")];
        all.extend_from_slice(extra);
        authorize_url(&server, "spa", &all)
    };
    let r = authorize(
        &server,
        &spa(&[("code_challenge", ""), ("code_challenge_method", "")]),
        Some(&cookie),
    )
    .await;
    let q = query_of(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!(get(&q, "error"), Some("invalid_request"));
    let r = authorize(
        &server,
        &spa(&[("code_challenge_method", "plain")]),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        get(&query_of(r.headers()[LOCATION].to_str().unwrap()), "error"),
        Some("invalid_request")
    );
    // A parameter sent twice: refused on a page.
    let r = authorize(&server, &format!("{}&state=again", spa(&[])), Some(&cookie)).await;
    assert_eq!(r.status(), 400);
    let r = authorize(&server, &spa(&[]), Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    let code = get(&query_of(r.headers()[LOCATION].to_str().unwrap()), "code")
        .unwrap()
        .to_owned();
    // Wrong verifier, then missing verifier: invalid_grant.
    let bad = token(
        &server,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", "spa"),
            ("code_verifier", &"x".repeat(43)),
        ],
    )
    .await;
    oauth_error(bad, 400, "invalid_grant").await;
    let r = authorize(&server, &spa(&[]), Some(&cookie)).await;
    let code = get(&query_of(r.headers()[LOCATION].to_str().unwrap()), "code")
        .unwrap()
        .to_owned();
    let missing = token(
        &server,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", "spa"),
        ],
    )
    .await;
    oauth_error(missing, 400, "invalid_grant").await;
    // And the right one works, without a secret.
    let r = authorize(&server, &spa(&[]), Some(&cookie)).await;
    let code = get(&query_of(r.headers()[LOCATION].to_str().unwrap()), "code")
        .unwrap()
        .to_owned();
    let ok = token(
        &server,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", "spa"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(ok.status(), 200);
    let t: Value = ok.json().await.unwrap();
    assert!(
        t.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    // A scope the client may not ask for.
    let r = authorize(&server, &authorize_url(&server, "spa", &[]), Some(&cookie)).await;
    let q = query_of(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!(get(&q, "error"), Some("invalid_scope"));
    assert_eq!(get(&q, "iss"), Some(server.base.as_str()));

    // Outside the client's groups: access_denied; inside: a code.
    let r = authorize(
        &server,
        &authorize_url(&server, "media", &[]),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        get(&query_of(r.headers()[LOCATION].to_str().unwrap()), "error"),
        Some("access_denied")
    );
    let out = server.cli(&["group", "add", "media"], "");
    assert!(out.status.success());
    let out = server.cli(&["group", "add-member", "media", &bo], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = code_for(&server, "media", &cookie, &[]).await;
    let t: Value = exchange(&server, "media", &code)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims_of(t["id_token"].as_str().unwrap())["groups"],
        serde_json::json!(["media"])
    );

    // EdDSA id_tokens for the client that asks for them, published too.
    let code = code_for(&server, "edwards", &cookie, &[]).await;
    let t: Value = exchange(&server, "edwards", &code)
        .await
        .json()
        .await
        .unwrap();
    let id_token = t["id_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&id_token)["alg"], "EdDSA");

    // Bad client authentication: unknown client, wrong secret, two methods at once.
    oauth_error(
        token(
            &server,
            Some(("nobody", SECRET)),
            &[("grant_type", "authorization_code"), ("code", "x")],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    let r = token(
        &server,
        Some(("app", "wrong-secret-0123456789")),
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await;
    assert!(r.headers().contains_key("www-authenticate"));
    oauth_error(r, 401, "invalid_client").await;
    oauth_error(
        token(
            &server,
            Some(("app", SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("client_secret", SECRET),
            ],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    oauth_error(
        token(
            &server,
            Some(("app", SECRET)),
            &[("grant_type", "password")],
        )
        .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        token(
            &server,
            Some(("app", SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", CB),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    // client_secret_post works too.
    oauth_error(
        token(
            &server,
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("client_id", "app"),
                ("client_secret", SECRET),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;

    // Error page, never a redirect: unknown client, unregistered redirect URI.
    for url in [
        authorize_url(&server, "nobody", &[]),
        authorize_url(&server, "app", &[]).replace("127.0.0.1%3A9%2Fcb", "evil.example%2Fcb"),
    ] {
        let r = authorize(&server, &url, Some(&cookie)).await;
        assert_eq!(r.status(), 400, "{url}");
        assert!(r.headers().get(LOCATION).is_none());
    }
    // Unsupported response type, with state and iss.
    let r = authorize(
        &server,
        &authorize_url(&server, "app", &[]).replace("response_type=code", "response_type=token"),
        Some(&cookie),
    )
    .await;
    let q = query_of(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!(get(&q, "error"), Some("unsupported_response_type"));
    assert_eq!(get(&q, "state"), Some("st-1"));
    // prompt=none without a session; prompt=login forces the login page even when signed in.
    let r = authorize(
        &server,
        &authorize_url(&server, "app", &[("prompt", "none")]),
        None,
    )
    .await;
    assert_eq!(
        get(&query_of(r.headers()[LOCATION].to_str().unwrap()), "error"),
        Some("login_required")
    );
    let r = authorize(
        &server,
        &authorize_url(&server, "edwards", &[("prompt", "login")]),
        Some(&cookie),
    )
    .await;
    let login = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        login.contains("/login?rd=") && login.contains("prompt=login"),
        "{login}"
    );
    let page = server
        .http
        .get(&login)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("type=\"password\""),
        "the form, although signed in"
    );

    // RP-initiated logout with id_token_hint: the browser session ends, back with state.
    let r = server
        .http
        .get(server.url(&format!(
            "/oidc/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye-1",
            form_urlencoded::byte_serialize(b"http://127.0.0.1:9/bye").collect::<String>()
        )))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "edwards registered no post-logout URI");
    let code = code_for(&server, "app", &cookie, &[]).await;
    let t: Value = exchange(&server, "app", &code).await.json().await.unwrap();
    let r = server
        .http
        .get(server.url(&format!(
            "/oidc/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye-1",
            t["id_token"].as_str().unwrap(),
            form_urlencoded::byte_serialize(b"http://127.0.0.1:9/bye").collect::<String>()
        )))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()[LOCATION], "http://127.0.0.1:9/bye?state=bye-1");
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let r = authorize(&server, &authorize_url(&server, "app", &[]), Some(&cookie)).await;
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .contains("/login?rd="),
        "signed out"
    );
    // Without a hint: a confirmation page first.
    let r = server
        .http
        .get(server.url("/oidc/logout?client_id=app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Sign out"));
}

/// The provider is off without clients: its paths are 404, the JWKS stays empty (HS256).
#[tokio::test]
async fn off_without_clients() {
    let server = Server::start(Backend::Embedded);
    for path in [
        "/.well-known/openid-configuration",
        "/oidc/authorize",
        "/oidc/userinfo",
    ] {
        assert_eq!(
            server
                .http
                .get(server.url(path))
                .send()
                .await
                .unwrap()
                .status(),
            404,
            "{path}"
        );
    }
    let jwks: Value = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"], serde_json::json!([]));
}

/// A code lives `oidc.code_ttl` seconds; `max_age` asks for a sign-in that recent, and a
/// fresh one satisfies it.
async fn expired_codes_and_max_age(backend: Backend) {
    let (server, _dir) = start_with(backend, &[("GATEHOUSE_OIDC__CODE_TTL", "1")]);
    let cy = email("cy");
    server.signup(&cy).await;
    let cookie = browser_login(&server, &cy).await;
    let code = code_for(&server, "edwards", &cookie, &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    oauth_error(
        exchange(&server, "edwards", &code).await,
        400,
        "invalid_grant",
    )
    .await;

    // Signed in more than 1 s ago: max_age=1 sends the browser to sign in again...
    let url = authorize_url(&server, "edwards", &[("max_age", "1")]);
    let r = authorize(&server, &url, Some(&cookie)).await;
    let login = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(login.contains("prompt=login"), "{login}");
    let rd = get(&query_of(&login), "rd").unwrap().to_owned();
    // ...and after that sign-in the same request is answered with a code.
    let r = server
        .http
        .post(server.url("/login"))
        .header("origin", &server.base)
        .form(&[
            ("email", cy.as_str()),
            ("password", PASSWORD),
            ("rd", rd.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let fresh = cookie_of(r.headers(), "gatehouse_access").unwrap();
    let r = authorize(&server, &rd, Some(&fresh)).await;
    let q = query_of(r.headers()[LOCATION].to_str().unwrap());
    let code = get(&q, "code")
        .unwrap_or_else(|| panic!("{q:?}"))
        .to_owned();
    let t: Value = exchange(&server, "edwards", &code)
        .await
        .json()
        .await
        .unwrap();
    let id = claims_of(t["id_token"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - id["auth_time"].as_u64().unwrap() <= 2, "{id}");
    // prompt=none with a sign-in too old: login_required, not a page.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let url = authorize_url(&server, "edwards", &[("max_age", "1"), ("prompt", "none")]);
    let r = authorize(&server, &url, Some(&fresh)).await;
    let q = query_of(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!(get(&q, "error"), Some("login_required"));
    // The marker that a fresh sign-in is met by cannot be written by hand: a forged
    // `login_after` still sends the browser to sign in.
    for forged in ["0", "eyJhbGciOiJIUzI1NiJ9.eyJpYXQiOjB9.x"] {
        let url = authorize_url(
            &server,
            "edwards",
            &[("max_age", "1"), ("login_after", forged)],
        );
        let r = authorize(&server, &url, Some(&fresh)).await;
        let location = r.headers()[LOCATION].to_str().unwrap();
        assert!(location.contains("/login?rd="), "{forged}: {location}");
    }
}

backend_tests!(
    code_flow_end_to_end,
    public_clients_groups_and_logout,
    expired_codes_and_max_age,
    account_page_revokes_an_app,
    grants_are_capped_and_racing_codes_leave_no_grant
);

/// Grants count against `sessions.max_per_user` like sign-ins: beyond it the oldest grant
/// ends, before any of the user's own sessions. Two uses of one code at the same time give
/// tokens at most once, and those are dead by the time both have answered.
async fn grants_are_capped_and_racing_codes_leave_no_grant(backend: Backend) {
    let (server, _dir) = start_with(backend, &[("GATEHOUSE_SESSIONS__MAX_PER_USER", "4")]);
    let ivy = email("ivy");
    let own = server.signup(&ivy).await;
    let cookie = browser_login(&server, &ivy).await;
    let mut grants = Vec::new();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // distinct created_at
        }
        let code = code_for(&server, "app", &cookie, &[]).await;
        let r = exchange(&server, "app", &code).await;
        assert_eq!(r.status(), 200);
        let t: Value = r.json().await.unwrap();
        grants.push(t["access_token"].as_str().unwrap().to_owned());
    }
    // Two sign-ins and three grants against a cap of four: the first grant ended.
    for (i, access) in grants.iter().enumerate() {
        let expected = if i == 0 { 401 } else { 200 };
        assert_eq!(
            userinfo(&server, access).await.status(),
            expected,
            "grant {i}"
        );
    }
    assert_eq!(server.me_status(&own.access).await, 200);
    let listed: Vec<Value> = server
        .get_auth("/auth/sessions", &own.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    let browser = cookie.split_once('=').unwrap().1;
    assert_eq!(
        server.me_status(browser).await,
        200,
        "the browser's session"
    );

    let jay = email("jay");
    let own = server.signup(&jay).await;
    let cookie = browser_login(&server, &jay).await;
    for _ in 0..5 {
        let code = code_for(&server, "app", &cookie, &[]).await;
        let (a, b) = tokio::join!(
            exchange(&server, "app", &code),
            exchange(&server, "app", &code)
        );
        let mut issued = 0;
        for r in [a, b] {
            if r.status() == 200 {
                issued += 1;
                let t: Value = r.json().await.unwrap();
                let access = t["access_token"].as_str().unwrap();
                assert_eq!(userinfo(&server, access).await.status(), 401);
            } else {
                oauth_error(r, 400, "invalid_grant").await;
            }
        }
        assert!(issued <= 1, "one code, tokens twice");
    }
    // The grants of the codes used twice are gone from the list too.
    let listed: Vec<Value> = server
        .get_auth("/auth/sessions", &own.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
}

/// `gatehouse client secret` makes a secret and its argon2id hash; a client configured with
/// the hash authenticates with the secret (the hash is checked once, then remembered), and
/// `client list` shows it.
#[tokio::test]
async fn hashed_client_secrets_from_the_cli() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["client", "secret"])
        .env_clear()
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
        .env("GATEHOUSE_ARGON2__ITERATIONS", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned();
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix("hash:   "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(hash.starts_with("$argon2id$"), "{text}");
    assert_eq!(secret.len(), 43);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "public_url = \"http://127.0.0.1:9\"\n[[oidc.clients]]\nid = \"hashed\"\nsecret = \"{hash}\"\nredirect_uris = [\"{CB}\"]\n"
        ),
    )
    .unwrap();
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_CONFIG", &path.display().to_string())
        .start();
    let list = server.cli(&["client", "list"], "");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("hashed") && list.contains("secret-hash"),
        "{list}"
    );
    for _ in 0..3 {
        // The client authenticated (the code is what is wrong).
        let r = token(
            &server,
            Some(("hashed", &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", CB),
            ],
        )
        .await;
        oauth_error(r, 400, "invalid_grant").await;
    }
    // One argon2 verification for the three requests: the first, then the remembered digest.
    let hashes = || async {
        common::metric_sample(
            &server.metrics_text().await,
            "gatehouse_argon2_wait_seconds_count",
        )
    };
    assert_eq!(hashes().await, Some(1.0));
    let r = token(
        &server,
        Some(("hashed", "not-the-secret-at-all-0123")),
        &[("grant_type", "authorization_code"), ("code", "nope")],
    )
    .await;
    oauth_error(r, 401, "invalid_client").await;
    // A bad config is refused by check-config with the key named.
    std::fs::write(&path, "public_url = \"http://127.0.0.1:9\"\n[[oidc.clients]]\nid = \"x\"\nredirect_uris = [\"http://lan.example/cb\"]\n").unwrap();
    let out = server.cli(&["check-config"], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("oidc.clients") && err.contains("loopback"),
        "{err}"
    );
}

/// Two nodes sharing Redis and the id_token key: a code made on one is exchanged on the
/// other, userinfo answers on both, and logout-all on one ends the grant everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_work_across_nodes_sharing_redis() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let (a, dir_a) = start_with(
        backend.clone(),
        &[("JWT_SECRET", "shared-secret-0123456789abcdef0123456789")],
    );
    let key = a.data_dir.join("signing_key_rsa.pem");
    assert!(key.exists());
    // Node B: the same issuer (behind one name), its own address, A's key file.
    let text = std::fs::read_to_string(dir_a.path().join("config.toml")).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let path_b = dir_b.path().join("config.toml");
    std::fs::write(
        &path_b,
        text.replacen(
            "[[oidc.clients]]",
            &format!(
                "[oidc]\nprivate_keys = [\"{}\"]\n[[oidc.clients]]",
                key.display()
            ),
            1,
        )
        .replacen("listen = ", "# listen = ", 1),
    )
    .unwrap();
    let b = Server::builder(backend)
        .env("GATEHOUSE_CONFIG", &path_b.display().to_string())
        .env("JWT_SECRET", "shared-secret-0123456789abcdef0123456789")
        .start();
    let dee = email("dee");
    let first_party = a.signup(&dee).await;
    let cookie = browser_login(&a, &dee).await;
    let code = code_for(&a, "edwards", &cookie, &[]).await;
    let r = exchange(&b, "edwards", &code).await;
    assert_eq!(
        r.status(),
        200,
        "a code made on one node is good on another"
    );
    let t: Value = r.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&a, access).await.status(), 200);
    assert_eq!(userinfo(&b, access).await.status(), 200);
    // RS256 now, so both nodes publish the key that signed it.
    let code = code_for(&a, "app", &cookie, &[]).await;
    let t2: Value = exchange(&b, "app", &code).await.json().await.unwrap();
    let kid = header_of(t2["id_token"].as_str().unwrap())["kid"].clone();
    for node in [&a, &b] {
        let jwks: Value = node
            .http
            .get(node.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid)
        );
    }
    assert_eq!(
        a.post_auth("/auth/logout-all", &first_party.access)
            .await
            .status(),
        204
    );
    assert_eq!(userinfo(&b, access).await.status(), 401);
    assert_eq!(
        userinfo(&b, t2["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

/// The account page lists the apps the user allowed and revokes one: its grants end and it
/// must ask for consent again.
async fn account_page_revokes_an_app(backend: Backend) {
    let (server, _dir) = start(backend);
    let eve = email("eve");
    server.signup(&eve).await;
    let cookie = browser_login(&server, &eve).await;
    let code = code_for(&server, "app", &cookie, &[]).await;
    let t: Value = exchange(&server, "app", &code).await.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap();
    let page = server
        .http
        .get(server.url("/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Connected apps") && page.contains("Revoke The App"),
        "{page}"
    );
    assert!(
        page.contains("The App (app)"),
        "the grant's session names its app: {page}"
    );
    // From another site: refused.
    let r = server
        .http
        .post(server.url("/account"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("action", "revoke_app"), ("id", "app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(userinfo(&server, access).await.status(), 200);
    let r = server
        .http
        .post(server.url("/account"))
        .header("cookie", &cookie)
        .header("origin", &server.base)
        .form(&[("action", "revoke_app"), ("id", "app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("revoked") && !page.contains("Revoke The App"),
        "{page}"
    );
    assert_eq!(userinfo(&server, access).await.status(), 401);
    let r = authorize(&server, &authorize_url(&server, "app", &[]), Some(&cookie)).await;
    assert_eq!(r.status(), 200, "the consent page again");
    // Without SMTP the page says how the email changes instead of offering a form.
    let page = server
        .http
        .get(server.url("/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("This server sends no mail"), "{page}");
}
