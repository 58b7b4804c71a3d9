//! Test harness: starts the real `gatehouse` binary on a free port with a temporary data dir
//! and talks to it over real TCP. Every behaviour test runs once per session backend
//! through [`backend_tests!`].
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A session backend the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
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
    };
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
        for (k, v) in &self.env {
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

    /// Stops the server and starts a new one on the same data dir with the same settings.
    pub fn restart(mut self) -> Server {
        let status = self.stop();
        assert!(status.success(), "gatehouse exited with {status}");
        let tempdir = self._tempdir.take();
        let mut builder = Server::builder(self.backend).data_dir(&self.data_dir);
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

    pub async fn me_status(&self, access: &str) -> u16 {
        self.get_auth("/auth/me", access).await.status().as_u16()
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
