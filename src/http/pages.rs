//! The server-rendered HTML pages. Each page is an askama template under `templates/`,
//! compiled into the binary and HTML-escaped by default, so a value from a request can never
//! become markup. Plain HTML forms that work without JavaScript; one small stylesheet
//! (`templates/style.css`) with light and dark schemes; no external fonts, scripts or images.

use askama::Template;

/// Renders a page. Rendering into a `String` fails only if a value's `Display` fails, which
/// none of ours does; an empty page is the safe answer should it ever happen.
pub(crate) fn render(page: &impl Template) -> String {
    page.render().unwrap_or_default()
}

/// The sign-in form. It posts to `login`, relative to the page, so it works under a
/// `public_url` with a path.
#[derive(Debug, Default, Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage<'a> {
    pub title: &'a str,
    /// The validated-later `rd`, carried in a hidden field.
    pub rd: Option<&'a str>,
    /// The email typed before, kept after a failed attempt (focus then goes to the password).
    pub email: &'a str,
    /// What went wrong, in words.
    pub error: Option<&'a str>,
    /// Whether to offer "Sign in with a passkey" (passkeys are on).
    pub passkeys: bool,
    /// Where pages live (`redirect::root`), for the script and API paths.
    pub root: &'a str,
    /// Where a passkey sign-in goes on to (the allowed `rd`, else `public_url`).
    pub next: &'a str,
}

/// The second step of a login (after a right password; `mfa_token` set) or of a step-up (a
/// session signed in with one factor; no `mfa_token`): a code, or a passkey.
#[derive(Debug, Default, Template)]
#[template(path = "second_factor.html")]
pub(crate) struct SecondFactorPage<'a> {
    pub title: &'a str,
    pub rd: Option<&'a str>,
    pub mfa_token: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Whether to offer a passkey (the account has one and passkeys are on).
    pub passkey: bool,
    pub root: &'a str,
    pub next: &'a str,
}

/// `/account`: the signed-in user's second factors, sessions and password. Sections stand
/// alone, so that later ones (email, consented apps) slot in.
#[derive(Debug, Default, Template)]
#[template(path = "account.html")]
pub(crate) struct AccountPage<'a> {
    pub title: &'a str,
    pub email: &'a str,
    pub root: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    /// Recovery codes just made: shown once.
    pub recovery_codes: Vec<String>,
    /// `mfa.required` and no factor yet: only the second-factor section.
    pub enrolment_only: bool,
    pub totp: bool,
    /// A TOTP secret handed out and awaiting its confirming code.
    pub totp_setup: Option<TotpSetup>,
    pub passkeys: Vec<PasskeyRow>,
    pub passkeys_enabled: bool,
    pub recovery_codes_left: usize,
    pub sessions: Vec<SessionRow>,
    /// Whether mail is set up (the email change sends a link).
    pub mail: bool,
    /// The OpenID Connect applications the user allowed.
    pub apps: Vec<AppRow>,
}

/// An OpenID Connect application the user allowed, with what it may see.
#[derive(Debug)]
pub(crate) struct AppRow {
    pub client: String,
    pub name: String,
    pub scopes: String,
}

/// A pending TOTP set-up: the key as text and as a QR code (SVG rendered here).
#[derive(Debug)]
pub(crate) struct TotpSetup {
    pub secret: String,
    /// Trusted markup: made by the `qrcode` crate from the `otpauth://` URI.
    pub qr_svg: String,
}

#[derive(Debug)]
pub(crate) struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug)]
pub(crate) struct SessionRow {
    /// The id `GET /auth/sessions` names it by, which the end form carries.
    pub id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub user_agent: String,
    pub ip: String,
    pub current: bool,
    /// For an OpenID Connect grant: the application's name.
    pub app: String,
}

/// The QR code of `text` as an SVG element (no XML declaration: it goes inside HTML).
pub(crate) fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].to_owned())
}

/// Already signed in (a visit to the login page without a usable `rd`).
#[derive(Debug, Template)]
#[template(path = "signed_in.html")]
pub(crate) struct SignedInPage<'a> {
    pub title: &'a str,
    pub email: &'a str,
}

/// The confirmation asked for a `GET /logout` that did not come from gatehouse's own site.
#[derive(Debug, Template)]
#[template(path = "logout_confirm.html")]
pub(crate) struct LogoutConfirmPage<'a> {
    pub title: &'a str,
    pub rd: Option<&'a str>,
}

/// After logout without a usable `rd`.
#[derive(Debug, Template)]
#[template(path = "signed_out.html")]
pub(crate) struct SignedOutPage<'a> {
    pub title: &'a str,
    /// The login page, relative to this page (`login` from `/logout`, `../login` from
    /// `/oidc/logout`), so it works under a `public_url` with a path.
    pub login_href: &'a str,
}

/// The OpenID Connect consent page: the client, the scopes, Allow and Deny. The
/// authorization request travels in hidden fields and is judged again when posted.
#[derive(Debug, Template)]
#[template(path = "consent.html")]
pub(crate) struct ConsentPage<'a> {
    pub client: &'a str,
    pub email: &'a str,
    /// What each scope shows, in words.
    pub scopes: Vec<&'static str>,
    pub fields: Vec<(String, String)>,
}

/// An authorization request that cannot be sent back to its client (unknown client,
/// unregistered redirect URI): said on a page, never redirected.
#[derive(Debug, Template)]
#[template(path = "oidc_error.html")]
pub(crate) struct OidcErrorPage<'a> {
    pub message: &'a str,
}

/// RP-initiated logout without proof that the client asked (no valid `id_token_hint`).
#[derive(Debug, Template)]
#[template(path = "oidc_logout.html")]
pub(crate) struct OidcLogoutPage<'a> {
    pub client: Option<&'a str>,
    pub fields: Vec<(String, String)>,
}

/// A link's page (`/reset`, `/invite`, `/verify`, `/email/confirm`): what the link does, and
/// a form that posts its token (and a new password, for reset and invitation links).
#[derive(Debug, Template)]
#[template(path = "link_form.html")]
pub(crate) struct LinkFormPage<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    pub intro: String,
    /// The form's target, relative to the page.
    pub action: &'a str,
    pub token: &'a str,
    /// Ask for a new password.
    pub password: bool,
    pub button: &'a str,
    pub error: Option<&'a str>,
}

/// After a link was used, or when it cannot be.
#[derive(Debug, Template)]
#[template(path = "link_done.html")]
pub(crate) struct LinkDonePage<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    pub message: &'a str,
    pub failed: bool,
    /// The sign-in page, relative to this one.
    pub login: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_values_are_escaped() {
        let evil = "\"><script>alert(1)</script>";
        let page = render(&LoginPage {
            title: "<b>Home</b>",
            rd: Some(evil),
            email: evil,
            error: Some("<i>bad</i>"),
            ..LoginPage::default()
        });
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>Home"), "{page}");
        assert!(!page.contains("<i>bad"), "{page}");
        assert!(
            page.contains("value=\"&#34;&#62;&#60;script&#62;"),
            "{page}"
        );
        assert!(page.contains("type=\"password\""));
        assert!(page.contains("<label for=\"email\">"));
        // After an error the password field has the focus.
        assert!(
            page.contains("current-password\" required autofocus"),
            "{page}"
        );
        let confirm = render(&LogoutConfirmPage {
            title: "t",
            rd: Some(evil),
        });
        assert!(!confirm.contains("<script>"));
    }

    #[test]
    fn account_page_escapes_and_draws_the_qr_code() {
        let evil = "<script>x</script>";
        let page = render(&AccountPage {
            title: "t",
            email: evil,
            root: "/",
            totp_setup: Some(TotpSetup {
                secret: "ABC".into(),
                qr_svg: qr_svg("otpauth://totp/x?secret=ABC").unwrap(),
            }),
            passkeys: vec![PasskeyRow {
                id: "id".into(),
                name: evil.into(),
                created_at: "now".into(),
            }],
            passkeys_enabled: true,
            ..AccountPage::default()
        });
        assert!(!page.contains("<script>x"), "{page}");
        assert!(page.contains("<svg xmlns="));
        assert!(!page.contains("<?xml"));
        assert!(page.contains("Remove passkey &#60;script"));
        assert!(page.contains("<script src=\"/static/webauthn.js\"></script>"));
    }

    #[test]
    fn link_pages_escape_and_label() {
        let evil = "\"><script>x</script>";
        let page = render(&LinkFormPage {
            title: "t",
            heading: "Choose a new password",
            intro: evil.into(),
            action: "reset",
            token: evil,
            password: true,
            button: "Set",
            error: Some(evil),
        });
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("<label for=\"new_password\">"));
        assert!(page.contains("type=\"password\" autocomplete=\"new-password\""));
        let done = render(&LinkDonePage {
            title: "t",
            heading: "h",
            message: evil,
            failed: true,
            login: "login",
        });
        assert!(!done.contains("<script>") && done.contains("role=\"alert\""));
    }

    #[test]
    fn an_empty_form_focuses_the_email() {
        let page = render(&LoginPage {
            title: "Sign in",
            ..LoginPage::default()
        });
        assert!(
            page.contains("autocomplete=\"username\" required autofocus"),
            "{page}"
        );
        assert!(!page.contains("name=\"rd\""));
    }
}
