//! What the session store holds for a session (see [`crate::store::keys`] for the keys).
//!
//! A refresh token is opaque: `<session id>.<256 random bits, base64url>`. The store keeps
//! only its SHA-256, never the token, except the successor of a just-rotated token, which
//! lives for the reuse grace window so that a repeated refresh can be answered with it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

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
    /// Hash of the current refresh token.
    pub refresh: String,
}

/// `refresh:<hash>`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub sid: String,
    pub uid: Uuid,
}

/// `rotated:<hash>`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotatedRecord {
    pub sid: String,
    /// Unix seconds of the rotation.
    pub at: u64,
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
}
