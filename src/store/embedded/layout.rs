//! The embedded store's on-disk format (GD-0013): one redb table, [`ENTRIES`], from compact
//! keys to values that carry their own kind and expiry.
//!
//! The Redis key layout ([`crate::store::keys`]) is what every caller, the RESP listener and
//! other services see; this is only how the embedded store keeps it. A key that follows the
//! layout's two hot shapes is a one-byte tag and 16 raw bytes instead of a prefix and 32 or
//! 36 characters; anything else is kept as written. Every decoder here is total: bytes that
//! do not parse are a [`FormatError`], never a panic (fuzzed by `fuzz/fuzz_targets/store_entry.rs`).
//!
//! ```text
//! key   = 0x00 utf-8 key                  any key, as written
//!       | 0x01 16 bytes                   session:<32 lowercase hex>
//!       | 0x02 16 bytes                   user_sessions:<hyphenated lowercase UUID>
//! value = kind:u8 expires_at:u64le payload
//!   kind 1 plain:   the value as written
//!   kind 2 session: a session record, compact (`record`)
//!   kind 3 set:     its members, sorted, each an atom
//! atom  = 0x00 varint-length utf-8 | 0x01 16 bytes (32 lowercase hex digits)
//! ```

use std::collections::BTreeSet;

use redb::TableDefinition;
use uuid::Uuid;

use super::record;
use crate::store::keys::{SESSION_PREFIX, USER_SESSIONS_PREFIX};

/// compact key → kind, expiry (Unix ms) and payload: every value and set of the store.
pub(crate) const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("store_entries");

/// Stored bytes that are not in this format: a damaged file or a bug, reported, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable stored entry: {0}")]
pub struct FormatError(pub(crate) &'static str);

const KEY_RAW: u8 = 0;
const KEY_SESSION: u8 = 1;
const KEY_USER_SESSIONS: u8 = 2;

const ATOM_TEXT: u8 = 0;
const ATOM_ID: u8 = 1;

/// What a value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Bytes as written (counters, regulation, mail, anything without a compact form).
    Plain = 1,
    /// A session record in the compact form of [`record`].
    Session = 2,
    /// A set's members.
    Set = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Result<Kind, FormatError> {
        match b {
            1 => Ok(Kind::Plain),
            2 => Ok(Kind::Session),
            3 => Ok(Kind::Set),
            _ => Err(FormatError("unknown value kind")),
        }
    }
}

/// A stored value, borrowed from its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored<'a> {
    pub kind: Kind,
    /// Unix ms.
    pub expires_at: u64,
    pub payload: &'a [u8],
}

impl<'a> Stored<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Stored<'a>, FormatError> {
        let mut r = Reader::new(bytes);
        let kind = Kind::from_u8(r.u8()?)?;
        let expires_at = u64::from_le_bytes(r.array()?);
        Ok(Stored {
            kind,
            expires_at,
            payload: r.rest(),
        })
    }

    /// The value a `GET` answers: exactly the bytes that were written.
    pub(crate) fn string(&self) -> Result<Vec<u8>, FormatError> {
        match self.kind {
            Kind::Plain => Ok(self.payload.to_vec()),
            Kind::Session => record::expand(self.payload),
            Kind::Set => Err(FormatError("a set read as a value")),
        }
    }

    pub(crate) fn members(&self) -> Result<BTreeSet<String>, FormatError> {
        match self.kind {
            Kind::Set => unpack_members(self.payload),
            Kind::Plain | Kind::Session => Err(FormatError("a value read as a set")),
        }
    }
}

/// The stored bytes of a value.
pub(crate) fn value(kind: Kind, expires_at: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// How the value `bytes` written under `key` is stored: a session record in its compact form
/// when it comes back byte for byte, anything else as written.
pub(crate) fn string_payload(key: &str, bytes: &[u8]) -> (Kind, Vec<u8>) {
    if key.starts_with(SESSION_PREFIX) {
        if let Some(compact) = record::compact(bytes) {
            return (Kind::Session, compact);
        }
    }
    (Kind::Plain, bytes.to_vec())
}

/// The stored form of `key`.
pub fn key(key: &str) -> Vec<u8> {
    if let Some(id) = key.strip_prefix(SESSION_PREFIX).and_then(hex_id) {
        tagged(KEY_SESSION, &id)
    } else if let Some(id) = key
        .strip_prefix(USER_SESSIONS_PREFIX)
        .and_then(canonical_uuid)
    {
        tagged(KEY_USER_SESSIONS, &id)
    } else {
        tagged(KEY_RAW, key.as_bytes())
    }
}

fn tagged(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + rest.len());
    out.push(tag);
    out.extend_from_slice(rest);
    out
}

/// The key a stored key stands for.
pub fn decode_key(bytes: &[u8]) -> Result<String, FormatError> {
    let mut r = Reader::new(bytes);
    let key = match r.u8()? {
        KEY_RAW => std::str::from_utf8(r.rest())
            .map_err(|_| FormatError("a key that is not UTF-8"))?
            .to_owned(),
        KEY_SESSION => format!("{SESSION_PREFIX}{}", hex(&r.array::<16>()?)),
        KEY_USER_SESSIONS => format!(
            "{USER_SESSIONS_PREFIX}{}",
            Uuid::from_bytes(r.array()?).hyphenated()
        ),
        _ => return Err(FormatError("unknown key tag")),
    };
    r.end()?;
    Ok(key)
}

/// Whether a stored key is a `session:` key (the live-session gauge counts them).
pub(crate) fn is_session_key(bytes: &[u8]) -> bool {
    match bytes.split_first() {
        Some((&KEY_SESSION, _)) => true,
        Some((&KEY_RAW, rest)) => rest.starts_with(SESSION_PREFIX.as_bytes()),
        _ => false,
    }
}

/// The stored keys of every `session:` key lie in these two ranges, in this order.
pub(crate) fn session_key_ranges() -> [(Vec<u8>, Vec<u8>); 2] {
    let mut raw_end = tagged(KEY_RAW, SESSION_PREFIX.as_bytes());
    // "session:" + 1 is "session;": every raw key with the prefix sorts before it.
    if let Some(last) = raw_end.last_mut() {
        *last += 1;
    }
    [
        (vec![KEY_SESSION], vec![KEY_SESSION + 1]),
        (tagged(KEY_RAW, SESSION_PREFIX.as_bytes()), raw_end),
    ]
}

/// The payload of a set with these members.
pub(crate) fn pack_members(members: &BTreeSet<String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(members.len() * 17);
    for m in members {
        match hex_id(m) {
            Some(id) => {
                out.push(ATOM_ID);
                out.extend_from_slice(&id);
            }
            None => {
                out.push(ATOM_TEXT);
                put_varint(&mut out, m.len() as u64);
                out.extend_from_slice(m.as_bytes());
            }
        }
    }
    out
}

fn unpack_members(payload: &[u8]) -> Result<BTreeSet<String>, FormatError> {
    let mut r = Reader::new(payload);
    let mut members = BTreeSet::new();
    while !r.is_empty() {
        let member = match r.u8()? {
            ATOM_ID => hex(&r.array::<16>()?),
            ATOM_TEXT => r.text()?.to_owned(),
            _ => return Err(FormatError("unknown member tag")),
        };
        members.insert(member);
    }
    Ok(members)
}

/// 32 lowercase hex digits (a session id) as its 16 bytes; `None` for any other string, so
/// that the bytes always render back to the same text.
pub(crate) fn hex_id(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// A UUID in exactly the form `Uuid`'s `Display` gives it, as its 16 bytes.
fn canonical_uuid(s: &str) -> Option<[u8; 16]> {
    let id = Uuid::try_parse(s).ok()?;
    (id.hyphenated().to_string() == s).then(|| id.into_bytes())
}

/// LEB128.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A cursor over stored bytes whose every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        let (&b, rest) = self.buf.split_first().ok_or(FormatError("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.buf.len() {
            return Err(FormatError("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, FormatError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(FormatError("varint overflow"));
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(FormatError("varint overflow"))
    }

    /// A varint length and that many bytes of UTF-8.
    pub(crate) fn text(&mut self) -> Result<&'a str, FormatError> {
        let len = usize::try_from(self.varint()?).map_err(|_| FormatError("length"))?;
        std::str::from_utf8(self.take(len)?).map_err(|_| FormatError("text that is not UTF-8"))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails unless every byte was read.
    pub(crate) fn end(&self) -> Result<(), FormatError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FormatError("trailing bytes"))
        }
    }
}

/// Decodes one stored entry completely, as the store would: the fuzz target's way in.
#[doc(hidden)]
pub fn decode_entry(key: &[u8], value: &[u8]) -> Result<(String, u64, Vec<u8>), FormatError> {
    let name = decode_key(key)?;
    let stored = Stored::parse(value)?;
    let bytes = match stored.kind {
        Kind::Set => pack_members(&stored.members()?),
        Kind::Plain | Kind::Session => stored.string()?,
    };
    Ok((name, stored.expires_at, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_only_canonical_ids_are_compact() {
        let sid = "0123456789abcdef0123456789abcdef";
        let uid = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        for k in [
            format!("session:{sid}"),
            format!("user_sessions:{uid}"),
            "session:0123456789ABCDEF0123456789ABCDEF".to_owned(),
            "session:short".to_owned(),
            format!("user_sessions:{}", uid.to_uppercase()),
            "regulation:ban:user:a@b.c".to_owned(),
            String::new(),
        ] {
            let stored = key(&k);
            assert_eq!(decode_key(&stored).unwrap(), k);
            assert_eq!(is_session_key(&stored), k.starts_with("session:"), "{k}");
        }
        assert_eq!(key(&format!("session:{sid}")).len(), 17);
        assert_eq!(key(&format!("user_sessions:{uid}")).len(), 17);
        assert_eq!(key("session:0123456789ABCDEF0123456789ABCDEF")[0], KEY_RAW);
        for (from, to) in session_key_ranges() {
            for k in [format!("session:{sid}"), "session:x".to_owned()] {
                let k = key(&k);
                if k[0] == from[0] {
                    assert!(from <= k && k < to);
                }
            }
            assert!(!(from.as_slice()..to.as_slice()).contains(&key("sessions").as_slice()));
        }
    }

    #[test]
    fn sets_pack_ids_and_text_and_bad_bytes_are_errors() {
        let members: BTreeSet<String> = [
            "0123456789abcdef0123456789abcdef",
            "ip:1.2.3.4",
            "",
            "ABCDEF0123456789abcdef0123456789",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let stored = value(Kind::Set, 42, &pack_members(&members));
        let parsed = Stored::parse(&stored).unwrap();
        assert_eq!(parsed.expires_at, 42);
        assert_eq!(parsed.members().unwrap(), members);
        assert!(parsed.string().is_err());
        for bad in [
            &[][..],
            &[9, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[3, 0, 0, 0][..],
            &[3, 0, 0, 0, 0, 0, 0, 0, 0, 7][..],
            &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, b'a'][..],
            &[
                3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0x7f,
            ][..],
        ] {
            assert!(decode_entry(&key("k"), bad).is_err(), "{bad:?}");
        }
        assert!(decode_key(&[KEY_SESSION, 1, 2]).is_err());
        assert!(decode_key(&[KEY_RAW, 0xff]).is_err());
        assert!(decode_key(&[7]).is_err());
    }

    #[test]
    fn varints_round_trip() {
        for n in [0, 1, 127, 128, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint().unwrap(), n);
            assert!(r.end().is_ok());
        }
    }
}
