//! The life of a session: starting one, checking its access tokens, listing and ending it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use uuid::Uuid;

use super::{AuthError, ClientInfo, Issued, Service, SessionInfo, decode};
use crate::auth::tokens::{AccessClaims, TokenError};
use crate::clock::now_secs;
use crate::domain::User;
use crate::domain::factors::Amr;
use crate::domain::session::{self, SessionRecord, encode};
use crate::store::{Op, keys};

impl Service {
    /// Verifies an access token and checks that its session lives: the token-check hot path.
    /// The claims' `amr` is the session's, as it is now (a step-up raises it for every token).
    pub async fn authenticate(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let mut claims = self.signer.verify(token).map_err(AuthError::InvalidToken)?;
        self.check_clock(claims.iat);
        let Some(bytes) = self.store.get(&keys::session(&claims.sid)).await? else {
            return Err(AuthError::SessionEnded);
        };
        let record: session::Liveness = decode(&bytes)?;
        // A relying party's grant is no sign-in to gatehouse: its tokens never reach the
        // account API or forward-auth (they are not shaped as access tokens either).
        if record.uid != claims.sub || record.grant.is_some() {
            return Err(AuthError::InvalidToken(TokenError::Malformed));
        }
        claims.amr = record.amr;
        Ok(claims)
    }

    /// A token issued in our future means a clock is off (ours, or the issuing node's): say
    /// so, at most once a minute. The token is still judged by `exp`/`nbf` with the leeway.
    pub(super) fn check_clock(&self, iat: u64) {
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

    /// `POST /auth/logout`: ends the caller's session.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        self.revoke_session(&claims.sid, claims.sub).await?;
        tracing::info!(event = "logout", user_id = %claims.sub);
        Ok(())
    }

    /// Ends the session that a refresh token belongs to, if the token is its current one
    /// (the logout page, when the access token has already expired).
    pub async fn logout_by_refresh_token(&self, token: &str) -> Result<(), AuthError> {
        let Some(sid) = session::refresh_token_session(token) else {
            return Ok(());
        };
        let Some(bytes) = self.store.get(&keys::session(sid)).await? else {
            return Ok(());
        };
        let record: SessionRecord = decode(&bytes)?;
        if record.refresh == session::token_hash(token) {
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
    /// Ending an OpenID Connect grant also forgets the consent to its client: the app must
    /// ask again.
    pub async fn revoke_own_session(&self, user_id: Uuid, sid: &str) -> Result<(), AuthError> {
        let record = match self.store.get(&keys::session(sid)).await? {
            Some(bytes) => Some(decode::<SessionRecord>(&bytes)?),
            None => None,
        };
        let Some(record) = record.filter(|r| r.uid == user_id) else {
            return Err(AuthError::SessionNotFound);
        };
        self.revoke_session(sid, user_id).await?;
        if let Some(grant) = &record.grant {
            self.forget_consent(user_id, &grant.client).await?;
        }
        tracing::info!(event = "session_revoked", user_id = %user_id, session_id = %sid);
        Ok(())
    }

    /// Writes a new session for `user` as it was read, then reads the user again: if a
    /// credential change stored a newer version in between, the session is ended and this
    /// answers [`AuthError::SessionEnded`]. With the change's own order (store the version,
    /// then end the sessions) no session created under old credentials survives it.
    /// Beyond `sessions.max_per_user`, the user's oldest sessions end.
    pub(super) async fn start_session(
        &self,
        user: &User,
        client: &ClientInfo,
        amr: Amr,
    ) -> Result<Issued, AuthError> {
        let sid = session::new_id();
        let refresh =
            session::new_refresh_token(&sid).map_err(|e| AuthError::Internal(e.to_string()))?;
        let now = now_secs();
        let record = SessionRecord {
            uid: user.id,
            created_at: now,
            last_seen_at: now,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            refresh: session::token_hash(&refresh),
            cv: user.credential_version,
            rotated: None,
            grant: None,
            amr,
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
        self.issue(user, &sid, refresh, amr)
    }

    /// Ends the oldest sessions of a user beyond `sessions.max_per_user`, OpenID Connect
    /// grants before sign-ins (and forgets set members whose session has already ended).
    ///
    /// Every login and token exchange comes here, so it counts first (SCARD, the same cost
    /// however many sessions the user has) and reads the sessions only beyond the cap. The
    /// count includes members whose session has expired but is still listed, so it can only
    /// err high: then the read below forgets them.
    pub(super) async fn enforce_session_cap(&self, user_id: Uuid) -> Result<(), AuthError> {
        let set = keys::user_sessions(&user_id.to_string());
        let cap = u64::try_from(self.max_sessions_per_user).unwrap_or(u64::MAX);
        if self.store.set_len(&set).await? <= cap {
            return Ok(());
        }
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
        // Relying parties' grants go first: an app that runs the code flow again and again
        // must not sign the user out of gatehouse itself (and of forward-auth).
        let excess = live.len().saturating_sub(self.max_sessions_per_user);
        let grants = live.iter().filter(|s| s.record.grant.is_some());
        let own = live.iter().filter(|s| s.record.grant.is_none());
        for oldest in grants.chain(own).take(excess) {
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
    pub(super) async fn live_sessions(
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

    pub(super) fn issue(
        &self,
        user: &User,
        sid: &str,
        refresh_token: String,
        amr: Amr,
    ) -> Result<Issued, AuthError> {
        let access_token = self.sign_access(user, sid, amr)?;
        Ok(Issued {
            access_token,
            refresh_token,
            expires_in: self.access_ttl,
            refresh_expires_in: self.refresh_ttl,
        })
    }

    /// An access token of session `sid` for `user` as the account is now: with `mfa.required`,
    /// a user without a second factor gets one limited to enrolling one.
    pub(super) fn sign_access(
        &self,
        user: &User,
        sid: &str,
        amr: Amr,
    ) -> Result<String, AuthError> {
        let now = now_secs();
        let claims = AccessClaims {
            sub: user.id,
            email: user.email.clone(),
            role: user.role,
            iat: now,
            exp: now + self.access_ttl,
            jti: session::new_id(),
            sid: sid.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            amr,
            enrolment_only: self.factors.required && !user.factors.any(),
        };
        self.signer.sign(&claims).map_err(AuthError::InvalidToken)
    }

    /// Deletes a session: its tokens are dead on the next request.
    pub(super) async fn revoke_session(&self, sid: &str, user_id: Uuid) -> Result<(), AuthError> {
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
    pub(super) async fn revoke_all(&self, user_id: Uuid) -> Result<usize, AuthError> {
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
