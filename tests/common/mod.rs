//! Test harness: starts the real `gatehouse` binary on a free port with a temporary data dir
//! and talks to it over real TCP. Every behaviour test runs once per session backend
//! through [`backend_tests!`].
#![allow(dead_code)]
// A helper module of each test crate: `pub` is how the test files reach it.
#![allow(unreachable_pub)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A backend the suite runs against: `Embedded` (sessions and users in the data dir) or
/// `Redis` (sessions and users in a real `redis-server` that lives as long as the value).
#[derive(Debug, Clone)]
pub enum Backend {
    Embedded,
    Redis(Arc<RedisServer>),
}

impl Backend {
    /// A Redis backend on a fresh `redis-server`, or `None` (said loudly) when it is not
    /// installed outside CI. With `CI=true` a missing `redis-server` fails the test.
    pub fn redis() -> Option<Backend> {
        RedisServer::start().map(|r| Backend::Redis(Arc::new(r)))
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Backend::Embedded => Vec::new(),
            Backend::Redis(redis) => vec![
                ("GATEHOUSE_SESSIONS__BACKEND".into(), "redis".into()),
                ("GATEHOUSE_SESSIONS__REDIS_URL".into(), redis.url()),
                ("GATEHOUSE_USERS__BACKEND".into(), "redis".into()),
            ],
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Embedded).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::common::Backend::redis() {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

/// A real `redis-server` on a free loopback port, without persistence unless asked; killed
/// on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Mutex<Option<Child>>,
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "redis-server is not installed; CI must install it (apt-get install redis-server)"
                );
            }
            eprintln!(
                "SKIPPED: redis-server is not installed; the Redis variant of this test did not run"
            );
            return None;
        }
        let server = RedisServer {
            child: Mutex::new(None),
            port: 0,
            dir: tempfile::tempdir().expect("tempdir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        Some(server.launch_on_free_port())
    }

    fn launch_on_free_port(mut self) -> RedisServer {
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            self.port = port;
            if self.launch() {
                return self;
            }
        }
        panic!("redis-server did not start");
    }

    /// Starts the process on `self.port`; true once it answers PING.
    fn launch(&self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.ping() {
                return true;
            }
            if let Some(child) = self.child.lock().unwrap().as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    return false;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        // A password-protected server answers NOAUTH: it is up all the same.
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: nothing is flushed that was not already persisted).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&self) {
        self.kill();
        assert!(self.launch(), "redis-server did not restart");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Environment every test server gets: cheap argon2 so tests run fast, plain-HTTP cookies.
const BASE_ENV: &[(&str, &str)] = &[
    ("GATEHOUSE_LISTEN", "127.0.0.1:0"),
    ("GATEHOUSE_ARGON2__MEMORY_KIB", "256"),
    ("GATEHOUSE_ARGON2__ITERATIONS", "1"),
    ("GATEHOUSE_COOKIES__SECURE", "false"),
    ("GATEHOUSE_LOG__FORMAT", "text"),
    ("GATEHOUSE_LOG__LEVEL", "info"),
];

pub struct ServerBuilder {
    backend: Backend,
    data_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    pub fn start(self) -> Server {
        let mut env = self.backend.env();
        env.extend(self.env.iter().cloned());
        let (tempdir, data_dir) = match self.data_dir {
            Some(dir) => (None, dir),
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().to_owned();
                (Some(dir), path)
            }
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE_DATA_DIR", &data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in BASE_ENV {
            cmd.env(k, v);
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gatehouse");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                // Keep draining stderr so the server never blocks on a full pipe.
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening") {
                        if let Some(addr) = line.split("addr=").nth(1) {
                            let addr = addr.split_whitespace().next().unwrap_or("").to_owned();
                            let _ = addr_tx.send(addr);
                        }
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "gatehouse did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child: Some(child),
            base: format!("http://{addr}"),
            addr,
            data_dir,
            _tempdir: tempdir,
            backend: self.backend,
            env: self.env,
            logs,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // Below the server's idle keep-alive close (limits.header_read_timeout).
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub addr: String,
    pub data_dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    pub backend: Backend,
    env: Vec<(String, String)>,
    logs: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn builder(backend: Backend) -> ServerBuilder {
        ServerBuilder {
            backend,
            data_dir: None,
            env: Vec::new(),
        }
    }

    pub fn start(backend: Backend) -> Server {
        Server::builder(backend).start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops with SIGTERM and waits for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_sigterm(child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("gatehouse did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id (for signals and `/proc/<pid>`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server with SIGKILL (no shutdown, no flush: a power cut for the process)
    /// and waits until it is gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }

    /// After [`Server::kill9`]: starts a new server on the same data dir with the same
    /// settings (it panics with the logs if the database does not open).
    pub fn restart_after_kill(self) -> Server {
        assert!(self.child.is_none(), "kill9 the server first");
        self.respawn()
    }

    /// Stops the server and starts a new one on the same data dir with the same settings.
    pub fn restart(mut self) -> Server {
        let status = self.stop();
        assert!(status.success(), "gatehouse exited with {status}");
        self.respawn()
    }

    fn respawn(mut self) -> Server {
        let tempdir = self._tempdir.take();
        let mut builder = Server::builder(self.backend.clone()).data_dir(&self.data_dir);
        builder.env = self.env.clone();
        let mut server = builder.start();
        server._tempdir = tempdir;
        server
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    // --- API helpers ---

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/auth/register",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers and logs in a new user; returns the login body.
    pub async fn signup(&self, email: &str) -> Tokens {
        let r = self.register(email, PASSWORD).await;
        assert_eq!(
            r.status(),
            201,
            "register: {}",
            r.text().await.unwrap_or_default()
        );
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status(), 200);
        Tokens::from(r.json::<Value>().await.expect("json"))
    }

    /// Logs an existing user (password [`PASSWORD`]) in again: another session.
    pub async fn relogin(&self, email: &str) -> Tokens {
        let r = self.login(email, PASSWORD).await;
        assert_eq!(
            r.status(),
            200,
            "login: {}",
            r.text().await.unwrap_or_default()
        );
        Tokens::from(r.json::<Value>().await.expect("json"))
    }

    pub async fn get_auth(&self, path: &str, access: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_auth(&self, path: &str, access: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .expect("request")
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post_json("/auth/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    pub async fn me_status(&self, access: &str) -> u16 {
        self.get_auth("/auth/me", access).await.status().as_u16()
    }

    /// Runs `gatehouse ARGS` on this server's data dir and backend (through the running
    /// server's admin socket where the command needs one), with `stdin` as its input.
    pub fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE_DATA_DIR", &self.data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in BASE_ENV
            .iter()
            .filter(|(k, _)| k.starts_with("GATEHOUSE_ARGON2"))
        {
            cmd.env(k, v);
        }
        for (k, v) in self.backend.env().iter().chain(&self.env) {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gatehouse");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("gatehouse output")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl From<Value> for Tokens {
    fn from(v: Value) -> Self {
        Tokens {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

/// Asserts a problem+json response with the given status; returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "body: {body}");
    assert_eq!(content_type, "application/problem+json", "body: {body}");
    let v: Value = serde_json::from_str(&body).expect("problem body is JSON");
    assert_eq!(v["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(v[field].is_string(), "problem lacks {field}: {body}");
    }
    v
}

/// A unique email per call, so tests sharing nothing never collide.
pub fn email(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{tag}{n}@example.org")
}

/// The `Set-Cookie`s of a response, parsed.
pub fn set_cookies(headers: &reqwest::header::HeaderMap) -> Vec<cookie::Cookie<'static>> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| cookie::Cookie::parse(v.to_str().expect("ASCII cookie").to_owned()))
        .map(|c| c.expect("a valid Set-Cookie"))
        .collect()
}

/// What a browser sends back to gatehouse's host for a request to `path` after these
/// `Set-Cookie`s: the live cookies whose path covers `path` (expired ones are deleted).
pub fn browser_cookies(set: &[cookie::Cookie<'static>], path: &str) -> String {
    set.iter()
        .filter(|c| c.max_age() != Some(cookie::time::Duration::ZERO))
        .filter(|c| {
            let p = c.path().unwrap_or("/");
            path == p || path.starts_with(&format!("{}/", p.trim_end_matches('/')))
        })
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Asserts that `set` sets (or, with `cleared`, expires) the token cookies scoped as the
/// contract says: the access cookie `Path=/` with `Domain=domain` when one is configured,
/// the refresh cookie host-only (never a `Domain`) with `Path=/auth`, and the refresh cookie
/// as older versions set it (`Path=/`, host-only and with the domain) expired; nothing else.
pub fn assert_token_cookies(set: &[cookie::Cookie<'static>], domain: Option<&str>, cleared: bool) {
    let all = format!("{set:?}");
    let mut expected = vec![
        ("gatehouse_access", "/", domain, !cleared),
        ("gatehouse_refresh", "/auth", None, !cleared),
        ("gatehouse_refresh", "/", None, false),
    ];
    if domain.is_some() {
        expected.push(("gatehouse_refresh", "/", domain, false));
    }
    assert_eq!(set.len(), expected.len(), "{all}");
    for (name, path, domain, live) in expected {
        let c = set
            .iter()
            .find(|c| c.name() == name && c.path() == Some(path) && c.domain() == domain)
            .unwrap_or_else(|| panic!("no {name} cookie for {path} {domain:?}: {all}"));
        assert_eq!(c.http_only(), Some(true), "{c}");
        assert_eq!(c.same_site(), Some(cookie::SameSite::Lax), "{c}");
        assert_eq!(c.secure(), None, "cookies.secure = false in tests: {c}");
        let max_age = c.max_age().expect("Max-Age").whole_seconds();
        if live {
            assert!(!c.value().is_empty() && max_age > 0, "{c}");
        } else {
            assert!(c.value().is_empty() && max_age == 0, "{c}");
        }
    }
    // Whatever else holds: a refresh token never leaves gatehouse's /auth.
    for c in set.iter().filter(|c| c.name() == "gatehouse_refresh") {
        if !c.value().is_empty() {
            assert!(c.domain().is_none() && c.path() == Some("/auth"), "{c}");
        }
    }
}

/// The value of one series (name and labels exactly as rendered) in Prometheus text.
pub fn metric_sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
