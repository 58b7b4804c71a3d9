//! `[cookies]`, `[login]` and `[introspection]`: what browsers and resource servers meet.

use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cookies {
    /// `Secure` attribute; turn off only for plain-HTTP development.
    pub secure: bool,
    /// `Domain` attribute, for one login across subdomains.
    pub domain: Option<String>,
}

/// The login page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Login {
    /// Heading and window title of the login and logout pages.
    pub title: String,
}

/// `POST /auth/introspect` (RFC 7662): the HTTP Basic credentials of resource servers.
/// Unset: introspection is off (404).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Introspection {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl Default for Cookies {
    fn default() -> Self {
        Cookies {
            secure: true,
            domain: None,
        }
    }
}

impl Default for Login {
    fn default() -> Self {
        Login {
            title: "Sign in".to_owned(),
        }
    }
}

impl Cookies {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(domain) = &self.domain {
            let bare = domain.trim_start_matches('.');
            if bare.is_empty()
                || !bare.contains('.') && bare != "localhost"
                || bare.contains(['/', ':', ' ', '*'])
            {
                return Err(invalid(
                    "cookies.domain",
                    "must be a domain name like \"example.org\"",
                ));
            }
        }
        Ok(())
    }
}

impl Login {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 100 {
            return Err(invalid("login.title", "must be 1 to 100 characters"));
        }
        Ok(())
    }
}

impl Introspection {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let (Some(_), None) | (None, Some(_)) = (&self.client_id, &self.client_secret) {
            return Err(invalid(
                "introspection.client_id / introspection.client_secret",
                "set both or neither",
            ));
        }
        if self.client_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(invalid(
                "introspection.client_secret",
                "must be at least 16 characters",
            ));
        }
        Ok(())
    }
}

/// `public_url`: the origin of cookie-authenticated writes and of the login page.
pub(super) fn check_public_url(url: Option<&Url>) -> Result<(), ConfigError> {
    if let Some(url) = url {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("public_url", "must be an absolute http(s) URL"));
        }
    }
    Ok(())
}
