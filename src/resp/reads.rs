//! The key commands, answered from the session store: `GET`, `EXISTS`, `TTL`, `PTTL`,
//! `TYPE`, `SMEMBERS`, `SISMEMBER`, `SCARD`.
//!
//! Keys are the session-store layout behind `redis.prefix`, and only the keys other services
//! may read (`store::keys::readable_by_services`); anything else reads as a key that does not
//! exist. Answers come from whichever `SessionStore` runs, so they are what the Redis backend
//! holds (or would hold) at that moment; the layout says which keys are values and which are
//! sets, so a command never asks the store for the wrong kind, and answers `-WRONGTYPE` across
//! kinds as Redis does.

use bytes::Bytes;

use super::client::Shared;
use super::frame::Reply;
use crate::store::{KeyKind, StoreError};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Whether a readable key lives now, asking the store the cheapest way for its kind.
async fn lives(shared: &Shared, key: &str, kind: KeyKind) -> Result<bool, StoreError> {
    match kind {
        // The token check's own read: served from the embedded store's cache.
        KeyKind::String => Ok(shared.store().get(key).await?.is_some()),
        KeyKind::Set => Ok(shared.store().inspect(key).await?.is_some()),
    }
}

pub(crate) async fn get(shared: &Shared, raw: &[u8]) -> Result<Reply, StoreError> {
    match shared.key(raw) {
        None => Ok(Reply::Null),
        Some((key, KeyKind::String)) => Ok(shared
            .store()
            .get(key)
            .await?
            .map_or(Reply::Null, Reply::Bulk)),
        Some((key, KeyKind::Set)) => Ok(if lives(shared, key, KeyKind::Set).await? {
            Reply::error(WRONGTYPE)
        } else {
            Reply::Null
        }),
    }
}

/// Counts the keys that exist, a key named twice twice (as Redis does). The session keys
/// are read in one `get_many` (one `MGET` on Redis), however many are named.
pub(crate) async fn exists(shared: &Shared, raw_keys: &[Bytes]) -> Result<Reply, StoreError> {
    let mut values = Vec::new();
    let mut count = 0;
    for raw in raw_keys {
        match shared.key(raw) {
            Some((key, KeyKind::String)) => values.push(key.to_owned()),
            Some((key, KeyKind::Set)) => {
                count += i64::from(lives(shared, key, KeyKind::Set).await?)
            }
            None => {}
        }
    }
    if let [key] = values.as_slice() {
        // The common case, one session: the token check's own cached read.
        count += i64::from(lives(shared, key, KeyKind::String).await?);
    } else if !values.is_empty() {
        let found = shared.store().get_many(&values).await?;
        count += found.iter().filter(|v| v.is_some()).count() as i64;
    }
    Ok(Reply::Integer(count))
}

/// `TTL` (seconds, rounded as Redis rounds) or `PTTL`: -2 for a key that does not exist,
/// -1 for one that never expires.
pub(crate) async fn ttl(shared: &Shared, raw: &[u8], millis: bool) -> Result<Reply, StoreError> {
    let Some((key, _)) = shared.key(raw) else {
        return Ok(Reply::Integer(-2));
    };
    Ok(Reply::Integer(match shared.store().inspect(key).await? {
        None => -2,
        Some(info) => match info.ttl {
            None => -1,
            Some(left) => {
                let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
                if millis {
                    ms
                } else {
                    ms.saturating_add(500) / 1000
                }
            }
        },
    }))
}

pub(crate) async fn kind(shared: &Shared, raw: &[u8]) -> Result<Reply, StoreError> {
    let Some((key, _)) = shared.key(raw) else {
        return Ok(Reply::simple("none"));
    };
    Ok(match shared.store().inspect(key).await? {
        None => Reply::simple("none"),
        Some(info) => match info.kind {
            KeyKind::String => Reply::simple("string"),
            KeyKind::Set => Reply::simple("set"),
        },
    })
}

pub(crate) enum SetRead<'a> {
    Members,
    IsMember(&'a [u8]),
    Count,
}

/// `SMEMBERS`, `SISMEMBER`, `SCARD`: a missing key is an empty set; a value is the wrong type.
pub(crate) async fn set_read(
    shared: &Shared,
    raw: &[u8],
    read: SetRead<'_>,
) -> Result<Reply, StoreError> {
    let members = match shared.key(raw) {
        None => Vec::new(),
        Some((key, KeyKind::Set)) => shared.store().set_members(key).await?,
        Some((key, KeyKind::String)) => {
            if lives(shared, key, KeyKind::String).await? {
                return Ok(Reply::error(WRONGTYPE));
            }
            Vec::new()
        }
    };
    Ok(match read {
        SetRead::Members => Reply::Set(members.into_iter().map(Reply::bulk).collect()),
        SetRead::IsMember(m) => {
            Reply::Integer(i64::from(members.iter().any(|s| s.as_bytes() == m)))
        }
        SetRead::Count => Reply::Integer(members.len() as i64),
    })
}
