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
