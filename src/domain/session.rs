//! What the session store holds for a session (see [`crate::store::keys`] for the keys).
//!
//! A refresh token is opaque: `<session id>.<256 random bits, base64url>`. The session
//! record is the whole state of a session and does not grow with its rotations (GD-0006):
//! it keeps the SHA-256 of the current refresh token, and of the one rotated last, with
//! that rotation's successor sealed under a key derived from the rotated token itself. So
//! a repeat of the rotated token within the grace window can be answered with the same
//! successor, while the store (a backup, a Redis dump, the RESP listener) never holds a
//! usable token. Any other earlier token of the session is reuse.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::factors::Amr;

/// `session:<sid>`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub uid: Uuid,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the login or the last refresh.
    pub last_seen_at: u64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Hash ([`token_hash`]) of the current refresh token.
    pub refresh: String,
    /// The user's `credential_version` when the session began; the session dies when the
    /// user's moves on (password change, disable, role change, second-factor reset).
    #[serde(default)]
    pub cv: u64,
    /// The last rotation, for the reuse grace window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated: Option<Rotation>,
    /// How the session was signed in (RFC 8176), raised by a step-up; left out for a password
    /// alone, so records written before second factors existed read as `["pwd"]`.
    #[serde(default, skip_serializing_if = "Amr::is_password_only")]
    pub amr: Amr,
    /// Set when the session is an OpenID Connect grant to a relying party rather than a
    /// sign-in to gatehouse itself: its tokens then work only at the provider's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
}

/// The fields of a [`SessionRecord`] a token check needs, read without building the rest
/// (its strings): the hot path of every `/auth/me` and forward-auth request.
#[derive(Debug, Deserialize)]
pub struct Liveness {
    pub uid: Uuid,
    #[serde(default)]
    pub amr: Amr,
    /// Present for an OpenID Connect grant; its content does not matter here.
    #[serde(default)]
    pub grant: Option<serde::de::IgnoredAny>,
}

/// What an OpenID Connect grant session was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The relying party's `client_id`.
    pub client: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// Unix second the user signed in (the browser session's start): `auth_time`.
    pub auth_time: u64,
}

/// The rotation that made the current refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rotation {
    /// Hash of the token it consumed.
    pub prev: String,
    /// The secret part of the successor, XOR a key derived from the consumed token
    /// ([`seal`]): only a holder of that token can read it back.
    pub sealed: String,
    /// Unix seconds.
    pub at: u64,
}

/// How a presented refresh token relates to its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// The current token: rotate it.
    Current,
    /// The token rotated last, again, within the grace window: answer with this successor.
    Repeat(String),
    /// Anything else that names this session: an earlier token (reuse), or a forgery by
    /// someone who knows the session id, which only holders of the session's tokens do.
    Reuse,
}

impl SessionRecord {
    /// Classifies `token` (which names this session) at `now`, given the grace window.
    pub fn classify(&self, token: &str, now: u64, grace: u64) -> Presented {
        let hash = token_hash(token);
        if equal(&hash, &self.refresh) {
            return Presented::Current;
        }
        if let Some(rotation) = &self.rotated {
            let in_window = now < rotation.at.saturating_add(grace);
            if in_window && equal(&hash, &rotation.prev) {
                if let Some(successor) = unseal(token, &rotation.sealed) {
                    if equal(&token_hash(&successor), &self.refresh) {
                        return Presented::Repeat(successor);
                    }
                }
            }
        }
        Presented::Reuse
    }
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The one-time pad that seals a successor under the token it replaced: 256 bits derived
/// from the whole consumed token (domain-separated from [`token_hash`], which is stored).
fn pad(consumed: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"gatehouse refresh successor seal\0");
    h.update(consumed.as_bytes());
    h.finalize().into()
}

/// Seals the secret part of `successor` under `consumed`.
pub fn seal(consumed: &str, successor: &str) -> String {
    let secret = successor
        .split_once('.')
        .and_then(|(_, s)| URL_SAFE_NO_PAD.decode(s).ok())
        .unwrap_or_default();
    let sealed: Vec<u8> = secret
        .iter()
        .zip(pad(consumed))
        .map(|(a, b)| a ^ b)
        .collect();
    URL_SAFE_NO_PAD.encode(sealed)
}

/// The successor sealed under `consumed` (a token of the same session).
fn unseal(consumed: &str, sealed: &str) -> Option<String> {
    let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if sealed.len() != 32 {
        return None;
    }
    let secret: Vec<u8> = sealed
        .iter()
        .zip(pad(consumed))
        .map(|(a, b)| a ^ b)
        .collect();
    let sid = refresh_token_session(consumed)?;
    Some(format!("{sid}.{}", URL_SAFE_NO_PAD.encode(secret)))
}

/// A new random id: 122 random bits (UUID v4) as 32 hex digits.
pub fn new_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A new refresh token for session `sid`.
pub fn new_refresh_token(sid: &str) -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(format!("{sid}.{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// The session id a refresh token names, if it has the right shape.
pub fn refresh_token_session(token: &str) -> Option<&str> {
    let (sid, secret) = token.split_once('.')?;
    let well_formed = sid.len() == 32
        && sid.bytes().all(|b| b.is_ascii_hexdigit())
        && secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then_some(sid)
}

/// The form under which a refresh token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Records are plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_token_shape() {
        let sid = new_id();
        let token = new_refresh_token(&sid).unwrap();
        assert_eq!(refresh_token_session(&token), Some(sid.as_str()));
        assert_eq!(refresh_token_session("nope"), None);
        assert_eq!(refresh_token_session(&format!("{sid}.short")), None);
        assert_ne!(
            token_hash(&token),
            token_hash(&new_refresh_token(&sid).unwrap())
        );
    }

    #[test]
    fn liveness_reads_what_a_token_check_needs_from_a_record() {
        let mut full = record("h", None);
        full.amr = Amr::PWD.with(Amr::OTP);
        full.user_agent = Some("a \"quoted\" agent".into());
        let live: Liveness = serde_json::from_slice(&serde_json::to_vec(&full).unwrap()).unwrap();
        assert_eq!(
            (live.uid, live.amr, live.grant.is_some()),
            (full.uid, full.amr, false)
        );

        full.grant = Some(Grant {
            client: "app".into(),
            scope: "openid".into(),
            auth_time: 1,
        });
        let live: Liveness = serde_json::from_slice(&serde_json::to_vec(&full).unwrap()).unwrap();
        assert!(live.grant.is_some());
    }

    fn record(current: &str, rotated: Option<Rotation>) -> SessionRecord {
        SessionRecord {
            uid: Uuid::nil(),
            created_at: 0,
            last_seen_at: 0,
            user_agent: None,
            ip: None,
            refresh: token_hash(current),
            cv: 0,
            rotated,
            grant: None,
            amr: Amr::default(),
        }
    }

    #[test]
    fn only_the_token_rotated_last_is_forgiven_and_only_in_the_window() {
        let sid = new_id();
        let t0 = new_refresh_token(&sid).unwrap();
        let t1 = new_refresh_token(&sid).unwrap();
        let t2 = new_refresh_token(&sid).unwrap();
        let rotation = |from: &str, to: &str| Rotation {
            prev: token_hash(from),
            sealed: seal(from, to),
            at: 100,
        };
        // t0 was rotated into t1.
        let r = record(&t1, Some(rotation(&t0, &t1)));
        assert_eq!(r.classify(&t1, 105, 10), Presented::Current);
        assert_eq!(r.classify(&t0, 105, 10), Presented::Repeat(t1.clone()));
        assert_eq!(r.classify(&t0, 110, 10), Presented::Reuse, "window over");
        assert_eq!(r.classify(&t0, 105, 0), Presented::Reuse, "grace off");
        // t1 was rotated into t2: t0 is now simply an earlier token.
        let r = record(&t2, Some(rotation(&t1, &t2)));
        assert_eq!(r.classify(&t0, 101, 10), Presented::Reuse);
        assert_eq!(r.classify(&t1, 101, 10), Presented::Repeat(t2.clone()));
        // The sealed successor is no token by itself.
        assert!(!r.rotated.as_ref().unwrap().sealed.contains(&t2[33..]));
        // A record written before rotations were kept (no `rotated`, no `cv`) still works.
        let legacy: SessionRecord = serde_json::from_str(&format!(
            r#"{{"uid":"{}","created_at":1,"last_seen_at":1,"user_agent":null,"ip":null,"refresh":"{}"}}"#,
            Uuid::nil(),
            token_hash(&t0)
        ))
        .unwrap();
        assert_eq!(legacy.classify(&t0, 5, 10), Presented::Current);
        assert_eq!(legacy.classify(&t1, 5, 10), Presented::Reuse);
        assert_eq!(legacy.amr, Amr::PWD);
        // A password alone adds nothing to the record; a second factor is one short field.
        let mut r = record(&t0, None);
        assert!(!String::from_utf8(encode(&r)).unwrap().contains("amr"));
        r.amr = Amr::PWD.with(Amr::OTP);
        let json = String::from_utf8(encode(&r)).unwrap();
        assert!(json.contains(r#""amr":["pwd","otp"]"#), "{json}");
        let back: SessionRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.amr, r.amr);
    }
}
