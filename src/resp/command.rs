//! The commands: one table of what gatehouse answers ([`COMMANDS`]: name, Redis' arity,
//! and what `COMMAND` tells redis-cli), who may run what (`-NOAUTH` before `AUTH`,
//! `-READONLY` for writes, `-ERR unknown command` for the rest), and each answer.
//!
//! Keys are the session-store layout behind `redis.prefix` (`store::keys`), and only the
//! keys other services may read (`keys::readable_by_services`); anything else reads as a key
//! that does not exist. Answers come from whichever `SessionStore` runs, so they are what
//! the Redis backend holds (or would hold) at that moment; the layout says which keys are
//! values and which are sets, so a command never asks the store for the wrong kind.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::frame::{Protocol, Reply};
use super::metrics::RespMetrics;
use crate::app::App;
use crate::auth::AuthError;
use crate::store::{KeyKind, SessionStore, StoreError, keys};

/// The version whose answers the listener follows, as `HELLO` reports it.
const REDIS_VERSION: &str = "7.0.0";

/// What the listener shares between its connections.
pub(crate) struct Shared {
    pub(crate) app: Arc<App>,
    /// SHA-256 of `resp.password`: compared in constant time with that of the one given,
    /// so neither its bytes nor its length leak through timing.
    password: [u8; 32],
    prefix: String,
    pub(crate) metrics: RespMetrics,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(app: Arc<App>, password: &str, metrics: RespMetrics) -> Self {
        let prefix = app.config.redis.prefix.clone();
        Shared {
            app,
            password: Sha256::digest(password.as_bytes()).into(),
            prefix,
            metrics,
            next_id: AtomicU64::new(1),
        }
    }

    fn store(&self) -> &dyn SessionStore {
        self.app.auth.store()
    }

    /// The store key a client's key names, and what it holds by the layout; `None` for a
    /// key outside the prefix, outside what services may read, or not UTF-8: such a key
    /// does not exist.
    fn key<'a>(&self, raw: &'a [u8]) -> Option<(&'a str, KeyKind)> {
        let key = std::str::from_utf8(raw.strip_prefix(self.prefix.as_bytes())?).ok()?;
        Some((key, keys::readable_by_services(key)?))
    }

    fn password_matches(&self, given: &[u8]) -> bool {
        let given: [u8; 32] = Sha256::digest(given).into();
        bool::from(given.ct_eq(&self.password))
    }
}

/// One connection's state.
pub(crate) struct Client {
    id: u64,
    peer: SocketAddr,
    /// The address regulation counts failed `AUTH`s under: the peer itself (no proxy stands
    /// in front of a Redis client), in canonical form.
    ip: String,
    authenticated: bool,
    /// When the connection was accepted: it must authenticate within [`AUTH_DEADLINE`].
    since: std::time::Instant,
    pub(crate) protocol: Protocol,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
    /// `QUIT` was answered: close once the answer is written.
    pub(crate) quit: bool,
}

/// Time a connection gets to authenticate (when shorter than `resp.idle_timeout`): without
/// it, clients that never authenticate could hold every connection slot for the whole idle
/// timeout and shut the services that do out.
pub(crate) const AUTH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

impl Client {
    /// How long the connection may now wait for the client's next bytes: the idle timeout;
    /// before `AUTH`, only until [`AUTH_DEADLINE`] (or the idle timeout, if shorter) after it
    /// was accepted, busy or not. `None`: that time is up.
    pub(crate) fn patience(&self, idle: std::time::Duration) -> Option<std::time::Duration> {
        if self.authenticated {
            Some(idle)
        } else {
            idle.min(AUTH_DEADLINE).checked_sub(self.since.elapsed())
        }
    }

    pub(crate) fn new(shared: &Shared, peer: SocketAddr) -> Self {
        Client {
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            ip: peer.ip().to_canonical().to_string(),
            authenticated: false,
            since: std::time::Instant::now(),
            protocol: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            quit: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Auth,
    Hello,
    Ping,
    Echo,
    Select,
    Quit,
    Client,
    Command,
    Get,
    Exists,
    Ttl,
    Pttl,
    Type,
    Smembers,
    Sismember,
    Scard,
}

/// A command gatehouse answers, with what `COMMAND INFO` and `COMMAND DOCS` say of it.
pub(crate) struct Spec {
    /// Lower case, as Redis names commands in replies and errors.
    pub(crate) name: &'static str,
    cmd: Cmd,
    /// Redis' arity: `n` exactly n arguments (the name included), `-n` at least n.
    arity: i64,
    /// Answered before `AUTH`.
    open: bool,
    flags: &'static [&'static str],
    /// First key, last key, step (`COMMAND INFO`).
    keys: (i64, i64, i64),
    group: &'static str,
    since: &'static str,
    summary: &'static str,
    args: &'static [Arg],
}

/// An argument, for `COMMAND DOCS` (redis-cli's help and hints).
struct Arg {
    name: &'static str,
    kind: &'static str,
    optional: bool,
    multiple: bool,
}

const fn arg(name: &'static str, kind: &'static str) -> Arg {
    Arg {
        name,
        kind,
        optional: false,
        multiple: false,
    }
}

const fn optional(name: &'static str, kind: &'static str) -> Arg {
    Arg {
        name,
        kind,
        optional: true,
        multiple: false,
    }
}

const fn multiple(name: &'static str, kind: &'static str) -> Arg {
    Arg {
        name,
        kind,
        optional: false,
        multiple: true,
    }
}

const KEY: &[Arg] = &[arg("key", "key")];
const READ: &[&str] = &["readonly", "fast"];
const CONNECTION: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

/// Everything the listener answers; anything else is a write (`-READONLY`) or unknown.
pub(crate) const COMMANDS: &[Spec] = &[
    Spec {
        name: "auth",
        cmd: Cmd::Auth,
        arity: -2,
        open: true,
        flags: CONNECTION,
        keys: (0, 0, 0),
        group: "connection",
        since: "1.0.0",
        summary: "Authenticates the connection (the password alone, or the user default and the password).",
        args: &[optional("username", "string"), arg("password", "string")],
    },
    Spec {
        name: "hello",
        cmd: Cmd::Hello,
        arity: -1,
        open: true,
        flags: CONNECTION,
        keys: (0, 0, 0),
        group: "connection",
        since: "6.0.0",
        summary: "Handshakes: selects RESP2 or RESP3, optionally authenticates and names the connection.",
        args: &[
            optional("protover", "integer"),
            optional("AUTH username password", "string"),
            optional("SETNAME clientname", "string"),
        ],
    },
    Spec {
        name: "ping",
        cmd: Cmd::Ping,
        arity: -1,
        open: true,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        since: "1.0.0",
        summary: "Answers PONG, also before AUTH (or the message given, once authenticated).",
        args: &[optional("message", "string")],
    },
    Spec {
        name: "echo",
        cmd: Cmd::Echo,
        arity: 2,
        open: false,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        since: "1.0.0",
        summary: "Returns the given string.",
        args: &[arg("message", "string")],
    },
    Spec {
        name: "select",
        cmd: Cmd::Select,
        arity: 2,
        open: false,
        flags: &["loading", "stale", "fast"],
        keys: (0, 0, 0),
        group: "connection",
        since: "1.0.0",
        summary: "Selects database 0, the only one.",
        args: &[arg("index", "integer")],
    },
    Spec {
        name: "quit",
        cmd: Cmd::Quit,
        arity: -1,
        open: true,
        flags: CONNECTION,
        keys: (0, 0, 0),
        group: "connection",
        since: "1.0.0",
        summary: "Closes the connection.",
        args: &[],
    },
    Spec {
        name: "client",
        cmd: Cmd::Client,
        arity: -2,
        open: false,
        flags: &["noscript", "loading", "stale"],
        keys: (0, 0, 0),
        group: "connection",
        since: "2.4.0",
        summary: "CLIENT SETNAME, GETNAME, SETINFO, ID, INFO, HELP: what client libraries send when they connect.",
        args: &[arg("subcommand", "string"), optional("arg", "string")],
    },
    Spec {
        name: "command",
        cmd: Cmd::Command,
        arity: -1,
        open: false,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        group: "server",
        since: "2.8.13",
        summary: "COMMAND, COMMAND COUNT, LIST, INFO, DOCS, HELP: the commands this listener answers.",
        args: &[optional("subcommand", "string")],
    },
    Spec {
        name: "get",
        cmd: Cmd::Get,
        arity: 2,
        open: false,
        flags: READ,
        keys: (1, 1, 1),
        group: "string",
        since: "1.0.0",
        summary: "Returns a session record (JSON), or nil once the session has ended.",
        args: KEY,
    },
    Spec {
        name: "exists",
        cmd: Cmd::Exists,
        arity: -2,
        open: false,
        flags: READ,
        keys: (1, -1, 1),
        group: "generic",
        since: "1.0.0",
        summary: "Counts the given keys that exist: 1 for a session that lives.",
        args: &[multiple("key", "key")],
    },
    Spec {
        name: "ttl",
        cmd: Cmd::Ttl,
        arity: 2,
        open: false,
        flags: READ,
        keys: (1, 1, 1),
        group: "generic",
        since: "1.0.0",
        summary: "Seconds a key has left (-2: it does not exist).",
        args: KEY,
    },
    Spec {
        name: "pttl",
        cmd: Cmd::Pttl,
        arity: 2,
        open: false,
        flags: READ,
        keys: (1, 1, 1),
        group: "generic",
        since: "2.6.0",
        summary: "Milliseconds a key has left (-2: it does not exist).",
        args: KEY,
    },
    Spec {
        name: "type",
        cmd: Cmd::Type,
        arity: 2,
        open: false,
        flags: READ,
        keys: (1, 1, 1),
        group: "generic",
        since: "1.0.0",
        summary: "string, set or none.",
        args: KEY,
    },
    Spec {
        name: "smembers",
        cmd: Cmd::Smembers,
        arity: 2,
        open: false,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "set",
        since: "1.0.0",
        summary: "The session ids of a user (user_sessions:<uid>).",
        args: KEY,
    },
    Spec {
        name: "sismember",
        cmd: Cmd::Sismember,
        arity: 3,
        open: false,
        flags: READ,
        keys: (1, 1, 1),
        group: "set",
        since: "1.0.0",
        summary: "Whether a session id is one of a user's.",
        args: &[arg("key", "key"), arg("member", "string")],
    },
    Spec {
        name: "scard",
        cmd: Cmd::Scard,
        arity: 2,
        open: false,
        flags: READ,
        keys: (1, 1, 1),
        group: "set",
        since: "1.0.0",
        summary: "How many session ids a user's set holds.",
        args: KEY,
    },
];

/// Redis' commands that write (upper case, sorted for binary search): answered `-READONLY`
/// once authenticated, so a client that tries one learns why rather than "unknown".
const WRITES: &[&str] = &[
    "APPEND",
    "BITFIELD",
    "BITOP",
    "BLMOVE",
    "BLMPOP",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BZMPOP",
    "BZPOPMAX",
    "BZPOPMIN",
    "COPY",
    "DECR",
    "DECRBY",
    "DEL",
    "EXPIRE",
    "EXPIREAT",
    "FLUSHALL",
    "FLUSHDB",
    "GEOADD",
    "GEORADIUS",
    "GEORADIUSBYMEMBER",
    "GEOSEARCHSTORE",
    "GETDEL",
    "GETEX",
    "GETSET",
    "HDEL",
    "HEXPIRE",
    "HEXPIREAT",
    "HGETDEL",
    "HGETEX",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HMSET",
    "HPERSIST",
    "HPEXPIRE",
    "HPEXPIREAT",
    "HSET",
    "HSETEX",
    "HSETNX",
    "INCR",
    "INCRBY",
    "INCRBYFLOAT",
    "LINSERT",
    "LMOVE",
    "LMPOP",
    "LPOP",
    "LPUSH",
    "LPUSHX",
    "LREM",
    "LSET",
    "LTRIM",
    "MIGRATE",
    "MOVE",
    "MSET",
    "MSETNX",
    "PERSIST",
    "PEXPIRE",
    "PEXPIREAT",
    "PFADD",
    "PFMERGE",
    "PSETEX",
    "RENAME",
    "RENAMENX",
    "RESTORE",
    "RPOP",
    "RPOPLPUSH",
    "RPUSH",
    "RPUSHX",
    "SADD",
    "SDIFFSTORE",
    "SET",
    "SETBIT",
    "SETEX",
    "SETNX",
    "SETRANGE",
    "SINTERSTORE",
    "SMOVE",
    "SORT",
    "SPOP",
    "SREM",
    "SUNIONSTORE",
    "SWAPDB",
    "UNLINK",
    "XACK",
    "XADD",
    "XAUTOCLAIM",
    "XCLAIM",
    "XDEL",
    "XGROUP",
    "XREADGROUP",
    "XSETID",
    "XTRIM",
    "ZADD",
    "ZDIFFSTORE",
    "ZINCRBY",
    "ZINTERSTORE",
    "ZMPOP",
    "ZPOPMAX",
    "ZPOPMIN",
    "ZRANGESTORE",
    "ZREM",
    "ZREMRANGEBYLEX",
    "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE",
    "ZUNIONSTORE",
];

fn lookup(name: &[u8]) -> Option<(usize, &'static Spec)> {
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, spec)| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

fn is_write(name: &[u8]) -> bool {
    if name.len() > 24 {
        return false;
    }
    let upper = name.to_ascii_uppercase();
    WRITES
        .binary_search_by(|w| w.as_bytes().cmp(upper.as_slice()))
        .is_ok()
}

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const READONLY: &str =
    "READONLY gatehouse answers reads only; sessions change through its HTTP API";
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const SYNTAX: &str = "ERR syntax error";

/// Runs one request and returns its answer. Never fails: every problem is an error reply.
pub(crate) async fn execute(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    let Some(name) = args.first() else {
        return Reply::Ok; // the parser never yields an empty request
    };
    let found = lookup(name);
    match found {
        Some((index, _)) => shared.metrics.command(index),
        None if is_write(name) => shared.metrics.writes.increment(1),
        None => shared.metrics.unknown.increment(1),
    }
    if !client.authenticated && !found.is_some_and(|(_, spec)| spec.open) {
        return Reply::error(NOAUTH);
    }
    let Some((_, spec)) = found else {
        if is_write(name) {
            return Reply::error(READONLY);
        }
        return unknown_command(args);
    };
    let n = args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || n < -spec.arity {
        return wrong_arity(spec.name);
    }
    let result = match spec.cmd {
        Cmd::Auth => return auth(shared, client, args).await,
        Cmd::Hello => return hello(shared, client, args).await,
        Cmd::Ping => {
            return match args.get(1) {
                None => Reply::simple("PONG"),
                Some(message) if args.len() == 2 => Reply::Bulk(message.clone()),
                Some(_) => wrong_arity(spec.name),
            };
        }
        Cmd::Echo => return Reply::Bulk(args[1].clone()),
        Cmd::Select => return select(&args[1]),
        Cmd::Quit => {
            client.quit = true;
            return Reply::Ok;
        }
        Cmd::Client => return client_command(client, args),
        Cmd::Command => return command_command(args),
        Cmd::Get => get(shared, &args[1]).await,
        Cmd::Exists => exists(shared, &args[1..]).await,
        Cmd::Ttl => ttl(shared, &args[1], false).await,
        Cmd::Pttl => ttl(shared, &args[1], true).await,
        Cmd::Type => kind(shared, &args[1]).await,
        Cmd::Smembers => set_read(shared, &args[1], SetRead::Members).await,
        Cmd::Sismember => set_read(shared, &args[1], SetRead::IsMember(&args[2])).await,
        Cmd::Scard => set_read(shared, &args[1], SetRead::Count).await,
    };
    result.unwrap_or_else(|e| {
        // Fail closed, as the HTTP side answers 503: the client learns nothing about the
        // session, never a wrong "does not exist". The store's error counter has it.
        tracing::debug!(error = %e, "RESP command failed on the session store");
        Reply::error("ERR the session store is unavailable; retry later")
    })
}

/// Redis' text: `unknown command 'x', with args beginning with: 'a' 'b' `, the name and the
/// quoted arguments cut at 128 bytes.
fn unknown_command(args: &[Bytes]) -> Reply {
    let mut quoted = String::new();
    for a in &args[1..] {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        quoted.push('\'');
        quoted.push_str(&lossy_prefix(a, room));
        quoted.push_str("' ");
    }
    Reply::error(format!(
        "ERR unknown command '{}', with args beginning with: {quoted}",
        lossy_prefix(&args[0], 128)
    ))
}

/// At most `max` bytes of `bytes` as text.
fn lossy_prefix(bytes: &[u8], max: usize) -> Cow<'_, str> {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)])
}

fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        lossy_prefix(sub, 128)
    ))
}

/// `AUTH password` or `AUTH default password`.
async fn auth(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    let (user, password) = match args {
        [_, password] => (None, password),
        [_, user, password] => (Some(user), password),
        _ => return Reply::error(SYNTAX),
    };
    authenticate(shared, client, user.map(|u| &u[..]), password).await
}

/// Checks the credentials under regulation of the client's address, like a login: a banned
/// address is refused before the password is looked at, and every wrong password (or any
/// user name but `default`) counts towards a ban.
async fn authenticate(
    shared: &Shared,
    client: &mut Client,
    user: Option<&[u8]>,
    password: &[u8],
) -> Reply {
    let user_ok = user.is_none_or(|u| u == b"default");
    let checked = shared
        .app
        .auth
        .check_secret("resp_auth", Some(&client.ip), || {
            // Both run, so a wrong user name costs the same as a wrong password.
            let password_ok = shared.password_matches(password);
            user_ok & password_ok
        })
        .await;
    let m = &shared.metrics;
    match checked {
        Ok(true) => {
            m.auth_ok.increment(1);
            client.authenticated = true;
            Reply::Ok
        }
        Ok(false) => {
            m.auth_failed.increment(1);
            tracing::info!(event = "resp_auth_failed", ip = %client.ip, id = client.id);
            Reply::error(WRONGPASS)
        }
        Err(AuthError::Regulated { retry_after }) => {
            m.auth_regulated.increment(1);
            Reply::error(format!(
                "ERR too many failed AUTH attempts from this address; retry in {retry_after} s"
            ))
        }
        Err(AuthError::Busy) => Reply::error("ERR too many AUTH attempts at once; retry"),
        Err(e) => {
            tracing::debug!(error = %e, "RESP AUTH could not be checked");
            Reply::error("ERR the session store is unavailable; retry later")
        }
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, in Redis' order:
/// version, options, credentials, then (authenticated only) the name and the switch.
async fn hello(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    let mut protocol = None;
    let mut rest = &args[1..];
    if let Some((version, tail)) = rest.split_first() {
        match parse_int(version) {
            Some(2) => protocol = Some(Protocol::Resp2),
            Some(3) => protocol = Some(Protocol::Resp3),
            Some(_) => return Reply::error("NOPROTO unsupported protocol version"),
            None => {
                return Reply::error("ERR Protocol version is not an integer or out of range");
            }
        }
        rest = tail;
    }
    let mut credentials = None;
    let mut name = None;
    while let Some((option, tail)) = rest.split_first() {
        match (option.to_ascii_uppercase().as_slice(), tail) {
            (b"AUTH", [user, password, tail @ ..]) => {
                credentials = Some((user, password));
                rest = tail;
            }
            (b"SETNAME", [value, tail @ ..]) => {
                name = Some(value);
                rest = tail;
            }
            _ => {
                return Reply::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    lossy_prefix(option, 128)
                ));
            }
        }
    }
    if let Some((user, password)) = credentials {
        let answer = authenticate(shared, client, Some(user), password).await;
        if answer.is_error() {
            return answer;
        }
    }
    if !client.authenticated {
        return Reply::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = name {
        if let Err(e) = check_name(name, "Client names") {
            return e;
        }
        client.name = (!name.is_empty()).then(|| name.clone());
    }
    if let Some(p) = protocol {
        client.protocol = p;
    }
    let proto = match client.protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("gatehouse")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Integer(proto)),
        (Reply::bulk("id"), Reply::Integer(client.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ])
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// `SELECT 0`: there is one database.
fn select(index: &[u8]) -> Reply {
    match parse_int(index) {
        Some(0) => Reply::Ok,
        Some(_) => Reply::error("ERR DB index is out of range"),
        None => Reply::error(NOT_AN_INTEGER),
    }
}

/// Redis' rule for client names and library names: printable ASCII, no spaces.
fn check_name(value: &[u8], what: &str) -> Result<(), Reply> {
    if value.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(())
    } else {
        Err(Reply::error(format!(
            "ERR {what} cannot contain spaces, newlines or special characters."
        )))
    }
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

fn client_command(client: &mut Client, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    let n = args.len();
    match (sub.as_slice(), n) {
        (b"SETNAME", 3) => match check_name(&args[2], "Client names") {
            Ok(()) => {
                client.name = (!args[2].is_empty()).then(|| args[2].clone());
                Reply::Ok
            }
            Err(e) => e,
        },
        (b"SETNAME", _) => wrong_arity("client|setname"),
        (b"GETNAME", 2) => client.name.clone().map_or(Reply::Null, Reply::Bulk),
        (b"GETNAME", _) => wrong_arity("client|getname"),
        (b"ID", 2) => Reply::Integer(client.id as i64),
        (b"ID", _) => wrong_arity("client|id"),
        (b"SETINFO", 4) => {
            let value = &args[3];
            match args[2].to_ascii_uppercase().as_slice() {
                b"LIB-NAME" => {
                    if let Err(e) = check_name(value, "lib-name") {
                        return e;
                    }
                    client.lib_name = Some(value.clone());
                }
                b"LIB-VER" => {
                    if let Err(e) = check_name(value, "lib-ver") {
                        return e;
                    }
                    client.lib_ver = Some(value.clone());
                }
                _ => {
                    return Reply::error(format!(
                        "ERR Unrecognized option '{}'",
                        lossy_prefix(&args[2], 128)
                    ));
                }
            }
            Reply::Ok
        }
        (b"SETINFO", _) => wrong_arity("client|setinfo"),
        (b"INFO", 2) => {
            let text = |v: &Option<Bytes>| {
                v.as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
            };
            let proto = if client.protocol == Protocol::Resp3 {
                3
            } else {
                2
            };
            Reply::bulk(format!(
                "id={} addr={} name={} db=0 resp={proto} lib-name={} lib-ver={}\n",
                client.id,
                client.peer,
                text(&client.name),
                text(&client.lib_name),
                text(&client.lib_ver),
            ))
        }
        (b"INFO", _) => wrong_arity("client|info"),
        (b"HELP", 2) => help(CLIENT_HELP),
        _ => unknown_subcommand(&args[1], "CLIENT"),
    }
}

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(
        lines
            .iter()
            .map(|l| Reply::Simple(Cow::Borrowed(l)))
            .collect(),
    )
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all the commands this listener answers.",
    "COUNT",
    "    Return the number of commands this listener answers.",
    "DOCS [<command-name> ...]",
    "    Return documentary information about commands.",
    "INFO [<command-name> ...]",
    "    Return details about the given commands, or all of them.",
    "LIST",
    "    Return the names of the commands.",
    "HELP",
    "    Print this help.",
];

/// `COMMAND` and the subcommands redis-cli and client libraries use; they describe only the
/// commands of [`COMMANDS`].
fn command_command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(COMMANDS.iter().map(info).collect());
    };
    let named = |names: &[Bytes]| -> Vec<Option<&'static Spec>> {
        names.iter().map(|n| lookup(n).map(|(_, s)| s)).collect()
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" if args.len() == 2 => Reply::Integer(COMMANDS.len() as i64),
        b"LIST" if args.len() == 2 => {
            Reply::Array(COMMANDS.iter().map(|s| Reply::bulk(s.name)).collect())
        }
        b"INFO" if args.len() == 2 => Reply::Array(COMMANDS.iter().map(info).collect()),
        b"INFO" => Reply::Array(
            named(&args[2..])
                .into_iter()
                .map(|s| s.map_or(Reply::Null, info))
                .collect(),
        ),
        b"DOCS" => {
            let specs: Vec<&Spec> = if args.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                named(&args[2..]).into_iter().flatten().collect()
            };
            Reply::Map(
                specs
                    .into_iter()
                    .map(|s| (Reply::bulk(s.name), docs(s)))
                    .collect(),
            )
        }
        b"HELP" if args.len() == 2 => help(COMMAND_HELP),
        b"COUNT" | b"LIST" | b"HELP" => {
            let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
            wrong_arity(&format!("command|{sub}"))
        }
        _ => unknown_subcommand(sub, "COMMAND"),
    }
}

fn statuses(flags: &[&'static str]) -> Reply {
    Reply::Set(
        flags
            .iter()
            .map(|f| Reply::Simple(Cow::Borrowed(f)))
            .collect(),
    )
}

/// A `COMMAND INFO` entry, in Redis 7's shape.
fn info(spec: &Spec) -> Reply {
    let category = match spec.group {
        "connection" => "@connection",
        "server" => "@slow",
        _ => "@read",
    };
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Integer(spec.arity),
        statuses(spec.flags),
        Reply::Integer(spec.keys.0),
        Reply::Integer(spec.keys.1),
        Reply::Integer(spec.keys.2),
        statuses(&[category]),
        Reply::Set(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

/// A `COMMAND DOCS` entry: what redis-cli's `help` and its hints read.
fn docs(spec: &Spec) -> Reply {
    let arguments = spec
        .args
        .iter()
        .map(|a| {
            let mut fields = vec![
                (Reply::bulk("name"), Reply::bulk(a.name)),
                (Reply::bulk("type"), Reply::bulk(a.kind)),
            ];
            let mut flags = Vec::new();
            if a.optional {
                flags.push("optional");
            }
            if a.multiple {
                flags.push("multiple");
            }
            if !flags.is_empty() {
                fields.push((Reply::bulk("flags"), statuses(&flags)));
            }
            Reply::Map(fields)
        })
        .collect();
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk(spec.since)),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
        (Reply::bulk("arguments"), Reply::Array(arguments)),
    ])
}

/// Whether a readable key lives now, asking the store the cheapest way for its kind.
async fn lives(shared: &Shared, key: &str, kind: KeyKind) -> Result<bool, StoreError> {
    match kind {
        // The token check's own read: served from the embedded store's cache.
        KeyKind::String => Ok(shared.store().get(key).await?.is_some()),
        KeyKind::Set => Ok(shared.store().inspect(key).await?.is_some()),
    }
}

async fn get(shared: &Shared, raw: &[u8]) -> Result<Reply, StoreError> {
    match shared.key(raw) {
        None => Ok(Reply::Null),
        Some((key, KeyKind::String)) => Ok(shared
            .store()
            .get(key)
            .await?
            .map_or(Reply::Null, Reply::Bulk)),
        Some((key, KeyKind::Set)) => Ok(if lives(shared, key, KeyKind::Set).await? {
            Reply::error(WRONGTYPE)
        } else {
            Reply::Null
        }),
    }
}

/// Counts the keys that exist, a key named twice twice (as Redis does). The session keys
/// are read in one `get_many` (one `MGET` on Redis), however many are named.
async fn exists(shared: &Shared, raw_keys: &[Bytes]) -> Result<Reply, StoreError> {
    let mut values = Vec::new();
    let mut count = 0;
    for raw in raw_keys {
        match shared.key(raw) {
            Some((key, KeyKind::String)) => values.push(key.to_owned()),
            Some((key, KeyKind::Set)) => {
                count += i64::from(lives(shared, key, KeyKind::Set).await?)
            }
            None => {}
        }
    }
    if let [key] = values.as_slice() {
        // The common case, one session: the token check's own cached read.
        count += i64::from(lives(shared, key, KeyKind::String).await?);
    } else if !values.is_empty() {
        let found = shared.store().get_many(&values).await?;
        count += found.iter().filter(|v| v.is_some()).count() as i64;
    }
    Ok(Reply::Integer(count))
}

/// `TTL` (seconds, rounded as Redis rounds) or `PTTL`: -2 for a key that does not exist,
/// -1 for one that never expires.
async fn ttl(shared: &Shared, raw: &[u8], millis: bool) -> Result<Reply, StoreError> {
    let Some((key, _)) = shared.key(raw) else {
        return Ok(Reply::Integer(-2));
    };
    Ok(Reply::Integer(match shared.store().inspect(key).await? {
        None => -2,
        Some(info) => match info.ttl {
            None => -1,
            Some(left) => {
                let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
                if millis {
                    ms
                } else {
                    ms.saturating_add(500) / 1000
                }
            }
        },
    }))
}

async fn kind(shared: &Shared, raw: &[u8]) -> Result<Reply, StoreError> {
    let Some((key, _)) = shared.key(raw) else {
        return Ok(Reply::simple("none"));
    };
    Ok(match shared.store().inspect(key).await? {
        None => Reply::simple("none"),
        Some(info) => match info.kind {
            KeyKind::String => Reply::simple("string"),
            KeyKind::Set => Reply::simple("set"),
        },
    })
}

enum SetRead<'a> {
    Members,
    IsMember(&'a [u8]),
    Count,
}

/// `SMEMBERS`, `SISMEMBER`, `SCARD`: a missing key is an empty set; a value is the wrong type.
async fn set_read(shared: &Shared, raw: &[u8], read: SetRead<'_>) -> Result<Reply, StoreError> {
    let members = match shared.key(raw) {
        None => Vec::new(),
        Some((key, KeyKind::Set)) => shared.store().set_members(key).await?,
        Some((key, KeyKind::String)) => {
            if lives(shared, key, KeyKind::String).await? {
                return Ok(Reply::error(WRONGTYPE));
            }
            Vec::new()
        }
    };
    Ok(match read {
        SetRead::Members => Reply::Set(members.into_iter().map(Reply::bulk).collect()),
        SetRead::IsMember(m) => {
            Reply::Integer(i64::from(members.iter().any(|s| s.as_bytes() == m)))
        }
        SetRead::Count => Reply::Integer(members.len() as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_list_is_sorted_upper_case_and_disjoint_from_the_answered() {
        assert!(
            WRITES.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert!(
            WRITES
                .iter()
                .all(|w| w.bytes().all(|b| !b.is_ascii_lowercase()))
        );
        for spec in COMMANDS {
            assert!(!is_write(spec.name.as_bytes()), "{}", spec.name);
        }
        assert!(is_write(b"set") && is_write(b"Del") && is_write(b"FLUSHALL"));
        assert!(!is_write(b"KEYS") && !is_write(b"SCAN") && !is_write(b"EVAL"));
    }

    #[test]
    fn unknown_commands_are_named_like_redis_names_them() {
        let args: Vec<Bytes> = ["FOO", "a", "b\r\nc"].map(Bytes::from).to_vec();
        assert_eq!(
            unknown_command(&args),
            Reply::error("ERR unknown command 'FOO', with args beginning with: 'a' 'b\r\nc' ")
        );
        let long = Bytes::from(vec![b'x'; 500]);
        let Reply::Error(text) = unknown_command(&[long.clone(), long]) else {
            panic!()
        };
        assert!(text.len() < 128 + 128 + 64, "{}", text.len());
    }
}
