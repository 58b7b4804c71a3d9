//! The operations of gatehouse, one method each, shared by the HTTP handlers and the CLI.
//!
//! Session rules (ADR-004 and the API contract):
//! - A login creates a session (`session:<sid>`), its refresh token and an access token that
//!   names the session (`sid`). A token check is a signature check plus one store read of the
//!   session, so deleting the session revokes all of its tokens on the very next request.
//! - A refresh atomically takes the presented refresh token and writes its successor plus a
//!   `rotated:` marker. Presenting a taken token again revokes the session (reuse detection),
//!   except within the grace window, which answers with the same successor.
//! - Logout deletes the session; logout-all and a password change delete every session of
//!   the user.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use uuid::Uuid;

use super::passwords::{HashError, Hasher};
use super::policy;
use super::regulation::{Ban, Regulation};
use super::sessions::{self, RefreshRecord, RotatedRecord, SessionRecord, encode};
use super::tokens::{AccessClaims, Signer, TokenError};
use crate::clock::now_secs;
use crate::config::{Config, Passwords, Registration};
use crate::store::{
    Op, Role, SessionStore, StoreError, User, UserStore, UserStoreError, keys, normalize_email,
};

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
            regulation: Regulation::new(&config.regulation, store.clone()),
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
        if let Some(retry_after) = self.regulation.banned_for(email, ip).await? {
            tracing::info!(
                event = "login_regulated",
                ip = ip.unwrap_or("-"),
                retry_after
            );
            return Err(AuthError::Regulated { retry_after });
        }
        // No stored password is over the limit; refusing before hashing bounds the work.
        let found = if password.len() > policy::MAX_PASSWORD_BYTES {
            None
        } else {
            let user = self.users.by_email(email).await?;
            let check = self
                .hasher
                .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
                .await?;
            user.filter(|u| check.matches && !u.disabled)
                .map(|u| (u, check.needs_rehash))
        };
        let Some((mut user, needs_rehash)) = found else {
            tracing::info!(event = "login_failed", ip = ip.unwrap_or("-"));
            metrics::counter!("gatehouse_logins_total", "result" => "failed").increment(1);
            self.regulation.failed(email, ip).await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.regulation.succeeded(email).await?;
        if needs_rehash {
            match self.hasher.hash(password).await {
                Ok(hash) => {
                    user.password_hash = hash;
                    if let Err(e) = self.users.update(&user).await {
                        tracing::warn!(error = %e, user_id = %user.id, "could not store the upgraded password hash");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not upgrade a password hash"),
            }
        }
        let issued = self.start_session(&user, client).await?;
        tracing::info!(event = "login_ok", user_id = %user.id, ip = client.ip.as_deref().unwrap_or("-"));
        metrics::counter!("gatehouse_logins_total", "result" => "ok").increment(1);
        Ok((user, issued))
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
        let hash = sessions::token_hash(token);
        let record = match self.store.get(&keys::session(sid)).await? {
            Some(bytes) => decode::<SessionRecord>(&bytes)?,
            None => return Err(AuthError::InvalidRefreshToken),
        };
        let user = match self.users.by_id(record.uid).await? {
            Some(user) if !user.disabled => user,
            _ => {
                self.revoke_session(sid, record.uid).await?;
                return Err(AuthError::InvalidRefreshToken);
            }
        };

        let successor =
            sessions::new_refresh_token(sid).map_err(|e| AuthError::Internal(e.to_string()))?;
        let successor_hash = sessions::token_hash(&successor);
        let now = now_secs();
        let updated = SessionRecord {
            last_seen_at: now,
            refresh: successor_hash.clone(),
            ..record
        };
        let refresh_ttl = Duration::from_secs(self.refresh_ttl);
        let mut ops = vec![
            Op::set(
                keys::refresh(&successor_hash),
                encode(&RefreshRecord {
                    sid: sid.to_owned(),
                    uid: user.id,
                }),
                refresh_ttl,
            ),
            // Only if the session still exists: a concurrent logout must stay a logout.
            Op::Set {
                key: keys::session(sid),
                value: encode(&updated),
                ttl: refresh_ttl,
                only_if_exists: true,
            },
            Op::set(
                keys::rotated(&hash),
                encode(&RotatedRecord {
                    sid: sid.to_owned(),
                    at: now,
                }),
                refresh_ttl,
            ),
            Op::SetAdd {
                set: keys::user_sessions(&user.id.to_string()),
                member: sid.to_owned(),
                ttl: refresh_ttl,
            },
        ];
        if self.grace > 0 {
            ops.push(Op::set(
                keys::grace(&hash),
                successor.clone().into_bytes(),
                Duration::from_secs(self.grace),
            ));
        }
        if self
            .store
            .take_then_apply(&keys::refresh(&hash), ops)
            .await?
            .is_some()
        {
            return self.issue(&user, sid, successor);
        }

        // The token was not current: a repeat within the grace window, reuse, or garbage.
        if let Some(successor) = self.store.get(&keys::grace(&hash)).await? {
            if self.store.get(&keys::session(sid)).await?.is_some() {
                let successor = String::from_utf8(successor.to_vec())
                    .map_err(|_| StoreError::Corrupt("grace record".into()))?;
                return self.issue(&user, sid, successor);
            }
            return Err(AuthError::InvalidRefreshToken);
        }
        if let Some(bytes) = self.store.get(&keys::rotated(&hash)).await? {
            let rotated: RotatedRecord = decode(&bytes)?;
            self.revoke_session(&rotated.sid, user.id).await?;
            tracing::warn!(event = "refresh_reuse_detected", user_id = %user.id, session_id = %rotated.sid,
                "a used refresh token was presented again; the session is revoked");
        }
        Err(AuthError::InvalidRefreshToken)
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

    /// Ends the session an access token of ours names, even once the token has expired: the
    /// logout page, which the refresh cookie (`Path=/auth`) never reaches, has only the
    /// access cookie. The session must belong to the token's user. Returns whether one ended.
    pub async fn logout_by_access_token(&self, token: &str) -> Result<bool, AuthError> {
        let Ok(claims) = self.signer.verify_ignoring_expiry(token) else {
            return Ok(false);
        };
        let Some(bytes) = self.store.get(&keys::session(&claims.sid)).await? else {
            return Ok(false);
        };
        if decode::<SessionRecord>(&bytes)?.uid != claims.sub {
            return Ok(false);
        }
        self.revoke_session(&claims.sid, claims.sub).await?;
        tracing::info!(event = "logout", user_id = %claims.sub);
        Ok(true)
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
        let mut user = self.user(claims).await?;
        if current.len() > policy::MAX_PASSWORD_BYTES
            || !self
                .hasher
                .verify(current, Some(&user.password_hash))
                .await?
                .matches
        {
            return Err(AuthError::WrongPassword);
        }
        user.password_hash = self.hash_new(new, &user.email).await?;
        // Sessions end before the new password is stored: a failure in between leaves the
        // account locked out of its sessions, never with old sessions next to a new password.
        self.revoke_all(user.id).await?;
        self.users.update(&user).await?;
        tracing::info!(event = "password_changed", user_id = %user.id);
        self.start_session(&user, client).await
    }

    /// `GET /auth/sessions`: the user's live sessions, oldest first.
    pub async fn sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, AuthError> {
        let set = keys::user_sessions(&user_id.to_string());
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for sid in self.store.set_members(&set).await? {
            match self.store.get(&keys::session(&sid)).await? {
                Some(bytes) => {
                    let record: SessionRecord = decode(&bytes)?;
                    if record.uid == user_id {
                        out.push(SessionInfo { id: sid, record });
                    }
                }
                None => gone.push(Op::SetRemove {
                    set: set.clone(),
                    member: sid,
                }),
            }
        }
        if !gone.is_empty() {
            self.store.apply(gone).await?;
        }
        out.sort_by(|a, b| {
            a.record
                .created_at
                .cmp(&b.record.created_at)
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
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

    pub async fn set_role(&self, email: &str, role: Role) -> Result<User, AuthError> {
        let mut user = self.find_user(email).await?;
        user.role = role;
        // Tokens carry the role: end the sessions (first) so the next login gets the new one.
        self.revoke_all(user.id).await?;
        self.users.update(&user).await?;
        Ok(user)
    }

    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<User, AuthError> {
        let mut user = self.find_user(email).await?;
        user.disabled = disabled;
        if disabled {
            self.revoke_all(user.id).await?;
            self.users.update(&user).await?;
            tracing::info!(event = "user_disabled", user_id = %user.id);
        } else {
            self.users.update(&user).await?;
            tracing::info!(event = "user_enabled", user_id = %user.id);
        }
        Ok(user)
    }

    /// Sets a new password and ends every session of the user.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<User, AuthError> {
        let mut user = self.find_user(email).await?;
        user.password_hash = self.hash_new(password, &user.email).await?;
        self.revoke_all(user.id).await?;
        self.users.update(&user).await?;
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

    // --- session mechanics ---

    async fn start_session(&self, user: &User, client: &ClientInfo) -> Result<Issued, AuthError> {
        let sid = sessions::new_id();
        let refresh =
            sessions::new_refresh_token(&sid).map_err(|e| AuthError::Internal(e.to_string()))?;
        let hash = sessions::token_hash(&refresh);
        let now = now_secs();
        let record = SessionRecord {
            uid: user.id,
            created_at: now,
            last_seen_at: now,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            refresh: hash.clone(),
        };
        let ttl = Duration::from_secs(self.refresh_ttl);
        self.store
            .apply(vec![
                Op::set(keys::session(&sid), encode(&record), ttl),
                Op::set(
                    keys::refresh(&hash),
                    encode(&RefreshRecord {
                        sid: sid.clone(),
                        uid: user.id,
                    }),
                    ttl,
                ),
                Op::SetAdd {
                    set: keys::user_sessions(&user.id.to_string()),
                    member: sid.clone(),
                    ttl,
                },
            ])
            .await?;
        self.issue(user, &sid, refresh)
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

    /// Deletes a session and its current refresh token.
    async fn revoke_session(&self, sid: &str, user_id: Uuid) -> Result<(), AuthError> {
        let mut ops = vec![
            Op::Delete {
                key: keys::session(sid),
            },
            Op::SetRemove {
                set: keys::user_sessions(&user_id.to_string()),
                member: sid.to_owned(),
            },
        ];
        if let Some(bytes) = self.store.get(&keys::session(sid)).await? {
            let record: SessionRecord = decode(&bytes)?;
            ops.push(Op::Delete {
                key: keys::refresh(&record.refresh),
            });
        }
        self.store.apply(ops).await?;
        Ok(())
    }

    /// Deletes every session of a user; returns how many there were.
    async fn revoke_all(&self, user_id: Uuid) -> Result<usize, AuthError> {
        let set = keys::user_sessions(&user_id.to_string());
        let members = self.store.set_members(&set).await?;
        let mut ops = Vec::with_capacity(members.len() * 2 + 1);
        for sid in &members {
            if let Some(bytes) = self.store.get(&keys::session(sid)).await? {
                let record: SessionRecord = decode(&bytes)?;
                ops.push(Op::Delete {
                    key: keys::refresh(&record.refresh),
                });
            }
            ops.push(Op::Delete {
                key: keys::session(sid),
            });
        }
        ops.push(Op::Delete { key: set });
        self.store.apply(ops).await?;
        Ok(members.len())
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
