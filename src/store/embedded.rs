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
//! On disk (GD-0013): one table of compact entries ([`layout`]), each value carrying its kind
//! and expiry, a set packed into one entry, a session record in a compact binary form
//! ([`record`]). Callers' keys and values are turned into that form on their own task before
//! the writer sees them, and back on a cache miss; the cache holds what callers read, so a
//! token check that hits it decodes nothing. Expired entries are found by a periodic scan of
//! the table in slices, between batches of writes, instead of a second index of every key.
//! A data dir of the first format is converted when the store opens ([`migrate`]).

#[doc(hidden)]
pub mod layout;
pub(crate) mod migrate;
mod record;

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::sync::Cache;
use redb::{Database, ReadableDatabase, ReadableTable, Table};
use tokio::sync::oneshot;

use self::layout::{ENTRIES, FormatError, Kind, Stored};
use super::database::{Db, storage_error};
use super::{KeyInfo, KeyKind, Op, SessionStore, StoreError, Swap};
use crate::clock::now_ms;

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 1024;
/// Most entries the purge looks at before letting waiting writes in.
const PURGE_SLICE: usize = 20_000;

#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires_at: u64,
}

/// One write of a batch with its key and value already in their stored forms; `key` is the
/// caller's, for the cache.
enum Write {
    Put {
        key: String,
        stored: Vec<u8>,
        kind: Kind,
        payload: Vec<u8>,
        ttl: Duration,
    },
    Delete {
        key: String,
        stored: Vec<u8>,
    },
    SetAdd {
        key: String,
        stored: Vec<u8>,
        member: String,
        ttl: Duration,
    },
    SetRemove {
        key: String,
        stored: Vec<u8>,
        member: String,
    },
}

impl From<Op> for Write {
    fn from(op: Op) -> Write {
        match op {
            Op::Set { key, value, ttl } => {
                let (kind, payload) = layout::string_payload(&key, &value);
                Write::Put {
                    stored: layout::key(&key),
                    key,
                    kind,
                    payload,
                    ttl,
                }
            }
            Op::Delete { key } => Write::Delete {
                stored: layout::key(&key),
                key,
            },
            Op::SetAdd { set, member, ttl } => Write::SetAdd {
                stored: layout::key(&set),
                key: set,
                member,
                ttl,
            },
            Op::SetRemove { set, member } => Write::SetRemove {
                stored: layout::key(&set),
                key: set,
                member,
            },
        }
    }
}

/// A [`Swap`] in stored forms: the expected value compares as stored bytes, since the same
/// value always takes the same stored form; `None` expects no live value.
struct StoredSwap {
    key: String,
    stored: Vec<u8>,
    expected: Option<(Kind, Vec<u8>)>,
    value: (Kind, Vec<u8>),
    ttl: Duration,
}

enum Job {
    Apply {
        writes: Vec<Write>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    SwapThenApply {
        swap: StoredSwap,
        writes: Vec<Write>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Incr {
        key: String,
        delta: i64,
        ttl: Duration,
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
}

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

fn corrupt(key: &str, e: FormatError) -> StoreError {
    StoreError::Corrupt(format!("{key}: {e}"))
}

impl EmbeddedStore {
    /// Starts the writer thread over `db`. `cache_capacity` bounds the cached entries.
    pub fn open(
        db: Arc<Db>,
        cache_capacity: u64,
        purge_interval: Duration,
    ) -> Result<Self, StoreError> {
        // Create the table up front so read transactions never find it missing, and convert
        // a store of the first format in the same transaction.
        let migrated = db.write(|db| {
            let txn = db.begin_write().map_err(storage_error)?;
            txn.open_table(ENTRIES).map_err(storage_error)?;
            let migrated = migrate::migrate(&txn, now_ms())?;
            txn.commit().map_err(storage_error)?;
            Ok(migrated)
        })?;
        if let Some(m) = migrated {
            tracing::info!(
                values = m.values,
                sets = m.sets,
                dropped = m.dropped,
                "converted the session store to its compact on-disk format (GD-0013)"
            );
        }
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

    /// The stored bytes at `key`, if any, live or not.
    fn read_stored(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.shared.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        let table = txn.open_table(ENTRIES).map_err(storage_error)?;
        let found = table
            .get(layout::key(key).as_slice())
            .map_err(storage_error)?
            .map(|g| g.value().to_vec());
        Ok(found)
    }

    fn read(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let Some(bytes) = self.read_stored(key)? else {
            return Ok(None);
        };
        let stored = Stored::parse(&bytes).map_err(|e| corrupt(key, e))?;
        // A set is no value: `GET` on it reads nothing here (the RESP listener, which knows
        // the layout, answers WRONGTYPE itself).
        if stored.kind == Kind::Set || stored.expires_at <= now_ms() {
            return Ok(None);
        }
        let value = stored.string().map_err(|e| corrupt(key, e))?;
        Ok(Some(Entry {
            value: Bytes::from(value),
            expires_at: stored.expires_at,
        }))
    }

    /// The live set at `key` and its expiry; like Redis, an empty set does not exist.
    fn read_set(&self, key: &str) -> Result<Option<(u64, BTreeSet<String>)>, StoreError> {
        let Some(bytes) = self.read_stored(key)? else {
            return Ok(None);
        };
        let stored = Stored::parse(&bytes).map_err(|e| corrupt(key, e))?;
        if stored.kind != Kind::Set || stored.expires_at <= now_ms() {
            return Ok(None);
        }
        let members = stored.members().map_err(|e| corrupt(key, e))?;
        Ok((!members.is_empty()).then_some((stored.expires_at, members)))
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.lookup(key)?.map(|e| e.value))
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let writes = ops.into_iter().map(Write::from).collect();
        let (reply, rx) = oneshot::channel();
        self.send(Job::Apply { writes, reply }, rx).await
    }

    async fn swap_then_apply(&self, swap: Swap, ops: Vec<Op>) -> Result<bool, StoreError> {
        let swap = StoredSwap {
            stored: layout::key(&swap.key),
            expected: swap
                .expected
                .as_ref()
                .map(|bytes| layout::string_payload(&swap.key, bytes)),
            value: layout::string_payload(&swap.key, &swap.value),
            key: swap.key,
            ttl: swap.ttl,
        };
        let writes = ops.into_iter().map(Write::from).collect();
        let (reply, rx) = oneshot::channel();
        self.send(
            Job::SwapThenApply {
                swap,
                writes,
                reply,
            },
            rx,
        )
        .await
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
        Ok(self
            .read_set(set)?
            .map(|(_, members)| members.into_iter().collect())
            .unwrap_or_default())
    }

    /// One read of the set's packed entry (GD-0013): a count needs no scan here.
    async fn set_len(&self, set: &str) -> Result<u64, StoreError> {
        Ok(self
            .read_set(set)?
            .map_or(0, |(_, members)| members.len() as u64))
    }

    async fn inspect(&self, key: &str) -> Result<Option<KeyInfo>, StoreError> {
        let (kind, at) = match self.lookup(key)? {
            Some(entry) => (KeyKind::String, entry.expires_at),
            None => match self.read_set(key)? {
                Some((at, _)) => (KeyKind::Set, at),
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
        txn.open_table(ENTRIES).map_err(storage_error)?;
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

/// Counts the `session:` keys on disk, once at start.
fn count_sessions(db: &Db) -> Result<u64, StoreError> {
    let db = db.get()?;
    let txn = db.begin_read().map_err(storage_error)?;
    let table = txn.open_table(ENTRIES).map_err(storage_error)?;
    let mut n = 0;
    for (from, to) in layout::session_key_ranges() {
        for item in table
            .range::<&[u8]>(from.as_slice()..to.as_slice())
            .map_err(storage_error)?
        {
            item.map_err(storage_error)?;
            n += 1;
        }
    }
    Ok(n)
}

struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Job>,
    purge_interval: Duration,
}

/// Where a purge under way goes on from.
enum PurgeFrom {
    Start,
    After(Vec<u8>),
}

/// The store's table, open in one write transaction.
struct Tables<'t> {
    entries: Table<'t, &'static [u8], &'static [u8]>,
    /// Change in the number of `session:` keys made by this transaction.
    sessions_delta: i64,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES).map_err(storage_error)?,
            sessions_delta: 0,
        })
    }

    fn get(&self, stored: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .entries
            .get(stored)
            .map_err(storage_error)?
            .map(|g| g.value().to_vec()))
    }

    fn put(&mut self, stored: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let existed = self
            .entries
            .insert(stored, value)
            .map_err(storage_error)?
            .is_some();
        if !existed && layout::is_session_key(stored) {
            self.sessions_delta += 1;
        }
        Ok(())
    }

    fn remove(&mut self, stored: &[u8]) -> Result<(), StoreError> {
        let existed = self
            .entries
            .remove(stored)
            .map_err(storage_error)?
            .is_some();
        if existed && layout::is_session_key(stored) {
            self.sessions_delta -= 1;
        }
        Ok(())
    }

    /// The live set at `stored` with its expiry. Anything else there (nothing, an expired
    /// set, a value, undecodable bytes) reads as no set, which a write then replaces, as
    /// Redis' `SADD` starts an expired set afresh.
    fn live_set(
        &self,
        key: &str,
        stored: &[u8],
        now: u64,
    ) -> Result<Option<(u64, BTreeSet<String>)>, StoreError> {
        let Some(bytes) = self.get(stored)? else {
            return Ok(None);
        };
        let parsed = Stored::parse(&bytes).and_then(|s| Ok((s.expires_at, s.members()?)));
        match parsed {
            Ok((at, members)) if at > now => Ok(Some((at, members))),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::warn!(key, error = %e, "replacing an undecodable set");
                Ok(None)
            }
        }
    }
}

enum Outcome {
    Done,
    Swapped(bool),
    Count(u64),
}

impl Writer {
    fn run(self) {
        let mut next_purge = Instant::now() + self.purge_interval;
        let mut purge: Option<PurgeFrom> = None;
        loop {
            // The purge goes slice by slice, letting the writes that wait in between: a large
            // store never holds them up for a whole scan.
            if purge.is_none() && Instant::now() >= next_purge {
                purge = Some(PurgeFrom::Start);
            }
            if let Some(from) = purge.take() {
                match self.purge_slice(from) {
                    Ok(Some(next)) => purge = Some(next),
                    Ok(None) => next_purge = Instant::now() + self.purge_interval,
                    Err(e) => {
                        tracing::warn!(error = %e, "purging expired sessions failed");
                        next_purge = Instant::now() + self.purge_interval;
                    }
                }
            }
            let wait = match purge {
                Some(_) => Duration::ZERO,
                None => next_purge.saturating_duration_since(Instant::now()),
            };
            let first = match self.rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
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
        let result = result.map(|(outcomes, sessions_delta)| {
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            for key in &touched {
                self.shared.cache.invalidate(key);
            }
            self.count_sessions(sessions_delta);
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
                Job::Incr { reply, .. } => {
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
    ) -> Result<(Vec<Outcome>, i64), StoreError> {
        let txn = db.begin_write().map_err(storage_error)?;
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(batch.len());
        let sessions_delta;
        {
            let mut t = Tables::open(&txn)?;
            for job in batch {
                let outcome = match job {
                    Job::Apply { writes, .. } => {
                        for w in writes {
                            apply_write(&mut t, w, now, touched)?;
                        }
                        Outcome::Done
                    }
                    Job::SwapThenApply { swap, writes, .. } => {
                        // Undecodable bytes are no match (and not absent either): the caller
                        // reads again and gets the error, and the rest of the batch commits.
                        let current = t.get(&swap.stored)?;
                        let swapped = match (&swap.expected, current) {
                            (None, None) => true,
                            (None, Some(bytes)) => {
                                Stored::parse(&bytes).is_ok_and(|s| s.expires_at <= now)
                            }
                            (Some(_), None) => false,
                            (Some((kind, payload)), Some(bytes)) => Stored::parse(&bytes)
                                .is_ok_and(|s| {
                                    s.expires_at > now
                                        && s.kind == *kind
                                        && s.payload == payload.as_slice()
                                }),
                        };
                        if swapped {
                            let (kind, payload) = &swap.value;
                            let at = expires_at(now, swap.ttl);
                            t.put(&swap.stored, &layout::value(*kind, at, payload))?;
                            touched.insert(swap.key.clone());
                            for w in writes {
                                apply_write(&mut t, w, now, touched)?;
                            }
                        }
                        Outcome::Swapped(swapped)
                    }
                    Job::Incr {
                        key, delta, ttl, ..
                    } => {
                        let stored = layout::key(key);
                        let old = t.get(&stored)?.and_then(|bytes| {
                            let s = Stored::parse(&bytes).ok()?;
                            let live = s.kind == Kind::Plain && s.expires_at > now;
                            let n = std::str::from_utf8(s.payload).ok()?.parse::<u64>().ok()?;
                            live.then_some((n, s.expires_at))
                        });
                        let (count, at) = match old {
                            Some((n, at)) => (n.saturating_add_signed(*delta), at),
                            None => (0u64.saturating_add_signed(*delta), expires_at(now, *ttl)),
                        };
                        let value = layout::value(Kind::Plain, at, count.to_string().as_bytes());
                        t.put(&stored, &value)?;
                        touched.insert(key.clone());
                        Outcome::Count(count)
                    }
                    Job::Close { .. } => Outcome::Done,
                };
                outcomes.push(outcome);
            }
            sessions_delta = t.sessions_delta;
        }
        txn.commit().map_err(storage_error)?;
        Ok((outcomes, sessions_delta))
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

    /// Looks at up to [`PURGE_SLICE`] entries from `from` in a read transaction (which
    /// blocks no reader) and deletes those expired in one write transaction, checking again
    /// that each still is. Returns where the next slice starts, `None` at the end.
    fn purge_slice(&self, from: PurgeFrom) -> Result<Option<PurgeFrom>, StoreError> {
        let now = now_ms();
        let mut due = Vec::new();
        let mut next = None;
        {
            let db = self.shared.db.get()?;
            let txn = db.begin_read().map_err(storage_error)?;
            let table = txn.open_table(ENTRIES).map_err(storage_error)?;
            let range = match &from {
                PurgeFrom::Start => table.range::<&[u8]>(..),
                PurgeFrom::After(key) => {
                    table.range::<&[u8]>((Bound::Excluded(key.as_slice()), Bound::Unbounded))
                }
            }
            .map_err(storage_error)?;
            for (seen, item) in range.enumerate() {
                let (k, v) = item.map_err(storage_error)?;
                // Undecodable bytes are left for a reader to report: the purge deletes only
                // what it knows has expired.
                if Stored::parse(v.value()).is_ok_and(|s| s.expires_at <= now) {
                    due.push(k.value().to_vec());
                }
                if seen + 1 == PURGE_SLICE {
                    next = Some(PurgeFrom::After(k.value().to_vec()));
                    break;
                }
            }
        }
        if due.is_empty() {
            return Ok(next);
        }
        let (gone, sessions_delta) = self.shared.db.write(|db| {
            let txn = db.begin_write().map_err(storage_error)?;
            let mut gone = Vec::new();
            let sessions_delta;
            {
                let mut t = Tables::open(&txn)?;
                for stored in &due {
                    let expired = t.get(stored)?.is_some_and(|bytes| {
                        Stored::parse(&bytes).is_ok_and(|s| s.expires_at <= now)
                    });
                    if expired {
                        t.remove(stored)?;
                        gone.push(stored.as_slice());
                    }
                }
                sessions_delta = t.sessions_delta;
            }
            txn.commit().map_err(storage_error)?;
            Ok((gone, sessions_delta))
        })?;
        self.count_sessions(sessions_delta);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        for stored in &gone {
            if let Ok(key) = layout::decode_key(stored) {
                self.shared.cache.invalidate(&key);
            }
        }
        if !gone.is_empty() {
            tracing::debug!(count = gone.len(), "purged expired session entries");
        }
        Ok(next)
    }
}

fn apply_write(
    t: &mut Tables,
    w: &Write,
    now: u64,
    touched: &mut HashSet<String>,
) -> Result<(), StoreError> {
    match w {
        Write::Put {
            key,
            stored,
            kind,
            payload,
            ttl,
        } => {
            t.put(
                stored,
                &layout::value(*kind, expires_at(now, *ttl), payload),
            )?;
            touched.insert(key.clone());
        }
        Write::Delete { key, stored } => {
            // Like Redis' DEL, this removes a value or a whole set.
            t.remove(stored)?;
            touched.insert(key.clone());
        }
        Write::SetAdd {
            key,
            stored,
            member,
            ttl,
        } => {
            // An expired set starts empty, as in Redis; the TTL belongs to the whole set and
            // is re-armed, as PEXPIRE would.
            let mut members = t
                .live_set(key, stored, now)?
                .map(|(_, m)| m)
                .unwrap_or_default();
            members.insert(member.clone());
            let payload = layout::pack_members(&members);
            t.put(
                stored,
                &layout::value(Kind::Set, expires_at(now, *ttl), &payload),
            )?;
            // A value under the same key (never, by the layout) is gone from the cache too.
            touched.insert(key.clone());
        }
        Write::SetRemove {
            key,
            stored,
            member,
        } => {
            if let Some((at, mut members)) = t.live_set(key, stored, now)? {
                if members.remove(member) {
                    if members.is_empty() {
                        // Redis has no empty sets.
                        t.remove(stored)?;
                    } else {
                        let payload = layout::pack_members(&members);
                        t.put(stored, &layout::value(Kind::Set, at, &payload))?;
                    }
                }
            }
        }
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
            expected: Some(Bytes::from_static(b"v")),
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
