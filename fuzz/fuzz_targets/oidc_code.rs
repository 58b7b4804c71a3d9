//! Authorization codes (`CodeGrant::open`), which the token endpoint opens from whatever a
//! client sends as `code`.
//!
//! The first byte picks a mode:
//! - 0 and anything else: the rest is the code text, as a client sends it;
//! - 1: the rest, split at NUL bytes, fills a grant that is sealed with the right key and
//!   must open to exactly itself, and not at all once it has expired or a byte changed.
#![no_main]

use std::sync::OnceLock;

use gatehouse::auth::oidc::CodeGrant;
use gatehouse::auth::sealing::{Sealer, derive_key};
use libfuzzer_sys::fuzz_target;

fn sealer() -> &'static Sealer {
    static SEALER: OnceLock<Sealer> = OnceLock::new();
    SEALER.get_or_init(|| Sealer::from_keys(&[derive_key(b"fuzz rsa key", b"fuzz codes")]))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode != 1 {
        let _ = CodeGrant::open(sealer(), &String::from_utf8_lossy(rest), 0);
        return;
    }
    let mut parts = rest
        .split(|&b| b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let mut next = || parts.next().unwrap_or_default();
    let grant = CodeGrant {
        id: next(),
        exp_ms: 1_000,
        client: next(),
        redirect_uri: next(),
        uid: uuid::Uuid::from_u128(u128::from(rest.len() as u32)),
        scope: next(),
        nonce: Some(next()).filter(|n| !n.is_empty()),
        challenge: Some(next()).filter(|c| !c.is_empty()),
        auth_time: 7,
        amr: Default::default(),
        cv: rest.len() as u64,
    };
    let Some(code) = grant.seal(sealer()) else {
        return;
    };
    if code.len() > 8192 {
        assert_eq!(CodeGrant::open(sealer(), &code, 0), None, "too long");
        return;
    }
    assert_eq!(CodeGrant::open(sealer(), &code, 999).as_ref(), Some(&grant));
    assert_eq!(CodeGrant::open(sealer(), &code, 1_000), None, "expired");
    let mut altered = code.clone().into_bytes();
    let at = rest.len() % altered.len();
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8_lossy(&altered);
    assert_eq!(CodeGrant::open(sealer(), &altered, 0), None, "altered at {at}");
});
