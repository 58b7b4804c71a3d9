//! `[mfa]` and `[webauthn]`: second factors (GD-0010).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConfigError, invalid};

/// `[mfa]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mfa {
    /// A user without a second factor who signs in gets a session limited to enrolling one.
    pub required: bool,
    /// The key that seals TOTP secrets at rest: one key per line (64 hex digits), the first
    /// seals, every one opens. Unset: `$CREDENTIALS_DIRECTORY/mfa_key` when systemd passes
    /// one, else `<data_dir>/mfa_key`, generated on first start.
    pub key_file: Option<PathBuf>,
}

/// `[webauthn]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webauthn {
    /// The relying party id: a domain that is the host of `public_url` or a parent of it.
    /// Unset: the host of `public_url`.
    pub rp_id: Option<String>,
    /// The name passkey prompts and authenticator apps show.
    pub rp_name: String,
}

impl Default for Webauthn {
    fn default() -> Self {
        Webauthn {
            rp_id: None,
            rp_name: "gatehouse".to_owned(),
        }
    }
}

impl Webauthn {
    pub(super) fn validate(&self, public_url: Option<&Url>) -> Result<(), ConfigError> {
        let name = self.rp_name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.contains([':', '\n', '\r']) {
            return Err(invalid(
                "webauthn.rp_name",
                "must be 1 to 64 characters without ':' or line breaks",
            ));
        }
        if let Some(rp_id) = &self.rp_id {
            let Some(host) = public_url.and_then(Url::host_str) else {
                return Err(invalid(
                    "webauthn.rp_id",
                    "needs public_url, whose host must be it or lie within it",
                ));
            };
            let rp_id = rp_id.to_ascii_lowercase();
            let host = host.to_ascii_lowercase();
            let within = host == rp_id
                || host
                    .strip_suffix(rp_id.as_str())
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1);
            if rp_id.is_empty() || rp_id.contains(['/', ':', ' ']) || !within {
                return Err(invalid(
                    "webauthn.rp_id",
                    "must be the host of public_url or a parent domain of it (e.g. \"example.org\" for https://auth.example.org)",
                ));
            }
        }
        Ok(())
    }

    /// The relying party id in force: `rp_id`, else the host of `public_url`; `None` without
    /// `public_url` (passkeys are then off: a ceremony needs a fixed origin).
    pub fn effective_rp_id(&self, public_url: Option<&Url>) -> Option<String> {
        let host = public_url?.host_str()?;
        Some(self.rp_id.clone().unwrap_or_else(|| host.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rp_id_must_cover_public_url() {
        let url = Url::parse("https://auth.example.org/").unwrap();
        let w = |rp: Option<&str>| Webauthn {
            rp_id: rp.map(Into::into),
            ..Webauthn::default()
        };
        assert!(w(None).validate(Some(&url)).is_ok());
        assert!(w(Some("example.org")).validate(Some(&url)).is_ok());
        assert!(w(Some("auth.example.org")).validate(Some(&url)).is_ok());
        for bad in ["ample.org", "evil.org", "", "example.org:443"] {
            assert!(w(Some(bad)).validate(Some(&url)).is_err(), "{bad}");
        }
        assert!(w(Some("example.org")).validate(None).is_err());
        assert_eq!(
            w(None).effective_rp_id(Some(&url)).as_deref(),
            Some("auth.example.org")
        );
        assert_eq!(w(None).effective_rp_id(None), None);
    }
}
