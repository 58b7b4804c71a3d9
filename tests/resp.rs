//! The RESP listener (`resp.listen`, issue #16) over real TCP to the real binary, on both
//! session backends: answers equal to what the Redis backend holds (compared with the real
//! `redis-server` on the Redis backend), the contract's NOAUTH / READONLY / unknown rules,
//! regulated AUTH, RESP3, pipelining, and hostile input. Clients: `redis-cli` (Debian's
//! redis-tools, installed with redis-server), redis-py (PyPI `redis`), redis-rs (the crate
//! gatehouse already uses) and a raw socket for exact bytes.
//!
//! A missing `redis-cli` or redis-py skips its test loudly; with `CI=true` it fails it
//! (`.ci/run` installs both).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Backend, Server, email, metric_sample};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RESP_PASSWORD: &str = "resp-test-password-0123";
const PREFIX: &str = "gatehouse:";

backend_tests!(
    sessions_read_as_the_redis_backend_holds_them,
    the_contract_decides_who_may_run_what,
    wrong_passwords_are_regulated_per_address,
    hello_3_and_client_libraries_connect_with_their_defaults,
    thousands_of_pipelined_commands_answer_in_order,
    hostile_input_never_takes_the_server_down,
    connections_are_capped_and_idle_ones_closed,
);

/// A server with the RESP listener on a free port, and that port's address.
fn start(backend: Backend, extra: &[(&str, &str)]) -> (Server, String) {
    let mut builder = Server::builder(backend)
        .env("GATEHOUSE_RESP__LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_RESP__PASSWORD", RESP_PASSWORD);
    for (k, v) in extra {
        builder = builder.env(k, v);
    }
    let server = builder.start();
    let addr = resp_addr(&server);
    (server, addr)
}

/// The address the server logged for its RESP listener (before "listening").
fn resp_addr(server: &Server) -> String {
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("RESP listener ready"))
        .unwrap_or_else(|| panic!("no RESP listener in the logs:\n{logs}"));
    line.split("resp=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("resp=ADDR")
        .to_owned()
}

/// The `sid` and `sub` claims of an access token.
fn sid_and_uid(access: &str) -> (String, String) {
    let payload = access.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    (
        claims["sid"].as_str().expect("sid").to_owned(),
        claims["sub"].as_str().expect("sub").to_owned(),
    )
}

/// The path of `program`, or `None` after saying so (a failure under `CI=true`).
fn require(program: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{program} is not installed; CI must install it ({install})");
        }
        eprintln!("SKIPPED: {program} is not installed ({install}); this check did not run");
    }
    found
}

/// `redis-cli -h … -p … [-a password] ARGS`: its stdout, trimmed (`None` if not installed).
fn redis_cli(addr: &str, password: Option<&str>, args: &[&str]) -> Option<String> {
    let cli = require("redis-cli", "apt-get install redis-tools")?;
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut cmd = Command::new(cli);
    cmd.args(["-h", host, "-p", port, "--no-auth-warning"]);
    if let Some(p) = password {
        cmd.args(["-a", p]);
    }
    let out = cmd.args(args).output().expect("redis-cli runs");
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

// --- A raw RESP connection, for exact bytes and hostile input ---

/// A reply as read off the wire.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Resp>),
    Set(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
}

impl Resp {
    fn ok() -> Resp {
        Resp::Simple("OK".into())
    }

    fn error_code(&self) -> Option<&str> {
        match self {
            Resp::Error(e) => e.split(' ').next(),
            _ => None,
        }
    }
}

/// One reply from the start of `buf`, and its length; `None` until it has fully arrived.
fn parse_reply(buf: &[u8]) -> Option<(Resp, usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..end]).expect("UTF-8 header");
    let next = end + 2;
    let items = |n: usize, mut at: usize| -> Option<(Vec<Resp>, usize)> {
        let mut items = Vec::new();
        for _ in 0..n {
            let (item, len) = parse_reply(&buf[at..])?;
            items.push(item);
            at += len;
        }
        Some((items, at))
    };
    Some(match buf[0] {
        b'+' => (Resp::Simple(line.into()), next),
        b'-' => (Resp::Error(line.into()), next),
        b':' => (Resp::Int(line.parse().expect("integer")), next),
        b'_' => (Resp::Nil, next),
        b'$' if line == "-1" => (Resp::Nil, next),
        b'$' => {
            let len: usize = line.parse().expect("bulk length");
            if buf.len() < next + len + 2 {
                return None;
            }
            (Resp::Bulk(buf[next..next + len].to_vec()), next + len + 2)
        }
        b'*' | b'~' => {
            let (list, at) = items(line.parse().expect("count"), next)?;
            let reply = if buf[0] == b'*' {
                Resp::Array(list)
            } else {
                Resp::Set(list)
            };
            (reply, at)
        }
        b'%' => {
            let n: usize = line.parse().expect("count");
            let (flat, at) = items(2 * n, next)?;
            let mut pairs = Vec::new();
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            (Resp::Map(pairs), at)
        }
        other => panic!("unexpected reply type {:?}", char::from(other)),
    })
}

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect to RESP"),
            buf: Vec::new(),
        }
    }

    /// Connected and authenticated.
    async fn authed(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr).await;
        assert_eq!(raw.call(&["AUTH", RESP_PASSWORD]).await, Resp::ok());
        raw
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    async fn send(&mut self, args: &[&str]) {
        let bytes = encode(args);
        self.write(&bytes).await;
    }

    /// The next reply (panics after 10 s or on a closed connection).
    async fn reply(&mut self) -> Resp {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((reply, len)) = parse_reply(&self.buf) {
                self.buf.drain(..len);
                return reply;
            }
            let mut chunk = vec![0u8; 65536];
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.stream.read(&mut chunk))
                .await
                .expect("a reply within 10 s")
                .expect("read");
            assert!(n > 0, "closed before a whole reply; got {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn call(&mut self, args: &[&str]) -> Resp {
        self.send(args).await;
        self.reply().await
    }

    /// Whether the server closes the connection within `within`; what it sent meanwhile
    /// lands in `buf`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut chunk = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.as_bytes().to_vec())
}

/// The real Redis behind a Redis backend, to compare answers with.
async fn real_redis(backend: &Backend) -> Option<::redis::aio::MultiplexedConnection> {
    match backend {
        Backend::Redis(r) => Some(
            ::redis::Client::open(r.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .expect("connect to the real Redis"),
        ),
        Backend::Embedded => None,
    }
}

async fn real(conn: &mut ::redis::aio::MultiplexedConnection, args: &[&str]) -> ::redis::Value {
    let mut cmd = ::redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(conn).await.expect("real Redis answers")
}

// --- The tests ---

/// Log in over HTTP, read `sid` from the token, and every read command answers what the Redis
/// backend holds: the same JSON record, TTLs as stored, the user's set, WRONGTYPE across
/// kinds; internal keys read as absent; a logout makes the session vanish at once.
async fn sessions_read_as_the_redis_backend_holds_them(backend: Backend) {
    let mut truth = real_redis(&backend).await;
    let (server, addr) = start(backend, &[]);
    let user = email("resp");
    let tokens = server.signup(&user).await;
    let (sid, uid) = sid_and_uid(&tokens.access);
    let session = format!("{PREFIX}session:{sid}");
    let sessions = format!("{PREFIX}user_sessions:{uid}");
    // A failed login leaves regulation keys behind: internal, never readable.
    assert_eq!(server.login(&user, "wrong password!").await.status(), 401);

    let mut c = Raw::authed(&addr).await;
    assert_eq!(c.call(&["EXISTS", &session]).await, Resp::Int(1));
    assert_eq!(
        c.call(&[
            "EXISTS",
            &session,
            &session,
            &format!("{PREFIX}session:nope")
        ])
        .await,
        Resp::Int(2),
        "EXISTS counts a key named twice twice"
    );
    let Resp::Bulk(record) = c.call(&["GET", &session]).await else {
        panic!("GET of a live session is its record")
    };
    let parsed: Value = serde_json::from_slice(&record).expect("the record is JSON");
    assert_eq!(parsed["uid"], uid.as_str());
    assert!(parsed["refresh"].is_string() && parsed["cv"].is_number());
    let refresh_ttl = 604_800;
    let Resp::Int(ttl) = c.call(&["TTL", &session]).await else {
        panic!()
    };
    assert!((refresh_ttl - 5..=refresh_ttl).contains(&ttl), "TTL {ttl}");
    let Resp::Int(pttl) = c.call(&["PTTL", &session]).await else {
        panic!()
    };
    assert!((refresh_ttl * 1000 - 5_000..=refresh_ttl * 1000).contains(&pttl));
    assert_eq!(
        c.call(&["TYPE", &session]).await,
        Resp::Simple("string".into())
    );
    assert_eq!(
        c.call(&["TYPE", &sessions]).await,
        Resp::Simple("set".into())
    );
    assert_eq!(
        c.call(&["SMEMBERS", &sessions]).await,
        Resp::Array(vec![bulk(&sid)])
    );
    assert_eq!(c.call(&["SISMEMBER", &sessions, &sid]).await, Resp::Int(1));
    assert_eq!(
        c.call(&["SISMEMBER", &sessions, "other"]).await,
        Resp::Int(0)
    );
    assert_eq!(c.call(&["SCARD", &sessions]).await, Resp::Int(1));
    let Resp::Int(set_ttl) = c.call(&["TTL", &sessions]).await else {
        panic!()
    };
    assert!((refresh_ttl - 5..=refresh_ttl).contains(&set_ttl));
    // Each command on the other kind.
    for (args, code) in [
        (vec!["GET", sessions.as_str()], "WRONGTYPE"),
        (vec!["SMEMBERS", session.as_str()], "WRONGTYPE"),
        (vec!["SCARD", session.as_str()], "WRONGTYPE"),
        (vec!["SISMEMBER", session.as_str(), "x"], "WRONGTYPE"),
    ] {
        assert_eq!(c.call(&args).await.error_code(), Some(code), "{args:?}");
    }
    // Internal keys, keys without the prefix, and absent keys do not exist.
    let failures = format!("{PREFIX}regulation:failures:ip:127.0.0.1");
    for key in [
        failures.as_str(),
        &format!("{PREFIX}sessions_by_expiry"),
        &format!("session:{sid}"),
        &format!("{PREFIX}session:absent"),
        "",
    ] {
        assert_eq!(c.call(&["EXISTS", key]).await, Resp::Int(0), "{key}");
        assert_eq!(c.call(&["GET", key]).await, Resp::Nil, "{key}");
        assert_eq!(c.call(&["TTL", key]).await, Resp::Int(-2), "{key}");
        assert_eq!(c.call(&["PTTL", key]).await, Resp::Int(-2), "{key}");
        assert_eq!(c.call(&["TYPE", key]).await, Resp::Simple("none".into()));
        assert_eq!(c.call(&["SMEMBERS", key]).await, Resp::Array(vec![]));
        assert_eq!(c.call(&["SCARD", key]).await, Resp::Int(0));
    }

    if let Some(redis) = truth.as_mut() {
        // The same bytes and the same answers as the real Redis behind the backend.
        assert_eq!(
            real(redis, &["GET", &session]).await,
            ::redis::Value::BulkString(record.clone())
        );
        assert_eq!(
            real(redis, &["SMEMBERS", &sessions]).await,
            ::redis::Value::Array(vec![::redis::Value::BulkString(sid.clone().into_bytes())])
        );
        let ::redis::Value::Int(real_ttl) = real(redis, &["TTL", &session]).await else {
            panic!()
        };
        assert!((real_ttl - ttl).abs() <= 1, "{real_ttl} vs {ttl}");
        assert_eq!(
            real(redis, &["EXISTS", &failures]).await,
            ::redis::Value::Int(1),
            "the regulation key is in Redis, and not readable over RESP"
        );
    }
    // The same answers through redis-cli.
    if let Some(out) = redis_cli(&addr, Some(RESP_PASSWORD), &["EXISTS", &session]) {
        assert_eq!(out, "1");
        let got = redis_cli(&addr, Some(RESP_PASSWORD), &["GET", &session]).unwrap();
        assert_eq!(got.as_bytes(), &record[..]);
        assert_eq!(
            redis_cli(&addr, Some(RESP_PASSWORD), &["SMEMBERS", &sessions]).unwrap(),
            sid
        );
    }

    // The session ends: EXISTS is 0 on the very next command.
    assert_eq!(
        server
            .post_auth("/auth/logout", &tokens.access)
            .await
            .status(),
        204
    );
    assert_eq!(c.call(&["EXISTS", &session]).await, Resp::Int(0));
    assert_eq!(c.call(&["GET", &session]).await, Resp::Nil);
    assert_eq!(c.call(&["TTL", &session]).await, Resp::Int(-2));
    assert_eq!(c.call(&["SISMEMBER", &sessions, &sid]).await, Resp::Int(0));
    assert_eq!(
        c.call(&["TYPE", &sessions]).await,
        Resp::Simple("none".into())
    );
    if let Some(redis) = truth.as_mut() {
        assert_eq!(
            real(redis, &["EXISTS", &session]).await,
            ::redis::Value::Int(0)
        );
    }
    if let Some(out) = redis_cli(&addr, Some(RESP_PASSWORD), &["EXISTS", &session]) {
        assert_eq!(out, "0");
    }
}

/// Before AUTH only AUTH, HELLO with credentials, PING (+PONG) and QUIT; after it, writes
/// answer -READONLY and everything else unknown -ERR: sessions cannot be listed.
async fn the_contract_decides_who_may_run_what(backend: Backend) {
    let (server, addr) = start(backend, &[]);
    let tokens = server.signup(&email("rules")).await;
    let (sid, _) = sid_and_uid(&tokens.access);
    let session = format!("{PREFIX}session:{sid}");

    let mut c = Raw::connect(&addr).await;
    assert_eq!(c.call(&["PING"]).await, Resp::Simple("PONG".into()));
    assert_eq!(c.call(&["ping"]).await, Resp::Simple("PONG".into()));
    for args in [
        vec!["GET", session.as_str()],
        vec!["EXISTS", session.as_str()],
        vec!["SET", "k", "v"],
        vec!["KEYS", "*"],
        vec!["NOSUCHCOMMAND"],
        vec!["CLIENT", "SETNAME", "x"],
        vec!["COMMAND"],
        vec!["SELECT", "0"],
        vec!["ECHO", "x"],
    ] {
        assert_eq!(
            c.call(&args).await,
            Resp::Error("NOAUTH Authentication required.".into()),
            "{args:?}"
        );
    }
    assert_eq!(c.call(&["HELLO", "3"]).await.error_code(), Some("NOAUTH"));
    // Wrong passwords, and user names other than "default".
    for args in [
        vec!["AUTH", "wrong"],
        vec!["AUTH", "admin", RESP_PASSWORD],
        vec!["AUTH", "default", "wrong"],
    ] {
        assert_eq!(
            c.call(&args).await,
            Resp::Error("WRONGPASS invalid username-password pair or user is disabled.".into()),
            "{args:?}"
        );
    }
    assert_eq!(c.call(&["AUTH"]).await.error_code(), Some("ERR"));
    assert_eq!(
        c.call(&["AUTH", "a", "b", "c"]).await.error_code(),
        Some("ERR")
    );
    assert_eq!(
        c.call(&["AUTH", "default", RESP_PASSWORD]).await,
        Resp::ok()
    );
    assert_eq!(c.call(&["EXISTS", &session]).await, Resp::Int(1));
    for write in [
        vec!["SET", session.as_str(), "x"],
        vec!["DEL", session.as_str()],
        vec!["del", session.as_str()],
        vec!["EXPIRE", session.as_str(), "1"],
        vec!["SREM", "k", "m"],
        vec!["FLUSHALL"],
        vec!["GETDEL", session.as_str()],
    ] {
        assert_eq!(
            c.call(&write).await.error_code(),
            Some("READONLY"),
            "{write:?}"
        );
    }
    assert_eq!(
        c.call(&["EXISTS", &session]).await,
        Resp::Int(1),
        "nothing written"
    );
    for unknown in [
        vec!["KEYS", "*"],
        vec!["SCAN", "0"],
        vec!["SCAN", "0", "MATCH", "gatehouse:session:*"],
        vec!["RANDOMKEY"],
        vec!["DBSIZE"],
        vec!["MGET", session.as_str()],
        vec!["EVAL", "return 1", "0"],
        vec!["MULTI"],
        vec!["FOO", "a", "b"],
    ] {
        let reply = c.call(&unknown).await;
        let Resp::Error(text) = &reply else {
            panic!("{unknown:?}: {reply:?}")
        };
        assert!(
            text.starts_with(&format!("ERR unknown command '{}'", unknown[0])),
            "{unknown:?}: {text}"
        );
    }
    assert_eq!(
        c.call(&["FOO", "a", "b"]).await,
        Resp::Error("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ".into())
    );
    assert_eq!(
        c.call(&["GET"]).await,
        Resp::Error("ERR wrong number of arguments for 'get' command".into())
    );
    assert_eq!(c.call(&["GET", "a", "b"]).await.error_code(), Some("ERR"));
    assert_eq!(c.call(&["PING", "hi"]).await, bulk("hi"));
    assert_eq!(c.call(&["ECHO", "hé"]).await, bulk("hé"));
    assert_eq!(c.call(&["SELECT", "0"]).await, Resp::ok());
    assert_eq!(
        c.call(&["SELECT", "1"]).await,
        Resp::Error("ERR DB index is out of range".into())
    );
    assert_eq!(c.call(&["SELECT", "x"]).await.error_code(), Some("ERR"));
    assert_eq!(c.call(&["CLIENT", "GETNAME"]).await, Resp::Nil);
    assert_eq!(c.call(&["CLIENT", "SETNAME", "svc-a"]).await, Resp::ok());
    assert_eq!(c.call(&["CLIENT", "GETNAME"]).await, bulk("svc-a"));
    assert_eq!(
        c.call(&["CLIENT", "SETNAME", "a b"]).await.error_code(),
        Some("ERR")
    );
    assert_eq!(
        c.call(&["CLIENT", "SETINFO", "LIB-NAME", "test"]).await,
        Resp::ok()
    );
    assert_eq!(
        c.call(&["CLIENT", "SETINFO", "LIB-VER", "1.0"]).await,
        Resp::ok()
    );
    assert!(matches!(c.call(&["CLIENT", "ID"]).await, Resp::Int(_)));
    assert!(matches!(c.call(&["CLIENT", "INFO"]).await, Resp::Bulk(_)));
    assert!(
        matches!(c.call(&["CLIENT", "LIST"]).await, Resp::Error(e) if e.contains("unknown subcommand"))
    );
    let Resp::Int(count) = c.call(&["COMMAND", "COUNT"]).await else {
        panic!()
    };
    let Resp::Array(all) = c.call(&["COMMAND"]).await else {
        panic!()
    };
    assert_eq!(all.len() as i64, count);
    let Resp::Array(docs) = c.call(&["COMMAND", "DOCS", "get", "nosuch"]).await else {
        panic!("COMMAND DOCS is a map (a flat array in RESP2)")
    };
    assert_eq!(docs[0], bulk("get"));
    assert_eq!(docs.len(), 2);
    assert_eq!(c.call(&["QUIT"]).await, Resp::ok());
    assert!(c.closed_within(Duration::from_secs(5)).await, "QUIT closes");

    // redis-cli: a command before AUTH, and a refused write, say so.
    if let Some(out) = redis_cli(&addr, None, &["EXISTS", &session]) {
        assert!(out.contains("NOAUTH"), "{out}");
        let out = redis_cli(&addr, Some(RESP_PASSWORD), &["DEL", &session]).unwrap();
        assert!(out.contains("READONLY"), "{out}");
        let out = redis_cli(&addr, Some(RESP_PASSWORD), &["KEYS", "*"]).unwrap();
        assert!(out.contains("unknown command"), "{out}");
        assert_eq!(redis_cli(&addr, None, &["PING"]).unwrap(), "PONG");
        // COMMAND DOCS as redis-cli's interactive help reads it.
        let out = redis_cli(&addr, Some(RESP_PASSWORD), &["COMMAND", "DOCS", "exists"]).unwrap();
        assert!(out.contains("summary") && out.contains("generic"), "{out}");
    }
}

/// Failed AUTHs count against the client's address like failed logins: after
/// `regulation.max_retries`, even the right password is refused unchecked, and the same
/// address is banned from logging in over HTTP too.
async fn wrong_passwords_are_regulated_per_address(backend: Backend) {
    let (server, addr) = start(backend, &[("GATEHOUSE_REGULATION__MAX_RETRIES", "3")]);
    let user = email("regulated");
    assert_eq!(server.register(&user, common::PASSWORD).await.status(), 201);
    let mut c = Raw::connect(&addr).await;
    for _ in 0..3 {
        assert_eq!(
            c.call(&["AUTH", "wrong password"]).await.error_code(),
            Some("WRONGPASS")
        );
    }
    let refused = c.call(&["AUTH", RESP_PASSWORD]).await;
    let Resp::Error(text) = &refused else {
        panic!("{refused:?}")
    };
    assert!(
        text.starts_with("ERR too many failed AUTH attempts"),
        "{text}"
    );
    // On a new connection, and through HELLO, all the same.
    let mut c2 = Raw::connect(&addr).await;
    let hello = c2
        .call(&["HELLO", "3", "AUTH", "default", RESP_PASSWORD])
        .await;
    assert!(
        matches!(&hello, Resp::Error(e) if e.contains("too many failed")),
        "{hello:?}"
    );
    assert_eq!(c2.call(&["EXISTS", "x"]).await.error_code(), Some("NOAUTH"));
    // The address is banned for logins as well: one regulation.
    assert_eq!(server.login(&user, common::PASSWORD).await.status(), 429);
    let metrics = server.metrics_text().await;
    let sample = |labels: &str| {
        metric_sample(
            &metrics,
            &format!("gatehouse_resp_auth_total{{result=\"{labels}\"}}"),
        )
    };
    assert_eq!(sample("failed"), Some(3.0));
    assert_eq!(sample("regulated"), Some(2.0));
    assert_eq!(sample("ok"), Some(0.0));
    assert!(server.logs().contains("resp_auth_failed"));
    assert!(
        !server.logs().contains("wrong password"),
        "passwords never reach the logs"
    );
}

/// `HELLO 3` switches to RESP3 (maps, sets, `_` for nil) and authenticates in one step;
/// redis-py (RESP2 and RESP3), redis-rs and redis-cli -3 connect with their defaults.
async fn hello_3_and_client_libraries_connect_with_their_defaults(backend: Backend) {
    let (server, addr) = start(backend, &[]);
    let tokens = server.signup(&email("hello")).await;
    let (sid, uid) = sid_and_uid(&tokens.access);
    let session = format!("{PREFIX}session:{sid}");
    let sessions = format!("{PREFIX}user_sessions:{uid}");

    let mut c = Raw::connect(&addr).await;
    let hello = c
        .call(&[
            "HELLO",
            "3",
            "AUTH",
            "default",
            RESP_PASSWORD,
            "SETNAME",
            "svc",
        ])
        .await;
    let Resp::Map(fields) = hello else {
        panic!("HELLO 3 answers a RESP3 map: {hello:?}")
    };
    assert!(
        fields.contains(&(bulk("proto"), Resp::Int(3))),
        "{fields:?}"
    );
    assert!(fields.contains(&(bulk("server"), bulk("gatehouse"))));
    assert_eq!(
        c.call(&["GET", &format!("{PREFIX}session:none")]).await,
        Resp::Nil
    );
    c.send(&["GET", &format!("{PREFIX}session:none")]).await;
    assert!(c.buf.is_empty());
    // RESP3's null is `_`, a set is `~`.
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n") {
        let mut b = [0u8; 1];
        c.stream.read_exact(&mut b).await.unwrap();
        raw.push(b[0]);
    }
    assert_eq!(raw, b"_\r\n");
    assert_eq!(
        c.call(&["SMEMBERS", &sessions]).await,
        Resp::Set(vec![bulk(&sid)])
    );
    assert_eq!(c.call(&["CLIENT", "GETNAME"]).await, bulk("svc"));
    let Resp::Array(hello2) = c.call(&["HELLO", "2"]).await else {
        panic!("HELLO 2 answers a flat array")
    };
    assert!(hello2.contains(&bulk("proto")));
    assert_eq!(
        c.call(&["SMEMBERS", &sessions]).await,
        Resp::Array(vec![bulk(&sid)])
    );
    assert_eq!(c.call(&["HELLO", "4"]).await.error_code(), Some("NOPROTO"));
    assert_eq!(c.call(&["HELLO", "x"]).await.error_code(), Some("ERR"));
    assert_eq!(
        c.call(&["HELLO", "3", "BOGUS"]).await.error_code(),
        Some("ERR")
    );
    // HELLO with wrong credentials neither authenticates nor switches.
    let mut fresh = Raw::connect(&addr).await;
    assert_eq!(
        fresh
            .call(&["HELLO", "3", "AUTH", "default", "wrong"])
            .await
            .error_code(),
        Some("WRONGPASS")
    );
    assert_eq!(
        fresh.call(&["EXISTS", &session]).await.error_code(),
        Some("NOAUTH")
    );

    // redis-rs, RESP2 and RESP3, with a password in the URL.
    for protocol in ["", "?protocol=resp3"] {
        let url = format!("redis://:{RESP_PASSWORD}@{addr}/0{protocol}");
        let mut conn = ::redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("redis-rs connects ({url}): {e}"));
        let n: i64 = ::redis::cmd("EXISTS")
            .arg(&session)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 1);
        let members: Vec<String> = ::redis::cmd("SMEMBERS")
            .arg(&sessions)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(members, std::slice::from_ref(&sid));
        let ttl: i64 = ::redis::cmd("TTL")
            .arg(&session)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 604_000);
    }

    // redis-cli -3.
    if let Some(out) = redis_cli(&addr, Some(RESP_PASSWORD), &["-3", "EXISTS", &session]) {
        assert_eq!(out, "1");
    }

    // redis-py, as a service would use it, in both protocols.
    let Some(python) = require("python3", "apt-get install python3") else {
        return;
    };
    let has_redis_py = Command::new(&python)
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("redis-py is not installed; CI must install it (pip install redis)");
        }
        eprintln!("SKIPPED: redis-py is not installed (pip install redis); its check did not run");
        return;
    }
    let out = Command::new(&python)
        .args([
            "-c",
            REDIS_PY,
            &addr,
            RESP_PASSWORD,
            &session,
            &sessions,
            &sid,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "redis-py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    for proto in ["2", "3"] {
        let r = &results[proto];
        assert_eq!(r["exists"], 1, "{proto}: {r}");
        assert_eq!(r["exists_many"], 2, "{proto}: {r}");
        assert_eq!(r["uid"], uid.as_str(), "{proto}: {r}");
        assert!(r["ttl"].as_i64().unwrap() > 604_000, "{proto}: {r}");
        assert_eq!(r["type"], "string");
        assert_eq!(r["members"], serde_json::json!([sid]));
        assert_eq!(r["is_member"], true);
        assert_eq!(r["card"], 1);
        assert_eq!(r["ping"], true);
        assert_eq!(r["set"], "ReadOnlyError", "{proto}: {r}");
        assert!(
            r["keys"].as_str().unwrap().contains("unknown command"),
            "{r}"
        );
        assert_eq!(r["pipeline"], 2000);
        assert_eq!(r["after_logout"], 0);
    }
    let _ = server;
}

/// Run with `python3 -c REDIS_PY ADDR PASSWORD SESSION_KEY SET_KEY SID`: what a service
/// does with redis-py, printed as JSON per protocol.
const REDIS_PY: &str = r#"
import json, sys, redis
addr, password, session, sessions, sid = sys.argv[1:6]
host, port = addr.rsplit(":", 1)
out = {}
for proto in (2, 3):
    r = redis.Redis(host=host, port=int(port), password=password, protocol=proto,
                    decode_responses=True)
    res = {
        "exists": r.exists(session),
        "exists_many": r.exists(session, session, session + "x"),
        "uid": json.loads(r.get(session))["uid"],
        "ttl": r.ttl(session),
        "type": r.type(session),
        "members": sorted(r.smembers(sessions)),
        "is_member": bool(r.sismember(sessions, sid)),
        "card": r.scard(sessions),
        "ping": r.ping(),
    }
    try:
        r.set(session, "x")
        res["set"] = "accepted"
    except redis.exceptions.ResponseError as e:
        res["set"] = type(e).__name__
    try:
        r.keys("*")
        res["keys"] = "accepted"
    except redis.exceptions.ResponseError as e:
        res["keys"] = str(e)
    pipe = r.pipeline(transaction=False)
    for _ in range(2000):
        pipe.exists(session)
    res["pipeline"] = sum(pipe.execute())
    res["after_logout"] = r.exists(session + "-never")
    out[str(proto)] = res
print(json.dumps(out))
"#;

/// Thousands of commands in one write are answered in order; `redis-cli --pipe` (which ends
/// with an `ECHO` marker) sees no error.
async fn thousands_of_pipelined_commands_answer_in_order(backend: Backend) {
    let (server, addr) = start(backend, &[]);
    let tokens = server.signup(&email("pipe")).await;
    let (sid, _) = sid_and_uid(&tokens.access);
    let session = format!("{PREFIX}session:{sid}");
    let absent = format!("{PREFIX}session:absent");

    let mut c = Raw::authed(&addr).await;
    let n = 10_000;
    let mut batch = Vec::new();
    for i in 0..n {
        let key = if i % 2 == 0 { &session } else { &absent };
        batch.extend_from_slice(&encode(&["EXISTS", key]));
    }
    c.write(&batch).await;
    for i in 0..n {
        let want = if i % 2 == 0 { 1 } else { 0 };
        assert_eq!(c.reply().await, Resp::Int(want), "reply {i}");
    }
    // Inline commands pipeline too.
    c.write(b"PING\r\nEXISTS gatehouse:session:absent\r\nECHO \"a b\"\r\n")
        .await;
    assert_eq!(c.reply().await, Resp::Simple("PONG".into()));
    assert_eq!(c.reply().await, Resp::Int(0));
    assert_eq!(c.reply().await, bulk("a b"));

    if let Some(cli) = require("redis-cli", "apt-get install redis-tools") {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let mut input = encode(&["AUTH", RESP_PASSWORD]);
        for _ in 0..5_000 {
            input.extend_from_slice(&encode(&["GET", &session]));
            input.extend_from_slice(&encode(&["EXISTS", &session]));
        }
        let mut child = Command::new(cli)
            .args(["-h", host, "-p", port, "--pipe"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, &input).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("errors: 0, replies: 10001"), "{text}");
    }
}

/// Huge lengths, garbage, unterminated frames, endless lines and unread answers: each
/// connection gets a protocol error or is dropped; the server stays up, its memory bounded,
/// and the next client is served.
async fn hostile_input_never_takes_the_server_down(backend: Backend) {
    let (server, addr) = start(backend, &[("GATEHOUSE_RESP__IDLE_TIMEOUT", "2")]);
    let protocol_error = |detail: &str| Resp::Error(format!("ERR Protocol error: {detail}"));
    let cases: Vec<(Vec<u8>, Resp)> = vec![
        (
            b"*999999999999\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*1\r\n$999999999999\r\n".to_vec(),
            protocol_error("invalid bulk length"),
        ),
        (
            b"*2\r\n$3\r\nGET\r\n$2147483648\r\n".to_vec(),
            protocol_error("invalid bulk length"),
        ),
        (
            b"*-5x\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*1\r\n+PING\r\n".to_vec(),
            protocol_error("expected '$', got '+'"),
        ),
        (
            b"\"unbalanced\r\n".to_vec(),
            protocol_error("unbalanced quotes in request"),
        ),
        (vec![b'x'; 70_000], protocol_error("too big inline request")),
    ];
    for (input, want) in cases {
        let mut c = Raw::connect(&addr).await;
        c.write(&input).await;
        assert_eq!(
            c.reply().await,
            want,
            "{:?}",
            String::from_utf8_lossy(&input[..input.len().min(40)])
        );
        assert!(
            c.closed_within(Duration::from_secs(5)).await,
            "closed after a protocol error"
        );
    }
    // A request that keeps growing (each argument within bounds) is cut off at 1 MiB.
    let mut c = Raw::connect(&addr).await;
    c.write(b"*1024\r\n").await;
    let arg = format!("$65536\r\n{}\r\n", "a".repeat(65_536));
    for _ in 0..17 {
        if c.stream.write_all(arg.as_bytes()).await.is_err() {
            break;
        }
    }
    assert_eq!(c.reply().await, protocol_error("request too large"));
    // Random bytes: an error or a close, never a hang or a crash.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        let mut c = Raw::connect(&addr).await;
        let junk: Vec<u8> = (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let _ = c.stream.write_all(&junk).await;
        let _ = c.closed_within(Duration::from_secs(5)).await;
    }
    // Unterminated frames and silent clients are closed after resp.idle_timeout (2 s).
    let mut quiet = Vec::new();
    for partial in [
        &b"*2\r\n$3\r\nGET\r\n$5\r\nab"[..],
        b"*3\r\n",
        b"GET gatehouse:x",
        b"",
    ] {
        let mut c = Raw::connect(&addr).await;
        c.write(partial).await;
        quiet.push(c);
    }
    let started = Instant::now();
    for c in &mut quiet {
        assert!(
            c.closed_within(Duration::from_secs(6)).await,
            "closed when idle"
        );
        assert!(
            c.buf.is_empty(),
            "nothing answered to an incomplete request: {:?}",
            c.buf
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before the timeout"
    );
    // A client that pipelines without ever reading: the server stops reading once its
    // answers back up, and drops the client at the idle timeout; memory stays bounded.
    let mut greedy = Raw::authed(&addr).await;
    let echo = encode(&["ECHO", &"e".repeat(60_000)]);
    let writer = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut sent = 0usize;
        while Instant::now() < deadline && sent < 400 * 1024 * 1024 {
            match tokio::time::timeout(Duration::from_secs(1), greedy.stream.write_all(&echo)).await
            {
                Ok(Ok(())) => sent += echo.len(),
                Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
        sent
    });
    let sent = writer.await.unwrap();
    assert!(
        sent < 400 * 1024 * 1024,
        "back-pressure stopped the writer ({sent} bytes)"
    );
    let rss = rss_kib(server.pid());
    assert!(rss < 200 * 1024, "RSS {rss} KiB after hostile input");

    // Still serving, on both sides.
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mut c = Raw::authed(&addr).await;
    assert_eq!(c.call(&["PING"]).await, Resp::Simple("PONG".into()));
    let metrics = server.metrics_text().await;
    let errors = metric_sample(&metrics, "gatehouse_resp_protocol_errors_total").unwrap();
    assert!(errors >= 8.0, "{errors}");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `resp.max_connections` open connections are served; more are told Redis' "max number
/// of clients reached" and closed, while HTTP keeps answering; idle ones close after
/// `resp.idle_timeout`, freeing their slots; a stop closes the rest.
async fn connections_are_capped_and_idle_ones_closed(backend: Backend) {
    let (mut server, addr) = start(
        backend,
        &[
            ("GATEHOUSE_RESP__MAX_CONNECTIONS", "20"),
            ("GATEHOUSE_RESP__IDLE_TIMEOUT", "2"),
        ],
    );
    let first = server.metrics_text().await;
    for series in [
        "gatehouse_resp_connections",
        "gatehouse_resp_connections_total{result=\"accepted\"}",
        "gatehouse_resp_connections_total{result=\"refused\"}",
        "gatehouse_resp_commands_total{command=\"exists\"}",
        "gatehouse_resp_commands_total{command=\"unknown\"}",
        "gatehouse_resp_commands_total{command=\"write\"}",
        "gatehouse_resp_auth_total{result=\"failed\"}",
        "gatehouse_resp_protocol_errors_total",
    ] {
        assert_eq!(
            metric_sample(&first, series),
            Some(0.0),
            "{series} at zero from the start"
        );
    }
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = Raw::authed(&addr).await;
        assert_eq!(c.call(&["PING"]).await, Resp::Simple("PONG".into()));
        held.push(c);
    }
    // 200 more, beyond the cap: each is refused at once (the held ones keep busy, so that
    // the idle timeout does not free a slot meanwhile).
    for i in 0..200 {
        if i % 40 == 0 {
            for h in &mut held {
                assert_eq!(h.call(&["PING"]).await, Resp::Simple("PONG".into()));
            }
        }
        let mut c = Raw::connect(&addr).await;
        if i % 20 == 0 {
            c.send(&["AUTH", RESP_PASSWORD]).await;
        }
        assert_eq!(
            c.reply().await,
            Resp::Error("ERR max number of clients reached".into())
        );
        assert!(c.closed_within(Duration::from_secs(3)).await);
    }
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = server.metrics_text().await;
    assert_eq!(
        metric_sample(&metrics, "gatehouse_resp_connections"),
        Some(20.0)
    );
    assert_eq!(
        metric_sample(
            &metrics,
            "gatehouse_resp_connections_total{result=\"refused\"}"
        ),
        Some(200.0)
    );
    // The held connections go quiet and are closed; their slots serve new clients.
    for c in &mut held {
        assert!(c.closed_within(Duration::from_secs(6)).await, "idle closed");
    }
    let mut c = Raw::authed(&addr).await;
    assert_eq!(c.call(&["PING"]).await, Resp::Simple("PONG".into()));
    // A busy connection is not idle: commands every second keep it open past the timeout.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(c.call(&["PING"]).await, Resp::Simple("PONG".into()));
    }
    // Before AUTH, being busy does not count: PINGs every 0.5 s do not keep an
    // unauthenticated connection past the deadline (here the 2 s idle timeout).
    let mut pinger = Raw::connect(&addr).await;
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(6) {
        pinger.send(&["PING"]).await;
        if pinger.closed_within(Duration::from_millis(500)).await {
            break;
        }
        answered += 1;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed at the AUTH deadline"
    );
    assert!(answered >= 2, "PONGs before the deadline: {answered}");
    let commands = server.metrics_text().await;
    assert!(
        metric_sample(&commands, "gatehouse_resp_commands_total{command=\"ping\"}").unwrap()
            >= 25.0
    );
    // Stopping closes the open connections and exits cleanly, well within the drain time.
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(Raw::authed(&addr).await);
    }
    let started = Instant::now();
    let status = server.stop();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(c.closed_within(Duration::from_secs(1)).await);
}

/// `resp.tls_cert`/`resp.tls_key`: the listener speaks TLS only; redis-cli --tls checks a
/// session with the CA, and a plain-text client gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_redis_cli() {
    let Some(openssl) = require("openssl", "apt-get install openssl") else {
        return;
    };
    let Some(cli) = require("redis-cli", "apt-get install redis-tools") else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=gatehouse-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    let path = |f: &str| dir.join(f).display().to_string();
    let (server, addr) = start(
        Backend::Embedded,
        &[
            ("GATEHOUSE_RESP__TLS_CERT", &path("server.pem")),
            ("GATEHOUSE_RESP__TLS_KEY", &path("server.key")),
        ],
    );
    assert!(server.logs().contains("tls=true"));
    let tokens = server.signup(&email("tls")).await;
    let (sid, _) = sid_and_uid(&tokens.access);
    let session = format!("{PREFIX}session:{sid}");
    let (_, port) = addr.rsplit_once(':').unwrap();
    let tls_cli = |ca: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(&cli);
        cmd.args([
            "--tls",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-a",
            RESP_PASSWORD,
            "--no-auth-warning",
        ]);
        if let Some(ca) = ca {
            cmd.args(["--cacert", ca]);
        }
        let out = cmd.args(args).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    };
    assert_eq!(tls_cli(Some(&path("ca.pem")), &["EXISTS", &session]), "1");
    assert_eq!(tls_cli(Some(&path("ca.pem")), &["PING"]), "PONG");
    // Without the CA, redis-cli refuses the certificate.
    assert!(
        tls_cli(None, &["PING"]).contains("certificate"),
        "unverified refused"
    );
    // Plain text gets no answer: the connection is closed by the failed handshake.
    let mut plain = Raw::connect(&addr).await;
    plain.send(&["PING"]).await;
    assert!(plain.closed_within(Duration::from_secs(5)).await);
    assert!(
        !plain.buf.windows(4).any(|w| w == b"PONG"),
        "{:?}",
        plain.buf
    );
    let _ = server;
}

/// A listener without a password is refused by check-config, and a certificate that cannot
/// be read stops `serve` before it listens, each with a message naming the key.
#[test]
fn misconfigured_listeners_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let gatehouse = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(args)
            .env_clear()
            .env("GATEHOUSE_DATA_DIR", dir.path())
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_RESP__LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = gatehouse(&["check-config"], &[]);
    assert!(!ok && err.contains("resp.password"), "{err}");
    let (ok, err) = gatehouse(&["check-config"], &[("GATEHOUSE_RESP__PASSWORD", "short")]);
    assert!(!ok && err.contains("resp.password"), "{err}");
    let (ok, err) = gatehouse(
        &["serve"],
        &[
            ("GATEHOUSE_RESP__PASSWORD", RESP_PASSWORD),
            ("GATEHOUSE_RESP__TLS_CERT", "/nonexistent/cert.pem"),
            ("GATEHOUSE_RESP__TLS_KEY", "/nonexistent/key.pem"),
        ],
    );
    assert!(!ok && err.contains("resp.tls_cert"), "{err}");
}
