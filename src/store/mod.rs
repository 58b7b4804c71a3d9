//! State behind two traits, so that handlers never know which backend runs.
//!
//! - [`SessionStore`]: a key-value store with Redis semantics (values with a TTL, sets,
//!   atomic get-and-delete). Sessions, refresh tokens and rotation markers live here;
//!   [`keys`] names every key.
//! - [`UserStore`]: accounts, unique by case-folded email.
//!
//! Backends: [`embedded`] (moka in front of redb, the zero-dependency default) for sessions
//! and [`redb_users`] for users, sharing one redb file opened by [`database`]; [`redis`] for
//! either or both, shared by many nodes.

pub mod backup;
pub mod database;
pub mod embedded;
pub mod keys;
pub mod redb_users;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or failed; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The disk is full: writes fail, reads still work.
    #[error("store full: {0}")]
    Full(String),
    /// An earlier write failed with an I/O error (usually a full disk) and the database
    /// refuses writes until it is reopened, which [`database::Db`] does once there is room.
    #[error("store refuses writes after an earlier I/O error: {0}")]
    Poisoned(String),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// One write of an atomic batch; the Redis command it stands for is in brackets.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store `value` under `key` for `ttl` [SET key value PX ttl]. With `only_if_exists`,
    /// nothing happens when the key is absent [SET … XX]: this is how a rotation updates a
    /// session without bringing back one that a concurrent logout deleted.
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Duration,
        only_if_exists: bool,
    },
    /// [DEL key]
    Delete { key: String },
    /// Add `member` to the set and (re)arm the set's TTL [SADD + PEXPIRE].
    SetAdd {
        set: String,
        member: String,
        ttl: Duration,
    },
    /// [SREM set member]
    SetRemove { set: String, member: String },
}

impl Op {
    pub fn set(key: String, value: Vec<u8>, ttl: Duration) -> Op {
        Op::Set {
            key,
            value,
            ttl,
            only_if_exists: false,
        }
    }
}

/// Key-value state with Redis semantics. Every method that returns `Ok` after a write has
/// made that write durable (embedded: committed to disk; Redis: acknowledged).
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// [GET key]; expired keys read as absent.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;
    /// Applies all `ops` atomically [MULTI … EXEC].
    async fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Atomically deletes `key` and, only if it was present, applies `ops`; returns the value
    /// it held [GETDEL + writes, as one Lua script]. Of several concurrent callers with the
    /// same key exactly one sees `Some`.
    async fn take_then_apply(&self, key: &str, ops: Vec<Op>) -> Result<Option<Bytes>, StoreError>;
    /// Adds one to the counter at `key` and returns the new count; the first increment arms
    /// `ttl`, so the count covers a fixed window [INCR + PEXPIRE on 1, one Lua script].
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;
    /// How many live keys start with `prefix` (for the metrics gauge; O(keys)) [SCAN MATCH].
    async fn count(&self, prefix: &str) -> Result<u64, StoreError>;
    /// [SMEMBERS set]
    async fn set_members(&self, set: &str) -> Result<Vec<String>, StoreError>;
    /// Answers when the store can serve requests (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Finishes pending writes; called once at shutdown.
    async fn close(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; use \"user\" or \"admin\"")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    /// As the user typed it; uniqueness is on [`normalize_email`] of it.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: u64,
    pub disabled: bool,
}

/// The form under which emails are unique and looked up: `Ada@X.org` and `ada@x.org`, or
/// the NFC and NFD forms of `jürgen@x.org`, are one account. It is Unicode's compatibility
/// caseless match (D146: NFKD, full case folding, twice, after NFD), composed again (NFC)
/// to keep keys short. For ASCII that is plain lower case, as it always was, so the keys of
/// existing ASCII accounts do not change (others are re-indexed once, see README).
pub fn normalize_email(email: &str) -> String {
    use icu_casemap::CaseMapperBorrowed;
    use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
    let email = email.trim();
    if email.is_ascii() {
        return email.to_ascii_lowercase();
    }
    let fold = CaseMapperBorrowed::new();
    let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
    let mut key = DecomposingNormalizerBorrowed::new_nfd()
        .normalize(email)
        .into_owned();
    for _ in 0..2 {
        key = nfkd.normalize(&fold.fold_string(&key)).into_owned();
    }
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(&key)
        .into_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Accounts. Writes are durable when they return.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates the user; fails with [`UserStoreError::EmailTaken`] if the email is in use.
    async fn create(&self, user: &User) -> Result<(), UserStoreError>;
    async fn by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Replaces the stored user with the same id (the email does not change).
    async fn update(&self, user: &User) -> Result<(), StoreError>;
    async fn list(&self) -> Result<Vec<User>, StoreError>;
}
