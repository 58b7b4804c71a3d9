//! The email flows end to end: the real binary over TCP, on both backends, against a real
//! SMTP server (Python's aiosmtpd, `tests/smtp_sink.py`) whose received messages the tests
//! read: password reset, address verification, email change, invitations and reset links
//! (with and without SMTP), notices, a stalled relay, a refusing relay, a restart with mail
//! pending, links across nodes, and bad input on every new endpoint and page.
//!
//! Without `python3` and aiosmtpd (`pip install aiosmtpd`) the SMTP tests are skipped,
//! loudly; with `CI=true` they fail (`.ci/run` installs it).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, PASSWORD, Server, assert_problem, email, metric_sample};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a fresh and unguessable passphrase";

// --- the SMTP server -------------------------------------------------------------------

/// A running `tests/smtp_sink.py`: what it received is in `dir`.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    /// Starts the sink, or `None` (said loudly) without aiosmtpd; a failure under `CI=true`.
    fn start() -> Option<Sink> {
        let has_aiosmtpd = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_aiosmtpd {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "python3 with aiosmtpd is missing; CI must install it (pip install aiosmtpd)"
                );
            }
            eprintln!(
                "SKIPPED: python3 with aiosmtpd is missing (pip install aiosmtpd); this email test did not run"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        Some(Sink::spawn(dir, 0))
    }

    fn spawn(dir: tempfile::TempDir, port: u16) -> Sink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("sink output");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink did not start: {line:?}"));
        Sink { child, port, dir }
    }

    /// The next answers to DATA, one per message (e.g. a 451), before it accepts again.
    fn script(&self, answers: &[&str]) {
        std::fs::write(self.dir.path().join("script"), answers.join("\n") + "\n").unwrap();
    }

    fn messages(&self) -> Vec<Value> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "json").then_some((n, p))
            })
            .collect();
        found.sort();
        found
            .iter()
            .map(|(_, p)| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until a message to `to` arrives that was not among the first `seen`; returns it.
    async fn wait_for(&self, to: &str, seen: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(m) = self
                .messages()
                .into_iter()
                .skip(seen)
                .find(|m| m["rcpt_tos"][0].as_str() == Some(to))
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no mail to {to} arrived: {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn count_to(&self, to: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m["rcpt_tos"][0].as_str() == Some(to))
            .count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- servers ---------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A server whose public_url is its own address, sending through `smtp_port` (none: no SMTP).
fn builder(backend: Backend, smtp_port: Option<u16>) -> common::ServerBuilder {
    let port = free_port();
    let mut b = Server::builder(backend)
        .env("GATEHOUSE_LISTEN", &format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_PUBLIC_URL", &format!("http://127.0.0.1:{port}"))
        .env("GATEHOUSE_EMAIL__RESEND_INTERVAL", "0")
        .env("GATEHOUSE_EMAIL__RETRY_DELAY", "1")
        .env("GATEHOUSE_EMAIL__SITE_NAME", "Example Site")
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "0");
    if let Some(smtp) = smtp_port {
        b = b
            .env("GATEHOUSE_SMTP__HOST", "127.0.0.1")
            .env("GATEHOUSE_SMTP__PORT", &smtp.to_string())
            .env("GATEHOUSE_SMTP__TLS", "none")
            .env("GATEHOUSE_SMTP__TIMEOUT", "2")
            .env(
                "GATEHOUSE_SMTP__FROM",
                "Example Site <no-reply@example.org>",
            );
    }
    b
}

/// The link (`http://…?token=…`) in a message's text part.
fn link_in(message: &Value) -> String {
    let text = message["text"].as_str().expect("text part");
    let start = text.find("http://").expect("a link in the text");
    text[start..]
        .split_whitespace()
        .next()
        .expect("link")
        .to_owned()
}

fn token_of(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .expect("token in link")
        .to_owned()
}

async fn forgot(server: &Server, email: &str) -> reqwest::Response {
    server
        .post_json("/auth/password/forgot", &json!({ "email": email }))
        .await
}

async fn reset(server: &Server, token: &str, password: &str) -> reqwest::Response {
    server
        .post_json(
            "/auth/password/reset",
            &json!({ "token": token, "new_password": password }),
        )
        .await
}

/// Posts a link page's form as a browser on gatehouse's own site would.
async fn post_form(server: &Server, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    server
        .http
        .post(server.url(path))
        .header("origin", &server.base)
        .form(fields)
        .send()
        .await
        .expect("form post")
}

async fn mail_metric(server: &Server, name: &str) -> f64 {
    metric_sample(&server.metrics_text().await, name).unwrap_or(-1.0)
}

async fn wait_metric(server: &Server, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mail_metric(server, name).await < at_least {
        assert!(
            Instant::now() < deadline,
            "{name} stayed below {at_least}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- flows -----------------------------------------------------------------------------

async fn forgot_reset_and_the_notice(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port)).start();
    let ada = email("reset");
    let first = server.signup(&ada).await;
    let second = server.relogin(&ada).await;

    let r = forgot(&server, &ada).await;
    assert_eq!(r.status(), 202);
    let mail = sink.wait_for(&ada, 0).await;
    let headers = &mail["headers"];
    assert_eq!(headers["From"], "Example Site <no-reply@example.org>");
    assert_eq!(headers["To"], ada.as_str());
    assert_eq!(headers["Auto-Submitted"], "auto-generated");
    assert!(
        headers["Date"].is_string() && headers["Message-ID"].is_string(),
        "{headers}"
    );
    assert!(
        headers["Subject"]
            .as_str()
            .unwrap()
            .contains("Example Site")
    );
    let link = link_in(&mail);
    assert!(
        link.starts_with(&format!("{}/reset?token=", server.base)),
        "{link}"
    );
    let html = mail["html"].as_str().unwrap();
    assert!(html.contains("Example Site") && html.contains(&link.replace('&', "&amp;")));
    assert!(mail["text"].as_str().unwrap().contains(&server.base));

    // The page shows the form, leaks nothing through Referer, and uses nothing.
    let page = server.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "strict-origin");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let body = page.text().await.unwrap();
    assert!(
        body.contains("name=\"new_password\"") && body.contains(&ada),
        "{body}"
    );

    // A weak password: 422, and the link still works.
    let token = token_of(&link);
    assert_problem(reset(&server, &token, "short").await, 422).await;
    let r = reset(&server, &token, NEW_PASSWORD).await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    // Single use; every session ended; the new password signs in, the old no longer.
    assert_problem(reset(&server, &token, NEW_PASSWORD).await, 400).await;
    assert_eq!(server.me_status(&first.access).await, 401);
    assert_eq!(server.me_status(&second.access).await, 401);
    assert_eq!(server.refresh(&second.refresh).await.status(), 401);
    assert_eq!(server.login(&ada, PASSWORD).await.status(), 401);
    assert_eq!(server.login(&ada, NEW_PASSWORD).await.status(), 200);
    // The notice of the change.
    let notice = sink.wait_for(&ada, 1).await;
    assert!(
        notice["headers"]["Subject"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{notice}"
    );
    assert_eq!(notice["headers"]["Auto-Submitted"], "auto-generated");

    // A newer link kills the older one.
    forgot(&server, &ada).await;
    let older = token_of(&link_in(&sink.wait_for(&ada, 2).await));
    forgot(&server, &ada).await;
    let newer = token_of(&link_in(&sink.wait_for(&ada, 3).await));
    assert_problem(reset(&server, &older, PASSWORD).await, 400).await;
    assert_eq!(reset(&server, &newer, PASSWORD).await.status(), 204);
    sink.wait_for(&ada, 4).await;

    // A password change through the API mails the notice too.
    let tokens = server.relogin(&ada).await;
    let seen = sink.messages().len();
    let r = server
        .http
        .post(server.url("/auth/password"))
        .bearer_auth(&tokens.access)
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let notice = sink.wait_for(&ada, seen).await;
    assert!(
        notice["headers"]["Subject"]
            .as_str()
            .unwrap()
            .contains("was changed")
    );
    assert_eq!(sink.count_to(&ada), 6);
    // The relay's answer reaches the sink before gatehouse records it: wait for the count.
    wait_metric(&server, "gatehouse_mail_sent_total", 6.0).await;
    assert_eq!(
        mail_metric(&server, "gatehouse_mail_failed_total").await,
        0.0
    );
}

/// The same answer, after the same work, for known and unknown addresses; nothing is sent
/// for unknown ones; `email.resend_interval` holds back repeats.
async fn forgot_answers_the_same_for_unknown_addresses(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port))
        .env("GATEHOUSE_EMAIL__RESEND_INTERVAL", "60")
        .start();
    let known = email("known");
    server.signup(&known).await;
    let unknown = email("unknown");
    let a = forgot(&server, &known).await;
    let b = forgot(&server, &unknown).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
    assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
    sink.wait_for(&known, 0).await;
    // Repeats within the interval answer the same and send nothing more.
    for _ in 0..3 {
        assert_eq!(forgot(&server, &known).await.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count_to(&known), 1);
    assert_eq!(sink.count_to(&unknown), 0);

    // Timing: medians of alternating requests, each a handful of milliseconds at most.
    let (mut k, mut u) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        for (who, into) in [(&known, &mut k), (&unknown, &mut u)] {
            let started = Instant::now();
            assert_eq!(forgot(&server, who).await.status(), 202);
            into.push(started.elapsed());
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mk, mu) = (median(&mut k), median(&mut u));
    eprintln!("forgot median: known {mk:?}, unknown {mu:?}");
    assert!(
        mk < Duration::from_millis(25) && mu < Duration::from_millis(25),
        "{mk:?} {mu:?}"
    );
    let ratio = mk.as_secs_f64() / mu.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "known {mk:?} vs unknown {mu:?}"
    );
}

async fn verification_gates_login(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port))
        .env("GATEHOUSE_REGISTRATION__MODE", "open")
        .env("GATEHOUSE_REGISTRATION__VERIFY_EMAIL", "true")
        .start();
    let ada = email("verify");
    assert_eq!(server.register(&ada, PASSWORD).await.status(), 201);
    let first = token_of(&link_in(&sink.wait_for(&ada, 0).await));
    let body = assert_problem(server.login(&ada, PASSWORD).await, 403).await;
    assert_eq!(body["type"], "urn:gatehouse:problem:email-not-verified");
    // A wrong password still answers 401: the 403 says nothing without the password.
    assert_eq!(server.login(&ada, "wrong password").await.status(), 401);
    // Resend: same answer for anyone; a new link that kills the first.
    let r = server
        .post_json("/auth/verify/resend", &json!({"email": ada}))
        .await;
    assert_eq!(r.status(), 202);
    let r2 = server
        .post_json("/auth/verify/resend", &json!({"email": email("nobody")}))
        .await;
    assert_eq!(r2.status(), 202);
    let link = link_in(&sink.wait_for(&ada, 1).await);
    assert!(
        link.starts_with(&format!("{}/verify?token=", server.base)),
        "{link}"
    );
    let verify = |token: String| {
        let server = &server;
        async move {
            server
                .post_json("/auth/verify", &json!({ "token": token }))
                .await
        }
    };
    assert_problem(verify(first).await, 400).await;
    // The page asks before it confirms (a GET never uses the link), then the form does.
    let page = server.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Confirm my email"));
    assert_eq!(server.login(&ada, PASSWORD).await.status(), 403);
    let done = post_form(&server, "/verify", &[("token", &token_of(&link))]).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("is confirmed"));
    assert_eq!(server.login(&ada, PASSWORD).await.status(), 200);
    assert_problem(verify(token_of(&link)).await, 400).await;
}

async fn email_change_needs_the_new_mailbox(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port)).start();
    let (old, new, taken) = (email("old"), email("new"), email("taken"));
    let tokens = server.signup(&old).await;
    server.signup(&taken).await;
    let change = |new_email: &str, password: &str| {
        server
            .http
            .post(server.url("/auth/email"))
            .bearer_auth(&tokens.access)
            .json(&json!({"new_email": new_email, "password": password}))
            .send()
    };
    assert_problem(change(&new, "wrong password").await.unwrap(), 401).await;
    assert_problem(change(&taken.to_uppercase(), PASSWORD).await.unwrap(), 409).await;
    assert_problem(change("not an email", PASSWORD).await.unwrap(), 422).await;
    assert_problem(
        server
            .http
            .post(server.url("/auth/email"))
            .json(&json!({"new_email": new, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(change(&new, PASSWORD).await.unwrap().status(), 202);
    let link = link_in(&sink.wait_for(&new, 0).await);
    assert!(link.contains("/email/confirm?token="), "{link}");
    let notice = sink.wait_for(&old, 0).await;
    assert!(notice["text"].as_str().unwrap().contains(&new), "{notice}");
    assert!(
        !notice["text"].as_str().unwrap().contains("token="),
        "the old address gets no link"
    );
    // Until confirmed, the old email signs in.
    assert_eq!(server.login(&old, PASSWORD).await.status(), 200);
    assert_eq!(server.login(&new, PASSWORD).await.status(), 401);
    let page = server.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&new));
    let r = server
        .post_json("/auth/email/confirm", &json!({"token": token_of(&link)}))
        .await;
    assert_eq!(r.status(), 204);
    // The email changed; sessions stay; the old email is free again.
    assert_eq!(server.login(&new, PASSWORD).await.status(), 200);
    assert_eq!(server.login(&old, PASSWORD).await.status(), 401);
    let me: Value = server
        .get_auth("/auth/me", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], new.as_str());
    assert_problem(
        server
            .post_json("/auth/email/confirm", &json!({"token": token_of(&link)}))
            .await,
        400,
    )
    .await;
    assert_eq!(server.register(&old, PASSWORD).await.status(), 201);
}

/// Without SMTP: the sending endpoints answer 501; `user invite` and `user reset-link` print
/// links that work through their pages and `POST /auth/password/reset`; an account without
/// a password never signs in.
async fn printed_links_without_smtp(backend: Backend) {
    let server = builder(backend, None)
        .env("GATEHOUSE_REGISTRATION", "closed")
        .start();
    let ada = email("invited");
    for (path, body) in [
        ("/auth/password/forgot", json!({"email": ada})),
        ("/auth/verify/resend", json!({"email": ada})),
    ] {
        let p = assert_problem(server.post_json(path, &body).await, 501).await;
        assert_eq!(p["type"], "urn:gatehouse:problem:mail-not-configured");
    }
    let out = server.cli(&["user", "invite", &ada, "--role", "admin"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let link = printed.lines().next().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("{}/invite?token=", server.base)),
        "{printed}"
    );
    assert!(printed.contains("no mail was sent"), "{printed}");
    let listed = String::from_utf8(server.cli(&["user", "list"], "").stdout).unwrap();
    let row = listed
        .lines()
        .find(|l| l.contains(&ada))
        .unwrap_or_default()
        .to_owned();
    assert!(row.contains("invited"), "{listed}");
    for password in ["", "x", PASSWORD] {
        assert_ne!(server.login(&ada, password).await.status(), 200);
    }
    let page = server.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Choose your password"));
    assert_eq!(
        reset(&server, &token_of(&link), PASSWORD).await.status(),
        204
    );
    let tokens = server.relogin(&ada).await;
    assert_eq!(
        server
            .get_auth("/auth/me", &tokens.access)
            .await
            .json::<Value>()
            .await
            .unwrap()["role"],
        "admin"
    );
    let p = assert_problem(
        server
            .http
            .post(server.url("/auth/email"))
            .bearer_auth(&tokens.access)
            .json(&json!({"new_email": email("x"), "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        501,
    )
    .await;
    assert_eq!(p["status"], 501);
    // Inviting an account that has a password is refused.
    let again = server.cli(&["user", "invite", &ada], "");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("reset-link"));

    // `user reset-link`, used through the page's form.
    let out = server.cli(&["user", "reset-link", &ada], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/reset?token=", server.base)),
        "{link}"
    );
    let token = token_of(&link);
    let weak = post_form(
        &server,
        "/reset",
        &[("token", &token), ("new_password", "abc")],
    )
    .await;
    assert_eq!(weak.status(), 422);
    assert!(weak.text().await.unwrap().contains("role=\"alert\""));
    let done = post_form(
        &server,
        "/reset",
        &[("token", &token), ("new_password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    assert_eq!(server.me_status(&tokens.access).await, 401);
    assert_eq!(server.login(&ada, NEW_PASSWORD).await.status(), 200);
    // The used link's page says so.
    let page = server.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 400);
    // An unknown email is an error for the admin, not a silent success.
    let out = server.cli(&["user", "reset-link", &email("ghost")], "");
    assert!(!out.status.success());
}

/// With SMTP, `user invite` (through the running server's admin socket) mails the link.
async fn invitations_are_mailed(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port)).start();
    let bob = email("bob");
    let out = server.cli(&["user", "invite", &bob], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let mail = sink.wait_for(&bob, 0).await;
    assert_eq!(link_in(&mail), printed.lines().next().unwrap());
    assert!(
        mail["headers"]["Subject"]
            .as_str()
            .unwrap()
            .contains("invited")
    );
    let link = link_in(&mail);
    let done = post_form(
        &server,
        "/invite",
        &[("token", &token_of(&link)), ("new_password", PASSWORD)],
    )
    .await;
    assert_eq!(done.status(), 200);
    assert_eq!(server.login(&bob, PASSWORD).await.status(), 200);
    // Accepting the invitation is no password change: no notice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count_to(&bob), 1);
}

// --- a relay that misbehaves -----------------------------------------------------------

/// A relay that accepts connections and never says a word: forgot answers at once.
async fn a_stalled_relay_holds_nothing_up(backend: Backend) {
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stalled.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in stalled.incoming().take(20).flatten() {
            open.push(stream);
        }
    });
    let server = builder(backend, Some(port)).start();
    let ada = email("stalled");
    server.signup(&ada).await;
    let mut times = Vec::new();
    for i in 0..100 {
        let who = if i % 2 == 0 {
            ada.clone()
        } else {
            email("nobody")
        };
        let started = Instant::now();
        assert_eq!(forgot(&server, &who).await.status(), 202);
        times.push(started.elapsed());
    }
    times.sort();
    let p99 = times[98];
    eprintln!(
        "forgot with the relay stalled: median {:?}, p99 {p99:?}",
        times[50]
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    // The stalled delivery times out and is retried later.
    wait_metric(&server, "gatehouse_mail_retried_total", 1.0).await;
    assert!(mail_metric(&server, "gatehouse_mail_queue_depth").await >= 1.0);
    drop(held);
}

/// 451 twice, then accepted: retried with backoff and delivered once; 550: dropped, counted.
async fn a_refusing_relay_is_retried_or_given_up(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port)).start();
    let ada = email("deferred");
    server.signup(&ada).await;
    sink.script(&["451 4.3.0 Try again later", "451 4.3.0 Try again later"]);
    forgot(&server, &ada).await;
    let mail = sink.wait_for(&ada, 0).await;
    assert!(link_in(&mail).contains("token="));
    assert!(mail_metric(&server, "gatehouse_mail_retried_total").await >= 2.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count_to(&ada), 1, "delivered once");

    let bob = email("refused");
    server.signup(&bob).await;
    sink.script(&["550 5.1.1 No such user here"]);
    forgot(&server, &bob).await;
    wait_metric(&server, "gatehouse_mail_failed_total", 1.0).await;
    assert_eq!(sink.count_to(&bob), 0);
    assert!(server.logs().contains("mail_refused"), "{}", server.logs());
    wait_metric_equals(&server, "gatehouse_mail_queue_depth", 0.0).await;
}

async fn wait_metric_equals(server: &Server, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mail_metric(server, name).await != value {
        assert!(Instant::now() < deadline, "{name} is not {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mail the relay deferred survives a restart of gatehouse and goes out after it.
async fn pending_mail_survives_a_restart(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port))
        .env("GATEHOUSE_EMAIL__RETRY_DELAY", "2")
        .start();
    let ada = email("pending");
    server.signup(&ada).await;
    sink.script(&["451 4.3.0 Greylisted"; 200]);
    forgot(&server, &ada).await;
    wait_metric(&server, "gatehouse_mail_retried_total", 1.0).await;
    let server = server.restart();
    // The restarted server finds the mail in the outbox; the relay now takes it.
    sink.script(&[]);
    let mail = sink.wait_for(&ada, 0).await;
    assert!(link_in(&mail).contains("/reset?token="));
    // And the link works on the restarted server.
    assert_eq!(
        reset(&server, &token_of(&link_in(&mail)), NEW_PASSWORD)
            .await
            .status(),
        204
    );
}

/// A node killed while the relay is taking a mail (after the claim, before the mark): once
/// the lease runs out, the restarted node sends it again, with the same Message-ID, and
/// says that it may be a repeat.
async fn a_delivery_cut_off_is_sent_again_with_the_same_message_id(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port))
        .env("GATEHOUSE_SMTP__TIMEOUT", "2")
        .start();
    let ada = email("cutoff");
    server.signup(&ada).await;
    sink.script(&["SLEEP 1.5"]);
    forgot(&server, &ada).await;
    let holding = sink.dir.path().join("holding");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holding.exists() {
        assert!(Instant::now() < deadline, "the relay never got the mail");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut server = server;
    server.kill9();
    // The relay took it after all; the node died before it could mark it sent.
    let first = sink.wait_for(&ada, 0).await;
    let server = server.restart_after_kill();
    let again = sink.wait_for(&ada, 1).await;
    assert_eq!(
        first["headers"]["Message-ID"],
        again["headers"]["Message-ID"]
    );
    assert_eq!(link_in(&first), link_in(&again));
    assert!(server.logs().contains("mail_resent"), "{}", server.logs());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count_to(&ada), 2, "sent again once, not more");
}

/// Two nodes on one Redis: a link made on one works on the other, and each queued mail is
/// sent once although both deliver the shared outbox.
async fn links_work_across_nodes(backend: Backend) {
    if matches!(backend, Backend::Embedded) {
        return;
    }
    let Some(sink) = Sink::start() else { return };
    let secret = ("JWT_SECRET", "a shared secret of at least thirty-two bytes");
    let a = builder(backend.clone(), Some(sink.port))
        .env(secret.0, secret.1)
        .start();
    let b = builder(backend, Some(sink.port))
        .env(secret.0, secret.1)
        .start();
    let mut people = Vec::new();
    for i in 0..6 {
        let who = email("node");
        a.signup(&who).await;
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(forgot(node, &who).await.status(), 202);
        people.push(who);
    }
    for (i, who) in people.iter().enumerate() {
        let link = link_in(&sink.wait_for(who, 0).await);
        let other = if i % 2 == 0 { &b } else { &a };
        assert_eq!(
            reset(other, &token_of(&link), NEW_PASSWORD).await.status(),
            204
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for who in &people {
        // The reset link and the notice: each once.
        assert_eq!(sink.count_to(who), 2, "{who}: {:?}", sink.messages());
    }
}

// --- bad input -------------------------------------------------------------------------

async fn bad_input_never_answers_500(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port)).start();
    let tokens = server.signup(&email("bad")).await;
    let post = |path: &str, content_type: &str, body: &'static str| {
        server
            .http
            .post(server.url(path))
            .bearer_auth(&tokens.access)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let json_endpoints = [
        "/auth/password/forgot",
        "/auth/password/reset",
        "/auth/verify",
        "/auth/verify/resend",
        "/auth/email",
        "/auth/email/confirm",
    ];
    for path in json_endpoints {
        assert_problem(post(path, "text/plain", "x").await.unwrap(), 415).await;
        assert_problem(post(path, "application/json", "").await.unwrap(), 400).await;
        assert_problem(post(path, "application/json", "{").await.unwrap(), 400).await;
        assert_problem(post(path, "application/json", "[]").await.unwrap(), 400).await;
        assert_problem(
            post(path, "application/json", "{\"email\":1,\"token\":2}")
                .await
                .unwrap(),
            400,
        )
        .await;
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["allow"], "POST");
        assert_problem(r, 405).await;
        let big = "x".repeat(70_000);
        let r = server
            .http
            .post(server.url(path))
            .bearer_auth(&tokens.access)
            .json(&json!({ "email": big, "token": big }))
            .send()
            .await
            .unwrap();
        assert_problem(r, 413).await;
    }
    for bad_email in [
        "",
        "no-at-sign",
        "a@b",
        "\"q\"@x.org",
        "ada@x.org\r\nBcc: x@y.org",
    ] {
        for path in ["/auth/password/forgot", "/auth/verify/resend"] {
            let r = server.post_json(path, &json!({ "email": bad_email })).await;
            assert_problem(r, 422).await;
        }
    }
    let uid = "0".repeat(32);
    let secret = "A".repeat(43);
    let shaped = format!("{uid}.{secret}");
    for token in [
        "",
        "x",
        "..",
        "%00",
        &shaped,
        &"a".repeat(5000),
        "€.€",
        &format!("{shaped}\n"),
    ] {
        for path in ["/auth/verify", "/auth/email/confirm"] {
            assert_problem(
                server.post_json(path, &json!({ "token": token })).await,
                400,
            )
            .await;
        }
        assert_problem(reset(&server, token, NEW_PASSWORD).await, 400).await;
        for page in ["/reset", "/invite", "/verify", "/email/confirm"] {
            let r = server
                .http
                .get(server.url(page))
                .query(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{page} {token:?}");
            assert!(r.text().await.unwrap().contains("Link not valid"));
        }
    }
    for page in ["/reset", "/invite", "/verify", "/email/confirm"] {
        // No token, a repeated one, garbage in the query.
        for query in ["", "?token", "?token=a&token=b", "?%zz", "?token=%ff%fe"] {
            let r = server
                .http
                .get(format!("{}{page}{query}", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{page}{query}");
        }
        // Form posts: from another site, no origin, wrong type, not a form, an unknown token.
        let foreign = server
            .http
            .post(server.url(page))
            .header("origin", "https://evil.example")
            .form(&[("token", shaped.as_str())])
            .send()
            .await
            .unwrap();
        assert_problem(foreign, 403).await;
        let no_origin = server
            .http
            .post(server.url(page))
            .form(&[("token", shaped.as_str())])
            .send()
            .await
            .unwrap();
        assert_problem(no_origin, 403).await;
        let json_post = server
            .http
            .post(server.url(page))
            .header("origin", &server.base)
            .json(&json!({"token": shaped}))
            .send()
            .await
            .unwrap();
        assert_problem(json_post, 415).await;
        let r = post_form(
            &server,
            page,
            &[("token", "x"), ("new_password", NEW_PASSWORD)],
        )
        .await;
        assert_eq!(r.status(), 400, "{page}");
        let r = server
            .http
            .post(server.url(page))
            .header("origin", &server.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=%ff&token=1&&&=")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{page}: {}", r.status());
        let r = server.http.delete(server.url(page)).send().await.unwrap();
        assert_problem(r, 405).await;
    }
    // A password page posted without a password: the form again, the link still good.
    let ada = email("empty");
    server.signup(&ada).await;
    let out = server.cli(&["user", "reset-link", &ada], "");
    let link = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let r = post_form(&server, "/reset", &[("token", &token_of(&link))]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Enter a new password"));
    assert_eq!(server.http.get(&link).send().await.unwrap().status(), 200);
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
}

// --- gatehouse smtp test ---------------------------------------------------------------

async fn smtp_test_prints_the_relays_answer(backend: Backend) {
    let Some(sink) = Sink::start() else { return };
    let server = builder(backend, Some(sink.port)).start();
    let out = server.cli(&["smtp", "test", "admin@example.org"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("250"), "{printed}");
    let mail = sink.wait_for("admin@example.org", 0).await;
    assert!(
        mail["headers"]["Subject"]
            .as_str()
            .unwrap()
            .contains("Test")
    );
    sink.script(&["554 5.7.1 Relay denied"]);
    let out = server.cli(&["smtp", "test", "admin@example.org"], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("554"),
        "{out:?}"
    );
}

backend_tests!(
    forgot_reset_and_the_notice,
    forgot_answers_the_same_for_unknown_addresses,
    verification_gates_login,
    email_change_needs_the_new_mailbox,
    printed_links_without_smtp,
    invitations_are_mailed,
    a_stalled_relay_holds_nothing_up,
    a_refusing_relay_is_retried_or_given_up,
    pending_mail_survives_a_restart,
    a_delivery_cut_off_is_sent_again_with_the_same_message_id,
    links_work_across_nodes,
    bad_input_never_answers_500,
    smtp_test_prints_the_relays_answer,
);

/// `check-config` names a bad host, port, TLS mode or From, and says where mail goes.
#[test]
fn check_config_names_bad_mail_settings() {
    let run = |env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg("check-config")
            .env_clear()
            .env("GATEHOUSE_DATA_DIR", dir.path())
            .env("GATEHOUSE_PUBLIC_URL", "https://auth.example.org");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let from = ("GATEHOUSE_SMTP__FROM", "Example <no-reply@example.org>");
    for (env, key) in [
        (
            vec![("GATEHOUSE_SMTP__HOST", "smtp://mail.example.org"), from],
            "`smtp.host`",
        ),
        (
            vec![("GATEHOUSE_SMTP__HOST", "mail.example.org:25"), from],
            "`smtp.host`",
        ),
        (
            vec![
                ("GATEHOUSE_SMTP__HOST", "mail.example.org"),
                ("GATEHOUSE_SMTP__PORT", "0"),
                from,
            ],
            "`smtp.port`",
        ),
        (
            vec![
                ("GATEHOUSE_SMTP__HOST", "mail.example.org"),
                ("GATEHOUSE_SMTP__PORT", "70000"),
                from,
            ],
            "expected u16",
        ),
        (
            vec![
                ("GATEHOUSE_SMTP__HOST", "mail.example.org"),
                ("GATEHOUSE_SMTP__TLS", "none"),
                from,
            ],
            "`smtp.tls`",
        ),
        (
            vec![("GATEHOUSE_SMTP__HOST", "mail.example.org")],
            "`smtp.from`",
        ),
        (
            vec![
                ("GATEHOUSE_SMTP__HOST", "mail.example.org"),
                ("GATEHOUSE_SMTP__FROM", "a@b, c@d"),
            ],
            "`smtp.from`",
        ),
    ] {
        let (code, out) = run(&env);
        assert_eq!(code, Some(2), "{env:?}: {out}");
        assert!(out.contains(key), "{env:?}: {out}");
    }
    let (code, out) = run(&[("GATEHOUSE_SMTP__HOST", "mail.example.org"), from]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("mail via mail.example.org:587 (Starttls)"),
        "{out}"
    );
    let (code, out) = run(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no mail"), "{out}");
}
