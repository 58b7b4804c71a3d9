//! What the browser tests share: finding the programs they need, child processes killed on
//! drop, and a minimal W3C WebDriver client for headless Chromium (chromedriver).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The path of `program`, or `None` after saying so (a failure under `CI=true`).
pub fn require(program: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{program} is not installed; CI must install it (apt-get install {package})");
        }
        eprintln!(
            "SKIPPED: {program} is not installed (apt-get install {package}); this browser test did not run"
        );
    }
    found
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A child process killed (and reaped) on drop.
pub struct Proc {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
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

    /// Waits until `port` accepts connections.
    pub fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.logs());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{} did not listen on {port}:\n{}", self.name, self.logs());
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal W3C WebDriver client over reqwest: the few commands the browser tests need.
pub struct WebDriver {
    http: reqwest::Client,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    pub async fn start(base: &str, binary: &Path, args: &[String]) -> WebDriver {
        Self::start_with(base, json!({"binary": binary, "args": args})).await
    }

    /// A session with these `goog:chromeOptions` (e.g. `mobileEmulation`).
    pub async fn start_with(base: &str, chrome_options: Value) -> WebDriver {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": chrome_options,
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        WebDriver {
            http,
            session: format!("{base}/session/{session}"),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {v}");
        }
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_owned()
    }

    pub async fn active_element_id(&self) -> String {
        let v = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await;
        let element = v[ELEMENT].as_str().expect("element id").to_owned();
        let id = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/attribute/id"),
                None,
            )
            .await;
        id.as_str().unwrap_or_default().to_owned()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("png"))
            .expect("base64");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("artifact dir");
        std::fs::write(path, bytes).expect("write screenshot");
    }

    /// Waits until the URL satisfies `pred`; returns it.
    pub async fn wait_url(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if pred(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited for {what}; the browser is at {url}:\n{}",
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its
    /// value. Driver-injected scripts are not the page's: its CSP does not apply to them.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Like [`WebDriver::execute`] for a script that calls its last argument when done.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Sets the window's size (the viewport follows in headless mode).
    pub async fn set_window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

/// The flags every headless Chromium of the tests runs with: no sandbox (root in CI), no
/// network of its own beyond the page, HTTP kept as HTTP, and `*.gatehouse.test` mapped to
/// 127.0.0.1.
pub fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--user-data-dir={}", profile.display()),
        "--host-resolver-rules=MAP *.gatehouse.test 127.0.0.1".to_owned(),
    ])
    .collect()
}

/// chromedriver on a free port with its log in `dir`; with the Chromium binary to drive and
/// the driver's base URL. `None` (said, or a failure under `CI=true`) when either is missing.
pub fn chromedriver(dir: &Path) -> Option<(Proc, PathBuf, String)> {
    let (Some(chromium), Some(driver_bin)) = (
        require("chromium", "chromium"),
        require("chromedriver", "chromium-driver"),
    ) else {
        return None;
    };
    let port = free_port();
    let mut driver = Proc::spawn(
        "chromedriver",
        Command::new(driver_bin).arg(format!("--port={port}")),
        dir.join("chromedriver.log"),
    );
    driver.wait_for_port(port);
    Some((driver, chromium, format!("http://127.0.0.1:{port}")))
}
