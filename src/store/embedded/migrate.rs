//! Upgrade from the first on-disk format (releases before GD-0013): four tables keyed by the
//! key text, one B-tree entry per set member, and an expiry index. Converted once, when the
//! store opens, in the same write transaction that creates the new table: a crash leaves
//! either the old tables or the new one, never half of each.

use std::collections::BTreeSet;

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::layout::{self, ENTRIES, Kind};
use crate::store::StoreError;
use crate::store::database::storage_error;

/// key → (expires_at in Unix ms, value)
pub(crate) const LEGACY_KV: TableDefinition<&str, (u64, &[u8])> =
    TableDefinition::new("session_kv");
/// (set, member) → ()
pub(crate) const LEGACY_SETS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("session_sets");
/// set → expires_at in Unix ms
pub(crate) const LEGACY_SET_TTL: TableDefinition<&str, u64> =
    TableDefinition::new("session_set_ttl");
/// (expires_at, "k:" or "s:" + key) → ()
pub(crate) const LEGACY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("session_expiry");

/// What a migration did, for its log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Migrated {
    pub values: u64,
    pub sets: u64,
    /// Expired entries, and the `refresh:`/`rotated:`/`grace:` records of releases before
    /// GD-0006, which nothing reads.
    pub dropped: u64,
}

/// Keys of releases before GD-0006: still on disk until they expire, read by nothing.
fn unread(key: &str) -> bool {
    ["refresh:", "rotated:", "grace:"]
        .iter()
        .any(|p| key.starts_with(p))
}

/// Converts the old tables, if `txn` has them, into [`ENTRIES`] and deletes them.
pub(crate) fn migrate(txn: &WriteTransaction, now: u64) -> Result<Option<Migrated>, StoreError> {
    let legacy = txn
        .list_tables()
        .map_err(storage_error)?
        .any(|t| t.name() == LEGACY_KV.name());
    if !legacy {
        return Ok(None);
    }
    let mut done = Migrated::default();
    let mut entries = txn.open_table(ENTRIES).map_err(storage_error)?;
    {
        let kv = txn.open_table(LEGACY_KV).map_err(storage_error)?;
        for item in kv.iter().map_err(storage_error)? {
            let (k, v) = item.map_err(storage_error)?;
            let key = k.value();
            let (at, bytes) = v.value();
            if at <= now || unread(key) {
                done.dropped += 1;
                continue;
            }
            let (kind, payload) = layout::string_payload(key, bytes);
            entries
                .insert(
                    layout::key(key).as_slice(),
                    layout::value(kind, at, &payload).as_slice(),
                )
                .map_err(storage_error)?;
            done.values += 1;
        }
    }
    {
        let ttl = txn.open_table(LEGACY_SET_TTL).map_err(storage_error)?;
        let sets = txn.open_table(LEGACY_SETS).map_err(storage_error)?;
        let mut current: Option<(String, BTreeSet<String>)> = None;
        let mut flush = |set: Option<(String, BTreeSet<String>)>,
                         done: &mut Migrated|
         -> Result<(), StoreError> {
            let Some((name, members)) = set else {
                return Ok(());
            };
            let at = ttl
                .get(name.as_str())
                .map_err(storage_error)?
                .map(|g| g.value());
            match at {
                Some(at) if at > now => {
                    let payload = layout::pack_members(&members);
                    entries
                        .insert(
                            layout::key(&name).as_slice(),
                            layout::value(Kind::Set, at, &payload).as_slice(),
                        )
                        .map_err(storage_error)?;
                    done.sets += 1;
                }
                _ => done.dropped += 1,
            }
            Ok(())
        };
        for item in sets.iter().map_err(storage_error)? {
            let (k, _) = item.map_err(storage_error)?;
            let (set, member) = k.value();
            match &mut current {
                Some((name, members)) if name == set => {
                    members.insert(member.to_owned());
                }
                _ => {
                    let next = (set.to_owned(), BTreeSet::from([member.to_owned()]));
                    flush(current.replace(next), &mut done)?;
                }
            }
        }
        flush(current.take(), &mut done)?;
    }
    drop(entries);
    for table in [
        LEGACY_KV.name(),
        LEGACY_SETS.name(),
        LEGACY_SET_TTL.name(),
        LEGACY_EXPIRY.name(),
    ] {
        delete(txn, table)?;
    }
    Ok(Some(done))
}

fn delete(txn: &WriteTransaction, name: &str) -> Result<(), StoreError> {
    let handle = txn
        .list_tables()
        .map_err(storage_error)?
        .find(|t| t.name() == name);
    if let Some(handle) = handle {
        txn.delete_table(handle).map_err(storage_error)?;
    }
    Ok(())
}
