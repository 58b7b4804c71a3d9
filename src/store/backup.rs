//! Consistent copies of the redb database: `gatehouse backup` and `gatehouse restore`.
//!
//! A backup is a logical copy made inside one read transaction (an MVCC snapshot), so it is
//! consistent while the server keeps writing. It goes to a temporary file that is synced and
//! then renamed, so a crash never leaves a half-written backup under the final name.

use std::path::{Path, PathBuf};

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value,
    WriteTransaction,
};

use super::database::storage_error;
use super::embedded::{layout, migrate};
use super::{StoreError, redb_users};

/// What a copy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contents {
    /// Users and sessions.
    Everything,
    /// Users only: restoring sessions would bring back every session revoked since the
    /// backup was taken.
    UsersOnly,
}

/// Copies `db` into a new database file at `dest`; returns the number of users copied.
pub(crate) fn copy_database(
    db: &Database,
    dest: &Path,
    contents: Contents,
) -> Result<u64, StoreError> {
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    let result = (|| {
        // A copy holds password hashes: readable by its owner only, from its first byte
        // (redb opens the empty file and keeps its mode).
        drop(crate::files::create_private(&partial).map_err(io_error)?);
        let out = Database::create(&partial).map_err(storage_error)?;
        let read = db.begin_read().map_err(storage_error)?;
        let write = out.begin_write().map_err(storage_error)?;
        let users = copy_table(&read, &write, redb_users::USERS, |_| true)?;
        copy_table(&read, &write, redb_users::EMAILS, |_| true)?;
        if contents == Contents::Everything {
            copy_table(&read, &write, layout::ENTRIES, |key| {
                !layout::decode_key(key).is_ok_and(|k| holds_token(&k))
            })?;
            // A database of the first format (a backup made before GD-0013, or a data dir
            // not yet opened by `serve` since the upgrade) keeps its tables as they are:
            // the store converts them when it opens the restored file.
            copy_table(&read, &write, migrate::LEGACY_KV, |key| !holds_token(key))?;
            copy_table(&read, &write, migrate::LEGACY_SETS, |_| true)?;
            copy_table(&read, &write, migrate::LEGACY_SET_TTL, |_| true)?;
            copy_table(&read, &write, migrate::LEGACY_EXPIRY, |(_, tagged)| {
                !tagged.strip_prefix("k:").is_some_and(holds_token)
            })?;
        }
        write.commit().map_err(storage_error)?;
        drop(out);
        // The commit synced the data; make the rename durable too.
        std::fs::rename(&partial, dest).map_err(io_error)?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error)?;
        }
        Ok(users)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Checks that `file` is a gatehouse database; returns its number of users.
pub(crate) fn inspect(file: &Path) -> Result<u64, StoreError> {
    let db = Database::open(file)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", file.display())))?;
    let read = db.begin_read().map_err(storage_error)?;
    let users = read.open_table(redb_users::USERS).map_err(|e| {
        StoreError::Corrupt(format!("{} is not a gatehouse backup: {e}", file.display()))
    })?;
    redb::ReadableTableMetadata::len(&users).map_err(storage_error)
}

/// Session-store keys whose values are usable tokens, which a backup never holds: a
/// `grace:<hash>` record is the plaintext successor of a just-rotated refresh token, kept
/// for the reuse grace window (and, written by releases before the successor was sealed
/// into the session record, until it expires). Everything else there is hashes and
/// metadata: a restored session still needs its refresh token from the browser.
fn holds_token(key: &str) -> bool {
    key.starts_with("grace:")
}

/// Copies the rows of `table` whose key passes `keep`; returns how many.
fn copy_table<K: Key + 'static, V: Value + 'static>(
    read: &ReadTransaction,
    write: &WriteTransaction,
    table: TableDefinition<K, V>,
    keep: impl Fn(&K::SelfType<'_>) -> bool,
) -> Result<u64, StoreError> {
    let source = match read.open_table(table) {
        Ok(t) => t,
        // A table that was never created (e.g. no session yet) copies as empty.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(storage_error(e)),
    };
    let mut dest = write.open_table(table).map_err(storage_error)?;
    let mut n = 0;
    for item in source.iter().map_err(storage_error)? {
        let (k, v) = item.map_err(storage_error)?;
        let key = k.value();
        if !keep(&key) {
            continue;
        }
        dest.insert(key, v.value()).map_err(storage_error)?;
        n += 1;
    }
    Ok(n)
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
