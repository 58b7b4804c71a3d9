//! `[cookies]`, `[login]` and `[introspection]`: what browsers and resource servers meet.

use serde::{Deserialize, Serialize};

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
