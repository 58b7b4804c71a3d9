//! Access tokens: HS256 (or EdDSA/ES256, see [`super::keys`]) JWTs with the ADR-004 claims plus `sid`, verified strictly
//! (pinned algorithm, known `kid`, `exp` required, small leeway).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::keys::KeyPair;
use crate::config::TokenAlgorithm;
use crate::domain::Role;
use crate::domain::factors::Amr;

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// How the session was signed in (RFC 8176: `pwd`, `otp`, `hwk`, `user`). Tokens issued
    /// before second factors existed have none and read as `["pwd"]`. The session record
    /// holds the authoritative value: a token check takes it from there, so a step-up counts
    /// for every token of the session at once.
    #[serde(default)]
    pub amr: Amr,
    /// With `mfa.required`: the user has no second factor yet, and this session may only
    /// enrol one (recomputed whenever a token is issued).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enrolment_only: bool,
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
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
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
            TokenError::WrongIssuer => "the token was issued by someone else",
            TokenError::WrongAudience => "the token is meant for another audience",
            TokenError::Signing => "the token could not be signed",
        }
    }
}

/// Signs access tokens with the first HS256 secret and verifies them with any of the
/// secrets, chosen by the token's `kid` (key rotation).
pub struct Signer {
    /// The one algorithm accepted (pinned).
    algorithm: Algorithm,
    /// The public keys for `/.well-known/jwks.json` (none for HS256).
    jwks: Vec<serde_json::Value>,
    header: Header,
    encoding: EncodingKey,
    /// `(kid, key)`, the signing key first.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    /// The signing key parsed once for ring, for the algorithms where that pays: every
    /// OpenID Connect token exchange signs an id_token.
    prepared: Option<std::sync::Arc<Prepared>>,
    /// Access tokens whose signature and claims were verified already (see
    /// [`VerifiedTokens`]).
    verified: VerifiedTokens,
}

/// A signing key ready for ring.
enum Prepared {
    /// `jsonwebtoken`'s RustCrypto RSA takes 2.5–2.9 ms per RSA-2048 signature; ring about
    /// a quarter of that.
    Rsa(ring::signature::RsaKeyPair),
    /// `jsonwebtoken` parses the PKCS#8 key and derives its public key at every EdDSA
    /// signature, which costs as much again as the signature itself.
    Ed25519(ring::signature::Ed25519KeyPair),
}

/// Access tokens already verified, by their exact text: the signature check and the three
/// JSON parses of a verification were a third of a token check's CPU (BENCHMARKS.md,
/// *profile*), and a client presents the same token for up to 15 minutes. Only tokens that
/// passed [`Signer::verify`] enter, so a forger cannot fill it; a hit still checks `exp`
/// against the clock exactly as a verification does. Revocation is untouched: the session
/// record is read on every request regardless. Bounded in entries and in age. The lookup
/// compares texts only after their keyed (randomly seeded) hashes matched, which a guess at
/// someone else's token cannot arrange, so it reveals nothing by its timing.
struct VerifiedTokens(moka::sync::Cache<Box<str>, AccessClaims>);

/// At most this many tokens are remembered (each a few hundred bytes).
const VERIFIED_CAPACITY: u64 = 4096;
/// A remembered token is verified again after this long at the latest.
const VERIFIED_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

impl VerifiedTokens {
    fn new() -> Self {
        VerifiedTokens(
            moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_MAX_AGE)
                .build(),
        )
    }

    /// The claims of `token` if it was verified before and has not expired since (with the
    /// same leeway and clock as `jsonwebtoken`'s own `exp` check).
    fn get(&self, token: &str, leeway: u64) -> Option<Result<AccessClaims, TokenError>> {
        let claims = self.0.get(token)?;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.exp < now.saturating_sub(leeway) {
            self.0.invalidate(token);
            return Some(Err(TokenError::Expired));
        }
        Some(Ok(claims))
    }
}

impl Signer {
    /// `secrets` must not be empty; the first one signs. `issuer` and `audience`, when set,
    /// are required on every token verified.
    pub fn hs256(
        secrets: &[Vec<u8>],
        leeway: u64,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        let signing: &[u8] = secrets.first().map_or(&[], Vec::as_slice);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key_id(signing));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Signer {
            algorithm: Algorithm::HS256,
            jwks: Vec::new(),
            header,
            encoding: EncodingKey::from_secret(signing),
            decoding: secrets
                .iter()
                .map(|s| (key_id(s), DecodingKey::from_secret(s)))
                .collect(),
            validation,
            prepared: None,
            verified: VerifiedTokens::new(),
        }
    }

    /// Signs with the first asymmetric key pair (EdDSA or ES256) and verifies with any of
    /// them, chosen by `kid`; all are published as JWKs (rotation with overlap).
    pub fn asymmetric(
        algorithm: TokenAlgorithm,
        keys: &[KeyPair],
        leeway: u64,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, TokenError> {
        let (alg, encoding): (Algorithm, fn(&[u8]) -> EncodingKey) = match algorithm {
            TokenAlgorithm::EdDSA => (Algorithm::EdDSA, EncodingKey::from_ed_der),
            TokenAlgorithm::ES256 => (Algorithm::ES256, EncodingKey::from_ec_der),
            TokenAlgorithm::RS256 => (Algorithm::RS256, EncodingKey::from_rsa_der),
            TokenAlgorithm::HS256 => return Err(TokenError::BadAlgorithm),
        };
        let signing = keys.first().ok_or(TokenError::UnknownKey)?;
        let mut decoding = Vec::with_capacity(keys.len());
        for key in keys {
            let jwk = &key.jwk;
            let component = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
            let decoded = match algorithm {
                TokenAlgorithm::EdDSA => DecodingKey::from_ed_components(&component("x")),
                TokenAlgorithm::RS256 => {
                    DecodingKey::from_rsa_components(&component("n"), &component("e"))
                }
                _ => DecodingKey::from_ec_components(&component("x"), &component("y")),
            }
            .map_err(|_| TokenError::Malformed)?;
            decoding.push((key.kid.clone(), decoded));
        }
        let mut signer = Signer::hs256(&[], leeway, issuer, audience);
        signer.validation.algorithms = vec![alg];
        signer.algorithm = alg;
        signer.header = Header::new(alg);
        signer.header.kid = Some(signing.kid.clone());
        signer.encoding = encoding(&signing.private_der);
        signer.decoding = decoding;
        signer.jwks = keys.iter().map(|k| k.jwk.clone()).collect();
        signer.prepared = match algorithm {
            TokenAlgorithm::RS256 => Some(Prepared::Rsa(
                ring::signature::RsaKeyPair::from_der(&signing.private_der)
                    .map_err(|_| TokenError::Malformed)?,
            )),
            // PKCS#8 v1 (no public key) is what older key files hold: the "unchecked" parse
            // accepts it, and `jsonwebtoken` checks every signature made with it anyway.
            TokenAlgorithm::EdDSA => Some(Prepared::Ed25519(
                ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&signing.private_der)
                    .map_err(|_| TokenError::Malformed)?,
            )),
            _ => None,
        }
        .map(std::sync::Arc::new);
        Ok(signer)
    }

    /// The public keys as JWKs for `/.well-known/jwks.json`: none for HS256, whose keys
    /// are secrets.
    pub fn public_jwks(&self) -> Vec<serde_json::Value> {
        self.jwks.clone()
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        match self.prepared.as_deref() {
            Some(Prepared::Rsa(pair)) => sign_prepared(&self.header, claims, |input| {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    input,
                    &mut signature,
                )
                .map_err(|_| TokenError::Signing)?;
                Ok(signature)
            }),
            Some(Prepared::Ed25519(pair)) => sign_prepared(&self.header, claims, |input| {
                Ok(pair.sign(input).as_ref().to_vec())
            }),
            None => jsonwebtoken::encode(&self.header, claims, &self.encoding)
                .map_err(|_| TokenError::Signing),
        }
    }

    /// The `kid` that signs.
    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Verifies a token of another shape than an access token (the OpenID Connect
    /// provider's): the same pinned algorithm, keys and time checks, but `iss` must be
    /// `issuer` and `aud` is the caller's to judge. With `check_exp` false an expired token
    /// passes (an `id_token_hint` at logout).
    pub fn verify_as<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        check_exp: bool,
    ) -> Result<T, TokenError> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = self.validation.leeway;
        validation.validate_nbf = true;
        validation.validate_exp = check_exp;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        self.decode(token, &validation)
    }

    /// Verifies signature, algorithm, key id and time claims, and returns the claims.
    /// A token verified before is answered from [`VerifiedTokens`] (its `exp` checked again).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if let Some(known) = self.verified.get(token, self.validation.leeway) {
            return known;
        }
        let claims = self.verify_with(token, &self.validation)?;
        self.verified.0.insert(token.into(), claims.clone());
        Ok(claims)
    }

    /// Like [`Signer::verify`], but an expired token passes: only to learn which session a
    /// token of ours names in order to end it (logout), never to grant access.
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        self.verify_with(token, &validation)
    }

    fn verify_with(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<AccessClaims, TokenError> {
        self.decode(token, validation)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(map_error)?;
        if header.alg != self.algorithm {
            return Err(TokenError::BadAlgorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.iter().find(|(k, _)| k == kid))
            .map(|(_, key)| key)
            .ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<T>(token, key, validation)
            .map(|data| data.claims)
            .map_err(map_error)
    }
}

/// `base64url(header).base64url(claims).base64url(signature)` (RFC 7515 compact
/// serialization; RS256 is RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3; EdDSA is Ed25519,
/// RFC 8037 §3.1).
fn sign_prepared<T: Serialize>(
    header: &Header,
    claims: &T,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, TokenError>,
) -> Result<String, TokenError> {
    let header = serde_json::to_vec(header).map_err(|_| TokenError::Signing)?;
    let claims = serde_json::to_vec(claims).map_err(|_| TokenError::Signing)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let signature = sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
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
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
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
            iss: None,
            aud: None,
            amr: Amr::default(),
            enrolment_only: false,
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let signer = Signer::hs256(&[vec![7u8; 32]], 0, None, None);
        let now = crate::clock::now_secs();
        let token = signer.sign(&claims(now + 60)).unwrap();
        assert_eq!(signer.verify(&token).unwrap().sid, "s");

        let other = Signer::hs256(&[vec![8u8; 32]], 0, None, None);
        assert_eq!(other.verify(&token).unwrap_err(), TokenError::UnknownKey);

        // Rotation: a new first secret signs; the old one still verifies until removed.
        let rotated = Signer::hs256(&[vec![8u8; 32], vec![7u8; 32]], 0, None, None);
        assert_eq!(rotated.verify(&token).unwrap().sid, "s");
        let fresh = rotated.sign(&claims(now + 60)).unwrap();
        assert_eq!(other.verify(&fresh).unwrap().sid, "s");
        assert_eq!(signer.verify(&fresh).unwrap_err(), TokenError::UnknownKey);

        let expired = signer.sign(&claims(now - 10)).unwrap();
        assert_eq!(signer.verify(&expired).unwrap_err(), TokenError::Expired);
        // Expired but ours: its session can be named (for logout); others' still cannot.
        assert_eq!(signer.verify_ignoring_expiry(&expired).unwrap().sid, "s");
        assert_eq!(
            other.verify_ignoring_expiry(&expired).unwrap_err(),
            TokenError::UnknownKey
        );

        // Change a character inside the signature: the last one also carries padding bits,
        // which a decoder may ignore, so changing it can leave the signature intact.
        let mut tampered = token.clone().into_bytes();
        let i = tampered.len() - 10;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            signer.verify(&tampered).unwrap_err(),
            TokenError::BadSignature
        );

        assert_eq!(signer.verify("garbage").unwrap_err(), TokenError::Malformed);
    }

    #[test]
    fn a_remembered_token_still_expires_and_only_verified_tokens_are_remembered() {
        let signer = Signer::hs256(&[vec![7u8; 32]], 5, None, None);
        let now = crate::clock::now_secs();
        let token = signer.sign(&claims(now + 60)).unwrap();
        assert_eq!(signer.verify(&token).unwrap().sid, "s");
        assert!(signer.verified.0.contains_key(token.as_str()));

        // The clock moves past `exp` (plus leeway) while the token is remembered.
        signer
            .verified
            .0
            .insert(token.as_str().into(), claims(now - 6));
        assert_eq!(signer.verify(&token).unwrap_err(), TokenError::Expired);
        assert!(!signer.verified.0.contains_key(token.as_str()));
        // Within the leeway it is still good, as for a verification.
        signer
            .verified
            .0
            .insert(token.as_str().into(), claims(now - 4));
        assert_eq!(signer.verify(&token).unwrap().sid, "s");

        // A refused token is not remembered.
        let expired = signer.sign(&claims(now - 100)).unwrap();
        assert_eq!(signer.verify(&expired).unwrap_err(), TokenError::Expired);
        assert!(!signer.verified.0.contains_key(expired.as_str()));
    }

    #[test]
    fn asymmetric_round_trip_rotation_and_no_algorithm_confusion() {
        use crate::auth::keys;
        let now = crate::clock::now_secs();
        let hs = Signer::hs256(&[vec![7u8; 32]], 0, None, None);
        let hs_token = hs.sign(&claims(now + 60)).unwrap();
        for algorithm in [
            TokenAlgorithm::EdDSA,
            TokenAlgorithm::ES256,
            TokenAlgorithm::RS256,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let old = keys::generate(algorithm, &dir.path().join("old.pem")).unwrap();
            let new = keys::generate(algorithm, &dir.path().join("new.pem")).unwrap();
            let before =
                Signer::asymmetric(algorithm, std::slice::from_ref(&old), 0, None, None).unwrap();
            let token = before.sign(&claims(now + 60)).unwrap();
            assert_eq!(before.verify(&token).unwrap().sid, "s");
            assert_eq!(before.public_jwks().len(), 1);

            // Rotation: the new key signs, the old one still verifies and is published.
            let old_again = keys::from_pem(
                algorithm,
                &std::fs::read_to_string(dir.path().join("old.pem")).unwrap(),
            )
            .unwrap();
            let after = Signer::asymmetric(algorithm, &[new, old_again], 0, None, None).unwrap();
            assert_eq!(after.verify(&token).unwrap().sid, "s");
            let fresh = after.sign(&claims(now + 60)).unwrap();
            assert_eq!(before.verify(&fresh).unwrap_err(), TokenError::UnknownKey);
            assert_eq!(after.public_jwks().len(), 2);

            // An HS256 token, even with a known kid, is refused: the algorithm is pinned.
            assert_eq!(
                after.verify(&hs_token).unwrap_err(),
                TokenError::BadAlgorithm
            );
            assert_eq!(hs.verify(&token).unwrap_err(), TokenError::BadAlgorithm);
            let expired = after.sign(&claims(now - 10)).unwrap();
            assert_eq!(after.verify(&expired).unwrap_err(), TokenError::Expired);
        }
    }
}
