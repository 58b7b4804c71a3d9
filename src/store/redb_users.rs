//! The `redb` user store: accounts in the shared redb file.
//!
//! Writes run on tokio's blocking pool because a redb commit waits for an fsync; reads are
//! a few microseconds and run inline.

use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use uuid::Uuid;

use super::database::{Db, storage_error};
use super::{StoreError, User, UserStore, UserStoreError, normalize_email};

/// user id → JSON [`User`]
pub(crate) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// normalized email → user id
pub(crate) const EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");

pub struct RedbUserStore {
    db: Arc<Db>,
}

impl RedbUserStore {
    pub fn open(db: Arc<Db>) -> Result<Self, StoreError> {
        db.write(|db| {
            let txn = db.begin_write().map_err(storage_error)?;
            txn.open_table(USERS).map_err(storage_error)?;
            txn.open_table(EMAILS).map_err(storage_error)?;
            txn.commit().map_err(storage_error)
        })?;
        Ok(RedbUserStore { db })
    }

    fn read_user(&self, id: u128) -> Result<Option<User>, StoreError> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        let users = txn.open_table(USERS).map_err(storage_error)?;
        users
            .get(id)
            .map_err(storage_error)?
            .map(|g| decode(g.value()))
            .transpose()
    }

    /// Runs a write transaction on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&redb::WriteTransaction) -> Result<T, UserStoreError> + Send + 'static,
    ) -> Result<T, UserStoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            // `Db::write` may run the work twice (after reopening); a refusal such as a taken
            // email aborts the transaction and is reported after.
            let mut refused = None;
            let out = db.write(|db| {
                let txn = db.begin_write().map_err(storage_error)?;
                match f(&txn) {
                    Ok(out) => {
                        txn.commit().map_err(storage_error)?;
                        Ok(Some(out))
                    }
                    Err(UserStoreError::Store(e)) => Err(e),
                    Err(other) => {
                        refused = Some(other);
                        Ok(None)
                    }
                }
            })?;
            out.ok_or_else(|| refused.unwrap_or(UserStoreError::Conflict))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("user write task failed: {e}")))?
    }
}

/// Writes the user record (not the email index).
fn put(txn: &redb::WriteTransaction, user: &User) -> Result<(), UserStoreError> {
    let mut users = txn.open_table(USERS).map_err(storage_error)?;
    users
        .insert(user.id.as_u128(), encode(user).as_slice())
        .map_err(storage_error)?;
    Ok(())
}

fn decode(bytes: &[u8]) -> Result<User, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("user record: {e}")))
}

fn encode(user: &User) -> Vec<u8> {
    // A struct of strings and numbers always serializes.
    serde_json::to_vec(user).unwrap_or_default()
}

#[async_trait]
impl UserStore for RedbUserStore {
    async fn create(&self, user: &User) -> Result<(), UserStoreError> {
        let user = user.clone();
        self.write(move |txn| {
            let mut emails = txn.open_table(EMAILS).map_err(storage_error)?;
            let email = normalize_email(&user.email);
            if emails.get(email.as_str()).map_err(storage_error)?.is_some() {
                return Err(UserStoreError::EmailTaken);
            }
            emails
                .insert(email.as_str(), user.id.as_u128())
                .map_err(storage_error)?;
            put(txn, &user)
        })
        .await
    }

    async fn by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let id = {
            let db = self.db.get()?;
            let txn = db.begin_read().map_err(storage_error)?;
            let emails = txn.open_table(EMAILS).map_err(storage_error)?;
            emails
                .get(normalize_email(email).as_str())
                .map_err(storage_error)?
                .map(|g| g.value())
        };
        match id {
            Some(id) => self.read_user(id),
            None => Ok(None),
        }
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.read_user(id.as_u128())
    }

    async fn update(&self, user: &User) -> Result<(), UserStoreError> {
        let next = User {
            version: user.version + 1,
            ..user.clone()
        };
        let expected = user.version;
        // Read, compare and write in one write transaction: redb runs one at a time.
        self.write(move |txn| {
            let stored = {
                let users = txn.open_table(USERS).map_err(storage_error)?;
                let stored = users.get(next.id.as_u128()).map_err(storage_error)?;
                stored.map(|g| decode(g.value())).transpose()?
            };
            match stored {
                Some(stored) if stored.version == expected => put(txn, &next),
                _ => Err(UserStoreError::Conflict),
            }
        })
        .await
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        let users = txn.open_table(USERS).map_err(storage_error)?;
        let mut out = Vec::new();
        for item in users.iter().map_err(storage_error)? {
            let (_, value) = item.map_err(storage_error)?;
            out.push(decode(value.value())?);
        }
        out.sort_by_key(|u| u.created_at);
        Ok(out)
    }
}
