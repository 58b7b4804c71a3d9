//! Every session-store key, in one place. This layout is a stable interface: another service
//! may check a session with a plain Redis client (the Redis backend prefixes each key).
//! Which keys other services may read is decided here too ([`readable_by_services`]): the
//! session records and each user's set of sessions, nothing of regulation or indexes.

/// The session record (JSON [`crate::domain::session::SessionRecord`]); present while the
/// session lives. Every access token carries its session id as `sid`, so deleting this key
/// revokes every token of the session at once. It is the whole state of a session: the
/// hash of its current refresh token and what the reuse grace needs are fields of it, so a
/// session is one key however often it rotates. (Releases before 2026-12 also wrote
/// `refresh:`, `rotated:` and `grace:` keys; nothing reads them any more and they expire.)
/// The embedded store keeps this key and the record in compact forms of its own (GD-0013);
/// callers and other services always see this key and the JSON.
pub(crate) fn session(sid: &str) -> String {
    // Not `format!`: this runs on every token check, and the formatting machinery cost
    // 3 % of one (BENCHMARKS.md, *profile*).
    [SESSION_PREFIX, sid].concat()
}

/// What every session key starts with.
pub(crate) const SESSION_PREFIX: &str = "session:";

/// Redis only, internal: a sorted set of the session keys by expiry (Unix ms), so that the
/// live-session gauge is a `ZCARD`, not a scan. Not part of the layout other services read.
pub(crate) const SESSION_INDEX: &str = "sessions_by_expiry";

/// The set of a user's session ids.
pub(crate) fn user_sessions(user_id: &str) -> String {
    format!("{USER_SESSIONS_PREFIX}{user_id}")
}

/// What every user's set of sessions starts with.
pub(crate) const USER_SESSIONS_PREFIX: &str = "user_sessions:";

/// Whether another service may read `key` (unprefixed), and what it holds by the layout:
/// whether a session lives (a value), which sessions a user has (a set); `None` for every
/// other key. None of these values is a usable token (GD-0006). The RESP listener answers
/// these keys and no others.
pub(crate) fn readable_by_services(key: &str) -> Option<super::KeyKind> {
    if key.starts_with(SESSION_PREFIX) {
        Some(super::KeyKind::String)
    } else if key.starts_with(USER_SESSIONS_PREFIX) {
        Some(super::KeyKind::Set)
    } else {
        None
    }
}

/// An OpenID Connect authorization code, by the SHA-256 of the code (base64url): its
/// record, then, once redeemed, the grant session it made (so a second use can end it).
/// Lives `oidc.code_ttl` seconds, a little longer once redeemed. Internal.
pub(crate) fn oidc_code(code_hash: &str) -> String {
    format!("oidc_code:{code_hash}")
}

/// A login whose password was right, waiting for its second factor (GD-0010):
/// `mfa_login:<SHA-256 of the mfa_token>`, living 300 s, taken once. The store holds only the
/// hash, so a copy of it (a Redis dump) cannot finish anyone's login.
pub(crate) fn mfa_login(token_hash: &str) -> String {
    format!("mfa_login:{token_hash}")
}

/// A WebAuthn ceremony between its options and its answer: `webauthn:<random id>` → the
/// ceremony's state (its challenge), living 300 s, taken once: an assertion is never
/// accepted twice, on any node.
pub(crate) fn webauthn_ceremony(id: &str) -> String {
    format!("webauthn:{id}")
}

/// A TOTP secret handed out and not yet confirmed by a code: `totp_pending:<user id>` → the
/// sealed secret, living 600 s.
pub(crate) fn totp_pending(user_id: &str) -> String {
    format!("totp_pending:{user_id}")
}
/// The live link of a user in one slot (JSON [`crate::domain::link::LinkRecord`], which
/// holds the token's hash, never the token); the user's newest link of that slot.
pub(crate) fn link(slot: crate::domain::link::Slot, user_id: &str) -> String {
    format!("link:{}:{user_id}", slot.as_str())
}

/// A mail waiting to be sent (JSON, see `crate::mail::outbox`), until it is sent or given up.
pub(crate) fn outbox_message(id: &str) -> String {
    format!("{OUTBOX_PREFIX}{id}")
}

const OUTBOX_PREFIX: &str = "outbox:";

/// The set of ids of the mails waiting in the outbox.
pub(crate) const OUTBOX: &str = "outbox_pending";

/// Logins in one hour, for the admin overview's chart: `stats:logins:<ok|failed>:<Unix hour>`
/// (the Unix second divided by 3600) → a decimal count, living 25 h from its first
/// increment, so the last 24 hours are always there and nothing older piles up. Counted in
/// the session store, so every node's logins add up on Redis. Internal.
pub(crate) fn login_stats(result: &str, hour: u64) -> String {
    format!("stats:logins:{result}:{hour}")
}

/// The number of the last audit event kept for the admin page (`crate::audit`). Internal.
pub(crate) const AUDIT_SEQ: &str = "audit:seq";

/// The ring slot of kept audit event number `n mod crate::audit::KEPT`. Internal.
pub(crate) fn audit_slot(slot: u64) -> String {
    format!("audit:{slot}")
}

/// Failed logins in the current `regulation.find_time` window; `subject` is
/// `user:<email>` or `ip:<address>`.
pub(crate) fn failures(subject: &str) -> String {
    format!("regulation:failures:{subject}")
}

/// A ban; the value is the Unix second it ends.
pub(crate) fn ban(subject: &str) -> String {
    format!("regulation:ban:{subject}")
}

/// The set of banned subjects, for listing.
pub(crate) fn bans() -> String {
    "regulation:bans".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sessions_are_readable_by_other_services() {
        use crate::store::KeyKind;
        assert_eq!(readable_by_services(&session("abc")), Some(KeyKind::String));
        assert_eq!(
            readable_by_services(&user_sessions("u")),
            Some(KeyKind::Set)
        );
        for internal in [
            failures("ip:1.2.3.4"),
            ban("user:a@b.c"),
            bans(),
            oidc_code("x"),
            mfa_login("h"),
            webauthn_ceremony("c"),
            totp_pending("u"),
            link(crate::domain::link::Slot::Password, "u"),
            outbox_message("m"),
            OUTBOX.to_owned(),
            login_stats("ok", 1),
            AUDIT_SEQ.to_owned(),
            audit_slot(7),
        ] {
            assert_eq!(readable_by_services(&internal), None, "{internal}");
        }
        assert_eq!(readable_by_services(SESSION_INDEX), None);
    }
}
