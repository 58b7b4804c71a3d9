//! Second factors over the JSON API, on the real binary and both backends (issue #13): TOTP
//! enrolment, confirmation and the login's second step, replay refused (on one node and across
//! nodes sharing Redis), recovery codes, regulation of wrong codes, `amr` in tokens through a
//! refresh, `mfa.required`, the `two_factor` forward-auth rule, `gatehouse user reset-mfa`,
//! and bad input. TOTP codes come from RFC 6238 computed here (hmac + sha1), not from the
//! server's code. Passkeys are exercised in a real browser: tests/mfa_browser.rs.

mod common;

use base64::Engine;
use common::{Backend, PASSWORD, Server, Tokens, assert_problem, email};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

/// RFC 6238 (SHA-1, 6 digits, 30 s), from a base32 secret.
struct Totp(Vec<u8>);

impl Totp {
    fn from_base32(secret: &str) -> Totp {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
        for c in secret.trim_end_matches('=').bytes() {
            let v = ALPHABET.iter().position(|a| *a == c).expect("base32") as u64;
            value = (value << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((value >> bits) as u8);
            }
        }
        Totp(out)
    }

    fn at_step(&self, step: u64) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&self.0).unwrap();
        mac.update(&step.to_be_bytes());
        let h = mac.finalize().into_bytes();
        let offset = (h[19] & 0xf) as usize;
        let bin = u32::from_be_bytes([
            h[offset] & 0x7f,
            h[offset + 1],
            h[offset + 2],
            h[offset + 3],
        ]);
        format!("{:06}", bin % 1_000_000)
    }

    fn step_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 30
    }
}

/// The claims of a JWT, unverified (the test reads what the server put there).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

async fn post_auth_json(
    server: &Server,
    path: &str,
    access: &str,
    body: &Value,
) -> reqwest::Response {
    server
        .http
        .post(server.url(path))
        .bearer_auth(access)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete_auth_json(
    server: &Server,
    path: &str,
    access: &str,
    body: &Value,
) -> reqwest::Response {
    server
        .http
        .delete(server.url(path))
        .bearer_auth(access)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Sets up TOTP for a signed-in user, confirming with the code of the current step; returns
/// the authenticator and the recovery codes.
async fn enrol_totp(server: &Server, access: &str) -> (Totp, Vec<String>) {
    let r = post_auth_json(
        server,
        "/auth/mfa/totp",
        access,
        &json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret = body["secret"].as_str().unwrap();
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let totp = Totp::from_base32(secret);
    let r = post_auth_json(
        server,
        "/auth/mfa/totp/confirm",
        access,
        &json!({"code": totp.at_step(Totp::step_now())}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (totp, codes)
}

/// The password step of a login that needs a second factor: its `mfa_token`.
async fn first_step(server: &Server, user: &str, methods: &[&str]) -> String {
    let r = server.login(user, PASSWORD).await;
    let problem = assert_problem(r, 401).await;
    assert_eq!(
        problem["type"],
        "urn:gatehouse:problem:second-factor-required"
    );
    let got: Vec<&str> = problem["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(got, methods);
    problem["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(server: &Server, token: &str, method: &str, code: &str) -> reqwest::Response {
    server
        .post_json(
            "/auth/login/second-factor",
            &json!({"mfa_token": token, "method": method, "code": code}),
        )
        .await
}

async fn totp_enrolment_second_step_and_replay(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "50")
        .start();
    let ada = email("ada");
    let session = server.signup(&ada).await;
    assert_eq!(claims(&session.access)["amr"], json!(["pwd"]));

    // Nothing set up yet.
    let r = server.get_auth("/auth/mfa", &session.access).await;
    assert_eq!(r.status(), 200);
    let status: Value = r.json().await.unwrap();
    assert_eq!(
        status,
        json!({"totp": false, "passkeys": [], "recovery_codes_left": 0})
    );

    // Enrolment needs the current password; a wrong code does not confirm.
    let r = post_auth_json(
        &server,
        "/auth/mfa/totp",
        &session.access,
        &json!({"password": "nope"}),
    )
    .await;
    assert_problem(r, 401).await;
    let r = post_auth_json(
        &server,
        "/auth/mfa/totp/confirm",
        &session.access,
        &json!({"code": "123456"}),
    )
    .await;
    assert_eq!(
        assert_problem(r, 409).await["type"],
        "urn:gatehouse:problem:conflict"
    );
    let r = post_auth_json(
        &server,
        "/auth/mfa/totp",
        &session.access,
        &json!({"password": PASSWORD}),
    )
    .await;
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let totp = Totp::from_base32(&secret);
    let now = Totp::step_now();
    for wrong in [totp.at_step(now + 5), "12345".into(), "abcdef".into()] {
        let r = post_auth_json(
            &server,
            "/auth/mfa/totp/confirm",
            &session.access,
            &json!({"code": wrong}),
        )
        .await;
        assert_problem(r, 422).await;
    }
    let r = post_auth_json(
        &server,
        "/auth/mfa/totp/confirm",
        &session.access,
        &json!({"code": totp.at_step(now)}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let codes = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codes, 10);
    let status: Value = server
        .get_auth("/auth/mfa", &session.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["totp"], true);
    assert_eq!(status["recovery_codes_left"], 10);
    // Enrolment ends no session.
    assert_eq!(server.me_status(&session.access).await, 200);

    // A login is two steps now; a wrong password is still the plain 401.
    let r = server.login(&ada, "wrong password").await;
    assert_eq!(
        assert_problem(r, 401).await["type"],
        "urn:gatehouse:problem:invalid-credentials"
    );
    let token = first_step(&server, &ada, &["totp", "recovery"]).await;
    // The confirming code was used: never again (replay), nor any earlier step.
    let r = second_step(&server, &token, "totp", &totp.at_step(now)).await;
    assert_eq!(
        assert_problem(r, 401).await["type"],
        "urn:gatehouse:problem:invalid-second-factor"
    );
    let r = second_step(&server, &token, "totp", &totp.at_step(now - 1)).await;
    assert_problem(r, 401).await;
    // Bad shapes, unknown methods, bad tokens: 401, never 500.
    for (method, code) in [
        ("totp", "12345"),
        ("totp", "1234567"),
        ("totp", "12a456"),
        ("sms", "123456"),
        ("recovery", "!!"),
        ("totp", ""),
    ] {
        let r = second_step(&server, &token, method, code).await;
        assert_problem(r, 401).await;
    }
    for bad in ["", "x", &"A".repeat(43), &"é".repeat(40)] {
        let r = second_step(&server, bad, "totp", &totp.at_step(now + 1)).await;
        assert_eq!(
            assert_problem(r, 401).await["type"],
            "urn:gatehouse:problem:invalid-mfa-token"
        );
    }
    let r = server
        .post_json("/auth/login/second-factor", &json!({"mfa_token": token}))
        .await;
    assert_problem(r, 400).await;
    // The next step's code (one step of drift) signs in: amr pwd + otp.
    let r = second_step(&server, &token, "totp", &totp.at_step(now + 1)).await;
    assert_eq!(r.status(), 200);
    let two = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(claims(&two.access)["amr"], json!(["pwd", "otp"]));
    // The mfa_token is single use; the code too, even with a new token.
    let r = second_step(&server, &token, "totp", &totp.at_step(now + 1)).await;
    assert_eq!(
        assert_problem(r, 401).await["type"],
        "urn:gatehouse:problem:invalid-mfa-token"
    );
    let again = first_step(&server, &ada, &["totp", "recovery"]).await;
    let r = second_step(&server, &again, "totp", &totp.at_step(now + 1)).await;
    assert_problem(r, 401).await;

    // amr survives a refresh.
    let r = server.refresh(&two.refresh).await;
    assert_eq!(r.status(), 200);
    let refreshed = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(claims(&refreshed.access)["amr"], json!(["pwd", "otp"]));
    // A password change keeps the caller's factors in its new session.
    let r = post_auth_json(
        &server,
        "/auth/password",
        &refreshed.access,
        &json!({"current_password": PASSWORD, "new_password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let changed = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(claims(&changed.access)["amr"], json!(["pwd", "otp"]));
}

async fn recovery_codes_and_removal(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "50")
        .start();
    let bob = email("bob");
    let session = server.signup(&bob).await;
    let (_totp, codes) = enrol_totp(&server, &session.access).await;
    // Codes of the wrong length or alphabet, or wrong ones: 401.
    let token = first_step(&server, &bob, &["totp", "recovery"]).await;
    for bad in ["abcde", "00000-00000", "ZZZZZ-ZZZZZ", "abcde-fghjkm"] {
        assert_problem(second_step(&server, &token, "recovery", bad).await, 401).await;
    }
    // A recovery code, typed in upper case without the dash, signs in once.
    let typed = codes[0].replace('-', "").to_uppercase();
    let r = second_step(&server, &token, "recovery", &typed).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(claims(&t.access)["amr"], json!(["pwd", "otp"]));
    let token = first_step(&server, &bob, &["totp", "recovery"]).await;
    assert_problem(
        second_step(&server, &token, "recovery", &codes[0]).await,
        401,
    )
    .await;
    let status: Value = server
        .get_auth("/auth/mfa", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["recovery_codes_left"], 9);

    // Regenerating: a new set of ten, the old ones dead.
    let r = post_auth_json(
        &server,
        "/auth/mfa/recovery-codes",
        &t.access,
        &json!({"password": "nope"}),
    )
    .await;
    assert_problem(r, 401).await;
    let r = post_auth_json(
        &server,
        "/auth/mfa/recovery-codes",
        &t.access,
        &json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let fresh: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    let token = first_step(&server, &bob, &["totp", "recovery"]).await;
    assert_problem(
        second_step(&server, &token, "recovery", &codes[1]).await,
        401,
    )
    .await;
    let r = second_step(&server, &token, "recovery", &fresh[0]).await;
    assert_eq!(r.status(), 200);

    // Removing the last factor removes the codes; a login is one step again; nothing ends.
    let r = delete_auth_json(
        &server,
        "/auth/mfa/totp",
        &t.access,
        &json!({"password": "nope"}),
    )
    .await;
    assert_problem(r, 401).await;
    let r = delete_auth_json(
        &server,
        "/auth/mfa/totp",
        &t.access,
        &json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = delete_auth_json(
        &server,
        "/auth/mfa/totp",
        &t.access,
        &json!({"password": PASSWORD}),
    )
    .await;
    assert_problem(r, 404).await;
    let status: Value = server
        .get_auth("/auth/mfa", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"totp": false, "passkeys": [], "recovery_codes_left": 0})
    );
    assert_eq!(server.me_status(&session.access).await, 200);
    server.relogin(&bob).await;
    let r = post_auth_json(
        &server,
        "/auth/mfa/recovery-codes",
        &t.access,
        &json!({"password": PASSWORD}),
    )
    .await;
    assert_problem(r, 409).await;
    // Enrolment changes are audit events.
    let logs = server.logs();
    for event in ["totp_enabled", "recovery_codes_generated", "totp_removed"] {
        assert!(
            logs.contains(&format!("event=\"{event}\""))
                || logs.contains(&format!("event={event}")),
            "{event}: {logs}"
        );
    }
}

async fn wrong_codes_are_regulated(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "3")
        .start();
    let cy = email("cy");
    let session = server.signup(&cy).await;
    let (totp, _) = enrol_totp(&server, &session.access).await;
    let now = Totp::step_now();
    // Wrong codes count; a right password in between does not reset the count.
    let token = first_step(&server, &cy, &["totp", "recovery"]).await;
    assert_problem(second_step(&server, &token, "totp", "000000").await, 401).await;
    let token = first_step(&server, &cy, &["totp", "recovery"]).await;
    assert_problem(second_step(&server, &token, "totp", "000001").await, 401).await;
    // Malformed codes are refused without counting.
    for _ in 0..5 {
        assert_problem(second_step(&server, &token, "totp", "12").await, 401).await;
    }
    let token = first_step(&server, &cy, &["totp", "recovery"]).await;
    // The third wrong code bans the account: its answer is still 401, then 429 for anything.
    assert_problem(second_step(&server, &token, "totp", "000002").await, 401).await;
    let r = second_step(&server, &token, "totp", &totp.at_step(now + 1)).await;
    assert_eq!(
        assert_problem(r, 429).await["type"],
        "urn:gatehouse:problem:too-many-requests"
    );
    let r = server.login(&cy, PASSWORD).await;
    assert_eq!(r.status(), 429, "banned after 3 wrong codes");
    assert!(r.headers().contains_key("retry-after"));
}

async fn mfa_required_limits_a_session_to_enrolment(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_MFA__REQUIRED", "true")
        .start();
    let dee = email("dee");
    let limited = server.signup(&dee).await;
    assert_eq!(claims(&limited.access)["enrolment_only"], true);
    let r = server.get_auth("/auth/me", &limited.access).await;
    assert_eq!(
        assert_problem(r, 403).await["type"],
        "urn:gatehouse:problem:second-factor-enrolment-required"
    );
    let r = server.get_auth("/auth/sessions", &limited.access).await;
    assert_problem(r, 403).await;
    // Forward-auth: 403 for API clients, the account page for browsers.
    let fa = |accept: &'static str| {
        server
            .http
            .get(server.url("/authz/forward-auth"))
            .bearer_auth(&limited.access)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.example.org")
            .header("x-forwarded-uri", "/")
            .header("accept", accept)
            .send()
    };
    assert_problem(fa("application/json").await.unwrap(), 403).await;
    let r = fa("text/html").await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/account");
    // The enrolment endpoints work; once a factor is confirmed a refresh gives a full session.
    let r = server.get_auth("/auth/mfa", &limited.access).await;
    assert_eq!(r.status(), 200);
    enrol_totp(&server, &limited.access).await;
    let r = server.refresh(&limited.refresh).await;
    let full = Tokens::from(r.json::<Value>().await.unwrap());
    assert!(claims(&full.access).get("enrolment_only").is_none());
    assert_eq!(
        claims(&full.access)["amr"],
        json!(["pwd", "otp"]),
        "confirming counted"
    );
    assert_eq!(server.me_status(&full.access).await, 200);
}

async fn two_factor_rule_in_forward_auth(backend: Backend) {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        r#"public_url = "https://auth.example.org"
[[access_control.rules]]
domain = "vault.example.org"
policy = "two_factor"
"#,
    )
    .unwrap();
    let server = Server::builder(backend)
        .env("GATEHOUSE_CONFIG", &config.path().display().to_string())
        .start();
    let fa = |token: String, accept: &'static str, host: &'static str| {
        server
            .http
            .get(server.url("/authz/forward-auth"))
            .bearer_auth(token)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", "/secret?x=1")
            .header("accept", accept)
            .send()
    };
    let eve = email("eve");
    let one = server.signup(&eve).await;
    // One factor, no factor set up: other apps pass; the vault sends browsers to /account.
    assert_eq!(
        fa(one.access.clone(), "text/html", "app.example.org")
            .await
            .unwrap()
            .status(),
        200
    );
    let r = fa(one.access.clone(), "text/html", "vault.example.org")
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://auth.example.org/account");
    let r = fa(one.access.clone(), "application/json", "vault.example.org")
        .await
        .unwrap();
    assert_eq!(
        assert_problem(r, 401).await["type"],
        "urn:gatehouse:problem:step-up-required"
    );
    // With a factor set up (the enrolling session counts as two-factor from then on, so use
    // another one-factor session made before): browsers go to the second step.
    let older = server.relogin(&eve).await;
    let (totp, _) = enrol_totp(&server, &one.access).await;
    let r = fa(older.access.clone(), "text/html", "vault.example.org")
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://auth.example.org/login/second-factor?rd=https%3A%2F%2Fvault.example.org%2Fsecret%3Fx%3D1"
    );
    assert_eq!(
        fa(one.access.clone(), "text/html", "vault.example.org")
            .await
            .unwrap()
            .status(),
        200
    );
    // A login with both factors passes.
    let token = first_step(&server, &eve, &["totp", "recovery"]).await;
    let r = second_step(&server, &token, "totp", &totp.at_step(Totp::step_now() + 1)).await;
    let two = Tokens::from(r.json::<Value>().await.unwrap());
    let r = fa(two.access, "application/json", "vault.example.org")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["remote-user"], eve.as_str());
}

async fn reset_mfa_removes_factors_and_ends_sessions(backend: Backend) {
    let server = Server::start(backend);
    let fay = email("fay");
    let session = server.signup(&fay).await;
    enrol_totp(&server, &session.access).await;
    // A login in flight (password checked) dies with the reset too.
    let in_flight = first_step(&server, &fay, &["totp", "recovery"]).await;
    let out = server.cli(&["user", "reset-mfa", &fay], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("second factors"), "{text}");
    // The reset is an audit event, in the server's log (admin socket) or the command's.
    let audit = format!("{}{}", server.logs(), String::from_utf8_lossy(&out.stderr));
    assert!(audit.contains("factors_reset"), "{audit}");
    assert_eq!(server.me_status(&session.access).await, 401);
    assert_problem(
        second_step(&server, &in_flight, "totp", "123456").await,
        401,
    )
    .await;
    let t = server.relogin(&fay).await;
    let status: Value = server
        .get_auth("/auth/mfa", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"totp": false, "passkeys": [], "recovery_codes_left": 0})
    );
    let out = server.cli(&["user", "reset-mfa", "nobody@example.org"], "");
    assert!(!out.status.success());
}

async fn cookie_mode_second_step(backend: Backend) {
    let server = Server::start(backend);
    let gus = email("gus");
    let session = server.signup(&gus).await;
    let (totp, _) = enrol_totp(&server, &session.access).await;
    let token = first_step(&server, &gus, &["totp", "recovery"]).await;
    // Cookie mode checks the origin (no Origin header: 403).
    let r = server
        .http
        .post(server.url("/auth/login/second-factor"))
        .header("x-auth-mode", "cookie")
        .json(&json!({"mfa_token": token, "method": "totp", "code": totp.at_step(Totp::step_now() + 1)}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;
    let r = server
        .http
        .post(server.url("/auth/login/second-factor"))
        .header("x-auth-mode", "cookie")
        .header("origin", &server.base)
        .json(&json!({"mfa_token": token, "method": "totp", "code": totp.at_step(Totp::step_now() + 1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    common::assert_token_cookies(&common::set_cookies(r.headers()), None, false);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_none());
}

async fn passkey_endpoints_refuse_bad_input(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_PUBLIC_URL", "http://localhost:9")
        .start();
    let hal = email("hal");
    let s = server.signup(&hal).await;
    let send = |path: &'static str, body: String| {
        server
            .http
            .post(server.url(path))
            .bearer_auth(&s.access)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Malformed JSON and wrong shapes: 400.
    for body in [
        "",
        "{",
        "[]",
        "{\"ceremony\":1}",
        "{\"ceremony\":\"x\",\"credential\":{}}",
        "{\"ceremony\":\"x\",\"credential\":{\"id\":\"a\",\"rawId\":\"!!\",\"type\":\"public-key\",\"response\":{}}}",
    ] {
        let r = send("/auth/mfa/passkeys", body.into()).await.unwrap();
        assert_problem(r, 400).await;
        let r = send("/auth/passkey/login", body.into()).await.unwrap();
        assert_problem(r, 400).await;
    }
    // A well-formed answer to an unknown ceremony: 400 (registration), 401 (sign-in).
    let credential = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"clientDataJSON": "e30", "attestationObject": "oA"}
    });
    let r = send(
        "/auth/mfa/passkeys",
        json!({"ceremony": "A".repeat(43), "credential": credential}).to_string(),
    )
    .await
    .unwrap();
    assert_problem(r, 400).await;
    let assertion = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA", "userHandle": null}
    });
    let r = send(
        "/auth/passkey/login",
        json!({"ceremony": "A".repeat(43), "credential": assertion}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(
        assert_problem(r, 401).await["type"],
        "urn:gatehouse:problem:invalid-second-factor"
    );
    // A real ceremony answered with garbage: refused, and the ceremony is used up.
    let r = send("/auth/passkey/options", String::new()).await.unwrap();
    assert_eq!(r.status(), 200);
    let options: Value = r.json().await.unwrap();
    let ceremony = options["ceremony"].as_str().unwrap().to_owned();
    assert!(options["publicKey"]["challenge"].is_string(), "{options}");
    assert!(options.get("mediation").is_none());
    let r = send(
        "/auth/passkey/login",
        json!({"ceremony": ceremony, "credential": assertion}).to_string(),
    )
    .await
    .unwrap();
    assert_problem(r, 401).await;
    // Registration options need the password and a sensible name.
    let r = send(
        "/auth/mfa/passkeys/options",
        json!({"name": "laptop", "password": "nope"}).to_string(),
    )
    .await
    .unwrap();
    assert_problem(r, 401).await;
    let r = send(
        "/auth/mfa/passkeys/options",
        json!({"name": " ", "password": PASSWORD}).to_string(),
    )
    .await
    .unwrap();
    assert_problem(r, 422).await;
    let r = send(
        "/auth/mfa/passkeys/options",
        json!({"name": "laptop", "password": PASSWORD}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let options: Value = r.json().await.unwrap();
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    let r = server
        .http
        .delete(server.url("/auth/mfa/passkeys/nope"))
        .bearer_auth(&s.access)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404).await;
    // Without public_url passkeys are off: 501.
    let plain = Server::start(Backend::Embedded);
    let r = plain.post_json("/auth/passkey/options", &json!({})).await;
    assert_problem(r, 501).await;
}

backend_tests!(
    totp_enrolment_second_step_and_replay,
    recovery_codes_and_removal,
    wrong_codes_are_regulated,
    mfa_required_limits_a_session_to_enrolment,
    two_factor_rule_in_forward_auth,
    reset_mfa_removes_factors_and_ends_sessions,
    cookie_mode_second_step,
    passkey_endpoints_refuse_bad_input,
);

/// Two nodes sharing Redis (sessions and accounts): a TOTP code accepted on one is refused
/// on the other, and so is the same step raced on both at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_code_is_refused_on_another_node() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("mfa_key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    let node = || {
        Server::builder(backend.clone())
            .env("JWT_SECRET", &"s".repeat(40))
            .env("GATEHOUSE_MFA__KEY_FILE", &key.display().to_string())
            .start()
    };
    let (a, b) = (node(), node());
    let ivy = email("ivy");
    let session = a.signup(&ivy).await;
    let (totp, _) = enrol_totp(&a, &session.access).await;
    let code = totp.at_step(Totp::step_now() + 1);
    let on_a = first_step(&a, &ivy, &["totp", "recovery"]).await;
    let on_b = first_step(&b, &ivy, &["totp", "recovery"]).await;
    assert_eq!(second_step(&a, &on_a, "totp", &code).await.status(), 200);
    assert_problem(second_step(&b, &on_b, "totp", &code).await, 401).await;
    // The mfa_token of a login begun on one node is good on the other, once.
    let started = first_step(&a, &ivy, &["totp", "recovery"]).await;
    let next = totp.at_step(Totp::step_now() + 1);
    let racing = futures::future::join_all([
        second_step(&a, &started, "totp", &next),
        second_step(&b, &started, "totp", &next),
    ])
    .await;
    let ok = racing.iter().filter(|r| r.status() == 200).count();
    assert!(ok <= 1, "one code, one login at most");
}
