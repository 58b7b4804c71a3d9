//! Spellings of a plain path that some application reads as that same path, and the
//! property they must keep: never judged more leniently than the plain path. Shared by the
//! unit tests and the `access` fuzz target (built with `--cfg fuzzing`); not in the server.

use super::{AccessControl, Decide, Decision, Policy, Refused};
use crate::config::access::{RawAccessControl, RawRule};

/// The rule set the property is checked against, validated as a configured one is. The
/// default is `bypass`, so a variant that slips past a restrictive rule shows up as a bypass.
pub fn rules() -> AccessControl {
    let rule = |domain: &str, path: Option<&str>, policy, roles: &[&str]| RawRule {
        domain: domain.into(),
        path: path.map(Into::into),
        policy,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        groups: Vec::new(),
    };
    use Policy::*;
    RawAccessControl {
        default_policy: Bypass,
        rules: vec![
            rule("app.example.org", Some("/public/secret"), Deny, &[]),
            rule("app.example.org", Some("/public"), Bypass, &[]),
            rule("app.example.org", Some("/admin"), Authenticated, &["admin"]),
            rule("app.example.org", Some("/blocked"), Deny, &[]),
            rule("app.example.org", Some("/api/v1"), Authenticated, &["user"]),
            rule("app.example.org", Some("/api"), Authenticated, &[]),
            rule("app.example.org", Some("/vault"), TwoFactor, &[]),
            rule("app.example.org", Some("/static"), Bypass, &[]),
            rule("*.example.org", Some("/health"), Bypass, &[]),
            rule("*.example.org", Some("/admin"), Authenticated, &["admin"]),
            rule("intranet.example.org", None, Deny, &[]),
            rule("status.example.org", None, Bypass, &[]),
        ],
    }
    .validate()
    .expect("the variants' rules are valid")
}

pub const HOSTS: &[&str] = &[
    "app.example.org",
    "APP.example.org",
    "wiki.example.org",
    "intranet.example.org",
    "status.example.org",
];

const SEGMENTS: &[&str] = &[
    "admin",
    "public",
    "secret",
    "blocked",
    "api",
    "v1",
    "static",
    "health",
    "vault",
    "x",
    "a.b",
    "Admin",
    "index.html",
];

/// A plain path: one segment per byte (at most six), chosen from the rules' vocabulary.
pub fn plain(choices: &[u8]) -> String {
    let mut path = String::new();
    for &c in choices.iter().take(6) {
        path.push('/');
        path.push_str(SEGMENTS[c as usize % SEGMENTS.len()]);
    }
    if path.is_empty() {
        path.push('/');
    }
    if choices.first().is_some_and(|c| c & 0x80 != 0) {
        path.push('/');
    }
    path
}

/// `plain` rewritten by `ops` (pairs of an operation and a position), each rewrite one that
/// some application undoes: percent-encoding (once or twice, any character), `./`, `x/../`,
/// `;p=1` parameters, `\` or an encoded slash for `/`, repeated slashes, a changed letter
/// case, trailing dots or spaces.
pub fn variant(plain: &str, ops: &[u8]) -> String {
    let mut path = plain.as_bytes().to_vec();
    for pair in ops.chunks(2).take(8) {
        let (op, at) = (pair[0], *pair.get(1).unwrap_or(&0) as usize);
        let slashes: Vec<usize> = (0..path.len()).filter(|&i| path[i] == b'/').collect();
        // Where a segment ends: before the next slash, or at the end.
        let ends: Vec<usize> = slashes
            .iter()
            .skip(1)
            .copied()
            .chain([path.len()])
            .collect();
        let slash = slashes.get(at % slashes.len().max(1)).copied();
        let end = ends[at % ends.len()];
        let index = at % path.len().max(1);
        let upper = op & 0x80 != 0;
        match op % 11 {
            0 if !path.is_empty() => {
                let e = escape(path[index], upper);
                path.splice(index..index + 1, e);
            }
            1 if !path.is_empty() => {
                let mut e = b"%25".to_vec();
                e.extend_from_slice(&escape(path[index], upper)[1..]);
                path.splice(index..index + 1, e);
            }
            2 => insert(&mut path, slash.map_or(0, |s| s + 1), b"./"),
            3 => insert(&mut path, slash.map_or(0, |s| s + 1), b"x/../"),
            4 => insert(&mut path, end, if upper { b";" } else { b";p=1" }),
            5 => {
                if let Some(s) = slash {
                    path[s] = b'\\';
                }
            }
            6 if !path.is_empty() => path[index] = flip_case(path[index]),
            7 => insert(&mut path, slash.unwrap_or(0), b"/"),
            8 => insert(&mut path, end, if upper { b"%20" } else { b"." }),
            9 => {
                if let Some(s) = slash {
                    let e: &[u8] = if upper { b"%5C" } else { b"%2f" };
                    path.splice(s..s + 1, e.iter().copied());
                }
            }
            10 => insert(&mut path, end, b"/."),
            _ => {}
        }
    }
    String::from_utf8(path).expect("ASCII in, ASCII out")
}

fn escape(b: u8, upper: bool) -> Vec<u8> {
    let e = if upper {
        format!("%{b:02X}")
    } else {
        format!("%{b:02x}")
    };
    e.into_bytes()
}

fn flip_case(b: u8) -> u8 {
    if b.is_ascii_lowercase() {
        b.to_ascii_uppercase()
    } else {
        b.to_ascii_lowercase()
    }
}

fn insert(path: &mut Vec<u8>, at: usize, what: &[u8]) {
    path.splice(at..at, what.iter().copied());
}

/// Whether `variant` is judged at least as strictly as `plain`: refused, denied, or
/// asking for every requirement that `plain` asks for.
pub fn at_least_as_strict(variant: &Result<Decision<'_>, Refused>, plain: &Decision<'_>) -> bool {
    match (variant, plain) {
        (Err(_), _) | (Ok(Decision::Deny), _) => true,
        (Ok(_), Decision::Deny) => false,
        (Ok(Decision::Authenticated(v)), Decision::Authenticated(p)) => v.include(p),
        (Ok(Decision::Authenticated(_)), Decision::Bypass) => true,
        (Ok(Decision::Bypass), Decision::Bypass) => true,
        (Ok(Decision::Bypass), Decision::Authenticated(_)) => false,
    }
}

/// Checks one plain path and one variant of it on `host`.
pub fn check(rules: &AccessControl, host: &str, plain: &str, variant: &str) -> Result<(), String> {
    let expected = rules
        .decide(host, plain)
        .map_err(|e| format!("the plain path {plain:?} was refused: {e}"))?;
    let got = rules.decide(host, variant);
    if at_least_as_strict(&got, &expected) {
        Ok(())
    } else {
        Err(format!(
            "{host}: {variant:?} got {got:?}, more lenient than {plain:?}: {expected:?}"
        ))
    }
}

/// The reading of `path` that undoes everything (decoded until stable, `\` a separator,
/// parameters and `.` segments dropped), when it is itself a plain path: `path` must never
/// be judged more leniently than it.
pub fn canonical_plain(path: &str) -> Option<String> {
    let canonical = String::from_utf8(super::path::canonical(path.as_bytes())?).ok()?;
    super::path::is_plain(canonical.as_bytes()).then_some(canonical)
}
