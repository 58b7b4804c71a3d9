//! The operations of gatehouse, one method each, shared by the HTTP handlers and the CLI,
//! split by concept: `login` (checking passwords and client secrets under regulation),
//! `sessions` (token checks, session start and end), `rotation` (refresh), `accounts`
//! (registration, password change, versioned user writes), `groups` (groups and the
//! fresh view of a user that decisions read), `grants` (the OpenID Connect flows),
//! `factors` (second factors: enrolment, the second step of a login, passkeys, step-up),
//! `mail` (the emailed links: reset, verification, email change, invitations; notices),
//! `admin` (the CLI's commands and the admin pages') and `stats` (logins per hour for the
//! admin overview).
//!
//! Session rules (ADR-004 and the API contract):
//! - A login creates a session (`session:<sid>`), its refresh token and an access token that
//!   names the session (`sid`). A token check is a signature check plus one store read of the
//!   session, so deleting the session revokes all of its tokens on the very next request.
//! - A refresh reads the session record once and swaps it (compare-and-set) for one that
//!   names the successor: the record is the session's whole state and stays the same size
//!   however often it rotates (GD-0006). Presenting any earlier token revokes the session
//!   (reuse detection), except the token rotated last within the grace window, which answers
//!   with the same successor.
//! - Logout deletes the session; logout-all and a password change delete every session of
//!   the user.
//! - Credential changes are atomic with respect to sessions (GD-0006): a change bumps the
//!   user's `credential_version` in a compare-and-set write and only then ends the sessions;
//!   a session records the version it began under, a login re-reads it after writing its
//!   session, and a refresh compares it. A login that checked the old password therefore
//!   never leaves a live session behind a change that has returned.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::factors::FactorRules;
use super::passwords::{HashError, Hasher};
use super::regulation::Regulation;
use super::tokens::{Signer, TokenError};
use crate::config::{Config, Passwords, Registration};
use crate::domain::session::SessionRecord;
use crate::mail::Mailer;
use crate::store::{SessionStore, StoreError, UserStore, UserStoreError};

mod accounts;
mod admin;
pub(crate) mod factors;
pub(crate) mod grants;
mod groups;
mod login;
mod mail;
mod rotation;
mod sessions;
pub(crate) mod stats;

pub(crate) use mail::MailRequest;

/// Attempts at a compare-and-set write before giving up with 503 (each retry follows a
/// concurrent write that succeeded, so running out takes a storm of writes to one record).
pub(super) const MAX_WRITE_ATTEMPTS: usize = 8;

/// Jobs that may wait per hashing thread before callers are shed with 503.
pub(crate) const HASH_QUEUE_PER_THREAD: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    InvalidEmail(String),
    #[error("{0}")]
    WeakPassword(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("registration is closed")]
    RegistrationClosed,
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("{}", .0.message())]
    InvalidToken(TokenError),
    #[error("the session has ended")]
    SessionEnded,
    #[error("the refresh token is invalid, expired or already used")]
    InvalidRefreshToken,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the client credentials are wrong")]
    WrongClientSecret,
    #[error("no such session")]
    SessionNotFound,
    #[error("no user with the email {0}")]
    UserNotFound(String),
    #[error("{0}")]
    InvalidGroup(String),
    #[error("no group named {0}")]
    GroupNotFound(String),
    #[error("too many password hashes are waiting")]
    Busy,
    #[error("too many failed logins; retry in {retry_after} s")]
    Regulated { retry_after: u64 },
    #[error("the mfa_token is invalid, expired or already used; sign in again")]
    InvalidMfaToken,
    #[error("{0}")]
    InvalidSecondFactor(&'static str),
    #[error("the code is wrong or expired; type the current code of your authenticator app")]
    WrongCode,
    #[error("no TOTP set-up is pending; POST /auth/mfa/totp first")]
    NoPendingEnrolment,
    #[error("the account has no second factor; set one up first")]
    NoSecondFactor,
    #[error("no such second factor")]
    FactorNotFound,
    #[error("passkeys need public_url to be set (it is the WebAuthn origin)")]
    PasskeysUnavailable,
    #[error("{0}")]
    PasskeyRefused(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error(
        "the email address is not confirmed yet: use the link that was mailed to it, or ask for a new one"
    )]
    EmailNotVerified,
    #[error("gatehouse sends no mail: smtp.host is not set")]
    MailOff,
    #[error("the link is invalid, expired or already used")]
    InvalidLink,
    #[error("public_url is not set: the links must point at gatehouse's external address")]
    NoPublicUrl,
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<HashError> for AuthError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => AuthError::Busy,
            HashError::Failed(e) => AuthError::Internal(e),
            HashError::Rejected(why) => AuthError::WeakPassword(why),
        }
    }
}

impl From<UserStoreError> for AuthError {
    fn from(err: UserStoreError) -> Self {
        match err {
            UserStoreError::EmailTaken => AuthError::EmailTaken,
            UserStoreError::Conflict => AuthError::Store(StoreError::Unavailable(
                "the account is being changed by many writers at once; retry".into(),
            )),
            UserStoreError::Store(e) => AuthError::Store(e),
        }
    }
}

/// Who is calling, as recorded with a new session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A token pair as handed to the client.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub refresh_expires_in: u64,
}

/// One of the caller's sessions, for `GET /auth/sessions`.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub record: SessionRecord,
}

pub struct Service {
    users: Arc<dyn UserStore>,
    store: Arc<dyn SessionStore>,
    hasher: Hasher,
    signer: Signer,
    regulation: Regulation,
    passwords: Passwords,
    registration: Registration,
    issuer: Option<String>,
    audience: Option<String>,
    access_ttl: u64,
    refresh_ttl: u64,
    grace: u64,
    leeway: u64,
    max_sessions_per_user: usize,
    /// The OpenID Connect provider, when clients are configured.
    provider: Option<super::oidc::Provider>,
    /// Users as read at most `groups::PROFILE_FRESHNESS` ago, for decisions on groups.
    profiles: groups::Profiles,
    /// Unix second of the last clock-skew warning, so a skewed peer cannot flood the log.
    last_clock_warning: AtomicU64,
    /// Second factors: the sealing key, the WebAuthn relying party, `mfa.required`.
    factors: FactorRules,
    /// Sends mail; `None` without `smtp.host`.
    mailer: Option<Arc<Mailer>>,
    /// Where links point.
    public_url: Option<url::Url>,
    /// `email.resend_interval`, seconds.
    resend_interval: u64,
    /// Forgot and resend requests, answered by [`Service::run_mail_requests`] off the
    /// request path (see `mail`).
    mail_requests: tokio::sync::mpsc::Sender<MailRequest>,
    mail_inbox: Mutex<Option<tokio::sync::mpsc::Receiver<MailRequest>>>,
}

impl Service {
    pub fn new(
        config: &Config,
        users: Arc<dyn UserStore>,
        store: Arc<dyn SessionStore>,
        hasher: Hasher,
        signer: Signer,
        provider: Option<super::oidc::Provider>,
        factors: FactorRules,
    ) -> Self {
        // Every outcome exists from the first scrape, so `rate()` alerts work before it happens.
        for result in ["ok", "failed", "regulated"] {
            metrics::counter!("gatehouse_logins_total", "result" => result).absolute(0);
        }
        crate::mail::register_metrics();
        let (mail_requests, mail_inbox) = tokio::sync::mpsc::channel(mail::MAIL_REQUEST_QUEUE);
        Service {
            users,
            regulation: Regulation::new(
                &config.regulation,
                config.argon2.max_concurrent,
                config.argon2.max_concurrent * HASH_QUEUE_PER_THREAD,
                store.clone(),
            ),
            store,
            hasher,
            signer,
            passwords: config.passwords.clone(),
            registration: config.registration,
            issuer: config.tokens.issuer.clone(),
            audience: config.tokens.audience.clone(),
            access_ttl: config.tokens.access_ttl,
            refresh_ttl: config.tokens.refresh_ttl,
            grace: config.tokens.refresh_reuse_grace,
            leeway: config.tokens.leeway,
            max_sessions_per_user: config.sessions.max_per_user,
            provider,
            profiles: groups::profile_cache(),
            last_clock_warning: AtomicU64::new(0),
            factors,
            mailer: None,
            public_url: config.public_url.clone(),
            resend_interval: config.email.resend_interval,
            mail_requests,
            mail_inbox: Mutex::new(Some(mail_inbox)),
        }
    }

    /// Mail goes out through `mailer` (set up when `smtp.host` is set).
    pub(crate) fn with_mailer(self, mailer: Arc<Mailer>) -> Self {
        Service {
            mailer: Some(mailer),
            ..self
        }
    }

    pub fn store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    /// The session store, for a task that outlives a request (the audit ring).
    pub(crate) fn shared_store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }

    /// The public keys that verify access tokens and id_tokens, as JWKs (no access-token
    /// keys under HS256, whose keys are secrets).
    pub fn jwks(&self) -> Vec<serde_json::Value> {
        let mut keys = self.signer.public_jwks();
        if let Some(provider) = &self.provider {
            for jwk in provider.jwks() {
                if !keys.iter().any(|k| k["kid"] == jwk["kid"]) {
                    keys.push(jwk);
                }
            }
        }
        keys
    }

    /// The OpenID Connect provider, when one is configured.
    pub fn provider(&self) -> Option<&super::oidc::Provider> {
        self.provider.as_ref()
    }
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
