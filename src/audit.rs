//! Audit events: changes to how an account signs in, who made them and when.
//!
//! Each event is one structured log line at target `audit` (`RUST_LOG=audit=info` selects
//! them; `log.format = "json"` makes them machine-readable). A running server also keeps the
//! most recent [`KEPT`] in the session store for the admin page ([`recent`]): a ring of slots
//! that a counter numbers (`audit:seq`, `audit:<n mod KEPT>`), so the kept events cost the
//! same whatever happens, and on Redis every node writes to and reads the same ring. Keeping
//! them happens off the request path (a bounded queue; when it is full an event is only
//! logged).

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{Op, SessionStore, keys};

/// Events kept for the admin page.
pub(crate) const KEPT: u64 = 200;

/// How long a kept event stays.
const KEEP_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// Events waiting to be kept.
const QUEUE: usize = 1024;

static SINK: OnceLock<tokio::sync::mpsc::Sender<Event>> = OnceLock::new();

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    TotpEnabled,
    TotpRemoved,
    PasskeyAdded,
    PasskeyRemoved,
    RecoveryCodesGenerated,
    /// Every second factor removed by an administrator (`gatehouse user reset-mfa`).
    FactorsReset,
    PasswordChanged,
    RoleChanged,
    UserDisabled,
    UserEnabled,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::TotpEnabled => "totp_enabled",
            Kind::TotpRemoved => "totp_removed",
            Kind::PasskeyAdded => "passkey_added",
            Kind::PasskeyRemoved => "passkey_removed",
            Kind::RecoveryCodesGenerated => "recovery_codes_generated",
            Kind::FactorsReset => "factors_reset",
            Kind::PasswordChanged => "password_changed",
            Kind::RoleChanged => "role_changed",
            Kind::UserDisabled => "user_disabled",
            Kind::UserEnabled => "user_enabled",
        }
    }
}

/// Who made the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Actor {
    /// The account's owner, signed in.
    User,
    /// An administrator (the CLI or its admin socket).
    Admin,
}

/// One audit event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) kind: Kind,
    pub(crate) user_id: Uuid,
    pub(crate) by: Actor,
    /// Unix seconds.
    pub(crate) at: u64,
    /// What the event names beyond the user, e.g. a passkey's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

/// A kept event and its number (newest first by number).
#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    n: u64,
    event: Event,
}

impl Event {
    pub(crate) fn new(kind: Kind, user_id: Uuid, by: Actor) -> Event {
        Event {
            kind,
            user_id,
            by,
            at: crate::clock::now_secs(),
            detail: None,
        }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = Some(detail.into());
        self
    }
}

/// Records an event.
pub(crate) fn record(event: Event) {
    let by = match event.by {
        Actor::User => "user",
        Actor::Admin => "admin",
    };
    tracing::info!(
        target: "audit",
        event = event.kind.as_str(),
        user_id = %event.user_id,
        by,
        at = event.at,
        detail = event.detail.as_deref().unwrap_or(""),
    );
    if let Some(sink) = SINK.get() {
        let _ = sink.try_send(event);
    }
}

/// Starts keeping events in `store` (once per process: `gatehouse serve`).
pub(crate) fn start(store: Arc<dyn SessionStore>) -> Option<tokio::task::JoinHandle<()>> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Event>(QUEUE);
    SINK.set(sender).ok()?;
    Some(tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            if let Err(e) = keep(store.as_ref(), event).await {
                tracing::warn!(error = %e, "an audit event was logged but not kept for the admin page");
            }
        }
    }))
}

async fn keep(store: &dyn SessionStore, event: Event) -> Result<(), crate::store::StoreError> {
    let n = store.incr_by(keys::AUDIT_SEQ, 1, KEEP_FOR).await?;
    let kept = Kept { n, event };
    let value = serde_json::to_vec(&kept).unwrap_or_default();
    store
        .apply(vec![Op::set(keys::audit_slot(n % KEPT), value, KEEP_FOR)])
        .await
}

/// The most recent kept events, newest first, at most `limit`: one read of every slot.
pub(crate) async fn recent(
    store: &dyn SessionStore,
    limit: usize,
) -> Result<Vec<Event>, crate::store::StoreError> {
    let slots: Vec<String> = (0..KEPT).map(keys::audit_slot).collect();
    let mut kept: Vec<Kept> = store
        .get_many(&slots)
        .await?
        .into_iter()
        .flatten()
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    kept.sort_by_key(|k| std::cmp::Reverse(k.n));
    Ok(kept.into_iter().take(limit).map(|k| k.event).collect())
}
