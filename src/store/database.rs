//! The one redb file (`<data_dir>/gatehouse.redb`) that the users and the embedded session
//! store share: opening it, reopening it in place after a full disk ([`Db`]), and mapping
//! redb's errors onto [`StoreError`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use super::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database {0} is in use by another process (is `gatehouse serve` running?)")]
    InUse(String),
    #[error("cannot prepare the data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Database { path: String, source: redb::Error },
}

/// redb's page cache. Its default (1 GiB) lets resident memory grow with the database; the
/// hot session entries are cached by moka in front anyway, and the kernel's page cache
/// serves the rest.
const CACHE_BYTES: usize = 16 << 20;

/// Free bytes below which a full disk is taken as still full.
const ROOM_NEEDED: u64 = 1 << 20;

/// The shared database. After an I/O error (a full disk) redb refuses every later write
/// until the `Database` is dropped and opened again, while reads keep working; `Db` does
/// that in place once the disk has room again, so the server recovers without a restart.
pub struct Db {
    path: PathBuf,
    dir: PathBuf,
    current: RwLock<Option<Arc<Database>>>,
    /// A write failed for lack of space or an earlier I/O error.
    failed: AtomicBool,
}

impl Db {
    /// Creates the data dir (mode 0700) if needed and opens or creates the database in it.
    pub fn open(data_dir: &Path, file: &Path) -> Result<Arc<Db>, OpenError> {
        let db = open(data_dir, file)?;
        Ok(Arc::new(Db {
            path: file.to_owned(),
            dir: data_dir.to_owned(),
            current: RwLock::new(Some(db)),
            failed: AtomicBool::new(false),
        }))
    }

    /// The open database, for reads (and for writes through [`Db::write`]).
    pub fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the database is being reopened".into()))
    }

    /// Runs a write transaction's worth of work. When an earlier write failed for lack of
    /// space and the disk has room again, it first reopens the database; when the work fails
    /// with the after-error refusal and there is room, it reopens and tries once more.
    pub fn write<T>(
        &self,
        mut work: impl FnMut(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.failed.load(Ordering::Acquire) && self.has_room() {
            self.reopen()?;
        }
        let result = work(&*self.get()?);
        match result {
            Err(StoreError::Full(_)) => {
                self.failed.store(true, Ordering::Release);
                result
            }
            Err(StoreError::Poisoned(_)) if self.has_room() => {
                self.reopen()?;
                work(&*self.get()?)
            }
            Err(StoreError::Poisoned(_)) => {
                self.failed.store(true, Ordering::Release);
                result
            }
            _ => result,
        }
    }

    /// Closes and opens the database file again; committed data is intact.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(db) = slot.take() {
            // Readers hold clones for a few microseconds; the file lock goes with the last.
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut db = db;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        db = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(shared) => {
                        *slot = Some(shared);
                        return Err(StoreError::Unavailable(
                            "the database is busy; retry".into(),
                        ));
                    }
                }
            }
        }
        let reopened = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&self.path)
            .map_err(|e| {
                tracing::error!(error = %e, "reopening the database failed");
                StoreError::Unavailable(format!("reopening the database: {e}"))
            })?;
        *slot = Some(Arc::new(reopened));
        self.failed.store(false, Ordering::Release);
        tracing::warn!(path = %self.path.display(), "reopened the database after a write failure; writes work again");
        Ok(())
    }

    /// Whether the data dir's filesystem has room for writes again.
    fn has_room(&self) -> bool {
        free_bytes(&self.dir).is_none_or(|free| free >= ROOM_NEEDED)
    }
}

/// Free bytes for unprivileged users on the filesystem of `dir`, where the platform says.
// std offers no statvfs.
#[allow(unsafe_code)]
fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
        unsafe {
            let mut stat: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(path.as_ptr(), &mut stat) == 0 {
                return Some(stat.f_bavail as u64 * stat.f_frsize as u64);
            }
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Creates the data dir (mode 0700) if needed and opens or creates the database in it.
pub fn open(data_dir: &Path, file: &Path) -> Result<Arc<Database>, OpenError> {
    create_private_dir(data_dir).map_err(|source| OpenError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    // The file holds password hashes and sessions: readable by the service's user only,
    // from its first byte (redb then opens the empty file and keeps its mode).
    let _ = crate::files::create_private(file);
    match Database::builder().set_cache_size(CACHE_BYTES).create(file) {
        Ok(db) => Ok(Arc::new(db)),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            Err(OpenError::InUse(file.display().to_string()))
        }
        Err(e) => Err(OpenError::Database {
            path: file.display().to_string(),
            source: e.into(),
        }),
    }
}

/// Creates `dir` (mode 0700) or makes an existing one private: see [`crate::files::private_dir`].
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    crate::files::private_dir(dir)
}

/// Maps any redb error onto the store's error kinds; a full disk is told apart because the
/// API answers it with 507 and keeps serving reads.
pub fn storage_error(err: impl Into<redb::Error>) -> StoreError {
    let err: redb::Error = err.into();
    match &err {
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            StoreError::Full(err.to_string())
        }
        redb::Error::PreviousIo => StoreError::Poisoned(err.to_string()),
        _ => StoreError::Unavailable(err.to_string()),
    }
}
