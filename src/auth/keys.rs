//! Asymmetric signing keys (`tokens.algorithm = "EdDSA"` or `"ES256"`): other services verify
//! access tokens with the public keys from `/.well-known/jwks.json`, without a shared secret.
//!
//! Where the keys come from: the PEM files of `tokens.private_keys` (PKCS#8, or SEC1 for
//! P-256), the first signs and every one verifies and is published (rotation with overlap);
//! without them, one key generated on first start into `<data_dir>/signing_key_<alg>.pem`
//! (mode 0600) and reused afterwards.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::TokenAlgorithm;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key file {path} does not hold a {algorithm:?} private key (PKCS#8 PEM): {reason}")]
    Invalid {
        path: PathBuf,
        algorithm: TokenAlgorithm,
        reason: String,
    },
    #[error("cannot gather randomness: {0}")]
    Random(String),
    #[error("HS256 has no key pairs")]
    Symmetric,
}

/// One key pair: the private key for signing and its public JWK (with `kid`).
pub struct KeyPair {
    pub kid: String,
    /// PKCS#8 DER, as `jsonwebtoken` wants it.
    pub private_der: Vec<u8>,
    /// The public key as a JWK, `kid`, `alg` and `use` included.
    pub jwk: Value,
}

/// Where the keys came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    Files(usize),
    Generated(PathBuf),
    DataDir(PathBuf),
}

/// Loads the configured key files, or the generated key of the data dir (made if absent).
pub(crate) fn load(
    algorithm: TokenAlgorithm,
    files: &[PathBuf],
    data_dir: &Path,
) -> Result<(Vec<KeyPair>, KeySource), KeyError> {
    if algorithm == TokenAlgorithm::HS256 {
        return Err(KeyError::Symmetric);
    }
    if !files.is_empty() {
        let keys = files
            .iter()
            .map(|path| read(algorithm, path))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((keys, KeySource::Files(files.len())));
    }
    let path = data_dir.join(format!("signing_key_{}.pem", file_stem(algorithm)));
    match read(algorithm, &path) {
        Ok(key) => Ok((vec![key], KeySource::DataDir(path))),
        Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let key = generate(algorithm, &path)?;
            Ok((vec![key], KeySource::Generated(path)))
        }
        Err(e) => Err(e),
    }
}

/// The generated key's file is `signing_key_<stem>.pem`.
fn file_stem(algorithm: TokenAlgorithm) -> &'static str {
    match algorithm {
        TokenAlgorithm::HS256 => "hs256",
        TokenAlgorithm::EdDSA => "ed25519",
        TokenAlgorithm::ES256 => "p256",
        TokenAlgorithm::RS256 => "rsa",
    }
}

fn read(algorithm: TokenAlgorithm, path: &Path) -> Result<KeyPair, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    from_pem(algorithm, &pem).map_err(|reason| KeyError::Invalid {
        path: path.to_owned(),
        algorithm,
        reason,
    })
}

/// Parses a private key PEM.
pub(crate) fn from_pem(algorithm: TokenAlgorithm, pem: &str) -> Result<KeyPair, String> {
    match algorithm {
        TokenAlgorithm::EdDSA => {
            use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            Ok(ed25519(&key, der.as_bytes().to_vec()))
        }
        TokenAlgorithm::ES256 => {
            use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
            let key = p256::SecretKey::from_pkcs8_pem(pem)
                .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
                .map_err(|e| e.to_string())?;
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            Ok(p256_pair(&key, der.as_bytes().to_vec()))
        }
        TokenAlgorithm::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::pkcs8::DecodePrivateKey;
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                .or_else(|_| {
                    use rsa::pkcs1::DecodeRsaPrivateKey;
                    rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                })
                .map_err(|e| e.to_string())?;
            if rsa::traits::PublicKeyParts::size(&key) < RSA_MIN_BYTES {
                return Err("the RSA key is shorter than 2048 bits".into());
            }
            // jsonwebtoken signs RS256 with a PKCS#1 DER key.
            let der = key.to_pkcs1_der().map_err(|e| e.to_string())?;
            Ok(rsa_pair(&key, der.as_bytes().to_vec()))
        }
        TokenAlgorithm::HS256 => Err("HS256 has no key pairs".into()),
    }
}

/// RSA keys below 2048 bits are refused (NIST SP 800-131A; RFC 7518 requires 2048).
const RSA_MIN_BYTES: usize = 256;
/// The size of a generated RSA key.
const RSA_BITS: usize = 2048;

fn rsa_pair(key: &rsa::RsaPrivateKey, private_der: Vec<u8>) -> KeyPair {
    use rsa::traits::PublicKeyParts;
    let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
    let mut public = n.clone();
    public.extend_from_slice(&e);
    let kid = key_id(&public);
    let jwk = json!({
        "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
        "kid": kid, "alg": "RS256", "use": "sig",
    });
    KeyPair {
        kid,
        private_der,
        jwk,
    }
}

fn ed25519(key: &ed25519_dalek::SigningKey, private_der: Vec<u8>) -> KeyPair {
    let public = key.verifying_key().to_bytes();
    let kid = key_id(&public);
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public),
        "kid": kid, "alg": "EdDSA", "use": "sig",
    });
    KeyPair {
        kid,
        private_der,
        jwk,
    }
}

fn p256_pair(key: &p256::SecretKey, private_der: Vec<u8>) -> KeyPair {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = key.public_key().to_encoded_point(false);
    let kid = key_id(point.as_bytes());
    let coordinate = |c: Option<&p256::FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c));
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": coordinate(point.x()), "y": coordinate(point.y()),
        "kid": kid, "alg": "ES256", "use": "sig",
    });
    KeyPair {
        kid,
        private_der,
        jwk,
    }
}

/// A short public identifier of a public key: the first 8 bytes of its SHA-256.
fn key_id(public: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..8])
}

/// Generates a key and writes it as PKCS#8 PEM to a new file readable by its owner only.
pub(crate) fn generate(algorithm: TokenAlgorithm, path: &Path) -> Result<KeyPair, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.to_owned(),
        algorithm,
        reason,
    };
    let pem: String = match algorithm {
        TokenAlgorithm::EdDSA => {
            use ed25519_dalek::pkcs8::EncodePrivateKey;
            let key = ed25519_dalek::SigningKey::from_bytes(&random32()?);
            key.to_pkcs8_pem(Default::default())
                .map_err(|e| invalid(e.to_string()))?
                .to_string()
        }
        TokenAlgorithm::ES256 => {
            use p256::pkcs8::EncodePrivateKey;
            // A random scalar is out of range with probability ~2^-32: draw again.
            let key = loop {
                if let Ok(key) = p256::SecretKey::from_slice(&random32()?) {
                    break key;
                }
            };
            key.to_pkcs8_pem(Default::default())
                .map_err(|e| invalid(e.to_string()))?
                .to_string()
        }
        TokenAlgorithm::RS256 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|e| KeyError::Random(e.to_string()))?;
            key.to_pkcs8_pem(Default::default())
                .map_err(|e| invalid(e.to_string()))?
                .to_string()
        }
        TokenAlgorithm::HS256 => return Err(KeyError::Symmetric),
    };
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    crate::files::write_private(path, pem.as_bytes()).map_err(io)?;
    from_pem(algorithm, &pem).map_err(invalid)
}

fn random32() -> Result<[u8; 32], KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_published_without_private_parts() {
        for algorithm in [
            TokenAlgorithm::EdDSA,
            TokenAlgorithm::ES256,
            TokenAlgorithm::RS256,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (first, source) = load(algorithm, &[], dir.path()).unwrap();
            assert!(matches!(source, KeySource::Generated(_)));
            let (again, source) = load(algorithm, &[], dir.path()).unwrap();
            assert!(matches!(source, KeySource::DataDir(_)));
            assert_eq!(first[0].kid, again[0].kid);
            assert_eq!(first[0].jwk["kid"], first[0].kid.as_str());
            assert!(first[0].jwk.get("d").is_none());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let file = std::fs::read_dir(dir.path())
                    .unwrap()
                    .next()
                    .unwrap()
                    .unwrap();
                assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
            }
            // The wrong algorithm for the file is refused with its path.
            let other = if algorithm == TokenAlgorithm::EdDSA {
                TokenAlgorithm::ES256
            } else {
                TokenAlgorithm::EdDSA
            };
            let path = std::fs::read_dir(dir.path())
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            assert!(matches!(
                load(other, &[path], dir.path()),
                Err(KeyError::Invalid { .. })
            ));
        }
    }
}
