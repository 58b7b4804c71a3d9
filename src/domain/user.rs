//! Accounts: who a user is and what they may do.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::factors::Factors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; use \"user\" or \"admin\"")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    /// As the user typed it; uniqueness is on [`super::normalize_email`] of it (stored composed, NFC).
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: u64,
    pub disabled: bool,
    /// Bumped by every write of the record; [`crate::store::UserStore::update`] succeeds only when the
    /// stored record still has the version the change was based on, so concurrent admin
    /// and self-service writes never overwrite each other.
    #[serde(default)]
    pub version: u64,
    /// Bumped by every change that ends the user's sessions (password, disable, role,
    /// second-factor reset). A session records the value it was created under and dies
    /// when they differ: a login that checked the old password cannot outlive the change.
    #[serde(default)]
    pub credential_version: u64,
    /// Second factors (TOTP, passkeys, recovery codes); left out of the record when none.
    #[serde(default, skip_serializing_if = "Factors::is_unset")]
    pub factors: Factors,
    /// Names of the groups the user belongs to, sorted and without repeats. Membership
    /// changes do not end sessions: forward-auth and the OIDC provider read it fresh (within
    /// seconds) instead of trusting a token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The OpenID Connect clients the user has allowed, with the scopes allowed; a request
    /// for no more than these skips the consent page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<Consent>,
}

/// One remembered consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub client: String,
    /// Sorted.
    pub scopes: Vec<String>,
}

impl User {
    /// Whether the user has allowed `client` every one of `scopes`.
    pub fn has_consented(&self, client: &str, scopes: &[String]) -> bool {
        self.consents
            .iter()
            .any(|c| c.client == client && scopes.iter().all(|s| c.scopes.contains(s)))
    }
}
