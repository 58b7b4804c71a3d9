//! What gatehouse writes: the link mails (reset, invitation, verification, email change) and
//! the notices, each as plain text with a simple HTML alternative (askama templates under
//! `templates/mail/`), naming the site and `public_url`.
//!
//! Headers: `From` (`smtp.from`), `To`, `Subject`, `Date`, a `Message-ID` made once when the
//! mail is queued (so every retry of it carries the same one and a receiver can tell a
//! repeat), and `Auto-Submitted: auto-generated` (RFC 3834) so that vacation responders and
//! mailing lists leave it alone.

use askama::Template;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, header::Header};
use url::Url;

use crate::domain::link::Purpose;

/// A notice about the account, mailed to its address.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    /// The password was changed (by the user, by a reset link or by an admin).
    PasswordChanged,
    /// A change of the account's email to `new_email` was asked for; the old address hears
    /// of it.
    EmailChangeRequested { new_email: String },
    /// A second factor (`method`, e.g. "TOTP" or "passkey") was added.
    SecondFactorAdded { method: String },
    /// A second factor was removed.
    SecondFactorRemoved { method: String },
}

impl Notice {
    /// A short name for logs and the outbox.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Notice::PasswordChanged => "password_changed",
            Notice::EmailChangeRequested { .. } => "email_change_requested",
            Notice::SecondFactorAdded { .. } => "second_factor_added",
            Notice::SecondFactorRemoved { .. } => "second_factor_removed",
        }
    }
}

/// A message ready for the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Composed {
    pub(crate) message_id: String,
    /// Envelope sender and recipient (bare addresses).
    pub(crate) from: String,
    pub(crate) to: String,
    /// RFC 5322 text.
    pub(crate) raw: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ComposeError {
    #[error("cannot mail {0:?}: {1}")]
    Address(String, String),
    #[error("cannot build the mail: {0}")]
    Build(String),
}

/// The body of every mail, rendered twice (text and HTML) from the same facts.
struct Body<'a> {
    site: &'a str,
    public_url: &'a str,
    paragraphs: Vec<String>,
    /// The button (HTML) or bare link (text), if the mail has one.
    action: Option<(&'a str, &'a str)>,
    after: Vec<String>,
}

#[derive(Template)]
#[template(path = "mail/mail.txt")]
struct TextMail<'a> {
    body: &'a Body<'a>,
}

#[derive(Template)]
#[template(path = "mail/mail.html")]
struct HtmlMail<'a> {
    subject: &'a str,
    body: &'a Body<'a>,
}

/// Writes mails for one site.
pub(crate) struct Composer {
    from: Mailbox,
    site: String,
    public_url: Url,
    /// The right-hand side of Message-IDs: public_url's host.
    domain: String,
}

impl Composer {
    pub(crate) fn new(from: &str, site: String, public_url: Url) -> Result<Composer, String> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("smtp.from {from:?} is not a mailbox: {e}"))?;
        let domain = public_url
            .host_str()
            .unwrap_or("gatehouse.invalid")
            .to_owned();
        Ok(Composer {
            from,
            site,
            public_url,
            domain,
        })
    }

    /// The mail that carries a link.
    pub(crate) fn link(
        &self,
        to: &str,
        purpose: Purpose,
        link: &str,
        new_email: Option<&str>,
    ) -> Result<Composed, ComposeError> {
        let site = self.site.as_str();
        let hours = purpose.lifetime() / 3600;
        let lasts = if hours == 0 {
            format!("{} minutes", purpose.lifetime() / 60)
        } else {
            format!("{hours} hours")
        };
        let ignore = "If you did not ask for this, ignore this mail: nothing changes.".to_owned();
        let (subject, paragraphs, label, after) = match purpose {
            Purpose::Reset => (
                format!("Reset your password for {site}"),
                vec![format!(
                    "Someone, hopefully you, asked to reset the password of your account {to} on {site}."
                )],
                "Choose a new password",
                vec![format!("The link works once, for {lasts}."), ignore],
            ),
            Purpose::Invite => (
                format!("You are invited to {site}"),
                vec![format!(
                    "An account {to} was made for you on {site}. Choose a password to start using it."
                )],
                "Choose your password",
                vec![format!("The link works once, for {lasts}.")],
            ),
            Purpose::Verify => (
                format!("Confirm your email for {site}"),
                vec![format!(
                    "Confirm that {to} is the address of your account on {site}."
                )],
                "Confirm my email",
                vec![format!("The link works once, for {lasts}."), ignore],
            ),
            Purpose::EmailChange => (
                format!("Confirm your new email for {site}"),
                vec![format!(
                    "Your account on {site} asked to use {} as its email from now on.",
                    new_email.unwrap_or(to)
                )],
                "Confirm the new email",
                vec![
                    format!(
                        "The link works once, for {lasts}. Until it is used, the account keeps its old email."
                    ),
                    ignore,
                ],
            ),
        };
        self.compose(to, &subject, paragraphs, Some((label, link)), after)
    }

    /// A notice about the account.
    pub(crate) fn notice(&self, to: &str, notice: &Notice) -> Result<Composed, ComposeError> {
        let site = self.site.as_str();
        let help = format!(
            "If this was not you, reset your password at {} and tell your administrator.",
            self.public_url.as_str().trim_end_matches('/')
        );
        let (subject, paragraphs) = match notice {
            Notice::PasswordChanged => (
                format!("Your password for {site} was changed"),
                vec![
                    format!(
                        "The password of your account {to} on {site} was just changed, and every session of the account was signed out."
                    ),
                    help,
                ],
            ),
            Notice::EmailChangeRequested { new_email } => (
                format!("Your email for {site} is about to change"),
                vec![
                    format!(
                        "Your account {to} on {site} asked to use {new_email} as its email from now on. A link to confirm it went to {new_email}; until it is used, nothing changes."
                    ),
                    help,
                ],
            ),
            Notice::SecondFactorAdded { method } => (
                format!("A second factor was added to your account on {site}"),
                vec![
                    format!("A second factor ({method}) was added to your account {to} on {site}."),
                    help,
                ],
            ),
            Notice::SecondFactorRemoved { method } => (
                format!("A second factor was removed from your account on {site}"),
                vec![
                    format!(
                        "A second factor ({method}) was removed from your account {to} on {site}."
                    ),
                    help,
                ],
            ),
        };
        self.compose(to, &subject, paragraphs, None, Vec::new())
    }

    /// The mail of `gatehouse smtp test`.
    pub(crate) fn test(&self, to: &str) -> Result<Composed, ComposeError> {
        let subject = format!("Test mail from {}", self.site);
        let paragraphs = vec![format!(
            "This is a test mail from gatehouse at {}: the SMTP settings work.",
            self.public_url.as_str().trim_end_matches('/')
        )];
        self.compose(to, &subject, paragraphs, None, Vec::new())
    }

    fn compose(
        &self,
        to: &str,
        subject: &str,
        paragraphs: Vec<String>,
        action: Option<(&str, &str)>,
        after: Vec<String>,
    ) -> Result<Composed, ComposeError> {
        let to_box = to
            .parse::<Mailbox>()
            .map_err(|e| ComposeError::Address(to.to_owned(), e.to_string()))?;
        let body = Body {
            site: &self.site,
            public_url: self.public_url.as_str(),
            paragraphs,
            action,
            after,
        };
        let text = render(&TextMail { body: &body });
        let html = render(&HtmlMail {
            subject,
            body: &body,
        });
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), self.domain);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_box.clone())
            .subject(subject)
            .message_id(Some(message_id.clone()))
            .date_now()
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| ComposeError::Build(e.to_string()))?;
        Ok(Composed {
            message_id,
            from: self.from.email.to_string(),
            to: to_box.email.to_string(),
            raw: message.formatted(),
        })
    }
}

/// Renders a mail template. Rendering into a `String` fails only if a value's `Display`
/// fails, which none of ours does.
fn render(template: &impl Template) -> String {
    template.render().unwrap_or_default()
}

/// `Auto-Submitted: auto-generated` (RFC 3834).
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn composer() -> Composer {
        Composer::new(
            "Example <no-reply@example.org>",
            "Example <b>".into(),
            Url::parse("https://auth.example.org/").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn mails_have_both_parts_and_the_headers() {
        let link = "https://auth.example.org/reset?token=abc.def";
        let mail = composer()
            .link("ada@example.org", Purpose::Reset, link, None)
            .unwrap();
        let text = String::from_utf8(mail.raw).unwrap();
        for header in [
            "From: Example <no-reply@example.org>",
            "To: ada@example.org",
            "Subject: Reset your password for Example <b>",
            "Auto-Submitted: auto-generated",
            "Date: ",
            &format!("Message-ID: {}", mail.message_id),
            "multipart/alternative",
            "text/plain",
            "text/html",
        ] {
            assert!(text.contains(header), "{header} missing:\n{text}");
        }
        assert!(mail.message_id.ends_with("@auth.example.org>"));
        assert_eq!(mail.from, "no-reply@example.org");
        // Values are escaped in the HTML part.
        let body = Body {
            site: "<b>site</b>",
            public_url: "https://auth.example.org/",
            paragraphs: vec!["<script>".into()],
            action: Some(("Go", "https://x.org/?a=1&b=\"2")),
            after: Vec::new(),
        };
        let html = render(&HtmlMail {
            subject: "<i>",
            body: &body,
        });
        assert!(!html.contains("<b>site") && !html.contains("<script>") && !html.contains("<i>"));
        assert!(
            html.contains("href=\"https://x.org/?a=1&#38;b=&#34;2\""),
            "{html}"
        );
        let text = render(&TextMail { body: &body });
        assert!(text.contains("Go:\nhttps://x.org/?a=1&b=\"2\n"), "{text}");
        let notice = composer()
            .notice("ada@example.org", &Notice::PasswordChanged)
            .unwrap();
        assert!(
            String::from_utf8(notice.raw)
                .unwrap()
                .contains("Auto-Submitted: auto-generated")
        );
    }

    #[test]
    fn a_bad_recipient_is_an_error_not_a_panic() {
        assert!(
            composer()
                .notice("not an address", &Notice::PasswordChanged)
                .is_err()
        );
    }
}
