//! The OpenID Connect provider (issue #12) against relying parties nobody here wrote, started
//! by the tests themselves, and every bad request of the issue over plain HTTP:
//!
//! - Python `authlib` (tests/oidc/authlib_rp.py): discovery, the code flow with PKCE through
//!   the login and consent pages, the code exchanged with `client_secret_basic` (RS256),
//!   `client_secret_post` with an argon2id-hashed secret (EdDSA, implicit consent) and as a
//!   public client (`none`, ES256); the id_token validated by authlib against the JWKS;
//!   userinfo; refresh with rotation, the grace window and reuse detection; revocation;
//!   introspection; RP-initiated logout with `post_logout_redirect_uri` and `state`.
//! - npm `openid-client` 6 (tests/oidc/openid_client_rp.mjs): the same flows through its
//!   certified checks (state, `iss` in the authorization response, id_token, userinfo `sub`).
//! - Apache with `mod_auth_openidc` in front of a CGI page, driven by headless Chromium through
//!   login and consent: the page shows the user's email and groups from the claims.
//! - Bad requests, on both backends: unknown client and unregistered redirect URI (400 page,
//!   no redirect), wrong secret (401 `invalid_client`), wrong or missing PKCE verifier, code
//!   reuse (revokes what the first use issued), an expired code, an unsupported response
//!   type, a scope the client may not ask for, a user outside the client's groups,
//!   `prompt=none` without a session, consent denied; an OIDC grant is a session (listed,
//!   ended by logout-all and by disabling the user).
//!
//! Gatehouse listens on a loopback port chosen up front, so that `public_url` (the issuer) is
//! its real address: `http` redirect URIs on loopback hosts need no flag. A missing
//! `python3`/authlib, `node`/openid-client (`npm ci` in tests/oidc), `apache2` with
//! `mod_auth_openidc`, `chromium` or `chromedriver` skips its test loudly; with `CI=true` it
//! fails it (`.ci/run` installs them).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::browser::WebDriver;
use common::{Backend, PASSWORD, Server, email};
use serde_json::{Value, json};
use sha2::Digest;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const OTHER_REDIRECT: &str = "http://localhost:9/other";
const POST_LOGOUT: &str = "http://127.0.0.1:9/bye";
const BASIC_SECRET: &str = "rp-basic-secret-0123456789abcdef";
const POST_SECRET: &str = "rp-post-secret-0123456789abcdef";
const OPS_SECRET: &str = "rp-ops-secret-0123456789abcdef";
const NARROW_SECRET: &str = "rp-narrow-secret-0123456789abcdef";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says that a tool is missing: a failure under `CI=true`, a loud skip otherwise.
fn missing(what: &str, install: &str) {
    if ci() {
        panic!("{what} is not installed; CI must install it ({install})");
    }
    eprintln!("SKIPPED: {what} is not installed ({install}); this end-to-end test did not run");
}

/// The path of `program` (also looked for in /usr/sbin), or `None` after saying so.
fn require(program: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        missing(program, &format!("apt-get install {package}"));
    }
    found
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `python3` with authlib and requests importable.
fn require_authlib() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        missing(
            "python3 with authlib and requests",
            "python3 -m pip install authlib requests",
        );
    }
    ok
}

/// `node` with tests/oidc/node_modules/openid-client.
fn require_openid_client() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let module = repo()
        .join("tests/oidc/node_modules/openid-client/package.json")
        .is_file();
    if !(node && module) {
        missing(
            "node with openid-client",
            "apt-get install nodejs npm; npm ci --prefix tests/oidc",
        );
    }
    node && module
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// An argon2id PHC string of `secret` (cheap parameters: the provider verifies whatever the
/// string says), as `gatehouse client secret` prints one.
fn argon2_phc(secret: &str) -> String {
    let params = argon2::Params::new(256, 1, 1, Some(32)).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = *b"gatehouse-oidc-t";
    let mut out = [0u8; 32];
    argon
        .hash_password_into(secret.as_bytes(), &salt, &mut out)
        .expect("hash");
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m=256,t=1,p=1${}${}",
        b64.encode(salt),
        b64.encode(out)
    )
}

/// The relying parties every lab registers (`extra` appends more TOML).
fn config(port: u16, code_ttl: u64, extra: &str) -> String {
    let post_hash = argon2_phc(POST_SECRET);
    format!(
        r#"
public_url = "http://127.0.0.1:{port}"

[oidc]
code_ttl = {code_ttl}

[[oidc.clients]]
id = "rp-basic"
name = "Basic RP"
secret = "{BASIC_SECRET}"
redirect_uris = ["{REDIRECT}", "{OTHER_REDIRECT}"]
post_logout_redirect_uris = ["{POST_LOGOUT}"]

[[oidc.clients]]
id = "rp-post"
name = "Post RP"
secret = "{post_hash}"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["{POST_LOGOUT}"]
consent = "implicit"
id_token_signing_alg = "EdDSA"

[[oidc.clients]]
id = "rp-public"
name = "Public RP"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["{POST_LOGOUT}"]
id_token_signing_alg = "ES256"

[[oidc.clients]]
id = "rp-ops"
name = "Ops console"
secret = "{OPS_SECRET}"
redirect_uris = ["{REDIRECT}"]
groups = ["ops"]
consent = "implicit"

[[oidc.clients]]
id = "rp-narrow"
secret = "{NARROW_SECRET}"
redirect_uris = ["{REDIRECT}"]
scopes = ["openid", "email"]
consent = "implicit"
{extra}
"#
    )
}

/// Gatehouse with the relying parties above, on a loopback port that is also its issuer.
struct Lab {
    server: Server,
    issuer: String,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn start(backend: Backend) -> Lab {
        Lab::start_with(backend, 60, "", &[])
    }

    fn start_with(backend: Backend, code_ttl: u64, extra: &str, env: &[(&str, &str)]) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        // A port picked up front (the issuer must be known before the start); retried if
        // another process takes it in between.
        for attempt in 0.. {
            let port = free_port();
            std::fs::write(&path, config(port, code_ttl, extra)).expect("write config");
            let mut builder = Server::builder(backend.clone())
                .env("GATEHOUSE_CONFIG", &path.display().to_string())
                .env("GATEHOUSE_LISTEN", &format!("127.0.0.1:{port}"))
                .env("JWT_SECRET", "an-oidc-test-secret-that-is-32-bytes-or-more");
            for (k, v) in env {
                builder = builder.env(k, v);
            }
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.start())) {
                Ok(server) => {
                    return Lab {
                        server,
                        issuer: format!("http://127.0.0.1:{port}"),
                        _dir: dir,
                    };
                }
                Err(e) if attempt >= 3 => std::panic::resume_unwind(e),
                Err(_) => continue,
            }
        }
        unreachable!()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A new user with the test password, in `groups` (created as needed).
    async fn user(&self, tag: &str, groups: &[&str]) -> String {
        let who = email(tag);
        let r = self.server.register(&who, PASSWORD).await;
        assert_eq!(r.status(), 201, "register {who}");
        for group in groups {
            let out = self.server.cli(&["group", "add", group], "");
            assert!(
                out.status.success(),
                "group add {group}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = self.server.cli(&["group", "add-member", group, &who], "");
            assert!(
                out.status.success(),
                "group add-member {group} {who}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        who
    }

    /// Runs one relying-party script (`program` `script` with `args`); panics with its
    /// output unless it exits 0.
    fn run_rp(&self, program: &str, script: &str, args: &[(&str, &str)]) {
        let mut cmd = Command::new(program);
        cmd.arg(repo().join(script)).current_dir(repo());
        for (k, v) in args {
            cmd.arg(format!("--{k}"));
            if !v.is_empty() {
                cmd.arg(v);
            }
        }
        let started = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program} {script}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "--- {script} {:?} ({:.1} s)\n{stdout}",
            args.iter()
                .filter(|(k, _)| *k == "client-id" || *k == "auth-method")
                .collect::<Vec<_>>(),
            started.elapsed().as_secs_f64()
        );
        assert!(
            out.status.success(),
            "{script} failed ({}):\n{stdout}\n{stderr}\n--- gatehouse logs:\n{}",
            out.status,
            self.server.logs()
        );
    }
}

// --- a scripted browser and a hand-written relying party, for the bad requests ---

fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::now_v7().simple(),
        uuid::Uuid::now_v7().simple()
    );
    (verifier.clone(), challenge(&verifier))
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn location(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("location")
        .map(|v| v.to_str().expect("ASCII location").to_owned())
}

/// The inputs (name and value) of the first form in `html` that has one named `marker`,
/// with its action.
fn form_with(html: &str, marker: &str) -> Option<(String, Vec<(String, String)>)> {
    fn attr(tag: &str, name: &str) -> Option<String> {
        let lower = tag.to_ascii_lowercase();
        let mut from = 0;
        while let Some(i) = lower[from..].find(&format!("{name}=")) {
            let at = from + i;
            from = at + name.len() + 1;
            if at > 0 && !lower.as_bytes()[at - 1].is_ascii_whitespace() {
                continue;
            }
            let rest = &tag[from..];
            let value = match rest.chars().next()? {
                q @ ('"' | '\'') => rest[1..].split(q).next()?.to_owned(),
                _ => rest
                    .split(|c: char| c.is_ascii_whitespace() || c == '>')
                    .next()?
                    .to_owned(),
            };
            return Some(html_escape::decode_html_entities(&value).into_owned());
        }
        None
    }
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<form") {
        let start = from + start;
        let end = lower[start..]
            .find("</form>")
            .map_or(html.len(), |e| start + e);
        from = end;
        let form = &html[start..end];
        let open = &form[..form.find('>').unwrap_or(form.len())];
        let action = attr(open, "action").unwrap_or_default();
        let mut inputs = Vec::new();
        let mut named_marker = false;
        let lower_form = form.to_ascii_lowercase();
        let mut i = 0;
        while let Some(at) = lower_form[i..].find('<') {
            let at = i + at;
            let close = form[at..].find('>').map_or(form.len(), |e| at + e);
            let tag = &form[at..close];
            i = close;
            let tag_lower = tag.to_ascii_lowercase();
            if !(tag_lower.starts_with("<input") || tag_lower.starts_with("<button")) {
                continue;
            }
            let Some(name) = attr(tag, "name") else {
                continue;
            };
            if name == marker {
                named_marker = true;
            }
            if tag_lower.starts_with("<input") {
                let kind = attr(tag, "type").unwrap_or_default().to_ascii_lowercase();
                if kind != "submit" {
                    inputs.push((name, attr(tag, "value").unwrap_or_default()));
                }
            }
        }
        if named_marker {
            return Some((action, inputs));
        }
    }
    None
}

/// A browser: a cookie jar, no automatic redirects, `Accept: text/html`.
struct Browser {
    http: reqwest::Client,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    async fn post_form(
        &self,
        lab: &Lab,
        page: &str,
        action: &str,
        form: &[(String, String)],
    ) -> reqwest::Response {
        let target = url::Url::parse(page)
            .and_then(|p| p.join(if action.is_empty() { page } else { action }))
            .expect("form action");
        self.http
            .post(target)
            .header("accept", BROWSER_ACCEPT)
            .header("origin", &lab.issuer)
            .header("referer", page)
            .form(form)
            .send()
            .await
            .expect("form post")
    }

    /// Signs in on the login page, as a person does.
    async fn sign_in(&self, lab: &Lab, who: &str) {
        let page = format!("{}/login?rd={}", lab.issuer, lab.issuer);
        let r = self.get(&page).await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        let (action, mut form) = form_with(&html, "password").expect("a login form");
        for (k, v) in form.iter_mut() {
            match k.as_str() {
                "email" => *v = who.to_owned(),
                "password" => *v = PASSWORD.to_owned(),
                _ => {}
            }
        }
        let r = self.post_form(lab, &page, &action, &form).await;
        assert_eq!(
            r.status(),
            303,
            "login: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// `GET /oidc/authorize` with `params` (client_id first).
    async fn authorize(&self, lab: &Lab, params: &[(&str, &str)]) -> reqwest::Response {
        let url = url::Url::parse_with_params(&lab.url("/oidc/authorize"), params).unwrap();
        self.get(url.as_str()).await
    }

    /// The authorization response for a signed-in browser: follows the consent page (with
    /// `decision`) if one comes; the URL the provider redirects to.
    async fn authorization_response(
        &self,
        lab: &Lab,
        params: &[(&str, &str)],
        decision: &str,
    ) -> String {
        let url = url::Url::parse_with_params(&lab.url("/oidc/authorize"), params).unwrap();
        let mut r = self.get(url.as_str()).await;
        if r.status() == 200 {
            let html = r.text().await.unwrap();
            let (action, mut form) =
                form_with(&html, "decision").unwrap_or_else(|| panic!("a consent form: {html}"));
            form.push(("decision".into(), decision.into()));
            r = self.post_form(lab, url.as_str(), &action, &form).await;
        }
        assert!(
            r.status() == 302 || r.status() == 303,
            "authorize: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        location(&r).expect("Location")
    }

    /// A code for `client` (signed in already); returns it with the PKCE verifier.
    async fn code(&self, lab: &Lab, client: &str) -> (String, String) {
        let (verifier, challenge) = pkce();
        let back = self
            .authorization_response(
                lab,
                &[
                    ("client_id", client),
                    ("redirect_uri", REDIRECT),
                    ("response_type", "code"),
                    ("scope", "openid email profile groups offline_access"),
                    ("state", "st"),
                    ("nonce", "nn"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
                "allow",
            )
            .await;
        assert!(back.starts_with(REDIRECT), "{back}");
        let q = query(&back);
        assert_eq!(q.get("state").map(String::as_str), Some("st"), "{back}");
        assert_eq!(q.get("iss"), Some(&lab.issuer), "{back}");
        let code = q
            .get("code")
            .unwrap_or_else(|| panic!("no code: {back}"))
            .clone();
        (code, verifier)
    }
}

/// `POST /oidc/token` with `client_secret_basic` (or none when `secret` is `None`).
async fn token(
    lab: &Lab,
    client: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = lab.server.http.post(lab.url("/oidc/token")).form(form);
    req = match secret {
        Some(secret) => req.basic_auth(client, Some(secret)),
        None => req,
    };
    let r = req.send().await.expect("token request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    (status, body)
}

async fn exchange(
    lab: &Lab,
    client: &str,
    secret: Option<&str>,
    code: &str,
    verifier: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    if secret.is_none() {
        form.push(("client_id", client));
    }
    token(lab, client, secret, &form).await
}

async fn refresh(lab: &Lab, client: &str, secret: &str, refresh_token: &str) -> (u16, Value) {
    token(
        lab,
        client,
        Some(secret),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn userinfo(lab: &Lab, access: &str) -> u16 {
    lab.server
        .http
        .get(lab.url("/oidc/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo")
        .status()
        .as_u16()
}

async fn introspect(lab: &Lab, client: &str, secret: &str, tok: &str) -> Value {
    let r = lab
        .server
        .http
        .post(lab.url("/oidc/introspect"))
        .basic_auth(client, Some(secret))
        .form(&[("token", tok)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(r.status(), 200);
    r.json().await.expect("introspection json")
}

fn assert_oauth_error(status: u16, body: &Value, want_status: u16, error: &str, what: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(body["error"], error, "{what}: {body}");
}

/// Every tokens of a grant are dead: userinfo 401, introspection inactive, refresh fails.
async fn assert_grant_dead(lab: &Lab, tokens: &Value, what: &str) {
    let access = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(userinfo(lab, access).await, 401, "{what}: userinfo");
    let info = introspect(lab, "rp-basic", BASIC_SECRET, access).await;
    assert_eq!(info["active"], false, "{what}: introspection {info}");
    if let Some(rt) = tokens["refresh_token"].as_str() {
        let (status, body) = refresh(lab, "rp-basic", BASIC_SECRET, rt).await;
        assert_oauth_error(
            status,
            &body,
            400,
            "invalid_grant",
            &format!("{what}: refresh"),
        );
    }
}

// --- relying parties nobody here wrote ---

async fn authlib_relying_parties(backend: Backend) {
    if !require_authlib() {
        return;
    }
    let lab = Lab::start(backend);
    let groups = ["media", "family"];
    let cases: [(&str, Option<&str>, &str, &str, &str); 3] = [
        (
            "rp-basic",
            Some(BASIC_SECRET),
            "client_secret_basic",
            "RS256",
            "explicit",
        ),
        (
            "rp-post",
            Some(POST_SECRET),
            "client_secret_post",
            "EdDSA",
            "implicit",
        ),
        ("rp-public", None, "none", "ES256", "explicit"),
    ];
    for (client, secret, method, alg, consent) in cases {
        let who = lab.user("py", &groups).await;
        let mut args = vec![
            ("issuer", lab.issuer.as_str()),
            ("client-id", client),
            ("auth-method", method),
            ("alg", alg),
            ("redirect-uri", REDIRECT),
            ("post-logout-uri", POST_LOGOUT),
            ("email", who.as_str()),
            ("password", PASSWORD),
            ("groups", "family,media"),
            ("consent", consent),
        ];
        if let Some(secret) = secret {
            args.push(("client-secret", secret));
        }
        lab.run_rp("python3", "tests/oidc/authlib_rp.py", &args);
    }
}

async fn openid_client_relying_parties(backend: Backend) {
    if !require_openid_client() {
        return;
    }
    let lab = Lab::start(backend);
    let cases: [(&str, Option<&str>, &str, &str, &str); 3] = [
        (
            "rp-basic",
            Some(BASIC_SECRET),
            "client_secret_basic",
            "RS256",
            "explicit",
        ),
        (
            "rp-post",
            Some(POST_SECRET),
            "client_secret_post",
            "EdDSA",
            "implicit",
        ),
        ("rp-public", None, "none", "ES256", "explicit"),
    ];
    for (client, secret, method, alg, consent) in cases {
        let who = lab.user("js", &["media"]).await;
        let mut args = vec![
            ("issuer", lab.issuer.as_str()),
            ("client-id", client),
            ("auth-method", method),
            ("alg", alg),
            ("redirect-uri", REDIRECT),
            ("post-logout-uri", POST_LOGOUT),
            ("email", who.as_str()),
            ("password", PASSWORD),
            ("groups", "media"),
            ("consent", consent),
        ];
        if let Some(secret) = secret {
            args.push(("client-secret", secret));
        }
        lab.run_rp("node", "tests/oidc/openid_client_rp.mjs", &args);
    }
}

// --- bad requests ---

/// Unknown client and unregistered redirect URIs: a 400 page, never a redirect.
async fn authorize_refuses_unknown_client_and_redirect_uri(backend: Backend) {
    let lab = Lab::start(backend);
    let who = lab.user("eve", &[]).await;
    let browser = Browser::new();
    browser.sign_in(&lab, &who).await;
    let (_, challenge) = pkce();
    let base = [
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let mut cases: Vec<(&str, &str)> = vec![("no-such-client", REDIRECT)];
    for bad in [
        "http://127.0.0.1:9/cb/",
        "http://127.0.0.1:9/cb?x=1",
        "http://127.0.0.1:9/CB",
        "http://127.0.0.1:9/cb#f",
        "http://127.0.0.1:10/cb",
        "https://127.0.0.1:9/cb",
        "http://evil.example/cb",
        "//evil.example/cb",
        POST_LOGOUT,
    ] {
        cases.push(("rp-basic", bad));
    }
    for (client, redirect) in cases {
        for signed_in in [true, false] {
            let mut params = vec![("client_id", client), ("redirect_uri", redirect)];
            params.extend(base);
            let r = if signed_in {
                browser.authorize(&lab, &params).await
            } else {
                Browser::new().authorize(&lab, &params).await
            };
            let status = r.status().as_u16();
            let loc = location(&r);
            let body = r.text().await.unwrap_or_default();
            assert_eq!(
                status, 400,
                "{client} {redirect} (signed in: {signed_in}): {loc:?} {body}"
            );
            assert!(loc.is_none(), "{client} {redirect}: redirected to {loc:?}");
            assert!(!body.is_empty(), "an error page");
        }
    }
    // No redirect_uri at all for a client with two: 400 too.
    let mut params = vec![("client_id", "rp-basic")];
    params.extend(base);
    let r = browser.authorize(&lab, &params).await;
    assert_eq!(r.status(), 400);
    assert!(location(&r).is_none());
}

/// Errors that go back to the redirect URI: with `error`, `state` and `iss`.
async fn authorize_errors_go_back_with_state_and_iss(backend: Backend) {
    let lab = Lab::start(backend);
    let outsider = lab.user("outsider", &["media"]).await;
    let (_, challenge) = pkce();
    let anonymous = Browser::new();
    let browser = Browser::new();
    browser.sign_in(&lab, &outsider).await;

    async fn error_of(
        lab: &Lab,
        browser: &Browser,
        params: &[(&str, &str)],
        decision: &str,
    ) -> HashMap<String, String> {
        let back = browser.authorization_response(lab, params, decision).await;
        assert!(back.starts_with(REDIRECT), "{params:?}: {back}");
        let q = query(&back);
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"), "{back}");
        assert_eq!(q.get("iss"), Some(&lab.issuer), "RFC 9207: {back}");
        assert!(!q.contains_key("code"), "{back}");
        q
    }
    let with = |client: &'static str,
                extra: &[(&'static str, &'static str)]|
     -> Vec<(&'static str, String)> {
        let mut p: Vec<(&str, String)> = vec![
            ("client_id", client.into()),
            ("redirect_uri", REDIRECT.into()),
            ("response_type", "code".into()),
            ("scope", "openid email".into()),
            ("state", "st-1".into()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".into()),
        ];
        for (k, v) in extra {
            if let Some(slot) = p.iter_mut().find(|(key, _)| key == k) {
                slot.1 = (*v).into();
            } else {
                p.push((*k, (*v).into()));
            }
        }
        p
    };
    /// The error expected, the request's parameters, who asks, the consent decision.
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a Browser, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unsupported_response_type",
            with("rp-basic", &[("response_type", "token")]),
            &browser,
            "allow",
        ),
        (
            "unsupported_response_type",
            with("rp-basic", &[("response_type", "id_token")]),
            &browser,
            "allow",
        ),
        (
            "invalid_scope",
            with("rp-narrow", &[("scope", "openid groups")]),
            &browser,
            "allow",
        ),
        ("access_denied", with("rp-ops", &[]), &browser, "allow"),
        (
            "login_required",
            with("rp-basic", &[("prompt", "none")]),
            &anonymous,
            "allow",
        ),
        ("access_denied", with("rp-basic", &[]), &browser, "deny"),
        (
            "invalid_request",
            with(
                "rp-public",
                &[("code_challenge", ""), ("code_challenge_method", "")],
            ),
            &browser,
            "allow",
        ),
        (
            "invalid_request",
            with("rp-basic", &[("code_challenge_method", "plain")]),
            &browser,
            "allow",
        ),
    ];
    for (want, params, who, decision) in cases {
        let params: Vec<(&str, &str)> = params
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let q = error_of(&lab, who, &params, decision).await;
        assert_eq!(
            q.get("error").map(String::as_str),
            Some(want),
            "{params:?}: {q:?}"
        );
    }
    // The user outside the client's groups is let in once a member.
    let out = lab.server.cli(&["group", "add", "ops"], "");
    assert!(out.status.success());
    let out = lab
        .server
        .cli(&["group", "add-member", "ops", &outsider], "");
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let params: Vec<(&str, String)> = with("rp-ops", &[]);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let back = browser.authorization_response(&lab, &params, "allow").await;
        if query(&back).contains_key("code") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a new member of ops still gets {back}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The token endpoint's errors: wrong secrets, PKCE, a code used twice.
async fn token_endpoint_errors(backend: Backend) {
    let lab = Lab::start(backend);
    let who = lab.user("tok", &[]).await;
    let browser = Browser::new();
    browser.sign_in(&lab, &who).await;

    // Wrong secret: basic, post, hashed; and an unknown client: 401 invalid_client.
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, b) = exchange(
        &lab,
        "rp-basic",
        Some("not-the-secret-at-all"),
        &code,
        Some(&verifier),
    )
    .await;
    assert_oauth_error(s, &b, 401, "invalid_client", "wrong basic secret");
    let (s, b) = exchange(
        &lab,
        "rp-post",
        Some("not-the-secret-at-all"),
        &code,
        Some(&verifier),
    )
    .await;
    assert_oauth_error(s, &b, 401, "invalid_client", "wrong hashed secret");
    let (s, b) = exchange(&lab, "nobody", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_oauth_error(s, &b, 401, "invalid_client", "unknown client");
    let (s, b) = token(
        &lab,
        "rp-basic",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", "rp-basic"),
            ("client_secret", "not-the-secret-at-all"),
        ],
    )
    .await;
    assert_oauth_error(s, &b, 401, "invalid_client", "wrong client_secret_post");
    // A confidential client without any authentication.
    let (s, b) = exchange(&lab, "rp-basic", None, &code, Some(&verifier)).await;
    assert_oauth_error(s, &b, 401, "invalid_client", "no client authentication");

    // Wrong and missing PKCE verifiers: invalid_grant (each on a fresh code).
    let (code, _) = browser.code(&lab, "rp-basic").await;
    let (wrong, _) = pkce();
    let (s, b) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&wrong)).await;
    assert_oauth_error(s, &b, 400, "invalid_grant", "wrong code_verifier");
    let (code, _) = browser.code(&lab, "rp-basic").await;
    let (s, b) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, None).await;
    assert_oauth_error(s, &b, 400, "invalid_grant", "missing code_verifier");
    let (code, verifier) = browser.code(&lab, "rp-public").await;
    let (s, b) = exchange(&lab, "rp-public", None, &code, Some(&wrong)).await;
    assert_oauth_error(
        s,
        &b,
        400,
        "invalid_grant",
        "public client, wrong code_verifier",
    );
    let _ = verifier;

    // A code is bound to its client and redirect_uri.
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, b) = token(
        &lab,
        "rp-basic",
        Some(BASIC_SECRET),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", OTHER_REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_oauth_error(s, &b, 400, "invalid_grant", "another redirect_uri");
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, b) = exchange(&lab, "rp-ops", Some(OPS_SECRET), &code, Some(&verifier)).await;
    assert_oauth_error(s, &b, 400, "invalid_grant", "another client's code");
    let (s, b) = exchange(
        &lab,
        "rp-basic",
        Some(BASIC_SECRET),
        "no-such-code",
        Some(&verifier),
    )
    .await;
    assert_oauth_error(s, &b, 400, "invalid_grant", "a made-up code");
    let (s, b) = token(
        &lab,
        "rp-basic",
        Some(BASIC_SECRET),
        &[("grant_type", "password")],
    )
    .await;
    assert_oauth_error(s, &b, 400, "unsupported_grant_type", "grant_type=password");

    // Code reuse: invalid_grant, and what the first use issued is revoked.
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, first) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_eq!(s, 200, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&lab, access).await, 200);
    let (s, b) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_oauth_error(s, &b, 400, "invalid_grant", "the code's second use");
    assert_grant_dead(&lab, &first, "after code reuse").await;

    // Nothing here was a 500.
    assert!(
        !lab.server.logs().contains("panicked"),
        "{}",
        lab.server.logs()
    );
}

/// A code older than `oidc.code_ttl` is refused.
async fn expired_code(backend: Backend) {
    let lab = Lab::start_with(backend, 1, "", &[]);
    let who = lab.user("late", &[]).await;
    let browser = Browser::new();
    browser.sign_in(&lab, &who).await;
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, b) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_oauth_error(s, &b, 400, "invalid_grant", "an expired code");
    // A fresh one still works at once.
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, b) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_eq!(s, 200, "{b}");
}

/// An OIDC grant is a gatehouse session: listed, ended by logout-all and by disabling the
/// user; the id_token's claims per scope.
async fn grants_are_sessions(backend: Backend) {
    let lab = Lab::start(backend);
    let who = lab.user("sess", &["media"]).await;
    let first_party = lab.server.relogin(&who).await;
    let sessions = |lab: &Lab, access: String| {
        let http = lab.server.http.clone();
        let url = lab.url("/auth/sessions");
        async move {
            let r = http.get(url).bearer_auth(access).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Vec<Value>>().await.unwrap()
        }
    };
    let before = sessions(&lab, first_party.access.clone()).await.len();
    let browser = Browser::new();
    browser.sign_in(&lab, &who).await;
    let after_login = sessions(&lab, first_party.access.clone()).await.len();
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, grant) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_eq!(s, 200, "{grant}");
    let listed = sessions(&lab, first_party.access.clone()).await;
    assert_eq!(
        listed.len(),
        after_login + 1,
        "the grant is listed (before: {before}, after the browser login: {after_login}): {listed:?}"
    );
    assert_eq!(
        listed
            .iter()
            .filter(|s| s["client_id"] == "rp-basic")
            .count(),
        1,
        "the grant's session names its client: {listed:?}"
    );

    // Scope narrows the claims: no email, groups or profile claims without those scopes.
    let (verifier2, challenge2) = pkce();
    let back = browser
        .authorization_response(
            &lab,
            &[
                ("client_id", "rp-post"),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", "st"),
                ("code_challenge", &challenge2),
                ("code_challenge_method", "S256"),
            ],
            "allow",
        )
        .await;
    let code2 = query(&back)["code"].clone();
    let (s, narrow) = token(
        &lab,
        "rp-post",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code2),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier2),
            ("client_id", "rp-post"),
            ("client_secret", POST_SECRET),
        ],
    )
    .await;
    assert_eq!(s, 200, "{narrow}");
    assert!(
        narrow.get("refresh_token").is_none(),
        "no refresh token without offline_access: {narrow}"
    );
    let payload = narrow["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    for absent in ["email", "groups", "name", "preferred_username", "nonce"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }
    for present in ["iss", "sub", "aud", "exp", "iat", "auth_time", "amr"] {
        assert!(
            claims.get(present).is_some(),
            "{present} missing from {claims}"
        );
    }

    // logout-all ends the grant.
    let r = lab
        .server
        .post_auth("/auth/logout-all", &first_party.access)
        .await;
    assert_eq!(r.status(), 204);
    assert_grant_dead(&lab, &grant, "after logout-all").await;

    // Disabling the user ends a fresh grant at once.
    let browser = Browser::new();
    browser.sign_in(&lab, &who).await;
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, grant) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_eq!(s, 200, "{grant}");
    let out = lab.server.cli(&["user", "disable", &who], "");
    assert!(
        out.status.success(),
        "user disable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_grant_dead(&lab, &grant, "after disabling the user").await;
}

/// What a careful provider does beyond the happy path: OIDC access tokens are no keys to
/// gatehouse's own API or to forward-auth, one client cannot refresh or revoke another's
/// tokens, `prompt=login` and `max_age` force a fresh login, a consent post from another
/// origin grants nothing, consent covers only the scopes it named, and a password change or
/// ending the grant's session ends the grant.
async fn provider_hardening(backend: Backend) {
    let lab = Lab::start(backend);
    let who = lab.user("hard", &[]).await;
    let browser = Browser::new();
    browser.sign_in(&lab, &who).await;
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let r = lab
        .server
        .http
        .post(lab.url("/oidc/token"))
        .basic_auth("rp-basic", Some(BASIC_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cache = r
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        cache.contains("no-store"),
        "token response Cache-Control: {cache:?}"
    );
    let grant: Value = r.json().await.unwrap();
    let access = grant["access_token"].as_str().unwrap();
    let id_token = grant["id_token"].as_str().unwrap();

    // An RP's access token is no key to gatehouse's own API or to forward-auth; an id_token
    // is no access token; a first-party token is no OIDC access token.
    assert_eq!(lab.server.me_status(access).await, 401, "/auth/me");
    let r = lab.server.get_auth("/auth/sessions", access).await;
    assert_eq!(r.status(), 401, "/auth/sessions");
    let r = lab
        .server
        .http
        .get(lab.url("/authz/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.org")
        .header("x-forwarded-uri", "/")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "forward-auth with an OIDC access token");
    assert_eq!(
        userinfo(&lab, id_token).await,
        401,
        "an id_token at userinfo"
    );
    let first_party = lab.server.relogin(&who).await;
    assert_eq!(
        userinfo(&lab, &first_party.access).await,
        401,
        "a first-party token at userinfo"
    );
    let info = introspect(&lab, "rp-basic", BASIC_SECRET, &first_party.access).await;
    assert_eq!(
        info["active"], false,
        "a first-party token introspected by an RP: {info}"
    );

    // Another client can neither refresh nor revoke these tokens.
    let rt = grant["refresh_token"].as_str().unwrap();
    let (s, b) = refresh(&lab, "rp-ops", OPS_SECRET, rt).await;
    assert_oauth_error(
        s,
        &b,
        400,
        "invalid_grant",
        "another client's refresh token",
    );
    for tok in [access, rt] {
        let r = lab
            .server
            .http
            .post(lab.url("/oidc/revoke"))
            .basic_auth("rp-ops", Some(OPS_SECRET))
            .form(&[("token", tok)])
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500);
    }
    assert_eq!(
        userinfo(&lab, access).await,
        200,
        "after another client's revocation"
    );
    let (s, grant) = refresh(&lab, "rp-basic", BASIC_SECRET, rt).await;
    assert_eq!(s, 200, "after another client's attempts: {grant}");

    // prompt=login and max_age send a signed-in browser to the login page.
    let (_, challenge) = pkce();
    let params = |extra: (&'static str, &'static str)| {
        vec![
            ("client_id", "rp-basic".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("response_type", "code".to_owned()),
            ("scope", "openid".to_owned()),
            ("state", "st".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            (extra.0, extra.1.to_owned()),
        ]
    };
    let login = format!("{}/login?rd=", lab.issuer);
    // (Checked last, so that one finding does not hide the others.)
    let mut fresh_login_problems = Vec::new();
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let p = params(extra);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = browser.authorize(&lab, &p).await;
        let loc = location(&r).unwrap_or_default();
        if !loc.starts_with(&login) {
            fresh_login_problems.push(format!(
                "{extra:?} right after signing in: {} {loc}",
                r.status()
            ));
        }
    }

    // A consent post from another origin (or with none) grants nothing.
    let p = params(("nonce", "n1"));
    let mut p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    p[0] = ("client_id", "rp-public");
    let url = url::Url::parse_with_params(&lab.url("/oidc/authorize"), &p).unwrap();
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.unwrap();
    let (action, mut form) = form_with(&html, "decision").expect("a consent form");
    form.push(("decision".into(), "allow".into()));
    let target = url
        .join(if action.is_empty() {
            url.as_str()
        } else {
            &action
        })
        .unwrap();
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let mut req = browser.http.post(target.clone()).form(&form);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let r = req.send().await.unwrap();
        let loc = location(&r).unwrap_or_default();
        assert!(
            !loc.contains("code="),
            "consent posted with Origin {origin:?}: {loc}"
        );
    }
    // Consent for `openid` covers `openid`, not `openid email groups`.
    let back = browser.authorization_response(&lab, &p, "allow").await;
    assert!(query(&back).contains_key("code"), "{back}");
    let r = browser.authorize(&lab, &p).await;
    assert!(
        location(&r).unwrap_or_default().contains("code="),
        "consent remembered"
    );
    let mut wider = p.clone();
    wider[3] = ("scope", "openid email groups");
    let r = browser.authorize(&lab, &wider).await;
    assert_eq!(
        r.status(),
        200,
        "more scopes than consented: the page again"
    );

    // Ending the grant's session (DELETE /auth/sessions/{id}) ends the grant.
    let before: Vec<Value> = lab
        .server
        .get_auth("/auth/sessions", &first_party.access)
        .await
        .json()
        .await
        .unwrap();
    let (code, verifier) = browser.code(&lab, "rp-basic").await;
    let (s, fresh) = exchange(&lab, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_eq!(s, 200);
    let after: Vec<Value> = lab
        .server
        .get_auth("/auth/sessions", &first_party.access)
        .await
        .json()
        .await
        .unwrap();
    let new: Vec<&Value> = after.iter().filter(|s| !before.contains(s)).collect();
    assert_eq!(new.len(), 1, "one new session: {new:?}");
    let id = new[0]["id"].as_str().unwrap();
    let r = lab
        .server
        .http
        .delete(lab.url(&format!("/auth/sessions/{id}")))
        .bearer_auth(&first_party.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_grant_dead(&lab, &fresh, "after DELETE /auth/sessions/{id}").await;

    // A password change ends every grant.
    let r = lab
        .server
        .http
        .post(lab.url("/auth/password"))
        .bearer_auth(&first_party.access)
        .json(
            &json!({"current_password": PASSWORD, "new_password": "another horse battery staple"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_grant_dead(&lab, &grant, "after a password change").await;
    // OpenID Connect Core 3.1.2.1: max_age=0 is prompt=login, however recent the login.
    assert!(
        fresh_login_problems.is_empty(),
        "no fresh login: {fresh_login_problems:#?}"
    );
}

/// Two nodes sharing Redis (and the id_token key): a code from one is exchanged at the
/// other, refreshed and revoked across them, and a code reused across them revokes what it
/// issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_grants() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let a = Lab::start(backend.clone());
    // Node B: the same config (issuer), Redis, secret and RSA key, its own data dir.
    let b_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        a.server.data_dir.join("signing_key_rsa.pem"),
        b_dir.path().join("signing_key_rsa.pem"),
    )
    .expect("node A's generated RSA key");
    let b = Server::builder(backend)
        .data_dir(b_dir.path())
        .env(
            "GATEHOUSE_CONFIG",
            &a._dir.path().join("config.toml").display().to_string(),
        )
        .env("JWT_SECRET", "an-oidc-test-secret-that-is-32-bytes-or-more")
        .start();
    let b_lab = |path: &str| format!("{}{path}", b.base);
    let who = a.user("nodes", &[]).await;
    let browser = Browser::new();
    browser.sign_in(&a, &who).await;
    let (code, verifier) = browser.code(&a, "rp-basic").await;
    let token_at_b = |form: Vec<(&'static str, String)>| {
        let req = b
            .http
            .post(b_lab("/oidc/token"))
            .basic_auth("rp-basic", Some(BASIC_SECRET))
            .form(&form);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, grant) = token_at_b(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", verifier.clone()),
    ])
    .await;
    assert_eq!(s, 200, "a code from node A at node B: {grant}");
    let (s, refreshed) = refresh(
        &a,
        "rp-basic",
        BASIC_SECRET,
        grant["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(s, 200, "refreshed at A: {refreshed}");
    let r = b
        .http
        .post(b_lab("/oidc/revoke"))
        .basic_auth("rp-basic", Some(BASIC_SECRET))
        .form(&[("token", refreshed["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_grant_dead(&a, &refreshed, "revoked at node B, checked at node A").await;

    // A code used at A and again at B.
    let (code, verifier) = browser.code(&a, "rp-basic").await;
    let (s, first) = exchange(&a, "rp-basic", Some(BASIC_SECRET), &code, Some(&verifier)).await;
    assert_eq!(s, 200);
    let (s, again) = token_at_b(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", verifier),
    ])
    .await;
    assert_oauth_error(s, &again, 400, "invalid_grant", "the code again at node B");
    assert_grant_dead(&a, &first, "after the code's reuse at node B").await;
}

backend_tests!(
    authlib_relying_parties,
    openid_client_relying_parties,
    authorize_refuses_unknown_client_and_redirect_uri,
    authorize_errors_go_back_with_state_and_iss,
    token_endpoint_errors,
    expired_code,
    grants_are_sessions,
    provider_hardening,
);

// --- Apache with mod_auth_openidc, driven by Chromium ---

/// A child process killed (and reaped) on drop, its output in a log file.
struct Proc {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc { child, name, log }
    }

    fn wait_for_port(&mut self, port: u16, extra_log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status}:\n{}\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default(),
                    std::fs::read_to_string(extra_log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{} did not listen on {port}", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Apache (prefork, no systemd: the binary with a generated config) with mod_auth_openidc
/// protecting `/app/`, where a CGI script prints the claims it passes on.
fn apache(binary: &Path, dir: &Path, port: u16, issuer: &str) -> Proc {
    let modules = Path::new("/usr/lib/apache2/modules");
    let d = dir.display();
    // The CGI runs as www-data: the directory must be readable by it.
    let cgi_dir = dir.join("cgi");
    std::fs::create_dir_all(&cgi_dir).expect("cgi dir");
    let script = cgi_dir.join("whoami");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/html\\r\\n\\r\\n'\n\
         printf '<!doctype html><title>whoami</title><h1>Protected app</h1>'\n\
         printf '<p id=\"email\">email: %s</p>' \"$OIDC_CLAIM_email\"\n\
         printf '<p id=\"groups\">groups: %s</p>' \"$OIDC_CLAIM_groups\"\n\
         printf '<p id=\"user\">remote user: %s</p>' \"$REMOTE_USER\"\n\
         printf '<a id=\"logout\" href=\"/app/redirect_uri?logout=http%%3A%%2F%%2F127.0.0.1%%3A%s%%2Fbye.html\">Sign out</a>' \"$SERVER_PORT\"\n",
    )
    .expect("write cgi");
    std::fs::write(
        dir.join("bye.html"),
        "<!doctype html><title>bye</title><p id=\"bye\">Signed out of the app</p>",
    )
    .expect("write bye.html");
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        (dir, 0o755),
        (cgi_dir.as_path(), 0o755),
        (script.as_path(), 0o755),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    std::fs::set_permissions(dir.join("bye.html"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let load =
        |m: &str, file: &str| format!("LoadModule {m}_module {}/{file}\n", modules.display());
    let mut conf = String::new();
    for (m, f) in [
        ("mpm_prefork", "mod_mpm_prefork.so"),
        ("authz_core", "mod_authz_core.so"),
        ("authz_user", "mod_authz_user.so"),
        ("authn_core", "mod_authn_core.so"),
        ("mime", "mod_mime.so"),
        ("alias", "mod_alias.so"),
        ("cgi", "mod_cgi.so"),
        ("env", "mod_env.so"),
        ("auth_openidc", "mod_auth_openidc.so"),
    ] {
        conf.push_str(&load(m, f));
    }
    conf.push_str(&format!(
        r#"
ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {d}/apache.pid
ErrorLog {d}/apache-error.log
LogLevel warn auth_openidc:info
User www-data
Group www-data
StartServers 2
MinSpareServers 2
MaxSpareServers 4
KeepAlive Off
TypesConfig /etc/mime.types
DocumentRoot "{d}"
<Directory "{d}">
    Require all granted
</Directory>

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret apache-secret-0123456789abcdef
OIDCRedirectURI http://127.0.0.1:{port}/app/redirect_uri
OIDCCryptoPassphrase an-apache-test-passphrase-0123456789
OIDCScope "openid email profile groups"
OIDCPKCEMethod S256
OIDCRemoteUserClaim email
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCDefaultLoggedOutURL http://127.0.0.1:{port}/bye.html
OIDCSessionType server-cache
OIDCCacheType shm

ScriptAlias /app/whoami {d}/cgi/whoami
<Location /app/>
    AuthType openid-connect
    Require valid-user
</Location>
<Location /app/ops>
    AuthType openid-connect
    Require claim groups:ops
</Location>
"#
    ));
    let path = dir.join("apache.conf");
    std::fs::write(&path, conf).expect("write apache.conf");
    let mut proc = Proc::spawn(
        "apache2",
        Command::new(binary)
            .arg("-f")
            .arg(&path)
            .arg("-DFOREGROUND")
            .env("APACHE_RUN_DIR", dir)
            .env("APACHE_LOCK_DIR", dir),
        dir.join("apache.out"),
    );
    proc.wait_for_port(port, &dir.join("apache-error.log"));
    proc
}

/// Waits until the browser's page satisfies `pred` (URL, source); returns the source.
async fn wait(browser: &WebDriver, what: &str, pred: impl Fn(&str, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = browser.url().await;
        let source = browser.source().await;
        if pred(&url, &source) {
            return source;
        }
        if Instant::now() > deadline {
            panic!("waited for {what}; the browser is at {url}:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_mod_auth_openidc_with_chromium() {
    let (Some(apache_bin), Some(chromium), Some(driver_bin)) = (
        require("apache2", "apache2 libapache2-mod-auth-openidc"),
        require("chromium", "chromium"),
        require("chromedriver", "chromium-driver"),
    ) else {
        return;
    };
    if !Path::new("/usr/lib/apache2/modules/mod_auth_openidc.so").is_file() {
        missing(
            "mod_auth_openidc",
            "apt-get install libapache2-mod-auth-openidc",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let apache_port = free_port();
    let extra = format!(
        r#"
[[oidc.clients]]
id = "apache"
name = "Apache test app"
secret = "apache-secret-0123456789abcdef"
redirect_uris = ["http://127.0.0.1:{apache_port}/app/redirect_uri"]
post_logout_redirect_uris = ["http://127.0.0.1:{apache_port}/bye.html"]
"#
    );
    let lab = Lab::start_with(Backend::Embedded, 60, &extra, &[]);
    let ada = lab.user("ada", &["media", "family"]).await;
    let _apache = apache(&apache_bin, dir.path(), apache_port, &lab.issuer);
    let app = format!("http://127.0.0.1:{apache_port}");

    let browser = WebDriver::start(&chromium, &driver_bin, dir.path(), &[]).await;
    let apache_log = dir.path().join("apache-error.log");
    let fail_logs = || {
        format!(
            "--- apache:\n{}\n--- gatehouse:\n{}",
            std::fs::read_to_string(&apache_log).unwrap_or_default(),
            lab.server.logs()
        )
    };

    // The protected page: mod_auth_openidc sends the browser to gatehouse, which sends it to
    // its login page.
    browser.goto(&format!("{app}/app/whoami")).await;
    let login = format!("{}/login?rd=", lab.issuer);
    wait(&browser, "the login page", |u, _| u.starts_with(&login)).await;
    browser.type_into("#email", &ada).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;

    // The consent page names the app; Allow.
    let page = wait(&browser, "the consent page", |_, s| {
        s.contains("value=\"allow\"")
    })
    .await;
    assert!(page.contains("Apache test app"), "{page}");
    let artifacts = repo().join("target/test-artifacts");
    browser
        .screenshot(&artifacts.join("oidc-consent.png"))
        .await;
    browser.click("button[name=decision][value=allow]").await;

    // Back at the app, with the claims.
    let page = wait(&browser, "the protected page", |u, s| {
        u.starts_with(&format!("{app}/app/whoami")) && s.contains("Protected app")
    })
    .await;
    assert!(
        page.contains(&format!("email: {ada}")),
        "{page}\n{}",
        fail_logs()
    );
    assert!(
        page.contains("groups: family,media") || page.contains("groups: media,family"),
        "{page}"
    );
    assert!(page.contains(&format!("remote user: {ada}")), "{page}");
    browser
        .screenshot(&artifacts.join("oidc-apache-app.png"))
        .await;

    // A claim rule the user does not meet: 401 from Apache (mod_auth_openidc's authz).
    browser.goto(&format!("{app}/app/ops")).await;
    let page = wait(&browser, "the ops page", |_, s| !s.is_empty()).await;
    assert!(!page.contains("Protected app"), "{page}");

    // Signing out of the app: mod_auth_openidc calls the end_session_endpoint with the
    // id_token_hint and its post_logout_redirect_uri; the next visit needs a login again.
    browser.goto(&format!("{app}/app/whoami")).await;
    wait(&browser, "the protected page again", |_, s| {
        s.contains("Protected app")
    })
    .await;
    browser.click("#logout").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = browser.url().await;
        let source = browser.source().await;
        if url.starts_with(&format!("{app}/bye.html")) {
            break;
        }
        // One confirmation page is allowed: its button.
        if url.starts_with(&lab.issuer) && source.contains("<form") {
            browser.click("form button[type=submit]").await;
        }
        assert!(
            Instant::now() < deadline,
            "not signed out; at {url}:\n{source}\n{}",
            fail_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.goto(&format!("{app}/app/whoami")).await;
    wait(&browser, "the login page after logout", |u, _| {
        u.starts_with(&login)
    })
    .await;
    browser.quit().await;
}
