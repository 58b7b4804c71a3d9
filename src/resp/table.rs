//! The commands the listener answers, in one table ([`COMMANDS`]: name, Redis' arity, what
//! `COMMAND INFO` and `COMMAND DOCS` tell redis-cli), the Redis commands that write
//! ([`is_write`]: answered `-READONLY`), and the `COMMAND` command, which describes the table.

use std::borrow::Cow;

use bytes::Bytes;

use super::command::{unknown_subcommand, wrong_arity};
use super::frame::Reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
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
    pub(crate) cmd: Cmd,
    /// Redis' arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub(crate) arity: i64,
    /// Answered before `AUTH`.
    pub(crate) open: bool,
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

pub(crate) fn lookup(name: &[u8]) -> Option<(usize, &'static Spec)> {
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, spec)| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

pub(crate) fn is_write(name: &[u8]) -> bool {
    if name.len() > 24 {
        return false;
    }
    let upper = name.to_ascii_uppercase();
    WRITES
        .binary_search_by(|w| w.as_bytes().cmp(upper.as_slice()))
        .is_ok()
}

pub(crate) fn help(lines: &[&'static str]) -> Reply {
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
pub(crate) fn command_command(args: &[Bytes]) -> Reply {
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
}
