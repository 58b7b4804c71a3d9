//! The OpenID Connect provider's own rules (GD-0009): its clients and how they prove who
//! they are, the scopes and claims, the id_token signers and keys, and the discovery
//! document. The flows (authorization codes, token exchange, refresh, userinfo, revocation,
//! logout) are operations of [`super::Service`] in `service::grants`.
//!
//! Grants are gatehouse sessions (the session record names the client), so everything that
//! ends sessions ends them too. Access tokens the provider hands to relying parties are
//! signed by the same signer as gatehouse's own but carry no `email`/`role` and name a grant
//! session, so they are refused by the account API and forward-auth, and gatehouse's own
//! tokens are refused by userinfo.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::keys::{self, KeyError, KeySource};
use super::sealing::{self, Sealer};
use super::tokens::{Signer, TokenError};
use crate::config::oidc::{Client, ClientSecret, KNOWN_SCOPES, Oidc};
use crate::config::{Config, TokenAlgorithm};
use crate::domain::factors::Amr;

/// What the code-sealing keys are derived for from the RS256 keys (GD-0015).
const CODE_KEY_PURPOSE: &[u8] = b"gatehouse oidc authorization code sealing v1";
/// The associated data of every sealed code: a message sealed for another purpose under the
/// same key would not open as a code.
const CODE_AAD: &[u8] = b"gatehouse authorization code";
/// Longer texts are refused before any decoding: a code of ours is a few hundred bytes, its
/// request's `redirect_uri`, `nonce` and `scope` being bounded.
const MAX_CODE_LEN: usize = 8192;

/// What an authorization code stands for (GD-0015). It is sealed into the code itself
/// (AES-256-GCM under a key derived from the provider's RS256 key), so issuing a code writes
/// nothing; its first use is what the store records, under `id`, for single use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// 128 random bits, base64url: names the code's use in the store.
    pub id: String,
    /// Unix ms from which the code is refused (`oidc.code_ttl` after issue).
    pub exp_ms: u64,
    pub client: String,
    pub redirect_uri: String,
    pub uid: Uuid,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The PKCE S256 challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    pub auth_time: u64,
    /// How the browser signed in; the grant's `amr`.
    #[serde(default, skip_serializing_if = "Amr::is_password_only")]
    pub amr: Amr,
    /// The user's credential version when the user allowed it.
    pub cv: u64,
}

impl CodeGrant {
    /// A new code's `id`.
    pub fn new_id() -> Result<String, getrandom::Error> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)?;
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// The code's text.
    pub fn seal(&self, sealer: &Sealer) -> Option<String> {
        sealer.seal(CODE_AAD, &serde_json::to_vec(self).ok()?)
    }

    /// The grant a code stands for, if one of the keys sealed it and it has not expired at
    /// `now_ms`; `None` for anything else, whatever the text.
    pub fn open(sealer: &Sealer, code: &str, now_ms: u64) -> Option<CodeGrant> {
        if code.len() > MAX_CODE_LEN {
            return None;
        }
        let grant: CodeGrant = serde_json::from_slice(&sealer.open(CODE_AAD, code)?).ok()?;
        (now_ms < grant.exp_ms).then_some(grant)
    }
}

/// The claims of an access token issued to a relying party (RFC 9068 shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantAccessClaims {
    pub iss: String,
    pub sub: Uuid,
    /// The client the token was issued to.
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// The grant session.
    pub sid: String,
}

/// The claims of an id_token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    /// The grant session, so that RP-initiated logout can end it.
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The scope claims (`email`, `email_verified`, `name`, `preferred_username`, `groups`).
    #[serde(flatten)]
    pub profile: serde_json::Map<String, Value>,
}

/// The provider: clients, signers and the caches of verified client secrets.
pub struct Provider {
    /// `public_url` without a trailing slash.
    issuer: String,
    config: Oidc,
    /// One signer per id_token algorithm in use (RS256 always).
    id_signers: Vec<(TokenAlgorithm, Signer)>,
    /// Seals authorization codes, under keys derived from the RS256 keys: the first seals,
    /// all open, and nodes that share the key files share these.
    codes: Sealer,
    /// Client id → SHA-256 of the last secret that verified against its argon2 hash, so a
    /// hashed secret costs one argon2 hash per secret, not per request.
    verified: Cache<String, [u8; 32]>,
}

/// How a client authenticated at the token, revocation or introspection endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// Public client, no secret needed.
    Public,
    /// Matched without hashing (a plain secret, or one verified before).
    Matched,
    /// Wrong.
    Wrong,
    /// The argon2 hash must be checked (then [`Provider::remember_secret`]).
    NeedsHash,
}

impl Provider {
    /// Loads or generates the id_token keys; `None` when no client is configured.
    pub fn load(config: &Config) -> Result<Option<Provider>, KeyError> {
        if !config.oidc.enabled() {
            return Ok(None);
        }
        let Some(public_url) = &config.public_url else {
            return Ok(None);
        };
        let issuer = public_url.as_str().trim_end_matches('/').to_owned();
        let mut algorithms = vec![TokenAlgorithm::RS256];
        for client in &config.oidc.clients {
            if !algorithms.contains(&client.id_token_signing_alg) {
                algorithms.push(client.id_token_signing_alg);
            }
        }
        let mut id_signers = Vec::with_capacity(algorithms.len());
        let mut code_keys = Vec::new();
        for algorithm in algorithms {
            // RS256 keys are the provider's own; an EdDSA/ES256 client shares the access
            // tokens' key files when they use the same algorithm.
            let files: &[std::path::PathBuf] = if algorithm == TokenAlgorithm::RS256 {
                &config.oidc.private_keys
            } else if algorithm == config.tokens.algorithm {
                &config.tokens.private_keys
            } else {
                &[]
            };
            let (pairs, source) = keys::load(algorithm, files, &config.data_dir)?;
            log_source(algorithm, &source);
            if algorithm == TokenAlgorithm::RS256 {
                code_keys = pairs
                    .iter()
                    .map(|p| sealing::derive_key(&p.private_der, CODE_KEY_PURPOSE))
                    .collect();
            }
            let shared = matches!(
                config.sessions.backend,
                crate::config::SessionBackend::Redis { .. }
            );
            if shared && !matches!(source, KeySource::Files(_)) {
                tracing::warn!(
                    ?algorithm,
                    "sessions are shared through Redis but the id_token key is this node's own (oidc.private_keys unset): give every node the same key files, or relying parties will not find the key of another node's id_tokens"
                );
            }
            let signer = Signer::asymmetric(algorithm, &pairs, config.tokens.leeway, None, None)
                .map_err(|e| KeyError::Invalid {
                    path: Path::new("oidc.private_keys").to_owned(),
                    algorithm,
                    reason: e.to_string(),
                })?;
            id_signers.push((algorithm, signer));
        }
        Ok(Some(Provider {
            issuer,
            config: config.oidc.clone(),
            id_signers,
            codes: Sealer::from_keys(&code_keys),
            verified: Cache::builder()
                .max_capacity(config.oidc.clients.len() as u64 * 4 + 16)
                .build(),
        }))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The sealer of authorization codes ([`CodeGrant`]).
    pub fn codes(&self) -> &Sealer {
        &self.codes
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.config.client(id)
    }

    pub fn clients(&self) -> &[Client] {
        &self.config.clients
    }

    pub fn code_ttl(&self) -> u64 {
        self.config.code_ttl
    }

    /// The signer of a client's id_tokens.
    pub fn id_signer(&self, client: &Client) -> Result<&Signer, TokenError> {
        self.id_signers
            .iter()
            .find(|(alg, _)| *alg == client.id_token_signing_alg)
            .map(|(_, s)| s)
            .ok_or(TokenError::UnknownKey)
    }

    /// Every id_token key as a JWK, for the JWKS.
    pub fn jwks(&self) -> impl Iterator<Item = Value> + '_ {
        self.id_signers
            .iter()
            .flat_map(|(_, signer)| signer.public_jwks())
    }

    /// Verifies an id_token of ours (any algorithm, expired or not): for `id_token_hint`.
    pub fn verify_id_token_hint(&self, token: &str) -> Option<IdTokenClaims> {
        self.id_signers
            .iter()
            .find_map(|(_, signer)| signer.verify_as(token, &self.issuer, false).ok())
    }

    /// Checks a client's secret without hashing when it can.
    pub fn check_secret(&self, client: &Client, presented: Option<&str>) -> SecretCheck {
        let Some(secret) = &client.secret else {
            return SecretCheck::Public;
        };
        let Some(presented) = presented else {
            return SecretCheck::Wrong;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        match secret {
            ClientSecret::Plain(plain) => {
                let want: [u8; 32] = Sha256::digest(plain.as_bytes()).into();
                if bool::from(digest.ct_eq(&want)) {
                    SecretCheck::Matched
                } else {
                    SecretCheck::Wrong
                }
            }
            ClientSecret::Argon2(_) => match self.verified.get(&client.id) {
                Some(known) if bool::from(digest.ct_eq(&known)) => SecretCheck::Matched,
                _ => SecretCheck::NeedsHash,
            },
        }
    }

    /// Remembers a secret that verified against the client's argon2 hash.
    pub fn remember_secret(&self, client: &Client, presented: &str) {
        self.verified.insert(
            client.id.clone(),
            Sha256::digest(presented.as_bytes()).into(),
        );
    }

    /// The discovery document (OpenID Connect Discovery 1.0).
    pub fn discovery(&self) -> Value {
        let at = |path: &str| format!("{}{path}", self.issuer);
        let mut algs: Vec<&str> = vec!["RS256"];
        for (alg, _) in &self.id_signers {
            let name = match alg {
                TokenAlgorithm::EdDSA => "EdDSA",
                TokenAlgorithm::ES256 => "ES256",
                _ => continue,
            };
            algs.push(name);
        }
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": at("/oidc/authorize"),
            "token_endpoint": at("/oidc/token"),
            "userinfo_endpoint": at("/oidc/userinfo"),
            "jwks_uri": at("/.well-known/jwks.json"),
            "end_session_endpoint": at("/oidc/logout"),
            "revocation_endpoint": at("/oidc/revoke"),
            "introspection_endpoint": at("/oidc/introspect"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "id_token_signing_alg_values_supported": algs,
            "subject_types_supported": ["public"],
            "scopes_supported": KNOWN_SCOPES,
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid", "azp",
                "email", "email_verified", "name", "preferred_username", "groups"
            ],
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
            "frontchannel_logout_supported": false,
            "backchannel_logout_supported": false,
        })
    }
}

fn log_source(algorithm: TokenAlgorithm, source: &KeySource) {
    match source {
        KeySource::Files(n) => tracing::debug!(keys = n, ?algorithm, "id_token keys from files"),
        KeySource::DataDir(path) => {
            tracing::debug!(path = %path.display(), ?algorithm, "id_token key from the data dir")
        }
        KeySource::Generated(path) => tracing::info!(
            path = %path.display(), ?algorithm,
            "generated an id_token signing key into the data dir; it is reused on later starts and published at /.well-known/jwks.json"
        ),
    }
}

/// The scopes of a request, as a sorted set without repeats; `None` when a scope token is
/// not well formed (RFC 6749 §3.3: printable ASCII without `"` and `\`).
pub fn parse_scope(scope: &str) -> Option<Vec<String>> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !s
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            return None;
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes.sort();
    Some(scopes)
}

/// The PKCE S256 transform of a verifier (RFC 7636 §4.2).
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A code verifier or challenge of the right shape: 43 to 128 of `[A-Za-z0-9-._~]`.
pub fn pkce_well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> CodeGrant {
        CodeGrant {
            id: CodeGrant::new_id().unwrap(),
            exp_ms: 10_000,
            client: "app".into(),
            redirect_uri: "https://app.example.org/cb".into(),
            uid: Uuid::now_v7(),
            scope: "openid email".into(),
            nonce: Some("n-0S6_WzA2Mj".into()),
            challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            auth_time: 5,
            amr: Amr::default(),
            cv: 3,
        }
    }

    #[test]
    fn codes_open_only_unaltered_unexpired_and_under_our_keys() {
        let sealer = Sealer::from_keys(&[sealing::derive_key(b"rsa key", CODE_KEY_PURPOSE)]);
        let g = grant();
        let code = g.seal(&sealer).unwrap();
        assert!(!code.contains("app.example.org") && !code.contains(&g.id));
        assert_eq!(CodeGrant::open(&sealer, &code, 9_999), Some(g.clone()));
        assert_eq!(CodeGrant::open(&sealer, &code, 10_000), None, "expired");
        let other = Sealer::from_keys(&[sealing::derive_key(b"another", CODE_KEY_PURPOSE)]);
        assert_eq!(
            CodeGrant::open(&other, &code, 0),
            None,
            "another provider's key"
        );
        // Sealed under the same key for another purpose: not a code.
        let foreign = sealer
            .seal(b"user id", &serde_json::to_vec(&g).unwrap())
            .unwrap();
        assert_eq!(CodeGrant::open(&sealer, &foreign, 0), None);
        // Two codes for the same request differ, and so do their ids.
        let again = CodeGrant {
            id: CodeGrant::new_id().unwrap(),
            ..g.clone()
        };
        assert_ne!(again.id, g.id);
        assert_ne!(g.seal(&sealer).unwrap(), code, "a fresh nonce each time");
        for junk in [
            "",
            "abc",
            "v1..",
            &code[..code.len() - 1],
            &"v1.x.".repeat(3000),
        ] {
            assert_eq!(CodeGrant::open(&sealer, junk, 0), None);
        }
        // A key rotation: codes sealed under the old key still open.
        let rotated = Sealer::from_keys(&[
            sealing::derive_key(b"new rsa key", CODE_KEY_PURPOSE),
            sealing::derive_key(b"rsa key", CODE_KEY_PURPOSE),
        ]);
        assert_eq!(CodeGrant::open(&rotated, &code, 0), Some(g));
    }

    #[test]
    fn scopes_and_pkce() {
        assert_eq!(
            parse_scope("openid  email openid"),
            Some(vec!["email".into(), "openid".into()])
        );
        assert_eq!(parse_scope("openid \"x"), None);
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(pkce_well_formed(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!pkce_well_formed("short"));
        assert!(!pkce_well_formed(&"a+".repeat(30)));
    }
}
