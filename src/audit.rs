//! Audit events: changes to how an account signs in, who made them and when.
//!
//! Today each event is one structured log line at target `audit` (`RUST_LOG=audit=info`
//! selects them; `log.format = "json"` makes them machine-readable). An event is a value
//! ([`Event`]) before it is a line, so a later version can also keep the recent ones in the
//! store for an admin page without touching the places that record them.

use serde::Serialize;
use uuid::Uuid;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    TotpEnabled,
    TotpRemoved,
    PasskeyAdded,
    PasskeyRemoved,
    RecoveryCodesGenerated,
    /// Every second factor removed by an administrator (`gatehouse user reset-mfa`).
    FactorsReset,
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
        }
    }
}

/// Who made the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Actor {
    /// The account's owner, signed in.
    User,
    /// An administrator (the CLI or its admin socket).
    Admin,
}

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    pub(crate) kind: Kind,
    pub(crate) user_id: Uuid,
    pub(crate) by: Actor,
    /// Unix seconds.
    pub(crate) at: u64,
    /// What the event names beyond the user, e.g. a passkey's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
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
}
