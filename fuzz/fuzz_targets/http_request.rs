//! The whole request path: the input is the raw bytes a client sends on one HTTP/1.1
//! connection (possibly several pipelined requests). They go through hyper, configured as
//! in `gatehouse::http::server`, into `gatehouse::http::router::handle` of a real `App`
//! (embedded store in a temporary directory, cheap argon2). No request may be answered with
//! a 5xx, except 503 with `Retry-After` (load shedding, which should not occur here either;
//! a 503 without it means the store failed). A panic anywhere fails too.
//!
//! The App lives for the whole process, so accounts and sessions created by earlier inputs
//! remain; the peer address is derived from the input so that per-IP state (regulation)
//! does not lock every later input out.
#![no_main]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gatehouse::app::App;
use gatehouse::auth::secret::SecretInputs;
use gatehouse::auth::{ClientInfo, LoginOutcome};
use gatehouse::config::Config;
use gatehouse::domain::Role;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// Longest a whole exchange may take; libFuzzer's `-timeout` should be above it.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(8);

struct Harness {
    runtime: Runtime,
    app: Arc<App>,
    /// An access token of an admin's session, put where an input says `@ADMIN_TOKEN@`, so
    /// that inputs reach what only an admin reaches (the admin pages' forms). An input may
    /// end that session (`POST /auth/logout` with it): then a new one is made.
    admin_token: std::sync::Mutex<String>,
}

const ADMIN_EMAIL: &str = "fuzz-admin@example.org";
const ADMIN_PASSWORD: &str = "fuzzing admin's staple battery";

/// A fresh session of the fuzzing admin.
async fn admin_login(app: &App) -> String {
    match app
        .auth
        .login(ADMIN_EMAIL, ADMIN_PASSWORD, &ClientInfo::default())
        .await
    {
        Ok(LoginOutcome::Signed(_, issued)) => issued.access_token,
        // Should inputs ever give the admin a second factor or a ban (they do not know the
        // password), admin inputs run without a live session rather than fail the run.
        Ok(LoginOutcome::SecondFactor(_)) | Err(_) => String::new(),
    }
}

/// Stands for [`Harness::admin_token`] in an input (see the `admin_*` seeds).
const ADMIN_TOKEN: &[u8] = b"@ADMIN_TOKEN@";

static DATA_DIR: OnceLock<PathBuf> = OnceLock::new();

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> i32;
}

/// libFuzzer leaves through `exit()`, which runs no destructors: remove the data dir here.
extern "C" fn remove_data_dir() {
    if let Some(dir) = DATA_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-fuzz-")
            .tempdir()
            .expect("temporary data dir")
            .keep();
        DATA_DIR.set(dir.clone()).unwrap();
        // SAFETY: registers a plain function that only removes a directory.
        unsafe { atexit(remove_data_dir) };

        // An OpenID Connect client, so the provider's endpoints parse fuzzed input; SMTP to a
        // port nothing listens on, so the mail endpoints run their whole path (links, the
        // outbox) and nothing is delivered, since no delivery task runs here.
        let mut config = Config::from_toml_str(
            "public_url = \"http://localhost:8080\"\n[argon2]\nmemory_kib = 64\niterations = 1\n[cookies]\nsecure = false\n[smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"fuzz@localhost.test\"\n[email]\nresend_interval = 0\n[[oidc.clients]]\nid = \"app\"\nsecret = \"fuzz-client-secret-0123\"\nredirect_uris = [\"http://127.0.0.1:9/cb\"]\n[[oidc.clients]]\nid = \"spa\"\nconsent = \"implicit\"\nredirect_uris = [\"http://127.0.0.1:9/cb\"]\n",
        )
        .expect("the fuzz config is valid");
        config.data_dir = dir;
        let secrets = SecretInputs {
            secret: Some("fuzzing-secret-0123456789abcdefghijklmnop".to_owned()),
            ..Default::default()
        };
        let app = {
            let _guard = runtime.enter();
            App::build(config, &secrets).expect("App::build")
        };
        // The lookups behind forgot and resend, as `gatehouse serve` runs them.
        runtime.spawn({
            let app = app.clone();
            async move { app.auth.run_mail_requests().await }
        });
        let admin_token = runtime.block_on(async {
            app.auth
                .create_user(ADMIN_EMAIL, ADMIN_PASSWORD, Role::Admin)
                .await
                .expect("create the admin");
            admin_login(&app).await
        });
        Harness {
            runtime,
            app,
            admin_token: std::sync::Mutex::new(admin_token),
        }
    })
}

/// A stable pseudo-random peer per input (FNV-1a), in 10.0.0.0/8.
fn peer(data: &[u8]) -> SocketAddr {
    let hash = data.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let [a, b, c, d] = hash.to_be_bytes();
    SocketAddr::from(([10, a, b, c ^ d], 40_000 + u16::from(d)))
}

/// Sends `data` on a fresh connection, half-closes, and returns all the server wrote.
async fn exchange(app: Arc<App>, data: &[u8], peer: SocketAddr) -> Vec<u8> {
    let limits = &app.config.limits;
    let mut http = http1::Builder::new();
    // As in gatehouse::http::server::serve, plus half_close: the client shuts its write
    // side right after the request, and must still get the answer.
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout))
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .half_close(true);
    let (client, server) = tokio::io::duplex(64 * 1024);
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(gatehouse::http::router::handle(&app, req, peer).await) }
    });
    let connection = tokio::spawn(http.serve_connection(TokioIo::new(server), service));

    let (mut read, mut write) = tokio::io::split(client);
    let send = async move {
        // The server may close early (after an error): a failed write is not a finding.
        let _ = write.write_all(data).await;
        let _ = write.shutdown().await;
    };
    let receive = async move {
        let mut response = Vec::new();
        let _ = read.read_to_end(&mut response).await;
        response
    };
    let (_, response) =
        tokio::time::timeout(EXCHANGE_TIMEOUT, async { tokio::join!(send, receive) })
            .await
            .unwrap_or_else(|_| panic!("no complete answer within {EXCHANGE_TIMEOUT:?}"));
    // A panic in a handler surfaces here (hyper runs the service on this task).
    if let Err(e) = connection.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    response
}

/// Checks the status of every response in `bytes`, walking them by their framing.
fn check(bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&bytes[at..]) {
            Ok(httparse::Status::Complete(len)) => len,
            // A torn or unparsable tail: nothing more to check reliably.
            _ => return,
        };
        let status = response.code.unwrap_or(0);
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let shed = status == 503 && header("retry-after").is_some();
        if (500..600).contains(&status) && !shed {
            panic!(
                "the server answered {status}:\n{}",
                String::from_utf8_lossy(&bytes[at..])
            );
        }
        let body_len: usize = header("content-length")
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(usize::MAX);
        let head_end = at + head_len;
        // The next response follows the body, or directly the head (an answer to HEAD).
        let after_body = head_end.saturating_add(body_len);
        at = if bytes
            .get(after_body..)
            .is_some_and(|b| b.starts_with(b"HTTP/1."))
        {
            after_body
        } else if bytes[head_end..].starts_with(b"HTTP/1.") {
            head_end
        } else {
            return;
        };
    }
}

/// `GATEHOUSE_FUZZ_DEBUG=1` prints every exchange (for looking at seeds and artifacts).
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("GATEHOUSE_FUZZ_DEBUG").is_some())
}

/// `data` with every `@ADMIN_TOKEN@` replaced by the admin's token.
fn with_admin_token(data: &[u8], token: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest
        .windows(ADMIN_TOKEN.len())
        .position(|w| w == ADMIN_TOKEN)
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(token);
        rest = &rest[at + ADMIN_TOKEN.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The admin's token, logging in again if an earlier input ended its session.
fn live_admin_token(harness: &Harness) -> String {
    let mut token = harness
        .admin_token
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let app = &harness.app;
    let live = harness
        .runtime
        .block_on(async { app.auth.authenticate(&token).await.is_ok() });
    if !live {
        *token = harness.runtime.block_on(admin_login(app));
    }
    token.clone()
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let substituted;
    let data = if data.windows(ADMIN_TOKEN.len()).any(|w| w == ADMIN_TOKEN) {
        substituted = with_admin_token(data, live_admin_token(harness).as_bytes());
        &substituted[..]
    } else {
        data
    };
    let response = harness
        .runtime
        .block_on(exchange(harness.app.clone(), data, peer(data)));
    if debug() {
        eprintln!(
            "==> {}\n<== {}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&response)
        );
    }
    check(&response);
});
