//! Access tokens: HS256 JWTs with the ADR-004 claims plus `sid`, verified strictly
//! (pinned algorithm, known `kid`, `exp` required, small leeway).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::Role;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: Uuid,
    pub email: String,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    /// Unique per token.
    pub jti: String,
    /// The session this token belongs to; revoking the session revokes the token.
    pub sid: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token's algorithm is not accepted")]
    BadAlgorithm,
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token could not be signed")]
    Signing,
}

impl TokenError {
    /// The static text the API returns for this error.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Expired => "the token has expired",
            TokenError::NotYetValid => "the token is not valid yet",
            TokenError::BadSignature => "the token's signature is invalid",
            TokenError::BadAlgorithm => "the token's algorithm is not accepted",
            TokenError::UnknownKey => "the token was signed with an unknown key",
            TokenError::Malformed => "the token is malformed",
            TokenError::Signing => "the token could not be signed",
        }
    }
}

/// Signs and verifies access tokens with one HS256 secret.
pub struct Signer {
    kid: String,
    header: Header,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Signer {
    pub fn hs256(secret: &[u8], leeway: u64) -> Self {
        let kid = key_id(secret);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Signer {
            kid,
            header,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding).map_err(|_| TokenError::Signing)
    }

    /// Verifies signature, algorithm, key id and time claims, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(map_error)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::BadAlgorithm);
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::UnknownKey);
        }
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(map_error)
    }
}

/// A short public identifier of a secret: the first 8 bytes of its SHA-256.
fn key_id(secret: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(secret)[..8])
}

fn map_error(err: jsonwebtoken::errors::Error) -> TokenError {
    match err.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::BadAlgorithm,
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> AccessClaims {
        AccessClaims {
            sub: Uuid::nil(),
            email: "a@b.c".into(),
            role: Role::User,
            iat: 0,
            exp,
            jti: "j".into(),
            sid: "s".into(),
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let signer = Signer::hs256(&[7u8; 32], 0);
        let now = crate::clock::now_secs();
        let token = signer.sign(&claims(now + 60)).unwrap();
        assert_eq!(signer.verify(&token).unwrap().sid, "s");

        let other = Signer::hs256(&[8u8; 32], 0);
        assert_eq!(other.verify(&token).unwrap_err(), TokenError::UnknownKey);

        let expired = signer.sign(&claims(now - 10)).unwrap();
        assert_eq!(signer.verify(&expired).unwrap_err(), TokenError::Expired);

        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            signer.verify(&tampered).unwrap_err(),
            TokenError::BadSignature
        );

        assert_eq!(signer.verify("garbage").unwrap_err(), TokenError::Malformed);
    }
}
