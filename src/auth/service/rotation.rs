//! `POST /auth/refresh`: rotation of the refresh token with reuse detection and grace
//! (GD-0006): one read of the session record, then a compare-and-set.

use std::time::Duration;

use bytes::Bytes;

use super::{AuthError, Issued, MAX_WRITE_ATTEMPTS, Service, decode};
use crate::clock::now_secs;
use crate::domain::User;
use crate::domain::session::{self, Presented, Rotation, SessionRecord, encode};
use crate::store::{Op, StoreError, Swap, keys};

/// A refresh token rotated (or a repeat within the grace window answered): the session's
/// user and record as they now stand, and the refresh token to hand out.
pub(super) struct Rotated {
    pub user: User,
    pub sid: String,
    pub refresh_token: String,
    pub record: SessionRecord,
}

impl Service {
    /// `POST /auth/refresh`: rotates the refresh token, with reuse detection and grace.
    pub async fn refresh(&self, token: &str) -> Result<Issued, AuthError> {
        let rotated = self.rotate_refresh_token(token, None).await?;
        let amr = rotated.record.amr;
        self.issue(&rotated.user, &rotated.sid, rotated.refresh_token, amr)
    }

    /// Rotates a refresh token of a session of `client` (`None`: a sign-in to gatehouse
    /// itself; `Some`: an OpenID Connect grant to that relying party). A token of another
    /// kind of session is refused without touching it: a relying party's refresh token
    /// never buys a gatehouse session, nor one client's token another's.
    pub(super) async fn rotate_refresh_token(
        &self,
        token: &str,
        client: Option<&str>,
    ) -> Result<Rotated, AuthError> {
        let sid = session::refresh_token_session(token).ok_or(AuthError::InvalidRefreshToken)?;
        let key = keys::session(sid);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(stored) = self.store.get(&key).await? else {
                return Err(AuthError::InvalidRefreshToken);
            };
            let record: SessionRecord = decode(&stored)?;
            if record.grant.as_ref().map(|g| g.client.as_str()) != client {
                return Err(AuthError::InvalidRefreshToken);
            }
            let user = match self.users.by_id(record.uid).await? {
                Some(user) if !user.disabled && user.credential_version == record.cv => user,
                _ => {
                    // Disabled, deleted, or its credentials changed since this session began.
                    self.revoke_session(sid, record.uid).await?;
                    return Err(AuthError::InvalidRefreshToken);
                }
            };
            match record.classify(token, now_secs(), self.grace) {
                Presented::Current => {
                    if let Some((refresh_token, record)) =
                        self.rotate(&user, sid, token, stored, record).await?
                    {
                        return Ok(Rotated {
                            user,
                            sid: sid.to_owned(),
                            refresh_token,
                            record,
                        });
                    }
                    // A concurrent refresh, logout or rotation changed the record: judge the
                    // token again against what is there now.
                }
                Presented::Repeat(successor) => {
                    return Ok(Rotated {
                        user,
                        sid: sid.to_owned(),
                        refresh_token: successor,
                        record,
                    });
                }
                Presented::Reuse => return self.reuse(sid, &record).await,
            }
        }
        Err(AuthError::Store(StoreError::Unavailable(
            "the session is being refreshed by many requests at once; retry".into(),
        )))
    }

    /// The current token: swaps the record read (`stored`) for one naming a new successor;
    /// returns the successor and the new record. `None` when the record changed since it
    /// was read.
    async fn rotate(
        &self,
        user: &User,
        sid: &str,
        token: &str,
        stored: Bytes,
        record: SessionRecord,
    ) -> Result<Option<(String, SessionRecord)>, AuthError> {
        let successor =
            session::new_refresh_token(sid).map_err(|e| AuthError::Internal(e.to_string()))?;
        let now = now_secs();
        let updated = SessionRecord {
            last_seen_at: now,
            refresh: session::token_hash(&successor),
            rotated: Some(Rotation {
                prev: session::token_hash(token),
                sealed: session::seal(token, &successor),
                at: now,
            }),
            ..record
        };
        let ttl = Duration::from_secs(self.refresh_ttl);
        let swap = Swap {
            key: keys::session(sid),
            expected: Some(stored),
            value: encode(&updated),
            ttl,
        };
        // The user's set of sessions lives as long as its newest session.
        let also = vec![Op::SetAdd {
            set: keys::user_sessions(&user.id.to_string()),
            member: sid.to_owned(),
            ttl,
        }];
        if !self.store.swap_then_apply(swap, also).await? {
            return Ok(None);
        }
        Ok(Some((successor, updated)))
    }

    /// An earlier token of the session (or a forgery naming it): the session ends.
    async fn reuse(&self, sid: &str, record: &SessionRecord) -> Result<Rotated, AuthError> {
        self.revoke_session(sid, record.uid).await?;
        tracing::warn!(event = "refresh_reuse_detected", user_id = %record.uid, session_id = %sid,
            "an earlier refresh token of the session was presented; the session is revoked");
        Err(AuthError::InvalidRefreshToken)
    }
}
