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

pub(crate) mod backup;
pub mod database;
pub mod embedded;
pub(crate) mod keys;
pub(crate) mod metered;
pub mod redb_users;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::domain::User;

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
    /// Store `value` under `key` for `ttl` [SET key value PX ttl].
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Duration,
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
        Op::Set { key, value, ttl }
    }
}

/// A compare-and-set: replace the value at `key` only if it still holds exactly `expected`
/// [SET key value PX ttl IFEQ expected, as in Redis 8.4], or, with `expected: None`, create
/// it only if it does not exist [SET key value PX ttl NX]. Every rotation of a session is
/// one of these, so two concurrent rotations of the same token cannot both win, and a
/// rotation never brings back a session that a concurrent logout deleted; the first use of
/// an authorization code is the creating kind, so only one use can claim it.
#[derive(Debug, Clone)]
pub struct Swap {
    pub key: String,
    pub expected: Option<Bytes>,
    pub value: Vec<u8>,
    pub ttl: Duration,
}

/// What a key holds, as Redis' `TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A value [`SessionStore::get`] reads.
    String,
    /// A set [`SessionStore::set_members`] reads; like Redis, an empty set does not exist.
    Set,
}

/// A live key's kind and remaining lifetime [TYPE key + PTTL key].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    pub kind: KeyKind,
    /// Time left; `None` when the key never expires (gatehouse never writes such a key, but
    /// another writer of the same Redis could).
    pub ttl: Option<Duration>,
}

/// Key-value state with Redis semantics. Every method that returns `Ok` after a write has
/// made that write durable (embedded: committed to disk; Redis: acknowledged).
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// [GET key]; expired keys read as absent.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;
    /// Applies all `ops` atomically [MULTI … EXEC].
    async fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Atomically performs `swap` and, only if it succeeded, applies `ops`; returns whether
    /// it did [GET + compare + SET + writes, as one Lua script]. Of several concurrent
    /// callers expecting the same value, exactly one succeeds.
    async fn swap_then_apply(&self, swap: Swap, ops: Vec<Op>) -> Result<bool, StoreError>;
    /// Adds `delta` to the counter at `key` and returns the new count (never below zero);
    /// the first increment arms `ttl`, so the count covers a fixed window [INCRBY + PEXPIRE
    /// on creation, one Lua script].
    async fn incr_by(&self, key: &str, delta: i64, ttl: Duration) -> Result<u64, StoreError>;
    /// [MGET keys]: the values in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError>;
    /// How many sessions live, for the metrics gauge. Costs the same however many there are:
    /// the embedded store keeps the count as it writes; Redis answers from a count refreshed
    /// in the background at most once a minute.
    async fn live_sessions(&self) -> Result<u64, StoreError>;
    /// [TYPE key + PTTL key, as one Lua script]: whether `key` lives, as a value or a set,
    /// and for how long; `None` when it does not. The RESP listener answers `EXISTS`, `TYPE`,
    /// `TTL` and `PTTL` from it.
    async fn inspect(&self, key: &str) -> Result<Option<KeyInfo>, StoreError>;
    /// [SMEMBERS set]
    async fn set_members(&self, set: &str) -> Result<Vec<String>, StoreError>;
    /// [SCARD set]: how many members, without reading them. The same cost however large the
    /// set (embedded: kept in memory by the writer once a set has been counted).
    async fn set_len(&self, set: &str) -> Result<u64, StoreError>;
    /// Answers when the store can serve requests (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Finishes pending writes; called once at shutdown.
    async fn close(&self) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The record changed (or vanished) since it was read: read it again and retry.
    #[error("the account changed while this change was being made")]
    Conflict,
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
    /// Replaces the stored user with the same id (the email does not change), only if the
    /// stored record's `version` is still `user.version`; stores it with `version + 1`.
    /// Fails with [`UserStoreError::Conflict`] otherwise (or when the user is gone).
    async fn update(&self, user: &User) -> Result<(), UserStoreError>;
    /// [`UserStore::update`] that also moves the account from `user.email` (its email as
    /// read) to `new_email`, in the same atomic write: fails with
    /// [`UserStoreError::EmailTaken`] when another account holds `new_email`, and leaves
    /// the old email free for others.
    async fn change_email(&self, user: &User, new_email: &str) -> Result<(), UserStoreError>;
    async fn list(&self) -> Result<Vec<User>, StoreError>;
    /// The names of the groups that exist, sorted. Membership is a field of each user
    /// ([`User::groups`]); this is the list that `group add` and `group del` edit.
    async fn groups(&self) -> Result<Vec<String>, StoreError>;
    /// Adds a group; `false` when it already existed.
    async fn add_group(&self, name: &str) -> Result<bool, StoreError>;
    /// Removes a group from the list (not from its members: the caller does that);
    /// `false` when there was none.
    async fn remove_group(&self, name: &str) -> Result<bool, StoreError>;
}
