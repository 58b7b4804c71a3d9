//! The single-use links that gatehouse mails (or prints): password reset, invitation,
//! address verification and email change.
//!
//! A link's token is `<user id, 32 hex digits>.<256 random bits, base64url>`: the user id
//! names the one record that can match it ([`crate::store::keys::link`]), so a lookup is one
//! read and a user holds at most one live link of each [`Slot`]. A newer link overwrites the
//! record and with it every older one. The record keeps the SHA-256 of the token, never the
//! token, and is deleted by the compare-and-set that uses it: a link works once.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::session::token_hash;

/// What a link does when used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Sets a new password (`/reset`, `POST /auth/password/reset`).
    Reset,
    /// Sets the first password of an invited account (`/invite`, or the reset endpoint).
    Invite,
    /// Confirms the address (`/verify`, `POST /auth/verify`).
    Verify,
    /// Moves the account to a new address (`/email/confirm`, `POST /auth/email/confirm`).
    EmailChange,
}

/// The record a link lives in: one per user and slot. An invitation and a reset both set a
/// password, so they share a slot: the newer replaces the older, whichever it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Password,
    Verify,
    Email,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Password => "password",
            Slot::Verify => "verify",
            Slot::Email => "email",
        }
    }
}

impl Purpose {
    pub fn slot(self) -> Slot {
        match self {
            Purpose::Reset | Purpose::Invite => Slot::Password,
            Purpose::Verify => Slot::Verify,
            Purpose::EmailChange => Slot::Email,
        }
    }

    /// Seconds a link lives: the contract's 30 minutes for a reset, 24 hours for a
    /// verification, 72 hours for an invitation; an email change is confirmed from the new
    /// mailbox, like a verification, and gets as long.
    pub fn lifetime(self) -> u64 {
        match self {
            Purpose::Reset => 30 * 60,
            Purpose::Invite => 72 * 3600,
            Purpose::Verify | Purpose::EmailChange => 24 * 3600,
        }
    }

    /// The page the link opens, relative to `public_url`.
    pub fn page(self) -> &'static str {
        match self {
            Purpose::Reset => "reset",
            Purpose::Invite => "invite",
            Purpose::Verify => "verify",
            Purpose::EmailChange => "email/confirm",
        }
    }
}

/// What the store keeps for a live link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    /// [`token_hash`] of the token.
    pub hash: String,
    pub purpose: Purpose,
    /// The account's email when the link was made. The link works only while the account
    /// still has it, so a link sent to an address the account has left is dead.
    pub email: String,
    /// The address an email change moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
    /// The account's `credential_version` when the link was made: a password change,
    /// reset or disable since then kills a reset or invitation link.
    pub cv: u64,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    /// The link went by mail to `email` (not only printed for an admin): using it shows
    /// the owner reads that mailbox.
    pub mailed: bool,
}

impl LinkRecord {
    /// Whether `token` is this record's and it has not expired (constant-time compare).
    pub fn admits(&self, token: &str, now: u64) -> bool {
        use subtle::ConstantTimeEq;
        let same: bool = token_hash(token)
            .as_bytes()
            .ct_eq(self.hash.as_bytes())
            .into();
        same && now < self.expires_at
    }
}

/// A new token for a link of `user`.
pub fn new_token(user: Uuid) -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(format!(
        "{}.{}",
        user.simple(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// The user a token names, if it has the shape of one (nothing more is checked).
pub fn token_user(token: &str) -> Option<Uuid> {
    let (id, secret) = token.split_once('.')?;
    let well_formed = id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return None;
    }
    Uuid::try_parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_user_and_nothing_else_parses() {
        let id = Uuid::now_v7();
        let token = new_token(id).unwrap();
        assert_eq!(token_user(&token), Some(id));
        assert_ne!(token, new_token(id).unwrap());
        for bad in [
            "",
            ".",
            "x.y",
            &token[1..],
            &format!("{token}x"),
            &token.replace('.', "-"),
            &format!("{}.{}", id.hyphenated(), &token[33..]),
            &format!("{}.{}=", id.simple(), &token[33..75]),
        ] {
            assert_eq!(token_user(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_record_admits_its_token_until_it_expires() {
        let token = new_token(Uuid::now_v7()).unwrap();
        let record = LinkRecord {
            hash: token_hash(&token),
            purpose: Purpose::Reset,
            email: "a@b.org".into(),
            new_email: None,
            cv: 0,
            created_at: 100,
            expires_at: 100 + Purpose::Reset.lifetime(),
            mailed: true,
        };
        assert!(record.admits(&token, 101));
        assert!(!record.admits(&token, 100 + 1800));
        assert!(!record.admits(&new_token(Uuid::now_v7()).unwrap(), 101));
        assert_eq!(Purpose::Invite.slot(), Purpose::Reset.slot());
        assert_eq!(Purpose::Invite.lifetime(), 72 * 3600);
        assert_eq!(Purpose::Verify.lifetime(), 24 * 3600);
    }
}
