//! Hostile and malformed input over real HTTP: bad JSON bodies on every JSON endpoint,
//! oversized bodies (with and without Content-Length), forged and malformed access tokens,
//! unknown paths, wrong methods and oversized headers. Every answer must be the documented
//! 4xx problem, never a 5xx.

mod common;
use common::*;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

backend_tests!(
    json_endpoints_reject_bad_bodies,
    refresh_with_empty_json_body_is_400,
    chunked_body_over_limit_is_413,
    oversized_body_leaves_connection_usable,
    forged_and_malformed_tokens_get_401,
    unknown_path_wrong_method_and_huge_headers,
);

/// The secret the token tests start the server with: 40 bytes, so tokens can be forged.
const SECRET: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
/// Another secret of the same length, which the server does not know.
const OTHER_SECRET: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxw";
/// The case that `refresh_with_empty_json_body_is_400` covers for `/auth/refresh`.
const EMPTY_JSON: &str = "empty body with a JSON content type";
/// 100 KiB: over the default `limits.max_body` of 64 KiB.
const BIG: usize = 100 * 1024;

/// Sends a request and asserts that the server did not answer with a 5xx.
async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    let response = request.send().await.expect("request");
    assert!(
        response.status().as_u16() < 500,
        "server error {} for a bad request",
        response.status()
    );
    response
}

/// A JSON endpoint and a well-formed body for it (valid JSON, right types), so that each
/// failure below is caused by the one thing the case changes.
struct Endpoint {
    path: &'static str,
    /// Sent as `Authorization: Bearer`, for endpoints that need a signed-in caller.
    bearer: Option<String>,
    valid_body: Value,
    wrong_types: Value,
}

/// One malformed request: how to build it, and the status it must get.
struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn cases(endpoint: &Endpoint) -> Vec<Case> {
    let valid = serde_json::to_vec(&endpoint.valid_body).unwrap();
    // A syntactically valid JSON object of 100 KiB, so 413 cannot be a parse error.
    let big = serde_json::to_vec(&json!({ "email": "a".repeat(BIG) })).unwrap();
    assert!(big.len() > BIG);
    let json_ct = Some("application/json");
    vec![
        Case {
            name: "malformed JSON",
            content_type: json_ct,
            body: br#"{"email":"#.to_vec(),
            status: 400,
        },
        Case {
            name: "wrong field types",
            content_type: json_ct,
            body: serde_json::to_vec(&endpoint.wrong_types).unwrap(),
            status: 400,
        },
        Case {
            name: "foreign fields of wrong types",
            content_type: json_ct,
            body: br#"{"email":5,"password":true}"#.to_vec(),
            status: 400,
        },
        Case {
            name: "a JSON array",
            content_type: json_ct,
            body: serde_json::to_vec(&json!([endpoint.valid_body])).unwrap(),
            status: 400,
        },
        Case {
            name: "a JSON string",
            content_type: json_ct,
            body: br#""hello""#.to_vec(),
            status: 400,
        },
        Case {
            name: EMPTY_JSON,
            content_type: json_ct,
            body: Vec::new(),
            status: 400,
        },
        Case {
            name: "missing content type",
            content_type: None,
            body: valid.clone(),
            status: 415,
        },
        Case {
            name: "text/plain content type",
            content_type: Some("text/plain"),
            body: valid.clone(),
            status: 415,
        },
        Case {
            name: "form content type",
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"email=a%40example.org&password=x".to_vec(),
            status: 415,
        },
        Case {
            name: "100 KiB body",
            content_type: json_ct,
            body: big,
            status: 413,
        },
    ]
}

async fn json_endpoints_reject_bad_bodies(backend: Backend) {
    let server = Server::start(backend);
    let user = email("badbody");
    let tokens = server.signup(&user).await;
    let fresh = email("fresh");

    let endpoints = [
        Endpoint {
            path: "/auth/register",
            bearer: None,
            valid_body: json!({"email": fresh, "password": PASSWORD}),
            wrong_types: json!({"email": 5, "password": true}),
        },
        Endpoint {
            path: "/auth/login",
            bearer: None,
            valid_body: json!({"email": user, "password": PASSWORD}),
            wrong_types: json!({"email": ["a"], "password": {"x": 1}}),
        },
        Endpoint {
            path: "/auth/refresh",
            bearer: None,
            valid_body: json!({"refresh_token": tokens.refresh}),
            wrong_types: json!({"refresh_token": 5}),
        },
        Endpoint {
            path: "/auth/password",
            bearer: Some(tokens.access.clone()),
            valid_body: json!({"current_password": PASSWORD, "new_password": "another good password"}),
            wrong_types: json!({"current_password": 5, "new_password": false}),
        },
    ];

    // A 413 may be sent before the body is read, after which the server closes the
    // connection; a fresh connection per case keeps one case from disturbing the next
    // (`oversized_body_leaves_connection_usable` covers connection reuse).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for endpoint in &endpoints {
        for case in cases(endpoint) {
            if endpoint.path == "/auth/refresh" && case.name == EMPTY_JSON {
                // Its own test below, so that the rest of this table stays meaningful.
                continue;
            }
            let mut request = client
                .post(server.url(endpoint.path))
                .body(case.body.clone());
            if let Some(ct) = case.content_type {
                request = request.header("content-type", ct);
            }
            if let Some(token) = &endpoint.bearer {
                request = request.bearer_auth(token);
            }
            let response = send(request).await;
            let got = response.status().as_u16();
            assert_eq!(
                got, case.status,
                "{} {}: expected {}, got {got}",
                endpoint.path, case.name, case.status
            );
            let problem = assert_problem(response, case.status).await;
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(
                !detail.is_empty() && !detail.contains("panicked"),
                "{} {}: detail {detail:?}",
                endpoint.path,
                case.name
            );
        }
    }

    // None of the rejected requests had an effect: no account was created from a bad body,
    // the password did not change, and the caller's session and refresh token are intact.
    assert_eq!(server.me_status(&tokens.access).await, 200);
    let r = server.register(&fresh, PASSWORD).await;
    assert_eq!(r.status(), 201, "a bad register body created the account");
    let r = server.login(&user, PASSWORD).await;
    assert_eq!(
        r.status(),
        200,
        "the password changed through a bad request"
    );
    let r = server.refresh(&tokens.refresh).await;
    assert_eq!(
        r.status(),
        200,
        "a bad refresh body used up the refresh token"
    );
    assert!(
        !server.logs().contains("panicked"),
        "server logs: {}",
        server.logs()
    );
}

/// `Content-Type: application/json` with an empty body declares a JSON body that is not
/// valid JSON: 400, as on the other JSON endpoints, not the 401 of a missing refresh cookie.
async fn refresh_with_empty_json_body_is_400(backend: Backend) {
    let server = Server::start(backend);
    let request = server
        .http
        .post(server.url("/auth/refresh"))
        .header("content-type", "application/json")
        .body("");
    let response = send(request).await;
    assert_problem(response, 400).await;
}

/// A raw HTTP/1.1 answer: status, headers (lower-case names) and body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Posts `total` bytes of JSON with `Transfer-Encoding: chunked` (so no Content-Length)
/// over a plain TCP connection, in chunks of 4 KiB, and reads the answer.
async fn post_chunked(
    server: &Server,
    path: &str,
    bearer: Option<&str>,
    total: usize,
) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n",
        server.addr
    );
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    let writer_task = tokio::spawn(async move {
        // The server may answer and close before it has read everything: write errors
        // after that point are expected and ignored.
        writer.write_all(head.as_bytes()).await?;
        let mut sent = 0;
        let mut first = true;
        while sent < total {
            let mut chunk = Vec::with_capacity(4096);
            if first {
                chunk.extend_from_slice(br#"{"email":""#);
                first = false;
            }
            chunk.resize(4096.min(total - sent).max(chunk.len()), b'a');
            sent += chunk.len();
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"\"}\r\n0\r\n\r\n").await?;
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });

    let response = read_response(&mut reader).await;
    // Keep the writer alive until the answer is read, then let it go.
    writer_task.abort();
    response
}

/// Reads one HTTP/1.1 answer (it must carry Content-Length) from `reader`, within 20 s.
async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> RawResponse {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if response_complete(&raw) {
                        break;
                    }
                }
                // A reset after the full answer arrived is fine; before it, the parse
                // below fails with what was read.
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 20 s");
    parse_response(&raw)
}

/// Asserts a raw answer is a problem+json document with `status`.
fn assert_raw_problem(response: &RawResponse, status: u16, what: &str) {
    let body = String::from_utf8_lossy(&response.body).into_owned();
    assert_eq!(response.status, status, "{what}: {body}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let problem: Value = serde_json::from_slice(&response.body).expect("problem JSON");
    assert_eq!(problem["status"], status, "{what}: {body}");
    for field in ["type", "title", "detail"] {
        assert!(
            problem[field].is_string(),
            "{what}: problem lacks {field}: {body}"
        );
    }
}

fn split_head(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&raw[..end], &raw[end + 4..]))
}

fn response_complete(raw: &[u8]) -> bool {
    let Some((head, body)) = split_head(raw) else {
        return false;
    };
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    length.is_some_and(|len| body.len() >= len)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let (head, body) = split_head(raw)
        .unwrap_or_else(|| panic!("incomplete HTTP answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_vec(),
    }
}

async fn chunked_body_over_limit_is_413(backend: Backend) {
    let server = Server::start(backend);
    let tokens = server.signup(&email("chunked")).await;
    for (path, bearer) in [
        ("/auth/register", None),
        ("/auth/login", None),
        ("/auth/refresh", None),
        ("/auth/password", Some(tokens.access.as_str())),
    ] {
        let response = post_chunked(&server, path, bearer, BIG).await;
        assert_raw_problem(&response, 413, path);
        assert!(
            response.header("content-length").is_some(),
            "{path}: the 413 must be a complete answer"
        );
    }
    // The session used for /auth/password survived the rejected request.
    assert_eq!(server.me_status(&tokens.access).await, 200);
}

/// A keep-alive client that sends an oversized body gets its 413 and can go on using the
/// connection, or the 413 says `Connection: close` so that the client does not reuse it.
/// (A 413 without `Connection: close` followed by a silent close makes pooling clients
/// fail their next request.)
async fn oversized_body_leaves_connection_usable(backend: Backend) {
    let server = Server::start(backend);
    let stream = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let body = serde_json::to_vec(&json!({ "email": "a".repeat(BIG) })).unwrap();
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    writer.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer before reading the body; a failed write is then fine.
    let _ = writer.write_all(&body).await;
    let first = read_response(&mut reader).await;
    assert_raw_problem(&first, 413, "Content-Length over the limit");

    let closes = first
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if !closes {
        let next = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        );
        let wrote = writer.write_all(next.as_bytes()).await;
        assert!(
            wrote.is_ok(),
            "the 413 kept the connection open (no `Connection: close`) but the server \
             closed it: {wrote:?}"
        );
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut rest)).await;
        let text = String::from_utf8_lossy(&rest);
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "the 413 kept the connection open (no `Connection: close`) but the next request \
             on it got {text:?}"
        );
    }
}

/// The claims the server puts in access tokens, plus an optional `nbf`.
#[derive(Serialize, Clone)]
struct Claims {
    sub: String,
    email: String,
    role: String,
    iat: u64,
    exp: u64,
    jti: String,
    sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The server's key id for a secret: base64url of the first 8 bytes of its SHA-256.
fn key_id(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(secret.as_bytes())[..8])
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Signs `claims` with `alg` under `secret`, with `kid` in the header (if any).
fn forge(claims: &Claims, secret: &str, alg: Algorithm, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A token whose header is exactly `header`, signed with HMAC-SHA256 under `secret`
/// whatever the header claims.
fn forge_raw_header(header: &Value, claims: &Claims, secret: &str) -> String {
    let message = format!(
        "{}.{}",
        b64_json(header),
        b64_json(&serde_json::to_value(claims).unwrap())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

/// The payload of a JWT, read without verifying it.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// How a case presents its credential to `GET /auth/me`.
enum Auth {
    None,
    Header(String),
    Bearer(String),
}

async fn forged_and_malformed_tokens_get_401(backend: Backend) {
    let server = Server::builder(backend).env("JWT_SECRET", SECRET).start();
    let user = email("forge");
    let tokens = server.signup(&user).await;
    let real = payload(&tokens.access);
    let kid = key_id(SECRET);
    let now = now();
    let genuine = Claims {
        sub: real["sub"].as_str().expect("sub").to_owned(),
        email: user.clone(),
        role: "user".into(),
        iat: now,
        exp: now + 600,
        jti: Uuid::new_v4().to_string(),
        sid: real["sid"].as_str().expect("sid").to_owned(),
        nbf: None,
    };

    // Control: a token forged with the right secret, kid and a live session is accepted,
    // so every 401 below is caused by the one thing its case changes.
    let control = forge(&genuine, SECRET, Algorithm::HS256, Some(&kid));
    let r = send(
        server
            .http
            .get(server.url("/auth/me"))
            .bearer_auth(&control),
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "the control token was refused: {}",
        r.text().await.unwrap()
    );

    // Another user's id with this user's live session.
    let other = server.register(&email("victim"), PASSWORD).await;
    assert_eq!(other.status(), 201);
    let other_id = other.json::<Value>().await.unwrap()["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let header_none = json!({"alg": "none", "typ": "JWT", "kid": kid});
    let alg_none = format!(
        "{}.{}.",
        b64_json(&header_none),
        b64_json(&serde_json::to_value(&genuine).unwrap())
    );
    let rs_swap = forge_raw_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
        &genuine,
        SECRET,
    );
    let expired = Claims {
        iat: now - 3600,
        exp: now - 120,
        ..genuine.clone()
    };
    let not_yet = Claims {
        nbf: Some(now + 3600),
        ..genuine.clone()
    };
    let no_session = Claims {
        sid: Uuid::new_v4().simple().to_string(),
        ..genuine.clone()
    };
    let wrong_user = Claims {
        sub: other_id,
        ..genuine.clone()
    };
    let header_only = control.split('.').next().unwrap().to_owned();
    // The genuine token with its payload changed to claim admin, signature unchanged.
    let tampered = {
        let parts: Vec<&str> = tokens.access.split('.').collect();
        let mut claims = real.clone();
        claims["role"] = json!("admin");
        format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2])
    };
    let no_exp_claims = {
        let mut claims = serde_json::to_value(&genuine).unwrap();
        claims.as_object_mut().unwrap().remove("exp");
        let message = format!(
            "{}.{}",
            b64_json(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
            b64_json(&claims)
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    };

    let table: Vec<(&str, Auth)> = vec![
        ("garbage string", Auth::Bearer("garbage".into())),
        ("three garbage segments", Auth::Bearer("a.b.c".into())),
        ("header segment only", Auth::Bearer(header_only)),
        (
            "signed with another secret, right kid",
            Auth::Bearer(forge(&genuine, OTHER_SECRET, Algorithm::HS256, Some(&kid))),
        ),
        ("alg none", Auth::Bearer(alg_none)),
        (
            "HS256 signature under an RS256 header",
            Auth::Bearer(rs_swap),
        ),
        (
            "HS384",
            Auth::Bearer(forge(&genuine, SECRET, Algorithm::HS384, Some(&kid))),
        ),
        (
            "HS512",
            Auth::Bearer(forge(&genuine, SECRET, Algorithm::HS512, Some(&kid))),
        ),
        (
            "expired beyond the leeway",
            Auth::Bearer(forge(&expired, SECRET, Algorithm::HS256, Some(&kid))),
        ),
        (
            "not valid for another hour",
            Auth::Bearer(forge(&not_yet, SECRET, Algorithm::HS256, Some(&kid))),
        ),
        ("no exp claim", Auth::Bearer(no_exp_claims)),
        (
            "unknown kid",
            Auth::Bearer(forge(
                &genuine,
                SECRET,
                Algorithm::HS256,
                Some("AAAAAAAAAAA"),
            )),
        ),
        (
            "no kid",
            Auth::Bearer(forge(&genuine, SECRET, Algorithm::HS256, None)),
        ),
        (
            "session that does not exist",
            Auth::Bearer(forge(&no_session, SECRET, Algorithm::HS256, Some(&kid))),
        ),
        (
            "live session of another user",
            Auth::Bearer(forge(&wrong_user, SECRET, Algorithm::HS256, Some(&kid))),
        ),
        ("payload tampered after signing", Auth::Bearer(tampered)),
        ("Basic scheme", Auth::Header("Basic xxx".into())),
        ("Bearer with no token", Auth::Header("Bearer".into())),
        ("no Authorization header", Auth::None),
    ];

    for (name, auth) in table {
        let mut request = server.http.get(server.url("/auth/me"));
        match &auth {
            Auth::None => {}
            Auth::Header(value) => request = request.header("authorization", value),
            Auth::Bearer(token) => request = request.bearer_auth(token),
        }
        let response = send(request).await;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let status = response.status().as_u16();
        let body = assert_problem(response, 401).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(
            challenge.starts_with("Bearer"),
            "{name}: WWW-Authenticate is {challenge:?}"
        );
    }

    // The genuine token still works (nothing above disturbed the session), and dies with
    // the session at logout.
    assert_eq!(server.me_status(&tokens.access).await, 200);
    let r = send(
        server
            .http
            .post(server.url("/auth/logout"))
            .bearer_auth(&tokens.access),
    )
    .await;
    assert_eq!(r.status(), 204);
    for token in [&tokens.access, &control] {
        let r = send(server.http.get(server.url("/auth/me")).bearer_auth(token)).await;
        let challenge = r.headers().get("www-authenticate").cloned();
        assert_problem(r, 401).await;
        assert!(challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Bearer")));
    }
}

async fn unknown_path_wrong_method_and_huge_headers(backend: Backend) {
    let server = Server::start(backend);

    for path in [
        "/nope",
        "/auth/nope",
        "/auth/login/extra",
        "/auth/sessions/a/b",
    ] {
        let r = send(server.http.get(server.url(path))).await;
        assert_problem(r, 404).await;
    }

    for (method, path, allowed) in [
        (reqwest::Method::GET, "/auth/login", "POST"),
        (reqwest::Method::PUT, "/auth/register", "POST"),
        (reqwest::Method::DELETE, "/auth/me", "GET"),
        (reqwest::Method::POST, "/healthz", "GET"),
    ] {
        let r = send(server.http.request(method.clone(), server.url(path))).await;
        let allow = r
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_problem(r, 405).await;
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{method} {path}: Allow is {allow:?}"
        );
    }

    // One 20 KiB header value: over the 16 KiB limit on the request head.
    let r = send(
        server
            .http
            .get(server.url("/healthz"))
            .header("x-filler", "a".repeat(20 * 1024)),
    )
    .await;
    assert_eq!(r.status(), 431);

    // Many small headers: over the limit on their number.
    let mut request = server.http.get(server.url("/healthz"));
    for i in 0..200 {
        request = request.header(format!("x-filler-{i}"), "a");
    }
    let r = send(request).await;
    assert_eq!(r.status(), 431);

    // The server is still serving after all that.
    let r = send(server.http.get(server.url("/healthz"))).await;
    assert_eq!(r.status(), 200);
}

/// The answers hyper writes itself, before gatehouse sees the request (README: "Answers
/// without a body"): exactly these have no problem+json body, and everything past the head
/// does. Each over a raw socket, so that no client library tidies the request first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_hyper_writes_itself_are_the_documented_ones() {
    let server = Server::start(Backend::Embedded);
    let raw = |request: Vec<u8>| {
        let addr = server.addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(&request).await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let many_headers: String = (0..80).map(|i| format!("X-{i}: y\r\n")).collect();
    let bodyless = [
        (b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20_000)
            )
            .into_bytes(),
            "431",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            "431",
        ),
        (
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            "400",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_vec(),
            "400",
        ),
    ];
    for (request, status) in bodyless {
        let answer = raw(request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(answer.contains("content-length: 0"), "{answer}");
    }
    // A broken chunked body is past the head: problem+json.
    let answer = raw(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
}
