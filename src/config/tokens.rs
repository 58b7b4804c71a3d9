//! `[tokens]`: lifetimes, claims and the signing algorithm of the tokens.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive_secs};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    /// Access-token lifetime, seconds.
    pub access_ttl: u64,
    /// Refresh-token (and idle session) lifetime, seconds.
    pub refresh_ttl: u64,
    /// Seconds in which a repeated refresh answers with the current pair instead of
    /// counting as reuse.
    pub refresh_reuse_grace: u64,
    /// Seconds of clock skew tolerated on `exp`/`nbf`.
    pub leeway: u64,
    /// When set, put in `iss` and required on every token presented.
    pub issuer: Option<String>,
    /// When set, put in `aud` and required on every token presented.
    pub audience: Option<String>,
    /// `HS256` (shared secret), `EdDSA` or `ES256` (key pairs, published as JWKS).
    pub algorithm: TokenAlgorithm,
    /// PEM private keys for EdDSA/ES256: the first signs, all verify and are published.
    /// Empty: one key generated into the data dir.
    pub private_keys: Vec<PathBuf>,
}

/// `tokens.algorithm`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TokenAlgorithm {
    /// HMAC-SHA256 with the shared secret (`JWT_SECRET`, …).
    #[default]
    HS256,
    /// Ed25519.
    EdDSA,
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// RSA PKCS#1 v1.5 with SHA-256: OpenID Connect id_tokens only (every relying party
    /// verifies it), never access tokens.
    RS256,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            access_ttl: 900,
            refresh_ttl: 604_800,
            refresh_reuse_grace: 10,
            leeway: 30,
            issuer: None,
            audience: None,
            algorithm: Default::default(),
            private_keys: Vec::new(),
        }
    }
}

impl Tokens {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive_secs("tokens.access_ttl", self.access_ttl)?;
        positive_secs("tokens.refresh_ttl", self.refresh_ttl)?;
        if self.algorithm == TokenAlgorithm::RS256 {
            return Err(invalid(
                "tokens.algorithm",
                "must be \"HS256\", \"EdDSA\" or \"ES256\" (RS256 signs OpenID Connect id_tokens only)",
            ));
        }
        if self.refresh_reuse_grace >= self.refresh_ttl {
            return Err(invalid(
                "tokens.refresh_reuse_grace",
                "must be shorter than tokens.refresh_ttl",
            ));
        }
        Ok(())
    }
}
