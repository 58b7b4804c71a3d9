//! Counts store failures by backend and operation (`gatehouse_store_errors_total`), around
//! whichever backends run, so that an alert can say which store and which operation fail.
//! Every series is registered at zero when the store is wrapped, so `rate()` works before
//! the first failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::{KeyInfo, Op, SessionStore, StoreError, Swap, UserStore, UserStoreError};
use crate::domain::User;

const METRIC: &str = "gatehouse_store_errors_total";

/// The session store's operations, as the `op` label names them.
pub(crate) const SESSION_OPS: &[&str] = &[
    "get",
    "apply",
    "swap",
    "incr",
    "get_many",
    "live_sessions",
    "set_members",
    "set_len",
    "inspect",
    "ping",
    "close",
];

/// The user store's operations, as the `op` label names them.
pub(crate) const USER_OPS: &[&str] = &[
    "create",
    "by_email",
    "by_id",
    "update",
    "change_email",
    "list",
];

fn register(store: &'static str, backend: &'static str, ops: &[&'static str]) {
    for op in ops {
        metrics::counter!(METRIC, "store" => store, "backend" => backend, "op" => *op).absolute(0);
    }
}

fn count<T, E>(
    result: Result<T, E>,
    store: &'static str,
    backend: &'static str,
    op: &'static str,
    is_failure: impl Fn(&E) -> bool,
) -> Result<T, E> {
    if let Err(e) = &result {
        if is_failure(e) {
            metrics::counter!(METRIC, "store" => store, "backend" => backend, "op" => op)
                .increment(1);
        }
    }
    result
}

pub(crate) struct MeteredSessions {
    inner: Arc<dyn SessionStore>,
    backend: &'static str,
}

impl MeteredSessions {
    pub(crate) fn wrap(inner: Arc<dyn SessionStore>, backend: &'static str) -> Arc<Self> {
        register("sessions", backend, SESSION_OPS);
        Arc::new(MeteredSessions { inner, backend })
    }

    fn count<T>(&self, op: &'static str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        count(r, "sessions", self.backend, op, |_| true)
    }
}

#[async_trait]
impl SessionStore for MeteredSessions {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.count("get", self.inner.get(key).await)
    }
    async fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.count("apply", self.inner.apply(ops).await)
    }
    async fn swap_then_apply(&self, swap: Swap, ops: Vec<Op>) -> Result<bool, StoreError> {
        self.count("swap", self.inner.swap_then_apply(swap, ops).await)
    }
    async fn incr_by(&self, key: &str, delta: i64, ttl: Duration) -> Result<u64, StoreError> {
        self.count("incr", self.inner.incr_by(key, delta, ttl).await)
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        self.count("get_many", self.inner.get_many(keys).await)
    }
    async fn live_sessions(&self) -> Result<u64, StoreError> {
        self.count("live_sessions", self.inner.live_sessions().await)
    }
    async fn set_members(&self, set: &str) -> Result<Vec<String>, StoreError> {
        self.count("set_members", self.inner.set_members(set).await)
    }
    async fn set_len(&self, set: &str) -> Result<u64, StoreError> {
        self.count("set_len", self.inner.set_len(set).await)
    }
    async fn inspect(&self, key: &str) -> Result<Option<KeyInfo>, StoreError> {
        self.count("inspect", self.inner.inspect(key).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.count("ping", self.inner.ping().await)
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.count("close", self.inner.close().await)
    }
}

pub(crate) struct MeteredUsers {
    inner: Arc<dyn UserStore>,
    backend: &'static str,
}

impl MeteredUsers {
    pub(crate) fn wrap(inner: Arc<dyn UserStore>, backend: &'static str) -> Arc<Self> {
        register("users", backend, USER_OPS);
        Arc::new(MeteredUsers { inner, backend })
    }

    fn count<T, E>(
        &self,
        op: &'static str,
        r: Result<T, E>,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        count(r, "users", self.backend, op, is_failure)
    }
}

/// A refusal (taken email, lost compare-and-set) is an answer, not a failure of the store.
fn user_store_failed(e: &UserStoreError) -> bool {
    matches!(e, UserStoreError::Store(_))
}

#[async_trait]
impl UserStore for MeteredUsers {
    async fn create(&self, user: &User) -> Result<(), UserStoreError> {
        self.count("create", self.inner.create(user).await, user_store_failed)
    }
    async fn by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.count("by_email", self.inner.by_email(email).await, |_| true)
    }
    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.count("by_id", self.inner.by_id(id).await, |_| true)
    }
    async fn update(&self, user: &User) -> Result<(), UserStoreError> {
        self.count("update", self.inner.update(user).await, user_store_failed)
    }
    async fn change_email(&self, user: &User, new_email: &str) -> Result<(), UserStoreError> {
        let result = self.inner.change_email(user, new_email).await;
        self.count("change_email", result, user_store_failed)
    }
    async fn list(&self) -> Result<Vec<User>, StoreError> {
        self.count("list", self.inner.list().await, |_| true)
    }
    async fn groups(&self) -> Result<Vec<String>, StoreError> {
        self.count("groups", self.inner.groups().await, |_| true)
    }
    async fn add_group(&self, name: &str) -> Result<bool, StoreError> {
        self.count("add_group", self.inner.add_group(name).await, |_| true)
    }
    async fn remove_group(&self, name: &str) -> Result<bool, StoreError> {
        self.count("remove_group", self.inner.remove_group(name).await, |_| {
            true
        })
    }
}
