//! `[oidc]` and `[[oidc.clients]]`: the OpenID Connect provider's relying parties, checked at
//! start-up (and by `gatehouse check-config`). What the provider does with them is
//! `crate::auth::oidc`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::{ConfigError, TokenAlgorithm};
use crate::domain::GroupName;

/// The scopes gatehouse knows (and the default of a client's `scopes`).
pub const KNOWN_SCOPES: [&str; 5] = ["openid", "email", "profile", "groups", "offline_access"];

/// The longest an authorization code may live (the contract: at most 60 s).
pub const MAX_CODE_TTL: u64 = 60;

/// `[oidc]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOidc {
    /// RSA private keys (PEM) that sign RS256 id_tokens: the first signs, all are published
    /// (rotation by `kid`). Empty: one 2048-bit key generated into the data dir.
    pub private_keys: Vec<PathBuf>,
    /// Seconds an authorization code lives (1 to 60).
    pub code_ttl: u64,
    /// The relying parties; none: the provider is off.
    pub clients: Vec<RawClient>,
}

impl Default for RawOidc {
    fn default() -> Self {
        RawOidc {
            private_keys: Vec::new(),
            code_ttl: MAX_CODE_TTL,
            clients: Vec::new(),
        }
    }
}

/// One `[[oidc.clients]]` table as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A plain secret or an argon2id PHC string; unset: a public client (PKCE required).
    #[serde(default)]
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub consent: Consent,
    #[serde(default = "default_alg")]
    pub id_token_signing_alg: String,
    /// Allow `http://` redirect URIs on hosts other than loopback ones (plain-HTTP labs).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_scopes() -> Vec<String> {
    KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect()
}

fn default_alg() -> String {
    "RS256".to_owned()
}

/// `consent` of a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    /// A consent page, remembered per user, client and scopes.
    #[default]
    Explicit,
    /// No page: a first-party app.
    Implicit,
}

/// A client's secret as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSecret {
    /// Compared (as SHA-256 digests, in constant time) with what the client sends.
    Plain(String),
    /// An argon2id PHC string: verified once per secret presented, then remembered.
    Argon2(String),
}

/// `[oidc]`, validated.
#[derive(Debug, Clone, Default)]
pub struct Oidc {
    pub private_keys: Vec<PathBuf>,
    pub code_ttl: u64,
    pub clients: Vec<Client>,
}

impl Oidc {
    /// Whether the provider is on (at least one client).
    pub fn enabled(&self) -> bool {
        !self.clients.is_empty()
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }
}

/// One relying party, validated.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub secret: Option<ClientSecret>,
    /// Exact-match lists.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Known scopes, without repeats.
    pub scopes: Vec<String>,
    /// Valid group names; empty: every user.
    pub groups: Vec<String>,
    pub consent: Consent,
    /// RS256, EdDSA or ES256.
    pub id_token_signing_alg: TokenAlgorithm,
}

impl Client {
    /// A public client (no secret) must use PKCE.
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }
}

fn client_error(n: usize, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: "oidc.clients",
        reason: format!("client {n}: {reason}"),
    }
}

impl RawOidc {
    /// Checks the provider's settings; `public_url` is required (the issuer) once a client
    /// is configured.
    pub(super) fn validate(self, public_url: Option<&Url>) -> Result<Oidc, ConfigError> {
        if self.code_ttl == 0 || self.code_ttl > MAX_CODE_TTL {
            return Err(super::invalid("oidc.code_ttl", "must be 1 to 60 seconds"));
        }
        if !self.clients.is_empty() && public_url.is_none() {
            return Err(super::invalid(
                "public_url",
                "is required when oidc.clients are configured: it is the issuer",
            ));
        }
        let mut clients: Vec<Client> = Vec::with_capacity(self.clients.len());
        for (n, raw) in (1..).zip(self.clients) {
            let client = raw.validate().map_err(|reason| client_error(n, reason))?;
            if clients.iter().any(|c| c.id == client.id) {
                return Err(client_error(
                    n,
                    format!("the id {:?} is used twice", client.id),
                ));
            }
            clients.push(client);
        }
        Ok(Oidc {
            private_keys: self.private_keys,
            code_ttl: self.code_ttl,
            clients,
        })
    }
}

impl RawClient {
    fn validate(self) -> Result<Client, String> {
        let id = self.id.trim();
        // Client ids travel in URLs, forms and HTTP Basic (where ':' separates).
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!(
                "id {:?} must be 1 to 128 of A-Z, a-z, 0-9, '-', '_', '.'",
                self.id
            ));
        }
        let secret = match self.secret {
            None => None,
            Some(s) if s.starts_with("$argon2") => {
                argon2::PasswordHash::new(&s).map_err(|e| {
                    format!("secret of {id:?} is not a valid argon2 PHC string: {e}")
                })?;
                Some(ClientSecret::Argon2(s))
            }
            Some(s) if s.len() < 16 => {
                return Err(format!(
                    "secret of {id:?} must be at least 16 characters (`gatehouse client secret` makes one)"
                ));
            }
            Some(s) => Some(ClientSecret::Plain(s)),
        };
        if self.redirect_uris.is_empty() {
            return Err(format!("{id:?} needs at least one redirect_uris entry"));
        }
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            check_redirect_uri(uri, self.allow_http).map_err(|why| format!("{uri:?}: {why}"))?;
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in &self.scopes {
            if !KNOWN_SCOPES.contains(&scope.as_str()) {
                return Err(format!(
                    "unknown scope {scope:?}; known: {}",
                    KNOWN_SCOPES.join(", ")
                ));
            }
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(format!("the scopes of {id:?} must include \"openid\""));
        }
        let groups = self
            .groups
            .iter()
            .map(|g| GroupName::parse(g).map(GroupName::into_string))
            .collect::<Result<_, _>>()?;
        let id_token_signing_alg = match self.id_token_signing_alg.as_str() {
            "RS256" => TokenAlgorithm::RS256,
            "EdDSA" => TokenAlgorithm::EdDSA,
            "ES256" => TokenAlgorithm::ES256,
            other => {
                return Err(format!(
                    "id_token_signing_alg {other:?} must be \"RS256\", \"EdDSA\" or \"ES256\""
                ));
            }
        };
        let name = self
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_owned());
        Ok(Client {
            id: id.to_owned(),
            name,
            secret,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            scopes,
            groups,
            consent: self.consent,
            id_token_signing_alg,
        })
    }
}

/// A registered redirect URI: absolute, no fragment, no user info; `https`, or `http` on a
/// loopback host (RFC 8252 native apps, local development) unless `allow_http`; a custom
/// scheme with a dot (RFC 8252 private-use, e.g. `com.example.app:/cb`) for native apps.
fn check_redirect_uri(uri: &str, allow_http: bool) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("not an absolute URL ({e})"))?;
    if url.fragment().is_some() {
        return Err("a redirect URI must not have a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a redirect URI must not carry user info".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(Host::Ipv4(ip)) => ip.is_loopback(),
                Some(Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_http {
                Ok(())
            } else {
                Err("http is allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https, or set allow_http = true for this client".into())
            }
        }
        "javascript" | "data" | "file" | "vbscript" => Err("not a redirect scheme".into()),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err("use https (or a reverse-domain custom scheme for a native app)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(extra: &str) -> Result<Oidc, ConfigError> {
        let text = format!(
            "public_url = \"https://auth.example.org\"\n[[oidc.clients]]\nid = \"app\"\nredirect_uris = [\"https://app.example.org/cb\"]\n{extra}"
        );
        super::super::Config::from_toml_str(&text).map(|c| c.oidc)
    }

    #[test]
    fn clients_are_checked() {
        let ok = client("").unwrap();
        let c = &ok.clients[0];
        assert!(c.is_public());
        assert_eq!(c.name, "app");
        assert_eq!(c.scopes.len(), 5);
        assert_eq!(c.id_token_signing_alg, TokenAlgorithm::RS256);
        for bad in [
            "secret = \"short\"",
            "secret = \"$argon2id$nonsense\"",
            "scopes = [\"email\"]",
            "scopes = [\"openid\", \"admin\"]",
            "groups = [\"Media\"]",
            "id_token_signing_alg = \"HS256\"",
            "post_logout_redirect_uris = [\"https://a.org/#x\"]",
            "post_logout_redirect_uris = [\"http://a.example.org/\"]",
            "post_logout_redirect_uris = [\"/relative\"]",
            "post_logout_redirect_uris = [\"javascript:alert(1)\"]",
            "post_logout_redirect_uris = [\"https://u:p@a.org/\"]",
        ] {
            assert!(client(bad).is_err(), "{bad}");
        }
        for good in [
            "post_logout_redirect_uris = [\"http://127.0.0.1:9000/\", \"http://localhost/x\", \"http://[::1]/\"]",
            "allow_http = true\npost_logout_redirect_uris = [\"http://lab.home/\"]",
            "post_logout_redirect_uris = [\"com.example.app:/cb\"]",
            "secret = \"0123456789abcdef\"\nconsent = \"implicit\"\nid_token_signing_alg = \"EdDSA\"",
        ] {
            assert!(client(good).is_ok(), "{good}: {:?}", client(good).err());
        }
        // The issuer is required, and ids are unique.
        let no_issuer = super::super::Config::from_toml_str(
            "[[oidc.clients]]\nid = \"a\"\nredirect_uris = [\"https://a.org/cb\"]",
        );
        assert!(matches!(
            no_issuer,
            Err(ConfigError::Invalid {
                key: "public_url",
                ..
            })
        ));
        let twice =
            client("[[oidc.clients]]\nid = \"app\"\nredirect_uris = [\"https://b.org/cb\"]");
        assert!(twice.unwrap_err().to_string().contains("used twice"));
    }
}
