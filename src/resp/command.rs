//! Who may run what, and the connection's own commands: `-NOAUTH` before `AUTH` (but for
//! `AUTH`, `HELLO` with credentials, `PING` and `QUIT`), `-READONLY` for writes, `-ERR unknown
//! command` for the rest, Redis' arity errors; then `AUTH` (regulated like logins), `HELLO`,
//! `PING`, `ECHO`, `SELECT`, `QUIT` and `CLIENT`. The key commands are in `reads`, the table
//! and `COMMAND` in `table`.

use std::borrow::Cow;

use bytes::Bytes;

use super::client::{Client, Shared};
use super::frame::{Protocol, Reply};
use super::reads::{self, SetRead};
use super::table::{self, Cmd};
use crate::auth::AuthError;

/// The version whose answers the listener follows, as `HELLO` reports it.
const REDIS_VERSION: &str = "7.0.0";

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const READONLY: &str =
    "READONLY gatehouse answers reads only; sessions change through its HTTP API";
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

/// Runs one request and returns its answer. Never fails: every problem is an error reply.
pub(crate) async fn execute(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    let Some(name) = args.first() else {
        return Reply::Ok; // the parser never yields an empty request
    };
    let found = table::lookup(name);
    match found {
        Some((index, _)) => shared.metrics.command(index),
        None if table::is_write(name) => shared.metrics.writes.increment(1),
        None => shared.metrics.unknown.increment(1),
    }
    if !client.authenticated && !found.is_some_and(|(_, spec)| spec.open) {
        return Reply::error(NOAUTH);
    }
    let Some((_, spec)) = found else {
        if table::is_write(name) {
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
        Cmd::Command => return table::command_command(args),
        Cmd::Get => reads::get(shared, &args[1]).await,
        Cmd::Exists => reads::exists(shared, &args[1..]).await,
        Cmd::Ttl => reads::ttl(shared, &args[1], false).await,
        Cmd::Pttl => reads::ttl(shared, &args[1], true).await,
        Cmd::Type => reads::kind(shared, &args[1]).await,
        Cmd::Smembers => reads::set_read(shared, &args[1], SetRead::Members).await,
        Cmd::Sismember => reads::set_read(shared, &args[1], SetRead::IsMember(&args[2])).await,
        Cmd::Scard => reads::set_read(shared, &args[1], SetRead::Count).await,
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

pub(crate) fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub(crate) fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
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
        (b"HELP", 2) => table::help(CLIENT_HELP),
        _ => unknown_subcommand(&args[1], "CLIENT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
