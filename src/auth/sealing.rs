//! Sealing small secrets with AES-256-GCM under keys the database does not hold: TOTP
//! secrets at rest (GD-0010, under the second-factor key) and OpenID Connect authorization
//! codes in flight (GD-0015, under a key derived from the provider's signing key).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const NONCE: usize = 12;
const TAG: usize = 16;

/// AES-256-GCM with a random 96-bit nonce per message, keyed by one or more 256-bit keys:
/// the first seals, any opens (rotation: put the new key first). The associated data binds a
/// sealed message to its context (a user id, a purpose): copied into another, it does not open.
pub struct Sealer {
    /// `(key id, cipher)`.
    keys: Vec<(String, Aes256Gcm)>,
}

impl Sealer {
    /// A sealer over raw 256-bit keys (the first seals).
    pub fn from_keys(keys: &[[u8; 32]]) -> Sealer {
        Sealer {
            keys: keys
                .iter()
                .map(|k| {
                    let id = URL_SAFE_NO_PAD.encode(&Sha256::digest(k)[..6]);
                    (id, Aes256Gcm::new(k.into()))
                })
                .collect(),
        }
    }

    /// `v1.<key id>.<nonce ‖ ciphertext ‖ tag, base64url>`.
    pub fn seal(&self, aad: &[u8], message: &[u8]) -> Option<String> {
        let (id, cipher) = self.keys.first()?;
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).ok()?;
        let sealed = cipher
            .encrypt(&nonce.into(), Payload { msg: message, aad })
            .ok()?;
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(format!("v1.{id}.{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The message, if one of the keys sealed it with this associated data.
    pub fn open(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == id)?;
        let data = URL_SAFE_NO_PAD.decode(data).ok()?;
        if data.len() < NONCE + TAG {
            return None;
        }
        let (nonce, ciphertext) = data.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().ok()?;
        cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

/// A 256-bit key for one `purpose`, derived from secret key material (HKDF-SHA256, RFC 5869,
/// through ring), so that one secret can key several uses without one revealing another.
pub fn derive_key(secret: &[u8], purpose: &'static [u8]) -> [u8; 32] {
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(secret);
    let mut key = [0u8; 32];
    // Both calls fail only for an output longer than 255 hashes; 32 bytes is one.
    let filled = prk
        .expand(&[purpose], ring::hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut key));
    debug_assert!(filled.is_ok());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_only_with_the_key_and_for_their_context() {
        let sealer = Sealer::from_keys(&[[7; 32]]);
        let sealed = sealer.seal(b"ada", b"secret").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(sealer.open(b"ada", &sealed).unwrap(), b"secret");
        assert!(
            sealer.open(b"bob", &sealed).is_none(),
            "bound to its context"
        );
        assert!(
            Sealer::from_keys(&[[8; 32]])
                .open(b"ada", &sealed)
                .is_none()
        );
        // Rotation: a new key first seals; the old one still opens.
        let rotated = Sealer::from_keys(&[[8; 32], [7; 32]]);
        assert_eq!(rotated.open(b"ada", &sealed).unwrap(), b"secret");
        assert!(
            sealer
                .open(b"ada", &rotated.seal(b"ada", b"x").unwrap())
                .is_none()
        );
        for junk in ["", "v1", "v1.x.y", "v2.a.b", &sealed[..sealed.len() - 2]] {
            assert!(sealer.open(b"ada", junk).is_none(), "{junk}");
        }
        // Every bit of the sealed text counts.
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(sealer.open(b"ada", &flipped).is_none());
    }

    #[test]
    fn derived_keys_differ_by_secret_and_purpose() {
        let a = derive_key(b"secret one", b"purpose a");
        assert_eq!(a, derive_key(b"secret one", b"purpose a"));
        assert_ne!(a, derive_key(b"secret one", b"purpose b"));
        assert_ne!(a, derive_key(b"secret two", b"purpose a"));
        // RFC 5869, test case 3 (no salt, no info): the first 32 bytes of its OKM.
        let okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d";
        let hex: String = derive_key(&[0x0b; 22], b"")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, okm);
    }
}
