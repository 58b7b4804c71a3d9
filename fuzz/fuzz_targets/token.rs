//! Access-token verification (`Signer::verify`) and the refresh-token helpers.
//!
//! The first byte picks a mode, so that the fuzzer gets past the signature check too:
//! - 0 and anything else: the rest is the token text, as a client sends it;
//! - 1: the rest is `<header JSON> \0 <claims JSON>`, signed here with the right key;
//! - 2: the rest is the claims JSON, signed under a well-formed header with the right `kid`.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::domain::session::{refresh_token_session, token_hash};
use gatehouse::auth::tokens::Signer;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const SECRET: [u8; 32] = [7; 32];

/// The plain signer, and one that also requires `iss` and `aud`.
fn signers() -> &'static [Signer; 2] {
    static SIGNERS: OnceLock<[Signer; 2]> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        let keys = [SECRET.to_vec(), vec![9u8; 32]];
        [
            Signer::hs256(&keys[..1], 30, None, None),
            Signer::hs256(
                &keys,
                30,
                Some("https://auth.example.org"),
                Some("gatehouse"),
            ),
        ]
    })
}

/// The header gatehouse itself writes: HS256 and the key id of `SECRET`.
fn good_header() -> &'static str {
    static HEADER: OnceLock<String> = OnceLock::new();
    HEADER.get_or_init(|| {
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(SECRET)[..8]);
        format!(r#"{{"typ":"JWT","alg":"HS256","kid":"{kid}"}}"#)
    })
}

/// A JWT with the given header and claims bytes and a valid HS256 signature.
fn sign(header: &[u8], claims: &[u8]) -> String {
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&SECRET).unwrap();
    mac.update(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    token
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = match mode {
        1 => match rest.iter().position(|&b| b == 0) {
            Some(at) => sign(&rest[..at], &rest[at + 1..]),
            None => sign(rest, b"{}"),
        },
        2 => sign(good_header().as_bytes(), rest),
        _ => String::from_utf8_lossy(rest).into_owned(),
    };
    for signer in signers() {
        let _ = signer.verify(&token);
    }

    let text = String::from_utf8_lossy(data);
    if let Some(sid) = refresh_token_session(&text) {
        assert_eq!(sid.len(), 32);
    }
    assert_eq!(token_hash(&text).len(), 43);
});
