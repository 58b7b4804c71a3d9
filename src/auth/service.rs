//! The operations of gatehouse, one method each, shared by the HTTP handlers and the CLI.
//!
//! Session rules (ADR-004 and the API contract):
//! - A login creates a session (`session:<sid>`), its refresh token and an access token that
//!   names the session (`sid`). A token check is a signature check plus one store read of the
//!   session, so deleting the session revokes all of its tokens on the very next request.
//! - A refresh reads the session record once and swaps it (compare-and-set) for one that
//!   names the successor: the record is the session's whole state and stays the same size
//!   however often it rotates (ADR-0006). Presenting any earlier token revokes the session
//!   (reuse detection), except the token rotated last within the grace window, which answers
//!   with the same successor.
//! - Logout deletes the session; logout-all and a password change delete every session of
//!   the user.
//! - Credential changes are atomic with respect to sessions (ADR-0006): a change bumps the
//!   user's `credential_version` in a compare-and-set write and only then ends the sessions;
//!   a session records the version it began under, a login re-reads it after writing its
//!   session, and a refresh compares it. A login that checked the old password therefore
//!   never leaves a live session behind a change that has returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use uuid::Uuid;

use super::passwords::{HashError, Hasher};
use super::policy;
use super::regulation::{self, Ban, Refusal, Regulation, Reservation};
use super::sessions::{self, Presented, Rotation, SessionRecord, encode};
use super::tokens::{AccessClaims, Signer, TokenError};
use crate::clock::now_secs;
use crate::config::{Config, Passwords, Registration};
use crate::store::{
    Op, Role, SessionStore, StoreError, Swap, User, UserStore, UserStoreError, keys,
    normalize_email,
};

/// Attempts at a compare-and-set write before giving up with 503 (each retry follows a
/// concurrent write that succeeded, so running out takes a storm of writes to one record).
const MAX_WRITE_ATTEMPTS: usize = 8;

/// Jobs that may wait per hashing thread before callers are shed with 503.
pub const HASH_QUEUE_PER_THREAD: usize = 16;

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
    #[error("too many password hashes are waiting")]
    Busy,
    #[error("too many failed logins; retry in {retry_after} s")]
    Regulated { retry_after: u64 },
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
    /// Unix second of the last clock-skew warning, so a skewed peer cannot flood the log.
    last_clock_warning: AtomicU64,
}

impl Service {
    pub fn new(
        config: &Config,
        users: Arc<dyn UserStore>,
        store: Arc<dyn SessionStore>,
        hasher: Hasher,
        signer: Signer,
    ) -> Self {
        Service {
            users,
            regulation: Regulation::new(
                &config.regulation,
                config.argon2_max_concurrent(),
                config.argon2_max_concurrent() * HASH_QUEUE_PER_THREAD,
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
            max_sessions_per_user: usize::try_from(config.sessions.max_per_user)
                .unwrap_or(usize::MAX)
                .max(1),
            last_clock_warning: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    /// The public keys that verify access tokens, as JWKs (empty under HS256).
    pub fn jwks(&self) -> Vec<serde_json::Value> {
        self.signer.public_jwks()
    }

    /// `POST /auth/register`: a new account with the `user` role.
    pub async fn register(&self, email: &str, password: &str) -> Result<User, AuthError> {
        if self.registration == Registration::Closed {
            return Err(AuthError::RegistrationClosed);
        }
        self.create_user(email, password, Role::User).await
    }

    /// Creates an account regardless of the registration setting (the admin CLI).
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AuthError> {
        policy::check_email(email).map_err(AuthError::InvalidEmail)?;
        // Hash before the uniqueness check, so a taken email costs the same time.
        let password_hash = self.hash_new(password, email).await?;
        let user = User {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            password_hash,
            role,
            created_at: now_secs(),
            disabled: false,
            version: 0,
            credential_version: 0,
        };
        self.users.create(&user).await?;
        tracing::info!(event = "user_created", user_id = %user.id, role = role.as_str());
        Ok(user)
    }

    /// `POST /auth/login`. Unknown emails, wrong passwords and disabled accounts all answer
    /// [`AuthError::InvalidCredentials`] after the same argon2 work; a banned account or
    /// address answers [`AuthError::Regulated`] before any.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(User, Issued), AuthError> {
        let ip = client.ip.as_deref();
        let attempt = self
            .reserve(regulation::subjects(Some(email), ip), "login")
            .await?;
        // No stored password is over the limit; refusing before hashing bounds the work.
        let found = if password.len() > policy::MAX_PASSWORD_BYTES {
            None
        } else {
            let user = self.users.by_email(email).await?;
            let check = match self
                .hasher
                .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
                .await
            {
                Ok(check) => check,
                Err(e) => {
                    // Nothing was checked: the attempt does not count.
                    self.regulation.withdraw(attempt).await?;
                    return Err(e.into());
                }
            };
            user.filter(|u| check.matches && !u.disabled)
                .map(|u| (u, check.needs_rehash))
        };
        let Some((user, needs_rehash)) = found else {
            tracing::info!(event = "login_failed", ip = ip.unwrap_or("-"));
            metrics::counter!("gatehouse_logins_total", "result" => "failed").increment(1);
            self.regulation.failed(attempt).await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.regulation.succeeded(attempt).await?;
        if needs_rehash {
            self.upgrade_hash(&user, password).await;
        }
        // A change that raced this login (its password checked against the old hash)
        // makes `start_session` fail: the credentials are no longer right.
        let issued = match self.start_session(&user, client).await {
            Err(AuthError::SessionEnded) => return Err(AuthError::InvalidCredentials),
            other => other?,
        };
        tracing::info!(event = "login_ok", user_id = %user.id, ip = client.ip.as_deref().unwrap_or("-"));
        metrics::counter!("gatehouse_logins_total", "result" => "ok").increment(1);
        Ok((user, issued))
    }

    /// Counts an attempt at a secret under `subjects` before it is checked; a banned
    /// subject, or one this attempt would take past the limit, answers
    /// [`AuthError::Regulated`] without any check.
    async fn reserve(&self, subjects: Vec<String>, what: &str) -> Result<Reservation, AuthError> {
        match self.regulation.reserve(subjects).await? {
            Ok(attempt) => Ok(attempt),
            Err(Refusal::Busy) => {
                tracing::info!(event = "attempts_shed", what);
                Err(AuthError::Busy)
            }
            Err(Refusal::Banned(retry_after)) => {
                if what == "login" {
                    tracing::info!(event = "login_regulated", retry_after);
                    metrics::counter!("gatehouse_logins_total", "result" => "regulated")
                        .increment(1);
                } else {
                    tracing::info!(event = "attempt_regulated", what, retry_after);
                }
                Err(AuthError::Regulated { retry_after })
            }
        }
    }

    /// Checks a client secret (introspection today; OIDC clients next) under regulation of
    /// the client address: `matches` runs only when the address may try.
    pub async fn check_client_secret(
        &self,
        ip: Option<&str>,
        matches: impl FnOnce() -> bool,
    ) -> Result<(), AuthError> {
        let attempt = self
            .reserve(regulation::subjects(None, ip), "client_secret")
            .await?;
        if matches() {
            self.regulation.succeeded(attempt).await?;
            Ok(())
        } else {
            self.regulation.failed(attempt).await?;
            Err(AuthError::WrongClientSecret)
        }
    }

    /// Stores a stronger hash of a password that just verified, unless the password
    /// changed meanwhile. Best effort: the login succeeds either way.
    async fn upgrade_hash(&self, user: &User, password: &str) {
        let hash = match self.hasher.hash(password).await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::warn!(error = %e, "could not upgrade a password hash");
                return;
            }
        };
        let old = user.password_hash.clone();
        let result = self
            .modify_user(user.id, |u| {
                if u.password_hash == old {
                    u.password_hash = hash.clone();
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, user_id = %user.id, "could not store the upgraded password hash");
        }
    }

    /// Verifies an access token and checks that its session lives: the token-check hot path.
    pub async fn authenticate(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let claims = self.signer.verify(token).map_err(AuthError::InvalidToken)?;
        self.check_clock(claims.iat);
        let Some(bytes) = self.store.get(&keys::session(&claims.sid)).await? else {
            return Err(AuthError::SessionEnded);
        };
        let record: SessionRecord = decode(&bytes)?;
        if record.uid != claims.sub {
            return Err(AuthError::InvalidToken(TokenError::Malformed));
        }
        Ok(claims)
    }

    /// A token issued in our future means a clock is off (ours, or the issuing node's): say
    /// so, at most once a minute. The token is still judged by `exp`/`nbf` with the leeway.
    fn check_clock(&self, iat: u64) {
        let now = now_secs();
        if iat > now + self.leeway {
            let last = self.last_clock_warning.load(Ordering::Relaxed);
            if now >= last + 60
                && self
                    .last_clock_warning
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    ahead_seconds = iat - now,
                    "a token was issued in the future: this host's clock is behind, or the issuing node's is ahead; check NTP"
                );
            }
        }
    }

    /// `GET /auth/me`: the account behind a verified token.
    pub async fn user(&self, claims: &AccessClaims) -> Result<User, AuthError> {
        match self.users.by_id(claims.sub).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(AuthError::SessionEnded),
        }
    }

    /// `POST /auth/refresh`: rotates the refresh token, with reuse detection and grace.
    pub async fn refresh(&self, token: &str) -> Result<Issued, AuthError> {
        let sid = sessions::refresh_token_session(token).ok_or(AuthError::InvalidRefreshToken)?;
        let key = keys::session(sid);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(stored) = self.store.get(&key).await? else {
                return Err(AuthError::InvalidRefreshToken);
            };
            let record: SessionRecord = decode(&stored)?;
            let user = match self.users.by_id(record.uid).await? {
                Some(user) if !user.disabled && user.credential_version == record.cv => user,
                _ => {
                    // Disabled, deleted, or its credentials changed since this session began.
                    self.revoke_session(sid, record.uid).await?;
                    return Err(AuthError::InvalidRefreshToken);
                }
            };
            let now = now_secs();
            match record.classify(token, now, self.grace) {
                Presented::Current => {
                    let successor = sessions::new_refresh_token(sid)
                        .map_err(|e| AuthError::Internal(e.to_string()))?;
                    let uid = record.uid;
                    let updated = SessionRecord {
                        last_seen_at: now,
                        refresh: sessions::token_hash(&successor),
                        rotated: Some(Rotation {
                            prev: sessions::token_hash(token),
                            sealed: sessions::seal(token, &successor),
                            at: now,
                        }),
                        ..record
                    };
                    let ttl = Duration::from_secs(self.refresh_ttl);
                    let swap = Swap {
                        key: key.clone(),
                        expected: stored,
                        value: encode(&updated),
                        ttl,
                    };
                    let also = vec![Op::SetAdd {
                        set: keys::user_sessions(&uid.to_string()),
                        member: sid.to_owned(),
                        ttl,
                    }];
                    if self.store.swap_then_apply(swap, also).await? {
                        return self.issue(&user, sid, successor);
                    }
                    // A concurrent refresh, logout or rotation changed the record: judge
                    // the token again against what is there now.
                }
                Presented::Repeat(successor) => return self.issue(&user, sid, successor),
                Presented::Reuse => {
                    self.revoke_session(sid, record.uid).await?;
                    tracing::warn!(event = "refresh_reuse_detected", user_id = %record.uid, session_id = %sid,
                        "an earlier refresh token of the session was presented; the session is revoked");
                    return Err(AuthError::InvalidRefreshToken);
                }
            }
        }
        Err(AuthError::Store(StoreError::Unavailable(
            "the session is being refreshed by many requests at once; retry".into(),
        )))
    }

    /// `POST /auth/logout`: ends the caller's session.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        self.revoke_session(&claims.sid, claims.sub).await?;
        tracing::info!(event = "logout", user_id = %claims.sub);
        Ok(())
    }

    /// Ends the session that a refresh token belongs to, if the token is its current one
    /// (the logout page, when the access token has already expired).
    pub async fn logout_by_refresh_token(&self, token: &str) -> Result<(), AuthError> {
        let Some(sid) = sessions::refresh_token_session(token) else {
            return Ok(());
        };
        let Some(bytes) = self.store.get(&keys::session(sid)).await? else {
            return Ok(());
        };
        let record: SessionRecord = decode(&bytes)?;
        if record.refresh == sessions::token_hash(token) {
            self.revoke_session(sid, record.uid).await?;
            tracing::info!(event = "logout", user_id = %record.uid);
        }
        Ok(())
    }

    /// `POST /auth/logout-all`: ends every session of the user.
    pub async fn logout_all(&self, user_id: Uuid) -> Result<(), AuthError> {
        let count = self.revoke_all(user_id).await?;
        tracing::info!(event = "logout_all", user_id = %user_id, sessions = count);
        Ok(())
    }

    /// `POST /auth/password`: checks the current password, stores the new one, ends every
    /// session of the user and starts a fresh one for the caller.
    pub async fn change_password(
        &self,
        claims: &AccessClaims,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<Issued, AuthError> {
        let user = self.user(claims).await?;
        let attempt = self
            .reserve(
                regulation::subjects(Some(&user.email), client.ip.as_deref()),
                "current_password",
            )
            .await?;
        let matches = current.len() <= policy::MAX_PASSWORD_BYTES
            && match self.hasher.verify(current, Some(&user.password_hash)).await {
                Ok(check) => check.matches,
                Err(e) => {
                    self.regulation.withdraw(attempt).await?;
                    return Err(e.into());
                }
            };
        if !matches {
            self.regulation.failed(attempt).await?;
            return Err(AuthError::WrongPassword);
        }
        self.regulation.succeeded(attempt).await?;
        let password_hash = self.hash_new(new, &user.email).await?;
        // Only over the credentials just checked: a concurrent change wins, and this one
        // answers as if the current password were wrong (it no longer is the current one).
        let checked = user.credential_version;
        let user = self
            .change_credentials(user.id, |u| {
                if u.credential_version != checked || u.disabled {
                    return Err(AuthError::WrongPassword);
                }
                u.password_hash = password_hash.clone();
                Ok(())
            })
            .await?;
        tracing::info!(event = "password_changed", user_id = %user.id);
        self.start_session(&user, client).await
    }

    /// `GET /auth/sessions`: the user's live sessions, oldest first; at most
    /// `sessions.max_per_user` of them (the newest).
    pub async fn sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, AuthError> {
        let set = keys::user_sessions(&user_id.to_string());
        let members = self.store.set_members(&set).await?;
        let mut live = self.live_sessions(user_id, &members).await?;
        if live.len() < members.len() {
            let gone = members
                .into_iter()
                .filter(|sid| !live.iter().any(|s| &s.id == sid))
                .map(|sid| Op::SetRemove {
                    set: set.clone(),
                    member: sid,
                })
                .collect();
            self.store.apply(gone).await?;
        }
        let excess = live.len().saturating_sub(self.max_sessions_per_user);
        live.drain(..excess);
        Ok(live)
    }

    /// `DELETE /auth/sessions/{id}`: ends one of the caller's sessions.
    pub async fn revoke_own_session(&self, user_id: Uuid, sid: &str) -> Result<(), AuthError> {
        let owned = match self.store.get(&keys::session(sid)).await? {
            Some(bytes) => decode::<SessionRecord>(&bytes)?.uid == user_id,
            None => false,
        };
        if !owned {
            return Err(AuthError::SessionNotFound);
        }
        self.revoke_session(sid, user_id).await?;
        tracing::info!(event = "session_revoked", user_id = %user_id, session_id = %sid);
        Ok(())
    }

    // --- administration (CLI) ---

    pub async fn list_users(&self) -> Result<Vec<User>, AuthError> {
        Ok(self.users.list().await?)
    }

    /// Tokens carry the role: the sessions end so that the next login gets the new one.
    pub async fn set_role(&self, email: &str, role: Role) -> Result<User, AuthError> {
        let user = self.find_user(email).await?;
        self.change_credentials(user.id, |u| {
            u.role = role;
            Ok(())
        })
        .await
    }

    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<User, AuthError> {
        let user = self.find_user(email).await?;
        if disabled {
            let user = self
                .change_credentials(user.id, |u| {
                    u.disabled = true;
                    Ok(())
                })
                .await?;
            tracing::info!(event = "user_disabled", user_id = %user.id);
            Ok(user)
        } else {
            let user = self
                .modify_user(user.id, |u| {
                    u.disabled = false;
                    Ok(())
                })
                .await?;
            tracing::info!(event = "user_enabled", user_id = %user.id);
            Ok(user)
        }
    }

    /// Sets a new password and ends every session of the user.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<User, AuthError> {
        let user = self.find_user(email).await?;
        let password_hash = self.hash_new(password, &user.email).await?;
        let user = self
            .change_credentials(user.id, |u| {
                u.password_hash = password_hash.clone();
                Ok(())
            })
            .await?;
        tracing::info!(event = "password_changed", user_id = %user.id, by = "admin");
        Ok(user)
    }

    /// The live login bans.
    pub async fn bans(&self) -> Result<Vec<Ban>, AuthError> {
        Ok(self.regulation.list().await?)
    }

    /// Lifts a ban on an email or address; returns what was lifted.
    pub async fn lift_ban(&self, target: &str) -> Result<Vec<String>, AuthError> {
        let lifted = self.regulation.lift(target).await?;
        tracing::info!(event = "ban_lifted", target = %target, lifted = lifted.len());
        Ok(lifted)
    }

    /// Checks a new password against the policy and hashes it, on the hashing threads.
    async fn hash_new(&self, password: &str, email: &str) -> Result<String, AuthError> {
        let (email, rules) = (email.to_owned(), self.passwords.clone());
        let policy = Box::new(move |p: &str| policy::check_password(p, &email, &rules));
        Ok(self.hasher.hash_new(password, policy).await?)
    }

    async fn find_user(&self, email: &str) -> Result<User, AuthError> {
        self.users
            .by_email(email)
            .await?
            .ok_or_else(|| AuthError::UserNotFound(normalize_email(email)))
    }

    /// Read-modify-write of a user as one compare-and-set, retried on a concurrent write:
    /// `change` runs on the freshest record each time and may refuse. Returns the stored user.
    async fn modify_user(
        &self,
        id: Uuid,
        mut change: impl FnMut(&mut User) -> Result<(), AuthError>,
    ) -> Result<User, AuthError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(mut user) = self.users.by_id(id).await? else {
                return Err(AuthError::UserNotFound(id.to_string()));
            };
            change(&mut user)?;
            match self.users.update(&user).await {
                Ok(()) => {
                    user.version += 1;
                    return Ok(user);
                }
                Err(UserStoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UserStoreError::Conflict.into())
    }

    /// A change that ends the user's sessions: bumps `credential_version` in the same write
    /// and only then ends every session, so a login racing it either is ended here or sees
    /// the new version when it re-reads the user (see [`Service::start_session`]).
    async fn change_credentials(
        &self,
        id: Uuid,
        mut change: impl FnMut(&mut User) -> Result<(), AuthError>,
    ) -> Result<User, AuthError> {
        let user = self
            .modify_user(id, |u| {
                change(u)?;
                u.credential_version += 1;
                Ok(())
            })
            .await?;
        self.revoke_all(id).await?;
        Ok(user)
    }

    // --- session mechanics ---

    /// Writes a new session for `user` as it was read, then reads the user again: if a
    /// credential change stored a newer version in between, the session is ended and this
    /// answers [`AuthError::SessionEnded`]. With the change's own order (store the version,
    /// then end the sessions) no session created under old credentials survives it.
    /// Beyond `sessions.max_per_user`, the user's oldest sessions end.
    async fn start_session(&self, user: &User, client: &ClientInfo) -> Result<Issued, AuthError> {
        let sid = sessions::new_id();
        let refresh =
            sessions::new_refresh_token(&sid).map_err(|e| AuthError::Internal(e.to_string()))?;
        let now = now_secs();
        let record = SessionRecord {
            uid: user.id,
            created_at: now,
            last_seen_at: now,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            refresh: sessions::token_hash(&refresh),
            cv: user.credential_version,
            rotated: None,
        };
        let ttl = Duration::from_secs(self.refresh_ttl);
        let set = keys::user_sessions(&user.id.to_string());
        self.store
            .apply(vec![
                Op::set(keys::session(&sid), encode(&record), ttl),
                Op::SetAdd {
                    set: set.clone(),
                    member: sid.clone(),
                    ttl,
                },
            ])
            .await?;
        let current = self.users.by_id(user.id).await?;
        if !current.is_some_and(|u| !u.disabled && u.credential_version == user.credential_version)
        {
            self.revoke_session(&sid, user.id).await?;
            return Err(AuthError::SessionEnded);
        }
        self.enforce_session_cap(user.id).await?;
        self.issue(user, &sid, refresh)
    }

    /// Ends the oldest sessions of a user beyond `sessions.max_per_user` (and forgets set
    /// members whose session has already ended).
    async fn enforce_session_cap(&self, user_id: Uuid) -> Result<(), AuthError> {
        let set = keys::user_sessions(&user_id.to_string());
        let members = self.store.set_members(&set).await?;
        if members.len() <= self.max_sessions_per_user {
            return Ok(());
        }
        let live = self.live_sessions(user_id, &members).await?;
        let mut ops: Vec<Op> = Vec::new();
        for sid in &members {
            if !live.iter().any(|s| &s.id == sid) {
                ops.push(Op::SetRemove {
                    set: set.clone(),
                    member: sid.clone(),
                });
            }
        }
        let excess = live.len().saturating_sub(self.max_sessions_per_user);
        for oldest in &live[..excess] {
            ops.push(Op::Delete {
                key: keys::session(&oldest.id),
            });
            ops.push(Op::SetRemove {
                set: set.clone(),
                member: oldest.id.clone(),
            });
        }
        if excess > 0 {
            tracing::info!(event = "sessions_capped", user_id = %user_id, ended = excess);
        }
        self.store.apply(ops).await?;
        Ok(())
    }

    /// The live sessions among `members` that belong to the user, oldest first: one `MGET`.
    async fn live_sessions(
        &self,
        user_id: Uuid,
        members: &[String],
    ) -> Result<Vec<SessionInfo>, AuthError> {
        let keys: Vec<String> = members.iter().map(|sid| keys::session(sid)).collect();
        let mut live = Vec::with_capacity(members.len());
        for (sid, value) in members.iter().zip(self.store.get_many(&keys).await?) {
            if let Some(bytes) = value {
                let record: SessionRecord = decode(&bytes)?;
                if record.uid == user_id {
                    live.push(SessionInfo {
                        id: sid.clone(),
                        record,
                    });
                }
            }
        }
        live.sort_by(|a, b| {
            a.record
                .created_at
                .cmp(&b.record.created_at)
                .then(a.id.cmp(&b.id))
        });
        Ok(live)
    }

    fn issue(&self, user: &User, sid: &str, refresh_token: String) -> Result<Issued, AuthError> {
        let now = now_secs();
        let claims = AccessClaims {
            sub: user.id,
            email: user.email.clone(),
            role: user.role,
            iat: now,
            exp: now + self.access_ttl,
            jti: sessions::new_id(),
            sid: sid.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let access_token = self.signer.sign(&claims).map_err(AuthError::InvalidToken)?;
        Ok(Issued {
            access_token,
            refresh_token,
            expires_in: self.access_ttl,
            refresh_expires_in: self.refresh_ttl,
        })
    }

    /// Deletes a session: its tokens are dead on the next request.
    async fn revoke_session(&self, sid: &str, user_id: Uuid) -> Result<(), AuthError> {
        self.store
            .apply(vec![
                Op::Delete {
                    key: keys::session(sid),
                },
                Op::SetRemove {
                    set: keys::user_sessions(&user_id.to_string()),
                    member: sid.to_owned(),
                },
            ])
            .await?;
        Ok(())
    }

    /// Deletes every session of a user (at most `sessions.max_per_user` and a few that raced
    /// in: one batch of deletes, no reads); returns how many there were. Members are removed
    /// one by one, not the whole set, so a login that adds itself meanwhile stays listed.
    async fn revoke_all(&self, user_id: Uuid) -> Result<usize, AuthError> {
        let set = keys::user_sessions(&user_id.to_string());
        let members = self.store.set_members(&set).await?;
        let mut ops: Vec<Op> = Vec::with_capacity(members.len() * 2);
        for sid in &members {
            ops.push(Op::Delete {
                key: keys::session(sid),
            });
            ops.push(Op::SetRemove {
                set: set.clone(),
                member: sid.clone(),
            });
        }
        self.store.apply(ops).await?;
        Ok(members.len())
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
