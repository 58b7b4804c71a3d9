//! Every session-store key, in one place. This layout is a stable interface: another service
//! may check a session with a plain Redis client (the Redis backend prefixes each key).

/// The session record (JSON [`crate::auth::sessions::SessionRecord`]); present while the
/// session lives. Every access token carries its session id as `sid`, so deleting this key
/// revokes every token of the session at once.
pub fn session(sid: &str) -> String {
    format!("session:{sid}")
}

/// The current refresh token of a session, by the SHA-256 of the token.
pub fn refresh(token_hash: &str) -> String {
    format!("refresh:{token_hash}")
}

/// Marks a refresh token as used; presenting it again is reuse and revokes the session.
pub fn rotated(token_hash: &str) -> String {
    format!("rotated:{token_hash}")
}

/// The successor of a just-rotated refresh token, kept for `tokens.refresh_reuse_grace`
/// seconds so that a repeated refresh (two tabs) gets the same pair.
pub fn grace(token_hash: &str) -> String {
    format!("grace:{token_hash}")
}

/// The set of a user's session ids.
pub fn user_sessions(user_id: &str) -> String {
    format!("user_sessions:{user_id}")
}

/// Failed logins in the current `regulation.find_time` window; `subject` is
/// `user:<email>` or `ip:<address>`.
pub fn failures(subject: &str) -> String {
    format!("regulation:failures:{subject}")
}

/// A ban; the value is the Unix second it ends.
pub fn ban(subject: &str) -> String {
    format!("regulation:ban:{subject}")
}

/// The set of banned subjects, for listing.
pub fn bans() -> String {
    "regulation:bans".to_owned()
}
