//! The `redis` backends (Redis or Valkey): sessions and, optionally, users, shared by every
//! gatehouse node that points at the same server.
//!
//! One [`RedisConnection`] per URL: redis-rs' `ConnectionManager` multiplexes all requests
//! over one connection and reconnects by itself, so a Redis restart heals without a gatehouse
//! restart. Every command is bounded by `redis.command_timeout_ms`; a failure or a timeout is
//! [`StoreError::Unavailable`], which the API answers with 503 and `Retry-After` (fail closed:
//! a token whose session could not be checked is never accepted).
//!
//! Multi-key writes run as Lua scripts, which Redis executes atomically: the batch of
//! [`Op`]s, and `take_then_apply` (GETDEL plus the writes only when the key was present), so
//! two nodes rotating the same refresh token at the same instant cannot both win.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use uuid::Uuid;

use super::{
    KeyInfo, KeyKind, Op, SessionStore, StoreError, Swap, UserStore, UserStoreError, keys,
};
use crate::clock::now_ms;
use crate::domain::{User, normalize_email};

/// Applies the ops encoded in ARGV, from ARGV[i], to KEYS[k], KEYS[k+1], … (one key per op).
/// Encoding (see [`encode_ops`]): `set value ttl_ms`, `del`, `sadd member ttl_ms`,
/// `srem member`, `zadd member score now_ms` (which also drops members scored before now),
/// `zrem member`.
const APPLY_OPS: &str = r"
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'set' then
    redis.call('SET', KEYS[k], ARGV[i + 1], 'PX', ARGV[i + 2]); i = i + 3
  elseif op == 'zadd' then
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', ARGV[i + 3])
    redis.call('ZADD', KEYS[k], ARGV[i + 2], ARGV[i + 1]); i = i + 4
  elseif op == 'zrem' then
    redis.call('ZREM', KEYS[k], ARGV[i + 1]); i = i + 2
  elseif op == 'del' then
    redis.call('DEL', KEYS[k]); i = i + 1
  elseif op == 'sadd' then
    redis.call('SADD', KEYS[k], ARGV[i + 1]); redis.call('PEXPIRE', KEYS[k], ARGV[i + 2]); i = i + 3
  elseif op == 'srem' then
    redis.call('SREM', KEYS[k], ARGV[i + 1]); i = i + 2
  else
    return redis.error_reply('gatehouse: unknown op ' .. op)
  end
  k = k + 1
end
";

/// A connection to one Redis server, with gatehouse's key prefix and timeouts.
#[derive(Clone)]
pub struct RedisConnection {
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl RedisConnection {
    /// Prepares the connection; it is made on first use, so gatehouse starts (and answers
    /// 503) while Redis is down.
    pub fn open(
        url: &str,
        prefix: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(RedisConnection {
            manager,
            prefix: prefix.to_owned(),
            timeout: command_timeout,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one command or pipeline with the command timeout.
    async fn run<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(self.timeout, f(self.manager.clone())).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(StoreError::Unavailable(
                "Redis did not answer in time".into(),
            )),
        }
    }
}

fn unavailable(err: RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {err}"))
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Keys (prefixed) and arguments for [`APPLY_OPS`]. Every write of a `session:` key also
/// updates the expiry index (see [`keys::SESSION_INDEX`]), so that counting live sessions
/// never scans.
fn encode_ops(conn: &RedisConnection, ops: &[Op]) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut keys = Vec::with_capacity(ops.len());
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(ops.len() * 3);
    for op in ops {
        match op {
            Op::Set { key, value, ttl } => {
                keys.push(conn.key(key));
                args.push(b"set".to_vec());
                args.push(value.clone());
                args.push(millis(*ttl).to_string().into_bytes());
                index_session(conn, key, Some(*ttl), &mut keys, &mut args);
            }
            Op::Delete { key } => {
                keys.push(conn.key(key));
                args.push(b"del".to_vec());
                index_session(conn, key, None, &mut keys, &mut args);
            }
            Op::SetAdd { set, member, ttl } => {
                keys.push(conn.key(set));
                args.push(b"sadd".to_vec());
                args.push(member.clone().into_bytes());
                args.push(millis(*ttl).to_string().into_bytes());
            }
            Op::SetRemove { set, member } => {
                keys.push(conn.key(set));
                args.push(b"srem".to_vec());
                args.push(member.clone().into_bytes());
            }
        }
    }
    (keys, args)
}

/// For a `session:` key: adds it to the expiry index until `ttl` from now, or (`None`)
/// removes it.
fn index_session(
    conn: &RedisConnection,
    key: &str,
    ttl: Option<Duration>,
    keys_out: &mut Vec<String>,
    args: &mut Vec<Vec<u8>>,
) {
    if !key.starts_with(keys::SESSION_PREFIX) {
        return;
    }
    keys_out.push(conn.key(keys::SESSION_INDEX));
    match ttl {
        Some(ttl) => {
            // Entries of sessions that expired are dropped as new ones arrive, so the index
            // stays the size of the live sessions whether or not anyone reads the gauge.
            let now = now_ms();
            args.push(b"zadd".to_vec());
            args.push(key.as_bytes().to_vec());
            args.push(now.saturating_add(millis(ttl)).to_string().into_bytes());
            args.push(now.to_string().into_bytes());
        }
        None => {
            args.push(b"zrem".to_vec());
            args.push(key.as_bytes().to_vec());
        }
    }
}

/// Sessions in Redis; the key layout is [`super::keys`] behind `redis.prefix`.
pub struct RedisSessionStore {
    conn: RedisConnection,
    apply: Script,
    swap_then_apply: Script,
    incr: Script,
    count: Script,
    inspect: Script,
}

impl RedisSessionStore {
    pub fn new(conn: RedisConnection) -> Self {
        RedisSessionStore {
            conn,
            apply: Script::new(&format!("local i, k = 1, 1\n{APPLY_OPS}\nreturn 1")),
            // ARGV: "nx" (create only) or "eq" (then the expected value), value, ttl_ms, then
            // the ops; KEYS: the swapped key, then the ops'.
            swap_then_apply: Script::new(&format!(
                "if ARGV[1] == 'nx' then\n  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\nelseif redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end\nredis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])\nlocal i, k = 5, 2\n{APPLY_OPS}\nreturn 1"
            )),
            // Never below zero; the TTL is armed when the counter is created.
            incr: Script::new(
                "local existed = redis.call('EXISTS', KEYS[1])\nlocal n = redis.call('INCRBY', KEYS[1], ARGV[1])\nif n < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL'); n = 0 end\nif existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\nreturn n",
            ),
            // Drops the index entries of sessions that expired, then counts the rest.
            count: Script::new(
                "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])\nreturn redis.call('ZCARD', KEYS[1])",
            ),
            // TYPE and PTTL of one key at one instant (nil when it does not exist).
            inspect: Script::new(
                "local t = redis.call('TYPE', KEYS[1])['ok']\nif t == 'none' then return false end\nreturn {t, redis.call('PTTL', KEYS[1])}",
            ),
        }
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let key = self.conn.key(key);
        let value: Option<Vec<u8>> = self
            .conn
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(value.map(Bytes::from))
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (keys, args) = encode_ops(&self.conn, &ops);
        let mut invocation = self.apply.prepare_invoke();
        invocation.key(keys).arg(args);
        self.conn
            .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await?;
        Ok(())
    }

    async fn swap_then_apply(&self, swap: Swap, ops: Vec<Op>) -> Result<bool, StoreError> {
        let (mut keys, mut args) = encode_ops(&self.conn, &ops);
        // The swapped key's own index entry rides along as an op of its own.
        let mut index_keys = Vec::new();
        let mut index_args = Vec::new();
        index_session(
            &self.conn,
            &swap.key,
            Some(swap.ttl),
            &mut index_keys,
            &mut index_args,
        );
        keys.extend(index_keys);
        args.extend(index_args);
        let mut invocation = self.swap_then_apply.prepare_invoke();
        invocation
            .key(self.conn.key(&swap.key))
            .key(keys)
            .arg(if swap.expected.is_some() { "eq" } else { "nx" })
            .arg(swap.expected.as_deref().unwrap_or_default())
            .arg(swap.value)
            .arg(millis(swap.ttl))
            .arg(args);
        let swapped: i64 = self
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(swapped == 1)
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl: Duration) -> Result<u64, StoreError> {
        let mut invocation = self.incr.prepare_invoke();
        invocation
            .key(self.conn.key(key))
            .arg(delta)
            .arg(millis(ttl));
        let n: i64 = self
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(n.max(0).unsigned_abs())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.conn.key(k)).collect();
        let values: Vec<Option<Vec<u8>>> = self
            .conn
            .run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            .await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn live_sessions(&self) -> Result<u64, StoreError> {
        let mut invocation = self.count.prepare_invoke();
        invocation
            .key(self.conn.key(keys::SESSION_INDEX))
            .arg(now_ms());
        self.conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    async fn set_members(&self, set: &str) -> Result<Vec<String>, StoreError> {
        let set = self.conn.key(set);
        self.conn
            .run(|mut c| async move { redis::cmd("SMEMBERS").arg(set).query_async(&mut c).await })
            .await
    }

    async fn set_len(&self, set: &str) -> Result<u64, StoreError> {
        let set = self.conn.key(set);
        self.conn
            .run(|mut c| async move { redis::cmd("SCARD").arg(set).query_async(&mut c).await })
            .await
    }

    async fn inspect(&self, key: &str) -> Result<Option<KeyInfo>, StoreError> {
        let mut invocation = self.inspect.prepare_invoke();
        invocation.key(self.conn.key(key));
        let found: Option<(String, i64)> = self
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let Some((kind, pttl)) = found else {
            return Ok(None);
        };
        let kind = match kind.as_str() {
            "string" => KeyKind::String,
            "set" => KeyKind::Set,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "{key} holds a {other}, which gatehouse never writes"
                )));
            }
        };
        // PTTL: -1 for a key without expiry (-2, absent, cannot follow TYPE in one script).
        let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
        Ok(Some(KeyInfo { kind, ttl }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every acknowledged write is already in Redis.
        Ok(())
    }
}

/// Accounts in Redis: `user:<id>` (JSON), `user_email:<normalized email>` (id), and the set
/// `users` of all ids. Creation is one Lua script, so email uniqueness holds across nodes.
pub struct RedisUserStore {
    conn: RedisConnection,
    /// Set once the email keys follow [`normalize_email`] (see [`RedisUserStore::email_keys`]).
    email_keys: tokio::sync::OnceCell<()>,
    create: Script,
    update: Script,
    change_email: Script,
}

impl RedisUserStore {
    pub fn new(conn: RedisConnection) -> Self {
        RedisUserStore {
            conn,
            email_keys: tokio::sync::OnceCell::new(),
            create: Script::new(
                r"if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1",
            ),
            // Compare-and-set on the record's version (a missing `version` is 0).
            update: Script::new(
                r"local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local version = cjson.decode(cur)['version'] or 0
if tostring(version) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1",
            ),
            // The update's compare-and-set, plus the move of the email index entry:
            // KEYS user, old email, new email; ARGV version, JSON, id. -1: the email is taken.
            change_email: Script::new(
                r"local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local version = cjson.decode(cur)['version'] or 0
if tostring(version) ~= ARGV[1] then return 0 end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[3] then return -1 end
redis.call('SET', KEYS[3], ARGV[3])
if KEYS[2] ~= KEYS[3] and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
redis.call('SET', KEYS[1], ARGV[2])
return 1",
            ),
        }
    }

    fn user_key(&self, id: Uuid) -> String {
        self.conn.key(&format!("user:{id}"))
    }

    /// Makes the `user_email:` keys follow [`normalize_email`] before the first lookup, once
    /// per deployment (the key `user_email_keys` records it), as the redb store does at open:
    /// keys made before NFKC and full case folding differ only for some non-ASCII emails;
    /// those accounts get the new key (unless another account already holds it, which a
    /// warning names) and lose the old one.
    async fn email_keys(&self) -> Result<(), StoreError> {
        self.email_keys
            .get_or_try_init(|| self.reindex_emails())
            .await
            .map(|_| ())
    }

    async fn reindex_emails(&self) -> Result<(), StoreError> {
        let marker = self.conn.key("user_email_keys");
        if self.get_string(&marker).await?.as_deref() == Some("2") {
            return Ok(());
        }
        for user in self.list().await? {
            let old = super::redb_users::legacy_email_key(&user.email);
            let new = normalize_email(&user.email);
            if old == new {
                continue;
            }
            let (id, key) = (
                user.id.to_string(),
                self.conn.key(&format!("user_email:{new}")),
            );
            let (k, v) = (key.clone(), id.clone());
            let set: Option<String> = self
                .conn
                .run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(k)
                        .arg(v)
                        .arg("NX")
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if set.is_none() && self.get_string(&key).await?.as_deref() != Some(id.as_str()) {
                tracing::warn!(user_id = %user.id, "two accounts have one email once normalised (NFKC, case folding); the other keeps it, this one can no longer sign in by email");
                continue;
            }
            let stale = self.conn.key(&format!("user_email:{old}"));
            if self.get_string(&stale).await?.as_deref() == Some(id.as_str()) {
                self.conn
                    .run(|mut c| async move {
                        redis::cmd("DEL")
                            .arg(stale)
                            .query_async::<i64>(&mut c)
                            .await
                    })
                    .await?;
            }
        }
        self.conn
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(marker)
                    .arg("2")
                    .query_async::<String>(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn get_string(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.conn
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
    }
}

fn decode(bytes: &[u8]) -> Result<User, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("user record: {e}")))
}

#[async_trait]
impl UserStore for RedisUserStore {
    async fn create(&self, user: &User) -> Result<(), UserStoreError> {
        self.email_keys().await?;
        let json = serde_json::to_vec(user).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut invocation = self.create.prepare_invoke();
        invocation
            .key(
                self.conn
                    .key(&format!("user_email:{}", normalize_email(&user.email))),
            )
            .key(self.user_key(user.id))
            .key(self.conn.key("users"))
            .arg(user.id.to_string())
            .arg(json);
        let created: i64 = self
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(UserStoreError::EmailTaken)
        }
    }

    async fn by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.email_keys().await?;
        let key = self
            .conn
            .key(&format!("user_email:{}", normalize_email(email)));
        let id: Option<String> = self
            .conn
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        match id.and_then(|id| Uuid::parse_str(&id).ok()) {
            Some(id) => self.by_id(id).await,
            None => Ok(None),
        }
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let key = self.user_key(id);
        let value: Option<Vec<u8>> = self
            .conn
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        value.map(|v| decode(&v)).transpose()
    }

    async fn update(&self, user: &User) -> Result<(), UserStoreError> {
        let next = User {
            version: user.version + 1,
            ..user.clone()
        };
        let json = serde_json::to_vec(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut invocation = self.update.prepare_invoke();
        invocation
            .key(self.user_key(user.id))
            .arg(user.version.to_string())
            .arg(json);
        let updated: i64 = self
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        if updated == 1 {
            Ok(())
        } else {
            Err(UserStoreError::Conflict)
        }
    }

    async fn change_email(&self, user: &User, new_email: &str) -> Result<(), UserStoreError> {
        self.email_keys().await?;
        let next = User {
            version: user.version + 1,
            email: new_email.to_owned(),
            ..user.clone()
        };
        let json = serde_json::to_vec(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let email_key = |email: &str| {
            self.conn
                .key(&format!("user_email:{}", normalize_email(email)))
        };
        let mut invocation = self.change_email.prepare_invoke();
        invocation
            .key(self.user_key(user.id))
            .key(email_key(&user.email))
            .key(email_key(new_email))
            .arg(user.version.to_string())
            .arg(json)
            .arg(user.id.to_string());
        let changed: i64 = self
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        match changed {
            1 => Ok(()),
            -1 => Err(UserStoreError::EmailTaken),
            _ => Err(UserStoreError::Conflict),
        }
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        let set = self.conn.key("users");
        let ids: Vec<String> = self
            .conn
            .run(|mut c| async move { redis::cmd("SMEMBERS").arg(set).query_async(&mut c).await })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.conn.key(&format!("user:{id}")))
            .collect();
        let values: Vec<Option<Vec<u8>>> = self
            .conn
            .run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            .await?;
        let mut users = values
            .into_iter()
            .flatten()
            .map(|v| decode(&v))
            .collect::<Result<Vec<_>, _>>()?;
        users.sort_by_key(|u| u.created_at);
        Ok(users)
    }

    async fn groups(&self) -> Result<Vec<String>, StoreError> {
        let set = self.conn.key("groups");
        let mut names: Vec<String> = self
            .conn
            .run(|mut c| async move { redis::cmd("SMEMBERS").arg(set).query_async(&mut c).await })
            .await?;
        names.sort();
        Ok(names)
    }

    async fn add_group(&self, name: &str) -> Result<bool, StoreError> {
        let (set, name) = (self.conn.key("groups"), name.to_owned());
        let added: i64 = self
            .conn
            .run(|mut c| async move {
                redis::cmd("SADD")
                    .arg(set)
                    .arg(name)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(added == 1)
    }

    async fn remove_group(&self, name: &str) -> Result<bool, StoreError> {
        let (set, name) = (self.conn.key("groups"), name.to_owned());
        let removed: i64 = self
            .conn
            .run(|mut c| async move {
                redis::cmd("SREM")
                    .arg(set)
                    .arg(name)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(removed == 1)
    }
}
