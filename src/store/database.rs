//! Opening the one redb file (`<data_dir>/gatehouse.redb`) that the users and the embedded
//! session store share, and mapping redb's errors onto [`StoreError`].

use std::path::Path;
use std::sync::Arc;

use redb::Database;

use super::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database {0} is in use by another process (is `gatehouse serve` running?)")]
    InUse(String),
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Database { path: String, source: redb::Error },
}

/// Creates the data dir (mode 0700) if needed and opens or creates the database in it.
pub fn open(data_dir: &Path, file: &Path) -> Result<Arc<Database>, OpenError> {
    create_private_dir(data_dir).map_err(|source| OpenError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    // The file holds password hashes and sessions: readable by the service's user only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file);
    }
    match Database::create(file) {
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

/// Creates `dir` and its parents; a new directory gets mode 0700 (it holds the secret).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Maps any redb error onto the store's error kinds; a full disk is told apart because the
/// API answers it with 507 and keeps serving reads.
pub fn storage_error(err: impl Into<redb::Error>) -> StoreError {
    let err: redb::Error = err.into();
    match &err {
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            StoreError::Full(err.to_string())
        }
        _ => StoreError::Unavailable(err.to_string()),
    }
}
