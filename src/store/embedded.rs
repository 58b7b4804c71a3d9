//! The `embedded` session store: moka in front, redb behind.
//!
//! Reads are served from an in-process moka cache, falling back to a redb read transaction.
//! All writes go through one writer thread that groups whatever requests are waiting into a
//! single redb transaction and one fsync (group commit): a durable commit costs about 2 ms,
//! so one commit per request would cap writes near 500/s. Because that thread applies every
//! write in order, `swap_then_apply` is atomic without locks.
//!
//! Cache coherence: writes invalidate (never fill) the cache after they commit; reads fill it.
//! A read that raced a commit could insert a stale value after the invalidation, so readers
//! compare a generation counter, bumped after each commit, before and after filling, and drop
//! what they inserted if it moved.
//!
//! Set sizes (`set_len`, SCARD) are kept in memory so that a count does not scan the set: a
//! set's first count is made by the writer thread inside a write transaction, and from then
//! on the writer adds what each of its commits changed. Since the writer is the only one who
//! changes them, the sizes are exact as of the last commit, with no race against readers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use moka::sync::Cache;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use super::database::{Db, storage_error};
use super::{KeyInfo, KeyKind, Op, SessionStore, StoreError, Swap, keys};
use crate::clock::now_ms;

/// key → (expires_at in Unix ms, value)
pub(crate) const KV: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("session_kv");
/// (set, member) → expires_at in Unix ms
pub(crate) const SETS: TableDefinition<(&str, &str), ()> = TableDefinition::new("session_sets");
/// set → expires_at in Unix ms: like Redis, a TTL belongs to the whole set.
pub(crate) const SET_TTL: TableDefinition<&str, u64> = TableDefinition::new("session_set_ttl");
/// (expires_at, tagged key) → (): lets the purge find expired entries by a range scan.
pub(crate) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("session_expiry");

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 1024;
/// Most expired entries deleted per purge transaction.
const PURGE_BATCH: usize = 10_000;

#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires_at: u64,
}

enum Job {
    Apply {
        ops: Vec<Op>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    SwapThenApply {
        swap: Swap,
        ops: Vec<Op>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Incr {
        key: String,
        delta: i64,
        ttl: Duration,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// The first count of a set since start (later counts read `Shared::set_sizes`).
    SetLen {
        set: String,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

struct Shared {
    db: Arc<Db>,
    cache: Cache<String, Entry>,
    generation: AtomicU64,
    /// `session:` keys on disk (live, or expired and not yet purged), kept by the writer so
    /// that the metrics gauge never scans.
    sessions: AtomicU64,
    /// Members of the sets counted since start, kept by the writer (see the module doc): a
    /// login or token exchange checks `sessions.max_per_user` against this, not against a
    /// scan of every session of the user. A set leaves the map when it empties.
    set_sizes: Mutex<HashMap<String, SetSize>>,
}

/// How many members a set has and when it expires (Unix ms), as of the last commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SetSize {
    members: u64,
    expires_at: u64,
}

/// What a write transaction did to the size of a set, published once it commits.
#[derive(Debug, Clone, Copy)]
enum SizeChange {
    /// Counted (or emptied) in this transaction: the size is now known exactly.
    Exact(SetSize),
    /// Members added (or removed) and the expiry re-armed (`Some`); applies only to a size
    /// already known.
    Delta {
        members: i64,
        expires_at: Option<u64>,
    },
}

impl SizeChange {
    fn add(self, members: i64, expires_at: Option<u64>) -> SizeChange {
        match self {
            SizeChange::Exact(size) => SizeChange::Exact(SetSize {
                members: size.members.saturating_add_signed(members),
                expires_at: expires_at.unwrap_or(size.expires_at),
            }),
            SizeChange::Delta {
                members: m,
                expires_at: at,
            } => SizeChange::Delta {
                members: m + members,
                expires_at: expires_at.or(at),
            },
        }
    }
}

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

impl EmbeddedStore {
    /// Starts the writer thread over `db`. `cache_capacity` bounds the cached entries.
    pub fn open(
        db: Arc<Db>,
        cache_capacity: u64,
        purge_interval: Duration,
    ) -> Result<Self, StoreError> {
        // Create the tables up front so read transactions never find them missing.
        db.write(|db| {
            let txn = db.begin_write().map_err(storage_error)?;
            txn.open_table(KV).map_err(storage_error)?;
            txn.open_table(SETS).map_err(storage_error)?;
            txn.open_table(SET_TTL).map_err(storage_error)?;
            txn.open_table(EXPIRY).map_err(storage_error)?;
            txn.commit().map_err(storage_error)
        })?;
        let sessions = count_sessions(&db)?;

        let cache = Cache::builder()
            .max_capacity(cache_capacity)
            .expire_after(EntryExpiry)
            .build();
        let shared = Arc::new(Shared {
            db,
            cache,
            generation: AtomicU64::new(0),
            sessions: AtomicU64::new(sessions),
            set_sizes: Mutex::new(HashMap::new()),
        });
        let (jobs, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            rx,
            purge_interval,
        };
        std::thread::Builder::new()
            .name("gatehouse-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(EmbeddedStore { shared, jobs })
    }

    fn send<T>(
        &self,
        job: Job,
        rx: oneshot::Receiver<Result<T, StoreError>>,
    ) -> impl Future<Output = Result<T, StoreError>> + use<T> {
        let sent = self.jobs.send(job).is_ok();
        async move {
            if !sent {
                return Err(StoreError::Unavailable("the store is closed".into()));
            }
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the store writer stopped".into())))
        }
    }

    /// The live value at `key`, from the cache or else from redb (then cached).
    fn lookup(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        if let Some(entry) = self.shared.cache.get(key) {
            return Ok((entry.expires_at > now_ms()).then_some(entry));
        }
        // A redb read is a few microseconds from the page cache: done inline, not on a
        // blocking thread, since this is the token-check hot path.
        let before = self.shared.generation.load(Ordering::Acquire);
        let found = self.read(key)?;
        if let Some(entry) = &found {
            self.shared.cache.insert(key.to_owned(), entry.clone());
            if self.shared.generation.load(Ordering::Acquire) != before {
                self.shared.cache.invalidate(key);
            }
        }
        Ok(found)
    }

    /// When the set at `key` expires, if it lives and has a member (Redis has no empty sets).
    fn set_expiry(&self, set: &str) -> Result<Option<u64>, StoreError> {
        let db = self.shared.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        let ttl = txn.open_table(SET_TTL).map_err(storage_error)?;
        let Some(at) = ttl.get(set).map_err(storage_error)?.map(|g| g.value()) else {
            return Ok(None);
        };
        if at <= now_ms() {
            return Ok(None);
        }
        let table = txn.open_table(SETS).map_err(storage_error)?;
        let first = table.range((set, "")..).map_err(storage_error)?.next();
        match first {
            Some(item) => {
                let (key, _) = item.map_err(storage_error)?;
                Ok((key.value().0 == set).then_some(at))
            }
            None => Ok(None),
        }
    }

    fn read(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let db = self.shared.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        let table = txn.open_table(KV).map_err(storage_error)?;
        let now = now_ms();
        Ok(table.get(key).map_err(storage_error)?.and_then(|guard| {
            let (expires_at, value) = guard.value();
            (expires_at > now).then(|| Entry {
                value: Bytes::copy_from_slice(value),
                expires_at,
            })
        }))
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.lookup(key)?.map(|e| e.value))
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Apply { ops, reply }, rx).await
    }

    async fn swap_then_apply(&self, swap: Swap, ops: Vec<Op>) -> Result<bool, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::SwapThenApply { swap, ops, reply }, rx).await
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl: Duration) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        let key = key.to_owned();
        self.send(
            Job::Incr {
                key,
                delta,
                ttl,
                reply,
            },
            rx,
        )
        .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

    async fn live_sessions(&self) -> Result<u64, StoreError> {
        Ok(self.shared.sessions.load(Ordering::Relaxed))
    }

    async fn set_members(&self, set: &str) -> Result<Vec<String>, StoreError> {
        let db = self.shared.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        let ttl = txn.open_table(SET_TTL).map_err(storage_error)?;
        let live = ttl
            .get(set)
            .map_err(storage_error)?
            .is_some_and(|at| at.value() > now_ms());
        if !live {
            return Ok(Vec::new());
        }
        let table = txn.open_table(SETS).map_err(storage_error)?;
        let mut members = Vec::new();
        for item in table.range((set, "")..).map_err(storage_error)? {
            let (key, _) = item.map_err(storage_error)?;
            let (s, member) = key.value();
            if s != set {
                break;
            }
            members.push(member.to_owned());
        }
        Ok(members)
    }

    async fn set_len(&self, set: &str) -> Result<u64, StoreError> {
        let known = self
            .shared
            .set_sizes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(set)
            .copied();
        if let Some(size) = known {
            return Ok(if size.expires_at > now_ms() {
                size.members
            } else {
                0
            });
        }
        let (reply, rx) = oneshot::channel();
        self.send(
            Job::SetLen {
                set: set.to_owned(),
                reply,
            },
            rx,
        )
        .await
    }

    async fn inspect(&self, key: &str) -> Result<Option<KeyInfo>, StoreError> {
        let (kind, at) = match self.lookup(key)? {
            Some(entry) => (KeyKind::String, entry.expires_at),
            None => match self.set_expiry(key)? {
                Some(at) => (KeyKind::Set, at),
                None => return Ok(None),
            },
        };
        let now = now_ms();
        if at <= now {
            return Ok(None); // expired between the read and now
        }
        let ttl = Duration::from_millis(at - now);
        Ok(Some(KeyInfo {
            kind,
            ttl: Some(ttl),
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let db = self.shared.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        txn.open_table(KV).map_err(storage_error)?;
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Close { reply }, rx).await
    }
}

/// Makes moka drop an entry when its stored expiry passes.
struct EntryExpiry;

impl moka::Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_millis(
            value.expires_at.saturating_sub(now_ms()),
        ))
    }
}

struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Job>,
    purge_interval: Duration,
}

/// The store's tables, open in one write transaction.
struct Tables<'t> {
    kv: Table<'t, &'static str, (u64, &'static [u8])>,
    sets: Table<'t, (&'static str, &'static str), ()>,
    set_ttl: Table<'t, &'static str, u64>,
    expiry: Table<'t, (u64, &'static str), ()>,
    /// Change in the number of `session:` keys made by this transaction.
    sessions_delta: i64,
    /// What this transaction did to the sizes of sets.
    sizes: HashMap<String, SizeChange>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            kv: txn.open_table(KV).map_err(storage_error)?,
            sets: txn.open_table(SETS).map_err(storage_error)?,
            set_ttl: txn.open_table(SET_TTL).map_err(storage_error)?,
            expiry: txn.open_table(EXPIRY).map_err(storage_error)?,
            sessions_delta: 0,
            sizes: HashMap::new(),
        })
    }

    /// Notes members added to or removed from `set` (and its expiry re-armed).
    fn resize(&mut self, set: &str, members: i64, expires_at: Option<u64>) {
        let change = self.sizes.get(set).copied().unwrap_or(SizeChange::Delta {
            members: 0,
            expires_at: None,
        });
        self.sizes
            .insert(set.to_owned(), change.add(members, expires_at));
    }

    /// Counts the members of `set` as this transaction sees it.
    fn count(&mut self, set: &str, now: u64) -> Result<u64, StoreError> {
        let expires_at = self
            .set_ttl
            .get(set)
            .map_err(storage_error)?
            .map_or(0, |g| g.value());
        let mut members = 0;
        for item in self.sets.range((set, "")..).map_err(storage_error)? {
            let (key, _) = item.map_err(storage_error)?;
            if key.value().0 != set {
                break;
            }
            members += 1;
        }
        let size = SetSize {
            members,
            expires_at,
        };
        self.sizes.insert(set.to_owned(), SizeChange::Exact(size));
        Ok(if expires_at > now { members } else { 0 })
    }

    /// Stores `value` under `key` until `at`, replacing (and unindexing) any older value.
    fn put(&mut self, key: &str, at: u64, value: &[u8]) -> Result<(), StoreError> {
        remove_key(self, key)?;
        self.kv.insert(key, (at, value)).map_err(storage_error)?;
        self.expiry
            .insert((at, key_tag(key).as_str()), ())
            .map_err(storage_error)?;
        if key.starts_with(keys::SESSION_PREFIX) {
            self.sessions_delta += 1;
        }
        Ok(())
    }
}

/// Counts the `session:` keys on disk, once at start.
fn count_sessions(db: &Db) -> Result<u64, StoreError> {
    let db = db.get()?;
    let txn = db.begin_read().map_err(storage_error)?;
    let table = txn.open_table(KV).map_err(storage_error)?;
    let mut n = 0;
    for item in table.range(keys::SESSION_PREFIX..).map_err(storage_error)? {
        let (key, _) = item.map_err(storage_error)?;
        if !key.value().starts_with(keys::SESSION_PREFIX) {
            break;
        }
        n += 1;
    }
    Ok(n)
}

enum Outcome {
    Done,
    Swapped(bool),
    Count(u64),
}

/// What a committed batch answers and changed, for the writer to publish.
struct Committed {
    outcomes: Vec<Outcome>,
    /// Change in the number of `session:` keys.
    sessions_delta: i64,
    sizes: HashMap<String, SizeChange>,
}

impl Writer {
    fn run(self) {
        let mut next_purge = std::time::Instant::now() + self.purge_interval;
        loop {
            let wait = next_purge.saturating_duration_since(std::time::Instant::now());
            let first = match self.rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.purge() {
                        tracing::warn!(error = %e, "purging expired sessions failed");
                    }
                    next_purge = std::time::Instant::now() + self.purge_interval;
                    continue;
                }
                // Every sender is gone: the store was dropped.
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let closing = batch.iter().any(|j| matches!(j, Job::Close { .. }));
            self.commit_batch(batch);
            if closing {
                return;
            }
        }
    }

    /// Applies every job of the batch in one transaction, commits once, then answers each.
    fn commit_batch(&self, batch: Vec<Job>) {
        let mut touched = HashSet::new();
        let result = self.shared.db.write(|db| {
            touched.clear();
            self.write(db, &batch, &mut touched)
        });
        let result = result.map(|committed| {
            let Committed {
                outcomes,
                sessions_delta,
                sizes,
            } = committed;
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            for key in &touched {
                self.shared.cache.invalidate(key);
            }
            self.count_sessions(sessions_delta);
            self.publish_sizes(sizes);
            outcomes
        });
        let outcomes = match result {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) => {
                tracing::error!(error = %e, "session store commit failed");
                batch.iter().map(|_| Err(e.clone())).collect::<Vec<_>>()
            }
        };
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            match job {
                Job::Apply { reply, .. } | Job::Close { reply } => {
                    let _ = reply.send(outcome.map(|_| ()));
                }
                Job::SwapThenApply { reply, .. } => {
                    let _ = reply.send(outcome.map(|o| matches!(o, Outcome::Swapped(true))));
                }
                Job::Incr { reply, .. } | Job::SetLen { reply, .. } => {
                    let _ = reply.send(outcome.map(|o| match o {
                        Outcome::Count(n) => n,
                        Outcome::Done | Outcome::Swapped(_) => 0,
                    }));
                }
            }
        }
    }

    fn write(
        &self,
        db: &Database,
        batch: &[Job],
        touched: &mut HashSet<String>,
    ) -> Result<Committed, StoreError> {
        let txn = db.begin_write().map_err(storage_error)?;
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(batch.len());
        let sessions_delta;
        let sizes;
        {
            let mut t = Tables::open(&txn)?;
            for job in batch {
                let outcome = match job {
                    Job::Apply { ops, .. } => {
                        for op in ops {
                            apply_op(&mut t, op, now, touched)?;
                        }
                        Outcome::Done
                    }
                    Job::SwapThenApply { swap, ops, .. } => {
                        let current =
                            t.kv.get(swap.key.as_str())
                                .map_err(storage_error)?
                                .map(|g| {
                                    let (at, v) = g.value();
                                    at > now && v == swap.expected.as_ref()
                                });
                        let swapped = current == Some(true);
                        if swapped {
                            t.put(&swap.key, expires_at(now, swap.ttl), &swap.value)?;
                            touched.insert(swap.key.clone());
                            for op in ops {
                                apply_op(&mut t, op, now, touched)?;
                            }
                        }
                        Outcome::Swapped(swapped)
                    }
                    Job::Incr {
                        key, delta, ttl, ..
                    } => {
                        let old =
                            t.kv.get(key.as_str())
                                .map_err(storage_error)?
                                .and_then(|g| {
                                    let (at, v) = g.value();
                                    let n = std::str::from_utf8(v).ok()?.parse::<u64>().ok()?;
                                    (at > now).then_some((n, at))
                                });
                        let (count, at) = match old {
                            Some((n, at)) => (n.saturating_add_signed(*delta), at),
                            None => (0u64.saturating_add_signed(*delta), expires_at(now, *ttl)),
                        };
                        t.put(key, at, count.to_string().as_bytes())?;
                        touched.insert(key.clone());
                        Outcome::Count(count)
                    }
                    Job::SetLen { set, .. } => Outcome::Count(t.count(set, now)?),
                    Job::Close { .. } => Outcome::Done,
                };
                outcomes.push(outcome);
            }
            sessions_delta = t.sessions_delta;
            sizes = std::mem::take(&mut t.sizes);
        }
        txn.commit().map_err(storage_error)?;
        Ok(Committed {
            outcomes,
            sessions_delta,
            sizes,
        })
    }

    /// Applies what a committed transaction did to the sizes of sets: an exact count
    /// replaces, a change adjusts a size already known (an unknown one is counted when first
    /// asked for), and an empty set is forgotten.
    fn publish_sizes(&self, sizes: HashMap<String, SizeChange>) {
        if sizes.is_empty() {
            return;
        }
        let mut known = self
            .shared
            .set_sizes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (set, change) in sizes {
            let size = match change {
                SizeChange::Exact(size) => size,
                SizeChange::Delta {
                    members,
                    expires_at,
                } => match known.get(&set) {
                    Some(old) => SetSize {
                        members: old.members.saturating_add_signed(members),
                        expires_at: expires_at.unwrap_or(old.expires_at),
                    },
                    None => continue,
                },
            };
            if size.members == 0 {
                known.remove(&set);
            } else {
                known.insert(set, size);
            }
        }
    }

    fn count_sessions(&self, delta: i64) {
        if delta >= 0 {
            self.shared
                .sessions
                .fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            // Never below zero, even if a count at start raced a purge.
            let _ = self
                .shared
                .sessions
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(delta.unsigned_abs()))
                });
        }
    }

    /// Deletes entries whose time has passed, a bounded number per transaction.
    fn purge(&self) -> Result<(), StoreError> {
        loop {
            let db = self.shared.db.get()?;
            let txn = db.begin_write().map_err(storage_error)?;
            let mut touched = HashSet::new();
            let done;
            let sessions_delta;
            let sizes;
            {
                let mut t = Tables::open(&txn)?;
                let now = now_ms();
                let mut due = Vec::new();
                for item in t.expiry.range(..(now, "")).map_err(storage_error)? {
                    let (key, _) = item.map_err(storage_error)?;
                    let (at, tagged) = key.value();
                    due.push((at, tagged.to_owned()));
                    if due.len() == PURGE_BATCH {
                        break;
                    }
                }
                done = due.len() < PURGE_BATCH;
                for (at, tagged) in &due {
                    t.expiry
                        .remove((*at, tagged.as_str()))
                        .map_err(storage_error)?;
                    if let Some(key) = tagged.strip_prefix("k:") {
                        if t.kv.remove(key).map_err(storage_error)?.is_some()
                            && key.starts_with(keys::SESSION_PREFIX)
                        {
                            t.sessions_delta -= 1;
                        }
                        touched.insert(key.to_owned());
                    } else if let Some(set) = tagged.strip_prefix("s:") {
                        remove_set(&mut t, set)?;
                    }
                }
                if !due.is_empty() {
                    tracing::debug!(count = due.len(), "purged expired session entries");
                }
                sessions_delta = t.sessions_delta;
                sizes = std::mem::take(&mut t.sizes);
            }
            txn.commit().map_err(storage_error)?;
            self.count_sessions(sessions_delta);
            self.publish_sizes(sizes);
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            for key in &touched {
                self.shared.cache.invalidate(key);
            }
            if done {
                return Ok(());
            }
        }
    }
}

fn key_tag(key: &str) -> String {
    format!("k:{key}")
}

fn set_tag(set: &str) -> String {
    format!("s:{set}")
}

/// Removes `key` and its expiry index entry; returns what it held, expired or not.
fn remove_key(t: &mut Tables, key: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let old = t.kv.remove(key).map_err(storage_error)?.map(|g| {
        let (at, v) = g.value();
        (at, v.to_vec())
    });
    if let Some((at, _)) = &old {
        t.expiry
            .remove((*at, key_tag(key).as_str()))
            .map_err(storage_error)?;
        if key.starts_with(keys::SESSION_PREFIX) {
            t.sessions_delta -= 1;
        }
    }
    Ok(old)
}

fn apply_op(
    t: &mut Tables,
    op: &Op,
    now: u64,
    touched: &mut HashSet<String>,
) -> Result<(), StoreError> {
    match op {
        Op::Set { key, value, ttl } => {
            t.put(key, expires_at(now, *ttl), value)?;
            touched.insert(key.clone());
        }
        Op::Delete { key } => {
            // Like Redis' DEL, this removes a value or a whole set.
            remove_key(t, key)?;
            remove_set(t, key)?;
            touched.insert(key.clone());
        }
        Op::SetAdd { set, member, ttl } => {
            // An expired set starts empty, as in Redis.
            let old = t
                .set_ttl
                .get(set.as_str())
                .map_err(storage_error)?
                .map(|g| g.value());
            if old.is_some_and(|at| at <= now) {
                remove_set(t, set)?;
            } else if let Some(at) = old {
                t.expiry
                    .remove((at, set_tag(set).as_str()))
                    .map_err(storage_error)?;
            }
            // The TTL belongs to the whole set: re-arm it, as PEXPIRE would.
            let at = expires_at(now, *ttl);
            t.set_ttl.insert(set.as_str(), at).map_err(storage_error)?;
            t.expiry
                .insert((at, set_tag(set).as_str()), ())
                .map_err(storage_error)?;
            let added = t
                .sets
                .insert((set.as_str(), member.as_str()), ())
                .map_err(storage_error)?
                .is_none();
            t.resize(set, i64::from(added), Some(at));
        }
        Op::SetRemove { set, member } => {
            let removed = t
                .sets
                .remove((set.as_str(), member.as_str()))
                .map_err(storage_error)?
                .is_some();
            if removed {
                t.resize(set, -1, None);
            }
        }
    }
    Ok(())
}

/// Removes a set: its members, its TTL and its expiry index entry.
fn remove_set(t: &mut Tables, set: &str) -> Result<(), StoreError> {
    // Every DEL comes here, most of them of values: only a set that was counted (or changed
    // in this transaction) needs its size noted as zero.
    let noted = t.sizes.contains_key(set);
    let mut members = Vec::new();
    for item in t.sets.range((set, "")..).map_err(storage_error)? {
        let (key, _) = item.map_err(storage_error)?;
        let (s, m) = key.value();
        if s != set {
            break;
        }
        members.push(m.to_owned());
    }
    for m in &members {
        t.sets.remove((set, m.as_str())).map_err(storage_error)?;
    }
    if noted || !members.is_empty() {
        t.sizes.insert(
            set.to_owned(),
            SizeChange::Exact(SetSize {
                members: 0,
                expires_at: 0,
            }),
        );
    }
    if let Some(at) = t
        .set_ttl
        .remove(set)
        .map_err(storage_error)?
        .map(|g| g.value())
    {
        t.expiry
            .remove((at, set_tag(set).as_str()))
            .map_err(storage_error)?;
    }
    Ok(())
}

fn expires_at(now: u64, ttl: Duration) -> u64 {
    now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> EmbeddedStore {
        let db = Db::open(dir, &dir.join("t.redb")).unwrap();
        EmbeddedStore::open(db, 100, Duration::from_millis(50)).unwrap()
    }

    #[tokio::test]
    async fn sets_expire_as_a_whole_and_restart_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let add = |m: &str, ms: u64| Op::SetAdd {
            set: "s".into(),
            member: m.into(),
            ttl: Duration::from_millis(ms),
        };
        s.apply(vec![add("a", 100), add("b", 100)]).await.unwrap();
        // Adding re-arms the whole set's TTL.
        tokio::time::sleep(Duration::from_millis(60)).await;
        s.apply(vec![add("c", 100)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut members = s.set_members("s").await.unwrap();
        members.sort();
        assert_eq!(members, ["a", "b", "c"]);
        // Expired: reads as empty, and a new member starts a fresh set.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(s.set_members("s").await.unwrap().is_empty());
        s.apply(vec![add("d", 1000)]).await.unwrap();
        assert_eq!(s.set_members("s").await.unwrap(), ["d"]);
        // DEL removes a whole set; SREM one member.
        s.apply(vec![
            add("e", 1000),
            Op::SetRemove {
                set: "s".into(),
                member: "d".into(),
            },
        ])
        .await
        .unwrap();
        assert_eq!(s.set_members("s").await.unwrap(), ["e"]);
        s.apply(vec![Op::Delete { key: "s".into() }]).await.unwrap();
        assert!(s.set_members("s").await.unwrap().is_empty());
        s.close().await.unwrap();
    }

    #[tokio::test]
    async fn values_expire_and_swap_is_atomic_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.apply(vec![Op::set(
            "session:k".into(),
            b"v".to_vec(),
            Duration::from_millis(300),
        )])
        .await
        .unwrap();
        assert_eq!(s.live_sessions().await.unwrap(), 1);
        assert_eq!(
            s.get("session:k").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
        let swap = |to: &[u8]| Swap {
            key: "session:k".into(),
            expected: Bytes::from_static(b"v"),
            value: to.to_vec(),
            ttl: Duration::from_secs(5),
        };
        let marker = || vec![Op::set("m".into(), b"1".to_vec(), Duration::from_secs(5))];
        let (a, b) = tokio::join!(
            s.swap_then_apply(swap(b"a"), marker()),
            s.swap_then_apply(swap(b"b"), marker())
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a ^ b, "exactly one swap wins");
        let winner: &[u8] = if a { b"a" } else { b"b" };
        assert_eq!(s.get("session:k").await.unwrap().as_deref(), Some(winner));
        assert!(s.get("m").await.unwrap().is_some());
        // A swap of an absent key does nothing.
        let absent = Swap {
            key: "session:gone".into(),
            ..swap(b"x")
        };
        assert!(!s.swap_then_apply(absent, marker()).await.unwrap());
        assert!(s.get("session:gone").await.unwrap().is_none());
        assert_eq!(s.live_sessions().await.unwrap(), 1);
        // Counters go up and down, never below zero.
        assert_eq!(s.incr_by("c", 2, Duration::from_secs(5)).await.unwrap(), 2);
        assert_eq!(s.incr_by("c", -3, Duration::from_secs(5)).await.unwrap(), 0);
        s.apply(vec![Op::set(
            "x".into(),
            b"y".to_vec(),
            Duration::from_millis(50),
        )])
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(s.get("x").await.unwrap().is_none());
        s.apply(vec![Op::Delete {
            key: "session:k".into(),
        }])
        .await
        .unwrap();
        assert_eq!(s.live_sessions().await.unwrap(), 0);
        s.close().await.unwrap();
    }
}
