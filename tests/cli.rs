//! The command line, driven as a subprocess: `user …` on a data dir (then checked through
//! a real server on that data dir), `check-config`, and `serve` refusing to start.

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Cheap argon2, so `user add` and `user passwd` are quick.
const CHEAP_ARGON2: &[(&str, &str)] = &[
    ("GATEHOUSE_ARGON2__MEMORY_KIB", "256"),
    ("GATEHOUSE_ARGON2__ITERATIONS", "1"),
];

/// How a finished subprocess ended.
#[derive(Debug)]
struct Output {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn assert_success(&self, what: &str) {
        assert!(self.success, "{what} failed: {self:#?}");
    }

    fn assert_failure(&self, what: &str) {
        assert!(
            !self.success && self.code.is_some(),
            "{what} should exit non-zero: {self:#?}"
        );
    }
}

/// Runs the binary with `args` in a clean environment: only `PATH`, the data dir (if any),
/// cheap argon2 and `env`; writes `stdin` and closes it; kills it after `timeout`.
fn run_with(
    args: &[&str],
    data_dir: Option<&Path>,
    env: &[(&str, &str)],
    stdin: &str,
    timeout: Duration,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEHOUSE_LOG__FORMAT", "text")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = data_dir {
        cmd.env("GATEHOUSE_DATA_DIR", dir);
    }
    for (k, v) in CHEAP_ARGON2.iter().chain(env) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gatehouse");
    {
        let mut input = child.stdin.take().expect("stdin");
        // The command may exit without reading its input; a broken pipe is fine then.
        let _ = input.write_all(stdin.as_bytes());
    }
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`gatehouse {}` still running after {timeout:?}; stderr so far:\n{}",
                args.join(" "),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        success: status.success(),
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A `gatehouse` command on `dir` that must finish within 30 s.
fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    run_with(args, Some(dir), &[], stdin, Duration::from_secs(30))
}

/// The `user list` row of `email`, split into columns: id, role, status, created, email.
fn list_row(listing: &str, email: &str) -> Vec<String> {
    let rows: Vec<Vec<String>> = listing
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|cols| cols.last().is_some_and(|e| e == email))
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "{email} listed {} times in:\n{listing}",
        rows.len()
    );
    assert_eq!(
        rows[0].len(),
        5,
        "unexpected row for {email}: {:?}",
        rows[0]
    );
    rows[0].clone()
}

fn list(dir: &Path) -> String {
    let out = run(dir, &["user", "list"], "");
    out.assert_success("user list");
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_list_set_role_disable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let alice = email("alice");
    let bob = email("bob");

    let out = run(dir, &["user", "add", &alice], &format!("{PASSWORD}\n"));
    out.assert_success("user add");
    assert!(
        out.stdout.contains(&alice) && out.stdout.contains("user"),
        "{out:#?}"
    );
    let out = run(
        dir,
        &["user", "add", &bob, "--role", "admin"],
        &format!("{PASSWORD}\n"),
    );
    out.assert_success("user add --role admin");
    assert!(out.stdout.contains("admin"), "{out:#?}");

    // The same email again, in another case, is refused: emails are unique.
    let out = run(
        dir,
        &["user", "add", &alice.to_uppercase()],
        &format!("{PASSWORD}\n"),
    );
    out.assert_failure("user add of a taken email");
    assert!(out.stderr.contains("exists"), "{out:#?}");

    let listing = list(dir);
    let a = list_row(&listing, &alice);
    let b = list_row(&listing, &bob);
    assert_eq!(
        (a[1].as_str(), a[2].as_str()),
        ("user", "active"),
        "{listing}"
    );
    assert_eq!(
        (b[1].as_str(), b[2].as_str()),
        ("admin", "active"),
        "{listing}"
    );
    assert_ne!(a[0], b[0], "ids must differ: {listing}");

    let out = run(dir, &["user", "set-role", &alice, "admin"], "");
    out.assert_success("user set-role");
    let out = run(dir, &["user", "set-role", &alice, "superuser"], "");
    out.assert_failure("user set-role to an unknown role");
    let out = run(dir, &["user", "set-role", &email("ghost"), "admin"], "");
    out.assert_failure("user set-role of an unknown user");

    let out = run(dir, &["user", "disable", &bob], "");
    out.assert_success("user disable");

    let listing = list(dir);
    let a = list_row(&listing, &alice);
    let b = list_row(&listing, &bob);
    assert_eq!(
        (a[1].as_str(), a[2].as_str()),
        ("admin", "active"),
        "{listing}"
    );
    assert_eq!(
        (b[1].as_str(), b[2].as_str()),
        ("admin", "disabled"),
        "{listing}"
    );

    // The server on this data dir (the CLI has exited, so the database is free) sees it all.
    let server = Server::builder(Backend::Embedded).data_dir(dir).start();
    let r = server.login(&bob, PASSWORD).await;
    assert_problem(r, 401).await;
    let r = server.login(&alice, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let access = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let me: Value = server
        .get_auth("/auth/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], alice.as_str());
    assert_eq!(me["role"], "admin");
    assert_eq!(me["id"], a[0].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_disable_ends_sessions_and_enable_restores_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let carol = email("carol");
    run(dir, &["user", "add", &carol], &format!("{PASSWORD}\n")).assert_success("user add");

    let mut server = Server::builder(Backend::Embedded).data_dir(dir).start();
    let r = server.login(&carol, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let tokens = Tokens::from(r.json::<Value>().await.unwrap());
    assert!(server.stop().success());

    run(dir, &["user", "disable", &carol], "").assert_success("user disable");
    let mut server = Server::builder(Backend::Embedded).data_dir(dir).start();
    assert_eq!(server.me_status(&tokens.access).await, 401);
    assert_problem(server.refresh(&tokens.refresh).await, 401).await;
    assert_problem(server.login(&carol, PASSWORD).await, 401).await;
    assert!(server.stop().success());

    run(dir, &["user", "enable", &carol], "").assert_success("user enable");
    let server = Server::builder(Backend::Embedded).data_dir(dir).start();
    assert_eq!(server.login(&carol, PASSWORD).await.status(), 200);
    // Enabling does not bring the ended session back.
    assert_eq!(server.me_status(&tokens.access).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_passwd_revokes_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let dave = email("dave");
    let new_password = "a brand new passphrase";
    run(dir, &["user", "add", &dave], &format!("{PASSWORD}\n")).assert_success("user add");

    let mut server = Server::builder(Backend::Embedded).data_dir(dir).start();
    let r = server.login(&dave, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let tokens = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(server.me_status(&tokens.access).await, 200);
    assert!(server.stop().success());

    // A weak new password is refused and changes nothing.
    let out = run(dir, &["user", "passwd", &dave], "short\n");
    out.assert_failure("user passwd with a weak password");
    assert!(out.stderr.contains("at least"), "{out:#?}");
    // So is an unknown account.
    run(
        dir,
        &["user", "passwd", &email("nobody")],
        &format!("{new_password}\n"),
    )
    .assert_failure("user passwd of an unknown user");

    let out = run(
        dir,
        &["user", "passwd", &dave],
        &format!("{new_password}\r\n"),
    );
    out.assert_success("user passwd");

    let server = Server::builder(Backend::Embedded).data_dir(dir).start();
    let r = server.get_auth("/auth/me", &tokens.access).await;
    assert!(r.headers().contains_key("www-authenticate"));
    assert_problem(r, 401).await;
    assert_problem(server.refresh(&tokens.refresh).await, 401).await;
    assert_problem(server.login(&dave, PASSWORD).await, 401).await;
    // The first line of stdin, without its line ending, is the password.
    let r = server.login(&dave, new_password).await;
    assert_eq!(r.status(), 200);
    let fresh = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(server.me_status(&fresh.access).await, 200);
}

/// While `serve` holds the database, the user commands go through the server (its admin
/// socket in the data dir), and their effects are live on the very next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_reach_a_running_server() {
    let mut server = Server::start(Backend::Embedded);
    let dir = server.data_dir.clone();
    let frank = email("frank");
    let grace = email("grace");
    let new_password = "grace's new passphrase";
    let frank_tokens = server.signup(&frank).await;

    let listing = list(&dir);
    let row = list_row(&listing, &frank);
    assert_eq!(
        (row[1].as_str(), row[2].as_str()),
        ("user", "active"),
        "{listing}"
    );

    let out = run(
        &dir,
        &["user", "add", &grace, "--role", "admin"],
        &format!("{PASSWORD}\n"),
    );
    out.assert_success("user add while serving");
    let r = server.login(&grace, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let grace_tokens = Tokens::from(r.json::<Value>().await.unwrap());
    let me: Value = server
        .get_auth("/auth/me", &grace_tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");

    let out = run(&dir, &["user", "add", &email("weak")], "short\n");
    out.assert_failure("user add of a weak password while serving");
    assert!(out.stderr.contains("at least 8"), "{out:#?}");

    // Disabling ends frank's session at once.
    run(&dir, &["user", "disable", &frank], "").assert_success("user disable while serving");
    assert_eq!(server.me_status(&frank_tokens.access).await, 401);
    assert_problem(server.refresh(&frank_tokens.refresh).await, 401).await;
    assert_problem(server.login(&frank, PASSWORD).await, 401).await;

    // A new password ends grace's session at once, and only the new one logs in.
    run(
        &dir,
        &["user", "passwd", &grace],
        &format!("{new_password}\n"),
    )
    .assert_success("user passwd while serving");
    assert_eq!(server.me_status(&grace_tokens.access).await, 401);
    assert_problem(server.login(&grace, PASSWORD).await, 401).await;
    let r = server.login(&grace, new_password).await;
    assert_eq!(r.status(), 200);
    let grace_tokens = Tokens::from(r.json::<Value>().await.unwrap());

    // A role change ends the session too (its token carries the old role).
    run(&dir, &["user", "set-role", &grace, "user"], "")
        .assert_success("user set-role while serving");
    assert_eq!(server.me_status(&grace_tokens.access).await, 401);
    let r = server.login(&grace, new_password).await;
    let access = Tokens::from(r.json::<Value>().await.unwrap()).access;
    let me: Value = server
        .get_auth("/auth/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");

    // After the server stops, the CLI opens the database itself and sees the same state.
    assert!(server.stop().success());
    let listing = list(&dir);
    let f = list_row(&listing, &frank);
    let g = list_row(&listing, &grace);
    assert_eq!(
        (f[1].as_str(), f[2].as_str()),
        ("user", "disabled"),
        "{listing}"
    );
    assert_eq!(
        (g[1].as_str(), g[2].as_str()),
        ("user", "active"),
        "{listing}"
    );
}

#[test]
fn user_add_rejects_weak_password_and_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let erin = email("erin");

    let out = run(dir, &["user", "add", &erin], "short\n");
    out.assert_failure("user add with a weak password");
    assert!(
        out.stderr.contains("password") && out.stderr.contains("at least 8"),
        "the message should say what a good password needs: {out:#?}"
    );

    let out = run(dir, &["user", "add", &erin], "");
    out.assert_failure("user add without a password");
    assert!(out.stderr.contains("password"), "{out:#?}");

    let out = run(
        dir,
        &["user", "add", "not-an-email"],
        &format!("{PASSWORD}\n"),
    );
    out.assert_failure("user add with an invalid email");
    assert!(out.stderr.contains("email"), "{out:#?}");

    let out = run(
        dir,
        &["user", "add", &erin, "--role", "root"],
        &format!("{PASSWORD}\n"),
    );
    out.assert_failure("user add with an unknown role");

    // Nothing was created by the failed attempts.
    let listing = list(dir);
    assert!(!listing.contains(&erin), "{listing}");
    assert!(!listing.contains("not-an-email"), "{listing}");
}

fn check_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut full = vec!["check-config"];
    full.extend_from_slice(args);
    run_with(&full, Some(dir.path()), env, "", Duration::from_secs(30))
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn check_config_accepts_defaults_and_a_good_file() {
    let out = check_config(&[], &[]);
    out.assert_success("check-config with defaults");
    assert!(out.stdout.contains("OK"), "{out:#?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "registration = \"closed\"\n[tokens]\naccess_ttl = 60\n",
    );
    check_config(&["--config", &path], &[]).assert_success("check-config --config good.toml");
    // `--config` is one global option: before the subcommand too.
    run_with(
        &["--config", &path, "check-config"],
        Some(dir.path()),
        &[],
        "",
        Duration::from_secs(30),
    )
    .assert_success("--config good.toml check-config");
    let bad_dir = tempfile::tempdir().expect("tempdir");
    let bad = write_config(bad_dir.path(), "registration = \"sometimes\"\n");
    run_with(
        &["--config", &bad, "check-config"],
        Some(dir.path()),
        &[],
        "",
        Duration::from_secs(30),
    )
    .assert_failure("--config bad.toml check-config");
    // The file may also be named by GATEHOUSE_CONFIG.
    check_config(&[], &[("GATEHOUSE_CONFIG", &path)])
        .assert_success("check-config with GATEHOUSE_CONFIG");
}

#[test]
fn check_config_names_the_bad_key() {
    let out = check_config(&[], &[("GATEHOUSE_BOGUS", "1")]);
    out.assert_failure("check-config with GATEHOUSE_BOGUS");
    assert!(out.stderr.to_lowercase().contains("bogus"), "{out:#?}");

    let out = check_config(&[], &[("GATEHOUSE_TOKENS__ACCESS_TTL", "soon")]);
    out.assert_failure("check-config with a non-numeric env value");
    assert!(out.stderr.to_lowercase().contains("access_ttl"), "{out:#?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), "[tokens]\nnope = 1\n");
    let out = check_config(&["--config", &path], &[]);
    out.assert_failure("check-config with an unknown key in the file");
    assert!(out.stderr.to_lowercase().contains("nope"), "{out:#?}");

    let path = write_config(dir.path(), "[tokens]\naccess_ttl = \"x\"\n");
    let out = check_config(&["--config", &path], &[]);
    out.assert_failure("check-config with a bad value in the file");
    assert!(out.stderr.to_lowercase().contains("access_ttl"), "{out:#?}");

    let path = write_config(dir.path(), "[tokens]\naccess_ttl = 0\n");
    let out = check_config(&["--config", &path], &[]);
    out.assert_failure("check-config with a zero TTL");
    assert!(out.stderr.to_lowercase().contains("access_ttl"), "{out:#?}");

    let path = write_config(dir.path(), "[tokens\naccess_ttl = 1\n");
    check_config(&["--config", &path], &[]).assert_failure("check-config with broken TOML");

    let missing = dir.path().join("does-not-exist.toml");
    let missing = missing.to_str().unwrap();
    let out = check_config(&["--config", missing], &[]);
    out.assert_failure("check-config with a missing file");
    assert!(out.stderr.contains("does-not-exist.toml"), "{out:#?}");
}

#[test]
fn short_jwt_secret_is_refused() {
    let short = "only-twenty-bytes-ab";
    assert_eq!(short.len(), 20);

    let out = check_config(&[], &[("JWT_SECRET", short)]);
    out.assert_failure("check-config with a short JWT_SECRET");
    assert!(out.stderr.contains("JWT_SECRET"), "{out:#?}");

    // `serve` must exit on its own (never print a listening line); kill it after 20 s.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_with(
        &["serve"],
        Some(dir.path()),
        &[("JWT_SECRET", short), ("GATEHOUSE_LISTEN", "127.0.0.1:0")],
        "",
        Duration::from_secs(20),
    );
    out.assert_failure("serve with a short JWT_SECRET");
    assert!(out.stderr.contains("JWT_SECRET"), "{out:#?}");
    assert!(!out.stderr.contains("listening"), "{out:#?}");
}

#[test]
fn serve_refuses_a_bad_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_with(
        &["serve"],
        Some(dir.path()),
        &[
            ("GATEHOUSE_LISTEN", "127.0.0.1:0"),
            ("GATEHOUSE_BOGUS", "1"),
        ],
        "",
        Duration::from_secs(20),
    );
    out.assert_failure("serve with an unknown key");
    assert!(out.stderr.to_lowercase().contains("bogus"), "{out:#?}");
    assert!(!out.stderr.contains("listening"), "{out:#?}");
}
