//! The compact on-disk form of a session record (GD-0013).
//!
//! Callers write and read the record as JSON (`domain::session::encode`), the form the Redis
//! backend stores and the RESP listener answers. The embedded store keeps it as bytes: ids and
//! hashes raw instead of hex or base64 text, numbers as varints, no field names. A record is
//! stored this way only when it comes back as the very same JSON bytes ([`compact`]), so a
//! `GET` always answers what was written and a compare-and-set compares what the caller read.
//!
//! ```text
//! record = version:u8(=1) uid:16 created_at:varint last_seen_at:delta
//!          user_agent:opt-text ip:opt-text refresh:text cv:varint amr:u8
//!          (0 | 1 prev:text sealed:text at:delta)           rotation, at from last_seen_at
//!          (0 | 1 client:text scope:text auth_time:delta)   grant, from created_at
//! delta  = varint of the zigzagged wrapping difference from the time named (a few bytes
//!          where the absolute time takes five)
//! text   = 1 varint-length utf-8 | 2 32 bytes (unpadded base64url of them)
//!        | 3 4 bytes (IPv4) | 4 16 bytes (IPv6)            each only when it renders back exactly
//! opt-text = 0 | text
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::layout::{FormatError, Reader, put_varint};
use crate::domain::factors::Amr;
use crate::domain::session::{self, Grant, Rotation, SessionRecord};

const VERSION: u8 = 1;

const TEXT_NONE: u8 = 0;
const TEXT_UTF8: u8 = 1;
const TEXT_B64_32: u8 = 2;
const TEXT_IPV4: u8 = 3;
const TEXT_IPV6: u8 = 4;

/// The compact form of the JSON record `json`, if it decodes back to exactly `json`.
pub(crate) fn compact(json: &[u8]) -> Option<Vec<u8>> {
    let record: SessionRecord = serde_json::from_slice(json).ok()?;
    // A record written by another hand (field order, spacing, escapes) stays as written.
    (session::encode(&record) == json).then(|| encode(&record))
}

/// The JSON record that the compact `bytes` stand for.
pub(crate) fn expand(bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
    Ok(session::encode(&decode(bytes)?))
}

pub(crate) fn encode(r: &SessionRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(VERSION);
    out.extend_from_slice(r.uid.as_bytes());
    put_varint(&mut out, r.created_at);
    put_delta(&mut out, r.last_seen_at, r.created_at);
    put_opt_text(&mut out, r.user_agent.as_deref());
    put_opt_text(&mut out, r.ip.as_deref());
    put_text(&mut out, &r.refresh);
    put_varint(&mut out, r.cv);
    out.push(r.amr.bits());
    match &r.rotated {
        None => out.push(0),
        Some(rot) => {
            out.push(1);
            put_text(&mut out, &rot.prev);
            put_text(&mut out, &rot.sealed);
            put_delta(&mut out, rot.at, r.last_seen_at);
        }
    }
    match &r.grant {
        None => out.push(0),
        Some(g) => {
            out.push(1);
            put_text(&mut out, &g.client);
            put_text(&mut out, &g.scope);
            put_delta(&mut out, g.auth_time, r.created_at);
        }
    }
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<SessionRecord, FormatError> {
    let mut r = Reader::new(bytes);
    if r.u8()? != VERSION {
        return Err(FormatError("unknown session record version"));
    }
    let uid = Uuid::from_bytes(r.array()?);
    let created_at = r.varint()?;
    let last_seen_at = delta(&mut r, created_at)?;
    let user_agent = opt_text(&mut r)?;
    let ip = opt_text(&mut r)?;
    let refresh = text(&mut r)?;
    let cv = r.varint()?;
    let amr = Amr::from_bits(r.u8()?).ok_or(FormatError("unknown amr bits"))?;
    let rotated = match r.u8()? {
        0 => None,
        1 => Some(Rotation {
            prev: text(&mut r)?,
            sealed: text(&mut r)?,
            at: delta(&mut r, last_seen_at)?,
        }),
        _ => return Err(FormatError("bad rotation flag")),
    };
    let grant = match r.u8()? {
        0 => None,
        1 => Some(Grant {
            client: text(&mut r)?,
            scope: text(&mut r)?,
            auth_time: delta(&mut r, created_at)?,
        }),
        _ => return Err(FormatError("bad grant flag")),
    };
    r.end()?;
    Ok(SessionRecord {
        uid,
        created_at,
        last_seen_at,
        user_agent,
        ip,
        refresh,
        cv,
        rotated,
        amr,
        grant,
    })
}

/// `t` as its difference from `base`, which every u64 survives (wrapping both ways).
fn put_delta(out: &mut Vec<u8>, t: u64, base: u64) {
    let d = t.wrapping_sub(base) as i64;
    put_varint(out, ((d << 1) ^ (d >> 63)) as u64);
}

fn delta(r: &mut Reader, base: u64) -> Result<u64, FormatError> {
    let z = r.varint()?;
    let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
    Ok(base.wrapping_add(d as u64))
}

fn put_opt_text(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(TEXT_NONE),
        Some(s) => put_text(out, s),
    }
}

/// The shortest form of `s` that renders back to exactly `s`.
fn put_text(out: &mut Vec<u8>, s: &str) {
    if s.len() == 43 {
        if let Ok(raw) = URL_SAFE_NO_PAD.decode(s) {
            if raw.len() == 32 && URL_SAFE_NO_PAD.encode(&raw) == s {
                out.push(TEXT_B64_32);
                out.extend_from_slice(&raw);
                return;
            }
        }
    }
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        if ip.to_string() == s {
            out.push(TEXT_IPV4);
            out.extend_from_slice(&ip.octets());
            return;
        }
    }
    if let Ok(ip) = s.parse::<Ipv6Addr>() {
        if ip.to_string() == s {
            out.push(TEXT_IPV6);
            out.extend_from_slice(&ip.octets());
            return;
        }
    }
    out.push(TEXT_UTF8);
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn opt_text(r: &mut Reader) -> Result<Option<String>, FormatError> {
    match r.u8()? {
        TEXT_NONE => Ok(None),
        form => text_of(form, r).map(Some),
    }
}

fn text(r: &mut Reader) -> Result<String, FormatError> {
    let form = r.u8()?;
    text_of(form, r)
}

fn text_of(form: u8, r: &mut Reader) -> Result<String, FormatError> {
    Ok(match form {
        TEXT_UTF8 => r.text()?.to_owned(),
        TEXT_B64_32 => URL_SAFE_NO_PAD.encode(r.array::<32>()?),
        TEXT_IPV4 => Ipv4Addr::from(r.array::<4>()?).to_string(),
        TEXT_IPV6 => Ipv6Addr::from(r.array::<16>()?).to_string(),
        _ => return Err(FormatError("unknown text form")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::{new_id, new_refresh_token, seal, token_hash};

    fn sample() -> SessionRecord {
        let sid = new_id();
        let t0 = new_refresh_token(&sid).unwrap();
        let t1 = new_refresh_token(&sid).unwrap();
        SessionRecord {
            uid: Uuid::new_v4(),
            created_at: 1_780_000_000,
            last_seen_at: 1_780_000_900,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) \"quoted\" é".into()),
            ip: Some("203.0.113.9".into()),
            refresh: token_hash(&t1),
            cv: 3,
            rotated: Some(Rotation {
                prev: token_hash(&t0),
                sealed: seal(&t0, &t1),
                at: 1_780_000_900,
            }),
            amr: Amr::PWD.with(Amr::OTP),
            grant: Some(Grant {
                client: "app".into(),
                scope: "openid email".into(),
                auth_time: 1_780_000_000,
            }),
        }
    }

    #[test]
    fn records_come_back_as_the_same_json() {
        let mut r = sample();
        for ip in [
            Some("2001:db8::1"),
            Some("::ffff:1.2.3.4"),
            Some("01.2.3.4"),
            None,
        ] {
            r.ip = ip.map(str::to_owned);
            let json = session::encode(&r);
            let compact = compact(&json).expect("a record of ours is compact");
            assert_eq!(expand(&compact).unwrap(), json);
            assert!(
                compact.len() * 2 < json.len(),
                "{} vs {}",
                compact.len(),
                json.len()
            );
        }
        // Times out of order, or at the ends of the range, come back too.
        for (created, seen, at) in [(5, 1, 0), (0, u64::MAX, 3), (u64::MAX, 0, u64::MAX)] {
            r.created_at = created;
            r.last_seen_at = seen;
            if let Some(rot) = r.rotated.as_mut() {
                rot.at = at;
            }
            let json = session::encode(&r);
            assert_eq!(expand(&compact(&json).unwrap()).unwrap(), json);
        }
        r.rotated = None;
        r.grant = None;
        r.user_agent = None;
        r.amr = Amr::PWD;
        let json = session::encode(&r);
        assert_eq!(expand(&compact(&json).unwrap()).unwrap(), json);
    }

    #[test]
    fn anything_else_is_left_as_written_or_an_error() {
        let json = session::encode(&sample());
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(&json);
        assert_eq!(compact(&spaced), None, "not the same bytes back");
        assert_eq!(compact(b"v"), None);
        let good = encode(&sample());
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        let mut version = good;
        version[0] = 9;
        assert!(decode(&version).is_err());
    }
}
