//! `[smtp]`, `[email]` and `registration`: how mail leaves gatehouse, and what mail the
//! account flows send.
//!
//! As written, `registration` is `"open"`, `"closed"` or a table `{ mode, verify_email }`;
//! validated, it is one [`Registration`]. SMTP is off (`None`) without `smtp.host`; with it,
//! the relay's address, its TLS mode and the sender are checked here, so `check-config` names
//! a bad host, port or From before anything is sent.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive_secs};

/// Who may create an account through `POST /auth/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Closed,
}

/// `registration` as written: a mode alone, or a table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum RawRegistration {
    Mode(RegistrationMode),
    Table(RegistrationTable),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RegistrationTable {
    mode: RegistrationMode,
    verify_email: bool,
}

impl Default for RegistrationTable {
    fn default() -> Self {
        RegistrationTable {
            mode: RegistrationMode::Open,
            verify_email: false,
        }
    }
}

impl Default for RawRegistration {
    fn default() -> Self {
        RawRegistration::Mode(RegistrationMode::Open)
    }
}

/// `registration`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub mode: RegistrationMode,
    /// Registration mails a verification link, and login answers 403 until it is used.
    pub verify_email: bool,
}

impl RawRegistration {
    pub(super) fn validate(&self, smtp: Option<&Smtp>) -> Result<Registration, ConfigError> {
        let registration = match self {
            RawRegistration::Mode(mode) => Registration {
                mode: *mode,
                verify_email: false,
            },
            RawRegistration::Table(t) => Registration {
                mode: t.mode,
                verify_email: t.verify_email,
            },
        };
        if registration.verify_email && smtp.is_none() {
            return Err(invalid(
                "registration.verify_email",
                "needs smtp.host: the verification link is sent by mail",
            ));
        }
        Ok(registration)
    }
}

/// `smtp.tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the loopback interface.
    None,
}

/// `[smtp]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSmtp {
    host: Option<String>,
    port: u16,
    tls: SmtpTls,
    username: Option<String>,
    password: Option<String>,
    from: Option<String>,
    timeout: u64,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from: None,
            timeout: 30,
        }
    }
}

/// `[smtp]`, validated; present only when `smtp.host` is set.
#[derive(Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Username and password, when the relay wants authentication.
    pub credentials: Option<(String, String)>,
    /// The From of every mail: `addr@example.org` or `Name <addr@example.org>`.
    pub from: String,
    /// Seconds for each SMTP command (connect, greeting, each reply).
    pub timeout: u64,
}

/// The password stays out of logs and `Debug` output.
impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RawSmtp {
    pub(super) fn validate(&self) -> Result<Option<Smtp>, ConfigError> {
        positive_secs("smtp.timeout", self.timeout)?;
        let Some(host) = &self.host else {
            return Ok(None);
        };
        let host = host.trim();
        if !is_host(host) {
            return Err(invalid(
                "smtp.host",
                "must be a host name or IP address like \"smtp.example.org\", without scheme or port (the port is smtp.port)",
            ));
        }
        if self.port == 0 {
            return Err(invalid("smtp.port", "must be a port from 1 to 65535"));
        }
        if self.tls == SmtpTls::None && !is_loopback(host) {
            return Err(invalid(
                "smtp.tls",
                "\"none\" sends passwords and links in the clear: it is allowed only for a relay on the loopback interface (localhost, 127.0.0.1, ::1); use \"starttls\" or \"tls\"",
            ));
        }
        let credentials = match (&self.username, &self.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "smtp.username / smtp.password",
                    "set both or neither",
                ));
            }
        };
        let from = self
            .from
            .as_deref()
            .map(str::trim)
            .ok_or_else(|| invalid("smtp.from", "is required with smtp.host"))?;
        check_mailbox(from).map_err(|why| invalid("smtp.from", why))?;
        Ok(Some(Smtp {
            host: host.to_owned(),
            port: self.port,
            tls: self.tls,
            credentials,
            from: from.to_owned(),
            timeout: self.timeout,
        }))
    }
}

/// A DNS name (letters, digits, hyphens, dots) or an IP address (IPv6 bare or bracketed).
fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `addr@domain` or `Display Name <addr@domain>`: one address, nothing that could end a
/// header line or smuggle a second recipient.
fn check_mailbox(from: &str) -> Result<(), &'static str> {
    const SHAPE: &str =
        "must be an address like \"gatehouse@example.org\" or \"Example <gatehouse@example.org>\"";
    if from.chars().any(char::is_control) {
        return Err(SHAPE);
    }
    let addr = match from.rsplit_once('<') {
        Some((name, rest)) => {
            let addr = rest.strip_suffix('>').ok_or(SHAPE)?;
            if name.contains(['<', '>', '@', ',', ';']) {
                return Err(SHAPE);
            }
            addr
        }
        None => from,
    };
    let (local, domain) = addr.rsplit_once('@').ok_or(SHAPE)?;
    let plain = |s: &str| {
        !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || "<>()[],;:\\\"@".contains(c))
    };
    if !plain(local) || !plain(domain) || domain.starts_with('.') || domain.ends_with('.') {
        return Err(SHAPE);
    }
    Ok(())
}

/// `[email]`: the account flows that send mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Email {
    /// Seconds within which a repeated forgot or resend for one account sends nothing more.
    pub resend_interval: u64,
    /// Name of the site in mails; unset: the host of `public_url`.
    pub site_name: Option<String>,
    /// Seconds before the first retry of a mail the relay deferred; each later one waits
    /// twice as long, at most an hour.
    pub retry_delay: u64,
    /// Seconds after which a mail that still could not be sent is dropped (and counted failed).
    pub give_up_after: u64,
}

impl Default for Email {
    fn default() -> Self {
        Email {
            resend_interval: 60,
            site_name: None,
            retry_delay: 30,
            give_up_after: 86_400,
        }
    }
}

impl Email {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive_secs("email.retry_delay", self.retry_delay)?;
        positive_secs("email.give_up_after", self.give_up_after)?;
        if let Some(name) = &self.site_name {
            if name.trim().is_empty()
                || name.chars().count() > 100
                || name.chars().any(char::is_control)
            {
                return Err(invalid(
                    "email.site_name",
                    "must be 1 to 100 characters without line breaks",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes() {
        for good in [
            "gatehouse@example.org",
            "Example Site <gatehouse@example.org>",
            "<a@b>",
            "no-reply@localhost",
        ] {
            assert!(check_mailbox(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "gatehouse",
            "a@b, c@d",
            "Name <a@b",
            "a@b\r\nBcc: x@y",
            "a b@c",
            "Evil <a@b> <c@d>",
            "@b",
            "a@",
        ] {
            assert!(check_mailbox(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        for good in [
            "smtp.example.org",
            "localhost",
            "127.0.0.1",
            "::1",
            "[::1]",
            "mail",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in ["", "smtp://x", "x:25", "a b", "-x.org", "x..org", "x_y.org"] {
            assert!(!is_host(bad), "{bad}");
        }
        assert!(is_loopback("LOCALHOST") && is_loopback("127.0.0.2") && is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("smtp.example.org"));
    }
}
