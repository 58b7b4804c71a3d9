//! The `redb` user store: accounts in the shared redb file.
//!
//! Writes run on tokio's blocking pool because a redb commit waits for an fsync; reads are
//! a few microseconds and run inline.

use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use uuid::Uuid;

use super::database::{Db, storage_error};
use super::{StoreError, UserStore, UserStoreError};
use crate::domain::{User, normalize_email};

/// user id → JSON [`User`]
pub(crate) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// normalized email → user id
pub(crate) const EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");
/// group name → Unix second it was made
pub(crate) const GROUPS: TableDefinition<&str, u64> = TableDefinition::new("groups");
/// Small facts about the tables above.
const META: TableDefinition<&str, u64> = TableDefinition::new("user_meta");
/// Which [`normalize_email`] the keys of [`EMAILS`] follow: absent for trimmed lower case,
/// 2 for NFKC and full case folding.
const EMAIL_KEYS: &str = "email_keys";
const EMAIL_KEYS_VERSION: u64 = 2;

pub struct RedbUserStore {
    db: Arc<Db>,
}

impl RedbUserStore {
    pub fn open(db: Arc<Db>) -> Result<Self, StoreError> {
        db.write(|db| {
            let txn = db.begin_write().map_err(storage_error)?;
            txn.open_table(USERS).map_err(storage_error)?;
            txn.open_table(EMAILS).map_err(storage_error)?;
            txn.open_table(GROUPS).map_err(storage_error)?;
            reindex_emails(&txn)?;
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

/// The email key of releases before NFKC and full case folding.
pub(crate) fn legacy_email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Makes the email index follow [`normalize_email`], once. Keys made before NFKC and full
/// case folding differ only for some non-ASCII emails (`Straße@x.org`, an NFD form): those
/// accounts get the new key and lose the old one. Of two accounts that now share a key (one
/// address registered once composed and once decomposed), the one already holding it, else
/// the older, keeps it; the other is named in a warning: it can no longer sign in by email.
fn reindex_emails(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(storage_error)?;
    let version = meta
        .get(EMAIL_KEYS)
        .map_err(storage_error)?
        .map(|v| v.value());
    if version >= Some(EMAIL_KEYS_VERSION) {
        return Ok(());
    }
    let mut users = Vec::new();
    for item in txn
        .open_table(USERS)
        .map_err(storage_error)?
        .iter()
        .map_err(storage_error)?
    {
        let (_, value) = item.map_err(storage_error)?;
        match decode(value.value()) {
            Ok(user) if !user.email.is_ascii() => users.push(user),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "skipped an unreadable user record while re-indexing emails")
            }
        }
    }
    users.sort_by_key(|u| u.created_at);
    let mut emails = txn.open_table(EMAILS).map_err(storage_error)?;
    for user in users {
        let (old, new) = (legacy_email_key(&user.email), normalize_email(&user.email));
        let id = user.id.as_u128();
        let holder = emails
            .get(new.as_str())
            .map_err(storage_error)?
            .map(|g| g.value());
        match holder {
            None => {
                emails.insert(new.as_str(), id).map_err(storage_error)?;
            }
            Some(holder) if holder == id => {}
            Some(holder) => {
                tracing::warn!(user_id = %user.id, holder = %Uuid::from_u128(holder),
                    "two accounts have one email once normalised (NFKC, case folding); the older keeps it, this one can no longer sign in by email");
                continue;
            }
        }
        let stale = emails
            .get(old.as_str())
            .map_err(storage_error)?
            .map(|g| g.value());
        if old != new && stale == Some(id) {
            emails.remove(old.as_str()).map_err(storage_error)?;
        }
    }
    meta.insert(EMAIL_KEYS, EMAIL_KEYS_VERSION)
        .map_err(storage_error)?;
    Ok(())
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

    async fn change_email(&self, user: &User, new_email: &str) -> Result<(), UserStoreError> {
        let next = User {
            version: user.version + 1,
            email: new_email.to_owned(),
            ..user.clone()
        };
        let expected = user.version;
        self.write(move |txn| {
            let stored = {
                let users = txn.open_table(USERS).map_err(storage_error)?;
                let stored = users.get(next.id.as_u128()).map_err(storage_error)?;
                stored.map(|g| decode(g.value())).transpose()?
            };
            let Some(stored) = stored.filter(|s| s.version == expected) else {
                return Err(UserStoreError::Conflict);
            };
            let id = next.id.as_u128();
            let (old, new) = (normalize_email(&stored.email), normalize_email(&next.email));
            let mut emails = txn.open_table(EMAILS).map_err(storage_error)?;
            let holder = emails
                .get(new.as_str())
                .map_err(storage_error)?
                .map(|g| g.value());
            match holder {
                Some(holder) if holder != id => return Err(UserStoreError::EmailTaken),
                Some(_) => {}
                None => {
                    emails.insert(new.as_str(), id).map_err(storage_error)?;
                }
            }
            let old_holder = emails
                .get(old.as_str())
                .map_err(storage_error)?
                .map(|g| g.value());
            if old != new && old_holder == Some(id) {
                emails.remove(old.as_str()).map_err(storage_error)?;
            }
            drop(emails);
            put(txn, &next)
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

    async fn groups(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(storage_error)?;
        let groups = txn.open_table(GROUPS).map_err(storage_error)?;
        let mut out = Vec::new();
        for item in groups.iter().map_err(storage_error)? {
            let (name, _) = item.map_err(storage_error)?;
            out.push(name.value().to_owned());
        }
        Ok(out)
    }

    async fn add_group(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        let now = crate::clock::now_secs();
        self.write(move |txn| {
            let mut groups = txn.open_table(GROUPS).map_err(storage_error)?;
            if groups.get(name.as_str()).map_err(storage_error)?.is_some() {
                return Ok(false);
            }
            groups.insert(name.as_str(), now).map_err(storage_error)?;
            Ok(true)
        })
        .await
        .map_err(flatten)
    }

    async fn remove_group(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |txn| {
            let mut groups = txn.open_table(GROUPS).map_err(storage_error)?;
            let removed = groups
                .remove(name.as_str())
                .map_err(storage_error)?
                .is_some();
            Ok(removed)
        })
        .await
        .map_err(flatten)
    }
}

/// The group writes refuse nothing: only the store itself can fail them.
fn flatten(e: UserStoreError) -> StoreError {
    match e {
        UserStoreError::Store(e) => e,
        other => StoreError::Unavailable(other.to_string()),
    }
}
